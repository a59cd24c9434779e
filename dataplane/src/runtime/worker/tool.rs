//! What a copy goes through besides the tunnel: the rule's and the
//! destination's sampling, header stripping and masking (any destination),
//! and delivery to a tool port or over a tool group's members (tool
//! destinations).
//!
//! Sampling is decided for the whole burst before sequence numbers are
//! reserved, so that a copy left out by sampling leaves no gap in its
//! tunnel's numbers.

use crate::dpdk::{Batch, Mbuf};
use crate::frame::Frame;
use crate::runtime::counters::{DestCounters, DestDrop, Terminal, WorkerStats};
use crate::runtime::tables::{Tables, ToolTable};
use crate::runtime::trace::TraceRecord;
use crate::stage::balance::{plain_hash, FlowFields, GroupTable};
use crate::stage::decap::DecapConfig;
use crate::stage::dedup::Verdict as DedupVerdict;
use crate::stage::mask::{mask, MaskCounters, MaskSpec};
use crate::stage::parse::{parse_frame, parse_to, Layers};
use crate::stage::sample::Sampler;
use crate::stage::slice::{slice, SliceSpec};
use crate::stage::strip::Strip;
use crate::stage::BURST;

use super::plan::{BurstPlans, Target};
use super::tx::{ToolLanes, TxMeta, SOLO};
use super::{count_deduplicated, dest_name, dest_trace, Packet, Worker};

/// Targets of one rule whose sampling decision fits a packet's mask; the
/// targets past it are never left out by sampling.
pub(super) const SAMPLED_TARGETS: usize = 64;

/// One destination's per-copy stages on this worker, with the mask's
/// tally (the strip stage keeps its own) since the last drain tick.
#[derive(Debug, Default)]
pub(super) struct CopyEdits {
    /// The destination's counter slot.
    slot: u16,
    strip: Option<Strip>,
    mask: Option<MaskSpec>,
    masked: MaskCounters,
    sampler: Option<Sampler>,
}

/// Every destination's and every rule's per-worker stages, rebuilt with
/// each tables generation.
#[derive(Debug, Default)]
pub(super) struct Edits {
    dests: Vec<CopyEdits>,
    /// By rule id.
    rules: Vec<Option<Sampler>>,
}

impl Edits {
    pub fn build(t: &Tables, tunnels: &DecapConfig) -> Edits {
        let dests = t
            .policy
            .destinations
            .iter()
            .zip(&t.dests)
            .map(|(d, dt)| CopyEdits {
                slot: dt.slot,
                // The compiler checked the specs: what fails here is left out.
                strip: (!d.strip.is_noop())
                    .then(|| Strip::new(d.strip, tunnels).ok())
                    .flatten(),
                mask: d.mask,
                masked: MaskCounters::default(),
                sampler: d.sample.and_then(|s| Sampler::new(s).ok()),
            })
            .collect();
        let rules = t
            .policy
            .rule_samples
            .iter()
            .map(|s| s.and_then(|s| Sampler::new(s).ok()))
            .collect();
        Edits { dests, rules }
    }

    /// Adds the strip and mask tallies to each destination's shared
    /// counters and starts them again: at the drain tick, VPP style, so a
    /// copy pays a plain add and the console reads them a tick late.
    pub fn publish(&mut self, stats: &WorkerStats) {
        for e in &mut self.dests {
            if e.strip.is_none() && e.mask.is_none() {
                continue;
            }
            let strip = e.strip.as_mut().map(Strip::take_counters);
            let masked = std::mem::take(&mut e.masked);
            if let Some(dc) = stats.dests.get(usize::from(e.slot)) {
                dc.add_edits(&strip.unwrap_or_default(), &masked);
            }
        }
    }
}

/// The sampling of one burst: packets their rule left out, and per packet
/// a bit for each target (by position in its rule) that left it out.
pub(super) struct Sampled {
    pub by_rule: [bool; BURST],
    pub by_dest: [u64; BURST],
}

impl Sampled {
    pub const NONE: Sampled = Sampled {
        by_rule: [false; BURST],
        by_dest: [0; BURST],
    };
}

