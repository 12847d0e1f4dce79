//! The eager baseline (4.4BSD-like) and the LRP receive path, behind one interface.
//!
//! Both paths deliver into the same [`Endpoints`] registry — the same [`NiChannel`]s and
//! [`Account`]s — and take the same protocol-processing closure, so a benchmark or an
//! experiment compares them by changing one argument ([`Mode`] in [`Pipeline::new`]).
//!
//! ```text
//!  LRP (SOFT-LRP): demux first, work later, on the receiver's thread
//!
//!  frame ─► classify + demux ─┬─► NiChannel A ─► A.receive(): protocol work ─► app A
//!           (cheap, O(1))     │    full? discard early: no work was spent
//!                             └─► NiChannel B ─► B.receive(): protocol work ─► app B
//!
//!  Eager (4.4BSD): work first, for everybody, then demux and maybe drop
//!
//!  frame ─► shared input queue ─► poll(): protocol work ─► endpoint queue A ─► app A
//!           full? drop (nobody    (every frame, at         full? drop: the work
//!           to blame)             poll priority)           was already spent
//!                                                   └───► endpoint queue B ─► app B
//! ```
//!
//! Under overload the eager path spends its CPU on protocol work for frames that it then
//! drops at a full endpoint queue ([`DropReason::EndpointFull`]): receive livelock. One
//! flooded endpoint also fills the shared queue and starves the others. The LRP path
//! discards a flooded endpoint's excess at its own channel ([`DropReason::SoftDiscard`])
//! for the price of a classification and a lookup, and each receiver does (and is charged
//! for) the protocol work of its own frames only.
//!
//! The protocol work is the caller's closure `work(&mut T) -> Disposition`. In lrp-core's
//! tests it stands in as classification, checksum verification and a demux lookup;
//! `lrp-net` plugs in smoltcp. The eager path runs it in [`Pipeline::poll`] on every
//! frame; the LRP path runs it in [`Pipeline::receive`] on the frames that were admitted
//! to the endpoint's channel. The same closure works for both: on the LRP path the
//! channel named by [`Disposition::Deliver`] is ignored (the frame was demultiplexed on
//! arrival).
//!
//! Accounting: `rx` counts frames that passed protocol processing into an endpoint;
//! drops are counted on the endpoint when the pipeline knows it, otherwise on the
//! pipeline's own [`Account`] (malformed frames, frames nobody claims, a full shared
//! queue, and in eager mode every drop decided by the protocol work, since eager
//! processing happens before the endpoint is known). CPU time is charged by the caller,
//! who measures [`Pipeline::receive`] (charge the endpoint) or [`Pipeline::poll`] (the
//! eager path cannot tell whom that time was for; charge the pipeline).

use crate::account::{Account, DropReason};
use crate::channel::{ChannelCounters, Endpoint, Endpoints, FrameLen, NiChannel};
use crate::demux::{ChannelId, Demux, Verdict};
use crate::flow::{self, Classification};

/// Which receive path a [`Pipeline`] implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Lazy receiver processing: early demux and discard, protocol work by the receiver.
    Lrp,
    /// The conventional baseline: shared queue, protocol work first, late drop.
    Eager,
}

/// What protocol processing (or a demux lookup) decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The frame belongs to this endpoint.
    Deliver(ChannelId),
    /// Not ours: hand it to the host kernel.
    Pass,
    /// Drop it, for this reason.
    Drop(DropReason),
}

impl Disposition {
    /// The disposition of a demux verdict: a dropped malformed frame is
    /// [`DropReason::Malformed`], any other drop [`DropReason::NoEndpoint`].
    pub fn from_verdict(class: &Classification, verdict: Verdict) -> Disposition {
        match verdict {
            Verdict::Channel(id) => Disposition::Deliver(id),
            Verdict::Pass => Disposition::Pass,
            Verdict::Drop => Disposition::Drop(match class {
                Classification::Malformed(_) => DropReason::Malformed,
                _ => DropReason::NoEndpoint,
            }),
        }
    }
}

/// What became of a frame that did not reach an endpoint (or its application).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Hand it to the host kernel.
    Pass,
    /// It was dropped, for this reason (already counted).
    Drop(DropReason),
}

