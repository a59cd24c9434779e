//! A miss path on per-field bit vectors (Lakshman & Stiliadis, SIGCOMM
//! 1998): each field's rule values cut its range into elementary
//! intervals; an interval's class owns a vector with bit `i` set when rule
//! `i` accepts every value of the interval in that field (rules that do
//! not read the field accept all). A key's first matching rule is the
//! first set bit of the AND of its classes' vectors: the fields are ANDed
//! a cache line (512 rules) at a time, in rule order, and the scan stops
//! at the first nonzero line. Fields no rule reads are left out.
//!
//! Built from the rules themselves, not from the compiled entries: a rule
//! listing several CIDRs or port ranges sets its bit in each one's
//! classes, so nothing is expanded and no set is too large to check.
//!
//! A key maps to a class with one read per field: the L4 ports, input
//! port and EtherType through 65,536-entry tables, the small fields
//! through tables of their own, IPv4 addresses through a 2^16-entry table
//! of the top 16 bits and 256-entry chunks below where longer prefixes cut
//! (DIR-16-8-8), IPv6 addresses by binary search over their boundaries.

use std::collections::HashMap;

use super::key::*;
use super::rule::{Cidr, Match, Rule, VlanMatch};
use super::tuple::NO_MATCH;
use crate::stage::{Direction, BURST};

/// Words of a vector ANDed at a time: one cache line, 512 rules.
const WORDS: usize = 8;
const BLOCK_RULES: usize = WORDS * 64;

/// Marks a DIR table entry that names a chunk (its index, below) instead
/// of a class. Entries are 16 bits: the chunks are most of what a lookup
/// reads that is not already cached, and half the size is half the lines.
const CHUNK: u32 = 1 << 15;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(align(64))]
struct Block([u64; WORDS]);

