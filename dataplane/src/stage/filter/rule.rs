//! The rule model the control plane hands to [`Classifier::build`](super::Classifier::build).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::Action;
use crate::stage::Direction;

/// A rule's identifier, reported on match for counters and traces. Not
/// required to be unique: the control plane may split one policy rule into
/// several compiled rules that share its id.
pub type RuleId = u32;

/// One filter rule: every `Some` field must match (AND), `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    pub matches: Match,
    pub action: Action,
}

/// The match fields of a rule. `Default` is the match-all rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// Input ports: a set, given as ranges (a single port is `lo == hi`).
    pub in_ports: Option<Vec<PortRange>>,
    /// Outer VLAN tag.
    pub vlan: Option<VlanMatch>,
    /// EtherType after all VLAN tags.
    pub ethertype: Option<u16>,
    /// 4 or 6.
    pub ip_version: Option<u8>,
    /// Source: one CIDR or a group resolved to its CIDRs; any of them
    /// matches. Every CIDR also requires its IP version. `Some(vec![])` (a
    /// group that is empty right now) matches nothing.
    pub src: Option<Vec<Cidr>>,
    /// Destination, as `src`.
    pub dst: Option<Vec<Cidr>>,
    /// IP protocol (after IPv6 extension headers).
    pub proto: Option<u8>,
    /// Only packets with an L4 header that carries ports (TCP, UDP, SCTP,
    /// DCCP, UDP-Lite, not a non-first fragment) match a port range.
    pub src_port: Option<PortRange>,
    pub dst_port: Option<PortRange>,
    /// TCP flags: `flags & mask == value`. Implies TCP.
    pub tcp_flags: Option<TcpFlags>,
    pub direction: Option<Direction>,
}

/// An inclusive range of port numbers (L4 ports or input port ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    pub fn new(lo: u16, hi: u16) -> Self {
        PortRange { lo, hi }
    }

    pub fn single(port: u16) -> Self {
        PortRange { lo: port, hi: port }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// What a rule wants of the outer VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VlanMatch {
    /// The frame has no VLAN tag.
    Untagged,
    /// The outer tag has this VLAN ID (0..=4095).
    Id(u16),
}

/// TCP flags test: `flags & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    pub value: u8,
    pub mask: u8,
}

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// An IPv4 or IPv6 prefix. Host bits below the prefix are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn new(addr: impl Into<IpAddr>, len: u8) -> Self {
        Cidr {
            addr: addr.into(),
            len,
        }
    }

    /// A single host (/32 or /128).
    pub fn host(addr: impl Into<IpAddr>) -> Self {
        let addr = addr.into();
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, len }
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        if self.addr.is_ipv4() {
            4
        } else {
            6
        }
    }

    /// Longest valid prefix length for the family.
    pub fn max_len(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The address in the `Layers` encoding (IPv4 in the low 32 bits).
    pub(crate) fn bits(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// The prefix mask in the `Layers` encoding. `len` must be valid.
    pub(crate) fn mask(&self) -> u128 {
        let width = u32::from(self.max_len());
        let len = u32::from(self.len.min(self.max_len()));
        let full: u128 = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        if len == 0 {
            0
        } else if len >= width {
            full
        } else {
            full & !(full >> len)
        }
    }

    /// First and last address covered, in the `Layers` encoding.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        let m = self.mask();
        let width_mask: u128 = if self.addr.is_ipv4() {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        let lo = self.bits() & m;
        (lo, lo | (width_mask & !m))
    }

    /// Whether `addr` (in the `Layers` encoding, of IP version `version`) is inside.
    pub fn contains_bits(&self, version: u8, addr: u128) -> bool {
        version == self.version() && (addr & self.mask()) == (self.bits() & self.mask())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Error from parsing a [`Cidr`] from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected ADDRESS or ADDRESS/LEN")]
pub struct CidrParseError(pub String);

impl FromStr for Cidr {
    type Err = CidrParseError;

    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address for a host. The
    /// length is checked against the family by `Classifier::build`, which
    /// names the rule; here only the syntax is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrParseError(s.to_string());
        match s.split_once('/') {
            Some((a, l)) => {
                let addr = IpAddr::from_str(a).map_err(|_| bad())?;
                let len = l.parse::<u8>().map_err(|_| bad())?;
                Ok(Cidr { addr, len })
            }
            None => IpAddr::from_str(s).map(Cidr::host).map_err(|_| bad()),
        }
    }
}

impl From<Ipv4Addr> for Cidr {
    fn from(a: Ipv4Addr) -> Self {
        Cidr::host(a)
    }
}

impl From<Ipv6Addr> for Cidr {
    fn from(a: Ipv6Addr) -> Self {
        Cidr::host(a)
    }
}

/// The match field a [`RuleError`] is about, named as in the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    InPorts,
    Vlan,
    EtherType,
    IpVersion,
    Src,
    Dst,
    Proto,
    SrcPort,
    DstPort,
    TcpFlags,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::InPorts => "in_ports",
            Field::Vlan => "vlan",
            Field::EtherType => "ethertype",
            Field::IpVersion => "ip_version",
            Field::Src => "src",
            Field::Dst => "dst",
            Field::Proto => "proto",
            Field::SrcPort => "src_port",
            Field::DstPort => "dst_port",
            Field::TcpFlags => "tcp_flags",
        })
    }
}

