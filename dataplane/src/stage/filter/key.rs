//! The packed lookup key: every header field a rule can look at, laid out so
//! that masking, hashing and comparing are a handful of word operations.

use crate::stage::parse::Layers;
use crate::stage::Direction;

/// Header fields of one packet (or the value/mask of a rule), packed.
///
/// Addresses keep the `Layers` encoding (IPv4 in the low 32 bits), so a
/// packet key is built without branching on the IP version; the version
/// itself sits in `a` and every address match also constrains it.
// `Hash` hashes the same fields `eq` compares, as the derived one would.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Debug, Default, Hash)]
pub(crate) struct Key {
    pub src: u128,
    pub dst: u128,
    /// src port, dst port, IP protocol, TCP flags, IP version, direction, L4 bit.
    pub a: u64,
    /// input port, outer VLAN (12-bit id + tagged bit), EtherType.
    pub b: u64,
}

// Layout of `Key::a`.
pub(crate) const SPORT_SHIFT: u32 = 0;
pub(crate) const DPORT_SHIFT: u32 = 16;
pub(crate) const PROTO_SHIFT: u32 = 32;
pub(crate) const FLAGS_SHIFT: u32 = 40;
pub(crate) const IPVER_SHIFT: u32 = 48;
pub(crate) const DIR_SHIFT: u32 = 52;
/// Set when the packet has an L4 header that carries ports (see [`has_ports`]).
pub(crate) const L4_SHIFT: u32 = 53;

pub(crate) const SPORT_MASK: u64 = 0xffff << SPORT_SHIFT;
pub(crate) const DPORT_MASK: u64 = 0xffff << DPORT_SHIFT;
pub(crate) const PROTO_MASK: u64 = 0xff << PROTO_SHIFT;
pub(crate) const FLAGS_MASK: u64 = 0xff << FLAGS_SHIFT;
pub(crate) const IPVER_MASK: u64 = 0xf << IPVER_SHIFT;
pub(crate) const DIR_MASK: u64 = 1 << DIR_SHIFT;
pub(crate) const L4_MASK: u64 = 1 << L4_SHIFT;

// Layout of `Key::b`.
pub(crate) const INPORT_SHIFT: u32 = 0;
pub(crate) const VLAN_SHIFT: u32 = 16;
/// Bit 12 of the VLAN field: the frame had a tag (VLAN 0 is a valid id).
pub(crate) const VLAN_TAGGED: u64 = 1 << (VLAN_SHIFT + 12);
pub(crate) const ETHERTYPE_SHIFT: u32 = 32;

pub(crate) const INPORT_MASK: u64 = 0xffff << INPORT_SHIFT;
pub(crate) const VLAN_ID_MASK: u64 = 0xfff << VLAN_SHIFT;
pub(crate) const VLAN_MASK: u64 = VLAN_ID_MASK | VLAN_TAGGED;
pub(crate) const ETHERTYPE_MASK: u64 = 0xffff << ETHERTYPE_SHIFT;

pub(crate) const TCP: u8 = 6;

/// Whether the packet's transport header carries ports that parse read.
///
/// Port and TCP-flag matches only apply to such packets: otherwise a rule
/// "dst ports 0-1023" would catch ICMP and non-first fragments, whose ports
/// parse reports as 0. A non-first fragment has no `l4_offset` (parse
/// stops at its IP header), so the offset alone rules it out.
#[inline(always)]
pub(crate) fn has_ports(l: &Layers) -> bool {
    l.l4_offset != 0 && PORTED[usize::from(l.l4_proto)]
}

/// The IP protocols whose header starts with the two ports: TCP, UDP,
/// DCCP, SCTP and UDP-Lite. A table: one load where the set's compares
/// took a bit test and two branches.
const PORTED: [bool; 256] = {
    let mut t = [false; 256];
    t[6] = true;
    t[17] = true;
    t[33] = true;
    t[132] = true;
    t[136] = true;
    t
};

/// The whole key at once, without a branch per field: the flow cache
/// compares a key per packet.
impl PartialEq for Key {
    #[inline(always)]
    fn eq(&self, o: &Key) -> bool {
        ((self.src ^ o.src) | (self.dst ^ o.dst) | u128::from((self.a ^ o.a) | (self.b ^ o.b))) == 0
    }
}