/// Why the bit vectors cannot be built.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BitVecBuildError {
    #[error("{field}: {classes} distinct rule sets, more than its table can name")]
    TooManyClasses { field: &'static str, classes: usize },
    /// Addresses that split more /16s and /24s than 16-bit entries can name.
    #[error("{field}: its IPv4 prefixes split {chunks} /16 and /24 blocks, more than its table can name")]
    TooManyChunks { field: &'static str, chunks: usize },
}

/// A rule's accepted values of one field as inclusive intervals, or `None`
/// when it does not read the field.
type Accepts = Option<Vec<(u128, u128)>>;

/// A rule's accepted (IPv4, IPv6) addresses as inclusive intervals, or
/// `None` when it does not read the field.
type AddrAccepts = Option<(Vec<(u128, u128)>, Vec<(u128, u128)>)>;

/// Class vectors under construction: equal vectors share one class.
struct Classes {
    blocks: usize,
    seen: HashMap<Vec<Block>, u32>,
    vecs: Vec<Block>,
}

impl Classes {
    fn new(blocks: usize) -> Self {
        Classes {
            blocks,
            seen: HashMap::new(),
            vecs: Vec::new(),
        }
    }

    fn id(&mut self, v: &[Block]) -> u32 {
        if let Some(&c) = self.seen.get(v) {
            return c;
        }
        let c = (self.vecs.len() / self.blocks.max(1)) as u32;
        self.vecs.extend_from_slice(v);
        self.seen.insert(v.to_vec(), c);
        c
    }

    fn count(&self) -> usize {
        self.seen.len()
    }

    /// The vectors block-major (block `b` of class `c` at `b * count + c`):
    /// nearly every key finds its rule in the first block, so the first
    /// blocks of all classes sit together in as few lines as they can.
    fn columns(self) -> Column {
        let n = self.count();
        let mut blocks = vec![Block::default(); n * self.blocks];
        for (c, v) in self.vecs.chunks(self.blocks.max(1)).enumerate() {
            for (b, blk) in v.iter().enumerate() {
                if let Some(slot) = blocks.get_mut(b * n + c) {
                    *slot = *blk;
                }
            }
        }
        Column { blocks, classes: n }
    }
}

/// One field's class vectors, block-major.
#[derive(Clone, Debug, Default)]
struct Column {
    blocks: Vec<Block>,
    classes: usize,
}

impl Column {
    /// Block `b` of class `c`'s vector.
    #[inline(always)]
    fn at(&self, b: usize, c: u32) -> Option<&Block> {
        self.blocks.get(b * self.classes + c as usize)
    }
}

fn set_bit(v: &mut [Block], i: usize, on: bool) {
    if let Some(b) = v.get_mut(i / BLOCK_RULES) {
        let w = &mut b.0[(i / 64) % WORDS];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

/// Cuts the field's values `0..=max` into elementary intervals at every
/// rule boundary: `starts[j]` begins interval `j` (`starts[0] == 0`),
/// whose class is `class[j]`. Rules that do not read the field are set in
/// every class.
fn sweep(rules: &[Accepts], max: u128, classes: &mut Classes) -> (Vec<u128>, Vec<u32>) {
    let mut cur = vec![Block::default(); classes.blocks];
    // (position, is a start, rule): at one position the ends and starts
    // are all applied before the interval there takes its class.
    let mut events: Vec<(u128, bool, usize)> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        match r {
            None => set_bit(&mut cur, i, true),
            Some(list) => {
                for &(lo, hi) in list {
                    events.push((lo, true, i));
                    if hi < max {
                        events.push((hi + 1, false, i));
                    }
                }
            }
        }
    }
    events.sort_unstable();
    // A rule's own intervals may overlap: a count per rule.
    let mut depth = vec![0u32; rules.len()];
    let (mut starts, mut class) = (Vec::new(), Vec::new());
    let mut pos = 0u128;
    let mut e = 0;
    loop {
        while let Some(&(p, start, i)) = events.get(e) {
            if p != pos {
                break;
            }
            if let Some(d) = depth.get_mut(i) {
                if start {
                    *d += 1;
                    set_bit(&mut cur, i, true);
                } else {
                    *d -= 1;
                    if *d == 0 {
                        set_bit(&mut cur, i, false);
                    }
                }
            }
            e += 1;
        }
        starts.push(pos);
        class.push(classes.id(&cur));
        match events.get(e) {
            Some(&(p, _, _)) => pos = p,
            None => break,
        }
    }
    (starts, class)
}

/// The interval holding `x`.
fn interval_of(starts: &[u128], x: u128) -> usize {
    starts.partition_point(|&s| s <= x).saturating_sub(1)
}

/// A field read through a table of `N` class ids (`N` a power of two).
#[derive(Clone, Debug)]
struct TableField<const N: usize> {
    table: Box<[u16; N]>,
    col: Column,
}

impl<const N: usize> TableField<N> {
    fn build(
        field: &'static str,
        rules: &[Accepts],
        blocks: usize,
    ) -> Result<Option<Self>, BitVecBuildError> {
        if rules.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut classes = Classes::new(blocks);
        let (starts, class) = sweep(rules, N as u128 - 1, &mut classes);
        if classes.count() > usize::from(u16::MAX) + 1 {
            return Err(BitVecBuildError::TooManyClasses {
                field,
                classes: classes.count(),
            });
        }
        let mut table = Box::new([0u16; N]);
        for (j, (&s, &c)) in starts.iter().zip(&class).enumerate() {
            let end = starts.get(j + 1).map_or(N, |&e| e as usize);
            if let Some(t) = table.get_mut(s as usize..end) {
                t.fill(c as u16);
            }
        }
        Ok(Some(TableField {
            table,
            col: classes.columns(),
        }))
    }

    #[inline(always)]
    fn class(&self, value: usize) -> u32 {
        u32::from(self.table[value & (N - 1)])
    }
}

/// An address field: IPv4 through a DIR-16-8-8 table, IPv6 by binary
/// search, other keys (no IP) in the class of the rules that do not read it.
#[derive(Clone, Debug)]
struct AddrField {
    top: Box<[u16; 1 << 16]>,
    chunks: Vec<u16>,
    v6_starts: Vec<u128>,
    v6_class: Vec<u32>,
    none: u32,
    col: Column,
}

impl AddrField {
    /// `rules[i]`: rule `i`'s (IPv4, IPv6) intervals, `None` if it reads
    /// no address here.
    fn build(
        field: &'static str,
        rules: &[AddrAccepts],
        blocks: usize,
    ) -> Result<Option<Self>, BitVecBuildError> {
        if rules.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut classes = Classes::new(blocks);
        let v4: Vec<Accepts> = rules
            .iter()
            .map(|r| r.as_ref().map(|(a, _)| a.clone()))
            .collect();
        let v6: Vec<Accepts> = rules
            .iter()
            .map(|r| r.as_ref().map(|(_, b)| b.clone()))
            .collect();
        let (s4, c4) = sweep(&v4, u128::from(u32::MAX), &mut classes);
        let (v6_starts, v6_class) = sweep(&v6, u128::MAX, &mut classes);
        let none_rules: Vec<Accepts> = rules.iter().map(|r| r.as_ref().map(|_| vec![])).collect();
        let (_, none) = sweep(&none_rules, 0, &mut classes);
        let none = none.first().copied().unwrap_or(0);
        if classes.count() >= CHUNK as usize {
            return Err(BitVecBuildError::TooManyClasses {
                field,
                classes: classes.count(),
            });
        }
        // The class of [x, x + len) if one interval holds it all.
        let uniform = |x: u32, len: u32| {
            let j = interval_of(&s4, u128::from(x));
            let last = u128::from(x) + u128::from(len) - 1;
            s4.get(j + 1)
                .is_none_or(|&next| next > last)
                .then(|| c4.get(j).copied().unwrap_or(none))
        };
        let class_at = |x: u32| {
            c4.get(interval_of(&s4, u128::from(x)))
                .copied()
                .unwrap_or(none)
        };
        let mut top = Box::new([0u16; 1 << 16]);
        let mut chunks: Vec<u16> = Vec::new();
        for (t, slot) in top.iter_mut().enumerate() {
            let x = (t as u32) << 16;
            *slot = match uniform(x, 1 << 16) {
                Some(c) => c as u16,
                None => {
                    let at = chunks.len();
                    chunks.resize(at + 256, 0);
                    for s in 0..256u32 {
                        let y = x | s << 8;
                        let e = match uniform(y, 256) {
                            Some(c) => c,
                            None => {
                                let at3 = chunks.len() / 256;
                                chunks.extend((0..256u32).map(|u| class_at(y | u) as u16));
                                at3 as u32 | CHUNK
                            }
                        };
                        if let Some(c) = chunks.get_mut(at + s as usize) {
                            *c = e as u16;
                        }
                    }
                    ((at / 256) as u32 | CHUNK) as u16
                }
            };
            if chunks.len() / 256 >= CHUNK as usize {
                return Err(BitVecBuildError::TooManyChunks {
                    field,
                    chunks: chunks.len() / 256,
                });
            }
        }
        Ok(Some(AddrField {
            top,
            chunks,
            v6_starts,
            v6_class,
            none,
            col: classes.columns(),
        }))
    }

    #[inline(always)]
    /// The class of `addr`, or for IPv4 its top-level entry, which may
    /// name a chunk: [`Self::descend`] twice then gives the class.
    fn entry(&self, ver: u8, addr: u128) -> u32 {
        match ver {
            4 => u32::from(self.top[(addr as u32 >> 16) as usize]),
            6 => self
                .v6_class
                .get(interval_of(&self.v6_starts, addr))
                .copied()
                .unwrap_or(self.none),
            _ => self.none,
        }
    }

    /// The entry `byte` of the chunk `e` names, or `e` itself when it is a
    /// class.
    #[inline(always)]
    fn descend(&self, e: u32, byte: u32) -> u32 {
        if e & CHUNK == 0 {
            return e;
        }
        let at = (e & !CHUNK) as usize * 256 + (byte & 0xff) as usize;
        self.chunks.get(at).map_or(self.none, |&c| u32::from(c))
    }

    /// Starts loading what [`Self::descend`] will read.
    #[inline(always)]
    fn prefetch(&self, e: u32, byte: u32) {
        if e & CHUNK != 0 {
            let at = (e & !CHUNK) as usize * 256 + (byte & 0xff) as usize;
            if let Some(_x) = self.chunks.get(at) {
                #[cfg(feature = "dpdk")]
                crate::dpdk::prefetch(_x);
            }
        }
    }
}

/// The fields, at most.
const FIELDS: usize = 10;

/// The classifier's rules as per-field bit vectors.
#[derive(Clone, Debug)]
pub struct BitVecMissPath {
    /// Blocks of each vector: the rule count in cache lines.
    blocks: usize,
    /// The verdict when no field is read: every rule matches everything.
    all: u32,
    src: Option<AddrField>,
    dst: Option<AddrField>,
    /// L4 bit and protocol: `L4 << 8 | proto`.
    proto: Option<TableField<512>>,
    sport: Option<TableField<65536>>,
    dport: Option<TableField<65536>>,
    flags: Option<TableField<256>>,
    /// IP version and direction: `version << 1 | egress`.
    verdir: Option<TableField<32>>,
    /// Tagged bit and VLAN id: `tagged << 12 | id`.
    vlan: Option<TableField<8192>>,
    in_port: Option<TableField<65536>>,
    ethertype: Option<TableField<65536>>,
}

/// Each value of `0..n` the predicate accepts, as merged intervals.
fn enumerate(n: u32, accept: impl Fn(u32) -> bool) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::new();
    for x in (0..n).filter(|&x| accept(x)) {
        let x = u128::from(x);
        match out.last_mut() {
            Some(last) if last.1 + 1 == x => last.1 = x,
            _ => out.push((x, x)),
        }
    }
    out
}

fn one(lo: u16, hi: u16) -> Vec<(u128, u128)> {
    vec![(u128::from(lo), u128::from(hi))]
}

/// The L4 bit and protocol a rule accepts: its protocol, TCP for a flags
/// match, and only packets with ports for a port or flags match.
fn proto_accepts(m: &Match) -> Accepts {
    let ported = m.src_port.is_some() || m.dst_port.is_some() || m.tcp_flags.is_some();
    if m.proto.is_none() && !ported {
        return None;
    }
    Some(enumerate(512, |x| {
        let (l4, p) = (x >> 8 == 1, (x & 0xff) as u8);
        m.proto.is_none_or(|q| q == p) && (m.tcp_flags.is_none() || p == TCP) && (l4 || !ported)
    }))
}

fn addr_accepts(list: Option<&Vec<Cidr>>) -> AddrAccepts {
    list.map(|l| {
        let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) = l.iter().partition(|c| c.version() == 4);
        (
            v4.iter().map(|c| c.bounds()).collect(),
            v6.iter().map(|c| c.bounds()).collect(),
        )
    })
}

