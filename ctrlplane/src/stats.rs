//! Counters as the console and the exit report print them, testpmd style.

use std::fmt::Write;

use dataplane::runtime::counters::{DestDrop, Terminal, Totals, WorkerStats};

/// A named set of counters: a worker, or the distributor.
pub struct Named<'a> {
    pub name: String,
    pub stats: &'a WorkerStats,
}

fn block(out: &mut String, title: &str, t: &Totals) {
    let _ = writeln!(
        out,
        "  ---------------------- {title} ----------------------"
    );
    let _ = writeln!(out, "  {:<20}{:>16}", "rx", t.rx);
    let _ = writeln!(out, "  {:<20}{:>16}", "rx_bytes", t.rx_bytes);
    for term in Terminal::ALL {
        let _ = writeln!(out, "  {:<20}{:>16}", term.name(), t.terminal(term));
    }
    let _ = writeln!(out, "  {:<20}{:>16}", "parse_errors", t.parse_errors);
    if t.decapsulated + t.decap_not_tunnel + t.decap_not_ethernet + t.decap_errors > 0 {
        for (k, v) in [
            ("decapsulated", t.decapsulated),
            ("decap_not_tunnel", t.decap_not_tunnel),
            ("decap_not_ethernet", t.decap_not_ethernet),
            ("decap_errors", t.decap_errors),
        ] {
            let _ = writeln!(out, "  {k:<20}{v:>16}");
        }
    }
    if t.rx_invalid > 0 {
        let _ = writeln!(out, "  {:<20}{:>16}", "rx_invalid", t.rx_invalid);
    }
    if t.exceptions + t.exceptions_dropped + t.uplink_ignored > 0 {
        let _ = writeln!(
            out,
            "  {:<20}{:>16}\n  {:<20}{:>16}\n  {:<20}{:>16}",
            "exceptions",
            t.exceptions,
            "exceptions_dropped",
            t.exceptions_dropped,
            "uplink_ignored",
            t.uplink_ignored
        );
    }
}

/// `show fwd stats all`: each worker, then the total and the accounting
/// identity `rx = Σ terminals` with its difference (0 when idle).
pub fn fwd_stats(parts: &[Named<'_>], dests: &[(String, u16)]) -> String {
    let mut out = String::new();
    for p in parts {
        block(
            &mut out,
            &format!("Forward statistics for {}", p.name),
            &Totals::of([p.stats]),
        );
    }
    let total = Totals::of(parts.iter().map(|p| p.stats));
    block(
        &mut out,
        "Accumulated forward statistics for all workers",
        &total,
    );
    let _ = writeln!(
        out,
        "  accounting: rx {} = sum of terminal counters {} (difference {})",
        total.rx,
        total.terminal_sum(),
        total.in_flight()
    );
    if !dests.is_empty() {
        let _ = writeln!(
            out,
            "  ---------------------- Destinations ----------------------"
        );
        let _ = write!(
            out,
            "  {:<24}{:>12}{:>14}{:>12}",
            "destination", "tx_packets", "tx_bytes", "truncated"
        );
        for d in DestDrop::ALL {
            let _ = write!(out, "{:>20}", d.name());
        }
        let _ = writeln!(out);
        for (name, slot) in dests {
            let s = usize::from(*slot);
            let sum =
                |f: &dyn Fn(&WorkerStats) -> u64| -> u64 { parts.iter().map(|p| f(p.stats)).sum() };
            let _ = write!(
                out,
                "  {:<24}{:>12}{:>14}{:>12}",
                name,
                sum(&|w| w.dests[s].tx_packets.get()),
                sum(&|w| w.dests[s].tx_bytes.get()),
                sum(&|w| w.dests[s].truncated_to_mtu.get())
            );
            for d in DestDrop::ALL {
                let _ = write!(out, "{:>20}", sum(&|w| w.dests[s].drop(d).get()));
            }
            let _ = writeln!(out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_every_terminal_the_identity_and_destinations() {
        let w = WorkerStats::default();
        w.counters.rx.add(3);
        w.counters.terminal(Terminal::Forwarded).add(2);
        w.counters.terminal(Terminal::Deduplicated).add(1);
        w.dests[4].tx_packets.add(2);
        let s = fwd_stats(
            &[Named {
                name: "worker 0 (lcore 1)".into(),
                stats: &w,
            }],
            &[("noc".into(), 4)],
        );
        for t in Terminal::ALL {
            assert!(s.contains(t.name()), "{s}");
        }
        assert!(
            s.contains("accounting: rx 3 = sum of terminal counters 3 (difference 0)"),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.trim_start().starts_with("noc") && l.contains(" 2 ")),
            "{s}"
        );
    }
}
