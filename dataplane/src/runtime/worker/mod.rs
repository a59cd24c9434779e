//! The worker loop, DPDK l2fwd style: poll every source, run the burst to
//! completion through the stages, buffer TX with a periodic drain.
//!
//! Every received packet ends in exactly one terminal counter. A packet
//! whose copies wait in the TX buffer has a *fate* entry that is resolved
//! when the last copy was sent or dropped: forwarded if any copy went out,
//! else the first drop reason.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};

use crate::dpdk::{capture_time_in_use, tsc_now, Batch, Mbuf, Mempool, Ring, RxQueue, TxQueue};
use crate::flow::table::NO_HINT;
use crate::frame::Frame;
use crate::runtime::clock::Clock;
use crate::runtime::counters::{DestCounters, DestDrop, Terminal, WorkerStats};
use crate::runtime::idle::{Idle, IdleConfig};
use crate::runtime::ratelimit::DestLimiter;
use crate::runtime::tables::Tables;
use crate::runtime::trace::{DestTrace, Trace, TraceRecord};
use crate::stage::dedup::{Dedup, DedupConfig, Fingerprint, Verdict as DedupVerdict};
use crate::stage::encap::{EncapError, EncapMeta, EncapTemplate};
use crate::stage::filter::{Action, BurstFields, FlowCache, Verdict};
use crate::stage::parse::{parse, parse_to, Layers};
use crate::stage::slice::{slice, SliceSpec};
use crate::stage::tag::TagInfo;
use crate::stage::{Direction, BURST};
use crate::wire::ethernet::ethertype;
use crate::wire::ip_proto;

mod decap;
mod direct;
mod intake;
mod meter;
mod multi;
mod plan;
mod rules;
mod tool;
mod tx;
pub use decap::DecapSetup;
use direct::Direct;
pub use intake::IntakeTap;
pub use meter::MeterSetup;
use plan::{BurstPlans, Plans, RulePlan, Target};
use tool::{sampled_out, takes, Edits, Sampled};
use tx::{LaneTx, TxBuffer, TxMeta, NO_FATE, SOLO};

// The run word's values live beside the flag that reads them, which
// builds without DPDK (the counters hold it).
pub use super::polling::run_state;

/// Where a worker receives from.
#[derive(Debug)]
pub enum Source {
    /// Its own RX queue of an input port (RSS, or a single worker);
    /// `decap` when the port is in decap mode.
    Queue {
        rxq: RxQueue,
        direction: Direction,
        decap: bool,
    },
    /// Its ring from the distributor; the mbuf's port says where it came in.
    Ring(Arc<Ring<Mbuf>>),
    /// Copies of a primary process's packets (pdump), all of one direction:
    /// a tap ring, or the distributor's ring of that direction.
    Tap {
        ring: Arc<Ring<Mbuf>>,
        direction: Direction,
    },
}

/// Everything a worker owns or shares, handed over at launch.
pub struct WorkerSetup {
    pub index: usize,
    pub workers: usize,
    pub appliance_id: u16,
    pub sources: Vec<Source>,
    /// Direction of each input port id (for ring sources).
    pub port_direction: Vec<Direction>,
    /// Whether each input port id is in decap mode (for ring sources).
    pub port_decap: Vec<bool>,
    /// Decap input port ids with an address of their own: their ARP/ND
    /// frames go to the main lcore, which answers.
    pub port_answers: Vec<bool>,
    /// This worker's RX queues on the uplinks it polls (ARP/ND arrive
    /// there): an uplink with fewer RX queues than workers is polled by
    /// the first ones.
    pub uplink_rx: Vec<RxQueue>,
    /// This worker's TX queue on every uplink, by uplink index (a tunnel
    /// destination's `TunnelOut::uplink`).
    pub uplink_tx: Vec<TxQueue>,
    /// This worker's TX queue on every tool port, by tool port index (tool
    /// destinations, and decap inputs' tool port).
    pub tool_ports: Vec<TxQueue>,
    /// The decap front-end's settings, for inputs in decap mode.
    pub decap: DecapSetup,
    /// ARP/ND frames for the main lcore.
    pub exceptions: Arc<Ring<Mbuf>>,
    /// Flow telemetry to an uplink's address, for the intake thread.
    pub intake: Option<IntakeTap>,
    /// Frames the main lcore wants sent on an uplink (ARP/ND), each with
    /// that uplink's port id as its port; worker 0 only.
    pub control_tx: Option<Arc<Ring<Mbuf>>>,
    pub pool: Arc<Mempool>,
    /// Small mbufs (headroom only) for indirect clones and the header
    /// segments in front of them; none when an uplink cannot send chained
    /// mbufs, and then every extra destination gets a full copy.
    pub clone_pool: Option<Arc<Mempool>>,
    pub dedup: DedupConfig,
    pub tables: Arc<ArcSwap<Tables>>,
    pub stats: Arc<WorkerStats>,
    pub state: Arc<AtomicU8>,
    pub clock: Clock,
    pub flow_cache_entries: usize,
    /// Packet trace shared with the console.
    pub trace: Arc<Trace>,
    /// The dedup window the console wants (µs); applied at the next burst.
    pub dedup_window_us: Arc<AtomicU32>,
    /// Bumped by `clear fwd stats all`: the worker zeroes its own counters.
    pub clear_epoch: Arc<AtomicU64>,
    /// `protect` shedding, set by the guard: see [`shed`].
    pub protect: Arc<AtomicU64>,
    /// How the worker waits when nothing arrives.
    pub idle: IdleConfig,
    /// Flow metering (`[flows]`); none when off.
    pub flows: Option<MeterSetup>,
}

/// The protect word: 0 while running; in protect, the mode in the high
/// half and its number in the low half.
pub mod shed {
    /// Keep one packet in N (N in the low half).
    pub const SAMPLE: u64 = 1;
    /// Keep packets of the first K rules (K in the low half).
    pub const PRIORITY: u64 = 2;
}

