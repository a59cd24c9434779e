//! Prometheus text exposition of a counter snapshot, served over HTTP
//! (loopback by default). The scrape is answered by the main lcore through
//! the console channel, so it reads exactly what `show` commands read.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use dataplane::runtime::counters::{DestDrop, Terminal, Totals};
use dataplane::runtime::snapshot::Snapshot;

use crate::cli::{Envelope, Request};
use crate::flows::export::ExportCounters;
use crate::state::State;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Each worker's flow table (zero without `[flows]`).
fn flow_table(o: &mut String, parts: &[(&str, &Totals)]) {
    type Get = fn(&Totals) -> u64;
    let counters: [(&str, &str, Get); 6] = [
        (
            "sluice_flow_packets_total",
            "Packets counted into a flow record.",
            |t| t.flow_packets,
        ),
        (
            "sluice_flows_created_total",
            "Flows the flow table created.",
            |t| t.flows_created,
        ),
        (
            "sluice_flow_misses_total",
            "Packets not metered: their flow table bucket was full (still forwarded).",
            |t| t.flow_misses,
        ),
        (
            "sluice_flow_ring_full_total",
            "Expired flow records lost: the ring to the exporter was full.",
            |t| t.flow_ring_full,
        ),
        (
            "sluice_flows_in_table",
            "Flows in the flow table now.",
            |t| t.flows_in_table,
        ),
        (
            "sluice_flows_expired_total",
            "Flows expired, all reasons (see the reason label).",
            |_| 0,
        ),
    ];
    for (name, help, get) in &counters[..5] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(o, name, kind, help);
        for (n, w) in parts {
            let _ = writeln!(o, "{name}{{worker=\"{}\"}} {}", esc(n), get(w));
        }
    }
    let (name, help, _) = counters[5];
    family(o, name, "counter", help);
    for (n, w) in parts {
        for (reason, v) in [
            ("idle_timeout", w.flows_idle),
            ("active_timeout", w.flows_active_timeout),
            ("end_of_flow", w.flows_ended),
            ("forced_end", w.flows_forced),
        ] {
            let _ = writeln!(o, "{name}{{worker=\"{}\",reason=\"{reason}\"}} {v}", esc(n));
        }
    }
}

