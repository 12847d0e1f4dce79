//! lrp-net (being written).
pub mod testnet;
pub mod xdp;
pub mod stack;
