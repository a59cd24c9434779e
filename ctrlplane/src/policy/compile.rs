//! Validation and compilation of a [`Policy`] into the dataplane's tables.
//! Validation reports every problem with its path (`rule[3].dst_port`);
//! a policy with any problem compiles to nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::runtime::policy::{
    CompiledPolicy, Destination as DpDestination, Output, RateLimit, TunnelOut,
};
use dataplane::stage::encap::{
    OuterVlan, OversizePolicy, TimestampMode, TunnelConfig, VxlanExtendedConfig,
};
use dataplane::stage::filter::{
    Action, Cidr, Classifier, DestAction, Match, PortRange, Rule as FilterRule, TcpFlags, VlanMatch,
};
use dataplane::stage::mask::{Anchor, MaskSpec};
use dataplane::stage::sample::SampleSpec;
use dataplane::stage::slice::SliceSpec;
use dataplane::stage::strip::StripSpec;
use dataplane::stage::Direction;

use super::model::*;
use crate::config::{Route, Routes};

/// One thing wrong with a policy: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// What the policy may refer to on this appliance.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Input ports: operator name and the DPDK port id packets carry.
    pub ports: Vec<(String, u16)>,
    /// What tool destinations may name, in the order of the workers' tool
    /// tables (`Output::Tool` is the position): every tool port in config
    /// order, then every tool group.
    pub tools: Vec<String>,
    /// The uplinks' subnets, static routes and gateways: each tunnel's
    /// remote gets its uplink and next hop here, or the policy is refused.
    /// `None` where nothing is tunnelled (no input in tap mode: a decap
    /// front-end) or the appliance is not known (a policy checked alone):
    /// remotes are then not routed (uplink 0, the remote as next hop).
    pub routes: Option<Routes>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

