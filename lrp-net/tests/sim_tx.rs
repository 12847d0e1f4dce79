//! Transmit: an echo server rewrites received frames in place and transmits the same
//! chunks (zero copy); the peer captures the echoes; the chunks come back to the pool.

mod sim_common;

use lrp_core::flow::{classify, Proto};
use lrp_core::wire::verify;
use lrp_net::sim::{build, SimConfig};
use lrp_net::{Error, Mode, Nic, Rule};
use sim_common::{assert_conserved, client, config, server, sim, udp_to, MODES};

#[test]
fn echo_in_place_in_every_mode() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let ch = nic
            .channel(Rule::listener(Proto::Udp, None, 7), 128)
            .unwrap();
        for seq in 0..50 {
            assert!(peer.inject(&udp_to(7, seq)));
        }
        let mut frames = Vec::new();
        while ch.try_recv_batch(16, &mut frames) > 0 {}
        assert_eq!(frames.len(), 50, "{mode:?}");
        let free_before = nic.census().free;
        for mut f in frames.drain(..) {
            assert!(build::swap_endpoints_v4(&mut f));
            ch.transmit(f).unwrap();
        }
        // Zero copy: the received chunks themselves are in the TX ring; no frame was
        // taken from the pool for the echoes.
        let c = nic.census();
        assert_eq!(c.tx, 50, "{mode:?}");
        assert_eq!(c.free, free_before);
        assert!(c.is_conserved());

        let echoes = peer.take_tx();
        assert_eq!(echoes.len(), 50);
        for (seq, e) in echoes.iter().enumerate() {
            let mut expected = build::udp_v4(server(7), client(40000), &(seq as u32).to_be_bytes());
            expected[0..6].copy_from_slice(&build::PEER_MAC);
            expected[6..12].copy_from_slice(&build::LOCAL_MAC);
            assert_eq!(e, &expected, "{mode:?} echo {seq}");
            assert_eq!(verify(e, &classify(e)), Ok(()), "checksums still valid");
        }
        let s = ch.stats();
        assert_eq!(
            (s.tx_packets, s.tx_bytes),
            (50, 50 * udp_to(7, 0).len() as u64)
        );
        assert_eq!(peer.stats().tx_frames, 50);

        // Completions return to the pool on the next poll step.
        let c = nic.census();
        assert_eq!((c.tx, c.completion), (0, 50));
        assert!(c.is_conserved());
        nic.poll_rx(0);
        assert_eq!(nic.census().completion, 0);
        assert_conserved(&nic, 0);
    }
}

#[test]
fn build_into_fresh_frames_and_send_copies() {
    let (nic, peer) = sim(Mode::SoftLrp);
    let ch = nic.channel(Rule::listener(Proto::Udp, None, 9), 8).unwrap();
    let mut f = ch.alloc().expect("free frame");
    let packet = build::udp_v4(server(9), client(1), b"built in place");
    f.copy_from(&packet).unwrap();
    ch.transmit(f).unwrap();
    ch.send(&packet).unwrap();
    assert_eq!(peer.take_tx(), vec![packet.clone(), packet]);
    nic.poll_rx(0);
    assert_conserved(&nic, 0);
}

#[test]
fn full_tx_ring_drops_and_counts() {
    let config = config(Mode::SoftLrp).tx_ring(4).completion_ring(4);
    let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
    let ch = nic.channel(Rule::listener(Proto::Udp, None, 9), 8).unwrap();
    for _ in 0..4 {
        ch.send(b"fits").unwrap();
    }
    assert!(matches!(ch.send(b"dropped"), Err(Error::TxFull)));
    let s = ch.stats();
    assert_eq!((s.tx_packets, s.tx_drops), (4, 1));
    assert_eq!(nic.stats().backend.tx_ring_full, 1);
    assert_conserved(&nic, 0);
    assert_eq!(peer.take_tx().len(), 4);
    // The wire stalls while the completion ring is full: nobody reclaimed yet.
    for _ in 0..4 {
        ch.send(b"second").unwrap();
    }
    assert_eq!(peer.take_tx().len(), 0);
    nic.poll_rx(0);
    assert_eq!(peer.take_tx().len(), 4);
    nic.poll_rx(0);
    assert_conserved(&nic, 0);
}
