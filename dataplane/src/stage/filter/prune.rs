//! Tuple pruning: per-field maps from a packet's value to the set of tables
//! that could hold a match (after Srinivasan et al., "Packet
//! classification using tuple space search", 1999, generalised to bitmaps).
//!
//! Without it a lookup that finds nothing early probes every table. Here
//! each pruning field (src, dst, src port, dst port, protocol, VLAN) has a
//! sorted list of elementary intervals of that field's value space, each
//! with a bitmap of the tables that have at least one entry accepting some
//! value in the interval (entries that leave the field open are in every
//! interval). An entry that matches the packet accepts its value in every
//! field, so its table is in the AND of the bitmaps: only those tables are
//! probed. Cost: a binary search per field, instead of a hash probe per
//! table.

use super::compile::Entry;
use super::key::*;

/// A value domain of a pruning field: unsigned, with a successor.
pub(crate) trait Point: Copy + Ord + Default {
    const MAX: Self;
    fn succ(self) -> Self;
}

impl Point for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

impl Point for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

/// Elementary intervals of one field, each with its table set.
#[derive(Clone, Debug, Default)]
struct IntervalMap<T> {
    /// Start of each interval; `starts[0]` is 0, so every value has one.
    starts: Vec<T>,
    /// Each interval's table set, `words` u64s per interval.
    sets: Vec<u64>,
}

impl<T: Point> IntervalMap<T> {
    /// From inclusive ranges, each admitting one table, plus the tables
    /// that admit every value (`wild`).
    fn build(ranges: &[(T, T, usize)], wild: &[u64], words: usize) -> Self {
        // Sweep over range starts and ends, counting per table how many
        // of its ranges cover the current point.
        let mut events: Vec<(T, bool, usize)> = Vec::with_capacity(ranges.len() * 2);
        for &(lo, hi, t) in ranges {
            events.push((lo, true, t));
            if hi < T::MAX {
                events.push((hi.succ(), false, t));
            }
        }
        events.sort_unstable();
        let mut counts: Vec<u32> = vec![0; words * 64];
        let mut cur: Vec<u64> = wild.to_vec();
        let mut map = IntervalMap {
            starts: Vec::new(),
            sets: Vec::new(),
        };
        let push = |map: &mut IntervalMap<T>, at: T, set: &[u64]| {
            // Adjacent intervals with the same set are one interval.
            let last = map.sets.len().saturating_sub(words);
            if map.starts.is_empty() || map.sets.get(last..) != Some(set) {
                map.starts.push(at);
                map.sets.extend_from_slice(set);
            }
        };
        if events.first().is_none_or(|e| e.0 != T::default()) {
            push(&mut map, T::default(), &cur);
        }
        let mut i = 0;
        while let Some(&(at, _, _)) = events.get(i) {
            while let Some(&(p, start, t)) = events.get(i) {
                if p != at {
                    break;
                }
                if let (Some(c), Some(w)) = (counts.get_mut(t), cur.get_mut(t / 64)) {
                    if start {
                        *c += 1;
                    } else {
                        *c -= 1;
                    }
                    let bit = 1u64 << (t % 64);
                    let wild_bit = wild.get(t / 64).is_some_and(|w| w & bit != 0);
                    if *c > 0 || wild_bit {
                        *w |= bit;
                    } else {
                        *w &= !bit;
                    }
                }
                i += 1;
            }
            push(&mut map, at, &cur);
        }
        map
    }

    /// Index of the interval holding `v`.
    #[inline]
    fn index(&self, v: T) -> usize {
        self.starts.partition_point(|&s| s <= v).saturating_sub(1)
    }

    #[inline]
    fn set(&self, interval: usize, words: usize) -> &[u64] {
        self.sets
            .get(interval * words..(interval + 1) * words)
            .unwrap_or(&[])
    }
}

/// An [`IntervalMap`] over a `width`-bit field with a radix index on its
/// top bits: `radix[b]` is the interval holding the first value of bucket
/// `b`, so a lookup binary-searches only the few intervals that start
/// inside its bucket (usually none) instead of all of them. A plain binary
/// search is a chain of dependent loads, which is what a miss pays for.
#[derive(Clone, Debug, Default)]
struct RadixMap {
    map: IntervalMap<u32>,
    /// Empty when the map has one interval (the field rules nothing out).
    radix: Vec<u32>,
    shift: u32,
}

