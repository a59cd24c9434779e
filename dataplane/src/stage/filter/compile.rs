//! Rules → entries: each rule becomes one or more value/mask entries with
//! range checks, the unit the tuple tables store.

use super::key::*;
use super::rule::{Cidr, Match, PortRange, Rule, VlanMatch};
use crate::stage::Direction;

/// Marks an entry that needs no residual check.
pub(crate) const NO_RESIDUAL: u32 = u32::MAX;

/// Above this many entries per rule (product of the expanded list sizes:
/// input-port ranges × src CIDRs × dst CIDRs), the biggest lists stay
/// unexpanded and are checked by binary search instead. Expansion makes
/// lookups hash-exact; the cap keeps a rule "group of 1,000 × group of
/// 1,000" from turning into a million entries.
const EXPAND_LIMIT: usize = 256;

/// One compiled alternative of a rule: `key & mask == value`, the three
/// ranges, and (rarely) a residual set check.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub value: Key,
    pub mask: Key,
    /// Inclusive ranges as `(lo, hi - lo)` so each check is one
    /// `wrapping_sub` and one compare.
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    pub in_port: (u16, u16),
    /// Position of the rule in the list: the priority, lower wins.
    pub rule: u32,
    /// Index into the residual table, or [`NO_RESIDUAL`].
    pub residual: u32,
}

impl Entry {
    #[inline]
    pub fn matches(&self, k: &Key, residuals: &[Residual]) -> bool {
        let in_range = |v: u16, (lo, span): (u16, u16)| v.wrapping_sub(lo) <= span;
        k.matches(&self.value, &self.mask)
            & in_range(k.sport(), self.sport)
            & in_range(k.dport(), self.dport)
            & in_range(k.in_port(), self.in_port)
            && (self.residual == NO_RESIDUAL
                || residuals
                    .get(self.residual as usize)
                    .is_some_and(|r| r.matches(k)))
    }
}

/// Sets left unexpanded (see [`EXPAND_LIMIT`]), checked after the masks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Residual {
    pub in_ports: Option<Vec<(u16, u16)>>,
    pub src: Option<AddrSet>,
    pub dst: Option<AddrSet>,
}

impl Residual {
    fn matches(&self, k: &Key) -> bool {
        let ver = k.ip_version();
        self.in_ports
            .as_ref()
            .is_none_or(|r| in_sorted_ranges(r, k.in_port()))
            && self.src.as_ref().is_none_or(|s| s.contains(ver, k.src))
            && self.dst.as_ref().is_none_or(|s| s.contains(ver, k.dst))
    }
}

/// A union of CIDRs as sorted, disjoint, inclusive address intervals.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddrSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl AddrSet {
    fn new(cidrs: &[Cidr]) -> Self {
        let mut set = AddrSet::default();
        for c in cidrs {
            let list = if c.version() == 4 {
                &mut set.v4
            } else {
                &mut set.v6
            };
            list.push(c.bounds());
        }
        merge_intervals(&mut set.v4);
        merge_intervals(&mut set.v6);
        set
    }

    fn contains(&self, ver: u8, addr: u128) -> bool {
        match ver {
            4 => in_sorted_ranges(&self.v4, addr),
            6 => in_sorted_ranges(&self.v6, addr),
            _ => false,
        }
    }
}

