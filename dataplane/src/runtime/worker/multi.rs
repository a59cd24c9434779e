//! The hoisted loop for a burst whose packets all follow one plan with
//! several tunnel destinations on one uplink: the templates, the lane and
//! the counters are looked up once per burst, not once per copy, and no
//! packet needs a fate slot (its copies leave in one TX burst behind
//! their lead, see [`super::tx::lead`]).

use crate::dpdk::{Batch, Mbuf, Mempool};
use crate::frame::Frame;
use crate::runtime::counters::DestDrop;
use crate::runtime::ratelimit::DestLimiter;
use crate::stage::dedup::Verdict as DedupVerdict;
use crate::stage::parse::Layers;
use crate::stage::slice::{keep_len, SliceSpec};
use crate::stage::BURST;

use super::plan::RulePlan;
use super::tx::{lead, TxMeta, FOLLOW};
use super::{count_deduplicated, encap_copy, Burst, Worker, CLONE_MIN_LEN};

/// The most destinations the hoisted loop takes (bits of a `u8` mask);
/// a rule with more takes the general path.
const MAX_TARGETS: usize = 8;

impl Worker {
    /// The whole burst follows one plan with 2 to [`MAX_TARGETS`] tunnel
    /// destinations that all leave by one uplink, and none of them edits
    /// or is rate-limited. Each packet's copies are made and encapsulated
    /// in target order (the original goes to the last target that takes
    /// it, as in [`Worker::forward`]) and queued together; the first one
    /// queued settles the packet. Returns false, with the burst untouched,
    /// when the plan needs the general path.
    #[inline(always)]
    pub(super) fn forward_multi(
        &mut self,
        rx: &mut Batch<BURST>,
        b: Burst<'_>,
        plan: RulePlan,
    ) -> bool {
        let targets = self.plans.targets(plan);
        let Some(uplink) = targets.first().map(|a| a.uplink) else {
            return false;
        };
        if targets.len() > MAX_TARGETS {
            return false;
        }
        // Which targets take a unique packet and which a duplicate; where
        // a target's copies may be indirect clones (see `copy_for`).
        let (mut unique, mut copies) = (0u8, 0u8);
        let mut clones: [Option<&Mempool>; MAX_TARGETS] = [None; MAX_TARGETS];
        for (k, a) in targets.iter().enumerate() {
            let tunnel = match self.templates.get(a.dest) {
                Some(Some(t)) => !t.checksums_payload(),
                _ => return false,
            };
            if a.tool.is_some()
                || a.edits
                || a.uplink != uplink
                || self
                    .limiters
                    .get(a.dest)
                    .is_some_and(DestLimiter::is_limited)
            {
                return false;
            }
            unique |= 1 << k;
            copies |= u8::from(!a.dedup) << k;
            clones[k] = self.s.clone_pool.as_deref().filter(|_| tunnel);
        }
        let stats = &*self.s.stats;
        let pool = &*self.s.pool;
        let Some(mut lane) = self
            .tx
            .uplink(usize::from(uplink), &mut self.s.uplink_tx, stats)
        else {
            return false;
        };
        let mut deduplicated = 0u64;
        let mut i = 0;
        rx.drain_each(|m| {
            let at = i;
            i += 1;
            let takers = if b.dups[at] == DedupVerdict::Duplicate {
                copies
            } else {
                unique
            };
            if takers == 0 {
                deduplicated += 1;
                return;
            }
            let last = 7 - takers.leading_zeros() as usize;
            let c = b.copy(at, m.port());
            let l = c.layers;
            lane.make_room(takers.count_ones() as usize);
            let lead_at = lane.next_at();
            let mut first_drop = None;
            let mut queued = false;
            let mut original = Some(m);
            for (k, a) in targets.iter().enumerate() {
                if takers & (1 << k) == 0 {
                    continue;
                }
                let dc = &stats.dests[usize::from(a.slot)];
                let made = match original.as_ref() {
                    Some(src) if k != last => {
                        copy_for(src, l, a.slice, || true, || clones[k], pool).ok()
                    }
                    _ => original.take(),
                };
                let mut copy = match made {
                    Some(c) => c,
                    None => {
                        dc.drop(DestDrop::NoMbuf).add(1);
                        first_drop.get_or_insert(DestDrop::NoMbuf);
                        continue;
                    }
                };
                // Checked above for every target.
                let Some(Some(tmpl)) = self.templates.get_mut(a.dest) else {
                    continue;
                };
                match encap_copy(tmpl, &mut copy, a, c, dc) {
                    Ok(_) => {
                        let meta = TxMeta {
                            fate: if queued { FOLLOW } else { lead(None) },
                            slot: a.slot,
                            bytes: copy.pkt_len() as u32,
                        };
                        lane.push(copy, meta);
                        queued = true;
                    }
                    Err((why, _)) => {
                        first_drop.get_or_insert(why);
                    }
                }
            }
            match (queued, first_drop) {
                (true, None) => {}
                (true, Some(why)) => lane.set_fate(lead_at, lead(Some(why))),
                (false, why) => stats
                    .counters
                    .terminal(why.unwrap_or(DestDrop::Error).terminal())
                    .add(1),
            }
        });
        count_deduplicated(stats, deduplicated);
        true
    }
}

/// A copy of `src` for a destination that is not its packet's last one
/// (see [`Worker::extra_copy`] for when it is which): an indirect clone
/// from the pool `clones` gives (none where the destination may not take
/// one) from [`CLONE_MIN_LEN`] bytes to copy up, else a copy, of the front
/// of the frame only where the slice cuts it and `front` allows. The
/// conditions are closures, asked only when the frame's length leaves the
/// question open (cheapest checks first).
#[inline(always)]
pub(super) fn copy_for<'p>(
    src: &Mbuf,
    l: &Layers,
    slice: SliceSpec,
    front: impl FnOnce() -> bool,
    clones: impl FnOnce() -> Option<&'p Mempool>,
    pool: &Mempool,
) -> crate::dpdk::Result<Mbuf> {
    // One byte past the cut, so that the slice still cuts and says so
    // (ERSPAN's T bit).
    let len = src.pkt_len();
    let upto = match keep_len(l, slice) {
        Some(keep) if keep < len && front() => keep + 1,
        _ => usize::MAX,
    };
    if len.min(upto) >= CLONE_MIN_LEN && l.ip_version != 0 {
        if let Some(clones) = clones() {
            return src.share(clones).and_then(|c| c.with_header(clones));
        }
    }
    src.copy_front(pool, upto)
}
