//! Tuple-space search with merged tuples (after TupleMerge, Daly & Torng,
//! 2017).
//!
//! Plain tuple-space search makes one hash table per distinct combination of
//! prefix lengths, which for a realistic rule set means hundreds of tables
//! and as many probes per miss. Here a table's mask may be *coarser* than
//! the entries it holds (a /22 entry may sit in a /16 table): the table
//! hashes on the coarse mask and every candidate in the bucket is verified
//! against its own value/mask and ranges. A bucket holds at most
//! [`COLLISION_LIMIT`] entries; when an entry finds no room in a compatible
//! table, a new table is made with its relaxed mask (or, if that one is full
//! too, its exact mask). Fewer tables, short buckets.
//!
//! Lookup asks the [`Pruner`] which tables could hold a match, visits those
//! in order of the best (lowest) rule index they hold and stops as soon as
//! no remaining table can beat the match found; within a bucket, entries
//! are in rule order, so the first hit is the bucket's best.

use hashbrown::HashTable;
use hashbrown::{HashMap, HashSet};

use super::compile::{Entry, Residual, NO_RESIDUAL};
use super::key::*;
use super::prune::Pruner;

/// Most entries hashed to one bucket before an entry spills into a new
/// table. Verifying an entry costs a few ns, a table probe ~10 ns: a few
/// candidates per bucket are cheaper than more tables.
const COLLISION_LIMIT: usize = 8;

/// Rule index meaning "nothing matched".
pub(crate) const NO_MATCH: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Bucket {
    key: Key,
    start: u32,
    len: u32,
}

#[derive(Clone, Debug)]
struct Table {
    mask: Key,
    /// Lowest rule index in the table: once the current best match is
    /// better, this table and every later one can be skipped.
    min_rule: u32,
    buckets: HashTable<Bucket>,
}

/// The compiled tables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tuples {
    tables: Vec<Table>,
    entries: Vec<Entry>,
    residuals: Vec<Residual>,
    pruner: Pruner,
}

/// Round a prefix length down to a step, so that rules with nearby lengths
/// share a table. Coarse steps mean fewer tables but fuller buckets.
fn relax_len(len: u32, v6: bool) -> u32 {
    if v6 {
        len - len % 16
    } else if len < 8 {
        0
    } else {
        len - len % 4
    }
}

fn prefix_mask(len: u32, v6: bool) -> u128 {
    let width = if v6 { 128 } else { 32 };
    let full: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    match len {
        0 => 0,
        l if l >= width => full,
        l => full & !(full >> l),
    }
}

/// Length of the prefix an address mask describes, in its family.
fn mask_len(m: u128, v6: bool) -> u32 {
    if v6 {
        m.leading_ones()
    } else {
        (m as u32).leading_ones()
    }
}

/// The part of an entry's mask a table may hash on, relaxed or exact.
///
/// Only fields that tell many rules apart are hashed: addresses, protocol,
/// exact ports, input port, VLAN, EtherType. The rest (IP version,
/// direction, TCP flags, the L4 bit, non-prefix ranges) is left to the
/// per-entry check.
fn table_mask(e: &Entry, relaxed: bool) -> Key {
    let v6 = e.value.ip_version() == 6;
    let addr = |m: u128| {
        let len = mask_len(m, v6);
        prefix_mask(if relaxed { relax_len(len, v6) } else { len }, v6)
    };
    // Exact 16-bit fields always; a prefix-shaped range only in the exact mask.
    let field16 = |word: u64, shift: u32| -> u64 {
        let m = (word >> shift) as u16;
        if m == u16::MAX || !relaxed {
            u64::from(m) << shift
        } else {
            0
        }
    };
    let m = &e.mask;
    let a = field16(m.a, SPORT_SHIFT) | field16(m.a, DPORT_SHIFT) | (m.a & PROTO_MASK);
    let vlan = if m.b & VLAN_MASK == VLAN_MASK {
        VLAN_MASK
    } else {
        0
    };
    let b = field16(m.b, INPORT_SHIFT) | vlan | (m.b & ETHERTYPE_MASK);
    Key {
        src: addr(m.src),
        dst: addr(m.dst),
        a,
        b,
    }
}

/// Which pruning fields an entry constrains. Tables only take entries of
/// one signature, so that a table open in a field (in every interval of
/// the pruner's map) holds only entries that really are open there;
/// otherwise one wildcard entry would keep its table in every candidate set.
fn signature(e: &Entry) -> u8 {
    u8::from(e.mask.src != 0)
        | u8::from(e.mask.dst != 0) << 1
        | u8::from(e.sport.1 != u16::MAX) << 2
        | u8::from(e.dport.1 != u16::MAX) << 3
        | u8::from(e.mask.a & PROTO_MASK != 0) << 4
        | u8::from(e.mask.b & VLAN_MASK != 0) << 5
}

