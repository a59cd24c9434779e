//! Bursts that skip parse and classification: a policy under which every
//! packet goes, whole and unedited, to one destination (a match-all rule,
//! the broker's any-to-any case). A burst then needs only each frame's
//! flow hash, which plain frames give at fixed offsets
//! ([`plain_hash`]); any other frame is parsed first, as the general path
//! would.
//!
//! A tool destination's burst goes over its group's members
//! ([`Worker::forward_direct_tool`]); a tunnel destination's is
//! encapsulated with its template and queued on its uplink's lane
//! ([`Worker::forward_direct_tunnel`]). Both count what the general path
//! counts: packets, bytes, the rule's hit, parse errors and each packet's
//! terminal.

use std::sync::atomic::Ordering;

use crate::dpdk::{Batch, Mbuf};
use crate::frame::Frame;
use crate::runtime::ratelimit::DestLimiter;
use crate::runtime::tables::Tables;
use crate::stage::balance::plain_hash;
use crate::stage::encap::flow_hash;
use crate::stage::parse::{parse_to, Layers};
use crate::stage::slice::SliceSpec;
use crate::stage::tag::TagInfo;
use crate::stage::{Direction, BURST};

use super::plan::{Plans, Target};
use super::tool::DirectTool;
use super::{encap_solo, Copy, Worker};

/// The one destination every packet of a direct policy goes to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direct {
    Tool(DirectTool),
    Tunnel(DirectTunnel),
}

/// A direct policy's tunnel destination.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirectTunnel {
    target: Target,
    /// The match-all rule, for its hit count and the tunnels' tag.
    rule_id: u32,
}

impl Direct {
    /// The direct destination of `t`'s policy, if it has one: a classifier
    /// whose verdict is the same for every packet, whose plan sends to one
    /// destination that neither dedups, samples, slices, edits nor
    /// rate-limits, and is not metered (`metering`: the worker has a flow
    /// table; a plan's `meter` alone meters nothing).
    pub fn of(
        t: &Tables,
        plans: &Plans,
        limiters: &[DestLimiter],
        metering: bool,
    ) -> Option<Direct> {
        let plan = plans.of(t.policy.classifier.constant_verdict()?);
        let [a] = *plans.targets(plan) else {
            return None;
        };
        let limited = limiters.get(a.dest).is_some_and(DestLimiter::is_limited);
        let plain = !a.dedup && !a.edits && a.slice == SliceSpec::Whole && !limited;
        if !plain || plan.sampled || (plan.meter && metering) {
            return None;
        }
        Some(match a.tool {
            Some(tool) => Direct::Tool(DirectTool::new(a.slot, tool, plan.rule_id)),
            None => Direct::Tunnel(DirectTunnel {
                target: a,
                rule_id: plan.rule_id,
            }),
        })
    }
}

impl Worker {
    /// A burst under a [`Direct`] policy, or false, with the burst
    /// untouched, when it needs the general path.
    #[inline(always)]
    pub(super) fn forward_direct(
        &mut self,
        t: &Tables,
        rx: &mut Batch<BURST>,
        dir: Option<Direction>,
        d: Direct,
    ) -> bool {
        match d {
            Direct::Tool(d) => self.forward_direct_tool(t, rx, d),
            Direct::Tunnel(d) => self.forward_direct_tunnel(t, rx, dir, d),
        }
    }

    /// A burst to a [`DirectTunnel`]: counted (packets, bytes, the rule's
    /// hit), its sequence numbers reserved in one block, each frame hashed
    /// (a plain one at fixed offsets, any other parsed first, its parse
    /// error counted), encapsulated (cut to the MTU or dropped as the
    /// destination says) and queued on the uplink's lane. Returns false,
    /// with the burst untouched, when the general path is needed: no next
    /// hop yet (it counts the drops), or no lane for the uplink.
    #[inline(always)]
    fn forward_direct_tunnel(
        &mut self,
        t: &Tables,
        rx: &mut Batch<BURST>,
        dir: Option<Direction>,
        d: DirectTunnel,
    ) -> bool {
        let a = d.target;
        let Some(Some(tmpl)) = self.templates.get_mut(a.dest) else {
            return false;
        };
        let Some(shared) = t.dests.get(a.dest) else {
            return false;
        };
        let stats = &*self.s.stats;
        let Some(mut lane) = self
            .tx
            .uplink(usize::from(a.uplink), &mut self.s.uplink_tx, stats)
        else {
            return false;
        };
        let n = rx.len() as u64;
        let bytes: u64 = rx.as_slice().iter().map(|m| m.pkt_len() as u64).sum();
        let c = &stats.counters;
        c.rx.add(n);
        c.bursts.add(1);
        c.rx_bytes.add(bytes);
        self.rule_hits.count(d.rule_id, n, bytes);
        // Every packet takes a sequence number, as in the general path.
        tmpl.set_next_seq(shared.seq.fetch_add(n as u32, Ordering::Relaxed));
        let now_ns = self.s.clock.now_ns();
        let dc = &stats.dests[usize::from(a.slot)];
        let appliance_id = self.s.appliance_id;
        let directions = &self.s.port_direction;
        // A plain frame is untagged: its parse would say no more than this.
        let plain = Layers::default();
        let mut parsed = Layers::default();
        let mut parse_errors = 0u64;
        rx.drain_each(|m| {
            let len = m.pkt_len();
            let (hash, layers) = match plain_hash(m.data(), len, true) {
                Some(h) => (h, &plain),
                None => (parsed_hash(&m, &mut parsed, &mut parse_errors), &parsed),
            };
            let port = m.port();
            let tag = TagInfo {
                appliance_id,
                input_port: port,
                rule_id: d.rule_id,
                direction: dir.unwrap_or_else(|| {
                    directions
                        .get(usize::from(port))
                        .copied()
                        .unwrap_or_default()
                }),
            };
            let copy = Copy {
                layers,
                hash: Some(hash),
                tag,
                now_ns,
            };
            encap_solo(tmpl, m, &a, copy, stats, dc, &mut lane);
        });
        if parse_errors != 0 {
            c.parse_errors.add(parse_errors);
        }
        true
    }
}

/// A frame that is not plain: its parse into `l`, its parse error counted,
/// and its flow hash from the parse.
#[inline(never)]
fn parsed_hash(m: &Mbuf, l: &mut Layers, parse_errors: &mut u64) -> u32 {
    parse_to(m.data(), m.pkt_len(), l);
    *parse_errors += u64::from(l.error.is_some());
    flow_hash(Some(l), m.data())
}