/// Validates and compiles `policy`. Either every problem, or the tables.
pub fn compile(policy: &Policy, ctx: &Context) -> Result<CompiledPolicy, Vec<Problem>> {
    let mut pb = Problems(Vec::new());

    let mut groups: HashMap<&str, Vec<Cidr>> = HashMap::new();
    for (i, g) in policy.groups.iter().enumerate() {
        let path = format!("group[{i}]");
        if g.name.is_empty() {
            pb.add(format!("{path}.name"), "must not be empty");
        }
        if !g.workloads.is_empty() {
            pb.add(
                format!("{path}.workloads"),
                "selects workloads by label: only a controller with an inventory resolves it",
            );
        }
        let mut cidrs = Vec::new();
        for (j, c) in g.cidrs.iter().enumerate() {
            match parse_cidr(c) {
                Ok(c) => cidrs.push(c),
                Err(e) => pb.add(format!("{path}.cidrs[{j}]"), e),
            }
        }
        if groups.insert(g.name.as_str(), cidrs).is_some() {
            pb.add(
                format!("{path}.name"),
                format!("group {:?} is defined twice", g.name),
            );
        }
    }

    let mut dest_ids: HashMap<&str, u16> = HashMap::new();
    let mut dests = Vec::new();
    for (i, d) in policy.destinations.iter().enumerate() {
        let path = format!("destination[{i}]");
        if let Some(dd) = destination(d, &path, ctx, &mut pb) {
            dests.push(dd);
        }
        if d.name.is_empty() {
            pb.add(format!("{path}.name"), "must not be empty");
        }
        if dest_ids.insert(d.name.as_str(), i as u16).is_some() {
            pb.add(
                format!("{path}.name"),
                format!("destination {:?} is defined twice", d.name),
            );
        }
    }
    if policy.destinations.len() > usize::from(u16::MAX) {
        pb.add("destination", "more than 65535 destinations");
    }

    // Stable: rules with a priority first (lowest first), then the rest in file order.
    let mut order: Vec<usize> = (0..policy.rules.len()).collect();
    order.sort_by_key(|&i| {
        (
            policy.rules[i].priority.is_none(),
            policy.rules[i].priority.unwrap_or(0),
        )
    });

    let mut rules = Vec::with_capacity(policy.rules.len());
    let mut rule_names = Vec::with_capacity(policy.rules.len());
    let mut rule_samples = Vec::with_capacity(policy.rules.len());
    let mut rule_meters = Vec::with_capacity(policy.rules.len());
    for &i in &order {
        let r = &policy.rules[i];
        let path = format!("rule[{i}]");
        if r.name.is_empty() {
            pb.add(format!("{path}.name"), "must not be empty");
        }
        let id = rule_names.len() as u32;
        let matches = rule_match(r, &path, ctx, &groups, &mut pb);
        let action = rule_action(r, &path, &dest_ids, &policy.destinations, &mut pb);
        if let (Some(matches), Some(action)) = (matches, action) {
            rules.push(FilterRule {
                id,
                matches,
                action,
            });
        }
        rule_names.push(r.name.clone());
        rule_samples.push(
            r.sample
                .and_then(|x| sample_spec(&x, &format!("{path}.sample"), &mut pb)),
        );
        rule_meters.push(match policy.metering {
            Metering::All => r.meter != Some(false),
            Metering::Off => false,
            Metering::Rules => r.meter == Some(true),
        });
        if r.meter == Some(true) && policy.metering == Metering::Off {
            pb.add(format!("{path}.meter"), "the policy's metering is off");
        }
        if r.sample.is_some() && r.to.is_empty() {
            pb.add(
                format!("{path}.sample"),
                "a rule without destinations has nothing to sample",
            );
        }
    }

    if !pb.0.is_empty() {
        return Err(pb.0);
    }
    match Classifier::build(&rules, Action::Drop) {
        Ok(classifier) => Ok(CompiledPolicy {
            version: policy.version.clone(),
            classifier,
            destinations: dests,
            rule_samples,
            rule_meters,
            meter_default: policy.metering == Metering::All,
            rule_names,
        }),
        Err(e) => Err(vec![Problem {
            path: "rule".into(),
            reason: e.to_string(),
        }]),
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let c: Cidr = s
        .parse()
        .map_err(|e: dataplane::stage::filter::CidrParseError| e.to_string())?;
    if c.len > c.max_len() {
        return Err(format!(
            "prefix length {} is longer than {} for {}",
            c.len,
            c.max_len(),
            c.addr
        ));
    }
    Ok(c)
}

fn destination(
    d: &Destination,
    path: &str,
    ctx: &Context,
    pb: &mut Problems,
) -> Option<DpDestination> {
    let before = pb.0.len();
    let out = match (&d.port, d.tunnel, &d.remote) {
        (Some(port), None, None) => tool_out(d, port, path, ctx, pb),
        (None, Some(kind), Some(remote)) => {
            tunnel_out(d, kind, remote, path, ctx.routes.as_ref(), pb)
        }
        (Some(_), _, _) => {
            pb.add(
                format!("{path}.port"),
                "a destination is a tool port or group (port) or a tunnel (tunnel and remote), not both",
            );
            None
        }
        (None, tunnel, remote) => {
            let missing: Vec<&str> = [("tunnel", tunnel.is_none()), ("remote", remote.is_none())]
                .into_iter()
                .filter_map(|(k, m)| m.then_some(k))
                .collect();
            for k in missing {
                pb.add(
                    format!("{path}.{k}"),
                    "required for a tunnel destination (or give port = a tool port or group)",
                );
            }
            None
        }
    };
    if d.slice_after.is_some() && d.slice.is_none() {
        pb.add(
            format!("{path}.slice_after"),
            "needs slice = N (payload bytes to keep)",
        );
    }
    if d.rate_mbps == Some(0) || d.rate_pps == Some(0) {
        pb.add(
            format!("{path}.rate"),
            "a rate of 0 would drop everything: remove the rule instead",
        );
    }
    let mut strip = StripSpec::default();
    for layer in &d.strip {
        let flag = match layer {
            StripLayer::Vlan => &mut strip.vlan,
            StripLayer::Mpls => &mut strip.mpls,
            StripLayer::Vntag => &mut strip.vntag,
            StripLayer::Tunnel => &mut strip.tunnel,
        };
        if *flag {
            pb.add(
                format!("{path}.strip"),
                format!("{layer:?} is listed twice"),
            );
        }
        *flag = true;
    }
    if let Some(text) = &d.dst_mac {
        match crate::config::parse_mac(text) {
            Some(mac) => strip.dst_mac = Some(mac.0),
            None => pb.add(
                format!("{path}.dst_mac"),
                format!("{text:?} is not a MAC address such as 02:00:00:00:00:99"),
            ),
        }
    }
    let mask = d.mask.map(|m| mask_spec(&m, &format!("{path}.mask"), pb));
    let sample = d
        .sample
        .and_then(|x| sample_spec(&x, &format!("{path}.sample"), pb));
    let out = out?;
    if pb.0.len() != before {
        return None;
    }
    Some(DpDestination {
        name: d.name.clone(),
        out,
        strip,
        mask,
        sample,
        rate: RateLimit {
            mbps: d.rate_mbps,
            pps: d.rate_pps,
        },
    })
}

/// A tool destination's output: the index of its tool port or group; any
/// tunnel key is a problem.
fn tool_out(
    d: &Destination,
    port: &str,
    path: &str,
    ctx: &Context,
    pb: &mut Problems,
) -> Option<Output> {
    let tunnel_keys = [
        ("vni", d.vni.is_some()),
        ("session", d.session.is_some()),
        ("key", d.key.is_some()),
        ("udp_port", d.udp_port.is_some()),
        ("extended", d.extended),
        ("hw_id", d.hw_id.is_some()),
        ("timestamp", d.timestamp != Timestamp::default()),
        ("oversize", d.oversize != Oversize::default()),
        ("dscp", d.dscp != 0),
        ("ttl", d.ttl != 64),
        ("vlan", d.vlan.is_some()),
    ];
    for (key, _) in tunnel_keys.iter().filter(|(_, given)| *given) {
        pb.add(
            format!("{path}.{key}"),
            format!(
                "is a tunnel's, and {port:?} is a tool port or group: its copies leave as captured"
            ),
        );
    }
    match ctx.tools.iter().position(|t| t == port) {
        Some(i) => Some(Output::Tool(i as u16)),
        None => {
            pb.add(
                format!("{path}.port"),
                format!(
                    "no tool port or tool group named {port:?} (the appliance has {})",
                    if ctx.tools.is_empty() {
                        "none".to_owned()
                    } else {
                        ctx.tools.join(", ")
                    }
                ),
            );
            None
        }
    }
}

fn tunnel_out(
    d: &Destination,
    kind: TunnelKind,
    remote: &str,
    path: &str,
    routes: Option<&Routes>,
    pb: &mut Problems,
) -> Option<Output> {
    let before = pb.0.len();
    let remote: Option<IpAddr> = match remote.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            pb.add(
                format!("{path}.remote"),
                format!("{remote:?} is not an IP address"),
            );
            None
        }
    };
    let need = |pb: &mut Problems, v: bool, key: &str, why: &str| {
        if !v {
            pb.add(format!("{path}.{key}"), why.to_owned());
        }
    };
    let forbid = |pb: &mut Problems, present: bool, key: &str| {
        if present {
            pb.add(
                format!("{path}.{key}"),
                format!("does not apply to tunnel {kind:?}"),
            );
        }
    };
    let tunnel = match kind {
        TunnelKind::Vxlan | TunnelKind::Geneve => {
            need(pb, d.vni.is_some(), "vni", "required for this tunnel");
            forbid(pb, d.session.is_some(), "session");
            forbid(pb, d.key.is_some(), "key");
            if let Some(v) = d.vni {
                if v >= 1 << 24 {
                    pb.add(
                        format!("{path}.vni"),
                        format!("{v} does not fit in 24 bits"),
                    );
                }
            }
            let vni = d.vni.unwrap_or(0);
            if kind == TunnelKind::Vxlan {
                if d.udp_port == Some(0) {
                    pb.add(format!("{path}.udp_port"), "must not be 0");
                }
                TunnelConfig::Vxlan {
                    vni,
                    udp_dst_port: d.udp_port.unwrap_or(4789),
                    extended: d.extended.then(VxlanExtendedConfig::default),
                }
            } else {
                forbid(pb, d.udp_port.is_some(), "udp_port");
                forbid(pb, d.extended, "extended");
                TunnelConfig::Geneve { vni }
            }
        }
        TunnelKind::Erspan2 | TunnelKind::Erspan3 => {
            need(pb, d.session.is_some(), "session", "required for ERSPAN");
            forbid(pb, d.vni.is_some(), "vni");
            forbid(pb, d.key.is_some(), "key");
            forbid(pb, d.udp_port.is_some(), "udp_port");
            forbid(pb, d.extended, "extended");
            let session = d.session.unwrap_or(0);
            if session >= 1 << 10 {
                pb.add(
                    format!("{path}.session"),
                    format!("{session} does not fit in 10 bits"),
                );
            }
            if kind == TunnelKind::Erspan2 {
                forbid(pb, d.hw_id.is_some(), "hw_id");
                TunnelConfig::ErspanII { session }
            } else {
                if let Some(h) = d.hw_id {
                    if h >= 64 {
                        pb.add(
                            format!("{path}.hw_id"),
                            format!("{h} does not fit in 6 bits"),
                        );
                    }
                }
                TunnelConfig::ErspanIII {
                    session,
                    hw_id: d.hw_id,
                    timestamp: match d.timestamp {
                        Timestamp::Ieee1588 => TimestampMode::Ieee1588,
                        Timestamp::Us100 => TimestampMode::Us100,
                    },
                }
            }
        }
        TunnelKind::L2gre => {
            need(pb, d.key.is_some(), "key", "required for L2GRE");
            forbid(pb, d.vni.is_some(), "vni");
            forbid(pb, d.session.is_some(), "session");
            forbid(pb, d.udp_port.is_some(), "udp_port");
            forbid(pb, d.extended, "extended");
            TunnelConfig::L2Gre {
                key: d.key.unwrap_or(0),
            }
        }
    };
    if d.dscp > 63 {
        pb.add(
            format!("{path}.dscp"),
            format!("{} does not fit in 6 bits", d.dscp),
        );
    }
    if d.ttl == 0 {
        pb.add(format!("{path}.ttl"), "must not be 0");
    }
    if let Some(v) = d.vlan {
        if !(1..=4094).contains(&v) {
            pb.add(format!("{path}.vlan"), format!("{v} is outside 1..=4094"));
        }
    }
    if d.dst_mac.is_some() {
        pb.add(
            format!("{path}.dst_mac"),
            "rewrites a tool's frames: a tunnel's outer MAC is its next hop's",
        );
    }
    let route = remote.and_then(|r| {
        let Some(routes) = routes else {
            return Some(Route {
                uplink: 0,
                next_hop: r,
            });
        };
        let route = routes.route(r);
        if route.is_none() {
            let why = if routes.is_empty() {
                "the appliance has no uplink".to_owned()
            } else {
                format!(
                    "it is on no subnet or static route of the uplinks ({}), and none of them has a gateway of its family",
                    routes.names().collect::<Vec<_>>().join(", ")
                )
            };
            pb.add(
                format!("{path}.remote"),
                format!("destination {:?}: no uplink reaches {r}: {why}", d.name),
            );
        }
        route
    });
    if pb.0.len() != before {
        return None;
    }
    let route = route?;
    Some(Output::Tunnel(TunnelOut {
        tunnel,
        remote: remote?,
        uplink: route.uplink,
        next_hop: route.next_hop,
        dscp: d.dscp,
        ttl: d.ttl,
        vlan: d.vlan.map(|vid| OuterVlan { vid, pcp: 0 }),
        oversize: match d.oversize {
            Oversize::Truncate => OversizePolicy::TruncateToMtu,
            Oversize::Drop => OversizePolicy::Drop,
        },
    }))
}

