//! dedup: drop the extra copies of a packet seen within a short window.
//!
//! A broker fed by several TAPs or SPAN sessions sees the same packet more
//! than once: on both sides of a router, on an access and a trunk port, once
//! per mirrored VLAN. Those copies differ only in fields the network rewrites
//! on the way (MACs, VLAN tags, TTL / hop limit and so the IPv4 checksum,
//! sometimes DSCP/ECN), so the fingerprint masks exactly those and keeps
//! everything else — IP ID, lengths, payload — so that a TCP retransmission,
//! which is a new packet to the tools, is never taken for a copy.
//!
//! The table is per worker (RSS sends every copy of a packet to the same
//! worker, DESIGN §3), bounded and set-associative: one 64-byte cache line
//! per bucket, so a lookup costs one cache miss at most. It is allocated once
//! in [`Dedup::new`]; nothing allocates afterwards.
//!
//! Time comes in as `now_ns` arguments (the runtime passes TSC-derived
//! nanoseconds), so the stage is deterministic under test.

use core::ops::Range;
use std::sync::Arc;

use thiserror::Error;

use crate::frame::Frame;
use crate::runtime::counters::Counter;
use crate::stage::parse::Layers;
use crate::stage::BURST;
use crate::wire::bytes::{u16_at, u8_at};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::{arp, ipv4, ipv6, vlan};

/// Default dedup window: 50 ms, long enough for the copies of one packet to
/// arrive through different taps, short enough that a legitimately repeated
/// packet (an identical IPv6 probe, say) is not lost.
pub const DEFAULT_WINDOW_US: u32 = 50_000;
/// Default table size: 1 Mi entries, 16 MiB per worker; holds a 50 ms window
/// at ~14.9 Mpps (64-byte line rate of 10 GbE) with room to spare.
pub const DEFAULT_ENTRIES: usize = 1 << 20;
/// Entries per bucket. A bucket is one cache line: 4 × (64-bit tag + 64-bit
/// timestamp/check word). Four wide 64-bit tags keep false positives
/// negligible where eight 32-bit tags in the same line would not
/// (8 / 2^32 per lookup is one lost packet a minute at 10 Mpps).
pub const WAYS: usize = 4;
/// Smallest table: one bucket.
pub const MIN_ENTRIES: usize = WAYS;
/// Largest table: 2^28 entries (4 GiB); anything bigger is a configuration
/// mistake, not a dedup window.
pub const MAX_ENTRIES: usize = 1 << 28;
/// Hash keys used when the configuration gives none. Per-process random keys
/// (see [`DedupConfig::seed`]) keep outsiders from crafting packets that
/// collide with a victim's and so hiding them from the tools.
pub const DEFAULT_SEED: u64 = 0x5157_1ce0_dedf_0001;

/// Timestamps are stored in µs in the upper 48 bits of an entry's meta word
/// (8.9 years before they wrap); the low 16 bits hold more fingerprint bits.
const TS_SHIFT: u32 = 16;
const TS_MASK: u64 = (1 << (64 - TS_SHIFT)) - 1;
const CHECK_MASK: u64 = (1 << TS_SHIFT) - 1;

/// Configuration of a worker's dedup table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// Table entries: a power of two in `MIN_ENTRIES..=MAX_ENTRIES`. Size it at
    /// twice the packets a worker sees in one window or more: past that, live
    /// entries are evicted and late copies get through.
    pub entries: usize,
    /// A copy arriving less than this many µs after the first is a duplicate.
    pub window_us: u32,
    /// Also mask DSCP/ECN (IPv4 TOS byte, IPv6 traffic class), for copies
    /// taken before and after a re-marking or ECN-marking hop.
    pub ignore_dscp_ecn: bool,
    /// Put the L2 header (MACs, VLAN tags, EtherType, MPLS labels) in the
    /// fingerprint: only byte-identical frames are copies then.
    pub include_l2: bool,
    /// Seeds the hash keys. The runtime should pass a random value; tests pass
    /// a fixed one. Fingerprints are only compared within one table.
    pub seed: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            entries: DEFAULT_ENTRIES,
            window_us: DEFAULT_WINDOW_US,
            ignore_dscp_ecn: false,
            include_l2: false,
            seed: DEFAULT_SEED,
        }
    }
}

/// Why a dedup table could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DedupError {
    #[error("dedup table entries must be a power of two from {min} to {max}, got {got}")]
    BadEntries { got: usize, min: usize, max: usize },
    #[error("cannot allocate {bytes} bytes for the dedup table")]
    NoMemory { bytes: usize },
}

/// What dedup says about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// First sighting within the window: forward it.
    Unique,
    /// A copy of a packet seen less than a window ago: drop it (`deduplicated`).
    Duplicate,
}

/// Per-worker dedup counters. `checked == hits + inserts` always.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupCounters {
    /// Packets looked up.
    pub checked: u64,
    /// Packets found to be duplicates.
    pub hits: u64,
    /// Packets recorded as first sightings.
    pub inserts: u64,
    /// Inserts that replaced a live entry: the table is too small for the
    /// window, and a copy of the evicted packet would now get through.
    pub evictions: u64,
    /// Inserts that reused an expired entry (the normal steady state).
    pub expired_replacements: u64,
}

