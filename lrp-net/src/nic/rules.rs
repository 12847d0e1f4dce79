//! Opening and closing channels and changing their rules: the facade's demux table and
//! its mirror in the NIC.
//!
//! Every change runs under the NIC's control lock, which serializes them. The NIC is
//! updated (BPF map writes, AF_XDP sockets opened and closed: slow system calls) while
//! holding only that lock; the table lock, which the poll step needs, is taken for the
//! in-memory update alone. The order keeps every moment consistent:
//!
//! * **add**: the facade's table first, then the NIC. Until the NIC has the rule its
//!   frames still go where they went before; if the NIC refuses it (a full BPF map), the
//!   facade's entry is taken back and the error returned.
//! * **remove**: the facade's table first, then the NIC. Frames the NIC still sends by
//!   the old rule meanwhile find no claim in the facade and take the default action
//!   (counted), as frames for a closed port do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lrp_core::demux::{ChannelId, Listener, ListenerKey, SourceKey};
use lrp_core::flow::Proto;

use super::state::{lock, ChannelShared, ListenerSlots, NicInner, Table};
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::rule::Rule;

/// Largest NI-LRP channel ring (AF_XDP rings are powers of two; this bounds memory).
const MAX_NI_RING: usize = 1 << 16;

impl NicInner {
    /// Open a channel for `rule` (see [`Nic::channel`](crate::Nic::channel)).
    pub(super) fn open_channel(&self, rule: Rule, capacity: usize) -> Result<Arc<ChannelShared>> {
        check_rule(&rule)?;
        if capacity == 0 {
            return Err(Error::InvalidConfig(
                "a channel needs room for at least one frame",
            ));
        }
        // In NI-LRP frames queue in the NIC's ring, not in the core NiChannel, which is
        // the stash (or, for a soft channel, the queue itself); it still carries the
        // endpoint's id and account.
        let ring = match self.config.mode {
            Mode::NiLrp => Some(
                capacity
                    .checked_next_power_of_two()
                    .filter(|&r| r <= MAX_NI_RING)
                    .ok_or(Error::InvalidConfig("NI-LRP channel capacity above 65536"))?,
            ),
            Mode::SoftLrp | Mode::Eager => None,
        };
        let _control = lock(&self.control);
        if rule_owner(&self.read_table(), &rule).is_some() {
            return Err(Error::RuleInUse(rule));
        }
        let endpoint = self
            .write_table()
            .endpoints
            .insert(ring.unwrap_or(capacity));
        let id = endpoint.id();
        let forget = |ni: bool| {
            self.write_table().endpoints.remove(id);
            if ni {
                self.backend.ni_close(id);
            }
        };
        let mut soft = false;
        let ni = match ring {
            // Creating the channel's socket is slow: no table lock held.
            Some(ring) => match self.backend.ni_open(id, ring) {
                Ok(q) => Some(q),
                Err(Error::NoChannelSlot(_)) if soft_feasible(&self.read_table(), &rule) => {
                    soft = true;
                    None
                }
                Err(e) => {
                    forget(false);
                    return Err(e);
                }
            },
            None => None,
        };
        let notifier = match Notifier::new() {
            Ok(n) => n,
            Err(e) => {
                forget(ni.is_some());
                return Err(e.into());
            }
        };
        let shared = Arc::new(ChannelShared {
            id,
            endpoint,
            ni,
            soft,
            wide: AtomicBool::new(false),
            rx_lock: Mutex::new(()),
            notifier,
            rules: Mutex::new(Vec::new()),
            delivered_packets: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
        });
        let slot = id.0 as usize;
        {
            let mut table = self.write_table();
            if table.channels.len() <= slot {
                table.channels.resize_with(slot + 1, || None);
            }
            table.channels[slot] = Some(Arc::clone(&shared));
        }
        if let Err(e) = self.install(&shared, rule) {
            self.write_table().channels[slot] = None;
            forget(shared.ni.is_some());
            return Err(e);
        }
        if soft {
            self.soft_channels.fetch_add(1, Ordering::Relaxed);
        }
        Ok(shared)
    }

    /// Add `rule` to channel `ch`.
    pub(super) fn add_rule(&self, ch: &ChannelShared, rule: Rule) -> Result<()> {
        check_rule(&rule)?;
        let _control = lock(&self.control);
        if rule_owner(&self.read_table(), &rule).is_some() {
            return Err(Error::RuleInUse(rule));
        }
        self.install(ch, rule)
    }