/// A frame handed back by a pipeline, for the caller to recycle or pass to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered<T> {
    /// The frame, untouched by the pipeline.
    pub frame: T,
    /// Why it came back.
    pub fate: Fate,
}

/// The LRP receive path (SOFT-LRP): classify → demux → the endpoint's [`NiChannel`],
/// discarding early when it is full. Protocol work happens in [`LrpPipeline::receive`],
/// called by the receiver.
#[derive(Debug, Default)]
pub struct LrpPipeline {
    account: Account,
}

impl LrpPipeline {
    /// A new LRP path.
    pub fn new() -> LrpPipeline {
        LrpPipeline::default()
    }

    /// Early demultiplexing of one arriving frame whose bytes are `bytes`: classify, look
    /// up, push to the endpoint's channel. On `Ok` the frame is queued on that channel;
    /// otherwise it is handed back with its fate, counted, before any protocol work.
    #[inline]
    pub fn ingress<T>(
        &self,
        demux: &Demux,
        endpoints: &Endpoints<T>,
        frame: T,
        bytes: &[u8],
    ) -> Result<ChannelId, Undelivered<T>> {
        let class = flow::classify(bytes);
        self.ingress_classified(demux, endpoints, frame, bytes.len(), &class)
    }

    /// [`ingress`](LrpPipeline::ingress) for a frame of `len` bytes already classified
    /// as `class`.
    pub fn ingress_classified<T>(
        &self,
        demux: &Demux,
        endpoints: &Endpoints<T>,
        frame: T,
        len: usize,
        class: &Classification,
    ) -> Result<ChannelId, Undelivered<T>> {
        let id = match Disposition::from_verdict(class, demux.lookup(class)) {
            Disposition::Deliver(id) => id,
            Disposition::Pass => {
                return Err(Undelivered {
                    frame,
                    fate: Fate::Pass,
                })
            }
            Disposition::Drop(reason) => return Err(self.drop(frame, reason)),
        };
        let Some(endpoint) = endpoints.get(id) else {
            return Err(self.drop(frame, DropReason::NoEndpoint));
        };
        match endpoint.channel().push(frame, len) {
            Ok(()) => Ok(id),
            Err(frame) => {
                endpoint.account().record_drop(DropReason::SoftDiscard);
                Err(Undelivered {
                    frame,
                    fate: Fate::Drop(DropReason::SoftDiscard),
                })
            }
        }
    }

    /// Lazy protocol processing, on the receiver's thread: take up to `budget` frames from
    /// `endpoint`'s channel and run `work` on each. Frames it accepts go to `deliver` and
    /// count as received; the others go to `undelivered` and are counted on the endpoint.
    /// Returns how many frames were taken (= how many times `work` ran).
    pub fn receive<T: FrameLen>(
        &self,
        endpoint: &Endpoint<T>,
        budget: usize,
        mut work: impl FnMut(&mut T) -> Disposition,
        mut deliver: impl FnMut(T),
        mut undelivered: impl FnMut(Undelivered<T>),
    ) -> usize {
        let account = endpoint.account();
        endpoint
            .channel()
            .pop_batch(budget, |mut frame| match work(&mut frame) {
                Disposition::Deliver(_) => {
                    account.record_rx(frame.frame_len());
                    deliver(frame);
                }
                Disposition::Pass => undelivered(Undelivered {
                    frame,
                    fate: Fate::Pass,
                }),
                Disposition::Drop(reason) => {
                    account.record_drop(reason);
                    undelivered(Undelivered {
                        frame,
                        fate: Fate::Drop(reason),
                    });
                }
            })
    }

    /// Drops that belong to no endpoint (malformed, unclaimed).
    pub fn account(&self) -> &Account {
        &self.account
    }

    fn drop<T>(&self, frame: T, reason: DropReason) -> Undelivered<T> {
        self.account.record_drop(reason);
        Undelivered {
            frame,
            fate: Fate::Drop(reason),
        }
    }
}

/// The eager (4.4BSD-like) baseline: one shared, bounded input queue for every frame of
/// every endpoint, protocol work for every frame in [`EagerPipeline::process`], and a
/// drop only when the shared queue or the endpoint's queue is full.
#[derive(Debug)]
pub struct EagerPipeline<T> {
    shared: NiChannel<T>,
    account: Account,
}