impl Eq for Key {}

impl Key {
    /// The key of one packet.
    #[inline]
    pub fn from_packet(l: &Layers, in_port: u16, dir: Direction) -> Key {
        let dir_bit = match dir {
            Direction::Ingress => 0u64,
            Direction::Egress => 1,
        };
        let a = u64::from(l.src_port) << SPORT_SHIFT
            | u64::from(l.dst_port) << DPORT_SHIFT
            | u64::from(l.l4_proto) << PROTO_SHIFT
            | u64::from(l.tcp_flags) << FLAGS_SHIFT
            | (u64::from(l.ip_version) & 0xf) << IPVER_SHIFT
            | dir_bit << DIR_SHIFT
            | u64::from(has_ports(l)) << L4_SHIFT;
        let vlan = match l.outer_vlan {
            Some(id) => (u64::from(id) & 0xfff) << VLAN_SHIFT | VLAN_TAGGED,
            None => 0,
        };
        let b =
            u64::from(in_port) << INPORT_SHIFT | vlan | u64::from(l.ethertype) << ETHERTYPE_SHIFT;
        Key {
            src: l.src_addr,
            dst: l.dst_addr,
            a,
            b,
        }
    }

    #[inline]
    pub fn and(&self, m: &Key) -> Key {
        Key {
            src: self.src & m.src,
            dst: self.dst & m.dst,
            a: self.a & m.a,
            b: self.b & m.b,
        }
    }

    /// Every bit set in `self` is also set in `other`.
    pub fn is_subset_of(&self, other: &Key) -> bool {
        self.and(other) == *self
    }

    /// `(self & mask) == value`, without early exits: all four words are
    /// compared at once, which is cheaper than branching per field.
    #[inline]
    pub fn matches(&self, value: &Key, mask: &Key) -> bool {
        let d = ((self.src & mask.src) ^ value.src)
            | ((self.dst & mask.dst) ^ value.dst)
            | u128::from(((self.a & mask.a) ^ value.a) | ((self.b & mask.b) ^ value.b));
        d == 0
    }

    #[inline]
    pub fn sport(&self) -> u16 {
        (self.a >> SPORT_SHIFT) as u16
    }
    #[inline]
    pub fn dport(&self) -> u16 {
        (self.a >> DPORT_SHIFT) as u16
    }
    #[inline]
    pub fn in_port(&self) -> u16 {
        (self.b >> INPORT_SHIFT) as u16
    }
    #[inline]
    pub fn ip_version(&self) -> u8 {
        ((self.a & IPVER_MASK) >> IPVER_SHIFT) as u8
    }

    /// A cheap, well-mixed 64-bit hash: one folded 64×64→128 multiply (as
    /// in wyhash/foldhash) of the addresses' words against the rest. An
    /// IPv4 pair fills the first factor without loss (source low, the
    /// destination rotated high). The key is fixed-size, so this beats a
    /// generic `Hasher` that feeds it field by field. Tables are built from
    /// rules, not from traffic, and the flow cache is bounded, so crafted
    /// collisions cost extra probes at worst, never unbounded work.
    #[inline]
    pub fn hash(&self) -> u64 {
        // The constants keep a factor from being 0 where the classifier's
        // mask clears all its words (rules on ports only, or on addresses
        // only): every key would land in one slot.
        const K: [u64; 2] = [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344];
        let (src_lo, src_hi) = (self.src as u64, (self.src >> 64) as u64);
        let (dst_lo, dst_hi) = (self.dst as u64, (self.dst >> 64) as u64);
        fold(
            src_lo ^ dst_lo.rotate_left(32) ^ src_hi ^ K[0],
            self.a ^ self.b.rotate_left(48) ^ dst_hi.rotate_left(32) ^ K[1],
        )
    }
}

#[inline]
fn fold(x: u64, y: u64) -> u64 {
    let p = u128::from(x) * u128::from(y);
    (p as u64) ^ ((p >> 64) as u64)
}