/// The stage's counters where the runtime reads them (VPP style): shared
/// with the main lcore, written only by the worker that owns the table,
/// once per burst.
#[derive(Debug, Default)]
pub struct DedupStats {
    pub checked: Counter,
    pub hits: Counter,
    pub inserts: Counter,
    pub evictions: Counter,
    pub expired_replacements: Counter,
}

impl DedupStats {
    /// The values now.
    pub fn snapshot(&self) -> DedupCounters {
        DedupCounters {
            checked: self.checked.get(),
            hits: self.hits.get(),
            inserts: self.inserts.get(),
            evictions: self.evictions.get(),
            expired_replacements: self.expired_replacements.get(),
        }
    }

    /// Zeroes every counter (the owning worker only, between bursts).
    pub fn zero(&self) {
        for c in self.all() {
            c.set(0);
        }
    }

    fn all(&self) -> [&Counter; 5] {
        [
            &self.checked,
            &self.hits,
            &self.inserts,
            &self.evictions,
            &self.expired_replacements,
        ]
    }

    fn add(&self, t: &DedupCounters) {
        let n = [
            t.checked,
            t.hits,
            t.inserts,
            t.evictions,
            t.expired_replacements,
        ];
        for (c, n) in self.all().into_iter().zip(n) {
            if n != 0 {
                c.add(n);
            }
        }
    }
}

/// A packet fingerprint. `tag` is stored as is; `aux`, derived from it,
/// picks the bucket (low bits) and gives 16 check bits (high bits) that
/// are stored with it. Both come from one keyed 64-bit chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Never 0: 0 marks an empty way.
    pub tag: u64,
    pub aux: u64,
}

/// One cache line: the tags first so that the compare loop reads them
/// together, then `timestamp_us << 16 | check` per way.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    tag: [u64; WAYS],
    meta: [u64; WAYS],
}

impl Bucket {
    const EMPTY: Self = Self {
        tag: [0; WAYS],
        meta: [0; WAYS],
    };
}

/// Where the buckets live: DPDK hugepages under EAL, else the heap.
enum Table {
    Heap(Vec<Bucket>),
    #[cfg(feature = "dpdk")]
    Huge(crate::dpdk::HugeSlice<Bucket>),
}

impl Table {
    #[inline(always)]
    fn buckets(&self) -> &[Bucket] {
        match self {
            Table::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Table::Huge(h) => h,
        }
    }

    #[inline(always)]
    fn buckets_mut(&mut self) -> &mut [Bucket] {
        match self {
            Table::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Table::Huge(h) => h,
        }
    }
}

/// Hash keys derived from the seed. No `Debug`: they are what keeps
/// collisions from being crafted, so they stay out of logs.
#[derive(Clone, Copy)]
struct Keys([u64; 6]);

impl Keys {
    fn from_seed(seed: u64) -> Self {
        // splitmix64: well-spread, distinct keys from any seed, including 0.
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next(), next(), next()])
    }
}

/// 64×64→128 multiply folded to 64 bits: the wyhash/rapidhash mixer, one
/// `mul` per call, so two lanes cost two multiplies per 16 input bytes.
#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The two little-endian words of a 16-byte chunk: one unaligned load.
#[inline(always)]
fn words(c: &[u8; 16]) -> (u64, u64) {
    let v = u128::from_le_bytes(*c);
    (v as u64, (v >> 64) as u64)
}

/// Row `r` keeps the top `r` bytes of a 16-byte chunk read as two
/// little-endian words: the `r` tail bytes of a piece whose last 16 bytes
/// were reloaded (row 0 is never used).
const TAIL_MASKS: [[u64; 2]; 16] = {
    let mut t = [[0u64; 2]; 16];
    let mut r = 1;
    while r < 16 {
        let m = !0u128 << (8 * (16 - r));
        t[r] = [m as u64, (m >> 64) as u64];
        r += 1;
    }
    t
};

/// Up to 16 bytes as two words, zero-padded. Only for pieces shorter than
/// 16 bytes (a MAC pair, a runt), never on the IP path.
#[inline(never)]
fn words_padded(b: &[u8]) -> (u64, u64) {
    let mut w = [0u8; 16];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    words(&w)
}

/// Hash state: one keyed 64-bit chain, one 64×64→128-bit multiply per 16
/// input bytes (wyhash's shape). Two different packets share a key only
/// if the chain collides: about 2^-64 for a pair, and a packet meets at
/// most a few entries of its bucket within the window, so a false
/// duplicate is not expected in the life of an appliance. Not a MAC; the
/// random keys are what makes collisions hard to aim for. (A second lane
/// for 128 bits of state doubled the multiplies per byte for nothing a
/// table of 2^20 entries can use.)
struct State<'k> {
    keys: &'k Keys,
    h1: u64,
    lens: u64,
}

