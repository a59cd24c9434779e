//! Mixed rule sets and the flows aimed at them, shared by the filter and
//! classifier benches: the same rules and keys for every path compared.

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::stage::filter::{
    Action, Cidr, DestAction, Match, PortRange, Rule, TcpFlags, VlanMatch,
};
use dataplane::stage::parse::Layers;
use dataplane::stage::slice::SliceSpec;

/// xorshift64*: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

const SERVICE_PORTS: [u16; 12] = [22, 25, 53, 80, 123, 443, 3306, 5432, 6379, 8080, 8443, 9092];

/// An IPv4 prefix inside 10.0.0.0/8 or 172.16.0.0/12, of a realistic length.
fn v4_cidr(r: &mut Rng) -> Cidr {
    let len = r.pick(&[8u8, 12, 16, 16, 20, 22, 24, 24, 24, 26, 28, 32, 32, 32]);
    let base = if r.below(4) == 0 {
        0xac10_0000 | (r.next() as u32 & 0x000f_ffff)
    } else {
        0x0a00_0000 | (r.next() as u32 & 0x00ff_ffff)
    };
    Cidr::new(Ipv4Addr::from(base), len)
}

fn v6_cidr(r: &mut Rng) -> Cidr {
    let len = r.pick(&[32u8, 48, 56, 64, 64, 128]);
    let a = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(r.next() as u32) << 64;
    Cidr::new(Ipv6Addr::from(a | u128::from(r.next() as u16)), len)
}

fn port_match(r: &mut Rng) -> PortRange {
    match r.below(4) {
        0 => {
            let lo = r.below(60000) as u16;
            PortRange::new(lo, lo + r.below(1000) as u16)
        }
        1 => PortRange::new(1024, 65535),
        _ => PortRange::single(r.pick(&SERVICE_PORTS)),
    }
}

pub fn rules(n: usize, seed: u64) -> Vec<Rule> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let mut m = Match::default();
            match r.below(20) {
                // Server subnets and their services: the bulk of a policy.
                0..=7 => {
                    m.dst = Some(vec![v4_cidr(&mut r)]);
                    m.proto = Some(r.pick(&[6, 6, 17]));
                    m.dst_port = Some(port_match(&mut r));
                }
                // Subnet to subnet.
                8..=11 => {
                    m.src = Some(vec![v4_cidr(&mut r)]);
                    m.dst = Some(vec![v4_cidr(&mut r)]);
                }
                // A group (5-20 CIDRs) talking to a service.
                12 | 13 => {
                    let k = 5 + r.below(16) as usize;
                    m.src = Some((0..k).map(|_| v4_cidr(&mut r)).collect());
                    m.proto = Some(6);
                    m.dst_port = Some(PortRange::single(r.pick(&SERVICE_PORTS)));
                }
                // A VLAN (and maybe a protocol).
                14 => {
                    m.vlan = Some(VlanMatch::Id(r.below(4094) as u16 + 1));
                    if r.below(2) == 0 {
                        m.proto = Some(17);
                    }
                }
                // Port ranges only.
                15 | 16 => {
                    m.proto = Some(r.pick(&[6, 17]));
                    m.src_port = Some(port_match(&mut r));
                    m.dst_port = Some(port_match(&mut r));
                }
                // IPv6 subnets.
                17 | 18 => {
                    m.dst = Some(vec![v6_cidr(&mut r)]);
                    if r.below(2) == 0 {
                        m.src = Some(vec![v6_cidr(&mut r)]);
                    }
                }
                // TCP SYNs to a subnet.
                _ => {
                    m.dst = Some(vec![v4_cidr(&mut r)]);
                    m.tcp_flags = Some(TcpFlags {
                        value: TcpFlags::SYN,
                        mask: TcpFlags::SYN | TcpFlags::ACK,
                    });
                }
            }
            let action = if r.below(4) == 0 {
                Action::Drop
            } else {
                Action::Forward(vec![DestAction {
                    dest: (i % 8) as u16,
                    slice: SliceSpec::Whole,
                    dedup: false,
                    tag: None,
                }])
            };
            Rule {
                id: i as u32,
                matches: m,
                action,
            }
        })
        .collect()
}

/// `flows` distinct flows: half aimed at a random rule's addresses and
/// ports (so matches land all over the list), half random traffic in the
/// same address space (mostly reaching the default).
pub fn flows(rules: &[Rule], flows: usize, seed: u64) -> Vec<Layers> {
    let mut r = Rng(seed);
    (0..flows)
        .map(|i| {
            let v6 = r.below(10) == 0;
            let mut l = Layers {
                ethertype: if v6 { 0x86dd } else { 0x0800 },
                l3_offset: 14,
                ip_version: if v6 { 6 } else { 4 },
                l4_proto: r.pick(&[6, 6, 6, 17]),
                l4_offset: if v6 { 54 } else { 34 },
                src_port: 1024 + r.below(64000) as u16,
                dst_port: r.pick(&SERVICE_PORTS),
                tcp_flags: TcpFlags::ACK,
                ..Layers::default()
            };
            let addr = |r: &mut Rng| {
                if v6 {
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128
                        | u128::from(r.next() as u32) << 64
                        | u128::from(r.next() as u16)
                } else {
                    u128::from(0x0a00_0000 | (r.next() as u32 & 0x00ff_ffff))
                }
            };
            l.src_addr = addr(&mut r);
            l.dst_addr = addr(&mut r);
            if r.below(8) == 0 {
                l.outer_vlan = Some(r.below(4095) as u16);
                l.vlan_count = 1;
            }
            if i % 2 == 0 && !rules.is_empty() {
                // Aim at a rule: take its first CIDRs' networks (plus host
                // bits) and a port inside its range.
                let m = &rules[r.below(rules.len() as u64) as usize].matches;
                let host = |c: &Cidr, r: &mut Rng| {
                    let (bits, full) = match c.addr {
                        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), u128::from(u32::MAX)),
                        std::net::IpAddr::V6(a) => (u128::from(a), u128::MAX),
                    };
                    let width = full.count_ones();
                    let len = u32::from(c.len);
                    let prefix = if len == 0 {
                        0
                    } else if len >= width {
                        full
                    } else {
                        full & !(full >> len)
                    };
                    let noise =
                        (u128::from(r.next()) << 64 | u128::from(r.next())) & full & !prefix;
                    (bits & prefix) | noise
                };
                if let Some(c) = m.src.as_ref().and_then(|v| v.first()) {
                    l.src_addr = host(c, &mut r);
                }
                if let Some(c) = m.dst.as_ref().and_then(|v| v.first()) {
                    l.dst_addr = host(c, &mut r);
                    l.ip_version = if c.addr.is_ipv4() { 4 } else { 6 };
                }
                if let Some(p) = m.proto {
                    l.l4_proto = p;
                }
                if let Some(pr) = m.dst_port {
                    l.dst_port = pr.lo + r.below(u64::from(pr.hi - pr.lo) + 1) as u16;
                }
                if let Some(pr) = m.src_port {
                    l.src_port = pr.lo + r.below(u64::from(pr.hi - pr.lo) + 1) as u16;
                }
                if let Some(VlanMatch::Id(v)) = m.vlan {
                    l.outer_vlan = Some(v);
                    l.vlan_count = 1;
                }
            }
            l
        })
        .collect()
}