/// Per-worker state that lives across bursts.
pub(super) struct Worker {
    s: WorkerSetup,
    dedup: Dedup,
    cache: FlowCache,
    tx: TxBuffer,
    /// Local per-destination state, rebuilt on a new tables generation.
    templates: Vec<Option<EncapTemplate>>,
    limiters: Vec<DestLimiter>,
    /// Each rule's targets, flattened for the forward path.
    plans: Plans,
    /// The policy sends every packet to one destination as it is: bursts
    /// skip parse and classification.
    direct: Option<Direct>,
    generation: u64,
    clear_epoch: u64,
    /// Packets seen while sampling in protect.
    shed_count: u64,
    /// The decap front-end's stage and TX buffer.
    decap: decap::DecapState,
    /// Per destination and per rule: sampling, strip and mask.
    edits: Edits,
    /// The longest untagged frame each tool port carries (its MTU plus the
    /// Ethernet header), by tool port index.
    tool_max_frame: Vec<usize>,
    /// Hits per rule since the last drain tick.
    rule_hits: rules::RuleTally,
    /// Polling, sleeping or waiting for interrupts when nothing arrives.
    idle: Idle,
    /// The flow table, when metering is on.
    meter: Option<meter::Meter>,
    /// What parse found in the burst's packets: kept between bursts (parse
    /// fills every slot it uses), where an array on the stack was zeroed
    /// per burst, 2 KiB of stores. Lent to [`Worker::process_burst`].
    layers: Option<Box<[Layers; BURST]>>,
}

/// The loop's own state between rounds.
struct Looping {
    tables: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
    drain_ticks: u64,
    last_drain: u64,
    rx: Batch<BURST>,
}

/// Runs the worker loop until the state says `EXIT`, then drains.
pub fn run(setup: WorkerSetup) -> Result<(), String> {
    let (mut w, mut lp) = Worker::new(setup)?;
    while let Some(got) = w.round(&mut lp) {
        if got == 0 {
            w.rest(None);
        } else {
            w.idle.busy(got);
        }
    }
    w.finish();
    Ok(())
}

/// A worker that runs on the main lcore between its control rounds
/// (one-lcore mode): [`InlineWorker::run_for`] polls for a share of time,
/// then hands the lcore back.
pub struct InlineWorker {
    w: Worker,
    lp: Looping,
}

impl InlineWorker {
    /// Builds the worker on the calling thread (the main lcore).
    pub fn new(setup: WorkerSetup) -> Result<InlineWorker, String> {
        let (w, lp) = Worker::new(setup)?;
        Ok(InlineWorker { w, lp })
    }

    /// Runs rounds for about `share`, idle waits included; false once the
    /// run word says exit (the TX buffers are drained then).
    pub fn run_for(&mut self, share: Duration) -> bool {
        let hz = self.w.s.clock.hz();
        let ticks = (share.as_nanos() as u64).saturating_mul(hz) / 1_000_000_000;
        let start = tsc_now();
        loop {
            match self.w.round(&mut self.lp) {
                None => {
                    self.w.finish();
                    return false;
                }
                Some(0) => {
                    let left = ticks.saturating_sub(tsc_now().wrapping_sub(start));
                    self.w.rest(Some(Duration::from_nanos(
                        left.saturating_mul(1_000_000_000) / hz.max(1),
                    )));
                }
                Some(got) => self.w.idle.busy(got),
            }
            if tsc_now().wrapping_sub(start) >= ticks {
                // Between rounds: `stop`, which runs on this lcore, need
                // not wait for it.
                self.w.s.stats.counters.polling.lower();
                return true;
            }
        }
    }
}

