//! The traffic profile: a TOML file that says which flows, which sizes,
//! how many duplicates and which tunnel, checked and resolved into a
//! [`Profile`] the generator can run without further errors.
//!
//! ```toml
//! packets = 10000             # originals in one cycle (copies come on top)
//! rate_pps = 1000000          # nominal rate: pcap timestamps, copy delays
//! size = "imix"               # 64 | "imix" | [[64, 7], [594, 4], [1518, 1]]
//! sequence = true             # per-flow sequence stamp in every payload
//! send_time = false           # a send-time field after the stamp (pktgen latency)
//!
//! [[flow]]
//! name = "web"
//! src = "10.1.0.1-10.1.0.8"   # one address, a range a-b, or a CIDR
//! dst = "10.2.0.0/30"
//! proto = "tcp"               # tcp | udp | icmp
//! src_port = "1024-1031"      # one port or a range
//! dst_port = 80
//! vlan = 100                  # or [outer, inner] for QinQ (outer TPID 0x88a8)
//! weight = 1                  # share of packets among flows
//!
//! [duplicates]
//! ratio = 0.25                # fraction of originals sent twice
//! delay_us = 20               # the copy follows this long after (at rate_pps)
//! ttl_delta = -1              # copy's TTL / hop limit change
//! vlan = 101                  # copy's outer VLAN ID (a tag is added if none)
//! src_mac = "02:00:00:00:00:99"
//!
//! [tunnel]                    # wrap every frame (to feed decap mode)
//! kind = "vxlan"              # vxlan | geneve | gre | erspan2 | erspan3
//! src = "192.0.2.10"
//! dst = "192.0.2.1"
//! vni = 100                   # vxlan/geneve VNI, gre key, erspan session
//! ```
//!
//! Sizes are Ethernet frame sizes *with* the 4-byte FCS, as IMIX and RFC
//! 2544 count them: a `64` frame is 60 bytes in a capture. With a tunnel,
//! the size is the inner frame's; the outer headers come on top. A size
//! smaller than a flow's headers is an error; a frame whose payload has no
//! room for the 16-byte sequence stamp (a 64-byte TCP frame) is sent
//! without one, and its flow's sequence still counts it.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// Bytes the FCS adds on the wire to what a capture holds.
pub const FCS: usize = 4;

/// A profile that could not be read or is wrong; `path` names the key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("cannot read profile {file}: {reason}")]
    Read { file: String, reason: String },
    #[error("profile: {0}")]
    Toml(String),
    #[error("profile: {path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default = "default_packets")]
    packets: u64,
    #[serde(default = "default_rate")]
    rate_pps: u64,
    #[serde(default)]
    size: Option<RawSize>,
    #[serde(default = "yes")]
    sequence: bool,
    #[serde(default)]
    send_time: bool,
    #[serde(rename = "flow")]
    flows: Vec<RawFlow>,
    #[serde(default)]
    duplicates: Option<RawDuplicates>,
    #[serde(default)]
    tunnel: Option<RawTunnel>,
}

