//! The state machine step by step, then the checker over lrp TCP on two simulated stacks.

use super::*;

const T23: Thresholds = Thresholds { rise: 2, fall: 3 };
const OK: CheckResult = Ok(());
const REFUSED: CheckResult = Err(CheckFailure::Refused);

/// Record `results` one per time unit from `t0`; the transitions, with their times.
fn feed(s: &mut HealthState, t0: u64, results: &[CheckResult]) -> Vec<(u64, Transition)> {
    let mut out = Vec::new();
    for (i, &r) in results.iter().enumerate() {
        let now = t0 + i as u64;
        if let Some(tr) = s.record(r, now, T23) {
            out.push((now, tr));
        }
    }
    out
}

#[test]
fn a_down_server_comes_up_after_rise_successes_and_goes_down_after_fall_failures() {
    let mut s = HealthState::new(StartAs::Down, 0);
    assert!(!s.is_up());
    assert_eq!(s.record(OK, 1, T23), None);
    assert_eq!(s.consecutive_successes(), 1);
    assert_eq!(s.record(OK, 2, T23), Some(Transition::Up));
    assert!(s.is_up());
    assert_eq!(s.changed_at(), 2);
    // More successes change nothing.
    assert_eq!(s.record(OK, 3, T23), None);
    assert_eq!(s.record(REFUSED, 4, T23), None);
    assert_eq!(s.record(REFUSED, 5, T23), None);
    assert_eq!(s.consecutive_failures(), 2);
    assert_eq!(s.consecutive_successes(), 0);
    assert_eq!(s.record(REFUSED, 6, T23), Some(Transition::Down));
    assert!(!s.is_up());
    assert_eq!(s.changed_at(), 6);
    assert_eq!(s.last_result(), Some(REFUSED));
    assert_eq!(s.checks(), 6);
    // Further failures change nothing; it comes back after `rise` successes.
    assert_eq!(
        feed(&mut s, 7, &[REFUSED, OK, OK]),
        vec![(9, Transition::Up)]
    );
}

#[test]
fn a_server_starting_up_goes_down_at_its_first_failure_until_it_has_succeeded_once() {
    let mut s = HealthState::new(StartAs::Up, 0);
    assert!(s.is_up());
    assert_eq!(s.record(REFUSED, 1, T23), Some(Transition::Down));
    // Down: `rise` successes bring it up, and from then on it takes `fall` failures.
    assert_eq!(
        feed(&mut s, 2, &[OK, OK, REFUSED, REFUSED, REFUSED]),
        vec![(3, Transition::Up), (6, Transition::Down)]
    );

    // Proven by a success first: it takes `fall` failures.
    let mut s = HealthState::new(StartAs::Up, 0);
    assert_eq!(
        feed(&mut s, 1, &[OK, REFUSED, REFUSED, REFUSED]),
        vec![(4, Transition::Down)]
    );
}

#[test]
fn flapping_below_the_thresholds_changes_nothing() {
    let flap: Vec<CheckResult> = (0..100)
        .map(|i| if i % 2 == 0 { OK } else { REFUSED })
        .collect();
    let mut up = HealthState::new(StartAs::Up, 0);
    up.record(OK, 0, T23);
    assert_eq!(feed(&mut up, 1, &flap), vec![]);
    assert!(up.is_up());
    let mut down = HealthState::new(StartAs::Down, 0);
    assert_eq!(feed(&mut down, 1, &flap), vec![]);
    assert!(!down.is_up());
    // One success, two failures, repeated: never three failures in a row.
    let pattern: Vec<CheckResult> = (0..99)
        .map(|i| if i % 3 == 0 { OK } else { REFUSED })
        .collect();
    assert_eq!(feed(&mut up, 200, &pattern), vec![]);
    assert!(up.is_up());
}

#[test]
fn thresholds_of_one_and_zero_act_at_once() {
    for t in [1, 0] {
        let t = Thresholds { rise: t, fall: t };
        let mut s = HealthState::new(StartAs::Down, 0);
        assert_eq!(s.record(OK, 1, t), Some(Transition::Up));
        assert_eq!(s.record(REFUSED, 2, t), Some(Transition::Down));
        assert_eq!(s.record(OK, 3, t), Some(Transition::Up));
    }
}

