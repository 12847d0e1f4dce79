//! UDP through the stack on the simulated NIC, in all three modes: echo, bad input,
//! non-blocking and timeouts, early discard, CPU accounting, ARP and ICMP.

mod stack_support;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lrp_core::account::DropReason;
use lrp_net::sim::build;
use lrp_net::{EthernetAddress, Mode};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, UdpPacket,
};
use stack_support::*;

/// The UDP payload and the destination of a frame the stack sent, if it is UDP.
fn udp_of(frame: &[u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    assert!(ip.verify_checksum(), "stack sent a bad IPv4 checksum");
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    assert!(
        udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()),
        "stack sent a bad UDP checksum"
    );
    let src = SocketAddr::new(ip.src_addr().into(), udp.src_port());
    let dst = SocketAddr::new(ip.dst_addr().into(), udp.dst_port());
    Some((src, dst, udp.payload().to_vec()))
}

#[test]
fn udp_echo_in_every_mode() {
    for mode in MODES {
        let (stack, peer) = stack(mode);
        let sock = stack.udp_bind("10.0.0.2:7".parse().unwrap(), 128).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..100 {
                let (n, from) = sock.recv_from(&mut buf).unwrap();
                sock.send_to(&buf[..n], from).unwrap();
            }
            sock
        });
        let client = sa(PEER_IP, 40000);
        let mut echoed = Vec::new();
        for i in 0..100u32 {
            let payload = format!("datagram {i} {mode:?}");
            assert!(peer.inject(&build::udp_v4(client, sa(STACK_IP, 7), payload.as_bytes())));
            // Ping-pong: wait for the echo before the next request.
            let got = wait_until(Duration::from_secs(5), || {
                for f in peer.take_tx() {
                    if let Some((src, dst, data)) = udp_of(&f) {
                        assert_eq!(src, "10.0.0.2:7".parse().unwrap());
                        assert_eq!(dst, SocketAddr::V4(client));
                        echoed.push(data);
                    }
                }
                echoed.len() > i as usize
            });
            assert!(got, "{mode:?}: no echo for datagram {i}");
            assert_eq!(echoed[i as usize], payload.as_bytes(), "{mode:?}");
        }
        let sock = server.join().unwrap();
        let s = sock.stats();
        assert_eq!(s.rx_packets, 100, "{mode:?}: {s:?}");
        assert_eq!(s.delivered, 100, "{mode:?}");
        assert_eq!(s.tx_packets, 100, "{mode:?}");
        assert_eq!(
            s.early_discards + s.endpoint_full_drops + s.bad_checksum,
            0,
            "{mode:?}"
        );
        if mode == Mode::Eager {
            // The eager poll thread did the receive processing: charged to it, not to the
            // socket (which pays only for its sends).
            assert!(stack.eager_stats().cpu_ns > 0, "{mode:?}");
        } else {
            assert!(
                s.cpu_ns > 0,
                "{mode:?}: receive processing charged to the socket"
            );
            assert_eq!(stack.eager_stats().cpu_ns, 0);
        }
    }
}

#[test]
fn bad_checksums_and_truncated_frames_are_counted_and_skipped() {
    for mode in MODES {
        let (stack, peer) = stack(mode);
        let sock = stack.udp_bind("0.0.0.0:9000".parse().unwrap(), 64).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let from = sa(PEER_IP, 5555);
        let to = sa(STACK_IP, 9000);
        let mut bad = build::udp_v4(from, to, b"corrupted payload");
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // UDP checksum no longer verifies
        let mut bad_ip = build::udp_v4(from, to, b"bad ip header");
        bad_ip[14 + 8] ^= 1; // TTL changed: IPv4 header checksum fails
        let good = build::udp_v4(from, to, b"good");
        assert!(peer.inject(&bad));
        assert!(peer.inject(&bad_ip));
        assert!(peer.inject(&good));
        let mut buf = [0u8; 64];
        let (n, src) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"good", "{mode:?}");
        assert_eq!(src, SocketAddr::V4(from));
        let s = sock.stats();
        if mode == Mode::Eager {
            // The NIC's eager step verified (and dropped) them before the socket.
            let nic = stack.nic().stats();
            assert_eq!(nic.account.drops(DropReason::BadChecksum), 2, "{mode:?}");
        } else {
            assert_eq!(s.bad_checksum, 2, "{mode:?}: {s:?}");
            assert_eq!(s.drops(DropReason::BadChecksum), 2);
        }
        // A truncated frame never reaches the socket (the demux drops malformed frames).
        let mut short = build::udp_v4(from, to, b"will be cut");
        short.truncate(14 + 20 + 4);
        peer.inject(&short);
        assert!(peer.inject(&build::udp_v4(from, to, b"after")));
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after", "{mode:?}");
        assert_eq!(sock.stats().delivered, 2);
    }
}

