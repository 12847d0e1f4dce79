//! Exact per-channel delivery in every mode: two bound UDP ports and one unbound.

mod sim_common;

use lrp_core::account::DropReason;
use lrp_core::demux::DefaultAction;
use lrp_core::flow::Proto;
use lrp_net::sim::SimConfig;
use lrp_net::{Frame, Mode, Nic, Rule};
use sim_common::{assert_conserved, config, seq_of, sim, udp_to, MODES};

/// The traffic: 10 frames to port 7001, 20 to 7002, 5 to the unbound 7003, interleaved.
fn traffic() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut seq = [0u32; 3];
    for i in 0..35u32 {
        let which = match i % 7 {
            0 | 1 => 0,
            2..=5 => 1,
            _ => 2,
        };
        frames.push(udp_to(7001 + which as u16, seq[which]));
        seq[which] += 1;
    }
    frames
}

fn collect(ch: &lrp_net::Channel) -> Vec<Frame> {
    let mut out = Vec::new();
    while ch.try_recv_batch(16, &mut out) > 0 {}
    out
}

#[test]
fn exact_counts_with_default_pass() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let a = nic
            .channel(Rule::listener(Proto::Udp, None, 7001), 64)
            .unwrap();
        let b = nic
            .channel(Rule::listener(Proto::Udp, None, 7002), 64)
            .unwrap();
        for f in traffic() {
            assert!(peer.inject(&f), "{mode:?}: the NIC has room for all 35");
        }
        nic.poll_rx(256);

        let fa = collect(&a);
        let fb = collect(&b);
        assert_eq!(fa.len(), 10, "{mode:?}");
        assert_eq!(fb.len(), 20, "{mode:?}");
        // In order, intact.
        assert_eq!(
            fa.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            fb.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>()
        );
        assert_eq!(&fa[3][..], &udp_to(7001, 3)[..]);
        // The unbound port went to the host kernel, in order.
        let kernel = peer.take_kernel();
        assert_eq!(
            kernel,
            (0..5).map(|s| udp_to(7003, s)).collect::<Vec<_>>(),
            "{mode:?}"
        );

        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.rx_packets, sb.rx_packets), (10, 20), "{mode:?}");
        assert_eq!(sa.rx_bytes, 10 * udp_to(7001, 0).len() as u64);
        assert_eq!(
            sa.account.total_drops() + sb.account.total_drops(),
            0,
            "{mode:?}"
        );
        let ns = nic.stats();
        assert_eq!(ns.backend.rx_offered, 35);
        assert_eq!(ns.backend.to_kernel, 5);
        assert_eq!(ns.account.total_drops(), 0, "{mode:?}");
        // NI-LRP: the NIC demultiplexed, the poll step took nothing from a shared ring.
        let expect_rx = if mode == Mode::NiLrp { 0 } else { 35 };
        assert_eq!(ns.rx_frames, expect_rx, "{mode:?}");

        assert_conserved(&nic, 30);
        drop((fa, fb));
        assert_conserved(&nic, 0);
    }
}

#[test]
fn exact_counts_with_default_drop() {
    for mode in MODES {
        let config = config(mode).default_action(DefaultAction::Drop);
        let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
        let a = nic
            .channel(Rule::listener(Proto::Udp, None, 7001), 64)
            .unwrap();
        let b = nic
            .channel(Rule::listener(Proto::Udp, None, 7002), 64)
            .unwrap();
        let accepted = traffic().iter().filter(|f| peer.inject(f)).count();
        nic.poll_rx(256);
        assert_eq!((collect(&a).len(), collect(&b).len()), (10, 20), "{mode:?}");
        assert!(peer.take_kernel().is_empty());
        let ns = nic.stats();
        if mode == Mode::NiLrp {
            // The XDP program drops unmatched frames before they use a buffer.
            assert_eq!(accepted, 30);
            assert_eq!(ns.backend.xdp_drop_unmatched, 5);
        } else {
            assert_eq!(accepted, 35);
            assert_eq!(ns.account.drops(DropReason::NoEndpoint), 5, "{mode:?}");
        }
        assert_conserved(&nic, 0);
    }
}

#[test]
fn exact_rule_beats_listener_and_host_rule_takes_arp_and_icmp() {
    use lrp_core::flow::FlowKey;
    use lrp_net::sim::build;
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let listener = nic
            .channel(Rule::listener(Proto::Udp, None, 7001), 64)
            .unwrap();
        let key = FlowKey {
            proto: Proto::Udp,
            src: sim_common::client(40000).ip().to_owned().into(),
            dst: sim_common::server(7001).ip().to_owned().into(),
            sport: 40000,
            dport: 7001,
        };
        let flow = nic.channel(Rule::exact(key), 64).unwrap();
        let host = nic
            .channel(Rule::host(sim_common::server(0).ip().to_owned().into()), 8)
            .unwrap();

        peer.inject(&udp_to(7001, 1)); // the exact flow
        peer.inject(&build::udp_v4(
            sim_common::client(40001),
            sim_common::server(7001),
            b"x",
        ));
        peer.inject(&build::arp_request(
            *sim_common::client(0).ip(),
            *sim_common::server(0).ip(),
        ));
        peer.inject(&build::icmp_echo_v4(
            *sim_common::client(0).ip(),
            *sim_common::server(0).ip(),
            1,
            1,
            b"",
        ));
        nic.poll_rx(64);
        assert_eq!(
            (
                collect(&flow).len(),
                collect(&listener).len(),
                collect(&host).len()
            ),
            (1, 1, 2),
            "{mode:?}"
        );
        assert_conserved(&nic, 0);
    }
}