/// Radix index bits: 4,096 buckets (16 KiB) at most.
const RADIX_BITS: u32 = 12;

impl RadixMap {
    fn build(ranges: &[(u32, u32, usize)], wild: &[u64], words: usize, width: u32) -> Self {
        let map = IntervalMap::build(ranges, wild, words);
        if map.starts.len() <= 1 {
            return RadixMap {
                map,
                radix: Vec::new(),
                shift: 0,
            };
        }
        let bits = width.min(RADIX_BITS);
        let shift = width - bits;
        let radix = (0..=(1u64 << bits))
            .map(|b| {
                let first = (b << shift).min(u64::from(u32::MAX)) as u32;
                map.index(first) as u32
            })
            .collect();
        RadixMap { map, radix, shift }
    }

    #[inline]
    fn index(&self, v: u32) -> usize {
        let b = (v >> self.shift) as usize;
        let (Some(&lo), Some(&hi)) = (self.radix.get(b), self.radix.get(b + 1)) else {
            return 0;
        };
        let lo = lo as usize;
        if hi as usize == lo {
            return lo;
        }
        // Intervals lo+1..=hi start inside the bucket; count those <= v.
        let inside = self.map.starts.get(lo + 1..=hi as usize).unwrap_or(&[]);
        lo + inside.partition_point(|&s| s <= v)
    }

    #[inline]
    fn get(&self, v: u32, words: usize) -> &[u64] {
        self.map.set(self.index(v), words)
    }

    /// [`get`](Self::get) for one-word sets.
    #[inline]
    fn get1(&self, v: u32) -> u64 {
        self.map.sets.get(self.index(v)).copied().unwrap_or(0)
    }
}

/// One address field: IPv4 and IPv6 maps, and the tables that take any
/// address (used as is for packets of another or no IP version).
#[derive(Clone, Debug, Default)]
struct AddrField {
    v4: RadixMap,
    v6: IntervalMap<u128>,
    wild: Vec<u64>,
}

impl AddrField {
    #[inline]
    fn get(&self, ver: u8, addr: u128, words: usize) -> &[u64] {
        match ver {
            4 => self.v4.get(addr as u32, words),
            6 => self.v6.set(self.v6.index(addr), words),
            _ => &self.wild,
        }
    }

    #[inline]
    fn get1(&self, ver: u8, addr: u128) -> u64 {
        match ver {
            4 => self.v4.get1(addr as u32),
            6 => self.v6.sets.get(self.v6.index(addr)).copied().unwrap_or(0),
            _ => self.wild.first().copied().unwrap_or(0),
        }
    }
}

/// Per-field table sets for a classifier's tables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pruner {
    /// u64 words per table set.
    words: usize,
    src: AddrField,
    dst: AddrField,
    sport: RadixMap,
    dport: RadixMap,
    proto: RadixMap,
    vlan: RadixMap,
}

fn set_bit(set: &mut [u64], t: usize) {
    if let Some(w) = set.get_mut(t / 64) {
        *w |= 1 << (t % 64);
    }
}