fn default_packets() -> u64 {
    1000
}
fn default_rate() -> u64 {
    1_000_000
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Fixed(u64),
    Named(String),
    Mix(Vec<(u64, u64)>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrRange {
    One(u64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawVlan {
    One(u16),
    Two(Vec<u16>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    #[serde(default)]
    name: Option<String>,
    src: String,
    dst: String,
    #[serde(default = "default_proto")]
    proto: String,
    #[serde(default)]
    src_port: Option<OneOrRange>,
    #[serde(default)]
    dst_port: Option<OneOrRange>,
    #[serde(default)]
    vlan: Option<RawVlan>,
    #[serde(default)]
    src_mac: Option<String>,
    #[serde(default)]
    dst_mac: Option<String>,
    #[serde(default = "default_ttl")]
    ttl: u8,
    #[serde(default = "one")]
    weight: u64,
}

fn default_proto() -> String {
    "udp".into()
}
fn default_ttl() -> u8 {
    64
}
fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDuplicates {
    ratio: f64,
    #[serde(default)]
    delay_us: f64,
    #[serde(default)]
    ttl_delta: i16,
    #[serde(default)]
    vlan: Option<u16>,
    #[serde(default)]
    src_mac: Option<String>,
    #[serde(default)]
    dst_mac: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    kind: String,
    src: IpAddr,
    dst: IpAddr,
    #[serde(default)]
    vni: Option<u32>,
    #[serde(default)]
    udp_port: Option<u16>,
    #[serde(default)]
    src_mac: Option<String>,
    #[serde(default)]
    dst_mac: Option<String>,
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo request (ICMPv6 for IPv6 flows); the source "port" is the echo ID.
    Icmp,
}

impl Proto {
    /// IP protocol number for this flow's IP version.
    pub fn number(self, v6: bool) -> u8 {
        match (self, v6) {
            (Proto::Tcp, _) => 6,
            (Proto::Udp, _) => 17,
            (Proto::Icmp, false) => 1,
            (Proto::Icmp, true) => 58,
        }
    }
}

/// An inclusive range of addresses, as integers (IPv4 in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub v6: bool,
    pub first: u128,
    pub count: u64,
}

impl AddrRange {
    /// The `i`-th address of the range.
    pub fn nth(&self, i: u64) -> IpAddr {
        let a = self.first + u128::from(i);
        if self.v6 {
            IpAddr::V6(a.into())
        } else {
            IpAddr::V4((a as u32).into())
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub count: u64,
}

/// VLAN tags of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vlan {
    None,
    Single(u16),
    /// QinQ: outer (TPID 0x88a8), inner (0x8100).
    Double(u16, u16),
}

/// One `[[flow]]`: every combination of its address and port ranges is a
/// distinct 5-tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub name: String,
    pub src: AddrRange,
    pub dst: AddrRange,
    pub proto: Proto,
    pub src_port: PortRange,
    pub dst_port: PortRange,
    pub vlan: Vlan,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub ttl: u8,
    pub weight: u64,
}

impl Flow {
    /// Distinct 5-tuples of this flow.
    pub fn tuples(&self) -> u64 {
        self.src.count * self.dst.count * self.src_port.count * self.dst_port.count
    }

    /// Whether the flow is IPv6.
    pub fn v6(&self) -> bool {
        self.src.v6
    }

    /// Bytes of headers before the payload (no FCS).
    pub fn header_len(&self) -> usize {
        let l2 = 14
            + match self.vlan {
                Vlan::None => 0,
                Vlan::Single(_) => 4,
                Vlan::Double(..) => 8,
            };
        let l3 = if self.v6() { 40 } else { 20 };
        let l4 = match self.proto {
            Proto::Tcp => 20,
            Proto::Udp | Proto::Icmp => 8,
        };
        l2 + l3 + l4
    }
}

/// What a copy of a duplicated packet looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    /// Fraction of originals that get one copy, in `[0, 1]`.
    pub ratio: f64,
    /// The copy's delay after its original.
    pub delay_ns: u64,
    pub ttl_delta: i16,
    pub vlan: Option<u16>,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
}

/// Tunnel kinds the generator can wrap frames in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    /// GRE with transparent Ethernet bridging (0x6558), with a key.
    Gre,
    Erspan2,
    Erspan3,
}

/// Outer headers for every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// VNI (VXLAN, Geneve), key (GRE) or session ID (ERSPAN).
    pub id: u32,
    pub udp_port: u16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

impl Tunnel {
    /// Outer header bytes added in front of the inner frame.
    pub fn overhead(&self) -> usize {
        let l3 = if self.src.is_ipv6() { 40 } else { 20 };
        14 + l3
            + match self.kind {
                TunnelKind::Vxlan | TunnelKind::Geneve => 16,
                TunnelKind::Gre => 8,
                TunnelKind::Erspan2 => 16,
                TunnelKind::Erspan3 => 20,
            }
    }
}

/// A checked profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Originals per cycle.
    pub packets: u64,
    pub rate_pps: u64,
    /// Frame sizes with FCS and their weights.
    pub sizes: Vec<(usize, u64)>,
    pub sequence: bool,
    /// A send-time field after each stamp (where the payload has room).
    pub send_time: bool,
    pub flows: Vec<Flow>,
    pub duplicates: Option<Duplicates>,
    pub tunnel: Option<Tunnel>,
}

/// Simple IMIX: 7 × 64, 4 × 594, 1 × 1518 bytes.
pub const IMIX: [(usize, u64); 3] = [(64, 7), (594, 4), (1518, 1)];

/// Largest frame size (with FCS) accepted: a jumbo frame still fits an mbuf chain.
pub const MAX_SIZE: usize = 9018;

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Profile::parse(&text)
    }

    /// Parses and checks profile text.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        resolve(raw)
    }

    /// Whether a frame of `size` (with FCS) of flow `f` carries a stamp.
    pub fn stamped(&self, f: &Flow, size: usize) -> bool {
        self.sequence && size >= f.header_len() + crate::stamp::LEN + FCS
    }

    /// Distinct 5-tuples over all flows.
    pub fn tuples(&self) -> u64 {
        self.flows.iter().map(Flow::tuples).sum()
    }
}