#[test]
fn a_check_that_does_not_complete_within_its_timeout_is_a_failure() {
    assert_eq!(within(OK, 100, 100), OK);
    assert_eq!(within(OK, 101, 100), Err(CheckFailure::TimedOut));
    assert_eq!(within(REFUSED, 500, 100), REFUSED);
    let mut s = HealthState::new(StartAs::Down, 0);
    s.record(OK, 1, T23);
    let late = within(OK, 2_000, 1_000);
    assert_eq!(
        s.record(late, 2, T23),
        None,
        "a late success does not count"
    );
    assert_eq!(s.consecutive_failures(), 1);
    assert_eq!(s.last_result(), Some(Err(CheckFailure::TimedOut)));
}

#[test]
fn first_checks_are_spread_evenly_over_the_first_interval() {
    let mut sched = CheckSchedule::new(vec![Some(100); 4], 1_000);
    assert_eq!(sched.next_due(), Some(1_000));
    let mut order = Vec::new();
    for now in 1_000..1_200 {
        while let Some(id) = sched.pop_due(now) {
            order.push((now, id));
        }
    }
    assert_eq!(
        order,
        vec![
            (1_000, 0),
            (1_025, 1),
            (1_050, 2),
            (1_075, 3),
            (1_100, 0),
            (1_125, 1),
            (1_150, 2),
            (1_175, 3),
        ]
    );
    assert_eq!(sched.next_due(), Some(1_200));
}

#[test]
fn unchecked_servers_are_never_due_and_each_server_keeps_its_own_interval() {
    let mut sched = CheckSchedule::new(vec![Some(100), None, Some(40)], 0);
    // Two checked servers: offsets 0 and 40 / 2.
    let mut seen = Vec::new();
    for now in 0..=200 {
        while let Some(id) = sched.pop_due(now) {
            seen.push((now, id));
        }
    }
    assert_eq!(
        seen,
        vec![
            (0, 0),
            (20, 2),
            (60, 2),
            (100, 0),
            (100, 2),
            (140, 2),
            (180, 2),
            (200, 0)
        ]
    );
    assert!(!seen.iter().any(|&(_, id)| id == 1));
    assert_eq!(CheckSchedule::new(vec![None, None], 0).next_due(), None);
    assert_eq!(CheckSchedule::new(vec![], 0).pop_due(u64::MAX), None);
}

#[test]
fn a_late_scheduler_skips_missed_rounds_and_keeps_the_phase() {
    let mut sched = CheckSchedule::new(vec![Some(100), Some(100)], 0);
    // Nobody looked until 1_030: each server is checked once, not ten times.
    assert_eq!(sched.pop_due(1_030), Some(0));
    assert_eq!(sched.pop_due(1_030), Some(1));
    assert_eq!(sched.pop_due(1_030), None);
    // Phases kept: server 0 at multiples of 100, server 1 at 50 past.
    assert_eq!(sched.next_due(), Some(1_050));
    assert_eq!(sched.pop_due(1_050), Some(1));
    assert_eq!(sched.next_due(), Some(1_100));
    assert_eq!(sched.pop_due(1_100), Some(0));
}

#[test]
fn many_servers_never_fire_at_once() {
    let n = 1000;
    let mut sched = CheckSchedule::new(vec![Some(1_000_000); n], 0);
    let mut per_slot = vec![0u32; 1000];
    while let Some(due) = sched.next_due() {
        if due >= 1_000_000 {
            break;
        }
        sched.pop_due(due);
        per_slot[(due / 1000) as usize] += 1;
    }
    assert!(per_slot.iter().all(|&c| c == 1), "one check per ms slot");
}

#[test]
fn the_view_publishes_states_and_counts_transitions() {
    let view = HealthView::new(vec![
        HealthState::new(StartAs::Up, 0),
        HealthState::new(StartAs::Down, 0),
    ]);
    assert_eq!(view.len(), 2);
    assert!(view.is_up(0) && !view.is_up(1) && !view.is_up(2));
    let mut s = view.states()[1].clone();
    s.record(OK, 1, T23);
    view.publish(1, &s, false);
    assert_eq!(view.generation(), 0);
    assert_eq!(view.states()[1].consecutive_successes(), 1);
    assert_eq!(s.record(OK, 2, T23), Some(Transition::Up));
    view.publish(1, &s, true);
    assert!(view.is_up(1));
    assert_eq!(view.generation(), 1);
}