fn mask_spec(m: &Mask, path: &str, pb: &mut Problems) -> MaskSpec {
    if m.length == 0 {
        pb.add(format!("{path}.length"), "must be at least 1");
    }
    MaskSpec {
        anchor: match m.from {
            MaskFrom::L2 => Anchor::L2,
            MaskFrom::L3 => Anchor::L3,
            MaskFrom::L4 => Anchor::L4,
            MaskFrom::Payload => Anchor::Payload,
        },
        offset: m.offset,
        len: m.length,
        pattern: m.pattern,
    }
}

fn sample_spec(x: &Sample, path: &str, pb: &mut Problems) -> Option<SampleSpec> {
    if x.one_in == 0 {
        pb.add(
            format!("{path}.one_in"),
            "must be at least 1 (1 keeps every packet)",
        );
        return None;
    }
    Some(match x.by {
        SampleBy::Packet => SampleSpec::OneInN(x.one_in),
        SampleBy::Flow => SampleSpec::FlowHash { one_in: x.one_in },
    })
}

fn slice_spec(slice: Option<u16>, after: Option<SliceAfter>) -> SliceSpec {
    match (slice, after) {
        (Some(n), Some(SliceAfter::L4)) => SliceSpec::AfterL4(n),
        (Some(n), None) => SliceSpec::Bytes(n),
        (None, _) => SliceSpec::Whole,
    }
}

