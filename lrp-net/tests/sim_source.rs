//! Source rules on the simulated NIC, in every mode: a channel with `Rule::source` receives
//! a real server's replies (an LVS director's NAT replies, addressed to clients it cannot
//! enumerate), in order; a local listener keeps frames addressed to it; other ports of the
//! server take the default action. In NI-LRP a source channel also feeds soft channels.

mod sim_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use lrp_core::flow::{FlowKey, Proto};
use lrp_net::sim::{build, SimConfig};
use lrp_net::{Channel, Error, Frame, Mode, Nic, Rule, SourceKey};
use sim_common::{assert_conserved, config, seq_of, server, sim, MODES};

const RS: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const RS_PORT: u16 = 8080;

fn real_server(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(RS, port)
}

/// Client `i`: a different address and port each time.
fn client(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(203, 0, 113, (i % 200) as u8 + 1),
        1024 + (i * 7919 % 64000) as u16,
    )
}

fn collect(ch: &Channel) -> Vec<Frame> {
    let mut out = Vec::new();
    while ch.try_recv_batch(16, &mut out) > 0 {}
    out
}

fn dst_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[36], frame[37]])
}

#[test]
fn source_channel_receives_a_real_servers_replies_in_every_mode() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let udp_replies = nic
            .channel(Rule::source(Proto::Udp, RS.into(), RS_PORT), 64)
            .unwrap();
        let tcp_replies = nic
            .channel(Rule::source(Proto::Tcp, RS.into(), RS_PORT), 64)
            .unwrap();
        // A local listener on the director's own address.
        let listener = nic
            .channel(
                Rule::listener(Proto::Udp, IpAddr::V4(*server(0).ip()), 9000),
                64,
            )
            .unwrap();
        for i in 0..20u32 {
            // Replies to 20 different clients, interleaved with TCP replies, traffic from
            // another port of the same server and from another server.
            peer.inject(&build::udp_v4(
                real_server(RS_PORT),
                client(i),
                &i.to_be_bytes(),
            ));
            if i % 2 == 0 {
                peer.inject(&build::tcp_v4(
                    real_server(RS_PORT),
                    client(i),
                    0x10,
                    &(i / 2).to_be_bytes(),
                ));
            }
            if i % 5 == 0 {
                peer.inject(&build::udp_v4(real_server(RS_PORT + 1), client(i), b"x"));
                peer.inject(&build::udp_v4(
                    SocketAddrV4::new([192, 168, 1, 11].into(), RS_PORT),
                    client(i),
                    b"y",
                ));
            }
        }
        // From the real server's service endpoint, but addressed to the local listener:
        // the listener's.
        peer.inject(&build::udp_v4(
            real_server(RS_PORT),
            server(9000),
            &99u32.to_be_bytes(),
        ));
        nic.poll_rx(256);

        let u = collect(&udp_replies);
        assert_eq!(
            u.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>(),
            "{mode:?}: every UDP reply, in order"
        );
        assert_eq!(
            u.iter().map(|f| dst_port(f)).collect::<Vec<_>>(),
            (0..20).map(|i| client(i).port()).collect::<Vec<_>>(),
            "{mode:?}"
        );
        assert_eq!(collect(&tcp_replies).len(), 10, "{mode:?}");
        let l = collect(&listener);
        assert_eq!(l.len(), 1, "{mode:?}");
        assert_eq!(seq_of(&l[0]), 99);
        // Other ports and servers: the default action (pass to the kernel).
        assert_eq!(peer.take_kernel().len(), 8, "{mode:?}");
        assert_eq!(udp_replies.stats().rx_packets, 20, "{mode:?}");
        assert_eq!(nic.stats().account.total_drops(), 0, "{mode:?}");
        drop((u, l));
        assert_conserved(&nic, 0);

        // The rule is owned by one channel, and can be moved.
        let rule = Rule::source(Proto::Udp, RS.into(), RS_PORT);
        assert_eq!(rule.to_string(), "source udp 192.168.1.10:8080");
        assert_eq!(
            rule,
            Rule::Source(SourceKey::new(Proto::Udp, RS.into(), RS_PORT))
        );
        assert!(matches!(
            nic.channel(rule, 8),
            Err(Error::RuleInUse(r)) if r == rule
        ));
        assert!(udp_replies.remove_rule(&rule));
        assert!(!udp_replies.remove_rule(&rule));
        peer.inject(&build::udp_v4(real_server(RS_PORT), client(1), b"z"));
        nic.poll_rx(16);
        assert!(collect(&udp_replies).is_empty(), "{mode:?}");
        assert_eq!(peer.take_kernel().len(), 1, "{mode:?}: rule removed");
        tcp_replies.add_rule(rule).unwrap();
        peer.inject(&build::udp_v4(real_server(RS_PORT), client(2), b"z"));
        nic.poll_rx(16);
        assert_eq!(collect(&tcp_replies).len(), 1, "{mode:?}");
        drop(tcp_replies);
        peer.inject(&build::udp_v4(real_server(RS_PORT), client(3), b"z"));
        nic.poll_rx(16);
        assert_eq!(peer.take_kernel().len(), 1, "{mode:?}: channel closed");
        assert_conserved(&nic, 0);
    }
}

/// NI-LRP without a slot left: an exact channel for one client's replies is soft, fed
/// from the source channel's ring (the source rule claims its frames in the NIC).
#[test]
fn source_channel_feeds_a_soft_channel_in_ni_lrp() {
    let (nic, peer) = Nic::sim(SimConfig::new(config(Mode::NiLrp).ni_slots(2))).unwrap();
    let replies = nic
        .channel(Rule::source(Proto::Udp, RS.into(), RS_PORT), 64)
        .unwrap();
    // The other slot.
    let _dns = nic
        .channel(Rule::listener(Proto::Udp, None, 53), 8)
        .unwrap();
    let key = FlowKey {
        proto: Proto::Udp,
        src: RS.into(),
        dst: (*client(7).ip()).into(),
        sport: RS_PORT,
        dport: client(7).port(),
    };
    let one = nic.channel(Rule::exact(key), 64).unwrap();
    assert!(one.is_soft());
    // Nothing claims another client's flow from another server in the NIC: no soft channel.
    let unclaimed = FlowKey {
        src: [192, 168, 1, 11].into(),
        ..key
    };
    assert!(matches!(
        nic.channel(Rule::exact(unclaimed), 64),
        Err(Error::NoChannelSlot(_))
    ));
    for i in 0..10u32 {
        peer.inject(&build::udp_v4(
            real_server(RS_PORT),
            client(i % 2 + 6),
            &i.to_be_bytes(),
        ));
    }
    // The soft channel's own receive runs the poll step that moves its frames out of the
    // source channel's ring.
    let mut mine = Vec::new();
    for _ in 0..16 {
        one.try_recv_batch(16, &mut mine);
    }
    let rest = collect(&replies);
    assert_eq!(
        mine.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9]
    );
    assert_eq!(
        rest.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
        vec![0, 2, 4, 6, 8]
    );
    drop((mine, rest));
    assert_conserved(&nic, 0);
}
