//! One reading of the appliance's counters: totals, each lcore, each
//! destination and each port, taken once and then rendered by whoever
//! asks (the console, Prometheus, DPDK telemetry, the controller
//! heartbeat). Renderers read a `Snapshot`; none of them sums workers.

use std::sync::Arc;

use crate::dpdk::events::PortEvents;
use crate::dpdk::pdump::TapStats;
use crate::dpdk::PortStats;
use crate::runtime::counters::{
    DestDrop, ToolPortCounters, Totals, WorkerStats, MAX_TOOL_PORTS, MAX_UPLINKS,
};
use crate::stage::mask::MaskCounters;
use crate::stage::strip::StripCounters;

/// What an lcore that counts does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcoreKind {
    Worker,
    Distributor,
}

/// The counter blocks of every lcore that counts, workers first. Cheap to
/// clone (the blocks are shared), so the telemetry thread holds its own.
#[derive(Debug, Clone, Default)]
pub struct CounterBlocks {
    blocks: Vec<(String, LcoreKind, Arc<WorkerStats>)>,
}

impl CounterBlocks {
    /// Adds an lcore's block under the name the console shows.
    pub fn push(&mut self, name: String, kind: LcoreKind, stats: Arc<WorkerStats>) {
        self.blocks.push((name, kind, stats));
    }

    /// Every block, workers first.
    pub fn stats(&self) -> impl Iterator<Item = &WorkerStats> {
        self.blocks.iter().map(|(_, _, s)| &**s)
    }

    /// The workers' blocks, with their names.
    pub fn workers(&self) -> impl Iterator<Item = (&str, &WorkerStats)> {
        self.blocks
            .iter()
            .filter(|(_, k, _)| *k == LcoreKind::Worker)
            .map(|(n, _, s)| (n.as_str(), &**s))
    }

    /// The totals alone (cheap: no destination is read).
    pub fn totals(&self) -> Totals {
        Totals::of(self.stats())
    }

    /// Reads every block once; `dests` are the destinations to report, in
    /// that order. Ports and taps are the caller's to add.
    pub fn read(&self, dests: &[DestSlot]) -> Snapshot {
        let lcores: Vec<LcoreCounts> = self
            .blocks
            .iter()
            .map(|(name, kind, s)| LcoreCounts {
                name: name.clone(),
                kind: *kind,
                totals: Totals::of([&**s]),
            })
            .collect();
        let mut total = Totals::of([]);
        for l in &lcores {
            total += &l.totals;
        }
        let destinations = dests
            .iter()
            .map(|d| DestCounts::read(d, self.stats()))
            .collect();
        Snapshot {
            lcores,
            total,
            destinations,
            tool_ports: Vec::new(),
            uplinks: Vec::new(),
            rules: Vec::new(),
            ports: Vec::new(),
            taps: Vec::new(),
        }
    }

    /// The counters of the tool ports named `names` (the config's tool
    /// ports: tool port index `i` is `names[i]`), summed over the lcores.
    pub fn tool_ports(&self, names: &[String]) -> Vec<ToolPortCounts> {
        self.port_counts(names, MAX_TOOL_PORTS, |s| &s.tool_ports)
    }

    /// The counters of the uplinks named `names` (uplink index `i` is
    /// `names[i]`), summed over the lcores.
    pub fn uplinks(&self, names: &[String]) -> Vec<ToolPortCounts> {
        self.port_counts(names, MAX_UPLINKS, |s| &s.uplinks)
    }

    fn port_counts(
        &self,
        names: &[String],
        max: usize,
        of: impl Fn(&WorkerStats) -> &[crossbeam_utils::CachePadded<ToolPortCounters>],
    ) -> Vec<ToolPortCounts> {
        let mut out: Vec<ToolPortCounts> = names
            .iter()
            .take(max)
            .map(|n| ToolPortCounts {
                name: n.clone(),
                ..ToolPortCounts::default()
            })
            .collect();
        for s in self.stats() {
            for (o, c) in out.iter_mut().zip(of(s).iter()) {
                o.tx_packets += c.tx_packets.get();
                o.tx_bytes += c.tx_bytes.get();
                o.dropped_tx_full += c.dropped_tx_full.get();
            }
        }
        out
    }
}

