//! The policy document as the operator or controller writes it (TOML or
//! JSON): the text a `policy` message carries. The controller checks that
//! it parses before serving it; the appliance validates and compiles it
//! (`ctrlplane::policy`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A policy text that is not TOML of this model (unknown keys included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {origin}: {reason}")]
pub struct SyntaxError {
    /// What the text came from (a file, a controller version).
    pub origin: String,
    /// The parser's message, on one line.
    pub reason: String,
}

/// Parses a TOML policy (without validating or compiling it); `origin`
/// names it in the error.
pub fn parse_toml(text: &str, origin: &str) -> Result<Policy, SyntaxError> {
    toml::from_str(text).map_err(|e| SyntaxError {
        origin: origin.to_owned(),
        reason: e.to_string().trim().replace('\n', " "),
    })
}

/// A whole policy: named address groups, destinations and ordered rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A label for this version of the policy (controller version, date…).
    #[serde(default)]
    pub version: String,
    /// What happens to packets no rule matches: `drop` (counted as filtered).
    #[serde(default)]
    pub default: DefaultAction,
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default, rename = "destination")]
    pub destinations: Vec<Destination>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Which packets the flow table meters (when the appliance has `[flows]`).
    #[serde(default, skip_serializing_if = "Metering::is_all")]
    pub metering: Metering,
}

/// Which packets flow metering counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metering {
    /// Every packet, but those of rules with `meter = false`.
    #[default]
    All,
    /// None.
    Off,
    /// Only those of rules with `meter = true`.
    Rules,
}

impl Metering {
    fn is_all(&self) -> bool {
        *self == Metering::All
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    #[default]
    Drop,
}

/// A named set of CIDRs with labels (host, service, pod, business unit…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Workloads of the controller's inventory whose labels include all of
    /// these: the controller adds their addresses to `cidrs` and removes
    /// this before it pushes the policy, so an appliance never sees it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workloads: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    Vxlan,
    Erspan2,
    Erspan3,
    L2gre,
    Geneve,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// Cut the inner frame so the tunnel packet fits the uplink MTU.
    #[default]
    Truncate,
    /// Drop it and count `dropped_too_big`.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SliceAfter {
    L4,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timestamp {
    /// ERSPAN III: ns within the second, seconds in the platform sub-header.
    #[default]
    Ieee1588,
    /// ERSPAN III: 100 µs ticks (what Linux sends).
    #[serde(rename = "100us")]
    Us100,
}

/// An analysis destination: a tunnel to a remote analyser (`tunnel` and
/// `remote`), or a tool port or tool group of the appliance (`port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelKind>,
    /// The tunnel's remote endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// A tool port or tool group of the appliance: copies leave there as
    /// captured (after strip and mask), with no tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Headers taken off every copy before it leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<StripLayer>,
    /// Destination MAC written into every copy (tool destinations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<String>,
    /// Bytes overwritten in every copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
    /// Which packets this destination takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
    /// VXLAN / Geneve network identifier.
    pub vni: Option<u32>,
    /// ERSPAN session ID.
    pub session: Option<u16>,
    /// L2GRE key.
    pub key: Option<u32>,
    /// VXLAN UDP destination port (4789).
    pub udp_port: Option<u16>,
    /// VXLAN extended mode: sequence and direction in reserved bits.
    #[serde(default)]
    pub extended: bool,
    /// ERSPAN III hardware ID; default: the appliance ID.
    pub hw_id: Option<u8>,
    #[serde(default)]
    pub timestamp: Timestamp,
    /// Keep the first N bytes (or N payload bytes with `slice_after = "l4"`).
    pub slice: Option<u16>,
    pub slice_after: Option<SliceAfter>,
    /// Drop copies seen within the dedup window before sending here.
    #[serde(default = "yes")]
    pub dedup: bool,
    pub rate_mbps: Option<u64>,
    pub rate_pps: Option<u64>,
    #[serde(default)]
    pub oversize: Oversize,
    #[serde(default)]
    pub dscp: u8,
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// 802.1Q tag on the uplink.
    pub vlan: Option<u16>,
}

/// A header kind `strip` takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripLayer {
    /// Every 802.1Q / 802.1ad tag.
    Vlan,
    /// The MPLS label stack.
    Mpls,
    /// VN-Tag and 802.1BR E-Tag.
    Vntag,
    /// An outer VXLAN, GRE, ERSPAN or Geneve tunnel.
    Tunnel,
}

/// Where a mask's offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskFrom {
    L2,
    L3,
    L4,
    Payload,
}

/// `length` bytes from `offset` past `from`, overwritten with `pattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub from: MaskFrom,
    #[serde(default)]
    pub offset: u16,
    pub length: u16,
    #[serde(default)]
    pub pattern: u8,
}

/// What a sampler counts 1 in N of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleBy {
    /// Every Nth packet.
    #[default]
    Packet,
    /// Whole flows, 1 in N by flow hash.
    Flow,
}

/// Keep 1 packet (or flow) in `one_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub one_in: u32,
    #[serde(default)]
    pub by: SampleBy,
}

fn yes() -> bool {
    true
}
fn default_ttl() -> u8 {
    64
}

/// A number or a `lo-hi` range, as written in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    One(u16),
    Range(String),
}

/// A VLAN ID, or `"untagged"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VlanSpec {
    Id(u16),
    Word(String),
}

/// An IP protocol by name (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `gre`) or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProtoSpec {
    Number(u8),
    Name(String),
}

/// One input port name or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortNames {
    One(String),
    Many(Vec<String>),
}

/// A destination of a rule, by name, optionally with its own slice, dedup and tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleTarget {
    Name(String),
    Detailed(TargetDetail),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDetail {
    pub dest: String,
    pub slice: Option<u16>,
    pub slice_after: Option<SliceAfter>,
    pub dedup: Option<bool>,
    /// VNI / ERSPAN session / GRE key for this rule's traffic.
    pub tag: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Forward,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionSpec {
    Ingress,
    Egress,
}

/// An ordered rule: every field given must match; first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Lower runs first; rules without one keep file order after those with one.
    pub priority: Option<u32>,
    pub in_port: Option<PortNames>,
    pub vlan: Option<VlanSpec>,
    pub ethertype: Option<u16>,
    pub ip_version: Option<u8>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub src_group: Option<String>,
    pub dst_group: Option<String>,
    pub proto: Option<ProtoSpec>,
    pub src_port: Option<PortSpec>,
    pub dst_port: Option<PortSpec>,
    /// Flags that must be set, `!flag` for flags that must be clear: `"syn,!ack"`.
    pub tcp_flags: Option<String>,
    pub direction: Option<DirectionSpec>,
    pub action: Option<RuleAction>,
    #[serde(default)]
    pub to: Vec<RuleTarget>,
    /// Which of the rule's packets go on to its destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
    /// Whether flow metering counts the rule's packets (see [`Metering`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<bool>,
}