/// The flow exporter's counters, when `[flows]` is on.
pub fn render_flow_export(e: &ExportCounters) -> String {
    let mut o = String::new();
    for (name, help, v) in [
        (
            "sluice_flow_export_records_total",
            "Flow records the export thread took (workers and intake).",
            e.records,
        ),
        (
            "sluice_ipfix_records_total",
            "Flow records sent as IPFIX.",
            e.ipfix_records,
        ),
        (
            "sluice_ipfix_messages_total",
            "IPFIX messages sent, per collector.",
            e.ipfix_messages,
        ),
        (
            "sluice_ipfix_templates_total",
            "IPFIX template sets sent, per collector.",
            e.ipfix_templates,
        ),
        (
            "sluice_ipfix_send_errors_total",
            "IPFIX messages a collector's send refused.",
            e.ipfix_send_errors,
        ),
    ] {
        family(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    o
}

/// Label values escaped as the exposition format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The data services' families: the stream's counters and the intake's
/// per exporter and kind (none when not configured).
pub fn render_data(
    stream: Option<crate::stream::StreamTotals>,
    intake: Option<&crate::intake::IntakeCounters>,
) -> String {
    let mut o = String::new();
    if let Some(t) = stream {
        for (name, help, v) in [
            (
                "queued",
                "Messages accepted into the stream's buffer.",
                t.queued,
            ),
            (
                "acked",
                "Messages JetStream acknowledged as stored.",
                t.acked,
            ),
            (
                "duplicates",
                "Acknowledgements of a retry already stored (not stored twice).",
                t.duplicates,
            ),
            (
                "overflow",
                "Messages that found the stream's buffer full: not published.",
                t.overflow,
            ),
            (
                "retries",
                "Publishes sent again for want of an acknowledgement.",
                t.retries,
            ),
            ("connects", "Connections made to a NATS server.", t.connects),
        ] {
            let n = format!("sluice_stream_{name}_total");
            family(&mut o, &n, "counter", help);
            let _ = writeln!(o, "{n} {v}");
        }
        family(
            &mut o,
            "sluice_stream_connected",
            "gauge",
            "1 while connected to a NATS server.",
        );
        let _ = writeln!(o, "sluice_stream_connected {}", u8::from(t.connected));
    }
    if let Some(c) = intake {
        type Field = fn(&crate::intake::ExporterCounters) -> u64;
        let fields: [(&str, &str, Field); 4] = [
            ("datagrams", "Flow telemetry datagrams taken in.", |x| {
                x.datagrams
            }),
            ("records", "Flow records decoded from them.", |x| x.records),
            (
                "malformed",
                "Datagrams that could not be read whole: dropped.",
                |x| x.malformed,
            ),
            (
                "no_template",
                "v9/IPFIX data sets that arrived before their template.",
                |x| x.no_template,
            ),
        ];
        for (name, help, get) in fields {
            let n = format!("sluice_intake_{name}_total");
            family(&mut o, &n, "counter", help);
            for ((addr, kind), x) in c {
                let _ = writeln!(
                    o,
                    "{n}{{exporter=\"{}\",kind=\"{}\"}} {}",
                    esc(&addr.to_string()),
                    kind.name(),
                    get(x)
                );
            }
        }
    }
    o
}

/// The whole exposition text: the appliance's `state` and `snap`.
pub fn render(state: State, snap: &Snapshot) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "sluice_state",
        "gauge",
        "1 for the appliance's current state.",
    );
    for s in State::ALL {
        let _ = writeln!(
            o,
            "sluice_state{{state=\"{}\"}} {}",
            s.name(),
            u8::from(state == s)
        );
    }
    let parts: Vec<(&str, &Totals)> = snap
        .lcores
        .iter()
        .map(|l| (l.name.as_str(), &l.totals))
        .collect();
    family(
        &mut o,
        "sluice_rx_packets_total",
        "counter",
        "Packets received by each worker.",
    );
    for (n, w) in &parts {
        let _ = writeln!(
            o,
            "sluice_rx_packets_total{{worker=\"{}\"}} {}",
            esc(n),
            w.rx
        );
    }
    family(
        &mut o,
        "sluice_rx_bytes_total",
        "counter",
        "Bytes received by each worker.",
    );
    for (n, w) in &parts {
        let _ = writeln!(
            o,
            "sluice_rx_bytes_total{{worker=\"{}\"}} {}",
            esc(n),
            w.rx_bytes
        );
    }
    family(
        &mut o,
        "sluice_packets_total",
        "counter",
        "Received packets by the terminal counter they ended in.",
    );
    for (n, w) in &parts {
        for t in Terminal::ALL {
            let _ = writeln!(
                o,
                "sluice_packets_total{{worker=\"{}\",terminal=\"{}\"}} {}",
                esc(n),
                t.name(),
                w.terminal(t)
            );
        }
    }
    family(
        &mut o,
        "sluice_parse_errors_total",
        "counter",
        "Malformed frames seen by parse.",
    );
    for (n, w) in &parts {
        let _ = writeln!(
            o,
            "sluice_parse_errors_total{{worker=\"{}\"}} {}",
            esc(n),
            w.parse_errors
        );
    }
    for (name, help, get) in [
        (
            "sluice_dedup_checked_total",
            "Packets looked up in the dedup table.",
            0,
        ),
        (
            "sluice_dedup_hits_total",
            "Packets found to be duplicates.",
            1,
        ),
        (
            "sluice_dedup_evictions_total",
            "Live dedup entries replaced (table too small).",
            2,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (n, w) in &parts {
            let v = [w.dedup_checked, w.dedup_hits, w.dedup_evictions][get];
            let _ = writeln!(o, "{name}{{worker=\"{}\"}} {v}", esc(n));
        }
    }
    flow_table(&mut o, &parts);
    let dests = &snap.destinations;
    family(
        &mut o,
        "sluice_destination_tx_packets_total",
        "counter",
        "Tunnel packets sent per destination.",
    );
    for d in dests {
        let _ = writeln!(
            o,
            "sluice_destination_tx_packets_total{{destination=\"{}\"}} {}",
            esc(&d.name),
            d.tx_packets
        );
    }
    family(
        &mut o,
        "sluice_destination_tx_bytes_total",
        "counter",
        "Tunnel bytes sent per destination.",
    );
    for d in dests {
        let _ = writeln!(
            o,
            "sluice_destination_tx_bytes_total{{destination=\"{}\"}} {}",
            esc(&d.name),
            d.tx_bytes
        );
    }
    family(
        &mut o,
        "sluice_destination_dropped_total",
        "counter",
        "Copies a destination did not get, by reason.",
    );
    for d in dests {
        for r in DestDrop::ALL {
            let _ = writeln!(
                o,
                "sluice_destination_dropped_total{{destination=\"{}\",reason=\"{}\"}} {}",
                esc(&d.name),
                r.name(),
                d.drop(r)
            );
        }
    }
    // Per-stage counters of the copy edits, VPP style: one family per
    // stage, the stage's own counter names as a label.
    let strip: Vec<Vec<(&str, u64)>> = dests.iter().map(|d| d.strip().collect()).collect();
    let mask: Vec<Vec<(&str, u64)>> = dests.iter().map(|d| d.mask().collect()).collect();
    for (stage, help, counts) in [
        (
            "strip",
            "What header stripping did per destination (frames, headers and bytes removed, frames left as they were and why).",
            strip,
        ),
        (
            "mask",
            "What masking did per destination (frames and bytes masked, frames without the anchor's layer or too short).",
            mask,
        ),
    ] {
        let name = format!("sluice_destination_{stage}_total");
        family(&mut o, &name, "counter", help);
        for (d, counts) in dests.iter().zip(counts) {
            for (counter, n) in counts {
                let _ = writeln!(
                    o,
                    "{name}{{destination=\"{}\",counter=\"{counter}\"}} {n}",
                    esc(&d.name)
                );
            }
        }
    }
    for (name, help, get) in [
        (
            "sluice_tool_port_tx_packets_total",
            "Frames sent per tool port (tool destinations and their groups' members).",
            0,
        ),
        (
            "sluice_tool_port_tx_bytes_total",
            "Bytes sent per tool port.",
            1,
        ),
        (
            "sluice_tool_port_dropped_tx_full_total",
            "Frames a tool port's TX queue refused.",
            2,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for t in &snap.tool_ports {
            let v = [t.tx_packets, t.tx_bytes, t.dropped_tx_full][get];
            let _ = writeln!(o, "{name}{{port=\"{}\"}} {v}", esc(&t.name));
        }
    }
    for (name, help, get) in [
        (
            "sluice_uplink_tx_packets_total",
            "Tunnel packets sent per uplink.",
            0,
        ),
        (
            "sluice_uplink_tx_bytes_total",
            "Tunnel bytes sent per uplink.",
            1,
        ),
        (
            "sluice_uplink_dropped_tx_full_total",
            "Tunnel packets an uplink's TX queue refused.",
            2,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for u in &snap.uplinks {
            let v = [u.tx_packets, u.tx_bytes, u.dropped_tx_full][get];
            let _ = writeln!(o, "{name}{{uplink=\"{}\"}} {v}", esc(&u.name));
        }
    }
    for (name, help, get) in [
        (
            "sluice_rule_packets_total",
            "Packets each rule of the running policy matched (rule=\"default\": no rule).",
            0,
        ),
        (
            "sluice_rule_bytes_total",
            "Bytes each rule of the running policy matched (rule=\"default\": no rule).",
            1,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for r in &snap.rules {
            let v = [r.packets, r.bytes][get];
            let _ = writeln!(o, "{name}{{rule=\"{}\"}} {v}", esc(&r.name));
        }
    }
    // Ports whose counters could not be read are left out of these families.
    let ports: Vec<(u16, &str, [u64; 8])> = snap
        .ports
        .iter()
        .filter_map(|p| {
            let s = p.stats.as_ref().ok()?;
            Some((
                p.id,
                p.name.as_str(),
                [
                    s.ipackets,
                    s.ibytes,
                    s.imissed,
                    s.ierrors,
                    s.rx_nombuf,
                    s.opackets,
                    s.obytes,
                    s.oerrors,
                ],
            ))
        })
        .collect();
    for (name, help, idx) in [
        (
            "sluice_port_rx_packets_total",
            "Packets the port received (RX-packets).",
            0,
        ),
        (
            "sluice_port_rx_bytes_total",
            "Bytes the port received (RX-bytes).",
            1,
        ),
        (
            "sluice_port_rx_missed_total",
            "Packets the port dropped for lack of descriptors (RX-missed).",
            2,
        ),
        (
            "sluice_port_rx_errors_total",
            "Receive errors (RX-errors).",
            3,
        ),
        (
            "sluice_port_rx_nombuf_total",
            "Receive mbuf allocation failures (RX-nombuf).",
            4,
        ),
        (
            "sluice_port_tx_packets_total",
            "Packets the port sent (TX-packets).",
            5,
        ),
        (
            "sluice_port_tx_bytes_total",
            "Bytes the port sent (TX-bytes).",
            6,
        ),
        (
            "sluice_port_tx_errors_total",
            "Transmit errors (TX-errors).",
            7,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (id, pname, v) in &ports {
            let _ = writeln!(
                o,
                "{name}{{port=\"{id}\",name=\"{}\"}} {}",
                esc(pname),
                v[idx]
            );
        }
    }
    let taps = &snap.taps;
    if !taps.is_empty() {
        for (name, help, get) in [
            (
                "sluice_pdump_copies_total",
                "Copies of a tapped port's packets the primary queued for Sluice.",
                0,
            ),
            (
                "sluice_pdump_ring_full_total",
                "Copies the primary dropped: Sluice's tap ring was full.",
                1,
            ),
            (
                "sluice_pdump_no_mbuf_total",
                "Copies the primary could not make: Sluice's tap pool was empty.",
                2,
            ),
        ] {
            family(&mut o, name, "counter", help);
            for t in taps {
                let st = &t.stats;
                let v = [st.accepted, st.ring_full, st.no_mbuf][get];
                let _ = writeln!(
                    o,
                    "{name}{{port=\"{}\",name=\"{}\"}} {v}",
                    t.id,
                    esc(&t.name)
                );
            }
        }
    }
    let events: Vec<_> = snap
        .ports
        .iter()
        .map(|p| (p.id, p.name.as_str(), p.events))
        .collect();
    family(
        &mut o,
        "sluice_port_link_up",
        "gauge",
        "1 while the port's link is up (a vhost-user port: while its peer is connected).",
    );
    for (id, pname, e) in &events {
        let _ = writeln!(
            o,
            "sluice_port_link_up{{port=\"{id}\",name=\"{}\"}} {}",
            esc(pname),
            u8::from(e.link_up)
        );
    }
    for (name, help, get) in [
        (
            "sluice_port_link_up_events_total",
            "Link-up events (a vhost-user peer connecting).",
            0,
        ),
        (
            "sluice_port_link_down_events_total",
            "Link-down events (a vhost-user peer going away).",
            1,
        ),
        (
            "sluice_port_queue_state_events_total",
            "Queue state changes (a vhost-user peer enabling or disabling a ring).",
            2,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for (id, pname, e) in &events {
            let v = [e.link_ups, e.link_downs, e.queue_changes][get];
            let _ = writeln!(o, "{name}{{port=\"{id}\",name=\"{}\"}} {v}", esc(pname));
        }
    }
    o
}

/// Serves `/metrics` on `addr` from a thread; returns the bound address
/// (useful with port 0).
pub fn serve(addr: &str, console: Sender<Envelope>) -> Result<SocketAddr, String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("metrics address {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("metrics address {addr}: not an IP socket"))?;
    std::thread::Builder::new()
        .name("sluice-metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let resp = if req.url() == "/metrics" {
                    let (tx, rx) = mpsc::channel();
                    let sent = console.send(Envelope {
                        request: Request::Metrics,
                        reply: tx,
                    });
                    match sent
                        .ok()
                        .and_then(|()| rx.recv_timeout(Duration::from_secs(5)).ok())
                    {
                        Some(answer) => {
                            let mut r = tiny_http::Response::from_string(answer.text);
                            if let Ok(h) = "Content-Type: text/plain; version=0.0.4"
                                .parse::<tiny_http::Header>()
                            {
                                r = r.with_header(h);
                            }
                            r
                        }
                        None => tiny_http::Response::from_string("appliance busy or stopping\n")
                            .with_status_code(503),
                    }
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                // A scraper that hung up is its own problem.
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use dataplane::runtime::snapshot::{CounterBlocks, LcoreKind, ToolPortCounts};

    use super::*;

    #[test]
    fn tool_ports_and_the_new_terminals_are_exported() {
        let mut blocks = CounterBlocks::default();
        blocks.push(
            "worker 0".into(),
            LcoreKind::Worker,
            std::sync::Arc::default(),
        );
        let mut snap = blocks.read(&[]);
        snap.tool_ports = vec![ToolPortCounts {
            name: "ids1".into(),
            tx_packets: 7,
            tx_bytes: 700,
            dropped_tx_full: 2,
        }];
        snap.uplinks = vec![ToolPortCounts {
            name: "up-b".into(),
            tx_packets: 5,
            tx_bytes: 500,
            dropped_tx_full: 1,
        }];
        let text = render(State::Running, &snap);
        for line in [
            "sluice_uplink_tx_packets_total{uplink=\"up-b\"} 5",
            "sluice_uplink_tx_bytes_total{uplink=\"up-b\"} 500",
            "sluice_uplink_dropped_tx_full_total{uplink=\"up-b\"} 1",
            "sluice_tool_port_tx_packets_total{port=\"ids1\"} 7",
            "sluice_tool_port_tx_bytes_total{port=\"ids1\"} 700",
            "sluice_tool_port_dropped_tx_full_total{port=\"ids1\"} 2",
            "# TYPE sluice_tool_port_tx_packets_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        for t in [Terminal::Sampled, Terminal::DroppedNoTool] {
            assert!(text.contains(t.name()), "no {} in\n{text}", t.name());
        }
    }
}