impl Worker {
    /// The worker's tables, TX buffer and idle state; the loop's state.
    fn new(setup: WorkerSetup) -> Result<(Worker, Looping), String> {
        let decap = decap::DecapState::new(&setup.decap, Arc::clone(&setup.stats.decap))
            .map_err(|e| format!("worker {}: decap: {e}", setup.index))?;
        let dedup = Dedup::new_on_hugepages(&setup.dedup)
            .map_err(|e| format!("worker {}: {e}", setup.index))?
            .with_stats(Arc::clone(&setup.stats.dedup));
        let cache = FlowCache::new(setup.flow_cache_entries);
        let meter = match setup.flows.clone() {
            Some(f) => Some(
                meter::Meter::new(f).map_err(|e| format!("worker {}: flows: {e}", setup.index))?,
            ),
            None => None,
        };
        let tx = TxBuffer::new(setup.uplink_tx.len(), setup.tool_ports.len());
        let tool_max_frame = setup
            .tool_ports
            .iter()
            .map(|q| usize::from(q.mtu().unwrap_or(1500)) + 14)
            .collect();
        let queues: Vec<(u16, u16)> = setup
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Queue { rxq, .. } => Some((rxq.port(), rxq.queue())),
                Source::Ring(_) | Source::Tap { .. } => None,
            })
            .collect();
        let idle = Idle::new(setup.idle, &queues)
            .map_err(|e| format!("worker {}: idle = \"interrupt\": {e}", setup.index))?;
        let lp = Looping {
            tables: Cache::new(Arc::clone(&setup.tables)),
            drain_ticks: setup.clock.hz() / 10_000, // 100 µs, as l2fwd
            last_drain: tsc_now(),
            rx: Batch::new(),
        };
        let w = Worker {
            s: setup,
            dedup,
            cache,
            tx,
            templates: Vec::new(),
            limiters: Vec::new(),
            plans: Plans::default(),
            direct: None,
            generation: u64::MAX,
            clear_epoch: 0,
            shed_count: 0,
            decap,
            edits: Edits::default(),
            tool_max_frame,
            rule_hits: rules::RuleTally::default(),
            idle,
            meter,
            layers: Some(Box::new([Layers::default(); BURST])),
        };
        w.s.stats.counters.started.add(1);
        Ok((w, lp))
    }

    /// After an empty round: sends what the TX buffers hold when the link
    /// has just gone quiet (a light load's packets do not wait for the
    /// drain tick), and waits when the idle mode says so, with the TX
    /// buffers sent first (nothing waits in them while the worker sleeps).
    #[cold]
    #[inline(never)]
    fn rest(&mut self, cap: Option<Duration>) {
        let quiet = self.idle.went_quiet();
        let Some(wait) = self.idle.empty_round() else {
            if quiet {
                self.flush();
            }
            return;
        };
        self.flush();
        let c = &self.s.stats.counters;
        c.idle_waits.add(1);
        if self.idle.wait(wait, cap) {
            c.idle_interrupts.add(1);
        }
    }

    /// Sends what waits in the TX buffers and publishes the last hits.
    fn finish(&mut self) {
        self.flush();
        self.decap.publish();
        self.publish_tallies();
        // Every flow still open leaves as a forced end.
        if let Some(m) = &mut self.meter {
            m.flush();
        }
    }

    /// One round of the loop: every source polled once and its burst run
    /// to completion, the slow path on the drain tick. Returns the packets
    /// received, or `None` once the run word says exit.
    #[inline]
    fn round(&mut self, lp: &mut Looping) -> Option<usize> {
        let state = self.s.state.load(Ordering::Acquire);
        if state == run_state::EXIT {
            return None;
        }
        let epoch = self.s.clear_epoch.load(Ordering::Relaxed);
        if epoch != self.clear_epoch {
            // Resolve every pending copy first: then zero is exact.
            self.flush();
            self.decap.publish();
            self.publish_tallies();
            self.s.stats.zero();
            self.clear_epoch = epoch;
            self.s.stats.counters.cleared_epoch.set(epoch);
        }
        let window = self.s.dedup_window_us.load(Ordering::Relaxed);
        if window != self.dedup.window_us() {
            self.dedup.set_window(window);
        }
        // The quiescent point: the cache lets go of the previous tables
        // here, when it sees new ones. Borrowed, not cloned: a clone's
        // reference count is two locked instructions a round.
        let t = lp.tables.load();
        if t.generation != self.generation {
            self.adopt(t);
        }
        let rx = &mut lp.rx;
        let mut got = 0;
        let polls = self
            .s
            .stats
            .counters
            .polling
            .begin_round(state, &self.s.state);
        if polls {
            for i in 0..self.s.sources.len() {
                let n = match &mut self.s.sources[i] {
                    Source::Queue { rxq, .. } => rxq.rx(rx),
                    Source::Ring(r) | Source::Tap { ring: r, .. } => r.dequeue_batch(rx),
                };
                if n > 0 {
                    got += n;
                    match &self.s.sources[i] {
                        Source::Queue { decap: true, .. } => self.process_decap(rx),
                        Source::Queue { direction, .. } => {
                            let dir = Some(*direction);
                            self.process(t, rx, dir);
                        }
                        Source::Ring(_) => {
                            // A ring may mix ports: decap ones go their way.
                            self.split_decap(rx);
                            self.process(t, rx, None);
                        }
                        Source::Tap { direction, .. } => {
                            let dir = Some(*direction);
                            self.split_decap(rx);
                            self.process(t, rx, dir);
                        }
                    }
                }
            }
        }
        let now = tsc_now();
        if now.wrapping_sub(lp.last_drain) > lp.drain_ticks {
            // The slow path shares the drain tick: ARP/ND can wait
            // 100 µs, and a busy uplink RX costs nothing in between.
            self.poll_uplinks();
            self.poll_control_tx();
            self.flush();
            self.decap.publish();
            self.publish_tallies();
            self.export_rx_invalid();
            if let Some(m) = &mut self.meter {
                m.expire(self.s.clock.now_ns());
            }
            lp.last_drain = now;
        }
        Some(got)
    }

    /// Adds the per-rule hits and the strip and mask tallies to the shared
    /// counters (the drain tick's work, and before a clear or a rebuild).
    fn publish_tallies(&mut self) {
        self.rule_hits.publish(&self.s.stats);
        self.edits.publish(&self.s.stats);
    }

    fn export_rx_invalid(&self) {
        let n = self
            .s
            .sources
            .iter()
            .map(|s| match s {
                Source::Queue { rxq, .. } => rxq.invalid(),
                Source::Ring(_) | Source::Tap { .. } => 0,
            })
            .sum();
        self.s.stats.counters.rx_invalid.set(n);
    }

    /// Takes a new tables generation: local template copies (sequence
    /// numbers continue from the shared counters) and fresh rate limiters.
    fn adopt(&mut self, t: &Tables) {
        // Copies in the TX buffer were built with the old templates: send them first.
        self.flush();
        self.templates = t.dests.iter().map(|d| d.template.clone()).collect();
        self.plans = Plans::build(t);
        // The old destinations' tallies go out before their stages do.
        self.edits.publish(&self.s.stats);
        self.edits = Edits::build(t, &self.s.decap.config);
        self.rule_hits.adopt(t, &self.s.stats);
        let now = tsc_now();
        self.limiters = t
            .policy
            .destinations
            .iter()
            .map(|d| {
                DestLimiter::new(
                    d.rate.mbps,
                    d.rate.pps,
                    self.s.workers as u64,
                    self.s.clock.hz(),
                    now,
                )
            })
            .collect();
        let metering = self.meter.is_some();
        self.direct = Direct::of(t, &self.plans, &self.limiters, metering);
        self.generation = t.generation;
        self.s.stats.counters.policy_swaps.add(1);
    }

    // Not inlined: one call per burst, and `perf/callgrind.sh` counts the
    // instructions spent per packet inside it.
    #[inline(never)]
    fn process(&mut self, t: &Tables, rx: &mut Batch<BURST>, dir: Option<Direction>) {
        let mut layers = self
            .layers
            .take()
            .unwrap_or_else(|| Box::new([Layers::default(); BURST]));
        self.process_burst(t, rx, dir, &mut layers);
        self.layers = Some(layers);
    }

    #[inline(always)]
    fn process_burst(
        &mut self,
        t: &Tables,
        rx: &mut Batch<BURST>,
        dir: Option<Direction>,
        layers: &mut [Layers; BURST],
    ) {
        if let Some(d) = self.direct {
            let plain = self.s.protect.load(Ordering::Relaxed) == 0 && !self.s.trace.armed();
            if plain && self.forward_direct(t, rx, dir, d) {
                return;
            }
        }
        let c = &self.s.stats.counters;
        let n = rx.len();
        c.rx.add(n as u64);
        c.bursts.add(1);
        let now_ns = self.s.clock.now_ns();
        let mut verdicts = [Verdict::default(); BURST];
        let mut plans = [RulePlan::default(); BURST];
        let mut dups = [DedupVerdict::Unique; BURST];
        let mut want_dedup = [false; BURST];
        let mut shed = [false; BURST];
        let protect = self.s.protect.load(Ordering::Relaxed);
        let cls = &t.policy.classifier;
        let mut ports = [0u16; BURST];
        let mut dirs = [Direction::default(); BURST];
        let mut bytes = 0u64;
        let mut parse_errors = 0u64;
        for (i, m) in rx.as_slice().iter().enumerate() {
            bytes += m.pkt_len() as u64;
            // In place: a returned Layers would be built on the stack and
            // copied, a store-forwarding stall per packet.
            parse_to(m.data(), m.pkt_len(), &mut layers[i]);
            parse_errors += u64::from(layers[i].error.is_some());
            ports[i] = m.port();
            dirs[i] = dir.unwrap_or_else(|| self.direction_of(m.port()));
        }
        // Dedup's buckets start loading now, so their DRAM misses overlap
        // the classifier's work instead of stalling dedup's probes.
        let mut fps = [Fingerprint::default(); BURST];
        let prefetched = self.plans.any_dedup();
        if prefetched {
            self.dedup
                .prefetch_burst(rx.as_slice(), &layers[..n], &mut fps[..n]);
        }
        // With metering, the flow cache hands out the meter's hints where
        // the key is the flow's.
        let metering = self.meter.is_some() && self.plans.any_meter();
        let mut hints = [NO_HINT; BURST];
        let fields = BurstFields {
            layers: &layers[..n],
            in_ports: &ports[..n],
            dirs: &dirs[..n],
        };
        let hinted = if metering {
            cls.classify_burst_hinted(&mut self.cache, fields, &mut verdicts[..n], &mut hints[..n])
        } else {
            cls.classify_burst_cached(&mut self.cache, fields, &mut verdicts[..n]);
            false
        };
        if hinted {
            if let Some(m) = &mut self.meter {
                m.prefetch_hinted(&hints[..n]);
            }
        }
        // A burst whose packets all matched one rule (a match-all policy,
        // or one flow's packets) and that protect leaves alone has one plan:
        // looked up once, and its sequence numbers, rule hits and target
        // found without a pass per packet.
        let first = verdicts[0];
        let uniform = n > 0 && protect == 0 && verdicts[..n].iter().all(|v| *v == first);
        let mut any_sampled = false;
        let mut any_dedup = false;
        if uniform {
            let p = self.plans.of(first);
            plans[0] = p;
            want_dedup[..n].fill(p.any_dedup);
            any_dedup = p.any_dedup;
            any_sampled = p.sampled;
        } else {
            for i in 0..n {
                plans[i] = self.plans.of(verdicts[i]);
                shed[i] = protect != 0 && sheds(&mut self.shed_count, protect, verdicts[i]);
                want_dedup[i] = !shed[i] && plans[i].any_dedup;
                any_dedup |= want_dedup[i];
                any_sampled |= plans[i].sampled;
            }
        }
        let burst_plans = if uniform {
            BurstPlans::One(&plans[0])
        } else {
            BurstPlans::Each(&plans[..n])
        };
        c.rx_bytes.add(bytes);
        if parse_errors != 0 {
            c.parse_errors.add(parse_errors);
        }
        if any_dedup {
            if !prefetched {
                self.dedup
                    .prefetch_burst(rx.as_slice(), &layers[..n], &mut fps[..n]);
            }
            // A replayed capture's packets carry their capture time: the
            // window runs on that clock for them.
            if capture_time_in_use() && rx.as_slice().iter().any(|m| m.capture_time_ns().is_some())
            {
                let mut times = [now_ns; BURST];
                for (t, m) in times.iter_mut().zip(rx.as_slice()) {
                    *t = m.capture_time_ns().unwrap_or(now_ns);
                }
                self.dedup.check_prefetched_where_at(
                    &fps[..n],
                    &want_dedup[..n],
                    &times[..n],
                    &mut dups[..n],
                );
            } else {
                self.dedup.check_prefetched_where(
                    &fps[..n],
                    &want_dedup[..n],
                    now_ns,
                    &mut dups[..n],
                );
            }
        }
        // Each packet's flow hash when the meter computed it (encap's UDP
        // source port then comes from it), else encap hashes.
        let mut hashes = [0u32; BURST];
        let mut hashed = None;
        if metering {
            if let Some(m) = &mut self.meter {
                let ms = rx.as_slice();
                let (l, d, ds, h) = (&layers[..n], &dups[..n], &dirs[..n], &mut hashes[..n]);
                let fresh = if hinted {
                    m.observe_burst::<true>(ms, l, burst_plans, d, ds, now_ns, h, &mut hints)
                } else {
                    m.observe_burst::<false>(ms, l, burst_plans, d, ds, now_ns, h, &mut hints)
                };
                // Where the meter probed: its hints kept for the next packets.
                if fresh != 0 {
                    cls.keep_meter_hints(&mut self.cache, fields, &hints, fresh);
                }
                hashed = Some(&hashes);
            }
        }
        self.count_rules(rx, burst_plans, bytes);
        let mut sampled = Sampled::NONE;
        if any_sampled {
            self.sample_burst(
                rx.as_slice(),
                &layers[..n],
                burst_plans,
                &shed[..n],
                &mut sampled,
            );
        }
        let sampling = any_sampled.then_some(&sampled);
        self.reserve_sequences(t, burst_plans, &shed[..n], &dups[..n], sampling);
        let tracing = self.s.trace.armed();
        if !tracing && uniform && !any_sampled {
            let b = Burst {
                layers,
                dups: &dups,
                dirs: &dirs,
                hashes: hashed,
                rule_id: plans[0].rule_id,
                appliance_id: self.s.appliance_id,
                now_ns,
            };
            let done = match *self.plans.targets(plans[0]) {
                [a] => match a.tool {
                    Some(tool) => self.forward_single_tool(t, rx, layers, &dups, a, tool),
                    None => self.forward_single(rx, b, a),
                },
                [] => false,
                _ => self.forward_multi(rx, b, plans[0]),
            };
            if done {
                return;
            }
        }
        for (i, m) in rx.drain().enumerate() {
            let plan = burst_plans.of(i);
            if shed[i] {
                self.count(Terminal::DroppedProtect);
                continue;
            }
            if sampled.by_rule[i] {
                self.count_rule_sampled(*plan);
                continue;
            }
            let p = Packet {
                layers: &layers[i],
                flow_hash: hashed.map(|h| h[i]),
                plan,
                dup: dups[i],
                dir: dirs[i],
                now_ns,
                skip: sampled.by_dest[i],
            };
            if tracing && self.s.trace.take() {
                let mut rec = self.trace_start(t, &m, &layers[i], verdicts[i], dups[i]);
                self.forward::<true>(t, m, &p, Some(&mut rec));
                self.s.trace.record(rec);
            } else {
                self.forward::<false>(t, m, &p, None);
            }
        }
    }

    /// The whole burst follows one plan with one destination (the common
    /// case: a match-all rule, or a flow's packets): the template, the
    /// limiter check and the counters are hoisted out of the per-packet
    /// loop, and each copy settles its packet itself. Returns false, with
    /// the burst untouched, when the destination needs the general path
    /// (no next hop yet, or a rate limit).
    #[inline(always)]
    fn forward_single(&mut self, rx: &mut Batch<BURST>, b: Burst<'_>, a: Target) -> bool {
        if a.edits
            || self
                .limiters
                .get(a.dest)
                .is_some_and(DestLimiter::is_limited)
        {
            return false;
        }
        let Some(Some(tmpl)) = self.templates.get_mut(a.dest) else {
            return false;
        };
        let stats = &*self.s.stats;
        let dc = &stats.dests[usize::from(a.slot)];
        let Some(mut lane) = self
            .tx
            .uplink(usize::from(a.uplink), &mut self.s.uplink_tx, stats)
        else {
            return false;
        };
        let mut deduplicated = 0u64;
        let mut i = 0;
        rx.drain_each(|m| {
            let at = i;
            i += 1;
            if a.dedup && b.dups[at] == DedupVerdict::Duplicate {
                deduplicated += 1;
                return;
            }
            let copy = b.copy(at, m.port());
            encap_solo(tmpl, m, &a, copy, stats, dc, &mut lane);
        });
        count_deduplicated(stats, deduplicated);
        true
    }

    fn trace_start(
        &self,
        t: &Tables,
        m: &Mbuf,
        l: &Layers,
        v: Verdict,
        dup: DedupVerdict,
    ) -> TraceRecord {
        let cls = &t.policy.classifier;
        let rule = match cls.rule_id(v) {
            Some(id) => t
                .policy
                .rule_names
                .get(id as usize)
                .map_or_else(|| format!("rule {id}"), |n| format!("rule {id} {n:?}")),
            None => "no rule matched: default drop".to_owned(),
        };
        let wants_dedup =
            matches!(cls.action(v), Action::Forward(ts) if ts.iter().any(|a| a.dedup));
        TraceRecord {
            worker: self.s.index,
            port: m.port(),
            len: m.pkt_len(),
            parsed: describe_layers(l),
            rule,
            dedup: match (wants_dedup, dup) {
                (false, _) => "not checked".to_owned(),
                (true, DedupVerdict::Unique) => "unique".to_owned(),
                (true, DedupVerdict::Duplicate) => "duplicate".to_owned(),
            },
            verdict: String::new(),
            dests: Vec::new(),
        }
    }

    fn direction_of(&self, port: u16) -> Direction {
        self.s
            .port_direction
            .get(usize::from(port))
            .copied()
            .unwrap_or_default()
    }

    /// Reserves each destination's sequence numbers for this burst in one
    /// atomic add: one per copy that will be sent (not for packets shed or
    /// dropped as duplicates, which must leave no gap at the receiver).
    /// Whether a target takes a packet is [`takes`]'s answer alone. A
    /// burst of one plan that sampling leaves alone asks it once per dedup
    /// verdict, weighted by the packets with that verdict (only its dedup
    /// verdict then tells one packet from another); any other, per packet.
    fn reserve_sequences(
        &mut self,
        t: &Tables,
        plans: BurstPlans<'_>,
        shed: &[bool],
        dups: &[DedupVerdict],
        sampled: Option<&Sampled>,
    ) {
        let mut want = [0u32; 64];
        let mut big: Vec<u32> = Vec::new();
        let mut add = |dest: usize, k: u32| {
            if dest < 64 {
                want[dest] += k;
            } else {
                if big.len() <= dest {
                    big.resize(dest + 1, 0);
                }
                big[dest] += k;
            }
        };
        match (plans, sampled) {
            (BurstPlans::One(p), None) => {
                let (mut unique, mut copies) = (0u32, 0u32);
                for (shed, dup) in shed.iter().zip(dups) {
                    let kept = u32::from(!*shed);
                    match dup {
                        DedupVerdict::Unique => unique += kept,
                        DedupVerdict::Duplicate => copies += kept,
                    }
                }
                let by_verdict = [
                    (DedupVerdict::Unique, unique),
                    (DedupVerdict::Duplicate, copies),
                ];
                for (k, a) in self.plans.targets(*p).iter().enumerate() {
                    let taken = by_verdict
                        .iter()
                        .filter(|(v, _)| takes(a, k, *v, 0))
                        .map(|(_, n)| n)
                        .sum();
                    add(a.dest, taken);
                }
            }
            (plans, sampled) => {
                let sampled = sampled.unwrap_or(&Sampled::NONE);
                for (i, (shed, dup)) in shed.iter().zip(dups).enumerate() {
                    if *shed || sampled.by_rule[i] {
                        continue;
                    }
                    let Some(p) = plans.get(i) else { break };
                    for (k, a) in self.plans.targets(*p).iter().enumerate() {
                        if takes(a, k, *dup, sampled.by_dest[i]) {
                            add(a.dest, 1);
                        }
                    }
                }
            }
        }
        for (d, dt) in t.dests.iter().enumerate() {
            let k = if d < 64 {
                want[d]
            } else {
                big.get(d).copied().unwrap_or(0)
            };
            if k == 0 {
                continue;
            }
            if let Some(Some(tmpl)) = self.templates.get_mut(d) {
                let base = dt.seq.fetch_add(k, Ordering::Relaxed);
                tmpl.set_next_seq(base);
            }
        }
    }

    /// Sends a packet to its rule's destinations. With one destination (the
    /// common case) the copy carries the packet's fate itself; with several,
    /// a fate slot resolves when the last copy is sent or dropped.
    /// `TRACE` is a constant so that the untraced version, the one every
    /// packet but a traced few takes, carries no trace code at all.
    fn forward<const TRACE: bool>(
        &mut self,
        t: &Tables,
        m: Mbuf,
        p: &Packet<'_>,
        trace: Option<&mut TraceRecord>,
    ) {
        let mut trace = if TRACE { trace } else { None };
        let targets = self.plans.targets(*p.plan);
        let n_targets = targets.len();
        let total = if p.skip == 0 && p.dup == DedupVerdict::Unique {
            n_targets
        } else {
            self.count_left_out(p);
            let targets = self.plans.targets(*p.plan);
            (0..n_targets)
                .filter(|&k| takes(&targets[k], k, p.dup, p.skip))
                .count()
        };
        let verdict = if n_targets == 0 {
            Some(Terminal::Filtered)
        } else if total == 0 && p.skip != 0 {
            Some(Terminal::Sampled)
        } else if total == 0 {
            Some(Terminal::Deduplicated)
        } else {
            None
        };
        if let Some(term) = verdict {
            self.count(term);
            if let Some(r) = trace {
                r.verdict = term.name().to_owned();
            }
            return;
        }
        let tag = TagInfo {
            appliance_id: self.s.appliance_id,
            input_port: m.port(),
            rule_id: p.plan.rule_id,
            direction: p.dir,
        };
        if let [a] = *self.plans.targets(*p.plan) {
            // One copy: it is the packet, and its fate is its own.
            let term = match self.send_copy::<TRACE>(t, m, &a, p, tag, SOLO, trace.as_deref_mut()) {
                Ok(()) => None,
                Err(why) => Some(why.terminal()),
            };
            if let Some(r) = trace {
                r.verdict = match term {
                    Some(term) => term.name().to_owned(),
                    None => "forwarded once the copy leaves the TX buffer".to_owned(),
                };
            }
            if let Some(term) = term {
                self.count(term);
            }
            return;
        }
        let fate = self
            .tx
            .new_fate(&mut self.s.uplink_tx, &mut self.s.tool_ports, &self.s.stats);
        let mut original = Some(m);
        let mut k = 0;
        for i in 0..n_targets {
            let a = self.plans.targets(*p.plan)[i];
            if !takes(&a, i, p.dup, p.skip) {
                continue;
            }
            k += 1;
            let Some(src) = original.as_ref() else { break };
            let copy = if k == total {
                match original.take() {
                    Some(m) => m,
                    None => break,
                }
            } else {
                match self.extra_copy(src, &a, p.layers, p.plan.any_edits) {
                    Ok(m) => m,
                    Err(_) => {
                        let why = DestDrop::NoMbuf;
                        self.s.stats.dests[usize::from(a.slot)].drop(why).add(1);
                        self.tx.copy_dropped(fate, why);
                        if let Some(r) = trace.as_deref_mut() {
                            r.dests
                                .push(dest_trace(dest_name(t, a.dest), a.slice, 0, why.name()));
                        }
                        continue;
                    }
                }
            };
            match self.send_copy::<TRACE>(t, copy, &a, p, tag, fate, trace.as_deref_mut()) {
                Ok(()) => self.tx.copy_queued(fate),
                Err(why) => self.tx.copy_dropped(fate, why),
            }
        }
        let term = self.tx.settle(fate, &self.s.stats);
        if let Some(r) = trace {
            r.verdict = match term {
                Some(term) => term.name().to_owned(),
                None => "forwarded once a copy leaves the TX buffer".to_owned(),
            };
        }
    }

    /// A copy of `src` for destination `a`, one that is not the last: an
    /// indirect clone behind a fresh header segment (the data is not
    /// copied; the outer headers go into the header segment, slice and the
    /// MTU cut shorten the clone's own segments) from [`CLONE_MIN_LEN`]
    /// bytes to copy up, else a copy (of the front of the frame for a
    /// destination that slices). The original, sent last, keeps its own
    /// headroom and lengths; encap writes only in front of the shared bytes.
    ///
    /// A copy, not a clone, stays where the copy's path reads or writes the inner
    /// frame as one run of bytes: UDP over IPv6 checksums the whole
    /// datagram (a chain would go out with checksum 0), and a frame without
    /// IP is hashed from its MAC addresses (the header segment holds none).
    /// Where a destination's copy gets stages that write inside the frame
    /// (`stage::strip`, `stage::mask`), every copy of the packet is a real
    /// one: a clone's bytes are the original's, and the original may be
    /// the one edited. Tool destinations get real copies too: their ports'
    /// TX is not known to take chains.
    #[inline]
    fn extra_copy(
        &self,
        src: &Mbuf,
        a: &Target,
        l: &Layers,
        edits: bool,
    ) -> crate::dpdk::Result<Mbuf> {
        // A tunnel destination that slices gets only the front of the
        // frame copied. Not when it edits (its slice follows the edited
        // headers) or is rate-limited (the limiter charges the frame's
        // length before the slice); not to a tool group, whose balancing
        // hash may read past the cut.
        let front = || {
            !a.edits
                && a.tool.is_none()
                && !self
                    .limiters
                    .get(a.dest)
                    .is_some_and(DestLimiter::is_limited)
        };
        // Only tunnels: encap writes nothing inside the frame. No target
        // of the packet may edit (strip, mask) either: the last one does
        // so in the original, whose bytes a clone shares.
        let clones = || {
            let tunnel =
                matches!(self.templates.get(a.dest), Some(Some(t)) if !t.checksums_payload());
            self.s.clone_pool.as_deref().filter(|_| tunnel && !edits)
        };
        multi::copy_for(src, l, a.slice, front, clones, &self.s.pool)
    }

    /// Each packet's rule hit: once for the burst when it all matched one
    /// rule (a match-all policy, or one flow's packets), else per packet.
    #[inline]
    fn count_rules(&mut self, rx: &Batch<BURST>, plans: BurstPlans<'_>, bytes: u64) {
        match plans {
            BurstPlans::One(p) => self.rule_hits.count(p.rule_id, rx.len() as u64, bytes),
            BurstPlans::Each(ps) => {
                for (p, m) in ps.iter().zip(rx.as_slice()) {
                    self.rule_hits.count(p.rule_id, 1, m.pkt_len() as u64);
                }
            }
        }
    }

    /// A packet its rule's sampling left out: `sampled` on each of the
    /// rule's destinations, and the packet's terminal.
    #[cold]
    fn count_rule_sampled(&self, plan: RulePlan) {
        for a in self.plans.targets(plan) {
            self.s.stats.dests[usize::from(a.slot)]
                .drop(DestDrop::Sampled)
                .add(1);
        }
        self.count(Terminal::Sampled);
    }

    /// Counts `sampled` on each destination that sampling left the packet
    /// out of.
    #[cold]
    fn count_left_out(&self, p: &Packet<'_>) {
        if p.skip == 0 {
            return;
        }
        for (k, a) in self.plans.targets(*p.plan).iter().enumerate() {
            if sampled_out(k, p.skip) {
                self.s.stats.dests[usize::from(a.slot)]
                    .drop(DestDrop::Sampled)
                    .add(1);
            }
        }
    }

    /// Slices, encapsulates and queues one copy for destination `a` (or
    /// hands it to [`Worker::send_tool_copy`] for a tool destination). A
    /// copy that cannot go is dropped here and counted on the destination;
    /// the reason is returned for the packet's fate.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn send_copy<const TRACE: bool>(
        &mut self,
        t: &Tables,
        mut copy: Mbuf,
        a: &Target,
        p: &Packet<'_>,
        tag: TagInfo,
        fate: u16,
        trace: Option<&mut TraceRecord>,
    ) -> Result<(), DestDrop> {
        if let Some(tool) = a.tool {
            return self.send_tool_copy::<TRACE>(t, copy, a, tool, p, fate, trace);
        }
        let trace = if TRACE { trace } else { None };
        let edited;
        // An edited copy (masked addresses) is hashed as it leaves.
        let (layers, hash) = if a.edits {
            edited = self.edit_copy(&mut copy, a.dest, p.layers);
            (&edited, None)
        } else {
            (p.layers, p.flow_hash)
        };
        let dc = &self.s.stats.dests[usize::from(a.slot)];
        // The reason is counted on the destination where it arises.
        let dropped = |why: DestDrop, len: usize, trace: Option<&mut TraceRecord>| {
            if let Some(r) = trace {
                r.dests
                    .push(dest_trace(dest_name(t, a.dest), a.slice, len, why.name()));
            }
            Err(why)
        };
        let Some(Some(tmpl)) = self.templates.get_mut(a.dest) else {
            dc.drop(DestDrop::NoNexthop).add(1);
            return dropped(DestDrop::NoNexthop, 0, trace);
        };
        if let Some(l) = self.limiters.get_mut(a.dest).filter(|l| l.is_limited()) {
            let max = tmpl.max_inner_len().min(copy.pkt_len());
            if !l.allow(max + tmpl.header_len(), self.s.clock.tsc_now()) {
                dc.drop(DestDrop::RateLimit).add(1);
                return dropped(DestDrop::RateLimit, 0, trace);
            }
        }
        let seq = tmpl.next_seq();
        let c = Copy {
            layers,
            hash,
            tag,
            now_ns: p.now_ns,
        };
        let (sliced, sliced_len) = match encap_copy(tmpl, &mut copy, a, c, dc) {
            Ok(done) => done,
            Err((why, len)) => return dropped(why, len, trace),
        };
        let bytes = copy.pkt_len() as u32;
        if let Some(r) = trace {
            let what = match t.policy.destinations.get(a.dest).and_then(|d| d.tunnel()) {
                Some(x) => format!(
                    "encapsulated: {:?} to {}, seq {seq}, {bytes} bytes on the wire{}",
                    x.tunnel,
                    x.remote,
                    if sliced { ", truncated" } else { "" }
                ),
                None => "encapsulated".to_owned(),
            };
            r.dests
                .push(dest_trace(dest_name(t, a.dest), a.slice, sliced_len, &what));
        }
        let meta = TxMeta {
            fate,
            slot: a.slot,
            bytes,
        };
        self.tx.push(
            usize::from(a.uplink),
            copy,
            meta,
            &mut self.s.uplink_tx,
            &self.s.stats,
        );
        Ok(())
    }
    #[inline]
    fn count(&self, term: Terminal) {
        self.s.stats.counters.terminal(term).add(1);
    }

    /// Sends the uplinks' and the tool ports' TX buffers.
    fn flush(&mut self) {
        self.tx.flush(&mut self.s.uplink_tx, &self.s.stats);
        self.tx.flush_tools(&mut self.s.tool_ports, &self.s.stats);
    }

    /// ARP and ND from the uplinks go to the main lcore (the mbuf's port
    /// says which uplink), flow telemetry to the intake thread; the rest
    /// is not ours.
    fn poll_uplinks(&mut self) {
        let c = &self.s.stats.counters;
        let mut b: Batch<BURST> = Batch::new();
        for rxq in &mut self.s.uplink_rx {
            if rxq.rx(&mut b) == 0 {
                continue;
            }
            for m in b.drain() {
                if is_exception(m.data()) {
                    c.exceptions.add(1);
                    if self.s.exceptions.enqueue(m).is_err() {
                        c.exceptions_dropped.add(1);
                    }
                } else if let Some(t) = self.s.intake.as_ref().filter(|t| t.wants(m.data())) {
                    c.intake.add(1);
                    if t.ring.enqueue(m).is_err() {
                        c.intake_dropped.add(1);
                    }
                } else {
                    c.uplink_ignored.add(1);
                }
            }
        }
    }

    /// Sends the main lcore's ARP/ND frames, each on the uplink its port
    /// names.
    fn poll_control_tx(&mut self) {
        let Some(ring) = self.s.control_tx.as_ref().map(Arc::clone) else {
            return;
        };
        while let Some(m) = ring.dequeue() {
            let meta = TxMeta {
                fate: NO_FATE,
                slot: 0,
                bytes: m.pkt_len() as u32,
            };
            let port = m.port();
            let Some(uplink) = self.s.uplink_tx.iter().position(|q| q.port() == port) else {
                continue;
            };
            self.tx
                .push(uplink, m, meta, &mut self.s.uplink_tx, &self.s.stats);
        }
    }
}

