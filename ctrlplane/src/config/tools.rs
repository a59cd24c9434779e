//! Tool ports and `[[tool_group]]`: where tool destinations send, and
//! how a group spreads its flows over its member ports.

use std::collections::HashSet;

use dataplane::runtime::counters::MAX_TOOL_PORTS;
use dataplane::stage::balance::MAX_MEMBERS;
use serde::Deserialize;

use super::decap::DecapSection;
use super::ports::{PortMode, Role};
use super::raw::RawPort;

/// Which fields a group's symmetric flow hash covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum GroupHash {
    /// Addresses, ports and protocol.
    #[default]
    #[serde(rename = "5-tuple")]
    FiveTuple,
    /// Addresses only: every flow between two hosts reaches one member.
    #[serde(rename = "ip-pair")]
    IpPair,
    /// The five-tuple inside a VXLAN/Geneve/GRE/ERSPAN tunnel.
    #[serde(rename = "inner-5-tuple")]
    InnerFiveTuple,
}

/// A member as written: a tool port's name, or `{ port, weight }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawMember {
    Name(String),
    Weighted(WeightedMember),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WeightedMember {
    port: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

/// `[[tool_group]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToolGroup {
    name: String,
    members: Vec<RawMember>,
    #[serde(default)]
    hash: GroupHash,
    #[serde(default)]
    sticky: bool,
}

/// Most weight one member may have.
pub const MAX_WEIGHT: u32 = 1000;

/// A member of a tool group: a tool port and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolMember {
    pub port: String,
    /// 1..=1000: its share of the group's flows is weight / Σ weights.
    pub weight: u32,
}

/// `[[tool_group]]`: one tool destination spread over member tool ports
/// by a symmetric flow hash, failing over on link state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolGroupConfig {
    pub name: String,
    pub members: Vec<ToolMember>,
    pub hash: GroupHash,
    /// A member that comes back gets no flows back until the next rebuild
    /// without history (a reload): flows stay where failover put them.
    pub sticky: bool,
}

/// The typed groups; every problem with them or the tool ports added to
/// `p`, naming its key.
pub(super) fn check(
    raw: Vec<RawToolGroup>,
    ports: &[RawPort],
    decap: &DecapSection,
    p: &mut Vec<String>,
) -> Vec<ToolGroupConfig> {
    let tools: Vec<&str> = ports
        .iter()
        .filter(|x| x.role == Role::Tool)
        .map(|x| x.name.as_str())
        .collect();
    if tools.len() > MAX_TOOL_PORTS {
        p.push(format!(
            "port: {} ports have role = \"tool\", more than {MAX_TOOL_PORTS}",
            tools.len()
        ));
    }
    decap_tool(ports, &tools, decap, p);
    let mut names: HashSet<&str> = tools.iter().copied().collect();
    let mut groups = Vec::with_capacity(raw.len());
    for (i, g) in raw.iter().enumerate() {
        let key = format!("tool_group[{i}]");
        if g.name.trim().is_empty() {
            p.push(format!("{key}.name: must not be empty"));
        } else if !names.insert(g.name.as_str()) {
            p.push(format!(
                "{key}.name: {:?} is already the name of a tool port or tool group",
                g.name
            ));
        }
        if g.members.is_empty() {
            p.push(format!("{key}.members: a group needs at least one member"));
        }
        if g.members.len() > MAX_MEMBERS {
            p.push(format!(
                "{key}.members: {} members, more than {MAX_MEMBERS}",
                g.members.len()
            ));
        }
        let mut seen = HashSet::new();
        let mut members = Vec::with_capacity(g.members.len());
        for (j, m) in g.members.iter().enumerate() {
            let (port, weight) = match m {
                RawMember::Name(n) => (n, 1),
                RawMember::Weighted(w) => (&w.port, w.weight),
            };
            let mkey = format!("{key}.members[{j}]");
            if !tools.contains(&port.as_str()) {
                p.push(format!(
                    "{mkey}: {port:?} is not a tool port (tool ports: {})",
                    tools.join(", ")
                ));
            }
            if !seen.insert(port.as_str()) {
                p.push(format!("{mkey}: {port:?} is a member twice"));
            }
            if !(1..=MAX_WEIGHT).contains(&weight) {
                p.push(format!(
                    "{mkey}.weight: {weight} is outside 1..={MAX_WEIGHT}"
                ));
            }
            members.push(ToolMember {
                port: port.clone(),
                weight,
            });
        }
        groups.push(ToolGroupConfig {
            name: g.name.clone(),
            members,
            hash: g.hash,
            sticky: g.sticky,
        });
    }
    groups
}

/// `[decap] tool`: which tool port decap inputs send to. Required only
/// when there are several.
fn decap_tool(ports: &[RawPort], tools: &[&str], decap: &DecapSection, p: &mut Vec<String>) {
    let decaps = ports
        .iter()
        .any(|x| x.role == Role::Input && x.mode == PortMode::Decap);
    match &decap.tool {
        Some(t) if !tools.contains(&t.as_str()) => p.push(format!(
            "decap.tool: {t:?} is not a tool port (tool ports: {})",
            tools.join(", ")
        )),
        Some(_) if !decaps => {
            p.push("decap.tool: no input is in decap mode".into());
        }
        None if decaps && tools.len() > 1 => p.push(format!(
            "decap.tool: inputs in decap mode need to know which tool port is theirs ({})",
            tools.join(", ")
        )),
        _ => {}
    }
}
