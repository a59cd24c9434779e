//! Per-worker exact-match flow cache in front of the classifier.

use super::key::Key;
use super::{Classifier, Verdict};
use crate::flow::table::{Hint, NO_HINT};

/// Ways per set of the worker's [`FlowCache`]: direct-mapped. An entry
/// fills a cache line (the key alone is 48 bytes), so every way is a line
/// a lookup may read, a miss reads all of its set's and an insert shifts
/// them. Measured with the worker's 1 Mi entries (`perf/benches/
/// flow_cache.rs`, ns a packet, random order / the harness's): against
/// 1 Mi flows 119 / 83 direct-mapped, 130-139 / 107-109 with 2 ways,
/// 172-191 / 127-151 with 4 (61, 70, 78 % hits in random order: the
/// extra hits cost more lines than they save); against 64 Ki flows 40-42
/// / 32-33 direct-mapped, 39 / 28-29 with 2 ways.
pub const WAYS: usize = 1;

/// One cache line: aligned so that a hit on a set's first way (the most
/// recent insert) touches one line, not the two a 16-byte-aligned slot
/// would straddle.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
struct Slot {
    key: Key,
    /// Generation of the classifier that produced `verdict`, its low 32
    /// bits ([`slot_generation`]); 0 = empty.
    generation: u32,
    verdict: Verdict,
    /// Where the flow meter counts this key's packets: the line is read
    /// for every packet anyway, so the meter finds its entry without a
    /// hash or a probe of its own. Written by the meter (through
    /// [`FlowCacheOf::set_meter_hint`], which checks the key), [`NO_HINT`]
    /// when the key is inserted, so a hint is only ever for its slot's key.
    meter: Hint,
}

// The meter's hint fits beside the key: still one line.
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// A classifier generation as a slot keeps it: its low 32 bits, never 0
/// (the classifier skips generations whose low bits are 0). Two
/// classifiers 2^32 builds apart share it; a slot written by the first
/// and untouched since would hit for the second.
#[inline(always)]
fn slot_generation(generation: u64) -> u32 {
    generation as u32
}

/// A fixed-size, `W`-way set-associative cache from a packet's full filter
/// key to the classifier's verdict. One per worker (`&mut`, no locking).
///
/// The key is every field a rule of the current classifier reads (the
/// 5-tuple, input port, VLAN, direction, and EtherType / IP version / TCP
/// flags when rules use them), so a hit is exactly what the classifier
/// would answer. Entries carry the generation of the classifier that
/// computed them: after a policy swap they simply stop hitting, with no
/// pass over the table on the worker's fast path.
#[derive(Clone, Debug)]
pub struct FlowCacheOf<const W: usize> {
    sets: Vec<[Slot; W]>,
    set_mask: usize,
    hits: u64,
    misses: u64,
}

/// The worker's flow cache: [`WAYS`] ways per set.
pub type FlowCache = FlowCacheOf<WAYS>;

