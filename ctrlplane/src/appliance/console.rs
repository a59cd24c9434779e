//! What the console shows: each command's text from the part of the
//! appliance it reads. The appliance dispatches commands; these render.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dataplane::dpdk::{events, Mempool, Port};
use dataplane::runtime::counters::{DestDrop, Terminal};
use dataplane::runtime::policy::{CompiledPolicy, Destination, Output};
use dataplane::runtime::snapshot::{DestCounts, RuleCount, Snapshot};
use dataplane::runtime::tables::Tables;
use dataplane::runtime::trace::Trace;
use dataplane::stage::sample::SampleSpec;

use super::answer::Answerer;
use super::controller::{self, ControllerLink};
use super::flows::{ExportCounters, Flows};
use super::lcores::{Lcores, Shared};
use super::links::Ports;
use super::pdump::Taps;
use super::protect::{self, Protector};
use super::publisher::{NextHops, Publisher};
use crate::cli::grammar::{self, Command, PortSel};
use crate::config::{Config, DedupConfig, FlowsConfig, PortConfig};
use crate::policy::Policy;
use crate::state::State;
use crate::stats;

/// Longest dedup window the console accepts (10 s, as the config).
pub const MAX_WINDOW_US: u64 = 10_000_000;

/// `show config fwd`: the workers and what each lcore does.
pub fn config_fwd(
    workers: usize,
    distributor: bool,
    state: &str,
    roles: &[(u32, String)],
) -> String {
    let mut s = format!(
        "  {} worker(s){}; burst {}; state {}\n",
        workers,
        if distributor {
            " behind a distributor"
        } else {
            " on RSS queues"
        },
        dataplane::stage::BURST,
        state
    );
    for (l, r) in roles {
        let _ = writeln!(s, "  lcore {l}: {r}");
    }
    s
}

/// `show dedup`: the window, the table, and each worker's dedup counters.
pub fn show_dedup(window_us: u32, cfg: &DedupConfig, snap: &Snapshot) -> String {
    let mut s = format!(
        "  window: {} µs  table: {} entries per worker  ignore DSCP/ECN: {}  include L2: {}\n",
        window_us, cfg.table_entries, cfg.ignore_dscp, cfg.include_l2
    );
    for (i, w) in snap.workers().enumerate() {
        let c = &w.totals;
        let _ = writeln!(
            s,
            "  worker {i}: checked {} duplicates {} inserts {} evictions {}",
            c.dedup_checked, c.dedup_hits, c.dedup_inserts, c.dedup_evictions
        );
    }
    let _ = writeln!(
        s,
        "  deduplicated packets: {}",
        snap.total.terminal(Terminal::Deduplicated)
    );
    s
}

/// `show flow-table`: each worker's flow table and the exporter.
pub fn show_flow_table(
    cfg: Option<&FlowsConfig>,
    snap: &Snapshot,
    export: Option<ExportCounters>,
) -> String {
    let Some(cfg) = cfg else {
        return "  flow metering is off (no [flows] section)\n".to_owned();
    };
    let mut s = format!(
        "  table: {} entries per worker  active timeout: {} ms  idle timeout: {} ms\n",
        cfg.table_entries,
        cfg.active_timeout.as_millis(),
        cfg.idle_timeout.as_millis()
    );
    for (i, w) in snap.workers().enumerate() {
        let c = &w.totals;
        let _ = writeln!(
            s,
            "  worker {i}: flows {} created {} packets {} misses {} expired idle {} active {} fin/rst {} flushed {} ring full {}",
            c.flows_in_table,
            c.flows_created,
            c.flow_packets,
            c.flow_misses,
            c.flows_idle,
            c.flows_active_timeout,
            c.flows_ended,
            c.flows_forced,
            c.flow_ring_full
        );
    }
    if let Some(e) = export {
        let _ = writeln!(
            s,
            "  export: records {} ipfix records {} messages {} templates {} send errors {} ({} collector(s))",
            e.records,
            e.ipfix_records,
            e.ipfix_messages,
            e.ipfix_templates,
            e.ipfix_send_errors,
            cfg.collectors.len()
        );
    }
    s
}