impl BitVecMissPath {
    /// The bit vectors of `rules` (already validated, as by
    /// [`super::Classifier::build`]).
    pub fn build(rules: &[Rule]) -> Result<BitVecMissPath, BitVecBuildError> {
        let blocks = rules.len().div_ceil(BLOCK_RULES).max(1);
        let each = |f: &dyn Fn(&Match) -> Accepts| -> Vec<Accepts> {
            rules.iter().map(|r| f(&r.matches)).collect()
        };
        let addr = |dst: bool| {
            rules
                .iter()
                .map(|r| {
                    addr_accepts(if dst {
                        r.matches.dst.as_ref()
                    } else {
                        r.matches.src.as_ref()
                    })
                })
                .collect::<Vec<_>>()
        };
        Ok(BitVecMissPath {
            blocks,
            all: if rules.is_empty() { NO_MATCH } else { 0 },
            src: AddrField::build("src", &addr(false), blocks)?,
            dst: AddrField::build("dst", &addr(true), blocks)?,
            proto: TableField::build("proto", &each(&proto_accepts), blocks)?,
            sport: TableField::build(
                "src_port",
                &each(&|m| m.src_port.map(|r| one(r.lo, r.hi))),
                blocks,
            )?,
            dport: TableField::build(
                "dst_port",
                &each(&|m| m.dst_port.map(|r| one(r.lo, r.hi))),
                blocks,
            )?,
            flags: TableField::build(
                "tcp_flags",
                &each(&|m| {
                    m.tcp_flags
                        .map(|f| enumerate(256, |x| x as u8 & f.mask == f.value & f.mask))
                }),
                blocks,
            )?,
            verdir: TableField::build(
                "ip_version/direction",
                &each(&|m| {
                    (m.ip_version.is_some() || m.direction.is_some()).then(|| {
                        enumerate(32, |x| {
                            m.ip_version.is_none_or(|v| u32::from(v & 0xf) == x >> 1)
                                && m.direction
                                    .is_none_or(|d| (d == Direction::Egress) == (x & 1 == 1))
                        })
                    })
                }),
                blocks,
            )?,
            vlan: TableField::build(
                "vlan",
                &each(&|m| {
                    m.vlan.map(|v| match v {
                        VlanMatch::Untagged => one(0, 0xfff),
                        VlanMatch::Id(id) => one(0x1000 | (id & 0xfff), 0x1000 | (id & 0xfff)),
                    })
                }),
                blocks,
            )?,
            in_port: TableField::build(
                "in_ports",
                &each(&|m| {
                    m.in_ports.as_ref().map(|l| {
                        l.iter()
                            .map(|r| (u128::from(r.lo), u128::from(r.hi)))
                            .collect()
                    })
                }),
                blocks,
            )?,
            ethertype: TableField::build(
                "ethertype",
                &each(&|m| m.ethertype.map(|t| one(t, t))),
                blocks,
            )?,
        })
    }

