//! DPDK telemetry (`dpdk-telemetry.py`): `/sluice/stats`,
//! `/sluice/destinations`, `/sluice/rules`, `/sluice/tool_ports`,
//! `/sluice/ports` and `/sluice/pdump`. DPDK's
//! telemetry thread calls these; each reads a snapshot of its own from the
//! shared counter blocks, never the appliance.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dataplane::dpdk::{events, pdump, telemetry};
use dataplane::runtime::snapshot::{CounterBlocks, DestSlot};
use dataplane::runtime::tables::Tables;

use crate::log::log;

/// A name as a telemetry key: letters, digits and '_' only.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Registers every `/sluice/…` command. `dests` and `tables` follow the
/// running policy; `ports` and `taps` are port ids with their names;
/// `tool_ports` the tool ports' names by tool port index.
pub fn register(
    counters: CounterBlocks,
    dests: Arc<Mutex<Vec<DestSlot>>>,
    tables: Arc<ArcSwap<Tables>>,
    ports: &[(u16, String)],
    taps: &[(u16, String)],
    tool_ports: Vec<String>,
) {
    let for_totals = counters.clone();
    let totals = Box::new(move || {
        let t = for_totals.totals();
        let mut v = vec![
            ("rx".to_owned(), t.rx),
            ("rx_bytes".to_owned(), t.rx_bytes),
            ("parse_errors".to_owned(), t.parse_errors),
            ("flow_packets".to_owned(), t.flow_packets),
            ("flows_created".to_owned(), t.flows_created),
            ("flow_misses".to_owned(), t.flow_misses),
            ("flows_in_table".to_owned(), t.flows_in_table),
            ("flow_ring_full".to_owned(), t.flow_ring_full),
        ];
        v.extend(t.terminals.iter().map(|(k, n)| (k.name().to_owned(), *n)));
        v
    });
    let for_rules = counters.clone();
    let rules = Box::new(move || {
        let t = tables.load();
        let cls = &t.policy.classifier;
        let mut v = Vec::new();
        for r in for_rules.rules(cls.generation(), &t.policy.rule_names) {
            let k = key(&r.name);
            v.push((format!("{k}/packets"), r.packets));
            v.push((format!("{k}/bytes"), r.bytes));
        }
        v
    });
    let for_tools = counters.clone();
    let tools = Box::new(move || {
        let mut v = Vec::new();
        for t in for_tools.tool_ports(&tool_ports) {
            let k = key(&t.name);
            v.push((format!("{k}/tx_packets"), t.tx_packets));
            v.push((format!("{k}/tx_bytes"), t.tx_bytes));
            v.push((format!("{k}/dropped_tx_full"), t.dropped_tx_full));
        }
        v
    });
    let destinations = Box::new(move || {
        let names = dests.lock().map(|n| n.clone()).unwrap_or_default();
        let mut v = Vec::new();
        for d in counters.read(&names).destinations {
            let k = key(&d.name);
            v.push((format!("{k}/tx_packets"), d.tx_packets));
            v.push((format!("{k}/tx_bytes"), d.tx_bytes));
        }
        v
    });
    let ports: Vec<(u16, String)> = ports.iter().map(|(id, n)| (*id, key(n))).collect();
    let links = Box::new(move || {
        let mut v = Vec::new();
        for (id, k) in &ports {
            let e = events::of(*id);
            v.push((format!("{k}/link_up"), u64::from(e.link_up)));
            v.push((format!("{k}/link_up_events"), e.link_ups));
            v.push((format!("{k}/link_down_events"), e.link_downs));
            v.push((format!("{k}/queue_state_events"), e.queue_changes));
        }
        v
    });
    let taps: Vec<(u16, String)> = taps.iter().map(|(id, n)| (*id, key(n))).collect();
    let pdump_counts = Box::new(move || {
        let mut v = Vec::new();
        for (id, k) in &taps {
            let st = pdump::stats(*id).unwrap_or_default();
            v.push((format!("{k}/copies"), st.accepted));
            v.push((format!("{k}/ring_full"), st.ring_full));
            v.push((format!("{k}/no_mbuf"), st.no_mbuf));
        }
        v
    });
    for (cmd, help, src) in [
        (
            "/sluice/pdump",
            "Sluice pdump taps: copies the primary queued for Sluice, and those it dropped (ring full, no mbuf).",
            pdump_counts as telemetry::Source,
        ),
        (
            "/sluice/ports",
            "Sluice per-port link state and link/queue event counts (packet counts: /ethdev/stats).",
            links,
        ),
        (
            "/sluice/stats",
            "Sluice packet counters: rx and every terminal counter.",
            totals,
        ),
        (
            "/sluice/destinations",
            "Sluice per-destination tx_packets and tx_bytes.",
            destinations,
        ),
        (
            "/sluice/tool_ports",
            "Sluice per-tool-port sends (tool group members included): tx_packets, tx_bytes, dropped_tx_full.",
            tools,
        ),
        (
            "/sluice/rules",
            "Sluice per-rule hits of the running policy (packets, bytes; default: no rule matched).",
            rules,
        ),
    ] {
        if let Err(e) = telemetry::register(cmd, help, src) {
            log(format!("telemetry: {e}"));
        }
    }
}