impl<T: FrameLen> EagerPipeline<T> {
    /// A pipeline with a shared input queue of `shared_capacity` frames.
    ///
    /// # Panics
    /// If `shared_capacity` is zero.
    pub fn new(shared_capacity: usize) -> EagerPipeline<T> {
        EagerPipeline {
            shared: NiChannel::new(shared_capacity),
            account: Account::new(),
        }
    }

    /// Put an arriving frame on the shared input queue, in arrival order. If the queue is
    /// full the frame is handed back ([`DropReason::SharedQueueFull`], counted on the
    /// pipeline: the eager path cannot tell whose frame it was).
    #[inline]
    pub fn ingress(&self, frame: T) -> Result<(), Undelivered<T>> {
        let len = frame.frame_len();
        self.shared.push(frame, len).map_err(|frame| {
            self.account.record_drop(DropReason::SharedQueueFull);
            Undelivered {
                frame,
                fate: Fate::Drop(DropReason::SharedQueueFull),
            }
        })
    }

    /// Eager protocol processing: take up to `budget` frames from the shared queue, run
    /// `work` on each, and push the frame to the endpoint it names. A full endpoint queue
    /// drops the frame *after* the work was spent ([`DropReason::EndpointFull`], counted
    /// on the endpoint). Frames not delivered go to `undelivered`. Returns how many frames
    /// were processed (= how many times `work` ran).
    pub fn process(
        &self,
        endpoints: &Endpoints<T>,
        budget: usize,
        mut work: impl FnMut(&mut T) -> Disposition,
        mut undelivered: impl FnMut(Undelivered<T>),
    ) -> usize {
        self.shared.pop_batch(budget, |mut frame| {
            let reason = match work(&mut frame) {
                Disposition::Deliver(id) => match endpoints.get(id) {
                    Some(endpoint) => {
                        let len = frame.frame_len();
                        match endpoint.channel().push(frame, len) {
                            Ok(()) => endpoint.account().record_rx(len),
                            Err(frame) => {
                                endpoint.account().record_drop(DropReason::EndpointFull);
                                let fate = Fate::Drop(DropReason::EndpointFull);
                                undelivered(Undelivered { frame, fate });
                            }
                        }
                        return;
                    }
                    None => DropReason::NoEndpoint,
                },
                Disposition::Pass => {
                    return undelivered(Undelivered {
                        frame,
                        fate: Fate::Pass,
                    })
                }
                Disposition::Drop(reason) => reason,
            };
            self.account.record_drop(reason);
            undelivered(Undelivered {
                frame,
                fate: Fate::Drop(reason),
            });
        })
    }

    /// The receiver's side: take up to `budget` already-processed frames from `endpoint`'s
    /// queue and hand them to `deliver`. Returns how many were taken.
    pub fn receive(&self, endpoint: &Endpoint<T>, budget: usize, deliver: impl FnMut(T)) -> usize {
        endpoint.channel().pop_batch(budget, deliver)
    }

    /// Counters of the shared input queue (its `early_discarded` are the
    /// [`DropReason::SharedQueueFull`] drops).
    pub fn shared_counters(&self) -> ChannelCounters {
        self.shared.counters()
    }

    /// Frames waiting in the shared input queue.
    pub fn backlog(&self) -> usize {
        self.shared.len()
    }

    /// Drops that belong to no endpoint (shared queue full, and every drop decided by the
    /// protocol work).
    pub fn account(&self) -> &Account {
        &self.account
    }
}

/// Either receive path, chosen by [`Mode`] at construction; the methods are the same for
/// both, so callers switch paths by changing one argument.
#[derive(Debug)]
pub enum Pipeline<T> {
    /// The LRP path.
    Lrp(LrpPipeline),
    /// The eager baseline.
    Eager(Box<EagerPipeline<T>>),
}