    /// The columns of the fields read, in the order [`Self::classes`]
    /// gives their classes.
    #[inline(always)]
    fn columns(&self) -> ([&Column; FIELDS], usize) {
        const NONE: &Column = &Column {
            blocks: Vec::new(),
            classes: 0,
        };
        let mut cols = [NONE; FIELDS];
        let mut n = 0;
        for c in [
            self.dst.as_ref().map(|f| &f.col),
            self.src.as_ref().map(|f| &f.col),
            self.dport.as_ref().map(|f| &f.col),
            self.proto.as_ref().map(|f| &f.col),
            self.sport.as_ref().map(|f| &f.col),
            self.flags.as_ref().map(|f| &f.col),
            self.verdir.as_ref().map(|f| &f.col),
            self.vlan.as_ref().map(|f| &f.col),
            self.in_port.as_ref().map(|f| &f.col),
            self.ethertype.as_ref().map(|f| &f.col),
        ]
        .into_iter()
        .flatten()
        {
            cols[n] = c;
            n += 1;
        }
        (cols, n)
    }

    /// `k`'s class in each field read, in the order of [`Self::columns`].
    #[inline(always)]
    fn classes(&self, k: &Key, out: &mut [u32; FIELDS]) {
        let mut n = 0;
        let ver = k.ip_version();
        let mut add = |c: u32| {
            if let Some(o) = out.get_mut(n) {
                *o = c;
            }
            n += 1;
        };
        if let Some(f) = &self.dst {
            add(f.entry(ver, k.dst));
        }
        if let Some(f) = &self.src {
            add(f.entry(ver, k.src));
        }
        if let Some(f) = &self.dport {
            add(f.class(usize::from(k.dport())));
        }
        if let Some(f) = &self.proto {
            let l4 = (k.a >> L4_SHIFT) & 1;
            add(f.class((l4 << 8 | (k.a >> PROTO_SHIFT) & 0xff) as usize));
        }
        if let Some(f) = &self.sport {
            add(f.class(usize::from(k.sport())));
        }
        if let Some(f) = &self.flags {
            add(f.class(((k.a >> FLAGS_SHIFT) & 0xff) as usize));
        }
        if let Some(f) = &self.verdir {
            add(f.class(usize::from(ver) << 1 | ((k.a >> DIR_SHIFT) & 1) as usize));
        }
        if let Some(f) = &self.vlan {
            add(f.class(((k.b >> VLAN_SHIFT) & 0x1fff) as usize));
        }
        if let Some(f) = &self.in_port {
            add(f.class(usize::from(k.in_port())));
        }
        if let Some(f) = &self.ethertype {
            add(f.class(((k.b >> ETHERTYPE_SHIFT) & 0xffff) as usize));
        }
    }