impl Pruner {
    /// `tables[t]` lists the entries of table `t`.
    pub fn build(tables: &[Vec<&Entry>]) -> Pruner {
        let words = tables.len().div_ceil(64).max(1);
        let mut p = Pruner {
            words,
            ..Pruner::default()
        };
        let empty = || vec![0u64; words];

        // Address fields.
        for dst in [false, true] {
            let mut wild = empty();
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (t, es) in tables.iter().enumerate() {
                for e in es {
                    let (m, v) = if dst {
                        (e.mask.dst, e.value.dst)
                    } else {
                        (e.mask.src, e.value.src)
                    };
                    if m == 0 {
                        set_bit(&mut wild, t);
                    } else if e.value.ip_version() == 6 {
                        v6.push((v, v | !m, t));
                    } else {
                        let (m, v) = (m as u32, v as u32);
                        v4.push((v, v | !m, t));
                    }
                }
            }
            dedup(&mut v4);
            dedup(&mut v6);
            let field = AddrField {
                v4: RadixMap::build(&v4, &wild, words, 32),
                v6: IntervalMap::build(&v6, &wild, words),
                wild,
            };
            if dst {
                p.dst = field;
            } else {
                p.src = field;
            }
        }

        // Ports: the entry's range (u16 span == MAX means any port).
        for dport in [false, true] {
            let mut wild = empty();
            let mut ranges = Vec::new();
            for (t, es) in tables.iter().enumerate() {
                for e in es {
                    let (lo, span) = if dport { e.dport } else { e.sport };
                    if span == u16::MAX {
                        set_bit(&mut wild, t);
                    } else {
                        ranges.push((u32::from(lo), u32::from(lo) + u32::from(span), t));
                    }
                }
            }
            dedup(&mut ranges);
            let map = RadixMap::build(&ranges, &wild, words, 16);
            if dport {
                p.dport = map;
            } else {
                p.sport = map;
            }
        }

        // Exact-or-any fields: protocol, and the VLAN field (13 bits:
        // tagged bit + id; `Untagged` entries fix the tagged bit only).
        let exact = |get: &dyn Fn(&Entry) -> Option<(u32, u32)>, width: u32| {
            let mut wild = empty();
            let mut ranges = Vec::new();
            for (t, es) in tables.iter().enumerate() {
                for e in es {
                    match get(e) {
                        Some((lo, hi)) => ranges.push((lo, hi, t)),
                        None => set_bit(&mut wild, t),
                    }
                }
            }
            dedup(&mut ranges);
            RadixMap::build(&ranges, &wild, words, width)
        };
        p.proto = exact(
            &|e| {
                (e.mask.a & PROTO_MASK == PROTO_MASK).then(|| {
                    let v = ((e.value.a & PROTO_MASK) >> PROTO_SHIFT) as u32;
                    (v, v)
                })
            },
            8,
        );
        p.vlan = exact(
            &|e| {
                let m = e.mask.b & VLAN_MASK;
                let v = ((e.value.b & VLAN_MASK) >> VLAN_SHIFT) as u32;
                if m == VLAN_MASK {
                    Some((v, v))
                } else if m == VLAN_TAGGED {
                    // Untagged: tagged bit 0, so any id bits below it... which
                    // are 0 for an untagged packet.
                    Some((0, 0))
                } else {
                    None
                }
            },
            13,
        );
        p
    }

    /// For each pruning field, the set of tables that accept `k`'s value
    /// (`words()` u64s each); a table may match only if it is in all six.
    #[inline]
    pub fn sets(&self, k: &Key) -> [&[u64]; 6] {
        let ver = k.ip_version();
        let w = self.words;
        [
            self.dst.get(ver, k.dst, w),
            self.src.get(ver, k.src, w),
            self.dport.get(u32::from(k.dport()), w),
            self.proto
                .get(((k.a & PROTO_MASK) >> PROTO_SHIFT) as u32, w),
            self.sport.get(u32::from(k.sport()), w),
            self.vlan.get(((k.b & VLAN_MASK) >> VLAN_SHIFT) as u32, w),
        ]
    }

    /// Candidate tables when they fit one word (up to 64 tables, the
    /// usual case): fields most likely to rule tables out first, and no
    /// further lookups once none is left.
    #[inline]
    pub fn candidates_one_word(&self, k: &Key) -> u64 {
        let ver = k.ip_version();
        let mut c = self.dst.get1(ver, k.dst) & self.src.get1(ver, k.src);
        if c == 0 {
            return 0;
        }
        c &= self.dport.get1(u32::from(k.dport()));
        c &= self.proto.get1(((k.a & PROTO_MASK) >> PROTO_SHIFT) as u32);
        if c == 0 {
            return 0;
        }
        c &= self.sport.get1(u32::from(k.sport()));
        c & self.vlan.get1(((k.b & VLAN_MASK) >> VLAN_SHIFT) as u32)
    }

    pub fn words(&self) -> usize {
        self.words
    }
}

fn dedup<T: Ord>(v: &mut Vec<T>) {
    v.sort_unstable();
    v.dedup();
}