fn port_range(spec: &PortSpec) -> Result<PortRange, String> {
    match spec {
        PortSpec::One(p) => Ok(PortRange::single(*p)),
        PortSpec::Range(s) => {
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            let lo: u16 = lo
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a port or lo-hi range"))?;
            let hi: u16 = hi
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a port or lo-hi range"))?;
            if lo > hi {
                return Err(format!("{s:?}: {lo} is above {hi}"));
            }
            Ok(PortRange::new(lo, hi))
        }
    }
}

fn protocol(p: &ProtoSpec) -> Result<u8, String> {
    match p {
        ProtoSpec::Number(n) => Ok(*n),
        ProtoSpec::Name(n) => match n.to_ascii_lowercase().as_str() {
            "icmp" => Ok(1),
            "tcp" => Ok(6),
            "udp" => Ok(17),
            "gre" => Ok(47),
            "icmpv6" => Ok(58),
            "sctp" => Ok(132),
            other => Err(format!(
                "{other:?} is not one of tcp, udp, icmp, icmpv6, sctp, gre or a number"
            )),
        },
    }
}

fn tcp_flags(s: &str) -> Result<TcpFlags, String> {
    let mut f = TcpFlags { value: 0, mask: 0 };
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let (clear, name) = match word.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, word),
        };
        let bit = match name.to_ascii_lowercase().as_str() {
            "fin" => TcpFlags::FIN,
            "syn" => TcpFlags::SYN,
            "rst" => TcpFlags::RST,
            "psh" => TcpFlags::PSH,
            "ack" => TcpFlags::ACK,
            "urg" => TcpFlags::URG,
            "ece" => TcpFlags::ECE,
            "cwr" => TcpFlags::CWR,
            other => {
                return Err(format!(
                    "{other:?} is not a TCP flag (fin syn rst psh ack urg ece cwr)"
                ))
            }
        };
        f.mask |= bit;
        if !clear {
            f.value |= bit;
        }
    }
    if f.mask == 0 {
        return Err(format!("{s:?} names no flag"));
    }
    Ok(f)
}

