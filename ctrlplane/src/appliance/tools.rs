//! Tool ports and tool groups on the main lcore: the workers' tool tables
//! (`Tables::tools`: every tool port as a group of one, then every tool
//! group), rebuilt when a tool port's link goes down or comes back so its
//! flows fail over at once, and `show tool-group`.

use std::fmt::Write;
use std::sync::Arc;

use dataplane::dpdk::Port;
use dataplane::runtime::snapshot::Snapshot;
use dataplane::runtime::tables::ToolTable;
use dataplane::stage::balance::{FlowFields, FlowHasher, GroupTable, SLOTS};
use dataplane::stage::decap::DecapConfig;

use crate::config::{Config, GroupHash, PortConfig};
use crate::log::log;

/// A tool port as the groups see it.
#[derive(Debug, Clone)]
pub struct ToolPort {
    pub name: String,
    /// Its DPDK port id.
    pub id: u16,
    /// The device's link, at the last look.
    pub link_up: bool,
    /// Taken down from the console on a device that cannot set its link.
    pub held_down: bool,
    /// The longest untagged frame it carries: its MTU plus the Ethernet
    /// header (as the workers read it from its TX queue).
    pub max_frame: usize,
}

impl ToolPort {
    /// Whether its groups send to it.
    pub fn live(&self) -> bool {
        self.link_up && !self.held_down
    }
}

/// A tool port (a group of one) or a tool group: its members as tool port
/// indexes, their weights and the group's flow hash.
#[derive(Debug, Clone)]
struct ToolSet {
    name: String,
    group: bool,
    members: Vec<u16>,
    weights: Vec<u32>,
    hash: GroupHash,
    sticky: bool,
    hasher: FlowHasher,
}

/// The tool ports, the sets built over them, and the tables published.
#[derive(Debug)]
pub struct Tools {
    ports: Vec<ToolPort>,
    sets: Vec<ToolSet>,
    tables: Arc<[ToolTable]>,
}

fn fields(h: GroupHash) -> FlowFields {
    match h {
        GroupHash::FiveTuple => FlowFields::FiveTuple,
        GroupHash::IpPair => FlowFields::IpPair,
        GroupHash::InnerFiveTuple => FlowFields::InnerFiveTuple,
    }
}

impl Tools {
    /// The config's tool ports and groups over the opened `ports`, with
    /// each tool port's link as it is now.
    pub fn new(
        cfg: &Config,
        ports: &[(PortConfig, Port)],
        tunnels: &DecapConfig,
    ) -> Result<Tools, String> {
        let tool_ports = cfg
            .tool_ports()
            .filter_map(|t| ports.iter().find(|(pc, _)| pc.name == t.name))
            .map(|(pc, p)| ToolPort {
                name: pc.name.clone(),
                id: p.id(),
                link_up: p.link().is_ok_and(|l| l.up),
                held_down: false,
                max_frame: usize::from(p.mtu().unwrap_or(1500)) + 14,
            })
            .collect();
        Tools::build(cfg, tool_ports, tunnels)
    }

