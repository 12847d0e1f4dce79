//! Demux [`Rule`]s: which frames belong to a channel. A leaf module over lrp-core's
//! demux keys.

use std::fmt;
use std::net::IpAddr;

use lrp_core::demux::{ListenerKey, SourceKey};
use lrp_core::flow::{FlowKey, Proto};

/// A demux rule: which frames belong to a channel. Precedence (first match wins): exact
/// 5-tuple, SYN rule of the matching listener, listener, source, host, default action (see
/// [`lrp_core::demux`], which also says why source rules come after listeners and
/// before hosts).
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
/// // NAT replies of a real server, addressed to clients.
/// let replies = Rule::source(Proto::Tcp, "192.168.1.10".parse().unwrap(), 8080);
/// let flow = Rule::exact(FlowKey {
///     proto: Proto::Udp,
///     src: "10.0.0.1".parse().unwrap(),
///     dst: "10.0.0.2".parse().unwrap(),
///     sport: 5000,
///     dport: 9000,
/// });
/// assert_ne!(established, new_conns);
/// assert_eq!(new_conns.to_string(), "syn tcp 10.0.0.100:80");
/// assert_eq!(replies.to_string(), "source tcp 192.168.1.10:8080");
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
    /// UDP/TCP frames *from* a remote (proto, address, port), whatever their destination,
    /// that no exact or listener rule claims: in an LVS director's NAT mode, the replies of
    /// one real server's service, which are addressed to clients.
    Source(SourceKey),
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

    /// UDP/TCP frames of `proto` from `addr`:`port` (a real server's replies) that no
    /// exact or listener rule claims, whatever their destination.
    pub fn source(proto: Proto, addr: IpAddr, port: u16) -> Rule {
        Rule::Source(SourceKey::new(proto, addr, port))
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
        fn endpoint(
            f: &mut fmt::Formatter<'_>,
            kind: &str,
            proto: Proto,
            addr: Option<IpAddr>,
            port: u16,
        ) -> fmt::Result {
            match addr {
                Some(IpAddr::V6(a)) => write!(f, "{kind} {proto} [{a}]:{port}"),
                Some(a) => write!(f, "{kind} {proto} {a}:{port}"),
                None => write!(f, "{kind} {proto} *:{port}"),
            }
        }
        fn listener(f: &mut fmt::Formatter<'_>, kind: &str, key: &ListenerKey) -> fmt::Result {
            endpoint(f, kind, key.proto, key.addr, key.port)
        }
        match self {
            Rule::Exact(k) => write!(f, "exact {k}"),
            Rule::Listener(key) => listener(f, "listener", key),
            Rule::Syn(key) => listener(f, "syn", key),
            Rule::Source(key) => endpoint(f, "source", key.proto, Some(key.addr), key.port),
            Rule::Host(addr) => write!(f, "host {addr}"),
        }
    }
}
