//! Fixed configurations the frame targets run the stages with: one
//! template per tunnel kind, a small classifier that exercises every match
//! field, and the naive rule-by-rule evaluation it is checked against.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use dataplane::stage::encap::{
    EncapConfig, EncapTemplate, OuterConfig, OuterVlan, OversizePolicy, TimestampMode,
    TunnelConfig, VxlanExtendedConfig,
};
use dataplane::stage::filter::{
    Action, Cidr, Classifier, DestAction, Match, PortRange, Rule, TcpFlags, VlanMatch,
};
use dataplane::stage::parse::{Fragment, Layers};
use dataplane::stage::slice::SliceSpec;
use dataplane::stage::Direction;
use dataplane::wire::ethernet::Address;

/// Tunnel kinds an input can pick (index with `% TUNNELS.len()`).
pub const TUNNELS: [TunnelConfig; 8] = [
    TunnelConfig::vxlan(100),
    TunnelConfig::Vxlan {
        vni: 0x00ab_cdef,
        udp_dst_port: 8472,
        extended: Some(VxlanExtendedConfig { flags: 0x0c }),
    },
    TunnelConfig::Geneve { vni: 77 },
    TunnelConfig::L2Gre { key: 0xdead_beef },
    TunnelConfig::ErspanII { session: 1023 },
    TunnelConfig::erspan3(7),
    TunnelConfig::ErspanIII {
        session: 9,
        hw_id: Some(63),
        timestamp: TimestampMode::Us100,
    },
    TunnelConfig::vxlan(0),
];

/// A template for tunnel `t` (index into [`TUNNELS`]), outer IPv6 or IPv4,
/// with an outer VLAN tag or not, the given MTU and oversize policy.
pub fn template(t: usize, v6: bool, vlan: bool, mtu: u16, drop: bool) -> EncapTemplate {
    let (src_ip, dst_ip) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        )
    };
    let cfg = EncapConfig {
        tunnel: TUNNELS[t % TUNNELS.len()],
        outer: OuterConfig {
            src_mac: Address([0x02, 0x53, 0x4c, 0, 0, 1]),
            dst_mac: Address([0x02, 0x53, 0x4c, 0, 0, 2]),
            vlan: vlan.then_some(OuterVlan { vid: 4094, pcp: 7 }),
            src_ip,
            dst_ip,
            dscp: 46,
            ttl: 1,
        },
        mtu,
        oversize: if drop {
            OversizePolicy::Drop
        } else {
            OversizePolicy::TruncateToMtu
        },
    };
    EncapTemplate::new(&cfg).expect("the fixed encap configs are valid")
}

/// The destinations the classifier's rules name.
pub const DEST_NOC: u16 = 0;
pub const DEST_IDS: u16 = 1;

fn to(dest: u16, slice: SliceSpec, dedup: bool, tag: Option<u32>) -> Action {
    Action::Forward(vec![DestAction {
        dest,
        slice,
        dedup,
        tag,
    }])
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("fixed CIDR")
}

/// Eight rules, one or more per match field, and a match-all default.
pub fn rules() -> Vec<Rule> {
    let r = |id, matches, action| Rule {
        id,
        matches,
        action,
    };
    vec![
        r(
            0,
            Match {
                in_ports: Some(vec![PortRange::single(1)]),
                proto: Some(6),
                dst_port: Some(PortRange::single(22)),
                ..Match::default()
            },
            Action::Drop,
        ),
        r(
            1,
            Match {
                vlan: Some(VlanMatch::Id(100)),
                ..Match::default()
            },
            to(DEST_NOC, SliceSpec::Whole, false, Some(100)),
        ),
        r(
            2,
            Match {
                src: Some(vec![cidr("10.0.0.0/8")]),
                dst_port: Some(PortRange::new(1000, 2000)),
                ..Match::default()
            },
            to(DEST_NOC, SliceSpec::Bytes(96), true, None),
        ),
        r(
            3,
            Match {
                ip_version: Some(6),
                proto: Some(58),
                ..Match::default()
            },
            to(DEST_IDS, SliceSpec::AfterL4(0), false, None),
        ),
        r(
            4,
            Match {
                dst: Some(vec![cidr("2001:db8::/32"), cidr("192.168.0.0/16")]),
                ..Match::default()
            },
            to(DEST_IDS, SliceSpec::AfterL4(16), true, Some(5)),
        ),
        r(
            5,
            Match {
                tcp_flags: Some(TcpFlags {
                    value: TcpFlags::SYN,
                    mask: TcpFlags::SYN | TcpFlags::ACK,
                }),
                ..Match::default()
            },
            to(DEST_NOC, SliceSpec::Whole, true, None),
        ),
        r(
            6,
            Match {
                ethertype: Some(0x0806),
                vlan: Some(VlanMatch::Untagged),
                ..Match::default()
            },
            Action::Drop,
        ),
        r(
            7,
            Match {
                direction: Some(Direction::Egress),
                proto: Some(17),
                src_port: Some(PortRange::single(53)),
                in_ports: Some(vec![PortRange::new(0, 0), PortRange::new(2, 3)]),
                ..Match::default()
            },
            to(DEST_IDS, SliceSpec::Bytes(0), false, None),
        ),
    ]
}

/// The default action: everything else goes to the NOC whole.
pub fn default_action() -> Action {
    to(DEST_NOC, SliceSpec::Whole, false, None)
}

/// The classifier over [`rules`], built once per process.
pub fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::build(&rules(), default_action()).expect("fixed rules are valid"))
}

/// Carries ports a port range can match (as the filter's contract says).
fn has_ports(l: &Layers) -> bool {
    l.l4_offset != 0
        && l.fragment != Fragment::Later
        && matches!(l.l4_proto, 6 | 17 | 33 | 132 | 136)
}

/// Does `m` match a packet, field by field, as `filter::Match` documents?
pub fn naive_matches(m: &Match, l: &Layers, in_port: u16, dir: Direction) -> bool {
    let cidrs = |set: &Option<Vec<Cidr>>, addr: u128| {
        set.as_ref().is_none_or(|v| {
            v.iter()
                .any(|c| c.version() == l.ip_version && c.contains_bits(l.ip_version, addr))
        })
    };
    let port = |r: &Option<PortRange>, p: u16| r.is_none_or(|r| has_ports(l) && r.contains(p));
    m.in_ports
        .as_ref()
        .is_none_or(|v| v.iter().any(|r| r.contains(in_port)))
        && m.vlan.is_none_or(|v| match v {
            VlanMatch::Untagged => l.outer_vlan.is_none(),
            VlanMatch::Id(id) => l.outer_vlan == Some(id),
        })
        && m.ethertype.is_none_or(|t| t == l.ethertype)
        && m.ip_version.is_none_or(|v| v == l.ip_version)
        && cidrs(&m.src, l.src_addr)
        && cidrs(&m.dst, l.dst_addr)
        && m.proto.is_none_or(|p| p == l.l4_proto)
        && port(&m.src_port, l.src_port)
        && port(&m.dst_port, l.dst_port)
        && m.tcp_flags.is_none_or(|f| {
            l.l4_proto == 6 && has_ports(l) && l.tcp_flags & f.mask == f.value & f.mask
        })
        && m.direction.is_none_or(|d| d == dir)
}
