//! A spoofed SYN flood against a listener on the simulated NIC: thousands of SYNs from
//! sources that never complete the handshake, interleaved with a legitimate client (a
//! smoltcp host on the wire). The SYN queue evicts the oldest handshake when full, so the
//! client's handshake completes, it is accepted and served, and the SYN queue never
//! holds more than `StackConfig::syn_backlog` handshakes.

mod stack_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lrp_core::flow::TcpFlags;
use lrp_net::sim::build;
use smoltcp::socket::tcp::State;
use stack_support::*;

const LIMIT: Duration = Duration::from_secs(20);
const SYN_BACKLOG: usize = 128;
/// Spoofed SYNs injected per round of the peer (between its polls).
const SYNS_PER_ROUND: u32 = 16;
/// Spoofed SYNs in the whole flood (at least; it goes on until the client is served).
const FLOOD: u32 = 4000;
/// Spoofed SYNs before the legitimate client starts: the SYN queue is full by then.
const BEFORE_CLIENT: u32 = 1000;

/// The `i`-th spoofed SYN: sources 10.0.0.100–10.0.0.227 (nobody; their SYN-ACKs reach
/// the peer's MAC, which ignores them), ports from 1024 on.
fn spoofed_syn(i: u32) -> Vec<u8> {
    let host = 100 + (i % 128) as u8;
    let port = 1024 + (i / 128) as u16;
    build::tcp_v4(
        sa(Ipv4Addr::new(10, 0, 0, host), port),
        sa(STACK_IP, 80),
        TcpFlags::SYN,
        b"",
    )
}

#[test]
fn a_legitimate_client_is_served_during_a_spoofed_syn_flood_in_every_mode() {
    for mode in MODES {
        let (stack, sim) = stack_with(mode, |c| c.syn_backlog(SYN_BACKLOG));
        let listener = Arc::new(
            stack
                .tcp_listen("10.0.0.2:80".parse().unwrap(), 16)
                .unwrap(),
        );
        let server_listener = Arc::clone(&listener);
        let stop = Arc::new(AtomicBool::new(false));
        let server_stop = Arc::clone(&stop);
        // The server keeps calling `accept` (processing is lazy: the flood's SYNs are
        // handled there) until told to stop.
        let server = std::thread::spawn(move || {
            let (mut s, peer) = server_listener.accept_timeout(LIMIT).expect("accept");
            s.set_read_timeout(Some(LIMIT)).unwrap();
            let mut req = [0u8; 4];
            s.read_exact(&mut req).expect("read request");
            assert_eq!(&req, b"GET ");
            s.write_all(b"hello").unwrap();
            while !server_stop.load(Ordering::Relaxed) {
                if let Ok((_, extra)) = server_listener.accept_timeout(Duration::from_millis(5)) {
                    panic!("a spoofed handshake completed: {extra}");
                }
            }
            (s, peer)
        });
        let mut peer = PeerHost::new(sim);
        let mut injected = 0u32;
        let mut refused = 0u32;
        let mut max_pending = 0;
        let mut client = None;
        let mut sent = false;
        let mut got = Vec::new();
        let mut client_start = Instant::now();
        let mut client_time = None;
        let mut connect_time = None;
        let end = Instant::now() + LIMIT;
        while Instant::now() < end {
            // Paced to what the listener absorbs (SYNs on the wire, in the NIC's ring or
            // the listener's channel, at most two rounds' worth): this
            // tests the SYN queue, not the NIC's early discard of an overload, which
            // would drop the client's segments as well.
            let taken = listener.stats().rx_packets;
            let backlogged = u64::from(injected) > taken + 2 * u64::from(SYNS_PER_ROUND);
            for _ in 0..if backlogged { 0 } else { SYNS_PER_ROUND } {
                // A full RX ring refuses the frame, like a NIC dropping under load.
                if peer.sim.inject(&spoofed_syn(injected)) {
                    injected += 1;
                } else {
                    refused += 1;
                }
            }
            if client.is_none() && injected >= BEFORE_CLIENT {
                client = Some(peer.connect(40000, 80));
                client_start = Instant::now();
            }
            peer.poll();
            if let Some(h) = client {
                let s = peer.tcp(h);
                if s.state() == State::Established && connect_time.is_none() {
                    connect_time = Some(client_start.elapsed());
                }
                if s.can_send() && !sent {
                    s.send_slice(b"GET ").unwrap();
                    sent = true;
                }
                while s.can_recv() {
                    s.recv(|b| {
                        got.extend_from_slice(b);
                        (b.len(), ())
                    })
                    .unwrap();
                }
                if got == b"hello" && client_time.is_none() {
                    client_time = Some(client_start.elapsed());
                }
            }
            max_pending = max_pending.max(listener.pending_handshakes());
            assert!(
                max_pending <= SYN_BACKLOG,
                "{mode:?}: the SYN queue holds {max_pending}"
            );
            if client_time.is_some() && injected >= FLOOD {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let client_time = client_time.unwrap_or_else(|| {
            panic!(
                "{mode:?}: the client was not served ({} bytes; {injected} spoofed SYNs, \
                 {} evictions, {:?})",
                got.len(),
                listener.syn_evictions(),
                listener.stats()
            )
        });
        // Let the stack take what is left on the wire, then look at the bounds.
        assert!(wait_until(LIMIT, || listener.stats().queued == 0));
        stop.store(true, Ordering::Relaxed);
        let (_stream, from) = server.join().unwrap();
        // Connected at once: no SYN retransmission (smoltcp's first RTO is 1 s). (The
        // request itself may need a retransmission: a segment that races the new
        // connection's exact rule can be lost, see the module docs.)
        let connect_time = connect_time.expect("connected");
        assert!(
            connect_time < Duration::from_millis(900),
            "{mode:?}: the client connected in {connect_time:?}; listener {}; control {}; nic {:?}",
            listener.stats(),
            stack.control_stats(),
            peer.sim.stats()
        );
        assert_eq!(from, SocketAddr::from(sa(PEER_IP, 40000)));
        let stats = listener.stats();
        let pending = listener.pending_handshakes();
        assert!(pending <= SYN_BACKLOG, "{mode:?}: {pending} handshakes");
        assert!(injected >= FLOOD, "{mode:?}: {injected} SYNs injected");
        assert!(
            stats.syn_evictions > u64::from(FLOOD) / 2,
            "{mode:?}: the flood cycled the SYN queue ({stats})"
        );
        assert_eq!(stats.backlog_full, 0, "{mode:?}");
        assert_eq!(listener.accepted(), 1, "{mode:?}: only the real client");
        eprintln!(
            "{mode:?}: client connected in {connect_time:?}, served in {client_time:?} during {injected} spoofed SYNs \
             ({refused} refused by the full ring); SYN queue max {max_pending}, \
             {} evictions",
            stats.syn_evictions
        );
    }
}