    /// `out[i]` gets the first rule matching `keys[i]` (masked by the
    /// classifier's used fields, which keep every field a rule reads), or
    /// [`NO_MATCH`]. In passes over [`BURST`] keys: every key's classes
    /// (the IPv4 addresses' a level a pass), with what the next pass reads
    /// prefetched, then the scans, so the burst's cache misses overlap.
    pub(crate) fn lookup_burst(&self, keys: &[Key], out: &mut [u32]) {
        let (cols, n) = self.columns();
        let cols = &cols[..n];
        if n == 0 {
            out.fill(self.all);
            return;
        }
        // The address fields come first (see `columns`); their IPv4
        // entries are walked down a level a pass, each pass prefetching
        // what the next one reads, so the burst's misses overlap.
        let addrs = [self.dst.as_ref(), self.src.as_ref()];
        let addrs = addrs.iter().flatten().enumerate();
        let mut cls = [[0u32; FIELDS]; BURST];
        for (ks, os) in keys.chunks(BURST).zip(out.chunks_mut(BURST)) {
            let cls = &mut cls[..ks.len()];
            for (k, c) in ks.iter().zip(cls.iter_mut()) {
                self.classes(k, c);
                for (i, f) in addrs.clone() {
                    f.prefetch(c[i], address(k, i, self.dst.is_some()) >> 8);
                }
            }
            for (k, c) in ks.iter().zip(cls.iter_mut()) {
                for (i, f) in addrs.clone() {
                    let a = address(k, i, self.dst.is_some());
                    c[i] = f.descend(c[i], a >> 8);
                    f.prefetch(c[i], a);
                }
            }
            for (k, c) in ks.iter().zip(cls.iter_mut()) {
                for (i, f) in addrs.clone() {
                    c[i] = f.descend(c[i], address(k, i, self.dst.is_some()));
                }
                for (col, &ci) in cols.iter().zip(c.iter()) {
                    if let Some(_b) = col.blocks.get(ci as usize) {
                        #[cfg(feature = "dpdk")]
                        crate::dpdk::prefetch(_b);
                    }
                }
            }
            for (o, c) in os.iter_mut().zip(cls.iter()) {
                *o = first_match(cols, c, self.blocks);
            }
        }
    }