/// Why a rule field makes no sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    #[error("empty range {lo}-{hi} (lo > hi)")]
    EmptyRange { lo: u16, hi: u16 },
    #[error("empty port set")]
    EmptySet,
    #[error("prefix length {len} of {cidr} is longer than {max}")]
    PrefixTooLong { cidr: Cidr, len: u8, max: u8 },
    #[error("VLAN ID {0} is out of range 0-4095")]
    VlanOutOfRange(u16),
    #[error("IP version {0} is neither 4 nor 6")]
    BadIpVersion(u8),
    #[error("no CIDR is IPv{ip_version}, the rule's ip_version")]
    VersionMismatch { ip_version: u8 },
    #[error("src and dst share no IP version, the rule can never match")]
    NoCommonVersion,
    #[error("value {value:#04x} has bits outside mask {mask:#04x}")]
    FlagsOutsideMask { value: u8, mask: u8 },
    #[error("TCP flags need protocol 6 (TCP), rule has {0}")]
    NotTcp(u8),
    #[error("protocol {0} has no ports")]
    NoPorts(u8),
}

/// A rule that cannot be compiled: which rule, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule {index} (id {id}): {field}: {kind}")]
pub struct RuleError {
    /// Position of the rule in the list given to `build`.
    pub index: usize,
    pub id: RuleId,
    pub field: Field,
    pub kind: RuleErrorKind,
}

/// Protocols whose L4 header parse reads ports from.
pub(crate) fn proto_has_ports(p: u8) -> bool {
    matches!(p, 6 | 17 | 33 | 132 | 136)
}

impl Rule {
    /// Every nonsensical field of this rule (at `index` in the list).
    pub fn validate(&self, index: usize) -> Vec<RuleError> {
        let mut errs = Vec::new();
        let mut err = |field, kind| {
            errs.push(RuleError {
                index,
                id: self.id,
                field,
                kind,
            })
        };
        let m = &self.matches;
        if let Some(set) = &m.in_ports {
            if set.is_empty() {
                err(Field::InPorts, RuleErrorKind::EmptySet);
            }
            for r in set.iter().filter(|r| r.lo > r.hi) {
                err(
                    Field::InPorts,
                    RuleErrorKind::EmptyRange { lo: r.lo, hi: r.hi },
                );
            }
        }
        if let Some(VlanMatch::Id(v)) = m.vlan {
            if v > 4095 {
                err(Field::Vlan, RuleErrorKind::VlanOutOfRange(v));
            }
        }
        if let Some(v) = m.ip_version {
            if v != 4 && v != 6 {
                err(Field::IpVersion, RuleErrorKind::BadIpVersion(v));
            }
        }
        for (field, list) in [(Field::Src, &m.src), (Field::Dst, &m.dst)] {
            let Some(list) = list else { continue };
            for c in list.iter().filter(|c| c.len > c.max_len()) {
                err(
                    field,
                    RuleErrorKind::PrefixTooLong {
                        cidr: *c,
                        len: c.len,
                        max: c.max_len(),
                    },
                );
            }
            // An empty group matches nothing by design; a non-empty one
            // that has no CIDR of the rule's version is a contradiction.
            if let Some(v @ (4 | 6)) = m.ip_version {
                if !list.is_empty() && !list.iter().any(|c| c.version() == v) {
                    err(field, RuleErrorKind::VersionMismatch { ip_version: v });
                }
            }
        }
        if let (Some(s), Some(d)) = (&m.src, &m.dst) {
            let versions = |l: &Vec<Cidr>| {
                l.iter()
                    .fold(0u8, |acc, c| acc | if c.version() == 4 { 1 } else { 2 })
            };
            if !s.is_empty() && !d.is_empty() && versions(s) & versions(d) == 0 {
                err(Field::Dst, RuleErrorKind::NoCommonVersion);
            }
        }
        for (field, range) in [(Field::SrcPort, m.src_port), (Field::DstPort, m.dst_port)] {
            let Some(r) = range else { continue };
            if r.lo > r.hi {
                err(field, RuleErrorKind::EmptyRange { lo: r.lo, hi: r.hi });
            }
            if let Some(p) = m.proto {
                if !proto_has_ports(p) {
                    err(field, RuleErrorKind::NoPorts(p));
                }
            }
        }
        if let Some(f) = m.tcp_flags {
            if f.value & !f.mask != 0 {
                err(
                    Field::TcpFlags,
                    RuleErrorKind::FlagsOutsideMask {
                        value: f.value,
                        mask: f.mask,
                    },
                );
            }
            if let Some(p) = m.proto {
                if p != super::key::TCP {
                    err(Field::TcpFlags, RuleErrorKind::NotTcp(p));
                }
            }
        }
        errs
    }
}