fn addresses(
    cidr: &Option<String>,
    group: &Option<String>,
    key: &str,
    path: &str,
    groups: &HashMap<&str, Vec<Cidr>>,
    pb: &mut Problems,
) -> Option<Option<Vec<Cidr>>> {
    match (cidr, group) {
        (Some(_), Some(_)) => {
            pb.add(
                format!("{path}.{key}"),
                format!("give {key} or {key}_group, not both"),
            );
            None
        }
        (Some(c), None) => match parse_cidr(c) {
            Ok(c) => Some(Some(vec![c])),
            Err(e) => {
                pb.add(format!("{path}.{key}"), e);
                None
            }
        },
        (None, Some(g)) => match groups.get(g.as_str()) {
            Some(c) => Some(Some(c.clone())),
            None => {
                pb.add(
                    format!("{path}.{key}_group"),
                    format!("no group named {g:?}"),
                );
                None
            }
        },
        (None, None) => Some(None),
    }
}

fn rule_match(
    r: &Rule,
    path: &str,
    ctx: &Context,
    groups: &HashMap<&str, Vec<Cidr>>,
    pb: &mut Problems,
) -> Option<Match> {
    let before = pb.0.len();
    let mut m = Match::default();
    if let Some(names) = &r.in_port {
        let names: Vec<&String> = match names {
            PortNames::One(n) => vec![n],
            PortNames::Many(v) => v.iter().collect(),
        };
        let mut ranges = Vec::new();
        for n in names {
            match ctx.ports.iter().find(|(name, _)| name == n) {
                Some((_, id)) => ranges.push(PortRange::single(*id)),
                None => {
                    let known: Vec<&str> = ctx.ports.iter().map(|(n, _)| n.as_str()).collect();
                    pb.add(
                        format!("{path}.in_port"),
                        format!(
                            "no input port named {n:?} (input ports: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        m.in_ports = Some(ranges);
    }
    m.vlan = match &r.vlan {
        None => None,
        Some(VlanSpec::Id(v)) if *v <= 4095 => Some(VlanMatch::Id(*v)),
        Some(VlanSpec::Id(v)) => {
            pb.add(format!("{path}.vlan"), format!("{v} is outside 0..=4095"));
            None
        }
        Some(VlanSpec::Word(w)) if w == "untagged" => Some(VlanMatch::Untagged),
        Some(VlanSpec::Word(w)) => {
            pb.add(
                format!("{path}.vlan"),
                format!("{w:?} is neither a VLAN ID nor \"untagged\""),
            );
            None
        }
    };
    m.ethertype = r.ethertype;
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            pb.add(
                format!("{path}.ip_version"),
                format!("{v} is neither 4 nor 6"),
            );
        }
        m.ip_version = Some(v);
    }
    if let Some(src) = addresses(&r.src, &r.src_group, "src", path, groups, pb) {
        m.src = src;
    }
    if let Some(dst) = addresses(&r.dst, &r.dst_group, "dst", path, groups, pb) {
        m.dst = dst;
    }
    if let Some(p) = &r.proto {
        match protocol(p) {
            Ok(p) => m.proto = Some(p),
            Err(e) => pb.add(format!("{path}.proto"), e),
        }
    }
    for (key, spec, slot) in [
        ("src_port", &r.src_port, &mut m.src_port),
        ("dst_port", &r.dst_port, &mut m.dst_port),
    ] {
        if let Some(s) = spec {
            match port_range(s) {
                Ok(pr) => *slot = Some(pr),
                Err(e) => pb.add(format!("{path}.{key}"), e),
            }
        }
    }
    if let Some(f) = &r.tcp_flags {
        match tcp_flags(f) {
            Ok(f) => m.tcp_flags = Some(f),
            Err(e) => pb.add(format!("{path}.tcp_flags"), e),
        }
    }
    m.direction = r.direction.map(|d| match d {
        DirectionSpec::Ingress => Direction::Ingress,
        DirectionSpec::Egress => Direction::Egress,
    });
    (pb.0.len() == before).then_some(m)
}

fn rule_action(
    r: &Rule,
    path: &str,
    dest_ids: &HashMap<&str, u16>,
    dests: &[Destination],
    pb: &mut Problems,
) -> Option<Action> {
    let action = r.action.unwrap_or(if r.to.is_empty() {
        RuleAction::Drop
    } else {
        RuleAction::Forward
    });
    match action {
        RuleAction::Drop => {
            if !r.to.is_empty() {
                pb.add(format!("{path}.to"), "a drop rule has no destinations");
                return None;
            }
            Some(Action::Drop)
        }
        RuleAction::Forward => {
            if r.to.is_empty() {
                pb.add(
                    format!("{path}.to"),
                    "a forward rule needs at least one destination",
                );
                return None;
            }
            let before = pb.0.len();
            let mut out: Vec<DestAction> = Vec::new();
            for (j, t) in r.to.iter().enumerate() {
                let (name, detail) = match t {
                    RuleTarget::Name(n) => (n, None),
                    RuleTarget::Detailed(d) => (&d.dest, Some(d)),
                };
                let Some(&id) = dest_ids.get(name.as_str()) else {
                    pb.add(
                        format!("{path}.to[{j}]"),
                        format!("no destination named {name:?}"),
                    );
                    continue;
                };
                if out.iter().any(|a| a.dest == id) {
                    pb.add(
                        format!("{path}.to[{j}]"),
                        format!("destination {name:?} is listed twice"),
                    );
                    continue;
                }
                let d = &dests[usize::from(id)];
                let (slice, after) = match detail {
                    Some(TargetDetail {
                        slice: Some(s),
                        slice_after,
                        ..
                    }) => (Some(*s), *slice_after),
                    _ => (d.slice, d.slice_after),
                };
                if detail.is_some_and(|t| t.slice_after.is_some() && t.slice.is_none()) {
                    pb.add(format!("{path}.to[{j}].slice_after"), "needs slice = N");
                }
                out.push(DestAction {
                    dest: id,
                    slice: slice_spec(slice, after),
                    dedup: detail.and_then(|t| t.dedup).unwrap_or(d.dedup),
                    tag: detail.and_then(|t| t.tag),
                });
            }
            (pb.0.len() == before).then_some(Action::Forward(out))
        }
    }
}