    /// Remove `rule` of channel `ch`. Returns whether `ch` had it.
    pub(super) fn remove_rule(&self, ch: &ChannelShared, rule: &Rule) -> bool {
        let _control = lock(&self.control);
        self.uninstall(ch, rule)
    }

    /// Remove a channel entirely: its rules, its NIC queue and its endpoint. Frames still
    /// queued in the endpoint's NiChannel return to the pool when the last reference to
    /// the endpoint (the Channel's) drops.
    pub(super) fn close_channel(&self, ch: &ChannelShared) {
        let _control = lock(&self.control);
        let rules: Vec<Rule> = lock(&ch.rules).clone();
        for rule in &rules {
            self.uninstall(ch, rule);
        }
        {
            let mut table = self.write_table();
            if let Some(slot) = table.channels.get_mut(ch.id.0 as usize) {
                *slot = None;
            }
            table.endpoints.remove(ch.id);
        }
        if ch.ni.is_some() {
            self.backend.ni_close(ch.id);
        }
        if ch.soft {
            self.soft_channels.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Change the action for frames no rule claims: the NIC first, then the facade.
    pub(super) fn set_default_action(&self, action: lrp_core::demux::DefaultAction) -> Result<()> {
        let _control = lock(&self.control);
        self.backend.sync_default(action)?;
        self.write_table().demux.set_default_action(action);
        Ok(())
    }

    /// Install `rule` for channel `ch` (control lock held; the caller checked that the
    /// rule is free). See the [module docs](self) for the order.
    fn install(&self, ch: &ChannelShared, rule: Rule) -> Result<()> {
        if ch.soft && !matches!(rule, Rule::Exact(_)) {
            return Err(Error::InvalidRule {
                rule,
                reason: "a soft NI-LRP channel (opened when the NIC had no slot left) takes \
                         exact rules only",
            });
        }
        let backend = &self.backend;
        match rule {
            Rule::Exact(key) => {
                self.write_table().demux.insert_flow(key, ch.id);
                // A soft channel's rule stays out of the NIC: its frames arrive where the
                // NIC's wider rules send them and are moved to it from there.
                if !ch.soft {
                    if let Err(e) = backend.sync_flow(&key, Some(ch.id)) {
                        self.write_table().demux.remove_flow(&key);
                        return Err(e);
                    }
                }
            }
            Rule::Listener(key) | Rule::Syn(key) => {
                let (old, new) = {
                    let mut table = self.write_table();
                    let old = table.listeners.get(&key).copied().unwrap_or_default();
                    let mut new = old;
                    if matches!(rule, Rule::Syn(_)) {
                        new.syn = Some(ch.id);
                    } else {
                        new.plain = Some(ch.id);
                    }
                    set_listener(&mut table, key, new);
                    (old, new)
                };
                if let Err(e) = backend.sync_listener(&key, listener_entry(new)) {
                    set_listener(&mut self.write_table(), key, old);
                    return Err(e);
                }
            }
            Rule::Source(key) => {
                self.write_table().demux.insert_source(key, ch.id);
                if let Err(e) = backend.sync_source(&key, Some(ch.id)) {
                    self.write_table().demux.remove_source(&key);
                    return Err(e);
                }
            }
            Rule::Host(addr) => {
                self.write_table().demux.insert_host(addr, ch.id);
                if let Err(e) = backend.sync_host(&addr, Some(ch.id)) {
                    self.write_table().demux.remove_host(&addr);
                    return Err(e);
                }
            }
        }
        let mut rules = lock(&ch.rules);
        rules.push(rule);
        self.update_wide(ch, &rules);
        Ok(())
    }

    /// Remove `rule` of channel `ch` (control lock held). Returns whether `ch` owned it.
    fn uninstall(&self, ch: &ChannelShared, rule: &Rule) -> bool {
        // The facade first; for a listener key, what is left of its entry.
        let slots = {
            let mut table = self.write_table();
            if rule_owner(&table, rule) != Some(ch.id) {
                return false;
            }
            let mut slots = ListenerSlots::default();
            match *rule {
                Rule::Exact(key) => {
                    table.demux.remove_flow(&key);
                }
                Rule::Listener(key) | Rule::Syn(key) => {
                    slots = table.listeners.get(&key).copied().unwrap_or_default();
                    if matches!(rule, Rule::Syn(_)) {
                        slots.syn = None;
                    } else {
                        slots.plain = None;
                    }
                    set_listener(&mut table, key, slots);
                }
                Rule::Source(key) => {
                    table.demux.remove_source(&key);
                }
                Rule::Host(addr) => {
                    table.demux.remove_host(&addr);
                }
            }
            slots
        };
        // Then the NIC. Removing (or shrinking) an entry does not fail in practice; if
        // the NIC refuses, its stale entry names a channel that is going away, whose
        // frames then take the default action there.
        let backend = &self.backend;
        let synced = match *rule {
            // A soft channel's rule never reached the NIC.
            Rule::Exact(_) if ch.soft => Ok(()),
            Rule::Exact(key) => backend.sync_flow(&key, None),
            Rule::Listener(key) | Rule::Syn(key) => {
                backend.sync_listener(&key, listener_entry(slots))
            }
            Rule::Source(key) => backend.sync_source(&key, None),
            Rule::Host(addr) => backend.sync_host(&addr, None),
        };
        if let Err(e) = synced {
            log::warn!("removing rule {rule} from the NIC failed: {e}");
        }
        let mut rules = lock(&ch.rules);
        rules.retain(|r| r != rule);
        self.update_wide(ch, &rules);
        true
    }

    /// Record whether `ch` has a rule other than an exact one — a listener, SYN, source or
    /// host rule (NI-LRP: its ring may then carry soft channels' frames) — and keep the
    /// feeder set in step.
    fn update_wide(&self, ch: &ChannelShared, rules: &[Rule]) {
        let wide = rules.iter().any(|r| !matches!(r, Rule::Exact(_)));
        if ch.wide.swap(wide, Ordering::Relaxed) == wide {
            return;
        }
        if let (Some(q), Some(feeders)) = (&ch.ni, self.feeders()) {
            if wide {
                feeders.add(q.readiness());
            } else {
                feeders.remove(q.readiness());
            }
        }
    }
}

/// The demux entry for a listener key with these channels (`None`: no entry).
fn listener_entry(slots: ListenerSlots) -> Option<Listener> {
    match (slots.plain, slots.syn) {
        (None, None) => None,
        (channel, syn_channel) => Some(Listener {
            channel,
            syn_channel,
        }),
    }
}

/// Set the facade's listener entry for `key` to `slots`.
fn set_listener(table: &mut Table, key: ListenerKey, slots: ListenerSlots) {
    match listener_entry(slots) {
        None => {
            table.listeners.remove(&key);
            table.demux.remove_listener(&key);
        }
        Some(listener) => {
            table.listeners.insert(key, slots);
            table.demux.insert_listener(key, listener);
        }
    }
}

fn check_rule(rule: &Rule) -> Result<()> {
    match rule {
        Rule::Syn(key) if key.proto != Proto::Tcp => Err(Error::InvalidRule {
            rule: *rule,
            reason: "a SYN rule applies to TCP listeners only",
        }),
        _ => Ok(()),
    }
}

/// NI-LRP: whether a channel for `rule` can be soft: an exact rule whose frames an NI
/// channel's rule claims in the NIC (a listener's plain rule for its destination, or with
/// no listener for it, a source rule for its source or else a host rule for its
/// destination address — the demux precedence without the exact step), so that they
/// reach a ring from which they are moved to it.
fn soft_feasible(table: &Table, rule: &Rule) -> bool {
    let Rule::Exact(key) = rule else {
        return false;
    };
    let listener = table
        .demux
        .listener(&ListenerKey::new(key.proto, key.dst, key.dport))
        .or_else(|| {
            table
                .demux
                .listener(&ListenerKey::any(key.proto, key.dport))
        });
    let claimer = match listener {
        Some(l) => l.channel,
        None => table
            .demux
            .source(&SourceKey::of_flow(key))
            .or_else(|| table.demux.host(&key.dst)),
    };
    claimer
        .and_then(|id| table.channel(id))
        .is_some_and(|c| c.ni.is_some())
}

/// The channel that owns `rule`, if any.
fn rule_owner(table: &Table, rule: &Rule) -> Option<ChannelId> {
    match rule {
        Rule::Exact(key) => table.demux.flow(key),
        Rule::Listener(key) => table.listeners.get(key).and_then(|s| s.plain),
        Rule::Syn(key) => table.listeners.get(key).and_then(|s| s.syn),
        Rule::Source(key) => table.demux.source(key),
        Rule::Host(addr) => table.demux.host(addr),
    }
}
