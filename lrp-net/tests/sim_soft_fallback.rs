//! NI-LRP with more exact channels than NIC slots ([`NicConfig::ni_slots`]): the channels
//! beyond the slots are soft channels, fed from the ring of the listener that claims
//! their frames in the NIC. Each channel receives exactly its own flow, in order; the
//! listener keeps its own frames, in order, whoever moved the soft channels' frames out
//! of its ring; the census stays conserved.

mod sim_common;

use std::time::Duration;

use lrp_core::flow::{FlowKey, Proto};
use lrp_net::sim::{build, SimConfig, SimPeer};
use lrp_net::{Channel, Error, Frame, Mode, Nic, Rule};
use sim_common::{assert_conserved, client, config, seq_of, server};

const PORT: u16 = 9000;
const SLOTS: u32 = 4;

fn ni_sim(slots: u32) -> (Nic, SimPeer) {
    let config = config(Mode::NiLrp).frame_count(2048).ni_slots(slots);
    Nic::sim(SimConfig::new(config)).expect("sim NIC")
}

/// The flow from client port `sport` to the listener.
fn flow(sport: u16) -> FlowKey {
    FlowKey {
        proto: Proto::Udp,
        src: (*client(sport).ip()).into(),
        dst: (*server(PORT).ip()).into(),
        sport,
        dport: PORT,
    }
}

fn datagram(sport: u16, seq: u32) -> Vec<u8> {
    build::udp_v4(client(sport), server(PORT), &seq.to_be_bytes())
}

fn source_port(frame: &Frame) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

/// Every frame from `ch`, checking that it is from `sport` and in sequence from 0.
#[track_caller]
fn expect_flow(ch: &Channel, sport: u16, count: u32) {
    let mut got = Vec::new();
    for _ in 0..64 {
        if ch.try_recv_batch(16, &mut got) == 0 && got.len() >= count as usize {
            break;
        }
    }
    assert!(
        got.iter().all(|f| source_port(f) == sport),
        "channel {:?} got another flow's frames",
        ch.id()
    );
    assert_eq!(
        got.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
        (0..count).collect::<Vec<_>>(),
        "channel {:?} (soft: {})",
        ch.id(),
        ch.is_soft()
    );
}

/// A listener (slot 0) and `flows` exact channels: slots 1..SLOTS, then soft channels.
fn listener_and_flows(nic: &Nic, flows: u16) -> (Channel, Vec<Channel>) {
    let listener = nic
        .channel(Rule::listener(Proto::Udp, None, PORT), 256)
        .unwrap();
    let exact: Vec<Channel> = (0..flows)
        .map(|i| nic.channel(Rule::exact(flow(5000 + i)), 64).unwrap())
        .collect();
    (listener, exact)
}

/// `per_flow` datagrams of every flow, interleaved, and as many from an unclaimed port
/// (7777) that stay with the listener.
fn inject_interleaved(peer: &SimPeer, flows: u16, per_flow: u32) {
    for seq in 0..per_flow {
        for i in 0..flows {
            assert!(peer.inject(&datagram(5000 + i, seq)));
        }
        assert!(peer.inject(&datagram(7777, seq)));
    }
}

#[test]
fn channels_beyond_the_slots_are_soft_and_receive_exactly_their_flow() {
    const FLOWS: u16 = 8;
    const N: u32 = 12;
    let (nic, peer) = ni_sim(SLOTS);
    let (listener, exact) = listener_and_flows(&nic, FLOWS);
    assert!(!listener.is_soft());
    let soft: Vec<bool> = exact.iter().map(Channel::is_soft).collect();
    // Slot 0 is the listener's: three more NI channels, then soft ones.
    assert_eq!(soft, [false, false, false, true, true, true, true, true]);
    assert!(exact.iter().all(|c| c.stats().soft == c.is_soft()));

    inject_interleaved(&peer, FLOWS, N);
    // The soft channels first: their own receive calls move their frames out of the
    // listener's ring (the listener is not read yet) and stash the listener's.
    for (i, ch) in exact.iter().enumerate().rev() {
        expect_flow(ch, 5000 + i as u16, N);
    }
    assert_eq!(
        listener.len(),
        N as usize,
        "the listener's own frames, stashed"
    );
    expect_flow(&listener, 7777, N);
    for ch in &exact {
        let s = ch.stats();
        assert_eq!(s.rx_packets, u64::from(N), "{s:?}");
        assert_eq!(s.soft_discards, 0, "{s:?}");
    }
    assert_eq!(listener.stats().rx_packets, u64::from(N));
    assert_conserved(&nic, 0);
}

