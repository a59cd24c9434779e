//! Flow metering in the worker: the per-burst hook `process` calls, the
//! expiry scan at the drain tick and the flush at exit. Expired flows
//! leave through a lockless single-producer ring to the export thread; a
//! full ring is counted, never waited on (but at exit, when the table is
//! flushed and the exporter is still draining, for a bounded time).

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::dpdk::Mbuf;
use crate::flow::table::{
    ends, Expired, FirstPacket, FlowTable, Hint, MeterConfig, MeterError, MeterStats, Packet,
    PacketMeta, Tally, NO_HINT,
};
use crate::flow::FlowTunnel;
use crate::frame::Frame;
use crate::stage::dedup::Verdict as DedupVerdict;
use crate::stage::encap::{flow_hash, fold32, mix_ends};
use crate::stage::parse::{Fragment, Layers};
use crate::stage::{Direction, BURST};

use super::plan::BurstPlans;

/// A worker's flow metering, handed over at launch.
#[derive(Debug, Clone)]
pub struct MeterSetup {
    pub config: MeterConfig,
    /// Where expired records go (this worker the only producer).
    pub ring: Arc<ArrayQueue<Expired>>,
    pub stats: Arc<MeterStats>,
    /// Hash seed of the table.
    pub seed: u64,
}

/// How long the exit flush waits for room in the ring, in yields.
const EXIT_PATIENCE: u32 = 1_000_000;

pub(super) struct Meter {
    table: FlowTable,
    ring: Arc<ArrayQueue<Expired>>,
    stats: Arc<MeterStats>,
}

impl Meter {
    pub fn new(s: MeterSetup) -> Result<Self, MeterError> {
        Ok(Meter {
            table: FlowTable::new_on_hugepages(s.config, s.seed)?,
            ring: s.ring,
            stats: s.stats,
        })
    }