/// A direct policy's tool destination (see [`super::direct`]): a
/// match-all rule to a tool farm.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirectTool {
    /// The destination's counter slot.
    slot: u16,
    /// Its tool port or group, in the tables' tools.
    tool: u16,
    /// The match-all rule, for its hit count.
    rule_id: u32,
}

impl DirectTool {
    pub fn new(slot: u16, tool: u16, rule_id: u32) -> DirectTool {
        DirectTool {
            slot,
            tool,
            rule_id,
        }
    }
}

impl Worker {
    /// A burst under a [`DirectTool`] policy: counted (packets, bytes, the
    /// rule's hit), each frame hashed (a plain one at fixed offsets, any other
    /// parsed first, its parse errors counted) and queued on its member's
    /// lane. Returns false, with the burst untouched, when the general
    /// path is needed: a frame longer than the smallest live member
    /// carries (it is cut to its member's MTU there), or no live member.
    #[inline(always)]
    pub(super) fn forward_direct_tool(
        &mut self,
        t: &Tables,
        rx: &mut Batch<BURST>,
        d: DirectTool,
    ) -> bool {
        let Some(group) = t.tools.get(usize::from(d.tool)) else {
            return false;
        };
        let Some(table) = group.table.as_ref() else {
            return false;
        };
        let (mut bytes, mut longest) = (0u64, 0usize);
        for m in rx.as_slice() {
            bytes += m.pkt_len() as u64;
            longest = longest.max(m.pkt_len());
        }
        if longest > group.max_frame {
            return false;
        }
        let stats = &*self.s.stats;
        let c = &stats.counters;
        c.rx.add(rx.len() as u64);
        c.bursts.add(1);
        c.rx_bytes.add(bytes);
        self.rule_hits.count(d.rule_id, rx.len() as u64, bytes);
        let mut lanes = self.tx.tools(&mut self.s.tool_ports, stats);
        let meta = |len: usize| TxMeta {
            fate: SOLO,
            slot: d.slot,
            bytes: len as u32,
        };
        if let [only] = group.members.as_slice() {
            for m in rx.drain() {
                let meta = meta(m.pkt_len());
                lanes.push(usize::from(*only), m, meta);
            }
            return true;
        }
        // The fields' choice made once for the burst, not per frame.
        let parse_errors = match group.hasher.fields() {
            FlowFields::FiveTuple => push_hashed(rx, &mut lanes, group, table, d.slot, |f, n| {
                plain_hash(f, n, true)
            }),
            FlowFields::IpPair => push_hashed(rx, &mut lanes, group, table, d.slot, |f, n| {
                plain_hash(f, n, false)
            }),
            FlowFields::InnerFiveTuple => {
                push_hashed(rx, &mut lanes, group, table, d.slot, |_, _| None)
            }
        };
        if parse_errors != 0 {
            c.parse_errors.add(parse_errors);
        }
        true
    }

    /// The whole burst goes to one tool destination that neither slices
    /// nor edits (a tool farm behind a rule that dedups, or behind rules
    /// that read the packet): each frame is hashed from its parse and
    /// queued on its member, nothing else. Returns false, with the burst
    /// untouched, when the general path is needed (a slice, an edit, a
    /// rate limit, a frame longer than a member carries).
    #[inline(always)]
    pub(super) fn forward_single_tool(
        &mut self,
        t: &Tables,
        rx: &mut Batch<BURST>,
        layers: &[Layers; BURST],
        dups: &[DedupVerdict; BURST],
        a: Target,
        tool: u16,
    ) -> bool {
        let limited = self.limiters.get(a.dest).is_some_and(|l| l.is_limited());
        let Some(group) = t.tools.get(usize::from(tool)) else {
            return false;
        };
        if a.edits || a.slice != SliceSpec::Whole || limited || group.table.is_none() {
            return false;
        }
        if rx.as_slice().iter().any(|m| m.pkt_len() > group.max_frame) {
            return false;
        }
        let stats = &*self.s.stats;
        let mut lanes = self.tx.tools(&mut self.s.tool_ports, stats);
        let mut deduplicated = 0u64;
        for (i, m) in rx.drain().enumerate() {
            if a.dedup && dups[i] == DedupVerdict::Duplicate {
                deduplicated += 1;
                continue;
            }
            let port = match group.members.as_slice() {
                [only] => Some(*only),
                _ => group.port_for(group.hasher.hash(&m, &layers[i])),
            };
            let meta = TxMeta {
                fate: SOLO,
                slot: a.slot,
                bytes: m.pkt_len() as u32,
            };
            match port {
                Some(port) => lanes.push(usize::from(port), m, meta),
                None => no_tool(stats, a.slot),
            }
        }
        count_deduplicated(stats, deduplicated);
        true
    }

