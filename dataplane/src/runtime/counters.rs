//! Per-worker counters: each block on cache lines of its own (crossbeam's
//! `CachePadded`, so no two workers' counters share a line), written only
//! by their worker with plain relaxed stores (no locked instruction on the
//! fast path), read by the main lcore into a `Snapshot`.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::flow::table::MeterStats;
use crate::runtime::polling::Polling;
use crate::stage::decap::DecapStats;
use crate::stage::dedup::DedupStats;
use crate::stage::mask::MaskCounters;
use crate::stage::strip::StripCounters;

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

/// A counter with exactly one writer. `add` is a load and a store, not an
/// atomic read-modify-write: only the owning worker may call it.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Overwrites the value (for mirrors of counters kept elsewhere).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Where every received packet ends: exactly one of these (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// At least one destination took it.
    Forwarded,
    /// No rule wanted it (a drop rule or the default).
    Filtered,
    /// A copy seen within the dedup window.
    Deduplicated,
    /// Shed on purpose while the appliance protects itself.
    DroppedProtect,
    /// No mbuf for a copy.
    DroppedNoMbuf,
    /// The TX queue stayed full.
    DroppedTxFull,
    /// A destination's rate limit.
    DroppedRateLimit,
    /// The destination's next hop is not resolved.
    DroppedNoNexthop,
    /// Too big for the uplink MTU with `oversize = "drop"`.
    DroppedTooBig,
    /// Anything else that went wrong (no headroom, …).
    DroppedError,
    /// Every destination left it out by sampling (of the rule or its own).
    Sampled,
    /// Its tool group had no live member.
    DroppedNoTool,
}

impl Terminal {
    pub const ALL: [Terminal; 12] = [
        Terminal::Forwarded,
        Terminal::Filtered,
        Terminal::Deduplicated,
        Terminal::DroppedProtect,
        Terminal::DroppedNoMbuf,
        Terminal::DroppedTxFull,
        Terminal::DroppedRateLimit,
        Terminal::DroppedNoNexthop,
        Terminal::DroppedTooBig,
        Terminal::DroppedError,
        Terminal::Sampled,
        Terminal::DroppedNoTool,
    ];

    /// The counter's name as the console prints it.
    pub fn name(self) -> &'static str {
        match self {
            Terminal::Forwarded => "forwarded",
            Terminal::Filtered => "filtered",
            Terminal::Deduplicated => "deduplicated",
            Terminal::DroppedProtect => "dropped_protect",
            Terminal::DroppedNoMbuf => "dropped_no_mbuf",
            Terminal::DroppedTxFull => "dropped_tx_full",
            Terminal::DroppedRateLimit => "dropped_rate_limit",
            Terminal::DroppedNoNexthop => "dropped_no_nexthop",
            Terminal::DroppedTooBig => "dropped_too_big",
            Terminal::DroppedError => "dropped_error",
            Terminal::Sampled => "sampled",
            Terminal::DroppedNoTool => "dropped_no_tool",
        }
    }
}

/// One worker's packet counters.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx: Counter,
    pub rx_bytes: Counter,
    terminals: [Counter; Terminal::ALL.len()],
    /// Malformed frames (also in a terminal counter: they are still forwarded
    /// when a rule wants them).
    pub parse_errors: Counter,
    /// Packets of the uplink for the main lcore (ARP, ND).
    pub exceptions: Counter,
    /// Exception packets dropped because the ring to the main lcore was full.
    pub exceptions_dropped: Counter,
    /// Packets on the uplink that are not for us (not in `rx`).
    pub uplink_ignored: Counter,
    /// Flow telemetry datagrams (sFlow, NetFlow, IPFIX) to the uplink's
    /// address handed to the intake thread (not in `rx`).
    pub intake: Counter,
    /// Intake datagrams dropped because the ring to the intake thread was full.
    pub intake_dropped: Counter,
    /// Mbufs the RX queues dropped on receipt, their chain inconsistent (not
    /// in `rx`: they never reached the pipeline).
    pub rx_invalid: Counter,
    /// The last `clear fwd stats all` this worker carried out.
    pub cleared_epoch: Counter,
    /// 1 once the worker polls (its tables are built): start-up waits for it.
    pub started: Counter,
    /// Up while the lcore's current round polls the inputs: `stop` waits
    /// for it to go down.
    pub polling: Polling,
    /// Bursts processed, and the policy swaps this worker has taken.
    pub bursts: Counter,
    pub policy_swaps: Counter,
    /// Times an idle worker waited (slept, or waited for an RX
    /// interrupt), and of those, the ones an interrupt ended; not zeroed
    /// by `clear fwd stats`.
    pub idle_waits: Counter,
    pub idle_interrupts: Counter,
}