impl<const W: usize> FlowCacheOf<W> {
    /// A cache of at least `capacity` flows (rounded up to a power of two,
    /// at least one set). All memory is allocated here, none later.
    pub fn new(capacity: usize) -> Self {
        const { assert!(W >= 1, "a set has at least one way") };
        let sets = capacity.div_ceil(W).max(1).next_power_of_two();
        FlowCacheOf {
            sets: vec![[Slot::default(); W]; sets],
            set_mask: sets - 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Number of flows the cache holds.
    pub fn capacity(&self) -> usize {
        self.sets.len() * W
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that went to the classifier.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Forget every entry (not needed on a classifier change; for tests
    /// and for operators clearing state).
    pub fn clear(&mut self) {
        self.sets.fill([Slot::default(); W]);
    }

    /// The verdict for `key` (already masked by the classifier's used
    /// fields), from the cache or from `cls` on a miss.
    #[inline]
    pub(crate) fn lookup(&mut self, cls: &Classifier, key: &Key) -> Verdict {
        let set = self.set_of(key);
        self.lookup_in(cls, key, set)
    }

    /// The set `key` lives in.
    #[inline]
    pub(crate) fn set_of(&self, key: &Key) -> usize {
        key.hash() as usize & self.set_mask
    }

    /// Starts loading the first line of a set, for a burst to overlap the
    /// cache misses of its lookups before it probes: a prefetch under
    /// DPDK; without it (no `unsafe` outside the DPDK layer), a load.
    #[inline(always)]
    pub(crate) fn prefetch(&self, set: usize) {
        if let Some(s) = self.sets.get(set) {
            #[cfg(feature = "dpdk")]
            crate::dpdk::prefetch(s);
            #[cfg(not(feature = "dpdk"))]
            core::hint::black_box(s[0].generation);
        }
    }

    /// [`FlowCache::lookup`] with the set already found by [`FlowCache::set_of`].
    #[inline]
    pub(crate) fn lookup_in(&mut self, cls: &Classifier, key: &Key, set_idx: usize) -> Verdict {
        let generation = cls.generation();
        if let Some(v) = self.probe(generation, key, set_idx) {
            self.count(1, 0);
            return v;
        }
        self.count(0, 1);
        let verdict = cls.lookup_key(key);
        self.insert(generation, key, set_idx, verdict);
        verdict
    }

    /// The cached verdict of `key` in set `set_idx` from classifier
    /// `generation` (uncounted: see [`FlowCache::count`]).
    #[inline]
    pub(crate) fn probe(&self, generation: u64, key: &Key, set_idx: usize) -> Option<Verdict> {
        self.probe_hinted(generation, key, set_idx).map(|(v, _)| v)
    }

    /// [`FlowCache::probe`] with the slot's meter hint.
    #[inline(always)]
    pub(crate) fn probe_hinted(
        &self,
        generation: u64,
        key: &Key,
        set_idx: usize,
    ) -> Option<(Verdict, Hint)> {
        let generation = slot_generation(generation);
        let set = self.sets.get(set_idx)?;
        set.iter()
            .find(|s| s.generation == generation && s.key == *key)
            .map(|s| (s.verdict, s.meter))
    }

    /// Keeps the meter's `hint` in `key`'s slot of set `set_idx`, if the
    /// key (from classifier `generation`) is there.
    #[inline]
    // The worker (DPDK only) is the caller.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn set_meter_hint(
        &mut self,
        generation: u64,
        key: &Key,
        set_idx: usize,
        hint: Hint,
    ) {
        let generation = slot_generation(generation);
        if let Some(s) = self.sets.get_mut(set_idx).and_then(|set| {
            set.iter_mut()
                .find(|s| s.generation == generation && s.key == *key)
        }) {
            s.meter = hint;
        }
    }

    /// Adds lookups answered from the cache and lookups that went to the
    /// classifier.
    #[inline]
    pub(crate) fn count(&mut self, hits: u64, misses: u64) {
        self.hits += hits;
        self.misses += misses;
    }

    /// Caches `verdict` for `key` in set `set_idx`. Inserts at the front,
    /// shifting the others down: the oldest insert falls out (FIFO per
    /// set), and recent flows are found first. A key already at the front
    /// (a new flow seen twice in one burst) is not inserted again.
    #[inline]
    pub(crate) fn insert(&mut self, generation: u64, key: &Key, set_idx: usize, verdict: Verdict) {
        let generation = slot_generation(generation);
        let Some(set) = self.sets.get_mut(set_idx) else {
            return;
        };
        if set[0].generation == generation && set[0].key == *key {
            return;
        }
        set.copy_within(0..W - 1, 1);
        set[0] = Slot {
            key: *key,
            generation,
            verdict,
            meter: NO_HINT,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::stage::filter::{Action, BurstFields, Cidr, Match, PortRange, Rule};
    use crate::stage::parse::{parse, Layers};
    use crate::stage::Direction;

    fn udp(sp: u16, dp: u16) -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(sp, dp)
            .write(&mut f, &[0; 10])
            .unwrap();
        f
    }

    fn classifier(five_tuple: bool) -> Classifier {
        let net = Some(vec![Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8)]);
        let matches = Match {
            src: net.clone(),
            dst: net,
            proto: five_tuple.then_some(17),
            src_port: five_tuple.then_some(PortRange::ANY),
            dst_port: five_tuple.then_some(PortRange::ANY),
            ..Match::default()
        };
        let rule = Rule {
            id: 1,
            matches,
            action: Action::Drop,
        };
        Classifier::build(&[rule], Action::Drop).unwrap()
    }

    /// One burst as the worker meters it: `ls` classified through `cache`,
    /// then, if it handed out hints, `kept[i]` kept for each bit `i` of
    /// `fresh` (the meter's hints for the packets it probed). Returns the
    /// hints the cache handed out.
    fn burst(
        c: &Classifier,
        cache: &mut FlowCache,
        ls: &[Layers],
        kept: &[Hint],
        fresh: u32,
    ) -> Vec<Hint> {
        let n = ls.len();
        let (ports, dirs) = (vec![0; n], vec![Direction::Ingress; n]);
        let (mut out, mut hints) = (vec![Verdict::DEFAULT; n], vec![NO_HINT; n]);
        let fields = BurstFields {
            layers: ls,
            in_ports: &ports,
            dirs: &dirs,
        };
        let handed = c.classify_burst_hinted(cache, fields, &mut out, &mut hints);
        assert_eq!(handed, c.flow_keyed());
        if handed {
            c.keep_meter_hints(cache, fields, kept, fresh);
        }
        hints
    }

    const H1: Hint = 7 << 32 | 5;
    const H2: Hint = 9 << 32 | 5;
    const H3: Hint = 11 << 32 | 6;

    #[test]
    fn a_hint_is_handed_out_for_its_key_only_and_dropped_with_its_slot() {
        let c = classifier(true);
        assert!(c.flow_keyed());
        // One set: every key takes the same slot.
        let mut cache = FlowCache::new(1);
        let (a, b, d) = (
            parse(&udp(1000, 53)),
            parse(&udp(1001, 53)),
            parse(&udp(1002, 53)),
        );
        assert_eq!(
            burst(&c, &mut cache, &[a], &[H1], 1),
            [NO_HINT],
            "inserted without"
        );
        assert_eq!(burst(&c, &mut cache, &[a], &[], 0), [H1]);
        // Another flow takes the slot: its packets get no hint.
        assert_eq!(burst(&c, &mut cache, &[b], &[], 0), [NO_HINT]);
        // A burst where a later packet takes the slot of an earlier one
        // (both miss, inserted in order): the earlier packet's hint is not
        // kept in the later one's slot, the later one's is.
        burst(&c, &mut cache, &[a, d], &[H2, H3], 0b11);
        assert_eq!(burst(&c, &mut cache, &[d], &[], 0), [H3]);
        // Only the earlier one's hint to keep: the later one's slot stays
        // without.
        burst(&c, &mut cache, &[b, a], &[H2, NO_HINT], 0b01);
        assert_eq!(burst(&c, &mut cache, &[a], &[], 0), [NO_HINT]);
    }

    #[test]
    fn a_key_without_the_whole_five_tuple_gets_no_hint() {
        let c = classifier(false);
        assert!(!c.flow_keyed());
        let mut cache = FlowCache::new(1);
        let a = parse(&udp(1000, 53));
        burst(&c, &mut cache, &[a], &[H1], 1);
        // The slot is shared by every flow between the two addresses.
        assert_eq!(
            burst(&c, &mut cache, &[parse(&udp(1001, 53))], &[], 0),
            [NO_HINT]
        );
        assert_eq!(burst(&c, &mut cache, &[a], &[], 0), [NO_HINT]);
    }
}