fn resolve(raw: RawProfile) -> Result<Profile, ProfileError> {
    if raw.packets == 0 {
        return Err(invalid("packets", "must be at least 1"));
    }
    if raw.rate_pps == 0 {
        return Err(invalid("rate_pps", "must be at least 1"));
    }
    let sizes = match raw.size {
        None => vec![(64, 1)],
        Some(RawSize::Fixed(n)) => vec![(n as usize, 1)],
        Some(RawSize::Named(s)) if s.eq_ignore_ascii_case("imix") => IMIX.to_vec(),
        Some(RawSize::Named(s)) => {
            return Err(invalid(
                "size",
                format!("{s:?} is not a size: give a number, \"imix\" or [[size, weight], ...]"),
            ))
        }
        Some(RawSize::Mix(m)) => m.into_iter().map(|(s, w)| (s as usize, w)).collect(),
    };
    if sizes.is_empty() {
        return Err(invalid("size", "the mix is empty"));
    }
    for (i, (s, w)) in sizes.iter().enumerate() {
        if !(64..=MAX_SIZE).contains(s) {
            return Err(invalid(
                format!("size[{i}]"),
                format!("{s} is outside 64..={MAX_SIZE} (sizes count the 4-byte FCS)"),
            ));
        }
        if *w == 0 {
            return Err(invalid(format!("size[{i}]"), "weight must be at least 1"));
        }
    }
    if raw.send_time && !raw.sequence {
        return Err(invalid(
            "send_time",
            "needs sequence = true (the send time follows the sequence stamp)",
        ));
    }
    if raw.flows.is_empty() {
        return Err(invalid("flow", "at least one [[flow]] is needed"));
    }
    let mut flows = Vec::with_capacity(raw.flows.len());
    let mut total: u64 = 0;
    for (i, f) in raw.flows.into_iter().enumerate() {
        let flow = resolve_flow(i, f)?;
        total = total.saturating_add(flow.tuples());
        if total > u64::from(u32::MAX) {
            return Err(invalid(
                format!("flow[{i}]"),
                "more than 2^32 - 1 distinct 5-tuples over all flows",
            ));
        }
        let min = flow.header_len() + FCS;
        for (s, _) in &sizes {
            if *s < min {
                return Err(invalid(
                    format!("flow[{i}]"),
                    format!(
                        "size {s} is too small for {} (its headers need {min} bytes with FCS)",
                        flow.name
                    ),
                ));
            }
        }
        flows.push(flow);
    }
    let duplicates = raw.duplicates.map(resolve_dups).transpose()?;
    let tunnel = raw.tunnel.map(resolve_tunnel).transpose()?;
    Ok(Profile {
        packets: raw.packets,
        rate_pps: raw.rate_pps,
        sizes,
        sequence: raw.sequence,
        send_time: raw.send_time,
        flows,
        duplicates,
        tunnel,
    })
}

fn resolve_flow(i: usize, f: RawFlow) -> Result<Flow, ProfileError> {
    let at = |k: &str| format!("flow[{i}].{k}");
    let src = parse_addrs(&f.src).map_err(|r| invalid(at("src"), r))?;
    let dst = parse_addrs(&f.dst).map_err(|r| invalid(at("dst"), r))?;
    if src.v6 != dst.v6 {
        return Err(invalid(
            at("dst"),
            "src and dst must be the same IP version",
        ));
    }
    let proto = match f.proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "icmp" | "icmpv6" => Proto::Icmp,
        other => {
            return Err(invalid(
                at("proto"),
                format!("{other:?} is not tcp, udp or icmp"),
            ))
        }
    };
    let src_port =
        parse_ports(f.src_port.as_ref(), 1024).map_err(|r| invalid(at("src_port"), r))?;
    let dst_port = parse_ports(f.dst_port.as_ref(), 80).map_err(|r| invalid(at("dst_port"), r))?;
    if proto == Proto::Icmp && dst_port.count != 1 {
        return Err(invalid(
            at("dst_port"),
            "ICMP has no ports (src_port is the echo ID)",
        ));
    }
    let vlan = match f.vlan {
        None => Vlan::None,
        Some(RawVlan::One(v)) => Vlan::Single(check_vlan(v).map_err(|r| invalid(at("vlan"), r))?),
        Some(RawVlan::Two(v)) if v.len() == 2 => Vlan::Double(
            check_vlan(v[0]).map_err(|r| invalid(at("vlan"), r))?,
            check_vlan(v[1]).map_err(|r| invalid(at("vlan"), r))?,
        ),
        Some(RawVlan::Two(_)) => {
            return Err(invalid(
                at("vlan"),
                "give one VLAN ID or [outer, inner] for QinQ",
            ))
        }
    };
    let src_mac = mac_or(f.src_mac.as_deref(), [0x02, 0, 0, 0, 0x01, i as u8])
        .map_err(|r| invalid(at("src_mac"), r))?;
    let dst_mac = mac_or(f.dst_mac.as_deref(), [0x02, 0, 0, 0, 0x02, 0x01])
        .map_err(|r| invalid(at("dst_mac"), r))?;
    if f.weight == 0 {
        return Err(invalid(at("weight"), "must be at least 1"));
    }
    Ok(Flow {
        name: f.name.unwrap_or_else(|| format!("flow{i}")),
        src,
        dst,
        proto,
        src_port,
        dst_port,
        vlan,
        src_mac,
        dst_mac,
        ttl: f.ttl,
        weight: f.weight,
    })
}

