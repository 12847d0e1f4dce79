//! # lrp-core — the I/O-free heart of Lazy Receiver Processing
//!
//! Lazy Receiver Processing (Druschel & Banga, OSDI '96) keeps a host stable under
//! network overload with five mechanisms. Each has a module here:
//!
//! | mechanism | module |
//! |---|---|
//! | early demultiplexing: classify a frame to its endpoint on arrival | [`flow`] (one-pass [`flow::classify`]) and [`demux`] ([`demux::Demux`]) |
//! | NI channel: a bounded queue per endpoint | [`channel`] ([`channel::NiChannel`]) |
//! | early discard: drop at once when the endpoint's channel is full | [`channel`] (`push` hands the frame back) and its [`channel::Gate`] |
//! | lazy protocol processing, on the receiver's thread | [`wire`] (checksums, parse) called by the receiver; see `lrp-net` |
//! | accounting: CPU and packets charged per endpoint | [`account`] |
//!
//! [`eager`] holds the conventional baseline (one shared input queue, protocol work
//! before the endpoint queue) with the same interfaces, so experiments compare both.
//!
//! This crate does no I/O, never reads a clock (callers pass time in) and contains no
//! `unsafe`. Wire input is attacker input: nothing here panics on any byte sequence.
#![forbid(unsafe_code)]

pub mod account;
pub mod channel;
pub mod demux;
pub mod eager;
pub mod flow;
pub mod wire;