impl WorkerCounters {
    #[inline]
    pub fn terminal(&self, t: Terminal) -> &Counter {
        &self.terminals[t as usize]
    }

    /// Sum of every terminal counter.
    pub fn terminal_sum(&self) -> u64 {
        self.terminals.iter().map(Counter::get).sum()
    }
}

/// Drop reasons counted per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestDrop {
    NoMbuf,
    TxFull,
    RateLimit,
    NoNexthop,
    TooBig,
    Error,
    /// A tool destination whose group has no live member.
    NoTool,
    /// Left out by the rule's or the destination's sampling.
    Sampled,
}

impl DestDrop {
    pub const ALL: [DestDrop; 8] = [
        DestDrop::NoMbuf,
        DestDrop::TxFull,
        DestDrop::RateLimit,
        DestDrop::NoNexthop,
        DestDrop::TooBig,
        DestDrop::Error,
        DestDrop::NoTool,
        DestDrop::Sampled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DestDrop::NoMbuf => "dropped_no_mbuf",
            DestDrop::TxFull => "dropped_tx_full",
            DestDrop::RateLimit => "dropped_rate_limit",
            DestDrop::NoNexthop => "dropped_no_nexthop",
            DestDrop::TooBig => "dropped_too_big",
            DestDrop::Error => "dropped_error",
            DestDrop::NoTool => "dropped_no_tool",
            DestDrop::Sampled => "sampled",
        }
    }

    /// The terminal counter a packet gets when this was its first drop and
    /// no destination took it.
    pub fn terminal(self) -> Terminal {
        match self {
            DestDrop::NoMbuf => Terminal::DroppedNoMbuf,
            DestDrop::TxFull => Terminal::DroppedTxFull,
            DestDrop::RateLimit => Terminal::DroppedRateLimit,
            DestDrop::NoNexthop => Terminal::DroppedNoNexthop,
            DestDrop::TooBig => Terminal::DroppedTooBig,
            DestDrop::Error => Terminal::DroppedError,
            DestDrop::NoTool => Terminal::DroppedNoTool,
            DestDrop::Sampled => Terminal::Sampled,
        }
    }
}

/// One worker's counters for one destination slot.
#[derive(Debug, Default)]
pub struct DestCounters {
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Copies cut to fit the uplink MTU (also in `tx_packets`).
    pub truncated_to_mtu: Counter,
    drops: [Counter; DestDrop::ALL.len()],
    /// The strip stage's counts, in [`StripCounters::iter`] order.
    pub strip: [Counter; StripCounters::COUNT],
    /// The mask stage's counts, in [`MaskCounters::iter`] order.
    pub mask: [Counter; MaskCounters::COUNT],
}

impl DestCounters {
    #[inline]
    pub fn drop(&self, d: DestDrop) -> &Counter {
        &self.drops[d as usize]
    }

    /// Adds a worker's strip and mask tallies (the drain tick's publish).
    pub fn add_edits(&self, strip: &StripCounters, mask: &MaskCounters) {
        for (c, (_, n)) in self.strip.iter().zip(strip.iter()) {
            if n != 0 {
                c.add(n);
            }
        }
        for (c, (_, n)) in self.mask.iter().zip(mask.iter()) {
            if n != 0 {
                c.add(n);
            }
        }
    }
}

