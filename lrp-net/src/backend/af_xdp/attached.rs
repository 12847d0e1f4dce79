//! The XDP [`Dispatcher`] of an interface, attached once and shared by every NIC of this
//! process on that interface (one per queue), found by network namespace and interface.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::lock;
use crate::error::{Error, Result};
use crate::xdp::program::AttachMode;
use crate::xdp::sys::NetNs;
use crate::xdp::{Dispatcher, XdpError};

/// A dispatcher attached to an interface, shared by every NIC of this process on it.
pub(super) struct Attached {
    pub(super) dispatcher: Mutex<Dispatcher>,
    mode: AttachMode,
}

/// A network namespace's identity (see `NetNs::id`).
type NsId = (u64, u64);

/// The dispatchers of this process, by (namespace, interface index).
static ATTACHED: Mutex<Vec<(NsId, u32, Weak<Attached>)>> = Mutex::new(Vec::new());

impl Attached {
    /// The dispatcher of interface `ifindex` (in the calling thread's namespace `netns`),
    /// attaching it on first use.
    pub(super) fn get(
        netns: &NetNs,
        ifindex: u32,
        ifname: &str,
        mode: AttachMode,
    ) -> Result<Arc<Attached>> {
        // A NIC that is being dropped may still hold the link for a moment: retry
        // `AlreadyAttached` briefly if one of ours was on this interface.
        let key = (netns.id(), ifindex);
        let mut attempt = 0;
        let mut dying = false;
        loop {
            attempt += 1;
            let mut all = lock(&ATTACHED);
            all.retain(|(ns, i, w)| {
                w.strong_count() > 0 || {
                    dying |= (*ns, *i) == key;
                    false
                }
            });
            for (ns, i, w) in all.iter() {
                if (*ns, *i) != key {
                    continue;
                }
                if let Some(a) = w.upgrade() {
                    if a.mode != mode {
                        return Err(Error::Xdp(XdpError::InvalidConfig(format!(
                            "interface `{ifname}` is already served by this process with \
                             XDP in {:?} mode; open every queue of an interface in one mode",
                            a.mode
                        ))));
                    }
                    return Ok(a);
                }
            }
            match Dispatcher::attach(ifindex, mode) {
                Ok(d) => {
                    let a = Arc::new(Attached {
                        dispatcher: Mutex::new(d),
                        mode,
                    });
                    all.push((key.0, key.1, Arc::downgrade(&a)));
                    return Ok(a);
                }
                Err(XdpError::AlreadyAttached { .. }) if dying && attempt <= 200 => {
                    drop(all);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
