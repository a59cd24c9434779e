//! A counter snapshot as the console and the exit report print it,
//! testpmd style: `show fwd stats`, `show port stats`, the exit report.

use std::fmt::Write;

use dataplane::dpdk::events::PortEvents;
use dataplane::runtime::counters::{DestDrop, Terminal, Totals};
use dataplane::runtime::snapshot::{PortCounts, Snapshot};

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
    if t.intake + t.intake_dropped > 0 {
        for (k, v) in [("intake", t.intake), ("intake_dropped", t.intake_dropped)] {
            let _ = writeln!(out, "  {k:<20}{v:>16}");
        }
    }
}

/// `show fwd stats all`: each worker, then the total and the accounting
/// identity `rx = Σ terminals` with its difference (0 when idle), then
/// each uplink's tunnel copies, then every destination (those of earlier
/// policies marked removed).
pub fn fwd_stats(snap: &Snapshot) -> String {
    let mut out = String::new();
    for l in &snap.lcores {
        block(
            &mut out,
            &format!("Forward statistics for {}", l.name),
            &l.totals,
        );
    }
    let total = &snap.total;
    block(
        &mut out,
        "Accumulated forward statistics for all workers",
        total,
    );
    let _ = writeln!(
        out,
        "  accounting: rx {} = sum of terminal counters {} (difference {})",
        total.rx,
        total.terminal_sum(),
        total.in_flight()
    );
    if !snap.uplinks.is_empty() {
        // Tunnel copies only: each is also in its destination's tx_packets.
        let _ = writeln!(
            out,
            "  ------------------------ Uplinks -------------------------"
        );
        let _ = writeln!(
            out,
            "  {:<24}{:>12}{:>14}{:>20}",
            "uplink", "tx_packets", "tx_bytes", "dropped_tx_full"
        );
        for u in &snap.uplinks {
            let _ = writeln!(
                out,
                "  {:<24}{:>12}{:>14}{:>20}",
                u.name, u.tx_packets, u.tx_bytes, u.dropped_tx_full
            );
        }
    }
    if !snap.destinations.is_empty() {
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
        for d in &snap.destinations {
            let name = if d.removed {
                format!("{} (removed)", d.name)
            } else {
                d.name.clone()
            };
            let _ = write!(
                out,
                "  {:<24}{:>12}{:>14}{:>12}",
                name, d.tx_packets, d.tx_bytes, d.truncated_to_mtu
            );
            for r in DestDrop::ALL {
                let _ = write!(out, "{:>20}", d.drop(r));
            }
            let _ = writeln!(out);
        }
        // What strip and mask did, for the destinations they did anything
        // for: one line each, only the counts that are not zero.
        for d in &snap.destinations {
            for (stage, counts) in [
                ("strip", d.strip().collect::<Vec<_>>()),
                ("mask", d.mask().collect()),
            ] {
                let nonzero: Vec<String> = counts
                    .iter()
                    .filter(|(_, n)| *n != 0)
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                if !nonzero.is_empty() {
                    let _ = writeln!(out, "  {:<24}{stage}: {}", d.name, nonzero.join("  "));
                }
            }
        }
    }
    out
}

/// One console line for a port's events.
pub fn link_line(e: &PortEvents) -> String {
    format!(
        "  Link: {}  link-up events: {}  link-down events: {}  queue state changes: {}\n",
        if e.link_up { "up" } else { "down" },
        e.link_ups,
        e.link_downs,
        e.queue_changes
    )
}

/// `show port stats` for one port, testpmd's block.
pub fn port_block(p: &PortCounts) -> String {
    match &p.stats {
        Ok(st) => format!(
            "\n  ######################## NIC statistics for port {id}  ########################\n  \
             RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}\n  RX-errors: {}\n  RX-nombuf:  {}\n  \
             TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}\n{}  \
             ############################################################################\n",
            st.ipackets,
            st.imissed,
            st.ibytes,
            st.ierrors,
            st.rx_nombuf,
            st.opackets,
            st.oerrors,
            st.obytes,
            link_line(&p.events),
            id = p.id
        ),
        Err(e) => format!("  port {}: {e}\n", p.id),
    }
}

/// The exit report's line for each port whose counters could be read.
pub fn port_lines(snap: &Snapshot) -> String {
    let mut out = String::new();
    for p in &snap.ports {
        if let Ok(s) = &p.stats {
            let e = &p.events;
            let _ = writeln!(
                out,
                "  port {} {:?} ({}): RX-packets {} RX-bytes {} RX-missed {} RX-errors {} RX-nombuf {} TX-packets {} TX-bytes {} TX-errors {} link-ups {} link-downs {}",
                p.id, p.name, p.role, s.ipackets, s.ibytes, s.imissed, s.ierrors, s.rx_nombuf, s.opackets, s.obytes, s.oerrors, e.link_ups, e.link_downs
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::runtime::counters::WorkerStats;
    use dataplane::runtime::snapshot::{CounterBlocks, DestSlot, LcoreKind};
    use std::sync::Arc;

    #[test]
    fn prints_every_terminal_the_identity_and_destinations() {
        let w = Arc::new(WorkerStats::default());
        w.counters.rx.add(3);
        w.counters.terminal(Terminal::Forwarded).add(2);
        w.counters.terminal(Terminal::Deduplicated).add(1);
        w.dests[4].tx_packets.add(2);
        let mut blocks = CounterBlocks::default();
        blocks.push("worker 0 (lcore 1)".into(), LcoreKind::Worker, w);
        let s = fwd_stats(&blocks.read(&[DestSlot {
            name: "noc".into(),
            slot: 4,
            removed: false,
        }]));
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