/// Slices and encapsulates one copy for target `a` with its template:
/// whether the slice cut it and its length after the slice, or why it
/// cannot go (counted on the destination) with that length, for traces. The destination's `truncated_to_mtu` counts copies
/// encap cut to the MTU.
#[inline(always)]
fn encap_copy(
    tmpl: &mut EncapTemplate,
    copy: &mut Mbuf,
    a: &Target,
    c: Copy<'_>,
    dc: &DestCounters,
) -> Result<(bool, usize), (DestDrop, usize)> {
    let sliced = a.slice != SliceSpec::Whole && slice(copy, c.layers, a.slice).truncated();
    let sliced_len = copy.pkt_len();
    let meta = EncapMeta {
        layers: Some(c.layers),
        flow_hash: c.hash,
        tag: c.tag,
        tag_override: a.tag,
        sliced,
    };
    // Longer than the MTU leaves room for: encap cuts it (or refuses it,
    // with `oversize = "drop"`).
    let over_mtu = sliced_len > tmpl.max_inner_len();
    if let Err(e) = tmpl.encap(copy, &meta, c.now_ns) {
        let why = match e {
            EncapError::TooBig => DestDrop::TooBig,
            EncapError::NoHeadroom => DestDrop::Error,
        };
        dc.drop(why).add(1);
        return Err((why, sliced_len));
    }
    if over_mtu {
        dc.truncated_to_mtu.add(1);
    }
    Ok((sliced, sliced_len))
}