impl Tuples {
    /// Build from entries sorted by rule index (the order `expand_rule`
    /// produces them in, rule by rule).
    pub fn build(entries: Vec<Entry>, residuals: Vec<Residual>) -> Tuples {
        // An entry equal to an earlier one in every checked field can
        // never win (the earlier rule matches whenever it does): drop it,
        // rather than let copies overflow buckets. Policies do repeat
        // rules, e.g. one destination list expanded per group member.
        let mut seen = HashSet::with_capacity(entries.len());
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| {
                e.residual != NO_RESIDUAL
                    || seen.insert((e.value, e.mask, e.sport, e.dport, e.in_port))
            })
            .collect();
        struct Building {
            mask: Key,
            signature: u8,
            min_rule: u32,
            buckets: HashMap<Key, Vec<usize>>,
        }
        let mut tables: Vec<Building> = Vec::new();
        let mut by_mask: HashMap<(Key, u8), usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            // First compatible table with room: tables were made in rule
            // order, so this keeps good rules in early tables.
            let sig = signature(e);
            let placed = tables.iter_mut().any(|t| {
                if t.signature != sig || !t.mask.is_subset_of(&e.mask) {
                    return false;
                }
                let bucket = t.buckets.entry(e.value.and(&t.mask)).or_default();
                if bucket.len() < COLLISION_LIMIT {
                    bucket.push(i);
                    true
                } else {
                    false
                }
            });
            if placed {
                continue;
            }
            let relaxed = table_mask(e, true);
            let mask = if by_mask.contains_key(&(relaxed, sig)) {
                // The relaxed table exists, so its bucket was full: go exact.
                table_mask(e, false)
            } else {
                relaxed
            };
            let t = *by_mask.entry((mask, sig)).or_insert_with(|| {
                tables.push(Building {
                    mask,
                    signature: sig,
                    min_rule: e.rule,
                    buckets: HashMap::new(),
                });
                tables.len() - 1
            });
            if let Some(t) = tables.get_mut(t) {
                // Over the limit only when even the exact table is full:
                // entries that differ in unhashed fields alone.
                t.buckets.entry(e.value.and(&t.mask)).or_default().push(i);
            }
        }

        // Lookup and pruning rely on tables being in min_rule order; they
        // were created in rule order, so this sort is a guarantee, not work.
        tables.sort_by_key(|t| t.min_rule);

        // Flatten: each bucket's entries contiguous, in rule order.
        let mut flat = Vec::with_capacity(entries.len());
        let mut out_tables = Vec::with_capacity(tables.len());
        let mut per_table: Vec<Vec<&Entry>> = Vec::with_capacity(tables.len());
        for t in tables {
            let mut buckets = HashTable::with_capacity(t.buckets.len());
            let mut mine = Vec::new();
            for (key, idx) in t.buckets {
                let start = flat.len() as u32;
                for e in idx.iter().filter_map(|&i| entries.get(i)) {
                    flat.push(e.clone());
                    mine.push(e);
                }
                let b = Bucket {
                    key,
                    start,
                    len: idx.len() as u32,
                };
                buckets.insert_unique(key.hash(), b, |b: &Bucket| b.key.hash());
            }
            per_table.push(mine);
            out_tables.push(Table {
                mask: t.mask,
                min_rule: t.min_rule,
                buckets,
            });
        }
        let pruner = Pruner::build(&per_table);
        Tuples {
            tables: out_tables,
            entries: flat,
            residuals,
            pruner,
        }
    }

    /// The compiled entries, in rule order.
    #[cfg(feature = "dpdk")]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether some entry needs a set check beyond value/mask and ranges.
    #[cfg(feature = "dpdk")]
    pub fn has_residuals(&self) -> bool {
        !self.residuals.is_empty()
    }

    /// Index of the first rule that matches `k`, or [`NO_MATCH`].
    #[inline]
    pub fn lookup(&self, k: &Key) -> u32 {
        if self.pruner.words() == 1 {
            return self.probe_all(self.pruner.candidates_one_word(k), 0, k, NO_MATCH);
        }
        let sets = self.pruner.sets(k);
        let mut best = NO_MATCH;
        for w in 0..self.pruner.words() {
            let bits = sets
                .iter()
                .fold(u64::MAX, |acc, s| acc & s.get(w).copied().unwrap_or(0));
            best = self.probe_all(bits, w, k, best);
        }
        best
    }

    /// Probe the candidate tables in `bits` (tables `64 * word + bit`), in
    /// order, until none can beat `best`.
    #[inline]
    fn probe_all(&self, mut bits: u64, word: usize, k: &Key, mut best: u32) -> u32 {
        while bits != 0 {
            let t = word * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(table) = self.tables.get(t) else {
                break;
            };
            // Tables are in min_rule order: none further on can win.
            if table.min_rule >= best {
                break;
            }
            best = self.probe(table, k, best);
        }
        best
    }

    /// The best of `best` and the first entry of `table` matching `k`.
    #[inline]
    fn probe(&self, table: &Table, k: &Key, best: u32) -> u32 {
        let mk = k.and(&table.mask);
        let Some(b) = table.buckets.find(mk.hash(), |b| b.key == mk) else {
            return best;
        };
        let start = b.start as usize;
        let cands = self
            .entries
            .get(start..start + b.len as usize)
            .unwrap_or(&[]);
        for e in cands {
            if e.rule >= best {
                break;
            }
            if e.matches(k, &self.residuals) {
                return e.rule;
            }
        }
        best
    }

    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}