/// One worker's counters for one output port (a tool port: a tool group's
/// member, or a tool destination's port; or an uplink): what it sent, and
/// what its queue refused. An uplink's count only its tunnels' copies, not
/// the ARP/ND frames the main lcore sends there.
#[derive(Debug, Default)]
pub struct ToolPortCounters {
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub dropped_tx_full: Counter,
}

/// One worker's hit counts per rule of one classifier: packets and bytes
/// by rule id, the default action's last. A new classifier gets a new
/// block (rule ids are the policy's), so counts run from the policy's
/// load.
#[derive(Debug, Default)]
pub struct RuleCounters {
    /// The classifier's generation the counts are for.
    pub classifier: u64,
    hits: Box<[(Counter, Counter)]>,
}

impl RuleCounters {
    /// Counters for a classifier of `rules` rules (and the default).
    pub fn new(classifier: u64, rules: usize) -> RuleCounters {
        RuleCounters {
            classifier,
            hits: (0..=rules).map(|_| Default::default()).collect(),
        }
    }

    /// Packets and bytes of rule `id` (`rules` for the default).
    pub fn get(&self, id: usize) -> (u64, u64) {
        self.hits
            .get(id)
            .map_or((0, 0), |(p, b)| (p.get(), b.get()))
    }

    /// Adds a tally (the owning worker only).
    pub fn add(&self, id: usize, packets: u64, bytes: u64) {
        if let Some((p, b)) = self.hits.get(id) {
            p.add(packets);
            b.add(bytes);
        }
    }

    pub fn len(&self) -> usize {
        self.hits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    fn zero(&self) {
        for (p, b) in self.hits.iter() {
            p.set(0);
            b.set(0);
        }
    }
}

/// Tool ports per appliance (the config's `role = "tool"` ports).
pub const MAX_TOOL_PORTS: usize = 64;
/// Uplinks an appliance may have: each worker has a TX lane on each.
pub const MAX_UPLINKS: usize = 8;

/// Destination slots per appliance: counters are indexed by slot, which
/// stays with a destination's name across policy swaps.
pub const MAX_DEST_SLOTS: usize = 1024;

/// Everything one worker counts; shared with the main lcore for reading.
/// Each block is padded to its own cache lines: a worker's writes never
/// invalidate a line another worker writes, nor one the main lcore reads
/// for another block.
#[derive(Debug)]
pub struct WorkerStats {
    pub counters: CachePadded<WorkerCounters>,
    pub dests: Box<[CachePadded<DestCounters>]>,
    /// Indexed by tool port (the config's tool ports, in order).
    pub tool_ports: Box<[CachePadded<ToolPortCounters>]>,
    /// Indexed by uplink index (the config's `[[uplink]]` order).
    pub uplinks: Box<[CachePadded<ToolPortCounters>]>,
    /// Hits per rule of the classifier the worker runs: swapped by the
    /// worker when it adopts a new classifier.
    pub rules: ArcSwap<RuleCounters>,
    /// The dedup stage's own counters: it writes them, the console reads them.
    pub dedup: Arc<DedupStats>,
    /// The decap stage's own counters (decap inputs), likewise.
    pub decap: Arc<DecapStats>,
    /// The flow table's counters (zero without `[flows]`), likewise.
    pub flows: Arc<MeterStats>,
}

impl WorkerStats {
    /// Zeroes every counter. Only the owning worker may call it (between
    /// bursts, with nothing in flight), so the accounting stays exact.
    pub fn zero(&self) {
        let c = &self.counters;
        for x in [
            &c.rx,
            &c.rx_bytes,
            &c.parse_errors,
            &c.exceptions,
            &c.exceptions_dropped,
            &c.uplink_ignored,
            &c.intake,
            &c.intake_dropped,
            &c.bursts,
            &c.policy_swaps,
        ] {
            x.set(0);
        }
        for t in &c.terminals {
            t.set(0);
        }
        self.dedup.zero();
        self.decap.zero();
        self.flows.zero();
        self.rules.load().zero();
        for t in self.tool_ports.iter().chain(self.uplinks.iter()) {
            for x in [&t.tx_packets, &t.tx_bytes, &t.dropped_tx_full] {
                x.set(0);
            }
        }
        for d in self.dests.iter() {
            d.tx_packets.set(0);
            d.tx_bytes.set(0);
            d.truncated_to_mtu.set(0);
            for x in d.drops.iter().chain(&d.strip).chain(&d.mask) {
                x.set(0);
            }
        }
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            counters: CachePadded::default(),
            dests: (0..MAX_DEST_SLOTS)
                .map(|_| CachePadded::default())
                .collect(),
            tool_ports: (0..MAX_TOOL_PORTS)
                .map(|_| CachePadded::default())
                .collect(),
            uplinks: (0..MAX_UPLINKS).map(|_| CachePadded::default()).collect(),
            rules: ArcSwap::default(),
            dedup: Arc::default(),
            decap: Arc::default(),
            flows: Arc::default(),
        }
    }
}