    /// Asks the rules' and destinations' samplers about every packet of the
    /// burst whose plan samples (packets shed by protect are not asked).
    pub(super) fn sample_burst(
        &mut self,
        frames: &[Mbuf],
        layers: &[Layers],
        plans: BurstPlans<'_>,
        shed: &[bool],
        out: &mut Sampled,
    ) {
        for (i, m) in frames.iter().enumerate() {
            let Some(p) = plans.get(i) else { break };
            if !p.sampled || shed.get(i).copied().unwrap_or(false) {
                continue;
            }
            let l = &layers[i];
            let rule = self.edits.rules.get_mut(p.rule_id as usize);
            if let Some(Some(s)) = rule {
                if !s.keep(m, l) {
                    out.by_rule[i] = true;
                    continue;
                }
            }
            for (k, a) in self
                .plans
                .targets(*p)
                .iter()
                .enumerate()
                .take(SAMPLED_TARGETS)
            {
                if let Some(Some(s)) = self.edits.dests.get_mut(a.dest).map(|e| e.sampler.as_mut())
                {
                    if !s.keep(m, l) {
                        out.by_dest[i] |= 1 << k;
                    }
                }
            }
        }
    }

    /// Strips and masks a copy for destination `dest`, before its tunnel
    /// or its tool port. Returns the copy's parse after the edits (`l`
    /// itself when nothing changed the headers).
    #[inline]
    pub(super) fn edit_copy(&mut self, copy: &mut Mbuf, dest: usize, l: &Layers) -> Layers {
        let Some(e) = self.edits.dests.get_mut(dest) else {
            return *l;
        };
        let mut now = *l;
        if let Some(s) = e.strip.as_mut() {
            if s.strip(copy).bytes > 0 {
                now = parse_frame(copy);
            }
        }
        if let Some(spec) = &e.mask {
            e.masked.record(mask(copy, &now, spec));
        }
        now
    }

