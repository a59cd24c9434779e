//! The classifier's entries on DPDK's `rte_acl`: the same value/mask and
//! range entries TupleMerge stores, walked as a SIMD trie over a whole
//! burst of keys at once. Two contexts: IPv6 keys need 32 address bytes,
//! IPv4 keys 8, and the trie costs one level per input byte. Keys of
//! neither version, or without ports, go to TupleMerge when some rule
//! reads the version or the ports, so no trie walks those bits.
//!
//! Built on the main lcore (rte_acl allocates DPDK memory and takes up to
//! seconds for 10,000 rules), never on a worker.

use crate::dpdk::acl::{AclContext, AclRule, FieldDef, FieldKind, FieldMatch, MAX_PRIORITY};
use crate::dpdk::DpdkError;

use super::compile::Entry;
use super::key::*;
use super::tuple::{Tuples, NO_MATCH};
use super::{Classifier, Verdict};
use crate::stage::parse::Layers;
use crate::stage::Direction;

/// Why a classifier cannot run on rte_acl.
#[derive(Debug, thiserror::Error)]
pub enum AclBuildError {
    #[error("a rule has address or port sets too large to expand, which rte_acl cannot check")]
    Residuals,
    #[error("{0} rules: more than rte_acl's priorities can order")]
    TooManyRules(usize),
    #[error("a rule asks for packets without ports, which the rte_acl layout does not check")]
    PortlessOnly,
    #[error("rte_acl: {0}")]
    Dpdk(#[from] DpdkError),
}

// Input layout, shared by both contexts up to the addresses (network byte
// order, as rte_acl reads multi-byte fields):
//   0  protocol (rte_acl's first field is one byte)
//   4  misc: TCP flags, direction, VLAN id + tagged bit
//   8  input port (range), EtherType
//  12  source port (range), destination port (range)
//  16  source address, then destination address (4 or 16 bytes each)
const V4_FIELDS: usize = 8;
const V4_LEN: usize = 24;
const V6_FIELDS: usize = 14;
const V6_LEN: usize = 48;

const fn field(kind: FieldKind, size: u8, input_index: u8, offset: u32) -> FieldDef {
    FieldDef {
        kind,
        size,
        input_index,
        offset,
    }
}

fn defs<const N: usize>(addr_words: usize) -> [FieldDef; N] {
    use FieldKind::{Bitmask, Range};
    let mut d = [field(Bitmask, 1, 0, 0); N];
    d[1] = field(Bitmask, 4, 1, 4);
    d[2] = field(Range, 2, 2, 8);
    d[3] = field(Bitmask, 2, 2, 10);
    d[4] = field(Range, 2, 3, 12);
    d[5] = field(Range, 2, 3, 14);
    for w in 0..2 * addr_words {
        d[6 + w] = field(Bitmask, 4, 4 + w as u8, 16 + 4 * w as u32);
    }
    d
}

/// The misc word: TCP flags and direction from `a`, the VLAN field from
/// `b`. Not the IP version nor the L4 bit: the keys that reach a context
/// all have the same (see [`AclMissPath::lookup_burst`]), so rules that
/// read neither flags, direction nor VLAN (most) leave the whole word
/// wild, and rte_acl drops it from their tries: 4 of 17 byte levels.
#[inline]
fn misc(a: u64, b: u64) -> u32 {
    ((a >> FLAGS_SHIFT) & 0xff) as u32
        | (((a >> DIR_SHIFT) & 1) as u32) << 8
        | (((b >> VLAN_SHIFT) & 0x1fff) as u32) << 16
}

#[inline]
fn head(k: &Key, out: &mut [u8]) {
    out[0] = (k.a >> PROTO_SHIFT) as u8;
    out[4..8].copy_from_slice(&misc(k.a, k.b).to_be_bytes());
    out[8..10].copy_from_slice(&k.in_port().to_be_bytes());
    out[10..12].copy_from_slice(&((k.b >> ETHERTYPE_SHIFT) as u16).to_be_bytes());
    out[12..14].copy_from_slice(&k.sport().to_be_bytes());
    out[14..16].copy_from_slice(&k.dport().to_be_bytes());
}

fn rule_fields<const N: usize>(e: &Entry, addr_words: usize) -> [FieldMatch; N] {
    let bits = |value: u64, mask: u64| FieldMatch {
        value: value & mask,
        mask_range: mask,
    };
    let range = |(lo, span): (u16, u16)| FieldMatch {
        value: u64::from(lo),
        mask_range: u64::from(lo.saturating_add(span)),
    };
    let (v, m) = (&e.value, &e.mask);
    let mut f = [FieldMatch::default(); N];
    f[0] = bits((v.a >> PROTO_SHIFT) & 0xff, (m.a >> PROTO_SHIFT) & 0xff);
    f[1] = bits(u64::from(misc(v.a, v.b)), u64::from(misc(m.a, m.b)));
    f[2] = range(e.in_port);
    f[3] = bits(
        (v.b >> ETHERTYPE_SHIFT) & 0xffff,
        (m.b >> ETHERTYPE_SHIFT) & 0xffff,
    );
    f[4] = range(e.sport);
    f[5] = range(e.dport);
    let word = |x: u128, w: usize| u64::from((x >> (32 * (addr_words - 1 - w))) as u32);
    for w in 0..addr_words {
        f[6 + w] = bits(word(v.src, w), word(m.src, w));
        f[6 + addr_words + w] = bits(word(v.dst, w), word(m.dst, w));
    }
    f
}

/// The classifier's rule list on two rte_acl contexts.
#[derive(Debug)]
pub struct AclMissPath {
    v4: AclContext<V4_FIELDS, V4_LEN>,
    v6: AclContext<V6_FIELDS, V6_LEN>,
    /// The IP version and L4 bits that some rule reads: keys whose bits
    /// there are not IPv4 or IPv6 with ports (non-IP, ICMP, later
    /// fragments) go to TupleMerge, so the contexts need not check them.
    routed: u64,
}

impl AclMissPath {
    /// Builds the contexts from `cls`'s compiled entries. Needs EAL.
    pub fn build(cls: &Classifier) -> Result<AclMissPath, AclBuildError> {
        if cls.tuples.has_residuals() {
            return Err(AclBuildError::Residuals);
        }
        if cls.len() >= MAX_PRIORITY as usize {
            return Err(AclBuildError::TooManyRules(cls.len()));
        }
        let ver = |e: &Entry| {
            (e.mask.a & IPVER_MASK != 0).then_some(((e.value.a & IPVER_MASK) >> IPVER_SHIFT) as u8)
        };
        // Compiled entries only ever ask for the L4 bit set (a port or
        // flag match): the contexts leave it out.
        if cls
            .tuples
            .entries()
            .iter()
            .any(|e| e.mask.a & L4_MASK != 0 && e.value.a & L4_MASK == 0)
        {
            return Err(AclBuildError::PortlessOnly);
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for e in cls.tuples.entries() {
            // Lower rule index wins; rte_acl prefers the higher priority.
            // Fits: the rule count was checked against MAX_PRIORITY above.
            let (priority, userdata) = (MAX_PRIORITY - e.rule, e.rule + 1);
            let v = ver(e);
            // IPv4 keys carry zero in the upper 96 address bits, so an
            // entry asking for anything else there is IPv6-only. Only IPv4
            // keys reach the IPv4 context, only IPv6 ones the other (or,
            // when no rule reads the version, every key the IPv4 one).
            let upper_zero = (e.value.src | e.value.dst) >> 32 == 0;
            if (v.is_none() || v == Some(4)) && upper_zero {
                v4.push(AclRule {
                    priority,
                    userdata,
                    fields: rule_fields(e, 1),
                });
            }
            if v.is_none() || v == Some(6) {
                v6.push(AclRule {
                    priority,
                    userdata,
                    fields: rule_fields(e, 4),
                });
            }
        }
        Ok(AclMissPath {
            v4: AclContext::build(&defs(1), &v4)?,
            v6: AclContext::build(&defs(4), &v6)?,
            routed: cls.used.a & (IPVER_MASK | L4_MASK),
        })
    }

    /// `out[i]` gets the first rule matching `keys[i]` (already masked by
    /// the classifier's used fields), as [`Classifier::lookup_key`] would.
    /// Keys the contexts cannot answer go to `tuples`, the classifier's
    /// TupleMerge tables.
    pub(crate) fn lookup_burst(&self, tuples: &Tuples, keys: &[Key], out: &mut [u32]) {
        let n = keys.len().min(out.len());
        for (ks, os) in keys[..n]
            .chunks(super::BURST)
            .zip(out[..n].chunks_mut(super::BURST))
        {
            let mut v4_in = [[0u8; V4_LEN]; super::BURST];
            let mut v4_at = [0u8; super::BURST];
            let mut v6_at = [0u8; super::BURST];
            let (mut n4, mut n6) = (0, 0);
            for (i, k) in ks.iter().enumerate() {
                if !self.answers(k) {
                    os[i] = tuples.lookup(k);
                } else if k.ip_version() == 6 {
                    v6_at[n6] = i as u8;
                    n6 += 1;
                } else {
                    let b = &mut v4_in[n4];
                    head(k, b);
                    b[16..20].copy_from_slice(&(k.src as u32).to_be_bytes());
                    b[20..24].copy_from_slice(&(k.dst as u32).to_be_bytes());
                    v4_at[n4] = i as u8;
                    n4 += 1;
                }
            }
            let mut res = [0u32; super::BURST];
            if n4 > 0 {
                self.v4.classify(&v4_in[..n4], &mut res[..n4]);
                for (at, r) in v4_at[..n4].iter().zip(&res[..n4]) {
                    os[usize::from(*at)] = rule_of(*r);
                }
            }
            // IPv6 inputs are twice as long: built (and zeroed) only for
            // bursts that carry IPv6.
            if n6 > 0 {
                let mut v6_in = [[0u8; V6_LEN]; super::BURST];
                for (b, &at) in v6_in.iter_mut().zip(&v6_at[..n6]) {
                    let k = &ks[usize::from(at)];
                    head(k, b);
                    b[16..32].copy_from_slice(&k.src.to_be_bytes());
                    b[32..48].copy_from_slice(&k.dst.to_be_bytes());
                }
                self.v6.classify(&v6_in[..n6], &mut res[..n6]);
                for (at, r) in v6_at[..n6].iter().zip(&res[..n6]) {
                    os[usize::from(*at)] = rule_of(*r);
                }
            }
        }
    }

    /// Classifies a burst without a flow cache, as `cls` would (the
    /// classifier this was built from): `out[i]` for `layers[i]` received
    /// on `in_ports[i]` in direction `dirs[i]`.
    pub fn classify_burst(
        &self,
        cls: &Classifier,
        layers: &[Layers],
        in_ports: &[u16],
        dirs: &[Direction],
        out: &mut [Verdict],
    ) {
        let n = layers
            .len()
            .min(in_ports.len())
            .min(dirs.len())
            .min(out.len());
        let mut keys = [Key::default(); super::BURST];
        let mut rules = [NO_MATCH; super::BURST];
        for start in (0..n).step_by(super::BURST) {
            let end = (start + super::BURST).min(n);
            let m = end - start;
            for (((k, l), &p), &d) in keys
                .iter_mut()
                .zip(&layers[start..end])
                .zip(&in_ports[start..end])
                .zip(&dirs[start..end])
            {
                *k = cls.key(l, p, d);
            }
            self.lookup_burst(&cls.tuples, &keys[..m], &mut rules[..m]);
            for (o, r) in out[start..end].iter_mut().zip(&rules[..m]) {
                *o = Verdict(*r);
            }
        }
    }

    /// Whether `k` (masked by the used fields) is for the contexts: its
    /// L4 bit set if some rule reads it, and IPv4 or IPv6 if some rule
    /// reads the version (else it has none: then the IPv4 context).
    #[inline]
    fn answers(&self, k: &Key) -> bool {
        let bits = k.a & self.routed;
        let l4 = bits & L4_MASK == self.routed & L4_MASK;
        let ver = self.routed & IPVER_MASK == 0 || matches!(k.ip_version(), 4 | 6);
        l4 && ver
    }

    /// Entries in the IPv4 and IPv6 contexts.
    pub fn rule_counts(&self) -> (usize, usize) {
        (self.v4.rule_count(), self.v6.rule_count())
    }
}

/// rte_acl's userdata (rule + 1, or 0 for no match) as a rule index.
#[inline]
fn rule_of(userdata: u32) -> u32 {
    userdata.checked_sub(1).unwrap_or(NO_MATCH)
}
