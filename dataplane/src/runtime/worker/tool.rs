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
use crate::runtime::tables::Tables;
use crate::runtime::trace::TraceRecord;
use crate::stage::decap::DecapConfig;
use crate::stage::dedup::Verdict as DedupVerdict;
use crate::stage::mask::{mask, MaskCounters, MaskSpec};
use crate::stage::parse::{parse_frame, Layers};
use crate::stage::sample::Sampler;
use crate::stage::slice::{slice, SliceSpec};
use crate::stage::strip::Strip;
use crate::stage::BURST;

use super::plan::{RulePlan, Target};
use super::tx::{TxMeta, SOLO};
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

impl Worker {
    /// The whole burst goes to one tool destination that neither slices
    /// nor edits (a tool farm behind a match-all rule): each frame is
    /// hashed and queued on its member, nothing else. Returns false, with
    /// the burst untouched, when the general path is needed (a slice, an
    /// edit, a rate limit, a member's MTU).
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
        // The smallest member's MTU: longer frames take the general path.
        let max = group
            .members
            .iter()
            .map(|p| {
                self.tool_max_frame
                    .get(usize::from(*p))
                    .copied()
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        if rx.as_slice().iter().any(|m| m.pkt_len() > max) {
            return false;
        }
        let stats = &*self.s.stats;
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
            let port = port.map_or(usize::MAX, usize::from);
            match self.s.tool_ports.get_mut(port) {
                Some(q) => self.tx.push_tool(port, m, meta, q, stats),
                None => {
                    stats.dests[usize::from(a.slot)]
                        .drop(DestDrop::NoTool)
                        .add(1);
                    stats.counters.terminal(Terminal::DroppedNoTool).add(1);
                }
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
        plans: &[RulePlan],
        shed: &[bool],
        out: &mut Sampled,
    ) {
        for (i, (m, p)) in frames.iter().zip(plans).enumerate() {
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
        let stats = &self.s.stats;
        if let Some(q) = self.s.tool_ports.get_mut(port) {
            self.tx.push_tool(port, copy, meta, q, stats);
        }
        Ok(())
    }
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
