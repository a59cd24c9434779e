//! Per-worker exact-match flow cache in front of the classifier.

use super::key::Key;
use super::{Classifier, Verdict};

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
    /// Generation of the classifier that produced `verdict`; 0 = empty
    /// (generations start at 1).
    generation: u64,
    verdict: Verdict,
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

    /// Loads the first line of a set, for a burst to overlap the cache
    /// misses of its lookups before it probes (the value is meaningless).
    #[inline]
    pub(crate) fn touch(&self, set: usize) -> u64 {
        self.sets.get(set).map_or(0, |s| s[0].generation)
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
        let set = self.sets.get(set_idx)?;
        set.iter()
            .find(|s| s.generation == generation && s.key == *key)
            .map(|s| s.verdict)
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
        };
    }
}