impl<'k> State<'k> {
    #[inline(always)]
    fn new(keys: &'k Keys) -> Self {
        Self {
            keys,
            h1: keys.0[2],
            lens: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self, a: u64, b: u64) {
        self.h1 = mix(a ^ self.keys.0[0], b ^ self.h1);
    }

    /// Absorbs `bytes`, with its first two words ANDed with `m0` / `m1` (the
    /// mutable header fields to ignore), and its length.
    #[inline(always)]
    fn piece(&mut self, bytes: &[u8], m0: u64, m1: u64) {
        // 33 to 47 bytes, the IP packet of a minimum-size frame: the rounds
        // below unrolled (no block, one whole chunk, a tail), without
        // their loop and length tests.
        let n = bytes.len();
        if n.wrapping_sub(33) < 15 {
            if let (Some((c0, rest)), Some(last)) =
                (bytes.split_first_chunk::<16>(), bytes.last_chunk::<16>())
            {
                let c1 = rest.first_chunk::<16>().unwrap_or(last);
                let (a, b) = words(c0);
                self.round(a & m0, b & m1);
                self.h1 ^= self.keys.0[5];
                let (a, b) = words(c1);
                self.round(a, b);
                let (a, b) = words(last);
                let [ma, mb] = TAIL_MASKS[(n - 32) % 16];
                self.round(a & ma, b & mb);
                self.lens = self.lens.rotate_left(21) ^ n as u64;
                return;
            }
        }
        if let Some((first, mut rest)) = bytes.split_first_chunk::<16>() {
            let (a, b) = words(first);
            self.round(a & m0, b & m1);
            // Long pieces: a second chain takes every other 16 bytes. The
            // chain through the multiply, not the multiplier, is what limits
            // one chain, so this nearly halves the time for a full-size frame.
            let mut h3 = self.keys.0[5];
            while let Some((block, r)) = rest.split_first_chunk::<32>() {
                if let (Some(x), Some(y)) = (block.first_chunk::<16>(), block.last_chunk::<16>()) {
                    let (a, b) = words(x);
                    let (c, d) = words(y);
                    self.round(a, b);
                    h3 = mix(c ^ self.keys.0[1], d ^ h3);
                }
                rest = r;
            }
            self.h1 ^= h3;
            if let Some((c, r)) = rest.split_first_chunk::<16>() {
                let (a, b) = words(c);
                self.round(a, b);
                rest = r;
            }
            // The tail: reload the piece's last 16 bytes and mask off the
            // ones already absorbed (two ANDs with a table row, where a
            // shift of 128 bits took a dozen instructions), which keeps the
            // masked header fields out even when the reload overlaps them.
            if let (false, Some(last)) = (rest.is_empty(), bytes.last_chunk::<16>()) {
                let (a, b) = words(last);
                let [ma, mb] = TAIL_MASKS[rest.len() % 16];
                self.round(a & ma, b & mb);
            }
        } else {
            let (a, b) = words_padded(bytes);
            self.round(a & m0, b & m1);
        }
        // Lengths keep zero padding from aliasing real zero bytes.
        self.lens = self.lens.rotate_left(21) ^ bytes.len() as u64;
    }

    /// [`State::piece`] of the bytes `range` of a chained frame, given as
    /// its segments: the same rounds over the same 16-byte words as `piece`
    /// over those bytes in one slice, wherever the segments split them, so
    /// a copy that arrived in one segment and one that arrived in three
    /// share a key. The slow path: `piece` keeps its single-slice tricks.
    fn piece_segments<'a>(
        &mut self,
        segments: impl Iterator<Item = &'a [u8]>,
        range: Range<usize>,
        m0: u64,
        m1: u64,
    ) {
        let len = range.len();
        let mut r = SegmentReader::new(segments, range);
        let (a, b) = words(&r.next(16));
        self.round(a & m0, b & m1);
        if len >= 16 {
            let rest = len - 16;
            let mut h3 = self.keys.0[5];
            for _ in 0..rest / 32 {
                let (a, b) = words(&r.next(16));
                let (c, d) = words(&r.next(16));
                self.round(a, b);
                h3 = mix(c ^ self.keys.0[1], d ^ h3);
            }
            self.h1 ^= h3;
            if rest % 32 >= 16 {
                let (a, b) = words(&r.next(16));
                self.round(a, b);
            }
            if !rest.is_multiple_of(16) {
                // `piece` reads the tail in place, at the top of its last
                // 16 bytes: shift what the reader packed at the bottom there.
                let v = u128::from_le_bytes(r.next(16)) << (8 * (16 - rest % 16));
                self.round(v as u64, (v >> 64) as u64);
            }
        }
        self.lens = self.lens.rotate_left(21) ^ len as u64;
    }

    #[inline(always)]
    fn finish(self) -> Fingerprint {
        // The lengths go in last. aux is the tag times an odd constant: its
        // low bits (the bucket) a bijection of the tag's, its high bits
        // (the check) a mix of all of them. The 64-bit chain is all the
        // state there is, so a second keyed mix for aux added no bits.
        let tag = mix(self.h1 ^ self.keys.0[3], self.lens ^ self.keys.0[4]);
        Fingerprint {
            tag: tag.max(1),
            aux: tag.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        }
    }
}

/// Reads a byte range of a frame across its segments, up to 16 bytes at a time.
struct SegmentReader<'a, I> {
    cur: &'a [u8],
    rest: I,
    left: usize,
}