/// A point-in-time sum over workers (or one worker's counters), for the
/// console and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rx: u64,
    pub rx_bytes: u64,
    pub terminals: Vec<(Terminal, u64)>,
    pub parse_errors: u64,
    pub exceptions: u64,
    pub exceptions_dropped: u64,
    pub uplink_ignored: u64,
    pub intake: u64,
    pub intake_dropped: u64,
    pub decapsulated: u64,
    pub decap_not_tunnel: u64,
    pub decap_not_ethernet: u64,
    pub decap_errors: u64,
    pub rx_invalid: u64,
    pub dedup_checked: u64,
    pub dedup_hits: u64,
    pub dedup_inserts: u64,
    pub dedup_evictions: u64,
    /// Flow metering (`[flows]`): packets counted into a flow, flows
    /// created, packets whose bucket was full, flows expired by reason,
    /// records the export ring refused, flows in the tables now.
    pub flow_packets: u64,
    pub flows_created: u64,
    pub flow_misses: u64,
    pub flows_idle: u64,
    pub flows_active_timeout: u64,
    pub flows_ended: u64,
    pub flows_forced: u64,
    pub flow_ring_full: u64,
    pub flows_in_table: u64,
}

impl Totals {
    /// Sums the given workers' counters.
    pub fn of<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Totals {
        let mut t = Totals {
            terminals: Terminal::ALL.iter().map(|&x| (x, 0)).collect(),
            ..Totals::default()
        };
        for w in workers {
            t += &Totals::read(w);
        }
        t
    }

    /// One worker's counters, each read once.
    fn read(w: &WorkerStats) -> Totals {
        let (c, d, x) = (&w.counters, w.dedup.snapshot(), w.decap.snapshot());
        let f = &w.flows;
        Totals {
            rx: c.rx.get(),
            rx_bytes: c.rx_bytes.get(),
            terminals: Terminal::ALL
                .iter()
                .map(|&x| (x, c.terminal(x).get()))
                .collect(),
            parse_errors: c.parse_errors.get(),
            exceptions: c.exceptions.get(),
            exceptions_dropped: c.exceptions_dropped.get(),
            uplink_ignored: c.uplink_ignored.get(),
            intake: c.intake.get(),
            intake_dropped: c.intake_dropped.get(),
            decapsulated: x.decapsulated,
            decap_not_tunnel: x.not_tunnel,
            decap_not_ethernet: x.not_ethernet,
            decap_errors: x.errors(),
            rx_invalid: c.rx_invalid.get(),
            dedup_checked: d.checked,
            dedup_hits: d.hits,
            dedup_inserts: d.inserts,
            dedup_evictions: d.evictions,
            flow_packets: f.packets.get(),
            flows_created: f.created.get(),
            flow_misses: f.misses.get(),
            flows_idle: f.expired_idle.get(),
            flows_active_timeout: f.expired_active.get(),
            flows_ended: f.expired_end.get(),
            flows_forced: f.expired_forced.get(),
            flow_ring_full: f.ring_full.get(),
            flows_in_table: f.active.get(),
        }
    }