    /// The sets of `cfg` over `ports` (the config's tool ports, in order).
    fn build(cfg: &Config, ports: Vec<ToolPort>, tunnels: &DecapConfig) -> Result<Tools, String> {
        let hasher = |name: &str, h: GroupHash| {
            FlowHasher::new(fields(h), tunnels)
                .map_err(|e| format!("tool group {name:?}: its flow hash: {e}"))
        };
        let mut sets = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            sets.push(ToolSet {
                name: p.name.clone(),
                group: false,
                members: vec![i as u16],
                weights: vec![1],
                hash: GroupHash::FiveTuple,
                sticky: false,
                hasher: hasher(&p.name, GroupHash::FiveTuple)?,
            });
        }
        for g in &cfg.tool_groups {
            let members = g
                .members
                .iter()
                .map(|m| {
                    ports
                        .iter()
                        .position(|p| p.name == m.port)
                        .map(|i| i as u16)
                        .ok_or_else(|| {
                            format!("tool group {:?}: no tool port {:?}", g.name, m.port)
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            sets.push(ToolSet {
                name: g.name.clone(),
                group: true,
                members,
                weights: g.members.iter().map(|m| m.weight).collect(),
                hash: g.hash,
                sticky: g.sticky,
                hasher: hasher(&g.name, g.hash)?,
            });
        }
        let mut tools = Tools {
            ports,
            sets,
            tables: Arc::from([]),
        };
        tools.relayout();
        Ok(tools)
    }

    fn table(&self, s: &ToolSet, previous: Option<&ToolTable>) -> ToolTable {
        let live: Vec<bool> = s
            .members
            .iter()
            .map(|&m| self.ports[usize::from(m)].live())
            .collect();
        ToolTable {
            name: s.name.clone(),
            members: s.members.clone(),
            table: GroupTable::build(
                &s.weights,
                &live,
                previous.and_then(|p| p.table.as_ref()),
                s.sticky,
            ),
            hasher: s.hasher.clone(),
            max_frame: s
                .members
                .iter()
                .zip(&live)
                .filter(|(_, live)| **live)
                .map(|(&m, _)| self.ports[usize::from(m)].max_frame)
                .min()
                .unwrap_or(0),
        }
    }

    /// Lays every table out afresh, without history: a sticky group's
    /// members that came back get their share again (a policy load).
    pub fn relayout(&mut self) {
        self.tables = self.sets.iter().map(|s| self.table(s, None)).collect();
    }

    /// The tables to publish, indexed by `Output::Tool`.
    pub fn tables(&self) -> Arc<[ToolTable]> {
        Arc::clone(&self.tables)
    }

    pub fn ports(&self) -> &[ToolPort] {
        &self.ports
    }

    /// The tool ports' names, by tool port index.
    pub fn port_names(&self) -> Vec<String> {
        self.ports.iter().map(|p| p.name.clone()).collect()
    }

    /// The tool ports' then the groups' names, by `Output::Tool` index.
    pub fn set_names(&self) -> Vec<&str> {
        self.sets.iter().map(|s| s.name.as_str()).collect()
    }

    /// Reads every tool port's link (`link_up` of its port id); when one
    /// changed, rebuilds the tables it is a member of, each from its
    /// current one, so that only its flows move. Whether any table changed
    /// (the caller publishes at once).
    pub fn refresh(&mut self, link_up: impl Fn(u16) -> bool) -> bool {
        let mut changed = Vec::new();
        for (i, p) in self.ports.iter_mut().enumerate() {
            let up = link_up(p.id);
            if up != p.link_up {
                let was = p.live();
                p.link_up = up;
                if was != p.live() {
                    changed.push(i as u16);
                }
            }
        }
        self.rebuild(&changed)
    }

    /// Holds tool port `index` down (or lets it follow its link again),
    /// for a device that cannot set its link. Whether any table changed.
    pub fn hold(&mut self, index: usize, down: bool) -> bool {
        let Some(p) = self.ports.get_mut(index) else {
            return false;
        };
        let was = p.live();
        p.held_down = down;
        let changed = if was == p.live() {
            Vec::new()
        } else {
            vec![index as u16]
        };
        self.rebuild(&changed)
    }

    fn rebuild(&mut self, ports: &[u16]) -> bool {
        if ports.is_empty() {
            return false;
        }
        let tables: Arc<[ToolTable]> = self
            .sets
            .iter()
            .zip(self.tables.iter())
            .map(|(s, t)| {
                if s.members.iter().any(|m| ports.contains(m)) {
                    self.table(s, Some(t))
                } else {
                    t.clone()
                }
            })
            .collect();
        for &i in ports {
            let p = &self.ports[usize::from(i)];
            let groups: Vec<&str> = self
                .sets
                .iter()
                .filter(|s| s.group && s.members.contains(&i))
                .map(|s| s.name.as_str())
                .collect();
            log(format!(
                "tool port {:?} {}: {}",
                p.name,
                if p.live() { "live again" } else { "down" },
                if groups.is_empty() {
                    "in no group".to_owned()
                } else {
                    format!("tool group(s) {} rebuilt", groups.join(", "))
                }
            ));
        }
        self.tables = tables;
        true
    }

    /// The index of the tool port whose DPDK port id is `id`.
    pub fn index_of_id(&self, id: u16) -> Option<usize> {
        self.ports.iter().position(|p| p.id == id)
    }

    /// `show tool-group [NAME]`: each group (and tool port) with its
    /// members, their weight, link, share of the flows and counters.
    pub fn show(&self, snap: &Snapshot, name: Option<&str>) -> String {
        let mut s = String::new();
        for (set, t) in self.sets.iter().zip(self.tables.iter()) {
            if name.is_some_and(|n| n != set.name) {
                continue;
            }
            let shares = t.table.as_ref().map(GroupTable::shares);
            let _ = writeln!(
                s,
                "  {} {}: {} member(s), hash {}{}{}",
                if set.group { "tool group" } else { "tool port" },
                set.name,
                set.members.len(),
                hash_name(set.hash),
                if set.sticky { ", sticky" } else { "" },
                if t.table.is_none() {
                    "; no live member: copies count dropped_no_tool"
                } else {
                    ""
                }
            );
            for (j, (&m, &w)) in set.members.iter().zip(&set.weights).enumerate() {
                let p = &self.ports[usize::from(m)];
                let share = shares.as_ref().and_then(|v| v.get(j)).copied().unwrap_or(0);
                let c = snap.tool_ports.get(usize::from(m));
                let _ = writeln!(
                    s,
                    "    {:<12} port {:<3} weight {:<4} link {:<4} {:<8} share {:>5.1}%  tx_packets {} tx_bytes {} dropped_tx_full {}",
                    p.name,
                    p.id,
                    w,
                    if p.link_up { "up" } else { "down" },
                    if p.live() {
                        "live"
                    } else if p.held_down {
                        "held"
                    } else {
                        "not-live"
                    },
                    share as f64 * 100.0 / SLOTS as f64,
                    c.map_or(0, |c| c.tx_packets),
                    c.map_or(0, |c| c.tx_bytes),
                    c.map_or(0, |c| c.dropped_tx_full),
                );
            }
        }
        if s.is_empty() {
            let names: Vec<&str> = self.sets.iter().map(|x| x.name.as_str()).collect();
            s = match name {
                Some(n) => format!(
                    "no tool group or tool port {n:?}; there are: {}\n",
                    names.join(", ")
                ),
                None => "no tool port or tool group\n".into(),
            };
        }
        s
    }
}

fn hash_name(h: GroupHash) -> &'static str {
    match h {
        GroupHash::FiveTuple => "5-tuple",
        GroupHash::IpPair => "ip-pair",
        GroupHash::InnerFiveTuple => "inner-5-tuple",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::runtime::snapshot::CounterBlocks;

    const CFG: &str = r#"
        [[port]]
        name = "tap0"
        device = "net_null0"
        role = "input"
        [[port]]
        name = "ids1"
        device = "net_null1"
        role = "tool"
        [[port]]
        name = "ids2"
        device = "net_null2"
        role = "tool"
        [[port]]
        name = "ids3"
        device = "net_null3"
        role = "tool"
        [[tool_group]]
        name = "farm"
        members = ["ids1", "ids2", { port = "ids3", weight = 2 }]
    "#;

    fn tools(sticky: bool) -> Tools {
        let text = if sticky {
            format!("{CFG}\n        sticky = true\n")
        } else {
            CFG.to_owned()
        };
        let cfg = Config::parse(&text, "t").expect("config");
        let ports = ["ids1", "ids2", "ids3"]
            .iter()
            .enumerate()
            .map(|(i, n)| ToolPort {
                name: (*n).into(),
                id: 10 + i as u16,
                link_up: true,
                held_down: false,
                max_frame: 1500 + 100 * i + 14,
            })
            .collect();
        Tools::build(&cfg, ports, &DecapConfig::default()).expect("tools")
    }

    fn shares(t: &Tools, i: usize) -> Vec<usize> {
        t.tables()[i]
            .table
            .as_ref()
            .map(GroupTable::shares)
            .unwrap_or_default()
    }

    #[test]
    fn tool_ports_then_groups_by_weight() {
        let t = tools(false);
        let tables = t.tables();
        let names: Vec<&str> = tables.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["ids1", "ids2", "ids3", "farm"]);
        assert_eq!(tables[1].members, [1]);
        assert_eq!(tables[3].members, [0, 1, 2]);
        assert_eq!(shares(&t, 3), [SLOTS / 4, SLOTS / 4, SLOTS / 2]);
        assert_eq!(tables[2].max_frame, 1714);
        assert_eq!(tables[3].max_frame, 1514, "the smallest member's");
    }

    #[test]
    fn a_member_whose_link_goes_down_fails_over_and_comes_back() {
        let mut t = tools(false);
        assert!(!t.refresh(|_| true), "no change, no rebuild");
        assert!(t.refresh(|id| id != 11));
        let down = shares(&t, 3);
        assert_eq!((down[1], down.iter().sum::<usize>()), (0, SLOTS));
        assert!(t.tables()[1].table.is_none(), "ids2 alone: no live member");
        assert!(t
            .show(&CounterBlocks::default().read(&[]), Some("farm"))
            .contains("not-live"));
        assert!(t.refresh(|_| true));
        assert_eq!(shares(&t, 3), [SLOTS / 4, SLOTS / 4, SLOTS / 2]);
    }

    #[test]
    fn a_sticky_group_keeps_failed_over_flows_and_a_hold_counts_as_down() {
        let mut t = tools(true);
        assert!(t.hold(0, true));
        let held = shares(&t, 3);
        assert_eq!(held[0], 0);
        assert_eq!(t.tables()[3].max_frame, 1614, "ids1, the smallest, is down");
        assert!(t.hold(0, false));
        assert_eq!(shares(&t, 3), held, "sticky: flows stay where they went");
        assert!(!t.hold(0, false));
        t.relayout();
        assert_eq!(shares(&t, 3), [SLOTS / 4, SLOTS / 4, SLOTS / 2]);
    }
}
