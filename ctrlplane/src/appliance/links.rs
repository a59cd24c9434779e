//! Link and queue state of the ports, as DPDK's events report them: a
//! vhost-user peer connecting or going away, a NIC's cable. The main lcore
//! logs each change; the console, Prometheus and telemetry show the counts.

use dataplane::dpdk::events::{self, PortEvents};

use super::Appliance;
use crate::log::log;

impl Appliance {
    /// Logs what changed on each port since the last look.
    pub(super) fn watch_links(&mut self) {
        for (i, (pc, p)) in self.ports.iter().enumerate() {
            let now = events::of(p.id());
            let Some(was) = self.link_events.get_mut(i) else {
                continue;
            };
            if now == *was {
                continue;
            }
            let ups = now.link_ups - was.link_ups;
            let downs = now.link_downs - was.link_downs;
            if ups + downs > 0 {
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
    }

    /// `set link-up|link-down port N`: what the device said.
    pub(super) fn set_link(&self, id: u16, up: bool) -> String {
        let Some((pc, p)) = self.ports.iter().find(|(_, p)| p.id() == id) else {
            let ids: Vec<String> = self.ports.iter().map(|(_, p)| p.id().to_string()).collect();
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

    /// Event counts of every port, in port order, for metrics and telemetry.
    pub fn port_events(&self) -> Vec<(u16, String, PortEvents)> {
        self.ports
            .iter()
            .map(|(pc, p)| (p.id(), pc.name.clone(), events::of(p.id())))
            .collect()
    }
}

/// One console line for a port's events.
pub(super) fn line(e: &PortEvents) -> String {
    format!(
        "  Link: {}  link-up events: {}  link-down events: {}  queue state changes: {}\n",
        if e.link_up { "up" } else { "down" },
        e.link_ups,
        e.link_downs,
        e.queue_changes
    )
}