impl<'a, I: Iterator<Item = &'a [u8]>> SegmentReader<'a, I> {
    fn new(mut segments: I, range: Range<usize>) -> Self {
        let mut skip = range.start;
        let mut cur: &[u8] = &[];
        for s in segments.by_ref() {
            if let Some(tail) = s.get(skip..).filter(|t| !t.is_empty()) {
                cur = tail;
                break;
            }
            skip -= s.len();
        }
        Self {
            cur,
            rest: segments,
            left: range.len(),
        }
    }

    /// The next up to 16 bytes of the range, zero-padded (as
    /// [`words_padded`] pads a short piece) once the range is used up.
    fn next(&mut self, n: usize) -> [u8; 16] {
        let mut out = [0u8; 16];
        let n = n.min(16).min(self.left);
        self.left -= n;
        let mut got = 0;
        while got < n {
            if self.cur.is_empty() {
                match self.rest.next() {
                    Some(s) => self.cur = s,
                    // A chain shorter than its length (never handed out
                    // by the RX path): the rest stays zero.
                    None => break,
                }
                continue;
            }
            let k = (n - got).min(self.cur.len());
            let (now, later) = self.cur.split_at(k);
            out[got..got + k].copy_from_slice(now);
            self.cur = later;
            got += k;
        }
        out
    }
}

/// What a fingerprint covers: byte ranges of the whole frame (which may
/// run past its first segment), and the masks of the first 16 bytes of
/// `body`.
struct Cover {
    l2: Option<Range<usize>>,
    body: Range<usize>,
    m0: u64,
    m1: u64,
}

// Masks over the first 16 bytes of the L3 header, read little-endian.
/// IPv4 byte 8 (TTL) and bytes 10-11 (header checksum).
const V4_M1: u64 = !0xffff_00ff;
/// IPv4 byte 1 (TOS: DSCP and ECN).
const V4_TOS: u64 = !0xff00;
/// IPv6 byte 7 (hop limit).
const V6_HOP: u64 = !0xff00_0000_0000_0000;
/// IPv6 traffic class: low nibble of byte 0, high nibble of byte 1.
const V6_TC: u64 = !0xf00f;

/// Where the ARP header starts in a non-IP body, which starts at the
/// EtherType.
const ARP_IN_BODY: usize = ethernet::field::PAYLOAD - ethernet::field::ETHERTYPE;

/// Where the EtherType after `vlan_count` tags starts: the L2 header up to
/// there is what the fingerprint leaves out (MACs and tags).
#[inline(always)]
fn ethertype_at(vlan_count: u8) -> usize {
    ethernet::field::ETHERTYPE + vlan::HEADER_LEN * usize::from(vlan_count)
}

/// A worker's dedup table and counters.
pub struct Dedup {
    table: Table,
    /// Number of buckets - 1.
    mask: u64,
    keys: Keys,
    /// The masks of the first 16 bytes of an IPv4 ([0]) and an IPv6 ([1])
    /// packet: the fields a hop rewrites, DSCP/ECN too if configured.
    ip_masks: [[u64; 2]; 2],
    window_us: u32,
    ignore_dscp_ecn: bool,
    include_l2: bool,
    stats: Arc<DedupStats>,
}