impl CounterBlocks {
    /// Hits of each rule of the classifier of generation `classifier`,
    /// named `names` by rule id, then the default's (named `default`),
    /// summed over the workers that run it (one that has not adopted it
    /// yet adds nothing).
    pub fn rules(&self, classifier: u64, names: &[String]) -> Vec<RuleCount> {
        let mut out: Vec<RuleCount> = names
            .iter()
            .cloned()
            .chain(std::iter::once("default".to_owned()))
            .map(|name| RuleCount {
                name,
                ..RuleCount::default()
            })
            .collect();
        for s in self.stats() {
            let r = s.rules.load();
            if r.classifier != classifier {
                continue;
            }
            for (id, o) in out.iter_mut().enumerate() {
                let (p, b) = r.get(id);
                o.packets += p;
                o.bytes += b;
            }
        }
        out
    }
}

/// One rule's hits (or the default action's), summed over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCount {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// One tool port's (or uplink's) counters, summed over the lcores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPortCounts {
    pub name: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Copies its TX queue refused.
    pub dropped_tx_full: u64,
}

/// A destination to report: its name, its counter slot (which stays with
/// the name across policy swaps), and whether the running policy still has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSlot {
    pub name: String,
    pub slot: u16,
    pub removed: bool,
}

/// One lcore's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcoreCounts {
    /// As the console shows it: `worker 0 (lcore 1)`, `distributor (lcore 3)`.
    pub name: String,
    pub kind: LcoreKind,
    pub totals: Totals,
}

/// One destination's counters, summed over the lcores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestCounts {
    pub name: String,
    pub slot: u16,
    /// No longer in the running policy (its counters stay).
    pub removed: bool,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Copies cut to fit the uplink MTU (also in `tx_packets`).
    pub truncated_to_mtu: u64,
    drops: [u64; DestDrop::ALL.len()],
    strip: [u64; StripCounters::COUNT],
    mask: [u64; MaskCounters::COUNT],
}

impl DestCounts {
    fn read<'a>(d: &DestSlot, lcores: impl Iterator<Item = &'a WorkerStats>) -> DestCounts {
        let mut c = DestCounts {
            name: d.name.clone(),
            slot: d.slot,
            removed: d.removed,
            tx_packets: 0,
            tx_bytes: 0,
            truncated_to_mtu: 0,
            drops: [0; DestDrop::ALL.len()],
            strip: [0; StripCounters::COUNT],
            mask: [0; MaskCounters::COUNT],
        };
        for w in lcores {
            let s = &w.dests[usize::from(d.slot)];
            c.tx_packets += s.tx_packets.get();
            c.tx_bytes += s.tx_bytes.get();
            c.truncated_to_mtu += s.truncated_to_mtu.get();
            for r in DestDrop::ALL {
                c.drops[r as usize] += s.drop(r).get();
            }
            for (a, x) in c.strip.iter_mut().zip(&s.strip) {
                *a += x.get();
            }
            for (a, x) in c.mask.iter_mut().zip(&s.mask) {
                *a += x.get();
            }
        }
        c
    }

    /// The strip stage's counts by name ([`StripCounters::iter`]'s names).
    pub fn strip(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        StripCounters::default()
            .iter()
            .zip(self.strip)
            .map(|((name, _), n)| (name, n))
    }

    /// The mask stage's counts by name ([`MaskCounters::iter`]'s names).
    pub fn mask(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        MaskCounters::default()
            .iter()
            .zip(self.mask)
            .map(|((name, _), n)| (name, n))
    }

    /// Copies dropped for `reason`.
    pub fn drop(&self, reason: DestDrop) -> u64 {
        self.drops[reason as usize]
    }
}

/// One port's device counters and link events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCounts {
    pub id: u16,
    pub name: String,
    /// Its role as the console prints it (`Input`, `Uplink`, `Tool`).
    pub role: String,
    /// The device's counters, or why they could not be read.
    pub stats: Result<PortStats, String>,
    pub events: PortEvents,
}