    /// Counts a burst's packets into their flows (those whose rule
    /// meters): the packets whose hint holds first, then the others, then
    /// the new flows. Leaves every packet's [`flow_hash`] in `hashes` on
    /// the way: the table's hash is the same function, so encap takes its
    /// UDP source port from there rather than hashing the flow a second
    /// time.
    ///
    /// `HINTED`: `hints` holds each packet's [`Hint`] from its flow cache
    /// slot (the classifier's key holds the whole five-tuple). A packet
    /// whose hint holds counts at its entry, and takes encap's hash from
    /// there, unhashed; the others are hashed and probed, and their
    /// flow's hint is left in `hints`, their bit set in the mask returned
    /// (for the worker to keep it in the cache slot).
    // Not inlined: one call per burst, and inside `process` its loop
    // loses its registers to the burst's state.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn observe_burst<const HINTED: bool>(
        &mut self,
        ms: &[Mbuf],
        layers: &[Layers],
        plans: BurstPlans<'_>,
        dups: &[DedupVerdict],
        dirs: &[Direction],
        now_ns: u64,
        hashes: &mut [u32],
        hints: &mut [Hint; BURST],
    ) -> u32 {
        let mut t = Tally::default();
        let n = ms.len().min(layers.len()).min(dups.len()).min(BURST);
        // The packets left to count the long way.
        let mut rest = ((1u64 << n) - 1) as u32;
        if HINTED {
            let hinted = Hinted {
                ms,
                layers,
                dups,
                hints,
                now_ns,
            };
            // Both iterators index like the slices they are zipped with.
            let counted = match plans {
                BurstPlans::One(p) if !p.meter => 0,
                BurstPlans::One(_) => hinted.count(&mut self.table, hashes, (0..n).map(|_| true)),
                BurstPlans::Each(ps) => {
                    hinted.count(&mut self.table, hashes, ps.iter().map(|p| p.meter))
                }
            };
            rest &= !counted;
            t.packets += u64::from(counted.count_ones());
        }
        let mut new = [0u8; BURST];
        let mut nn = 0;
        let mut fresh = 0u32;
        // The packets of `new` whose flow the five-tuple keys (a hint can name it).
        let mut keyed = 0u32;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let (Some(m), Some(l), Some(d), Some(h), Some(p)) = (
                ms.get(i),
                layers.get(i),
                dups.get(i),
                hashes.get_mut(i),
                plans.get(i),
            ) else {
                continue;
            };
            let packet = packet(m, l, d);
            let five_tuple = l.ip_version != 0 && l.fragment == Fragment::None;
            let found = if five_tuple {
                let ends = ends(l);
                let hash = mix_ends(ends.0, ends.1, l.l4_proto);
                *h = fold32(hash);
                !p.meter
                    || match self.table.count_hashed(packet, ends, hash, now_ns, &mut t) {
                        Some(found) => {
                            if HINTED {
                                hints[i] = found;
                                fresh |= 1 << i;
                            }
                            true
                        }
                        None => false,
                    }
            } else {
                // Fragments hash without ports for encap, and count with
                // the table's hash of their five-tuple; frames without IP
                // are not metered.
                *h = flow_hash(Some(l), m.data());
                !p.meter || self.table.count(packet, now_ns, &mut t).is_some()
            };
            if !found {
                new[nn] = i as u8;
                nn += 1;
                keyed |= u32::from(five_tuple) << i;
            }
        }
        for &i in &new[..nn] {
            let i = usize::from(i);
            let (Some(m), Some(l), Some(p), Some(d)) =
                (ms.get(i), layers.get(i), plans.get(i), dups.get(i))
            else {
                continue;
            };
            let packet = packet(m, l, d);
            let first = FirstPacket {
                port: m.port(),
                direction: dirs.get(i).copied().unwrap_or_default(),
                rule_id: p.rule_id,
                tunnel: None,
            };
            let made = self.table.create(packet, now_ns, first, &mut t);
            if HINTED && keyed & (1 << i) != 0 && made != NO_HINT {
                hints[i] = made;
                fresh |= 1 << i;
            }
        }
        self.table.publish(&t, &self.stats);
        fresh
    }

    /// Starts loading the entries a burst's hints name.
    #[inline]
    pub fn prefetch_hinted(&mut self, hints: &[Hint]) {
        self.table.prefetch_hinted(hints);
    }

    /// Counts one decapsulated frame (decap inputs: no policy, no rule).
    #[inline]
    pub fn observe_decapped(&mut self, m: &Mbuf, l: &Layers, tunnel: FlowTunnel, now_ns: u64) {
        let meta = PacketMeta {
            len: m.pkt_len() as u32,
            duplicate: false,
            first: FirstPacket {
                port: m.port(),
                direction: Direction::Ingress,
                rule_id: u32::MAX,
                tunnel: Some(tunnel),
            },
        };
        self.table.observe(l, &meta, now_ns, &self.stats);
    }

    /// One bounded step of the expiry scan (the drain tick).
    pub fn expire(&mut self, now_ns: u64) {
        let ring = &self.ring;
        self.table
            .expire(now_ns, &self.stats, &mut |e| ring.push(e).is_ok());
    }

    /// Every flow out as a forced end (exit): waits a bounded time for
    /// the exporter to make room.
    pub fn flush(&mut self) {
        let ring = &self.ring;
        let mut patience = EXIT_PATIENCE;
        self.table.flush(&self.stats, &mut |mut e| loop {
            match ring.push(e) {
                Ok(()) => return true,
                Err(back) if patience > 0 => {
                    patience -= 1;
                    e = back;
                    std::thread::yield_now();
                }
                Err(_) => return false,
            }
        });
    }
}

/// What the flow table counts of packet `m` (its `l`ayers, dedup's `d`).
#[inline(always)]
fn packet<'a>(m: &Mbuf, l: &'a Layers, d: &DedupVerdict) -> Packet<'a> {
    Packet {
        layers: l,
        len: m.pkt_len() as u32,
        duplicate: *d == DedupVerdict::Duplicate,
    }
}

/// A burst as its hinted pass reads it.
struct Hinted<'a> {
    ms: &'a [Mbuf],
    layers: &'a [Layers],
    dups: &'a [DedupVerdict],
    hints: &'a [Hint; BURST],
    now_ns: u64,
}

impl Hinted<'_> {
    /// Counts each packet whose rule meters (`meters`, one a packet) and
    /// whose hint holds at its entry, its hash for encap from there;
    /// returns their mask. A fragment is left out: encap hashes it
    /// without its ports. In a pass of its own, so that its few values
    /// stay in registers (out of line: inside `observe_burst` they are
    /// spilled), and most packets of a burst take only this.
    #[inline(never)]
    fn count(
        &self,
        table: &mut FlowTable,
        hashes: &mut [u32],
        meters: impl Iterator<Item = bool>,
    ) -> u32 {
        let mut counted = 0u32;
        let burst = self.ms.iter().zip(self.layers).zip(self.dups);
        let each = burst.zip(self.hints).zip(hashes.iter_mut()).zip(meters);
        for (i, (((((m, l), d), &hint), h), meter)) in each.enumerate() {
            if meter && l.fragment == Fragment::None {
                let packet = packet(m, l, d);
                if let Some(hash) = table.count_hinted(packet, hint, self.now_ns) {
                    *h = hash;
                    counted |= 1 << i;
                }
            }
        }
        counted
    }
}