/// What encap needs of one packet besides its bytes and its target.
#[derive(Clone, Copy)]
struct Copy<'a> {
    layers: &'a Layers,
    hash: Option<u32>,
    tag: TagInfo,
    now_ns: u64,
}

/// What the loops that take a whole burst of one plan read of each
/// packet besides its mbuf, by the packet's index in the burst.
#[derive(Clone, Copy)]
struct Burst<'a> {
    layers: &'a [Layers; BURST],
    dups: &'a [DedupVerdict; BURST],
    dirs: &'a [Direction; BURST],
    /// Each packet's flow hash when the meter computed it.
    hashes: Option<&'a [u32; BURST]>,
    rule_id: u32,
    appliance_id: u16,
    now_ns: u64,
}

impl<'a> Burst<'a> {
    /// Packet `i`'s [`Copy`], `port` the one it came in on.
    #[inline(always)]
    fn copy(&self, i: usize, port: u16) -> Copy<'a> {
        Copy {
            layers: &self.layers[i],
            hash: self.hashes.map(|h| h[i]),
            tag: TagInfo {
                appliance_id: self.appliance_id,
                input_port: port,
                rule_id: self.rule_id,
                direction: self.dirs[i],
            },
            now_ns: self.now_ns,
        }
    }
}

/// Encapsulates `m`, its packet's only copy, for target `a` and queues it
/// on the uplink's `lane`, or counts its packet's terminal when it cannot
/// go: the per-packet step of the loops that hoist a burst's template,
/// lane and counters.
#[inline(always)]
fn encap_solo(
    tmpl: &mut EncapTemplate,
    mut m: Mbuf,
    a: &Target,
    c: Copy<'_>,
    stats: &WorkerStats,
    dc: &DestCounters,
    lane: &mut LaneTx<'_>,
) {
    match encap_copy(tmpl, &mut m, a, c, dc) {
        Ok(_) => {
            let meta = TxMeta {
                fate: SOLO,
                slot: a.slot,
                bytes: m.pkt_len() as u32,
            };
            lane.push(m, meta);
        }
        Err((why, _)) => stats.counters.terminal(why.terminal()).add(1),
    }
}