/// A pdump tap's counters (the primary's port it copies from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapCounts {
    pub id: u16,
    pub name: String,
    pub stats: TapStats,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Each worker, then the distributor.
    pub lcores: Vec<LcoreCounts>,
    /// The sum of `lcores`.
    pub total: Totals,
    pub destinations: Vec<DestCounts>,
    /// Indexed by tool port index; the caller's to add
    /// ([`CounterBlocks::tool_ports`]), as it knows their names.
    pub tool_ports: Vec<ToolPortCounts>,
    /// Indexed by uplink index; the caller's to add
    /// ([`CounterBlocks::uplinks`]): each uplink's tunnel copies.
    pub uplinks: Vec<ToolPortCounts>,
    /// The running policy's rules by id, then the default action; the
    /// caller's to add ([`CounterBlocks::rules`]), as it knows the policy.
    pub rules: Vec<RuleCount>,
    pub ports: Vec<PortCounts>,
    pub taps: Vec<TapCounts>,
}

impl Snapshot {
    /// The destination counted in `slot`, if it was read.
    pub fn destination(&self, slot: u16) -> Option<&DestCounts> {
        self.destinations.iter().find(|d| d.slot == slot)
    }

    /// The workers alone (not the distributor).
    pub fn workers(&self) -> impl Iterator<Item = &LcoreCounts> {
        self.lcores.iter().filter(|l| l.kind == LcoreKind::Worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::counters::Terminal;

    #[test]
    fn one_reading_sums_lcores_and_destinations() {
        let a = Arc::new(WorkerStats::default());
        let b = Arc::new(WorkerStats::default());
        a.counters.rx.add(5);
        a.counters.terminal(Terminal::Forwarded).add(5);
        b.counters.rx.add(2);
        b.counters.terminal(Terminal::Filtered).add(1);
        a.dests[3].tx_packets.add(4);
        b.dests[3].tx_packets.add(1);
        b.dests[3].drop(DestDrop::TxFull).add(2);
        let mut blocks = CounterBlocks::default();
        blocks.push("worker 0".into(), LcoreKind::Worker, a);
        blocks.push("distributor".into(), LcoreKind::Distributor, b);
        let s = blocks.read(&[DestSlot {
            name: "noc".into(),
            slot: 3,
            removed: false,
        }]);
        assert_eq!(s.total.rx, 7);
        assert_eq!(s.total.in_flight(), 1);
        assert_eq!(s.total, blocks.totals());
        assert_eq!(s.lcores.len(), 2);
        assert_eq!(s.workers().count(), 1);
        let d = s.destination(3).expect("read");
        assert_eq!((d.tx_packets, d.drop(DestDrop::TxFull)), (5, 2));
        assert!(s.destination(4).is_none());
    }

    #[test]
    fn tool_ports_sum_over_lcores_by_index() {
        let a = Arc::new(WorkerStats::default());
        let b = Arc::new(WorkerStats::default());
        a.tool_ports[1].tx_packets.add(3);
        b.tool_ports[1].tx_packets.add(4);
        b.tool_ports[1].tx_bytes.add(400);
        a.tool_ports[0].dropped_tx_full.add(2);
        let mut blocks = CounterBlocks::default();
        blocks.push("worker 0".into(), LcoreKind::Worker, a);
        blocks.push("worker 1".into(), LcoreKind::Worker, b);
        let t = blocks.tool_ports(&["ids1".into(), "ids2".into()]);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].dropped_tx_full), ("ids1", 2));
        assert_eq!(
            (t[1].name.as_str(), t[1].tx_packets, t[1].tx_bytes),
            ("ids2", 7, 400)
        );
    }

    #[test]
    fn uplinks_sum_over_lcores_by_index_and_clear_with_the_rest() {
        let a = Arc::new(WorkerStats::default());
        let b = Arc::new(WorkerStats::default());
        a.uplinks[1].tx_packets.add(3);
        b.uplinks[1].tx_packets.add(4);
        b.uplinks[0].tx_bytes.add(90);
        let mut blocks = CounterBlocks::default();
        blocks.push("worker 0".into(), LcoreKind::Worker, Arc::clone(&a));
        blocks.push("worker 1".into(), LcoreKind::Worker, b);
        let u = blocks.uplinks(&["up-a".into(), "up-b".into()]);
        assert_eq!((u[0].name.as_str(), u[0].tx_bytes), ("up-a", 90));
        assert_eq!((u[1].name.as_str(), u[1].tx_packets), ("up-b", 7));
        a.zero();
        assert_eq!(
            blocks.uplinks(&["up-a".into(), "up-b".into()])[1].tx_packets,
            4
        );
    }
}