    /// The fields read and their class counts, for logs and benches.
    pub fn describe(&self) -> String {
        let names = [
            "dst",
            "src",
            "dst_port",
            "proto",
            "src_port",
            "tcp_flags",
            "version/dir",
            "vlan",
            "in_port",
            "ethertype",
        ];
        let present = [
            self.dst.is_some(),
            self.src.is_some(),
            self.dport.is_some(),
            self.proto.is_some(),
            self.sport.is_some(),
            self.flags.is_some(),
            self.verdir.is_some(),
            self.vlan.is_some(),
            self.in_port.is_some(),
            self.ethertype.is_some(),
        ];
        let (cols, _) = self.columns();
        let mut cols = cols.iter();
        let chunks = |f: &Option<AddrField>| f.as_ref().map_or(0, |f| f.chunks.len() / 256);
        let mut out = format!(
            "{} blocks; address chunks dst {} src {};",
            self.blocks,
            chunks(&self.dst),
            chunks(&self.src)
        );
        for (name, _) in names.iter().zip(present).filter(|(_, p)| *p) {
            if let Some(c) = cols.next() {
                out += &format!(" {name} {}", c.classes);
            }
        }
        out
    }

    /// Memory the tables and vectors take, in bytes.
    pub fn memory(&self) -> usize {
        let blk = std::mem::size_of::<Block>();
        let t = |f: Option<(usize, usize)>| f.map_or(0, |(table, vecs)| table + vecs * blk);
        let a = |f: &Option<AddrField>| {
            t(f.as_ref().map(|f| {
                (
                    2 * (f.top.len() + f.chunks.len())
                        + 4 * f.v6_class.len()
                        + 16 * f.v6_starts.len(),
                    f.col.blocks.len(),
                )
            }))
        };
        fn tf<const N: usize>(f: &Option<TableField<N>>) -> Option<(usize, usize)> {
            f.as_ref().map(|f| (2 * N, f.col.blocks.len()))
        }
        a(&self.src)
            + a(&self.dst)
            + t(tf(&self.proto))
            + t(tf(&self.sport))
            + t(tf(&self.dport))
            + t(tf(&self.flags))
            + t(tf(&self.verdir))
            + t(tf(&self.vlan))
            + t(tf(&self.in_port))
            + t(tf(&self.ethertype))
    }

