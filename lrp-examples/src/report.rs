//! Small reporting helpers for the examples: per-interval rate lines from socket
//! statistics, and latency percentiles.

use std::time::Duration;

use lrp_net::stack::SocketStats;

/// One line of per-interval statistics for a receiving socket: received packets per
/// second, megabits per second, early discards and late drops per second, and the CPU
/// charged to the socket (nanoseconds per packet and percent of one core).
pub fn rate_line(prev: &SocketStats, cur: &SocketStats, dt: Duration) -> String {
    let secs = dt.as_secs_f64().max(1e-9);
    let pkts = cur.rx_packets.saturating_sub(prev.rx_packets);
    let bytes = cur.rx_bytes.saturating_sub(prev.rx_bytes);
    let early = cur.early_discards.saturating_sub(prev.early_discards);
    let late = cur
        .endpoint_full_drops
        .saturating_sub(prev.endpoint_full_drops);
    let bad = (cur.bad_checksum + cur.malformed).saturating_sub(prev.bad_checksum + prev.malformed);
    let cpu = cur.cpu_ns.saturating_sub(prev.cpu_ns);
    let ns_per_pkt = cpu.checked_div(pkts).unwrap_or(0);
    format!(
        "rx {:>10.0} pps {:>9.2} Mbit/s | early discard {:>10.0}/s | late drop {:>10.0}/s | bad {:>6} | cpu {:>6} ns/pkt {:>5.1}%",
        pkts as f64 / secs,
        bytes as f64 * 8.0 / secs / 1e6,
        early as f64 / secs,
        late as f64 / secs,
        bad,
        ns_per_pkt,
        cpu as f64 / (secs * 1e9) * 100.0,
    )
}

/// Latency percentiles of a sample (sorted in place): `(p50, p99, p999, max)`, or
/// `None` for an empty sample.
pub fn percentiles(sample: &mut [Duration]) -> Option<(Duration, Duration, Duration, Duration)> {
    if sample.is_empty() {
        return None;
    }
    sample.sort_unstable();
    let at = |q: f64| {
        let i = ((sample.len() as f64 - 1.0) * q).round() as usize;
        sample[i.min(sample.len() - 1)]
    };
    Some((at(0.5), at(0.99), at(0.999), sample[sample.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sample() {
        let mut s: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let (p50, p99, p999, max) = percentiles(&mut s).unwrap();
        assert_eq!(p50, Duration::from_micros(501));
        assert_eq!(p99, Duration::from_micros(990));
        assert_eq!(p999, Duration::from_micros(999));
        assert_eq!(max, Duration::from_micros(1000));
        assert_eq!(percentiles(&mut []), None);
        let mut one = [Duration::from_millis(3)];
        assert_eq!(percentiles(&mut one).unwrap().0, Duration::from_millis(3));
    }

    #[test]
    fn rate_line_reports_deltas() {
        use lrp_net::sim::SimConfig;
        use lrp_net::stack::{Stack, StackConfig};
        use lrp_net::{Nic, NicConfig};
        let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(512))).unwrap();
        let stack = Stack::new(nic, StackConfig::new("10.0.0.2".parse().unwrap(), 24)).unwrap();
        let sock = stack.udp_bind("10.0.0.2:9".parse().unwrap(), 16).unwrap();
        let before = sock.stats();
        for _ in 0..4 {
            peer.send_udp(
                "10.0.0.1:1".parse().unwrap(),
                "10.0.0.2:9".parse().unwrap(),
                &[0; 83],
            );
        }
        let mut buf = [0u8; 128];
        for _ in 0..4 {
            sock.recv_from(&mut buf).unwrap();
        }
        let line = rate_line(&before, &sock.stats(), Duration::from_secs(2));
        // 4 frames of 125 bytes in 2 s: 2 pps, 0.002 Mbit/s.
        assert!(
            line.starts_with("rx          2 pps      0.00 Mbit/s"),
            "{line}"
        );
        assert!(line.contains("early discard          0/s"), "{line}");
    }
}
