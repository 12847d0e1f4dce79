//! Demux [`Rule`]s: which frames belong to a channel. A leaf module over lrp-core's
//! demux keys.

use std::fmt;
use std::net::IpAddr;

use lrp_core::demux::ListenerKey;
use lrp_core::flow::{FlowKey, Proto};

/// A demux rule: which frames belong to a channel. Precedence (first match wins): exact
/// 5-tuple, SYN rule of the matching listener, listener, host, default action (see
/// [`lrp_core::demux`]).
///
/// ```
/// use lrp_net::{FlowKey, Proto, Rule};
/// use std::net::IpAddr;
///
/// let vip: IpAddr = "10.0.0.100".parse().unwrap();
/// let established = Rule::listener(Proto::Tcp, vip, 80);
/// let new_conns = Rule::listener(Proto::Tcp, vip, 80).syn_only();
/// let any_dns = Rule::listener(Proto::Udp, None, 53);
/// let control = Rule::host(vip); // ARP and ICMP for the VIP
/// let flow = Rule::exact(FlowKey {
///     proto: Proto::Udp,
///     src: "10.0.0.1".parse().unwrap(),
///     dst: "10.0.0.2".parse().unwrap(),
///     sport: 5000,
///     dport: 9000,
/// });
/// assert_ne!(established, new_conns);
/// assert_eq!(new_conns.to_string(), "syn tcp 10.0.0.100:80");
/// # let _ = (any_dns, control, flow);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Frames of one flow, keyed as they arrive (`src` = the remote peer).
    Exact(FlowKey),
    /// Frames to a local (proto, address or any, port) that no exact rule claims.
    Listener(ListenerKey),
    /// New TCP connection requests (SYN without ACK) to a listener's (address, port): a
    /// SYN flood then fills only this channel. Without a plain listener rule for the same
    /// key, the listener's other frames take the default action.
    Syn(ListenerKey),
    /// ARP for, and ICMP to, a local address (the stack's control channel), and UDP/TCP
    /// to it that no other rule claims.
    Host(IpAddr),
}

impl Rule {
    /// A rule for one flow; `key` as the frames arrive (`src` = the remote peer).
    pub fn exact(key: FlowKey) -> Rule {
        Rule::Exact(key)
    }

    /// A listener on `port` at `addr` (`None`: every local address). Turn it into the
    /// rule for new connection requests only with [`syn_only`](Self::syn_only).
    pub fn listener(proto: Proto, addr: impl Into<Option<IpAddr>>, port: u16) -> Rule {
        Rule::Listener(ListenerKey {
            proto,
            addr: addr.into(),
            port,
        })
    }

    /// ARP for, and ICMP to, a local address.
    pub fn host(addr: IpAddr) -> Rule {
        Rule::Host(addr)
    }

    /// The rule for new connection requests (TCP SYN without ACK) to this listener's
    /// (address, port): `Rule::listener(..).syn_only()`. A rule that is not a listener
    /// rule is returned unchanged (and a SYN rule on UDP is refused when it is used).
    #[must_use]
    pub fn syn_only(self) -> Rule {
        match self {
            Rule::Listener(key) => Rule::Syn(key),
            other => other,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn listener(f: &mut fmt::Formatter<'_>, kind: &str, key: &ListenerKey) -> fmt::Result {
            let proto = key.proto;
            match key.addr {
                Some(IpAddr::V6(a)) => write!(f, "{kind} {proto} [{a}]:{}", key.port),
                Some(a) => write!(f, "{kind} {proto} {a}:{}", key.port),
                None => write!(f, "{kind} {proto} *:{}", key.port),
            }
        }
        match self {
            Rule::Exact(k) => write!(f, "exact {k}"),
            Rule::Listener(key) => listener(f, "listener", key),
            Rule::Syn(key) => listener(f, "syn", key),
            Rule::Host(addr) => write!(f, "host {addr}"),
        }
    }
}