    /// Slices, strips and masks one copy for tool destination `a` and
    /// queues it on the member of its tool group its flow hash picks (both
    /// directions of a flow pick the same). A copy that cannot go is
    /// dropped here and counted on the destination; the reason is returned
    /// for the packet's fate.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_tool_copy<const TRACE: bool>(
        &mut self,
        t: &Tables,
        mut copy: Mbuf,
        a: &Target,
        tool: u16,
        p: &Packet<'_>,
        fate: u16,
        trace: Option<&mut TraceRecord>,
    ) -> Result<(), DestDrop> {
        let trace = if TRACE { trace } else { None };
        let slot = usize::from(a.slot);
        let dropped = |dc: &DestCounters, why: DestDrop, trace: Option<&mut TraceRecord>| {
            dc.drop(why).add(1);
            if let Some(r) = trace {
                r.dests
                    .push(dest_trace(dest_name(t, a.dest), a.slice, 0, why.name()));
            }
            Err(why)
        };
        // The member, from the packet as it came (before strip takes the
        // tunnel an inner-tuple hash reads).
        let member = t
            .tools
            .get(usize::from(tool))
            .and_then(|g| match g.members.as_slice() {
                [only] => g.table.as_ref().map(|_| *only),
                _ => g.port_for(g.hasher.hash(&copy, p.layers)),
            });
        let Some(port) = member.map(usize::from) else {
            return dropped(&self.s.stats.dests[slot], DestDrop::NoTool, trace);
        };
        if port >= self.s.tool_ports.len() {
            return dropped(&self.s.stats.dests[slot], DestDrop::Error, trace);
        }
        if let Some(l) = self.limiters.get_mut(a.dest).filter(|l| l.is_limited()) {
            if !l.allow(copy.pkt_len(), self.s.clock.tsc_now()) {
                return dropped(&self.s.stats.dests[slot], DestDrop::RateLimit, trace);
            }
        }
        let edited;
        let layers = if a.edits {
            edited = self.edit_copy(&mut copy, a.dest, p.layers);
            &edited
        } else {
            p.layers
        };
        let sliced = a.slice != SliceSpec::Whole && slice(&mut copy, layers, a.slice).truncated();
        // Longer than the tool port carries: cut to its MTU, as a tunnel
        // destination's copy is cut to the uplink's.
        let tags =
            usize::from(layers.outer_vlan.is_some()) + usize::from(layers.inner_vlan.is_some());
        let max = self
            .tool_max_frame
            .get(port)
            .map_or(usize::MAX, |m| m + 4 * tags);
        if copy.pkt_len() > max {
            copy.truncate(max);
            self.s.stats.dests[slot].truncated_to_mtu.add(1);
        }
        let bytes = copy.pkt_len() as u32;
        if let Some(r) = trace {
            let what = format!(
                "to tool port {port} of {:?}, {bytes} bytes{}",
                t.tools
                    .get(usize::from(tool))
                    .map_or("", |g| g.name.as_str()),
                if sliced { ", sliced" } else { "" }
            );
            r.dests.push(dest_trace(
                dest_name(t, a.dest),
                a.slice,
                bytes as usize,
                &what,
            ));
        }
        let meta = TxMeta {
            fate,
            slot: a.slot,
            bytes,
        };
        self.tx
            .tools(&mut self.s.tool_ports, &self.s.stats)
            .push(port, copy, meta);
        Ok(())
    }
}

/// Queues each frame of `rx` on its member's lane, by its hash at fixed
/// offsets (`plain`) or, when that has none, from its parse; returns the
/// parse errors of the frames parsed.
#[inline(always)]
fn push_hashed(
    rx: &mut Batch<BURST>,
    lanes: &mut ToolLanes<'_>,
    group: &ToolTable,
    table: &GroupTable,
    slot: u16,
    plain: impl Fn(&[u8], usize) -> Option<u32>,
) -> u64 {
    let mut parse_errors = 0u64;
    rx.drain_each(|m| {
        let len = m.pkt_len();
        let hash = match plain(m.data(), len) {
            Some(h) => h,
            None => parsed_hash(&m, group, &mut parse_errors),
        };
        let meta = TxMeta {
            fate: SOLO,
            slot,
            bytes: len as u32,
        };
        match group.members.get(table.member(hash)) {
            Some(&port) => lanes.push(usize::from(port), m, meta),
            None => no_tool(lanes.stats(), slot),
        }
    });
    parse_errors
}

/// The group's hash of a frame from its parse, its parse error counted.
#[inline(never)]
fn parsed_hash(m: &Mbuf, group: &ToolTable, parse_errors: &mut u64) -> u32 {
    let mut l = Layers::default();
    parse_to(m.data(), m.pkt_len(), &mut l);
    *parse_errors += u64::from(l.error.is_some());
    group.hasher.hash(m, &l)
}

/// A packet of a hoisted tool loop whose group has no live member for it.
#[cold]
fn no_tool(stats: &WorkerStats, slot: u16) {
    stats.dests[usize::from(slot)].drop(DestDrop::NoTool).add(1);
    stats.counters.terminal(Terminal::DroppedNoTool).add(1);
}

/// Whether a packet with verdict `dup` still goes to target `k` of its
/// rule: not when the target drops copies and this is one, nor when
/// sampling left it out (`skip`: its bits in [`Sampled::by_dest`]).
#[inline]
pub(super) fn takes(a: &Target, k: usize, dup: DedupVerdict, skip: u64) -> bool {
    let dropped_as_copy = a.dedup && dup == DedupVerdict::Duplicate;
    !dropped_as_copy && !sampled_out(k, skip)
}

/// Whether sampling left target `k` out.
#[inline]
pub(super) fn sampled_out(k: usize, skip: u64) -> bool {
    k < SAMPLED_TARGETS && skip & (1 << k) != 0
}