    /// Classifies a burst without a flow cache, as `cls` would (built from
    /// the same rules): `out[i]` for `layers[i]` received on `in_ports[i]`
    /// in direction `dirs[i]`.
    pub fn classify_burst(
        &self,
        cls: &super::Classifier,
        layers: &[crate::stage::parse::Layers],
        in_ports: &[u16],
        dirs: &[Direction],
        out: &mut [super::Verdict],
    ) {
        let mut keys = [Key::default(); BURST];
        let mut rules = [NO_MATCH; BURST];
        let n = out
            .len()
            .min(layers.len())
            .min(in_ports.len())
            .min(dirs.len());
        for start in (0..n).step_by(BURST) {
            let end = (start + BURST).min(n);
            for (((k, l), &p), &d) in keys
                .iter_mut()
                .zip(&layers[start..end])
                .zip(&in_ports[start..end])
                .zip(&dirs[start..end])
            {
                *k = cls.key(l, p, d);
            }
            self.lookup_burst(&keys[..end - start], &mut rules[..end - start]);
            for (o, &r) in out[start..end].iter_mut().zip(&rules) {
                *o = super::Verdict(r);
            }
        }
    }
}

/// The low 32 bits of the `i`th address field's address in `k`: the
/// destination first when some rule reads it.
#[inline(always)]
fn address(k: &Key, i: usize, has_dst: bool) -> u32 {
    if i == 0 && has_dst {
        k.dst as u32
    } else {
        k.src as u32
    }
}

/// The first bit set in the AND of the classes' vectors, a block at a time.
#[inline(always)]
fn first_match(cols: &[&Column], cls: &[u32; FIELDS], blocks: usize) -> u32 {
    let Some((first, rest)) = cols.split_first() else {
        return NO_MATCH;
    };
    for b in 0..blocks {
        let Some(blk) = first.at(b, cls[0]) else {
            return NO_MATCH;
        };
        let mut acc = blk.0;
        for (col, &c) in rest.iter().zip(&cls[1..]) {
            if let Some(x) = col.at(b, c) {
                for (a, x) in acc.iter_mut().zip(&x.0) {
                    *a &= x;
                }
            }
        }
        for (i, &w) in acc.iter().enumerate() {
            if w != 0 {
                return (b * BLOCK_RULES + i * 64 + w.trailing_zeros() as usize) as u32;
            }
        }
    }
    NO_MATCH
}
