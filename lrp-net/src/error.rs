//! The crate's error: what opening a NIC, a channel, a stack or a socket can fail with.
//!
//! The error story, in one place:
//! * Opening things ([`Nic::open`](crate::Nic::open), [`Nic::channel`](crate::Nic::channel),
//!   [`Stack::new`](crate::Stack::new), [`Stack::udp_bind`](crate::Stack::udp_bind), ...)
//!   returns [`Error`], which says what went wrong and what to do about it.
//! * Socket I/O (`recv_from`, `read`, `write`, `accept`, `connect`) returns
//!   [`std::io::Result`], like `std::net`, with a meaningful [`io::ErrorKind`]: an
//!   [`Error`] met on the way converts with [`From`] and keeps its kind
//!   ([`Error::kind`]) and its message.

use std::io;
use std::net::SocketAddr;

use crate::pool::{CapacityError, PoolError};
use crate::rule::Rule;
use crate::xdp::XdpError;

/// Result of the NIC, channel and stack API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the NIC, channel and stack API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable (the message says which rule was broken).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The rule cannot be used as asked (the message says why).
    #[error("invalid rule {rule}: {reason}")]
    InvalidRule {
        /// The rule.
        rule: Rule,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Another channel already owns this rule.
    #[error("rule {0} is already bound to another channel")]
    RuleInUse(Rule),
    /// The backend cannot open another channel (NI-LRP: no free socket slot).
    #[error("no channel slot left: {0}")]
    NoChannelSlot(&'static str),
    /// Setting up or using the frame pool failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// No free frame: every frame is in a ring, a channel or the application's hands.
    #[error("frame pool exhausted")]
    PoolExhausted,
    /// The data does not fit in one frame.
    #[error(transparent)]
    FrameTooLarge(#[from] CapacityError),
    /// The TX ring is full; the frame was dropped and counted.
    #[error("TX ring full, frame dropped")]
    TxFull,
    /// The frame belongs to another NIC's pool and cannot be transmitted here.
    #[error("frame belongs to a different frame pool")]
    ForeignFrame,
    /// The feature is not available (the message says what).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The address is not the stack's own address.
    #[error("address {0} is not available on this stack")]
    AddrNotAvailable(SocketAddr),
    /// Another socket of this stack already uses the address and port.
    #[error("address {0} is already in use")]
    AddrInUse(SocketAddr),
    /// No ephemeral port is free for a new connection.
    #[error("no free ephemeral port")]
    NoEphemeralPort,
    /// The AF_XDP layer failed: missing privilege (it names the capability), no such
    /// interface, XDP mode not supported, MTU too large for a frame, locked-memory
    /// limit, queue busy with another UMEM, a full BPF map, ... The [`XdpError`] says
    /// which, and what to do about it.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// The [`io::ErrorKind`] this error has when it surfaces from a socket call.
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::InvalidConfig(_) | Error::InvalidRule { .. } => K::InvalidInput,
            Error::RuleInUse(_) | Error::AddrInUse(_) | Error::NoEphemeralPort => K::AddrInUse,
            Error::AddrNotAvailable(_) => K::AddrNotAvailable,
            Error::NoChannelSlot(_) | Error::PoolExhausted | Error::TxFull => K::OutOfMemory,
            Error::FrameTooLarge(_) => K::InvalidInput,
            Error::ForeignFrame => K::InvalidInput,
            Error::Unsupported(_) => K::Unsupported,
            Error::Io(e) => e.kind(),
            Error::Xdp(XdpError::PermissionDenied { .. }) => K::PermissionDenied,
            Error::Xdp(_) | Error::Pool(_) => K::Other,
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps the kind ([`Error::kind`]); an [`Error::Io`] is unwrapped as it was.
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            e => io::Error::new(e.kind(), e),
        }
    }
}