impl<T: FrameLen> Pipeline<T> {
    /// A pipeline of the given mode; `shared_capacity` sizes the eager path's shared input
    /// queue and is ignored in [`Mode::Lrp`].
    ///
    /// # Panics
    /// In [`Mode::Eager`], if `shared_capacity` is zero.
    pub fn new(mode: Mode, shared_capacity: usize) -> Pipeline<T> {
        match mode {
            Mode::Lrp => Pipeline::Lrp(LrpPipeline::new()),
            Mode::Eager => Pipeline::Eager(Box::new(EagerPipeline::new(shared_capacity))),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        match self {
            Pipeline::Lrp(_) => Mode::Lrp,
            Pipeline::Eager(_) => Mode::Eager,
        }
    }

    /// An arriving frame, with its bytes. LRP: classify, demux, push to the endpoint's
    /// channel or discard early. Eager: push to the shared queue (the bytes are not looked
    /// at). `Ok` means the frame was queued.
    #[inline]
    pub fn ingress(
        &self,
        demux: &Demux,
        endpoints: &Endpoints<T>,
        frame: T,
        bytes: &[u8],
    ) -> Result<(), Undelivered<T>> {
        match self {
            Pipeline::Lrp(p) => p.ingress(demux, endpoints, frame, bytes).map(drop),
            Pipeline::Eager(p) => p.ingress(frame),
        }
    }

    /// [`ingress`](Pipeline::ingress) for a frame already classified as `class` (ignored by
    /// the eager path, which classifies during protocol work).
    #[inline]
    pub fn ingress_classified(
        &self,
        demux: &Demux,
        endpoints: &Endpoints<T>,
        frame: T,
        class: &Classification,
    ) -> Result<(), Undelivered<T>> {
        match self {
            Pipeline::Lrp(p) => {
                let len = frame.frame_len();
                p.ingress_classified(demux, endpoints, frame, len, class)
                    .map(drop)
            }
            Pipeline::Eager(p) => p.ingress(frame),
        }
    }

    /// The stack's poll step. Eager: protocol work on up to `budget` frames of the shared
    /// queue ([`EagerPipeline::process`]). LRP: nothing to do (returns 0): the work waits
    /// for the receivers. Returns how many times `work` ran.
    pub fn poll(
        &self,
        endpoints: &Endpoints<T>,
        budget: usize,
        work: impl FnMut(&mut T) -> Disposition,
        undelivered: impl FnMut(Undelivered<T>),
    ) -> usize {
        match self {
            Pipeline::Lrp(_) => 0,
            Pipeline::Eager(p) => p.process(endpoints, budget, work, undelivered),
        }
    }

    /// The receiver's step for `endpoint`, up to `budget` frames. LRP: protocol work on
    /// each ([`LrpPipeline::receive`]). Eager: the frames are already processed; they go
    /// straight to `deliver`. Returns how many frames were taken from the channel.
    pub fn receive(
        &self,
        endpoint: &Endpoint<T>,
        budget: usize,
        work: impl FnMut(&mut T) -> Disposition,
        deliver: impl FnMut(T),
        undelivered: impl FnMut(Undelivered<T>),
    ) -> usize {
        match self {
            Pipeline::Lrp(p) => p.receive(endpoint, budget, work, deliver, undelivered),
            Pipeline::Eager(p) => p.receive(endpoint, budget, deliver),
        }
    }

    /// The pipeline's own account (drops that belong to no endpoint).
    pub fn account(&self) -> &Account {
        match self {
            Pipeline::Lrp(p) => p.account(),
            Pipeline::Eager(p) => p.account(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demux::{DefaultAction, Listener, ListenerKey};
    use crate::flow::{FlowKey, Malformed, Offsets, Proto, TcpFlags};
    use std::net::{IpAddr, Ipv4Addr};

    /// A test frame: its classification travels with it, and a flag says whether its
    /// checksum is good (what `wire::verify` would find).
    #[derive(Debug, Clone, PartialEq)]
    struct Frame {
        seq: u32,
        class: Classification,
        checksum_ok: bool,
    }

    impl FrameLen for Frame {
        fn frame_len(&self) -> usize {
            64
        }
    }

    fn udp_to(port: u16, seq: u32) -> Frame {
        let key = FlowKey {
            proto: Proto::Udp,
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            sport: 1000,
            dport: port,
        };
        Frame {
            seq,
            class: Classification::Flow {
                key,
                flags: TcpFlags(0),
                offsets: Offsets::default(),
            },
            checksum_ok: true,
        }
    }

    fn setup() -> (Demux, Endpoints<Frame>, ChannelId, ChannelId) {
        let mut eps = Endpoints::new();
        let a = eps.insert(2).id();
        let b = eps.insert(2).id();
        let mut d = Demux::new(DefaultAction::Drop);
        d.insert_listener(ListenerKey::any(Proto::Udp, 1), Listener::new(a));
        d.insert_listener(ListenerKey::any(Proto::Udp, 2), Listener::new(b));
        (d, eps, a, b)
    }

    fn work<'a>(d: &'a Demux, runs: &'a mut usize) -> impl FnMut(&mut Frame) -> Disposition + 'a {
        move |f: &mut Frame| {
            *runs += 1;
            if !f.checksum_ok {
                return Disposition::Drop(DropReason::BadChecksum);
            }
            Disposition::from_verdict(&f.class, d.lookup(&f.class))
        }
    }

    #[test]
    fn disposition_from_verdict() {
        let bad = Classification::Malformed(Malformed::TruncatedIp);
        assert_eq!(
            Disposition::from_verdict(&bad, Verdict::Drop),
            Disposition::Drop(DropReason::Malformed)
        );
        let frag = Classification::Fragment;
        assert_eq!(
            Disposition::from_verdict(&frag, Verdict::Drop),
            Disposition::Drop(DropReason::NoEndpoint)
        );
        assert_eq!(
            Disposition::from_verdict(&frag, Verdict::Pass),
            Disposition::Pass
        );
        assert_eq!(
            Disposition::from_verdict(&frag, Verdict::Channel(ChannelId(3))),
            Disposition::Deliver(ChannelId(3))
        );
    }

    #[test]
    fn lrp_discards_early_and_works_lazily() {
        let (d, eps, a, b) = setup();
        let p = Pipeline::new(Mode::Lrp, 0);
        assert_eq!(p.mode(), Mode::Lrp);
        let mut back = Vec::new();
        for seq in 0..5 {
            let f = udp_to(1, seq);
            let class = f.class;
            if let Err(u) = p.ingress_classified(&d, &eps, f, &class) {
                back.push(u);
            }
        }
        let bad = Frame {
            checksum_ok: false,
            ..udp_to(2, 9)
        };
        let class = bad.class;
        p.ingress_classified(&d, &eps, bad, &class).unwrap();
        let nobody = udp_to(3, 10);
        let class = nobody.class;
        let u = p.ingress_classified(&d, &eps, nobody, &class).unwrap_err();
        assert_eq!(u.fate, Fate::Drop(DropReason::NoEndpoint));
        assert_eq!(
            back.iter().map(|u| u.frame.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(back
            .iter()
            .all(|u| u.fate == Fate::Drop(DropReason::SoftDiscard)));

        let mut runs = 0;
        assert_eq!(
            p.poll(&eps, 100, work(&d, &mut runs), |_| unreachable!()),
            0
        );
        assert_eq!(runs, 0, "LRP does no work at poll time");
        let mut got = Vec::new();
        let ea = eps.get(a).unwrap();
        assert_eq!(
            p.receive(ea, 100, work(&d, &mut runs), |f| got.push(f.seq), |_| {}),
            2
        );
        let mut dropped = Vec::new();
        let eb = eps.get(b).unwrap();
        p.receive(
            eb,
            100,
            work(&d, &mut runs),
            |_| unreachable!(),
            |u| dropped.push(u.fate),
        );
        assert_eq!(runs, 3, "work ran only for admitted frames");
        assert_eq!(got, [0, 1]);
        assert_eq!(dropped, [Fate::Drop(DropReason::BadChecksum)]);
        let sa = ea.account().snapshot();
        assert_eq!((sa.rx_packets, sa.drops(DropReason::SoftDiscard)), (2, 3));
        assert_eq!(eb.account().snapshot().drops(DropReason::BadChecksum), 1);
        assert_eq!(p.account().snapshot().drops(DropReason::NoEndpoint), 1);
    }

    #[test]
    fn eager_works_first_and_drops_late() {
        let (d, eps, a, b) = setup();
        let p: Pipeline<Frame> = Pipeline::new(Mode::Eager, 4);
        assert_eq!(p.mode(), Mode::Eager);
        let mut shared_full = 0;
        for seq in 0..5 {
            let f = udp_to(1, seq);
            let class = f.class;
            if let Err(u) = p.ingress_classified(&d, &eps, f, &class) {
                assert_eq!(u.fate, Fate::Drop(DropReason::SharedQueueFull));
                shared_full += 1;
            }
        }
        assert_eq!(shared_full, 1);
        let mut runs = 0;
        let mut late = Vec::new();
        assert_eq!(p.poll(&eps, 100, work(&d, &mut runs), |u| late.push(u)), 4);
        assert_eq!(runs, 4, "work ran for every queued frame");
        assert_eq!(late.len(), 2, "two were dropped after the work");
        assert!(late
            .iter()
            .all(|u| u.fate == Fate::Drop(DropReason::EndpointFull)));
        let mut got = Vec::new();
        let ea = eps.get(a).unwrap();
        assert_eq!(
            p.receive(ea, 100, |_| unreachable!(), |f| got.push(f.seq), |_| {}),
            2
        );
        assert_eq!(got, [0, 1]);
        let sa = ea.account().snapshot();
        assert_eq!((sa.rx_packets, sa.drops(DropReason::EndpointFull)), (2, 2));
        assert_eq!(p.account().snapshot().drops(DropReason::SharedQueueFull), 1);
        assert!(eps.get(b).unwrap().channel().is_empty());
        let Pipeline::Eager(e) = &p else {
            unreachable!()
        };
        assert_eq!(e.shared_counters().early_discarded, 1);
        assert_eq!(e.backlog(), 0);
    }

    #[test]
    fn eager_counts_protocol_drops_on_the_pipeline() {
        let (d, eps, _, b) = setup();
        let p = EagerPipeline::new(8);
        p.ingress(Frame {
            checksum_ok: false,
            ..udp_to(2, 0)
        })
        .unwrap();
        p.ingress(udp_to(3, 1)).unwrap();
        let mut runs = 0;
        let mut fates = Vec::new();
        p.process(&eps, 8, work(&d, &mut runs), |u| fates.push(u.fate));
        assert_eq!(
            fates,
            [
                Fate::Drop(DropReason::BadChecksum),
                Fate::Drop(DropReason::NoEndpoint)
            ]
        );
        let s = p.account().snapshot();
        assert_eq!(s.drops(DropReason::BadChecksum), 1);
        assert_eq!(s.drops(DropReason::NoEndpoint), 1);
        assert_eq!(eps.get(b).unwrap().account().snapshot().total_drops(), 0);
    }

    #[test]
    fn removed_endpoint_is_no_endpoint() {
        let (d, mut eps, a, _) = setup();
        eps.remove(a);
        let p = LrpPipeline::new();
        let f = udp_to(1, 0);
        let class = f.class;
        let u = p.ingress_classified(&d, &eps, f, 64, &class).unwrap_err();
        assert_eq!(u.fate, Fate::Drop(DropReason::NoEndpoint));
        let e = EagerPipeline::new(1);
        e.ingress(udp_to(1, 0)).unwrap();
        let mut runs = 0;
        let mut fates = Vec::new();
        e.process(&eps, 1, work(&d, &mut runs), |u| fates.push(u.fate));
        assert_eq!(fates, [Fate::Drop(DropReason::NoEndpoint)]);
    }

    #[test]
    fn lrp_ingress_classifies_bytes() {
        let (d, eps, a, _) = setup();
        let p = LrpPipeline::new();
        // Ethernet + IPv4 + UDP 10.0.0.1:1000 -> 10.0.0.2:1 (checksums are not looked at
        // on ingress: that is lazy work).
        let mut bytes = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        bytes.extend_from_slice(&[0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1]);
        bytes.extend_from_slice(&[10, 0, 0, 2, 0x03, 0xe8, 0, 1, 0, 10, 0, 0, b'h', b'i']);
        assert_eq!(p.ingress(&d, &eps, udp_to(1, 7), &bytes), Ok(a));
        assert_eq!(eps.get(a).unwrap().channel().pop().map(|f| f.seq), Some(7));
        // A frame too short for an Ethernet header is dropped as malformed.
        let u = p.ingress(&d, &eps, udp_to(1, 0), &[0u8; 5]).unwrap_err();
        assert_eq!(u.fate, Fate::Drop(DropReason::Malformed));
        assert_eq!(p.account().snapshot().drops(DropReason::Malformed), 1);
    }
}