#[test]
fn targets_follow_the_configuration_order() {
    let cfg = Config::from_toml(
        "t.toml",
        r#"
[director]
client_iface = "eth0"
[health]
check = "tcp"
[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
mode = "nat"
[service.health]
check = "http"
http_path = "/health"
[[service.server]]
addr = "10.1.0.11"
port = 8080
[[service.server]]
addr = "10.1.0.12"
[[service]]
name = "dns"
vip = "192.0.2.10"
port = 53
proto = "udp"
mode = "nat"
[[service.server]]
addr = "10.1.0.13"
"#,
    )
    .unwrap();
    let t = Target::from_config(&cfg);
    let addrs: Vec<String> = t.iter().map(|t| t.addr.to_string()).collect();
    assert_eq!(addrs, ["10.1.0.11:8080", "10.1.0.12:80", "10.1.0.13:53"]);
    assert!(
        matches!(&t[0].health.check, HealthCheck::Http { path, status: 200 } if path == "/health")
    );
    assert_eq!(t[2].health.check, HealthCheck::None);
}

/// The checker on a "director" stack against lrp TCP servers on a second simulated
/// stack, bridged as in `sim_tests`.
mod sim {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::Receiver;
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use lrp_net::{Mode, Stack, TcpStream};

    use super::super::*;
    use crate::http::{serve_connection, ServerConfig};
    use crate::object::ObjectSource;
    use crate::sim_tests::pair;

    const INTERVAL: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_millis(100);
    /// A bound on every wait for an event (the expected times are well under it).
    const LIMIT: Duration = Duration::from_secs(5);

    /// What a test server does with a connection.
    #[derive(Clone, Copy)]
    enum Behaviour {
        /// Accept and close.
        Accept,
        /// Serve it with the example HTTP server.
        Http,
        /// Accept and hold it open without reading or answering.
        Hang,
    }

    /// An lrp TCP server on its own thread; stopping it drops its listener.
    struct Server {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        fn start(stack: &Stack, port: u16, behaviour: Behaviour) -> Server {
            let addr = SocketAddr::from(([10, 0, 0, 2], port));
            let listener = stack.tcp_listen(addr, 16).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let s = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let cfg = ServerConfig::default();
                let src = ObjectSource::new(16 * 1024);
                let mut held: Vec<TcpStream> = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    let Ok((mut c, _)) = listener.accept_timeout(Duration::from_millis(20)) else {
                        continue;
                    };
                    match behaviour {
                        Behaviour::Accept => drop(c),
                        Behaviour::Http => {
                            // A thread per connection: a slow client does not hold up
                            // the checks of the others.
                            let (cfg, src) = (cfg.clone(), src.clone());
                            std::thread::spawn(move || {
                                c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                                let _ = serve_connection(&mut c, &cfg, &src);
                            });
                        }
                        Behaviour::Hang => held.push(c),
                    }
                }
            });
            Server {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn target(port: u16, check: HealthCheck) -> Target {
        Target {
            addr: SocketAddr::from(([10, 0, 0, 2], port)),
            health: HealthConfig {
                check,
                interval: INTERVAL,
                timeout: TIMEOUT,
                rise: 2,
                fall: 3,
            },
        }
    }

    fn http(path: &str, status: u16) -> HealthCheck {
        HealthCheck::Http {
            path: path.into(),
            status,
        }
    }

    /// Wait (at most [`LIMIT`]) for the event `(server, transition)`; panics on any
    /// other transition of a server in `steady`.
    fn wait_for(
        events: &Receiver<HealthEvent>,
        server: ServerId,
        transition: Transition,
        steady: &[ServerId],
    ) -> HealthEvent {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {transition:?} of server {server} in {LIMIT:?}"));
            assert!(!steady.contains(&e.server), "unexpected event {e:?}");
            if e.server == server && e.transition == transition {
                return e;
            }
        }
    }

    fn checker(
        stack: &Stack,
        targets: Vec<Target>,
        start: StartAs,
    ) -> (Checker, Receiver<HealthEvent>) {
        let (tx, rx) = mpsc::channel();
        let c = Checker::new(
            stack.clone(),
            targets,
            CheckerOptions {
                workers: 2,
                start,
                events: Some(tx),
            },
        )
        .unwrap();
        (c, rx)
    }

    #[test]
    fn tcp_checks_take_a_stopped_server_out_and_bring_it_back_after_restart() {
        let (server, director, _wire) = pair(Mode::SoftLrp);
        let a = Server::start(&server, 80, Behaviour::Accept);
        let _b = Server::start(&server, 81, Behaviour::Accept);
        let (checker, events) = checker(
            &director,
            vec![target(80, HealthCheck::Tcp), target(81, HealthCheck::Tcp)],
            StartAs::Down,
        );
        let view = checker.view();
        assert!(!view.is_up(0) && !view.is_up(1));
        let t0 = Instant::now();
        wait_for(&events, 0, Transition::Up, &[]);
        wait_for(&events, 1, Transition::Up, &[]);
        eprintln!("both up after {:?} (rise 2 × {INTERVAL:?})", t0.elapsed());
        assert!(view.is_up(0) && view.is_up(1));

        let stopped = Instant::now();
        drop(a);
        let e = wait_for(&events, 0, Transition::Down, &[1]);
        let took = e.at.duration_since(stopped);
        eprintln!("stopped server down after {took:?} (fall 3 × {INTERVAL:?} + {TIMEOUT:?} bound)");
        assert_eq!(e.result, Err(CheckFailure::Refused));
        assert!(
            took <= 3 * INTERVAL + TIMEOUT + Duration::from_millis(300),
            "{took:?}"
        );
        assert!(!view.is_up(0) && view.is_up(1));
        let states = view.states();
        assert_eq!(states[0].consecutive_failures(), 3);

        let restarted = Instant::now();
        let _a = Server::start(&server, 80, Behaviour::Accept);
        let e = wait_for(&events, 0, Transition::Up, &[1]);
        eprintln!(
            "restarted server up after {:?}",
            e.at.duration_since(restarted)
        );
        assert!(view.is_up(0) && view.is_up(1));
        assert!(view.generation() >= 4);
        drop(checker);
    }

    /// Wait (at most [`LIMIT`]) until `server`, never up, has failed `n` checks in a row,
    /// the last with `expected` (on a loaded machine, one may time out instead).
    fn wait_failing(view: &HealthView, server: ServerId, n: u32, expected: CheckResult) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = &view.states()[server];
            assert!(!s.is_up(), "{s:?}");
            if s.consecutive_failures() >= n && s.last_result() == Some(expected) {
                return;
            }
            assert!(Instant::now() < deadline, "{s:?}");
            std::thread::sleep(INTERVAL / 4);
        }
    }

    #[test]
    fn http_checks_want_the_expected_status() {
        let (server, director, _wire) = pair(Mode::NiLrp);
        let _s = Server::start(&server, 80, Behaviour::Http);
        let (checker, events) = checker(
            &director,
            vec![
                target(80, http("/", 200)),
                target(80, http("/missing", 200)),
                target(80, http("/obj/10", 500)),
            ],
            StartAs::Down,
        );
        let view = checker.view();
        wait_for(&events, 0, Transition::Up, &[1, 2]);
        let not_found = Err(CheckFailure::Status {
            got: 404,
            expected: 200,
        });
        let ok_not_wanted = Err(CheckFailure::Status {
            got: 200,
            expected: 500,
        });
        wait_failing(&view, 1, 3, not_found);
        wait_failing(&view, 2, 3, ok_not_wanted);
        assert!(view.is_up(0));
        drop(checker);
        while let Ok(e) = events.try_recv() {
            assert_eq!(e.server, 0, "{e:?}");
        }
    }

    #[test]
    fn a_server_that_accepts_but_never_answers_fails_by_timeout() {
        let (server, director, _wire) = pair(Mode::Eager);
        let _s = Server::start(&server, 80, Behaviour::Hang);
        let (checker, events) = checker(
            &director,
            vec![target(80, http("/", 200)), target(80, HealthCheck::Tcp)],
            StartAs::Down,
        );
        // TCP: the handshake completes, so it is up; HTTP: the status never comes.
        wait_for(&events, 1, Transition::Up, &[0]);
        let view = checker.view();
        wait_failing(&view, 0, 3, Err(CheckFailure::TimedOut));
        // Dropping the checker waits for the running check, bounded by its timeout.
        let t = Instant::now();
        drop(checker);
        assert!(
            t.elapsed() < TIMEOUT + Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn check_once_reports_refusal_and_none_needs_no_network() {
        let (_server, director, _wire) = pair(Mode::SoftLrp);
        let addr = SocketAddr::from(([10, 0, 0, 2], 9));
        assert_eq!(
            check_once(&director, addr, &HealthCheck::Tcp, TIMEOUT),
            Err(CheckFailure::Refused)
        );
        assert_eq!(
            check_once(&director, addr, &HealthCheck::None, TIMEOUT),
            Ok(())
        );
        // Nobody at the address (no ARP answer): a timeout.
        let nobody = SocketAddr::from(([10, 0, 0, 99], 80));
        assert_eq!(
            check_once(&director, nobody, &HealthCheck::Tcp, TIMEOUT),
            Err(CheckFailure::TimedOut)
        );
    }
}
