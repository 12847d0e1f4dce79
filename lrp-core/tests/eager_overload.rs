//! Under overload the eager baseline spends protocol work on frames it later drops, and a
//! flood against one endpoint costs the others their frames; the LRP path discards the
//! flood before any work and keeps the other endpoint whole. Both runs use the same
//! driver, endpoints, demux and work closure; only `Mode` differs.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use lrp_core::account::DropReason;
use lrp_core::channel::{Endpoints, FrameLen};
use lrp_core::demux::{DefaultAction, Demux, Listener, ListenerKey};
use lrp_core::eager::{Disposition, Fate, Mode, Pipeline, Undelivered};
use lrp_core::flow::{Classification, FlowKey, Offsets, Proto, TcpFlags};

/// A frame as the tests see it: its classification travels with it (standing in for the
/// bytes), `checksum_ok` is what checksum verification would find, and `worked` records
/// whether protocol work ran on it.
#[derive(Debug)]
struct Frame {
    dport: u16,
    class: Classification,
    checksum_ok: bool,
    worked: bool,
}

impl FrameLen for Frame {
    fn frame_len(&self) -> usize {
        100
    }
}

const FLOODED: u16 = 1;
const QUIET: u16 = 2;

fn frame(dport: u16, checksum_ok: bool) -> Frame {
    let key = FlowKey {
        proto: Proto::Udp,
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        sport: 5000,
        dport,
    };
    let class = Classification::Flow {
        key,
        flags: TcpFlags(0),
        offsets: Offsets::default(),
    };
    Frame {
        dport,
        class,
        checksum_ok,
        worked: false,
    }
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    work_runs: u64,
    /// Frames on which work ran and that were then dropped for lack of room.
    wasted_work: u64,
    /// Frames dropped for lack of room that had no work spent on them.
    discarded_before_work: u64,
    delivered: [u64; 2],
    offered: [u64; 2],
    bad_checksum: u64,
}

/// `rounds` rounds of: a burst arrives (`flood` frames for the flooded endpoint with one
/// quiet-endpoint frame after every `flood / quiet` of them), the stack polls with a
/// budget of `poll_budget`, then each application receives up to `app_budget` frames.
fn run(mode: Mode, rounds: usize, flood: usize, quiet: usize) -> Outcome {
    const POLL_BUDGET: usize = 32;
    const APP_BUDGET: usize = 8;
    let mut endpoints: Endpoints<Frame> = Endpoints::new();
    let flooded = endpoints.insert(16);
    let quiet_ep = endpoints.insert(16);
    let mut demux = Demux::new(DefaultAction::Drop);
    demux.insert_listener(
        ListenerKey::any(Proto::Udp, FLOODED),
        Listener::new(flooded.id()),
    );
    demux.insert_listener(
        ListenerKey::any(Proto::Udp, QUIET),
        Listener::new(quiet_ep.id()),
    );
    let pipeline = Pipeline::new(mode, 64);

    let out = Cell::new(Outcome::default());
    let update = |f: &dyn Fn(&mut Outcome)| {
        let mut o = out.take();
        f(&mut o);
        out.set(o);
    };
    // The protocol work: checksum verification and demux (what `wire::verify` +
    // `Demux::lookup` do in lrp-core; smoltcp in lrp-net).
    let work = |f: &mut Frame| {
        update(&|o| o.work_runs += 1);
        assert!(!f.worked, "protocol work ran twice on one frame");
        f.worked = true;
        if !f.checksum_ok {
            return Disposition::Drop(DropReason::BadChecksum);
        }
        Disposition::from_verdict(&f.class, demux.lookup(&f.class))
    };
    let undelivered = |u: Undelivered<Frame>| match u.fate {
        Fate::Drop(DropReason::BadChecksum) => update(&|o| o.bad_checksum += 1),
        Fate::Drop(
            DropReason::SoftDiscard | DropReason::EndpointFull | DropReason::SharedQueueFull,
        ) => {
            if u.frame.worked {
                update(&|o| o.wasted_work += 1)
            } else {
                update(&|o| o.discarded_before_work += 1)
            }
        }
        other => panic!("unexpected fate {other:?}"),
    };
    let deliver = |f: Frame| {
        assert!(f.worked, "delivered without protocol work");
        let i = usize::from(f.dport == QUIET);
        update(&|o| o.delivered[i] += 1);
    };

    let every = flood / quiet;
    for _ in 0..rounds {
        for i in 0..flood {
            // Every 10th flood frame is corrupt: its work ends in a checksum drop.
            let mut burst = vec![frame(FLOODED, i % 10 != 0)];
            if i % every == every - 1 {
                burst.push(frame(QUIET, true));
            }
            for f in burst {
                let idx = usize::from(f.dport == QUIET);
                update(&|o| o.offered[idx] += 1);
                let class = f.class;
                if let Err(u) = pipeline.ingress_classified(&demux, &endpoints, f, &class) {
                    undelivered(u);
                }
            }
        }
        pipeline.poll(&endpoints, POLL_BUDGET, work, undelivered);
        for ep in [&flooded, &quiet_ep] {
            pipeline.receive(ep, APP_BUDGET, work, deliver, undelivered);
        }
    }
    // Drain what is left so that every offered frame is accounted for.
    for _ in 0..100 {
        pipeline.poll(&endpoints, POLL_BUDGET, work, undelivered);
        for ep in [&flooded, &quiet_ep] {
            pipeline.receive(ep, APP_BUDGET, work, deliver, undelivered);
        }
    }
    let o = out.take();
    let total_offered = o.offered[0] + o.offered[1];
    let accounted =
        o.delivered[0] + o.delivered[1] + o.bad_checksum + o.wasted_work + o.discarded_before_work;
    assert_eq!(
        accounted, total_offered,
        "{mode:?}: every frame delivered or dropped once"
    );

    // Cross-check the accounts.
    let fa = flooded.account().snapshot();
    let qa = quiet_ep.account().snapshot();
    let pa = pipeline.account().snapshot();
    assert_eq!(
        fa.rx_packets + qa.rx_packets,
        o.delivered[0] + o.delivered[1]
    );
    let early = fa.drops(DropReason::SoftDiscard) + qa.drops(DropReason::SoftDiscard);
    let late = fa.drops(DropReason::EndpointFull) + qa.drops(DropReason::EndpointFull);
    match mode {
        Mode::Lrp => {
            assert_eq!(early, o.discarded_before_work);
            assert_eq!(late, 0);
            assert_eq!(
                fa.drops(DropReason::BadChecksum),
                o.bad_checksum,
                "charged to the endpoint"
            );
        }
        Mode::Eager => {
            assert_eq!(early, 0);
            assert_eq!(late, o.wasted_work);
            assert_eq!(
                pa.drops(DropReason::SharedQueueFull),
                o.discarded_before_work
            );
            assert_eq!(
                pa.drops(DropReason::BadChecksum),
                o.bad_checksum,
                "nobody to charge"
            );
        }
    }
    o
}