fn resolve_dups(d: RawDuplicates) -> Result<Duplicates, ProfileError> {
    if !(0.0..=1.0).contains(&d.ratio) {
        return Err(invalid("duplicates.ratio", "must be within 0..=1"));
    }
    if !(0.0..=1e9).contains(&d.delay_us) {
        return Err(invalid("duplicates.delay_us", "must be within 0..=1e9 µs"));
    }
    let vlan = d
        .vlan
        .map(check_vlan)
        .transpose()
        .map_err(|r| invalid("duplicates.vlan", r))?;
    let src_mac = d
        .src_mac
        .as_deref()
        .map(|m| mac_or(Some(m), [0; 6]))
        .transpose()
        .map_err(|r| invalid("duplicates.src_mac", r))?;
    let dst_mac = d
        .dst_mac
        .as_deref()
        .map(|m| mac_or(Some(m), [0; 6]))
        .transpose()
        .map_err(|r| invalid("duplicates.dst_mac", r))?;
    Ok(Duplicates {
        ratio: d.ratio,
        delay_ns: (d.delay_us * 1000.0).round() as u64,
        ttl_delta: d.ttl_delta,
        vlan,
        src_mac,
        dst_mac,
    })
}

fn resolve_tunnel(t: RawTunnel) -> Result<Tunnel, ProfileError> {
    let kind = match t.kind.to_ascii_lowercase().as_str() {
        "vxlan" => TunnelKind::Vxlan,
        "geneve" => TunnelKind::Geneve,
        "gre" | "l2gre" => TunnelKind::Gre,
        "erspan2" => TunnelKind::Erspan2,
        "erspan3" => TunnelKind::Erspan3,
        other => {
            return Err(invalid(
                "tunnel.kind",
                format!("{other:?} is not vxlan, geneve, gre, erspan2 or erspan3"),
            ))
        }
    };
    if t.src.is_ipv6() != t.dst.is_ipv6() {
        return Err(invalid(
            "tunnel.dst",
            "src and dst must be the same IP version",
        ));
    }
    let id = t.vni.unwrap_or(1);
    let max = match kind {
        TunnelKind::Vxlan | TunnelKind::Geneve => (1 << 24) - 1,
        TunnelKind::Gre => u32::MAX,
        TunnelKind::Erspan2 | TunnelKind::Erspan3 => 1023,
    };
    if id > max {
        return Err(invalid("tunnel.vni", format!("{id} is above {max}")));
    }
    let udp_port = t.udp_port.unwrap_or(match kind {
        TunnelKind::Geneve => 6081,
        _ => 4789,
    });
    Ok(Tunnel {
        kind,
        src: t.src,
        dst: t.dst,
        id,
        udp_port,
        src_mac: mac_or(t.src_mac.as_deref(), [0x02, 0, 0, 0, 0x0a, 0x01])
            .map_err(|r| invalid("tunnel.src_mac", r))?,
        dst_mac: mac_or(t.dst_mac.as_deref(), [0x02, 0, 0, 0, 0x0a, 0x02])
            .map_err(|r| invalid("tunnel.dst_mac", r))?,
    })
}

fn check_vlan(v: u16) -> Result<u16, String> {
    if (1..=4094).contains(&v) {
        Ok(v)
    } else {
        Err(format!("VLAN ID {v} is outside 1..=4094"))
    }
}

/// `aa:bb:cc:dd:ee:ff`, or `default` when absent.
fn mac_or(s: Option<&str>, default: [u8; 6]) -> Result<[u8; 6], String> {
    let Some(s) = s else { return Ok(default) };
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts
            .next()
            .ok_or_else(|| format!("{s:?} is not a MAC address"))?;
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s:?} is not a MAC address"));
    }
    Ok(out)
}