/// Frames from this many bytes up go to an extra destination as an
/// indirect clone rather than a full copy (`Worker::extra_copy`): the
/// smallest size at which the clone costs no more than the copy whether
/// the frame is in cache or not. perf/benches/clone.rs (copy or clone +
/// VXLAN encap + free, ns per packet, thread CPU time): the clone costs
/// 48–50 ns at every size; the copy 33 (64 B), 36 (512 B), 48 (1,024 B)
/// and 54 (1,500 B) with the frame in cache, 38, 74, 233 and 249 with its
/// payload in memory. Below 1,024 bytes a frame in cache (a software
/// device's) loses up to 16 ns to the clone; from 1,024 on neither loses.
const CLONE_MIN_LEN: usize = 1024;

/// Data room of the clone pool's mbufs: headroom only, the
/// `RTE_PKTMBUF_HEADROOM` a fresh mbuf starts with, which holds the largest
/// tunnel header in front of a clone.
pub const CLONE_DATA_ROOM: u16 = 128;
const _: () = assert!(CLONE_DATA_ROOM as usize >= crate::stage::encap::MAX_HEADER_LEN);

/// The packets a hoisted loop dropped as copies seen within the dedup
/// window, counted once for the burst.
#[inline]
fn count_deduplicated(stats: &WorkerStats, n: u64) {
    if n != 0 {
        stats.counters.terminal(Terminal::Deduplicated).add(n);
    }
}