/// The table itself is left out: 16 MiB of buckets is not a log line.
impl core::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dedup")
            .field("entries", &self.entries())
            .field("window_us", &self.window_us)
            .field("ignore_dscp_ecn", &self.ignore_dscp_ecn)
            .field("include_l2", &self.include_l2)
            .field("counters", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl Dedup {
    /// Allocates and clears the table; the only allocation the stage makes.
    pub fn new(cfg: &DedupConfig) -> Result<Self, DedupError> {
        Self::new_with(cfg, |_, _| {})
    }

    /// As [`Dedup::new`], calling `before_first_touch(addr, len)` on the
    /// table's memory after it is reserved and before it is written: the
    /// runtime asks for huge pages there (`dpdk::advise_hugepages`).
    pub fn new_with(
        cfg: &DedupConfig,
        before_first_touch: impl FnOnce(usize, usize),
    ) -> Result<Self, DedupError> {
        let n = cfg.entries;
        if !n.is_power_of_two() || !(MIN_ENTRIES..=MAX_ENTRIES).contains(&n) {
            return Err(DedupError::BadEntries {
                got: n,
                min: MIN_ENTRIES,
                max: MAX_ENTRIES,
            });
        }
        let nb = n / WAYS;
        let mut buckets = Vec::new();
        // Fail with an error, not an abort, when the configured size does not fit.
        buckets
            .try_reserve_exact(nb)
            .map_err(|_| DedupError::NoMemory {
                bytes: nb * core::mem::size_of::<Bucket>(),
            })?;
        before_first_touch(
            buckets.as_ptr() as usize,
            buckets.capacity() * core::mem::size_of::<Bucket>(),
        );
        // Writing every bucket now also faults the pages in at start, not on
        // the fast path.
        buckets.resize(nb, Bucket::EMPTY);
        Ok(Self::with_table(cfg, Table::Heap(buckets)))
    }

    /// As [`Dedup::new`], the table in DPDK's hugepage memory when EAL
    /// runs and has room for it (what a worker wants: a random lookup in
    /// 16 MiB then misses no TLB), else on the heap with transparent huge
    /// pages advised.
    #[cfg(feature = "dpdk")]
    pub fn new_on_hugepages(cfg: &DedupConfig) -> Result<Self, DedupError> {
        let n = cfg.entries;
        if n.is_power_of_two() && (MIN_ENTRIES..=MAX_ENTRIES).contains(&n) {
            let socket = crate::dpdk::SOCKET_ID_ANY;
            if let Some(h) = crate::dpdk::HugeSlice::new(n / WAYS, Bucket::EMPTY, socket) {
                return Ok(Self::with_table(cfg, Table::Huge(h)));
            }
        }
        Self::new_with(cfg, |addr, len| {
            crate::dpdk::advise_hugepages(addr, len);
        })
    }

    /// Whether the table is in DPDK hugepage memory.
    pub fn on_hugepages(&self) -> bool {
        !matches!(self.table, Table::Heap(_))
    }

    fn with_table(cfg: &DedupConfig, table: Table) -> Self {
        let nb = table.buckets().len();
        Self {
            table,
            mask: nb as u64 - 1,
            keys: Keys::from_seed(cfg.seed),
            ip_masks: if cfg.ignore_dscp_ecn {
                [[V4_TOS, V4_M1], [V6_HOP & V6_TC, !0]]
            } else {
                [[!0, V4_M1], [V6_HOP, !0]]
            },
            window_us: cfg.window_us,
            ignore_dscp_ecn: cfg.ignore_dscp_ecn,
            include_l2: cfg.include_l2,
            stats: Arc::default(),
        }
    }

    /// Counts into `stats` from now on: the runtime's copy, which the main
    /// lcore reads.
    pub fn with_stats(mut self, stats: Arc<DedupStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Changes the window at run time. Entries keep their timestamps, so the
    /// new window applies to them at once.
    pub fn set_window(&mut self, us: u32) {
        self.window_us = us;
    }

    /// The window in µs.
    pub fn window_us(&self) -> u32 {
        self.window_us
    }

    /// Table capacity in entries.
    pub fn entries(&self) -> usize {
        self.table.buckets().len() * WAYS
    }

    /// Bytes of table memory.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(self.table.buckets())
    }

    /// The counters so far.
    pub fn counters(&self) -> DedupCounters {
        self.stats.snapshot()
    }

    /// The fingerprint of a frame held in one slice, given the offsets
    /// parse found. Never reads past `data`.
    ///
    /// - IP: the IP packet from `l3_offset` to the end its header's length
    ///   gives (so Ethernet padding, which changes when a tag is pushed or
    ///   popped, is left out), with TTL and checksum / hop limit masked, and
    ///   DSCP/ECN too if configured. With `include_l2`, every byte before
    ///   `l3_offset` as well.
    /// - Anything else: the frame without its VLAN tags (MACs, EtherType,
    ///   payload); ARP without its padding. With `include_l2`, with the tags.
    #[inline(always)]
    pub fn fingerprint(&self, data: &[u8], layers: &Layers) -> Fingerprint {
        // IP without L2, nearly every packet: inlined into the burst's
        // loop (the call, with its saved registers, cost a fifth of it).
        // Parse checked the IP header's lengths and kept where the packet
        // ends, so its header is not read again here; where parse did not
        // (`ip_end` 0), the slow path reads it.
        let ip = data.get(usize::from(layers.l3_offset)..layers.ip_end as usize);
        match ip {
            Some(ip) if layers.ip_end != 0 && !self.include_l2 => {
                // Index 0 for IPv4, 1 for IPv6: bit 1 of the version.
                let [m0, m1] = self.ip_masks[usize::from(layers.ip_version >> 1 & 1)];
                let mut st = State::new(&self.keys);
                st.piece(ip, m0, m1);
                st.finish()
            }
            _ => self.fingerprint_other(data, layers),
        }
    }

    /// Absorbs an IP packet `ip` (from its header to the end of the frame)
    /// of `version` 4 or 6: the packet to the end its header's length
    /// gives, with TTL and checksum / hop limit masked, and DSCP/ECN if
    /// configured.
    #[inline(always)]
    fn ip_piece(&self, st: &mut State<'_>, ip: &[u8], version: u8) {
        let (end, m0, m1) = if version == 4 {
            // A total length below the minimum header: 0 for a GSO
            // super-frame (`ipv4::packet_len`) or malformed. Either
            // way take what the frame has; one compare covers both.
            let total = usize::from(u16_at(ip, ipv4::field::LENGTH));
            let end = if total >= ipv4::MIN_HEADER_LEN {
                total
            } else {
                ip.len()
            };
            let [m0, m1] = self.ip_masks[0];
            (end, m0, m1)
        } else {
            // A jumbogram or a GSO super-frame runs to the end of the
            // frame, or every such packet of a flow would share one key.
            let end = ipv6::packet_len(u16_at(ip, ipv6::field::LENGTH), ip.len());
            let [m0, m1] = self.ip_masks[1];
            (end, m0, m1)
        };
        st.piece(&ip[..end.min(ip.len())], m0, m1);
    }

    /// [`Dedup::fingerprint`] of what is not IP, of IP that parse did not
    /// check or that runs past `data`, or with the L2 header.
    #[inline(never)]
    fn fingerprint_other(&self, data: &[u8], layers: &Layers) -> Fingerprint {
        let mut st = State::new(&self.keys);
        match layers.ip_version {
            4 | 6 => {
                let l3 = usize::from(layers.l3_offset).min(data.len());
                let (l2, ip) = data.split_at(l3);
                if self.include_l2 {
                    st.piece(l2, !0, !0);
                }
                self.ip_piece(&mut st, ip, layers.ip_version);
            }
            _ => {
                let tags_end = ethertype_at(layers.vlan_count).min(data.len());
                let (head, body) = data.split_at(tags_end);
                let body = if u16_at(body, 0) == ethertype::ARP {
                    // EtherType, then the ARP packet without its padding.
                    let hlen = u8_at(body, ARP_IN_BODY + arp::field::HARDWARE_LEN);
                    let plen = u8_at(body, ARP_IN_BODY + arp::field::PROTOCOL_LEN);
                    let arp_len = ARP_IN_BODY + arp::packet_len(hlen, plen);
                    &body[..arp_len.min(body.len())]
                } else {
                    body
                };
                let l2 = if self.include_l2 {
                    head
                } else {
                    &head[..head.len().min(ethernet::field::ETHERTYPE)]
                };
                st.piece(l2, !0, !0);
                st.piece(body, !0, !0);
            }
        }
        st.finish()
    }

    /// The fingerprint of a [`Frame`]: [`Dedup::fingerprint`] of its bytes,
    /// all of them for a chained frame (the same key as the same bytes in
    /// one segment), walking the chain only when there is one.
    #[inline(always)]
    pub fn fingerprint_frame<F: Frame>(&self, frame: &F, layers: &Layers) -> Fingerprint {
        let data = frame.data();
        if data.len() >= frame.pkt_len() {
            self.fingerprint(data, layers)
        } else {
            self.fingerprint_chained(frame, layers)
        }
    }

    #[cold]
    #[inline(never)]
    fn fingerprint_chained<F: Frame>(&self, frame: &F, layers: &Layers) -> Fingerprint {
        let c = self.cover(frame, layers);
        let mut st = State::new(&self.keys);
        if let Some(l2) = c.l2 {
            st.piece_segments(frame.segments(), l2, !0, !0);
        }
        st.piece_segments(frame.segments(), c.body, c.m0, c.m1);
        st.finish()
    }

    /// What [`Dedup::fingerprint`] covers in a chained frame, as ranges
    /// of the whole frame; every range ends by its length. The header
    /// fields it reads (IP lengths, EtherType, ARP sizes) are read across
    /// segments too: a first segment need not hold them. The same choices
    /// as `fingerprint` makes over one slice: that one keeps its own slice
    /// code because it is the per-packet path (written over these ranges it
    /// cost 3 ns more per packet), and the property tests in
    /// dataplane/tests/dedup_stage.rs and the `stages` fuzz target hold the
    /// two to the same keys.
    fn cover<F: Frame>(&self, frame: &F, layers: &Layers) -> Cover {
        let len = frame.pkt_len();
        let bytes = |at: usize, n: usize| SegmentReader::new(frame.segments(), at..at + n).next(n);
        // As `u16_at`: 0 when the two bytes are not there.
        let u16_across = |at: usize| match at.checked_add(2) {
            Some(end) if end <= len => {
                let b = bytes(at, 2);
                u16::from_be_bytes([b[0], b[1]])
            }
            _ => 0,
        };
        let u8_across = |at: usize| if at < len { bytes(at, 1)[0] } else { 0 };
        match layers.ip_version {
            4 | 6 => {
                let l3 = usize::from(layers.l3_offset).min(len);
                let avail = len - l3;
                let (end, m0, m1) = if layers.ip_version == 4 {
                    // As in `fingerprint`.
                    let total = usize::from(u16_across(l3 + ipv4::field::LENGTH));
                    let end = if total >= ipv4::MIN_HEADER_LEN {
                        total
                    } else {
                        avail
                    };
                    let [m0, m1] = self.ip_masks[0];
                    (end, m0, m1)
                } else {
                    let end = ipv6::packet_len(u16_across(l3 + ipv6::field::LENGTH), avail);
                    let [m0, m1] = self.ip_masks[1];
                    (end, m0, m1)
                };
                Cover {
                    l2: self.include_l2.then_some(0..l3),
                    body: l3..l3 + end.min(avail),
                    m0,
                    m1,
                }
            }
            _ => {
                let tags_end = ethertype_at(layers.vlan_count).min(len);
                let end = if u16_across(tags_end) == ethertype::ARP {
                    let arp = tags_end + ARP_IN_BODY;
                    let hlen = u8_across(arp + arp::field::HARDWARE_LEN);
                    let plen = u8_across(arp + arp::field::PROTOCOL_LEN);
                    let arp_len = ARP_IN_BODY + arp::packet_len(hlen, plen);
                    tags_end + arp_len.min(len - tags_end)
                } else {
                    len
                };
                let l2_end = if self.include_l2 {
                    tags_end
                } else {
                    tags_end.min(ethernet::field::ETHERTYPE)
                };
                Cover {
                    l2: Some(0..l2_end),
                    body: tags_end..end,
                    m0: !0,
                    m1: !0,
                }
            }
        }
    }

    #[inline(always)]
    fn bucket_index(&self, fp: Fingerprint) -> usize {
        (fp.aux & self.mask) as usize
    }

    /// Looks `fp` up and records it if it is new, counting in `tally`.
    #[inline(always)]
    fn probe(&mut self, fp: Fingerprint, now_us: u64, tally: &mut DedupCounters) -> Verdict {
        let idx = self.bucket_index(fp);
        let window = u64::from(self.window_us);
        let check = fp.aux >> (64 - TS_SHIFT);
        tally.checked += 1;
        let Some(b) = self.table.buckets_mut().get_mut(idx) else {
            // Unreachable: idx is masked to the table size. Fail open.
            tally.inserts += 1;
            return Verdict::Unique;
        };
        let age = |meta: u64| now_us.wrapping_sub(meta >> TS_SHIFT) & TS_MASK;
        // The way holding this packet, if any. Time running backwards
        // gives a huge age: expired, fail open.
        let victim =
            match (0..WAYS).find(|&w| b.tag[w] == fp.tag && b.meta[w] & CHECK_MASK == check) {
                Some(w) if age(b.meta[w]) < window => {
                    tally.hits += 1;
                    return Verdict::Duplicate;
                }
                // The same packet, seen before the window: refresh in place
                // so a bucket never holds one key twice.
                Some(w) => {
                    tally.expired_replacements += 1;
                    w
                }
                // Else the first empty way, else the (first) oldest, which
                // is expired whenever any way is: the ages are worked out
                // only for a full bucket.
                None => match b.tag.iter().position(|&t| t == 0) {
                    Some(w) => w,
                    None => {
                        let ages = b.meta.map(age);
                        let mut victim = 0;
                        for (w, &a) in ages.iter().enumerate().skip(1) {
                            if a > ages[victim] {
                                victim = w;
                            }
                        }
                        if ages[victim] < window {
                            tally.evictions += 1;
                        } else {
                            tally.expired_replacements += 1;
                        }
                        victim
                    }
                },
            };
        b.tag[victim] = fp.tag;
        b.meta[victim] = (now_us << TS_SHIFT) | check;
        tally.inserts += 1;
        Verdict::Unique
    }

    /// Checks one packet; records it when it is not a duplicate. The window
    /// runs from the first sighting: copies do not extend it, so a packet
    /// legitimately repeated every few windows is still forwarded each time.
    pub fn check<F: Frame>(&mut self, frame: &F, layers: &Layers, now_ns: u64) -> Verdict {
        let fp = self.fingerprint_frame(frame, layers);
        let mut tally = DedupCounters::default();
        let v = self.probe(fp, (now_ns / 1000) & TS_MASK, &mut tally);
        self.stats.add(&tally);
        v
    }

    /// Checks a burst: `verdicts[i]` for `frames[i]` / `layers[i]`, over the
    /// shortest of the three slices. Copies within the burst are found too
    /// (probes run in order).
    ///
    /// Per 32 packets, [`Dedup::prefetch_burst`] then the probes: a
    /// burst's cache misses are in flight at once, where loads interleaved
    /// with hashing would be held back by the reorder buffer a few packets
    /// at a time. Several times faster than [`Dedup::check`] per packet
    /// once the table is larger than the cache.
    pub fn check_burst<F: Frame>(
        &mut self,
        frames: &[F],
        layers: &[Layers],
        now_ns: u64,
        verdicts: &mut [Verdict],
    ) {
        let n = frames.len().min(layers.len()).min(verdicts.len());
        let now_us = (now_ns / 1000) & TS_MASK;
        self.burst(
            &frames[..n],
            &layers[..n],
            |_| now_us,
            &mut verdicts[..n],
            |_| true,
        );
    }

    /// [`Dedup::check_burst`] for the packets with `want[i]` set (those a
    /// destination with dedup wants); the others get `Unique` and are
    /// neither counted nor recorded. Over the shortest of the four slices.
    pub fn check_burst_where<F: Frame>(
        &mut self,
        frames: &[F],
        layers: &[Layers],
        want: &[bool],
        now_ns: u64,
        verdicts: &mut [Verdict],
    ) {
        let n = frames
            .len()
            .min(layers.len())
            .min(verdicts.len())
            .min(want.len());
        let want = &want[..n];
        let now_us = (now_ns / 1000) & TS_MASK;
        self.burst(
            &frames[..n],
            &layers[..n],
            |_| now_us,
            &mut verdicts[..n],
            |i| want.get(i).copied().unwrap_or(false),
        );
    }

    /// [`Dedup::check_burst_where`] with a time per packet: `times_ns[i]`
    /// for `frames[i]` (a replayed capture's own timestamps, so the window
    /// runs on capture time). Over the shortest of the five slices.
    pub fn check_burst_where_at<F: Frame>(
        &mut self,
        frames: &[F],
        layers: &[Layers],
        want: &[bool],
        times_ns: &[u64],
        verdicts: &mut [Verdict],
    ) {
        let n = frames
            .len()
            .min(layers.len())
            .min(verdicts.len())
            .min(want.len())
            .min(times_ns.len());
        let (want, times_ns) = (&want[..n], &times_ns[..n]);
        self.burst(
            &frames[..n],
            &layers[..n],
            |i| (times_ns.get(i).copied().unwrap_or(0) / 1000) & TS_MASK,
            &mut verdicts[..n],
            |i| want.get(i).copied().unwrap_or(false),
        );
    }

    /// Fingerprints `frames[i]` / `layers[i]` into `fps[i]` and starts
    /// loading their buckets, over the shortest of the three slices;
    /// returns that number. For a caller with other work to do before the
    /// lookups (the worker classifies the burst in between): the buckets'
    /// DRAM misses then overlap that work instead of the probes waiting for
    /// them. [`Dedup::check_prefetched_where`] finishes the job; the
    /// verdicts are those [`Dedup::check_burst_where`] gives.
    pub fn prefetch_burst<F: Frame>(
        &self,
        frames: &[F],
        layers: &[Layers],
        fps: &mut [Fingerprint],
    ) -> usize {
        let mut n = 0;
        for ((fp, f), l) in fps.iter_mut().zip(frames).zip(layers) {
            *fp = self.fingerprint_frame(f, l);
            self.prefetch(*fp);
            n += 1;
        }
        n
    }

    /// [`Dedup::check_burst_where`] of the fingerprints
    /// [`Dedup::prefetch_burst`] made: `verdicts[i]` for `fps[i]`, the
    /// packets with `want[i]` set looked up and recorded, the others
    /// `Unique`. Over the shortest of the three slices.
    pub fn check_prefetched_where(
        &mut self,
        fps: &[Fingerprint],
        want: &[bool],
        now_ns: u64,
        verdicts: &mut [Verdict],
    ) {
        let now_us = (now_ns / 1000) & TS_MASK;
        self.probe_where(fps, want, |_| now_us, verdicts);
    }

    /// [`Dedup::check_prefetched_where`] with a time per packet, as
    /// [`Dedup::check_burst_where_at`]. Over the shortest of the four slices.
    pub fn check_prefetched_where_at(
        &mut self,
        fps: &[Fingerprint],
        want: &[bool],
        times_ns: &[u64],
        verdicts: &mut [Verdict],
    ) {
        let n = times_ns.len();
        let fps = &fps[..fps.len().min(n)];
        self.probe_where(
            fps,
            want,
            |i| (times_ns.get(i).copied().unwrap_or(0) / 1000) & TS_MASK,
            verdicts,
        );
    }

    /// The probes of a prefetched burst, in order, so copies within it are
    /// found too.
    #[inline(always)]
    fn probe_where(
        &mut self,
        fps: &[Fingerprint],
        want: &[bool],
        now_us: impl Fn(usize) -> u64,
        verdicts: &mut [Verdict],
    ) {
        let mut tally = DedupCounters::default();
        for (i, ((fp, &w), v)) in fps.iter().zip(want).zip(verdicts).enumerate() {
            *v = if w {
                self.probe(*fp, now_us(i), &mut tally)
            } else {
                Verdict::Unique
            };
        }
        self.stats.add(&tally);
    }

    /// Starts loading the bucket of `fp`, as each packet is fingerprinted,
    /// so that a burst's cache misses overlap: a prefetch under DPDK (it
    /// retires without waiting for the line, so the hashing goes on);
    /// without it (no `unsafe` outside the DPDK layer), a load.
    #[inline(always)]
    fn prefetch(&self, fp: Fingerprint) {
        if let Some(b) = self.table.buckets().get(self.bucket_index(fp)) {
            #[cfg(feature = "dpdk")]
            crate::dpdk::prefetch(b);
            #[cfg(not(feature = "dpdk"))]
            core::hint::black_box(b.tag[0]);
        }
    }

    /// The burst passes over equally long slices, for the packets `want`
    /// picks, each at time `now_us(i)` (µs, masked): per [`BURST`]
    /// packets, the worker's two calls back to back.
    #[inline(always)]
    fn burst<F: Frame>(
        &mut self,
        frames: &[F],
        layers: &[Layers],
        now_us: impl Fn(usize) -> u64,
        verdicts: &mut [Verdict],
        want: impl Fn(usize) -> bool,
    ) {
        let mut fps = [Fingerprint::default(); BURST];
        let mut wanted = [false; BURST];
        for (c, ((frames, layers), verdicts)) in frames
            .chunks(BURST)
            .zip(layers.chunks(BURST))
            .zip(verdicts.chunks_mut(BURST))
            .enumerate()
        {
            let start = c * BURST;
            let n = self.prefetch_burst(frames, layers, &mut fps);
            for (i, w) in wanted[..n].iter_mut().enumerate() {
                *w = want(start + i);
            }
            self.probe_where(&fps[..n], &wanted[..n], |i| now_us(start + i), verdicts);
        }
    }
}