#[test]
fn eager_spends_work_on_frames_it_drops_lrp_does_not() {
    let (rounds, flood, quiet) = (50, 200, 4);
    let eager = run(Mode::Eager, rounds, flood, quiet);
    let lrp = run(Mode::Lrp, rounds, flood, quiet);
    println!("eager: {eager:?}\nlrp:   {lrp:?}");

    // Eager: under overload, protocol work is spent on frames that are dropped afterwards.
    assert!(eager.wasted_work > 0);
    assert_eq!(
        eager.work_runs,
        eager.delivered[0] + eager.delivered[1] + eager.bad_checksum + eager.wasted_work
    );
    // LRP: no frame that was dropped for lack of room ever had work spent on it; work ran
    // exactly for the frames the receivers took.
    assert_eq!(lrp.wasted_work, 0);
    assert_eq!(
        lrp.work_runs,
        lrp.delivered[0] + lrp.delivered[1] + lrp.bad_checksum
    );
    assert!(lrp.discarded_before_work > 0);
    assert!(
        lrp.work_runs < eager.work_runs,
        "LRP does less work for the same offered load ({} vs {})",
        lrp.work_runs,
        eager.work_runs
    );
    // Isolation: the quiet endpoint gets every frame under LRP, loses frames under eager
    // (the flood fills the shared queue in front of it).
    assert_eq!(lrp.offered, eager.offered);
    assert_eq!(lrp.delivered[1], lrp.offered[1]);
    assert!(eager.delivered[1] < eager.offered[1]);
}

#[test]
fn without_overload_both_paths_deliver_everything() {
    // 8 frames per round against poll and app budgets of 32 and 8 per endpoint.
    for mode in [Mode::Eager, Mode::Lrp] {
        let o = run(mode, 20, 8, 2);
        assert_eq!((o.wasted_work, o.discarded_before_work), (0, 0), "{mode:?}");
        assert_eq!(o.delivered[1], o.offered[1], "{mode:?}");
        assert_eq!(o.delivered[0] + o.bad_checksum, o.offered[0], "{mode:?}");
        assert_eq!(o.work_runs, o.offered[0] + o.offered[1], "{mode:?}");
    }
}