/// What the forward path knows of one packet of the burst.
struct Packet<'a> {
    layers: &'a Layers,
    /// Its [`crate::stage::encap::flow_hash`], when the meter computed it.
    flow_hash: Option<u32>,
    plan: &'a RulePlan,
    dup: DedupVerdict,
    dir: Direction,
    now_ns: u64,
    /// The destinations (by position in the rule) that sampling left the
    /// packet out of.
    skip: u64,
}

fn dest_name(t: &Tables, dest: usize) -> String {
    t.policy
        .destinations
        .get(dest)
        .map_or_else(String::new, |x| x.name.clone())
}

fn dest_trace(
    destination: String,
    slice: SliceSpec,
    len_after_slice: usize,
    outcome: &str,
) -> DestTrace {
    DestTrace {
        destination,
        slice: match slice {
            SliceSpec::Whole => "whole frame".to_owned(),
            SliceSpec::Bytes(n) => format!("first {n} bytes"),
            SliceSpec::AfterL4(n) => format!("headers + {n} payload bytes"),
        },
        len_after_slice,
        outcome: outcome.to_owned(),
    }
}

/// One line on what parse found, for traces.
pub fn describe_layers(l: &Layers) -> String {
    let mut s = format!("ethertype 0x{:04x}", l.ethertype);
    if let Some(v) = l.outer_vlan {
        s.push_str(&format!(", vlan {v}"));
    }
    if let Some(v) = l.inner_vlan {
        s.push_str(&format!(" inner vlan {v}"));
    }
    if let (Some(src), Some(dst)) = (l.src_ip(), l.dst_ip()) {
        s.push_str(&format!(", {src} -> {dst} proto {}", l.l4_proto));
        if l.src_port != 0 || l.dst_port != 0 {
            s.push_str(&format!(" ports {} -> {}", l.src_port, l.dst_port));
        }
    }
    if let Some(e) = l.error {
        s.push_str(&format!(", malformed: {}", e.name()));
    }
    s
}

/// Whether `protect` sheds a packet: sampling keeps one in N (counting in
/// `seen`); priority keeps the first K rules' packets, since compiled rules
/// are in priority order.
fn sheds(seen: &mut u64, protect: u64, v: Verdict) -> bool {
    let n = protect & 0xffff_ffff;
    match protect >> 32 {
        shed::SAMPLE => {
            *seen += 1;
            !(*seen).is_multiple_of(n.max(1))
        }
        shed::PRIORITY => v.rule_index().is_none_or(|r| r as u64 >= n),
        _ => false,
    }
}

/// ARP (any VLAN depth up to two tags), or IPv6 ICMPv6 neighbour discovery.
pub fn is_exception(frame: &[u8]) -> bool {
    let l = parse(frame);
    match l.ethertype {
        ethertype::ARP => true,
        ethertype::IPV6 => {
            l.l4_proto == ip_proto::ICMPV6
                && frame
                    .get(usize::from(l.l4_offset))
                    .is_some_and(|t| (133..=137).contains(t))
        }
        _ => false,
    }
}