#[test]
fn nonblocking_and_timeouts() {
    let (stack, peer) = stack(Mode::SoftLrp);
    let sock = stack.udp_bind("10.0.0.2:53".parse().unwrap(), 16).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        sock.try_recv_from(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    sock.set_nonblocking(true).unwrap();
    assert_eq!(
        sock.recv_from(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    assert_eq!(
        sock.recv_from(&mut buf).unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
    assert!(sock.set_read_timeout(Some(Duration::ZERO)).is_err());
    // A datagram longer than the buffer is truncated, the rest discarded.
    peer.inject(&build::udp_v4(sa(PEER_IP, 1), sa(STACK_IP, 53), &[7u8; 40]));
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(n, 16);
    // Binding the same port again fails; another address is refused.
    assert!(stack.udp_bind("10.0.0.2:53".parse().unwrap(), 16).is_err());
    assert!(stack.udp_bind("10.0.0.9:54".parse().unwrap(), 16).is_err());
    let eph = stack.udp_bind("0.0.0.0:0".parse().unwrap(), 16).unwrap();
    assert!(eph.local_addr().unwrap().port() >= 49152);
    // Too large for one frame (no fragmentation).
    assert_eq!(
        sock.send_to(&[0u8; 1500], "10.0.0.1:1".parse().unwrap())
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn a_flood_is_discarded_early_at_its_own_channel_and_costs_only_its_receiver() {
    for mode in [Mode::NiLrp, Mode::SoftLrp] {
        let (stack, peer) = stack(mode);
        let flooded = stack
            .udp_bind("10.0.0.2:1000".parse().unwrap(), 64)
            .unwrap();
        let quiet = stack
            .udp_bind("10.0.0.2:2000".parse().unwrap(), 64)
            .unwrap();
        let frame = build::udp_v4(sa(PEER_IP, 1), sa(STACK_IP, 1000), &[0u8; 512]);
        let mut accepted = 0;
        for _ in 0..1000 {
            if peer.inject(&frame) {
                accepted += 1;
            }
            if accepted % 200 == 0 {
                stack.nic().poll_rx(4096); // the demux step, as a NIC poll thread would
            }
        }
        stack.nic().poll_rx(4096);
        for i in 0..10u8 {
            assert!(peer.inject(&build::udp_v4(sa(PEER_IP, 2), sa(STACK_IP, 2000), &[i])));
        }
        // Nobody has read anything yet: no protocol work was done, and the flood's excess
        // is already discarded at the flooded channel, before any processing.
        let f = flooded.stats();
        assert_eq!(f.cpu_ns, 0, "{mode:?}");
        assert!(f.early_discards >= 900, "{mode:?}: {f:?}");
        // SOFT-LRP fills the channel; NI-LRP's gate closes at 3/4 of the ring.
        let queued = f.queued;
        assert_eq!(
            queued,
            if mode == Mode::NiLrp { 48 } else { 64 },
            "{mode:?}"
        );
        if mode == Mode::NiLrp {
            assert!(
                f.drops(DropReason::Gate) > 0,
                "{mode:?}: dropped at the gate, before the copy"
            );
        }
        // The quiet socket gets all of its datagrams, and pays only for them.
        let mut buf = [0u8; 1024];
        for i in 0..10u8 {
            let (n, _) = quiet.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i]);
        }
        let q = quiet.stats();
        assert_eq!((q.rx_packets, q.early_discards), (10, 0), "{mode:?}");
        // Draining the flood is charged to the flooded socket.
        flooded.set_nonblocking(true).unwrap();
        let mut got = 0;
        while flooded.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        assert_eq!(got, queued, "{mode:?}");
        let f = flooded.stats();
        assert!(f.cpu_ns > 0, "{mode:?}");
        assert_eq!(f.rx_packets, queued as u64, "{mode:?}");
        drop(frame);
    }
}

#[test]
fn eager_mode_processes_the_flood_at_poll_time_and_drops_late() {
    let (stack, peer) = stack_with(Mode::Eager, |c| {
        c.eager_driver(lrp_net::stack::EagerDriver::Callers)
            .control_thread(false)
    });
    let flooded = stack
        .udp_bind("10.0.0.2:1000".parse().unwrap(), 64)
        .unwrap();
    let quiet = stack
        .udp_bind("10.0.0.2:2000".parse().unwrap(), 64)
        .unwrap();
    let frame = build::udp_v4(sa(PEER_IP, 1), sa(STACK_IP, 1000), &[0u8; 512]);
    for round in 0..10 {
        for _ in 0..100 {
            peer.inject(&frame);
        }
        // The shared poll step: protocol work for every frame, before anyone reads.
        let n = stack.poll_eager();
        assert!(n > 0, "round {round}");
    }
    assert!(peer.inject(&build::udp_v4(sa(PEER_IP, 2), sa(STACK_IP, 2000), b"hi")));
    stack.poll_eager();
    let f = flooded.stats();
    // The work was spent on every frame, and the excess dropped after it, at the socket.
    assert!(f.endpoint_full_drops >= 900, "{f:?}");
    assert_eq!(f.cpu_ns, 0, "the flooded socket itself did no processing");
    assert!(stack.eager_stats().cpu_ns > 0);
    // With the Callers driver, a receive that runs the shared step pays for everybody.
    let mut buf = [0u8; 16];
    let (n, _) = quiet.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    for _ in 0..100 {
        peer.inject(&frame);
    }
    quiet
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    assert!(quiet.recv_from(&mut buf).is_err());
    let q = quiet.stats();
    assert!(
        q.cpu_ns > 0,
        "the quiet socket was billed for the flood's processing: {q:?}"
    );
    assert_eq!(q.rx_packets, 1);
}

#[test]
fn arp_and_icmp_are_answered_on_the_host_channel() {
    for mode in MODES {
        let (stack, peer) = stack(mode);
        assert!(peer.inject(&build::arp_request(PEER_IP, STACK_IP)));
        let mut reply = None;
        assert!(wait_until(Duration::from_secs(5), || {
            for f in peer.take_tx() {
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                if eth.ethertype() == EthernetProtocol::Arp {
                    let arp =
                        ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
                    reply = Some(arp);
                }
            }
            reply.is_some()
        }));
        let Some(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) = reply
        else {
            unreachable!()
        };
        assert_eq!(operation, ArpOperation::Reply, "{mode:?}");
        assert_eq!(source_hardware_addr.0, build::LOCAL_MAC);
        assert_eq!(source_protocol_addr, STACK_IP);
        assert_eq!(
            stack.neighbors(),
            vec![(PEER_IP, EthernetAddress(build::PEER_MAC))],
            "{mode:?}"
        );

        assert!(peer.inject(&build::icmp_echo_v4(PEER_IP, STACK_IP, 0x1234, 7, b"ping")));
        let mut echo = None;
        assert!(wait_until(Duration::from_secs(5), || {
            for f in peer.take_tx() {
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    continue;
                };
                if ip.next_header() == IpProtocol::Icmp {
                    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
                    assert!(icmp.verify_checksum());
                    if let Ok(Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    }) = Icmpv4Repr::parse(&icmp, &Default::default())
                    {
                        echo = Some((ident, seq_no, data.to_vec()));
                    }
                }
            }
            echo.is_some()
        }));
        assert_eq!(echo, Some((0x1234, 7, b"ping".to_vec())), "{mode:?}");
        let c = stack.control_stats();
        assert_eq!(c.rx_packets, 2, "{mode:?}");
    }
}

#[test]
fn udp_to_a_closed_port_gets_an_icmp_port_unreachable() {
    for mode in MODES {
        let (stack, peer) = stack(mode);
        let _open = stack.udp_bind("10.0.0.2:9000".parse().unwrap(), 8).unwrap();
        let from = sa(PEER_IP, 5555);
        let probe = build::udp_v4(from, sa(STACK_IP, 9001), b"anyone there?");
        assert!(peer.inject(&probe));
        let mut unreachable = None;
        assert!(
            wait_until(Duration::from_secs(5), || {
                for f in peer.take_tx() {
                    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                        continue;
                    };
                    if ip.next_header() != IpProtocol::Icmp {
                        continue;
                    }
                    assert_eq!(ip.dst_addr(), PEER_IP);
                    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
                    assert!(icmp.verify_checksum());
                    unreachable = Some((icmp.msg_type(), icmp.msg_code(), icmp.data().to_vec()));
                }
                unreachable.is_some()
            }),
            "{mode:?}: no ICMP error"
        );
        let (ty, code, data) = unreachable.unwrap();
        assert_eq!(
            (ty, code),
            (
                smoltcp::wire::Icmpv4Message::DstUnreachable,
                smoltcp::wire::Icmpv4DstUnreachable::PortUnreachable.into()
            ),
            "{mode:?}"
        );
        // The error quotes the offending IP header and the start of its payload.
        assert_eq!(&data[..28], &probe[14..14 + 28], "{mode:?}");
        assert!(peer.take_kernel().is_empty(), "{mode:?}");
        assert_eq!(stack.control_stats().rx_packets, 1, "{mode:?}");
    }
}

#[test]
fn stack_config_is_validated() {
    use lrp_net::sim::SimConfig;
    use lrp_net::stack::{Stack, StackConfig};
    let nic = || {
        lrp_net::Nic::sim(SimConfig::new(nic_config(Mode::SoftLrp)))
            .unwrap()
            .0
    };
    let ip = STACK_IP;
    // Without a MAC the stack takes the interface's.
    let s = Stack::new(nic(), StackConfig::new(ip, 24)).unwrap();
    assert_eq!(s.mac(), EthernetAddress(build::LOCAL_MAC));
    assert_eq!(s.mac(), s.nic().mac());
    drop(s);
    assert!(
        Stack::new(
            nic(),
            StackConfig::new(ip, 24).mac(EthernetAddress([1, 0, 0, 0, 0, 1]))
        )
        .is_err(),
        "multicast MAC"
    );
    assert!(Stack::new(nic(), StackConfig::new(ip, 0)).is_err());
    assert!(Stack::new(nic(), StackConfig::new(ip, 33)).is_err());
    assert!(Stack::new(nic(), StackConfig::new("0.0.0.0".parse().unwrap(), 24)).is_err());
    assert!(Stack::new(
        nic(),
        StackConfig::new(ip, 24).gateway("192.168.0.1".parse().unwrap())
    )
    .is_err());
    assert!(Stack::new(nic(), StackConfig::new(ip, 24).mtu(9000)).is_err());
    let s = Stack::new(nic(), StackConfig::new(ip, 24)).unwrap();
    assert_eq!(s.mtu(), 1500);
    // Two stacks on one address of one NIC would fight over the host rule.
    assert!(Stack::new(s.nic().clone(), StackConfig::new(ip, 24)).is_err());
}