fn merge_intervals<T: Ord + Copy + num_like::Succ>(v: &mut Vec<(T, T)>) {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for &(lo, hi) in v.iter() {
        match out.last_mut() {
            // Overlapping or adjacent: one interval.
            Some(last) if last.1.succ_or_max() >= lo => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *v = out;
}

mod num_like {
    /// `x + 1`, saturating: what merging adjacent intervals needs.
    pub trait Succ {
        fn succ_or_max(self) -> Self;
    }
    impl Succ for u16 {
        fn succ_or_max(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ_or_max(self) -> Self {
            self.saturating_add(1)
        }
    }
}

fn in_sorted_ranges<T: Ord + Copy>(r: &[(T, T)], v: T) -> bool {
    let i = r.partition_point(|&(lo, _)| lo <= v);
    i > 0 && r.get(i - 1).is_some_and(|&(_, hi)| v <= hi)
}

/// The mask of the longest prefix that covers `lo..=hi` (16-bit field).
pub(crate) fn covering_mask16(lo: u16, hi: u16) -> u16 {
    let plen = (lo ^ hi).leading_zeros();
    if plen == 0 {
        0
    } else {
        u16::MAX << (16 - plen)
    }
}

/// Drop CIDRs contained in another one of the list, and duplicates: they
/// can never change whether the list matches, only cost entries.
fn normalize_cidrs(list: &[Cidr]) -> Vec<Cidr> {
    let mut v: Vec<(u8, u128, u8, Cidr)> = list
        .iter()
        .map(|c| (c.version(), c.bounds().0, c.len, *c))
        .collect();
    v.sort_unstable_by_key(|&(ver, lo, len, _)| (ver, lo, len));
    let mut out: Vec<Cidr> = Vec::with_capacity(v.len());
    // Prefixes are nested or disjoint, and sorting by (start, length) puts
    // a container before everything inside it, so comparing with the last
    // kept one is enough.
    for (ver, lo, _, c) in v {
        let covered = out.last().is_some_and(|k| {
            let (klo, khi) = k.bounds();
            k.version() == ver && klo <= lo && lo <= khi
        });
        if !covered {
            out.push(c);
        }
    }
    out
}

fn normalize_ranges(list: &[PortRange]) -> Vec<(u16, u16)> {
    let mut v: Vec<(u16, u16)> = list.iter().map(|r| (r.lo, r.hi)).collect();
    merge_intervals(&mut v);
    v
}

/// One choice for a list-valued field while expanding a rule.
#[derive(Clone, Copy)]
enum Pick<'a, T> {
    Any,
    One(&'a T),
    /// The whole list, checked as a residual.
    Residual,
}

fn picks<T>(list: Option<&[T]>, expand: bool) -> Vec<Pick<'_, T>> {
    match list {
        None => vec![Pick::Any],
        Some(l) if expand => l.iter().map(Pick::One).collect(),
        // An empty list matches nothing: no picks, no entries.
        Some([]) => Vec::new(),
        Some(_) => vec![Pick::Residual],
    }
}

/// Which of the three list fields to expand: the largest product that
/// stays within [`EXPAND_LIMIT`], more expanded lists on a tie.
fn choose_expansion(sizes: [Option<usize>; 3]) -> [bool; 3] {
    let mut best = ([false; 3], 0usize, 0u32);
    for bits in 0u32..8 {
        let mut product = 1usize;
        let mut ok = true;
        for (i, s) in sizes.iter().enumerate() {
            if bits & (1 << i) != 0 {
                match s {
                    Some(n) => product = product.saturating_mul((*n).max(1)),
                    None => ok = false,
                }
            }
        }
        if !ok || product > EXPAND_LIMIT {
            continue;
        }
        if (product, bits.count_ones()) > (best.1, best.2) {
            best = (
                [bits & 1 != 0, bits & 2 != 0, bits & 4 != 0],
                product,
                bits.count_ones(),
            );
        }
    }
    best.0
}

/// Value and mask for the scalar (single-valued) fields of a match.
fn scalar_part(m: &Match) -> (Key, Key, (u16, u16), (u16, u16)) {
    let mut value = Key::default();
    let mut mask = Key::default();
    match m.vlan {
        Some(VlanMatch::Untagged) => mask.b |= VLAN_TAGGED,
        Some(VlanMatch::Id(id)) => {
            mask.b |= VLAN_MASK;
            value.b |= (u64::from(id) & 0xfff) << VLAN_SHIFT | VLAN_TAGGED;
        }
        None => {}
    }
    if let Some(t) = m.ethertype {
        mask.b |= ETHERTYPE_MASK;
        value.b |= u64::from(t) << ETHERTYPE_SHIFT;
    }
    if let Some(v) = m.ip_version {
        mask.a |= IPVER_MASK;
        value.a |= u64::from(v & 0xf) << IPVER_SHIFT;
    }
    if let Some(p) = m.proto {
        mask.a |= PROTO_MASK;
        value.a |= u64::from(p) << PROTO_SHIFT;
    }
    if let Some(d) = m.direction {
        mask.a |= DIR_MASK;
        if d == Direction::Egress {
            value.a |= DIR_MASK;
        }
    }
    let mut port_range = |r: Option<PortRange>, shift: u32| -> (u16, u16) {
        let Some(r) = r else {
            return (0, u16::MAX);
        };
        mask.a |= L4_MASK;
        value.a |= L4_MASK;
        let m16 = u64::from(covering_mask16(r.lo, r.hi));
        mask.a |= m16 << shift;
        value.a |= (u64::from(r.lo) & m16) << shift;
        (r.lo, r.hi.wrapping_sub(r.lo))
    };
    let sport = port_range(m.src_port, SPORT_SHIFT);
    let dport = port_range(m.dst_port, DPORT_SHIFT);
    if let Some(f) = m.tcp_flags {
        mask.a |= u64::from(f.mask) << FLAGS_SHIFT | PROTO_MASK | L4_MASK;
        value.a |=
            u64::from(f.value & f.mask) << FLAGS_SHIFT | u64::from(TCP) << PROTO_SHIFT | L4_MASK;
    }
    (value, mask, sport, dport)
}

/// Constrain an address field to `c`; false when the entry's IP version
/// is already fixed to the other family (the combination can't match).
fn apply_cidr(value: &mut Key, mask: &mut Key, c: &Cidr, dst: bool) -> bool {
    let ver = u64::from(c.version()) << IPVER_SHIFT;
    if mask.a & IPVER_MASK != 0 && value.a & IPVER_MASK != ver {
        return false;
    }
    mask.a |= IPVER_MASK;
    value.a = (value.a & !IPVER_MASK) | ver;
    let m = c.mask();
    if dst {
        mask.dst = m;
        value.dst = c.bits() & m;
    } else {
        mask.src = m;
        value.src = c.bits() & m;
    }
    true
}

/// Entries of one validated rule at position `index`, appended to `out`;
/// residual sets go to `residuals`.
pub(crate) fn expand_rule(
    rule: &Rule,
    index: u32,
    out: &mut Vec<Entry>,
    residuals: &mut Vec<Residual>,
) {
    let m = &rule.matches;
    let in_ports = m.in_ports.as_deref().map(normalize_ranges);
    let src = m.src.as_deref().map(normalize_cidrs);
    let dst = m.dst.as_deref().map(normalize_cidrs);
    let [x_port, x_src, x_dst] = choose_expansion([
        in_ports.as_ref().map(Vec::len),
        src.as_ref().map(Vec::len),
        dst.as_ref().map(Vec::len),
    ]);
    let port_picks = picks(in_ports.as_deref(), x_port);
    let src_picks = picks(src.as_deref(), x_src);
    let dst_picks = picks(dst.as_deref(), x_dst);

    let mut residual = NO_RESIDUAL;
    if !(x_port || in_ports.is_none()) || !(x_src || src.is_none()) || !(x_dst || dst.is_none()) {
        // At most one residual per rule, and `build` caps rules below
        // u32::MAX, so the index always fits.
        residual = u32::try_from(residuals.len()).unwrap_or(NO_RESIDUAL);
        residuals.push(Residual {
            in_ports: in_ports.clone().filter(|_| !x_port),
            src: src.as_deref().filter(|_| !x_src).map(AddrSet::new),
            dst: dst.as_deref().filter(|_| !x_dst).map(AddrSet::new),
        });
    }

    let (value0, mask0, sport, dport) = scalar_part(m);
    for pp in &port_picks {
        let (mut v1, mut m1) = (value0, mask0);
        let mut in_port = (0, u16::MAX);
        if let Pick::One(&(lo, hi)) = pp {
            let m16 = u64::from(covering_mask16(lo, hi));
            m1.b |= m16 << INPORT_SHIFT;
            v1.b |= (u64::from(lo) & m16) << INPORT_SHIFT;
            in_port = (lo, hi.wrapping_sub(lo));
        }
        for sp in &src_picks {
            let (mut v2, mut m2) = (v1, m1);
            if let Pick::One(c) = sp {
                if !apply_cidr(&mut v2, &mut m2, c, false) {
                    continue;
                }
            }
            for dp in &dst_picks {
                let (mut v3, mut m3) = (v2, m2);
                if let Pick::One(c) = dp {
                    if !apply_cidr(&mut v3, &mut m3, c, true) {
                        continue;
                    }
                }
                let needs_residual = matches!(pp, Pick::Residual)
                    || matches!(sp, Pick::Residual)
                    || matches!(dp, Pick::Residual);
                out.push(Entry {
                    value: v3,
                    mask: m3,
                    sport,
                    dport,
                    in_port,
                    rule: index,
                    residual: if needs_residual {
                        residual
                    } else {
                        NO_RESIDUAL
                    },
                });
            }
        }
    }
}

/// Every key bit any rule looks at, widened to whole fields. Zeroing the
/// rest of a packet key makes flows that differ only in fields no rule
/// reads (TCP flags, usually) share one flow-cache entry.
pub(crate) fn used_fields(rules: &[Rule]) -> Key {
    let mut k = Key::default();
    for r in rules {
        let m = &r.matches;
        if m.in_ports.is_some() {
            k.b |= INPORT_MASK;
        }
        if m.vlan.is_some() {
            k.b |= VLAN_MASK;
        }
        if m.ethertype.is_some() {
            k.b |= ETHERTYPE_MASK;
        }
        if m.ip_version.is_some() {
            k.a |= IPVER_MASK;
        }
        if m.src.is_some() {
            k.src = u128::MAX;
            k.a |= IPVER_MASK;
        }
        if m.dst.is_some() {
            k.dst = u128::MAX;
            k.a |= IPVER_MASK;
        }
        if m.proto.is_some() {
            k.a |= PROTO_MASK;
        }
        if m.src_port.is_some() {
            k.a |= SPORT_MASK | L4_MASK;
        }
        if m.dst_port.is_some() {
            k.a |= DPORT_MASK | L4_MASK;
        }
        if m.tcp_flags.is_some() {
            k.a |= FLAGS_MASK | PROTO_MASK | L4_MASK;
        }
        if m.direction.is_some() {
            k.a |= DIR_MASK;
        }
    }
    k
}