/// `show flows [address]`: the largest recent flows, one line each.
pub fn show_flows(flows: Option<&Flows>, host: Option<&str>) -> String {
    let Some(flows) = flows else {
        return "  flow metering is off (no [flows] section)\n".to_owned();
    };
    let host = match host.map(str::parse::<std::net::IpAddr>) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            return format!("  {:?} is not an IP address\n", host.unwrap_or_default());
        }
    };
    let top = flows.recent.top(20, host);
    if top.is_empty() {
        return "  no flow record exported yet\n".to_owned();
    }
    let mut s = format!(
        "  {:<40} {:<40} {:>5} {:>10} {:>12} {:>10} {:>12}  {}\n",
        "initiator", "responder", "proto", "packets>", "bytes>", "<packets", "<bytes", "end"
    );
    for r in top {
        let k = &r.key;
        let _ = writeln!(
            s,
            "  {:<40} {:<40} {:>5} {:>10} {:>12} {:>10} {:>12}  {:?}",
            format!("{}:{}", k.initiator, k.initiator_port),
            format!("{}:{}", k.responder, k.responder_port),
            k.protocol,
            r.forward.packets,
            r.forward.bytes,
            r.reverse.packets,
            r.reverse.bytes,
            r.end_reason
        );
    }
    s
}

pub fn port_info(pc: &PortConfig, p: &Port) -> String {
    let mut s = format!(
        "\n  ********************* Infos for port {}  *********************\n",
        p.id()
    );
    let _ = writeln!(s, "  Name: {} ({:?}, {:?})", pc.name, pc.role, pc.direction);
    let _ = writeln!(s, "  Device: {}", pc.device);
    if let Ok(mac) = p.mac() {
        let m: Vec<String> = mac.iter().map(|b| format!("{b:02X}")).collect();
        let _ = writeln!(s, "  MAC address: {}", m.join(":"));
    }
    if let Ok(info) = p.info() {
        let _ = writeln!(s, "  Driver name: {}", info.driver);
        let _ = writeln!(
            s,
            "  Max RX queues: {}  Max TX queues: {}",
            info.max_rx_queues, info.max_tx_queues
        );
        let _ = writeln!(s, "  MTU range: {}..={}", info.min_mtu, info.max_mtu);
        let _ = writeln!(
            s,
            "  RSS: {:?} (hashes 0x{:x}, key {} bytes)",
            p.rss(),
            info.rss_offloads,
            info.hash_key_size
        );
        let _ = writeln!(s, "  NUMA socket: {}", info.socket);
    }
    match p.link() {
        Ok(l) => {
            let _ = writeln!(
                s,
                "  Link status: {}  Link speed: {} Mbps",
                if l.up { "up" } else { "down" },
                l.speed_mbps
            );
        }
        Err(e) => {
            let _ = writeln!(s, "  Link: {e}");
        }
    }
    s.push_str(&stats::link_line(&events::of(p.id())));
    s
}

pub fn port_xstats(p: &Port) -> String {
    match p.xstats() {
        Ok(x) => {
            let mut s = format!("###### NIC extended statistics for port {}\n", p.id());
            for (n, v) in x {
                let _ = writeln!(s, "{n}: {v}");
            }
            s
        }
        Err(e) => format!("  port {}: {e}\n", p.id()),
    }
}

