//! Errors of the NIC and channel API.

use std::io;

use crate::nic::Rule;
use crate::pool::{CapacityError, PoolError};
use crate::xdp::XdpError;

/// Result of the NIC and channel API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the NIC and channel API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable (the message says which rule was broken).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The rule cannot be used as asked (the message says why).
    #[error("invalid rule {rule:?}: {reason}")]
    InvalidRule {
        /// The rule.
        rule: Rule,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Another channel already owns this rule.
    #[error("rule {0:?} is already bound to another channel")]
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
    /// The feature is not available yet (the message says what and where it will live).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
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