#[test]
fn the_listeners_receiver_moves_soft_frames_and_keeps_its_own_in_order() {
    const FLOWS: u16 = 6;
    const N: u32 = 10;
    let (nic, peer) = ni_sim(SLOTS);
    let (listener, exact) = listener_and_flows(&nic, FLOWS);
    inject_interleaved(&peer, FLOWS, N);
    // Read the listener first: it gets only its own frames, the soft channels' frames are
    // moved to them on the way.
    expect_flow(&listener, 7777, N);
    for (i, ch) in exact.iter().enumerate() {
        if ch.is_soft() {
            assert_eq!(ch.len(), N as usize, "moved by the listener's receive");
        }
        expect_flow(ch, 5000 + i as u16, N);
    }
    assert_conserved(&nic, 0);
}

#[test]
fn a_full_soft_channel_discards_early_and_loses_no_frame() {
    let (nic, peer) = ni_sim(2);
    let listener = nic
        .channel(Rule::listener(Proto::Udp, None, PORT), 64)
        .unwrap();
    let ni = nic.channel(Rule::exact(flow(5000)), 8).unwrap();
    let soft = nic.channel(Rule::exact(flow(5001)), 4).unwrap();
    assert!(!ni.is_soft() && soft.is_soft());
    for seq in 0..10 {
        assert!(peer.inject(&datagram(5001, seq)));
    }
    let mut held = Vec::new();
    while listener.try_recv_batch(16, &mut held) > 0 {}
    assert!(
        held.is_empty(),
        "the soft flow's frames are not the listener's"
    );
    let s = soft.stats();
    assert_eq!((s.queued, s.capacity, s.soft_discards), (4, 4, 6), "{s:?}");
    assert_eq!(s.gate_drops, 0, "a soft channel has no gate in the NIC");
    expect_flow(&soft, 5001, 4);
    assert_conserved(&nic, 0);

    // Closing the soft channel sends its flow back to the listener.
    drop(soft);
    assert!(peer.inject(&datagram(5001, 0)));
    let f = listener
        .try_recv()
        .expect("the flow falls back to the listener");
    assert_eq!(source_port(&f), 5001);
    drop(f);
    assert_conserved(&nic, 0);
}

#[test]
fn only_exact_rules_a_listener_claims_fall_back() {
    let (nic, _peer) = ni_sim(2);
    let listener = nic
        .channel(Rule::listener(Proto::Udp, None, PORT), 64)
        .unwrap();
    let _ni = nic.channel(Rule::exact(flow(5000)), 8).unwrap();
    // No slot, not an exact rule: refused.
    assert!(matches!(
        nic.channel(Rule::listener(Proto::Udp, None, PORT + 1), 8),
        Err(Error::NoChannelSlot(_))
    ));
    // No slot, and no NIC rule would bring the flow's frames anywhere: refused.
    let stray = FlowKey {
        dport: PORT + 1,
        ..flow(5001)
    };
    assert!(matches!(
        nic.channel(Rule::exact(stray), 8),
        Err(Error::NoChannelSlot(_))
    ));
    // A soft channel takes further exact rules, nothing else.
    let soft = nic.channel(Rule::exact(flow(5001)), 8).unwrap();
    assert!(soft.is_soft());
    soft.add_rule(Rule::exact(flow(5002))).unwrap();
    assert!(matches!(
        soft.add_rule(Rule::listener(Proto::Udp, None, PORT + 2)),
        Err(Error::InvalidRule { .. })
    ));
    // A freed slot goes to the next channel.
    drop(listener);
    let again = nic
        .channel(Rule::listener(Proto::Udp, None, PORT), 64)
        .unwrap();
    assert!(!again.is_soft());
    assert_conserved(&nic, 0);
}

#[test]
fn a_waiting_soft_channel_wakes_up_by_itself() {
    let (nic, peer) = ni_sim(2);
    let listener = nic
        .channel(Rule::listener(Proto::Udp, None, PORT), 64)
        .unwrap();
    let _ni = nic.channel(Rule::exact(flow(5000)), 8).unwrap();
    let soft = nic.channel(Rule::exact(flow(5001)), 8).unwrap();
    assert!(soft.is_soft());
    assert!(!soft.wait(Some(Duration::from_millis(5))).unwrap());
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        peer.inject(&datagram(5001, 0))
    });
    // Nobody reads the listener: the soft channel's wait runs the step that moves it.
    assert!(soft.wait(Some(Duration::from_secs(10))).unwrap());
    assert!(sender.join().unwrap());
    expect_flow(&soft, 5001, 1);
    assert!(listener.try_recv().is_none());
    assert_conserved(&nic, 0);
}

#[test]
fn ni_slots_are_validated() {
    for bad in [0, 1, 1025] {
        let config = config(Mode::NiLrp).ni_slots(bad);
        assert!(
            matches!(
                Nic::sim(SimConfig::new(config)),
                Err(Error::InvalidConfig(_))
            ),
            "{bad}"
        );
    }
    let config = config(Mode::NiLrp).ni_slots(1024);
    assert_eq!(config.ni_slots, 1024);
    assert!(Nic::sim(SimConfig::new(config)).is_ok());
}