/// `show policy`; `tools` names what `Output::Tool` indexes, `hits` are
/// the rules' hits by rule id then the default's (packets and bytes since
/// the policy was loaded, or the last `clear fwd stats`).
pub fn show_policy(
    policy: &CompiledPolicy,
    m: &Policy,
    tools: &[&str],
    hits: &[RuleCount],
    part: Option<&str>,
) -> String {
    let mut s = String::new();
    if part.is_none() {
        let _ = writeln!(
            s,
            "  policy {:?}: {} group(s), {} destination(s), {} rule(s), default drop",
            policy.version,
            m.groups.len(),
            m.destinations.len(),
            m.rules.len()
        );
    }
    if matches!(part, None | Some("groups")) {
        for g in &m.groups {
            let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                s,
                "  group {:<16} {} [{}]",
                g.name,
                g.cidrs.join(", "),
                labels.join(", ")
            );
        }
    }
    if matches!(part, None | Some("destinations")) {
        for d in &policy.destinations {
            let _ = match &d.out {
                Output::Tunnel(t) => writeln!(
                    s,
                    "  destination {:<12} {:?} to {} via {} (uplink {})",
                    d.name, t.tunnel, t.remote, t.next_hop, t.uplink
                ),
                Output::Tool(i) => writeln!(
                    s,
                    "  destination {:<12} tool {}{}",
                    d.name,
                    tools.get(usize::from(*i)).copied().unwrap_or("?"),
                    per_copy(d)
                ),
            };
        }
    }
    if matches!(part, None | Some("rules")) {
        for (i, name) in policy.rule_names.iter().enumerate() {
            let rule = m.rules.iter().find(|r| &r.name == name);
            let action = rule.map_or_else(String::new, |r| {
                if r.to.is_empty() {
                    "drop".to_owned()
                } else {
                    let to: Vec<String> =
                        r.to.iter()
                            .map(|t| match t {
                                crate::policy::model::RuleTarget::Name(n) => n.clone(),
                                crate::policy::model::RuleTarget::Detailed(d) => d.dest.clone(),
                            })
                            .collect();
                    format!("to {}", to.join(", "))
                }
            });
            let (packets, bytes) = hits.get(i).map_or((0, 0), |h| (h.packets, h.bytes));
            let _ = writeln!(
                s,
                "  rule {i:<4} {name:<20} {action:<30} packets {packets:>12} bytes {bytes:>14}"
            );
        }
        if let Some(h) = hits.get(policy.rule_names.len()) {
            let _ = writeln!(
                s,
                "  default   {:<20} {:<30} packets {:>12} bytes {:>14}",
                "", "drop", h.packets, h.bytes
            );
        }
    }
    s
}

