//! The appliance's own ports (not the taps): selection by DPDK port id for
//! the console, and their link and queue state as DPDK's events report it
//! — a vhost-user peer connecting or going away, a NIC's cable. The main
//! lcore logs each change; the console, Prometheus and telemetry show the
//! counts.

use dataplane::dpdk::events::{self, PortEvents};
use dataplane::dpdk::Port;
use dataplane::runtime::snapshot::PortCounts;

use crate::cli::grammar::{PortRef, PortSel};
use crate::config::PortConfig;
use crate::log::log;

/// The opened ports, in config order.
pub struct Ports {
    list: Vec<(PortConfig, Port)>,
    /// Each port's events at the last look, to log what changed.
    events: Vec<PortEvents>,
}

impl Ports {
    pub fn new(list: Vec<(PortConfig, Port)>) -> Ports {
        let events = list.iter().map(|(_, p)| events::of(p.id())).collect();
        Ports { list, events }
    }

    pub fn list(&self) -> &[(PortConfig, Port)] {
        &self.list
    }

    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.list.iter().map(|(_, p)| p.id())
    }

    /// Each port's counters and events, for a snapshot.
    pub fn counts(&self) -> Vec<PortCounts> {
        self.list
            .iter()
            .map(|(pc, p)| PortCounts {
                id: p.id(),
                name: pc.name.clone(),
                role: format!("{:?}", pc.role),
                stats: p.stats().map_err(|e| e.to_string()),
                events: events::of(p.id()),
            })
            .collect()
    }

    /// `f` for the selected ports (by DPDK port id); an unknown id gets
    /// the list of known ones, `others` (the taps) included.
    pub fn each(
        &self,
        sel: PortSel,
        others: &[u16],
        f: impl Fn(&PortConfig, &Port) -> String,
    ) -> String {
        match sel {
            PortSel::All => self.list.iter().map(|(pc, p)| f(pc, p)).collect(),
            PortSel::One(id) => match self.list.iter().find(|(_, p)| p.id() == id) {
                Some((pc, p)) => f(pc, p),
                None => {
                    let ids: Vec<String> = self
                        .ids()
                        .chain(others.iter().copied())
                        .map(|id| id.to_string())
                        .collect();
                    format!("no port {id}; ports are {} or all\n", ids.join(", "))
                }
            },
        }
    }

    /// Logs what changed on each port since the last look; returns the
    /// ports whose link changed (id, name, up now).
    pub fn watch(&mut self) -> Vec<(u16, String, bool)> {
        let mut changed = Vec::new();
        for (i, (pc, p)) in self.list.iter().enumerate() {
            let now = events::of(p.id());
            let Some(was) = self.events.get_mut(i) else {
                continue;
            };
            if now == *was {
                continue;
            }
            let ups = now.link_ups - was.link_ups;
            let downs = now.link_downs - was.link_downs;
            if ups + downs > 0 {
                changed.push((p.id(), pc.name.clone(), now.link_up));
                log(format!(
                    "port {} {:?}: link {} ({} up and {} down event(s) so far){}",
                    p.id(),
                    pc.name,
                    if now.link_up { "up" } else { "down" },
                    now.link_ups,
                    now.link_downs,
                    if now.link_up {
                        ""
                    } else {
                        "; it delivers again when the link comes back"
                    }
                ));
            }
            *was = now;
        }
        changed
    }

    /// The DPDK port id of `port`, or what to answer when there is none.
    pub fn resolve(&self, port: &PortRef) -> Result<u16, String> {
        let found = self.list.iter().find(|(pc, p)| match port {
            PortRef::Id(id) => p.id() == *id,
            PortRef::Name(n) => &pc.name == n,
        });
        found.map(|(_, p)| p.id()).ok_or_else(|| match port {
            PortRef::Id(id) => {
                let ids: Vec<String> = self.ids().map(|id| id.to_string()).collect();
                format!("no port {id}; ports are {}\n", ids.join(", "))
            }
            PortRef::Name(n) => {
                let names: Vec<&str> = self.list.iter().map(|(pc, _)| pc.name.as_str()).collect();
                format!("no port named {n:?}; ports are {}\n", names.join(", "))
            }
        })
    }

    /// `set link-up|link-down port N`: what the device said.
    pub fn set_link(&self, id: u16, up: bool) -> String {
        let Some((pc, p)) = self.list.iter().find(|(_, p)| p.id() == id) else {
            let ids: Vec<String> = self.ids().map(|id| id.to_string()).collect();
            return format!("no port {id}; ports are {}\n", ids.join(", "));
        };
        let word = if up { "up" } else { "down" };
        match p.set_link(up) {
            Ok(()) => {
                log(format!(
                    "port {id} {:?}: link set {word} from the console",
                    pc.name
                ));
                format!("port {id} {:?}: link set {word}\n", pc.name)
            }
            Err(e) => format!("port {id} {:?}: {e}\n", pc.name),
        }
    }
}