    pub fn terminal(&self, t: Terminal) -> u64 {
        self.terminals
            .iter()
            .find(|(x, _)| *x == t)
            .map_or(0, |(_, v)| *v)
    }

    pub fn terminal_sum(&self) -> u64 {
        self.terminals.iter().map(|(_, v)| v).sum()
    }

    /// `rx - Σ terminals`: packets still in flight inside the workers; 0
    /// whenever the workers are idle or stopped.
    pub fn in_flight(&self) -> i64 {
        self.rx as i64 - self.terminal_sum() as i64
    }
}

impl AddAssign<&Totals> for Totals {
    fn add_assign(&mut self, o: &Totals) {
        for (term, v) in &o.terminals {
            match self.terminals.iter_mut().find(|(x, _)| x == term) {
                Some((_, n)) => *n += v,
                None => self.terminals.push((*term, *v)),
            }
        }
        for (a, b) in [
            (&mut self.rx, o.rx),
            (&mut self.rx_bytes, o.rx_bytes),
            (&mut self.parse_errors, o.parse_errors),
            (&mut self.exceptions, o.exceptions),
            (&mut self.exceptions_dropped, o.exceptions_dropped),
            (&mut self.uplink_ignored, o.uplink_ignored),
            (&mut self.intake, o.intake),
            (&mut self.intake_dropped, o.intake_dropped),
            (&mut self.decapsulated, o.decapsulated),
            (&mut self.decap_not_tunnel, o.decap_not_tunnel),
            (&mut self.decap_not_ethernet, o.decap_not_ethernet),
            (&mut self.decap_errors, o.decap_errors),
            (&mut self.rx_invalid, o.rx_invalid),
            (&mut self.dedup_checked, o.dedup_checked),
            (&mut self.dedup_hits, o.dedup_hits),
            (&mut self.dedup_inserts, o.dedup_inserts),
            (&mut self.dedup_evictions, o.dedup_evictions),
            (&mut self.flow_packets, o.flow_packets),
            (&mut self.flows_created, o.flows_created),
            (&mut self.flow_misses, o.flow_misses),
            (&mut self.flows_idle, o.flows_idle),
            (&mut self.flows_active_timeout, o.flows_active_timeout),
            (&mut self.flows_ended, o.flows_ended),
            (&mut self.flows_forced, o.flows_forced),
            (&mut self.flow_ring_full, o.flow_ring_full),
            (&mut self.flows_in_table, o.flows_in_table),
        ] {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_block_keeps_cache_lines_of_its_own() {
        use std::mem::{align_of, size_of};
        // A destination slot's counters never share a line with the next
        // slot's, nor a worker's block with another allocation.
        assert_eq!(size_of::<CachePadded<DestCounters>>() % 64, 0);
        assert!(align_of::<CachePadded<DestCounters>>() >= 64);
        assert_eq!(size_of::<CachePadded<WorkerCounters>>() % 64, 0);
        assert!(align_of::<WorkerStats>() >= 64);
    }

    #[test]
    fn totals_sum_workers_and_check_the_identity() {
        let a = WorkerStats::default();
        let b = WorkerStats::default();
        a.counters.rx.add(5);
        a.counters.terminal(Terminal::Forwarded).add(3);
        a.counters.terminal(Terminal::Filtered).add(2);
        b.counters.rx.add(4);
        b.counters.terminal(Terminal::Deduplicated).add(3);
        let t = Totals::of([&a, &b]);
        assert_eq!(t.rx, 9);
        assert_eq!(t.terminal(Terminal::Forwarded), 3);
        assert_eq!(t.terminal_sum(), 8);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(Terminal::ALL.len(), 12);
        for (i, term) in Terminal::ALL.iter().enumerate() {
            assert_eq!(*term as usize, i, "ALL is in discriminant order");
        }
        for (i, d) in DestDrop::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }
}