/// What a destination does to each copy, as `show policy` says it.
fn per_copy(d: &Destination) -> String {
    let mut s = String::new();
    let st = &d.strip;
    let strip: Vec<&str> = [
        ("vlan", st.vlan),
        ("mpls", st.mpls),
        ("vntag", st.vntag),
        ("tunnel", st.tunnel),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    if !strip.is_empty() {
        let _ = write!(s, "  strip {}", strip.join(","));
    }
    if let Some(m) = st.dst_mac {
        let mac: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        let _ = write!(s, "  dst_mac {}", mac.join(":"));
    }
    if let Some(m) = &d.mask {
        let _ = write!(
            s,
            "  mask {}+{} {} bytes with 0x{:02x}",
            format!("{:?}", m.anchor).to_lowercase(),
            m.offset,
            m.len,
            m.pattern
        );
    }
    match d.sample {
        Some(SampleSpec::OneInN(n)) => {
            let _ = write!(s, "  sample 1 in {n} packets");
        }
        Some(SampleSpec::FlowHash { one_in }) => {
            let _ = write!(s, "  sample 1 in {one_in} flows");
        }
        None => {}
    }
    s
}

pub fn show_tunnel(
    policy: &CompiledPolicy,
    tables: &Tables,
    hops: &NextHops,
    snap: &Snapshot,
    name: Option<&str>,
) -> String {
    let mut s = String::new();
    for (d, dt) in policy.destinations.iter().zip(&tables.dests) {
        let Some(t) = d.tunnel().filter(|_| name.is_none_or(|n| n == d.name)) else {
            continue;
        };
        let mac = hops.next_hop_mac(t);
        let c = snap.destination(dt.slot);
        let count = |f: &dyn Fn(&DestCounts) -> u64| c.map_or(0, f);
        let _ = writeln!(s, "  destination {}", d.name);
        let _ = writeln!(s, "    tunnel: {:?}", t.tunnel);
        let _ = writeln!(
            s,
            "    remote: {}  dscp {} ttl {}  oversize {:?}",
            t.remote, t.dscp, t.ttl, t.oversize
        );
        let _ = writeln!(
            s,
            "    uplink: {}  next hop: {}  MAC: {}",
            hops.uplink_name(t.uplink),
            t.next_hop,
            mac.map_or("unresolved".to_owned(), |m| m
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"))
        );
        let _ = writeln!(
            s,
            "    template: {}",
            if dt.template.is_some() {
                "ready"
            } else {
                "none: copies count dropped_no_nexthop"
            }
        );
        let _ = writeln!(s, "    next sequence: {}", dt.seq.load(Ordering::Relaxed));
        let _ = writeln!(
            s,
            "    tx_packets {} tx_bytes {} truncated {}",
            count(&|c| c.tx_packets),
            count(&|c| c.tx_bytes),
            count(&|c| c.truncated_to_mtu)
        );
        for r in DestDrop::ALL {
            let v = count(&|c| c.drop(r));
            if v > 0 {
                let _ = writeln!(s, "    {} {v}", r.name());
            }
        }
    }
    if s.is_empty() {
        let names: Vec<&str> = policy
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        s = format!(
            "no destination {:?}; destinations are {}\n",
            name.unwrap_or(""),
            names.join(", ")
        );
    }
    s
}

pub fn show_arp(hops: &NextHops, answerers: &[Answerer]) -> String {
    let mut s = String::new();
    for up in &hops.uplinks {
        let mut rows: Vec<String> = up
            .neighbors
            .entries()
            .map(|(ip, st)| {
                let mac = st.mac().map_or("incomplete".to_owned(), |m| mac_text(&m));
                let kind = match st {
                    crate::neighbor::State::Static(_) => "static",
                    crate::neighbor::State::Incomplete { .. } => "resolving",
                    crate::neighbor::State::Reachable { .. } => "reachable",
                };
                format!("  {ip:<40} {mac:<18} {kind:<10} {}\n", up.name)
            })
            .collect();
        rows.sort();
        let _ = writeln!(
            s,
            "  uplink {:?} (port {}) answers for {} with {}",
            up.name,
            up.port,
            up.outer.ip,
            mac_text(&up.outer.mac)
        );
        s.push_str(&rows.concat());
    }
    s = format!(
        "  {:<40} {:<18} {:<10} uplink\n{s}",
        "address", "MAC", "state"
    );
    for a in answerers {
        let _ = writeln!(
            s,
            "  decap input {:?} (port {}) answers for {} with {}: {} answer(s) sent",
            a.name,
            a.port,
            a.addr,
            mac_text(&a.mac),
            a.answered
        );
    }
    s
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn show_trace(trace: &Trace) -> String {
    let recs = trace.records();
    if recs.is_empty() {
        return "no packet traced; trace add <n> arms the trace\n".into();
    }
    let mut s = String::new();
    for (i, r) in recs.iter().enumerate() {
        let _ = writeln!(
            s,
            "Packet {} (worker {}, port {}, {} bytes)",
            i + 1,
            r.worker,
            r.port,
            r.len
        );
        let _ = writeln!(s, "  parse:   {}", r.parsed);
        let _ = writeln!(s, "  filter:  {}", r.rule);
        let _ = writeln!(s, "  dedup:   {}", r.dedup);
        for d in &r.dests {
            let _ = writeln!(
                s,
                "  to {}: slice {} ({} bytes) -> {}",
                d.destination, d.slice, d.len_after_slice, d.outcome
            );
        }
        let _ = writeln!(s, "  verdict: {}", r.verdict);
    }
    s
}

/// What the console's read-mostly commands see of the appliance's parts.
pub struct View<'a> {
    pub state: State,
    pub up_s: u64,
    pub now_ms: u64,
    pub lcores: &'a Lcores,
    pub shared: &'a Shared,
    pub publisher: &'a Publisher,
    pub hops: &'a NextHops,
    pub ports: &'a Ports,
    pub taps: Option<&'a Taps>,
    pub answerers: &'a [Answerer],
    pub data: &'a super::dataservice::DataService,
    pub controller: Option<&'a ControllerLink>,
    pub protector: &'a Protector,
    pub cfg: &'a Config,
    pub pool: &'a Mempool,
    /// Flow export (`[flows]`).
    pub flows: Option<&'a Flows>,
}

impl View<'_> {
    /// The forwarding counters: lcores, uplinks and destinations.
    pub fn fwd_snapshot(&self) -> Snapshot {
        let mut s = self.lcores.counters.read(&self.publisher.slots());
        let uplinks: Vec<String> = self.hops.uplinks.iter().map(|u| u.name.clone()).collect();
        s.uplinks = self.lcores.counters.uplinks(&uplinks);
        s
    }

    /// Every counter, read once: lcores, uplinks, destinations, ports and taps.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.fwd_snapshot();
        s.tool_ports = self
            .lcores
            .counters
            .tool_ports(&self.publisher.tools().port_names());
        let policy = self.publisher.policy();
        s.rules = self
            .lcores
            .counters
            .rules(policy.classifier.generation(), &policy.rule_names);
        s.ports = self.ports.counts();
        s.taps = self.taps.map(Taps::counts).unwrap_or_default();
        s
    }

    pub fn tap_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.taps
            .iter()
            .flat_map(|t| t.ports.iter())
            .map(|tp| tp.port)
    }

    /// `f` for the selected ports, and the blocks of the selected pdump taps.
    fn ports_and_taps(&self, sel: PortSel, f: impl Fn(u16) -> String) -> String {
        let taps = |id| self.taps.map_or(String::new(), |t| t.blocks(id));
        let tap_ids: Vec<u16> = self.tap_ids().collect();
        match sel {
            PortSel::All => format!(
                "{}{}",
                self.ports.each(sel, &tap_ids, |_, p| f(p.id())),
                taps(None)
            ),
            PortSel::One(id) if tap_ids.contains(&id) => taps(Some(id)),
            PortSel::One(_) => self.ports.each(sel, &tap_ids, |_, p| f(p.id())),
        }
    }

    /// Carries out `cmd` (any but those that change the appliance's own
    /// state: start, stop, quit, policy load, set guard).
    pub fn execute(&self, cmd: Command) -> String {
        let tap_ids: Vec<u16> = self.tap_ids().collect();
        let policy = self.publisher.policy();
        match cmd {
            Command::Help(words) => grammar::help(&words),
            Command::ShowPortInfo(sel) => {
                let list = self.ports.list();
                self.ports_and_taps(sel, |id| {
                    list.iter()
                        .find(|(_, p)| p.id() == id)
                        .map_or(String::new(), |(pc, p)| port_info(pc, p))
                })
            }
            Command::ShowPortStats(sel) => {
                let snap = self.snapshot();
                self.ports_and_taps(sel, |id| {
                    snap.ports
                        .iter()
                        .find(|p| p.id == id)
                        .map_or(String::new(), stats::port_block)
                })
            }
            Command::ShowPortXstats(sel) => self.ports.each(sel, &tap_ids, |_, p| port_xstats(p)),
            Command::ClearPortStats(sel) => {
                self.ports
                    .each(sel, &tap_ids, |_, p| match p.reset_stats() {
                        Ok(()) => format!("  NIC statistics for port {} cleared\n", p.id()),
                        Err(e) => format!("  port {}: {e}\n", p.id()),
                    })
            }
            Command::ShowFwdStats => stats::fwd_stats(&self.fwd_snapshot()),
            Command::ClearFwdStats => self.clear_fwd_stats(),
            Command::ShowConfigFwd => config_fwd(
                self.lcores.workers(),
                self.lcores.distributor().is_some(),
                self.state.name(),
                &self.lcores.roles,
            ),
            Command::ShowLcores => {
                let roles: String = self
                    .lcores
                    .roles
                    .iter()
                    .map(|(l, r)| format!("  lcore {l}: {r}\n"))
                    .collect();
                roles + &self.lcores.idle_report()
            }
            Command::ShowPolicy(part) => show_policy(
                policy,
                self.publisher.model(),
                &self.publisher.tools().set_names(),
                &self.snapshot().rules,
                part.as_deref(),
            ),
            Command::ShowDedup => show_dedup(
                self.shared.dedup_window_us.load(Ordering::Relaxed),
                &self.cfg.dedup,
                &self.lcores.counters.read(&[]),
            ),
            Command::ShowFlowTable => show_flow_table(
                self.cfg.flows.as_ref(),
                &self.lcores.counters.read(&[]),
                self.flows.map(Flows::counters),
            ),
            Command::ShowFlows(host) => show_flows(self.flows, host.as_deref()),
            Command::SetDedupWindow(us) => {
                if us == 0 || us > MAX_WINDOW_US {
                    format!("dedup window {us} µs is outside 1..={MAX_WINDOW_US}\n")
                } else {
                    self.shared
                        .dedup_window_us
                        .store(us as u32, Ordering::Relaxed);
                    format!("dedup window set to {us} µs\n")
                }
            }
            Command::ShowTunnel(name) => show_tunnel(
                policy,
                &self.publisher.tables().load(),
                self.hops,
                &self.lcores.counters.read(&self.publisher.slots()),
                name.as_deref(),
            ),
            Command::ShowState => format!(
                "  state: {}\n  up for {} s\n  policy: {:?}\n{}",
                self.state.name(),
                self.up_s,
                policy.version,
                self.controller
                    .map_or(String::new(), ControllerLink::state_line)
            ),
            Command::ShowStream => self.data.show_stream(),
            Command::ShowIntake => self.data.show_intake(),
            Command::ShowController => match self.controller {
                Some(l) => l.show(&format!("{:?}", policy.version)),
                None => controller::NONE.to_owned(),
            },
            Command::ShowVersion => format!(
                "  Sluice {}\n  {}\n",
                env!("CARGO_PKG_VERSION"),
                dataplane::dpdk::version()
            ),
            Command::ShowArp => show_arp(self.hops, self.answerers),
            Command::TraceAdd(n) => {
                self.shared.trace.add(n);
                format!("tracing the next {n} packet(s); show trace prints them\n")
            }
            Command::ShowTrace => show_trace(&self.shared.trace),
            Command::TraceClear => {
                self.shared.trace.clear();
                "trace cleared\n".into()
            }
            Command::ShowGuard => self.protector.show(
                self.state.name(),
                &protect::sample(
                    self.now_ms,
                    self.ports.list(),
                    &self.lcores.rings,
                    self.pool,
                    self.cfg.mempool.mbufs,
                ),
                self.lcores
                    .counters
                    .totals()
                    .terminal(Terminal::DroppedProtect),
            ),
            Command::ShowToolGroup(name) => self
                .publisher
                .tools()
                .show(&self.snapshot(), name.as_deref()),
            Command::Start
            | Command::Stop
            | Command::Quit
            | Command::PolicyLoad(_)
            | Command::SetGuard(..)
            | Command::SetLink { .. } => {
                "this command changes the appliance: it is carried out there\n".into()
            }
        }
    }

    /// Asks every worker to zero its counters and waits (briefly) until all
    /// have: they do it between bursts, with nothing in flight.
    fn clear_fwd_stats(&self) -> String {
        let epoch = self.shared.clear_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        // Workers loop continuously, so this takes microseconds; the bound
        // only guards against a worker that died meanwhile.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self
            .lcores
            .counters
            .stats()
            .all(|s| s.counters.cleared_epoch.get() >= epoch)
        {
            if Instant::now() > deadline {
                return "forward statistics: not every worker answered the clear\n".into();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        "forward statistics cleared\n".into()
    }
}