fn addr_bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u128::from(u32::from(v))),
        IpAddr::V6(v) => (true, u128::from(v)),
    }
}

/// One address, `first-last`, or a CIDR (every address in it).
fn parse_addrs(s: &str) -> Result<AddrRange, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not an address, a range a-b or a CIDR");
    if let Some((a, len)) = s.split_once('/') {
        let (v6, a) = addr_bits(a.trim().parse().map_err(|_| bad())?);
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.trim().parse().map_err(|_| bad())?;
        if len > bits {
            return Err(format!("{s:?}: prefix length above {bits}"));
        }
        let host = bits - len;
        if host > 32 {
            return Err(format!("{s:?}: more than 2^32 addresses"));
        }
        let mask = if host == 128 {
            0
        } else {
            !((1u128 << host) - 1)
        };
        return Ok(AddrRange {
            v6,
            first: a & mask,
            count: 1u64 << host,
        });
    }
    if let Some((a, b)) = s.split_once('-') {
        let (v6a, a) = addr_bits(a.trim().parse().map_err(|_| bad())?);
        let (v6b, b) = addr_bits(b.trim().parse().map_err(|_| bad())?);
        if v6a != v6b {
            return Err(format!("{s:?}: both ends must be the same IP version"));
        }
        if b < a {
            return Err(format!("{s:?}: the range ends before it starts"));
        }
        if b - a >= 1 << 32 {
            return Err(format!("{s:?}: more than 2^32 addresses"));
        }
        return Ok(AddrRange {
            v6: v6a,
            first: a,
            count: (b - a) as u64 + 1,
        });
    }
    let (v6, a) = addr_bits(s.parse().map_err(|_| bad())?);
    Ok(AddrRange {
        v6,
        first: a,
        count: 1,
    })
}

fn parse_ports(p: Option<&OneOrRange>, default: u16) -> Result<PortRange, String> {
    match p {
        None => Ok(PortRange {
            first: default,
            count: 1,
        }),
        Some(OneOrRange::One(n)) => {
            let n = u16::try_from(*n).map_err(|_| format!("port {n} is above 65535"))?;
            Ok(PortRange { first: n, count: 1 })
        }
        Some(OneOrRange::Text(s)) => {
            let bad = || format!("{s:?} is not a port or a range a-b");
            let (a, b) = match s.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (s.trim(), s.trim()),
            };
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if b < a {
                return Err(format!("{s:?}: the range ends before it starts"));
            }
            Ok(PortRange {
                first: a,
                count: u64::from(b - a) + 1,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\n";

    #[test]
    fn ranges_cidrs_and_defaults() {
        let p = Profile::parse(
            "packets = 5\nsize = \"imix\"\n[[flow]]\nsrc = \"10.0.0.0/30\"\ndst = \"10.1.0.1-10.1.0.3\"\nproto = \"udp\"\nsrc_port = \"100-109\"\nvlan = [10, 20]\n",
        )
        .unwrap();
        assert_eq!(p.sizes, IMIX.to_vec());
        let f = &p.flows[0];
        assert_eq!((f.src.count, f.dst.count, f.src_port.count), (4, 3, 10));
        assert_eq!(f.tuples(), 120);
        assert_eq!(f.src.nth(3).to_string(), "10.0.0.3");
        assert_eq!(f.vlan, Vlan::Double(10, 20));
        assert_eq!(
            f.dst_port,
            PortRange {
                first: 80,
                count: 1
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = Profile::parse("packets = 5\n[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"::1\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("flow[0].dst"), "{e}");
        let e = Profile::parse(&format!("size = 63\n{BASE}")).unwrap_err();
        assert!(e.to_string().contains("size[0]"), "{e}");
        let e = Profile::parse(&format!("{BASE}vlan = 4095\n")).unwrap_err();
        assert!(e.to_string().contains("flow[0].vlan"), "{e}");
        let e = Profile::parse(&format!("{BASE}[duplicates]\nratio = 1.5\n")).unwrap_err();
        assert!(e.to_string().contains("duplicates.ratio"), "{e}");
        let e = Profile::parse(&format!("{BASE}colour = 1\n")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        // IPv6 + TCP + QinQ headers do not fit 64 bytes.
        let e = Profile::parse(
            "[[flow]]\nsrc = \"2001:db8::1\"\ndst = \"2001:db8::2\"\nproto = \"tcp\"\nvlan = [1, 2]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }
}
