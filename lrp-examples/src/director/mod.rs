//! The LVS-style L4 load-balancing director built on lrp's NI channels.

pub mod config;
