//! What each console command does to, or reads from, the appliance.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dataplane::dpdk::events;
use dataplane::runtime::counters::Terminal;

use super::{Appliance, PolicySource, State};
use crate::cli::grammar::{self, Command, PortSel};
use crate::cli::Request;
use crate::metrics;

/// Longest dedup window the console accepts (10 s, as the config).
const MAX_WINDOW_US: u64 = 10_000_000;

impl Appliance {
    /// Serves one console request: the answer and whether to quit.
    pub fn serve(&mut self, req: Request) -> (String, bool) {
        match req {
            Request::Command(line) => match grammar::parse(&line) {
                Ok(None) => (String::new(), false),
                Ok(Some(cmd)) => self.execute(cmd),
                Err(e) => (format!("{e}\n"), false),
            },
            Request::Complete(line) => {
                let ports: Vec<u16> = self
                    .ports
                    .iter()
                    .map(|(_, p)| p.id())
                    .chain(self.tapped_ports().map(|tp| tp.port))
                    .collect();
                (grammar::complete(&line, &ports).join("\n"), false)
            }
            Request::Metrics => (metrics::render(self), false),
        }
    }

    fn execute(&mut self, cmd: Command) -> (String, bool) {
        let out = match cmd {
            Command::Help(words) => grammar::help(&words),
            Command::Start => {
                self.set_forwarding(true);
                "forwarding started\n".into()
            }
            Command::Stop => {
                self.set_forwarding(false);
                "forwarding stopped\n".into()
            }
            Command::Quit => return ("bye\n".into(), true),
            Command::ShowPortInfo(sel) => self.ports_and_taps(sel, Self::port_info),
            Command::ShowPortStats(sel) => self.ports_and_taps(sel, Self::port_stats_of),
            Command::ShowPortXstats(sel) => self.for_ports(sel, Self::port_xstats),
            Command::ClearPortStats(sel) => {
                self.for_ports(sel, |a, i| match a.ports[i].1.reset_stats() {
                    Ok(()) => format!("  NIC statistics for port {} cleared\n", a.ports[i].1.id()),
                    Err(e) => format!("  port {}: {e}\n", a.ports[i].1.id()),
                })
            }
            Command::ShowFwdStats => self.fwd_stats(),
            Command::ClearFwdStats => self.clear_fwd_stats(),
            Command::ShowConfigFwd => self.config_fwd(),
            Command::ShowLcores => self
                .lcore_roles
                .iter()
                .map(|(l, r)| format!("  lcore {l}: {r}\n"))
                .collect(),
            Command::ShowPolicy(part) => self.show_policy(part.as_deref()),
            Command::PolicyLoad(file) => match self.apply_policy(PolicySource::File(file.into())) {
                Ok(m) | Err(m) => format!("{m}\n"),
            },
            Command::ShowDedup => self.show_dedup(),
            Command::SetDedupWindow(us) => {
                if us == 0 || us > MAX_WINDOW_US {
                    format!("dedup window {us} µs is outside 1..={MAX_WINDOW_US}\n")
                } else {
                    self.dedup_window_us.store(us as u32, Ordering::Relaxed);
                    format!("dedup window set to {us} µs\n")
                }
            }
            Command::ShowTunnel(name) => self.show_tunnel(name.as_deref()),
            Command::ShowState => format!(
                "  state: {}\n  up for {} s\n  policy: {:?}\n{}",
                self.state.name(),
                self.started.elapsed().as_secs(),
                self.policy.version,
                self.controller_state_line()
            ),
            Command::ShowController => self.show_controller(),
            Command::SetLink { port, up } => self.set_link(port, up),
            Command::ShowVersion => format!(
                "  Sluice {}\n  {}\n",
                env!("CARGO_PKG_VERSION"),
                dataplane::dpdk::version()
            ),
            Command::ShowArp => self.show_arp(),
            Command::TraceAdd(n) => {
                self.trace.add(n);
                format!("tracing the next {n} packet(s); show trace prints them\n")
            }
            Command::ShowTrace => self.show_trace(),
            Command::TraceClear => {
                self.trace.clear();
                "trace cleared\n".into()
            }
            Command::ShowGuard => self.show_guard(),
            Command::SetGuard(limit, v) => self.set_guard(&limit, v),
        };
        (out, false)
    }

    /// `f` for the selected ports, and the blocks of the selected pdump taps.
    fn ports_and_taps(&self, sel: PortSel, f: impl Fn(&Appliance, usize) -> String) -> String {
        match sel {
            PortSel::All => format!("{}{}", self.for_ports(sel, f), self.tap_blocks(None)),
            PortSel::One(id) if self.tapped_ports().any(|tp| tp.port == id) => {
                self.tap_blocks(Some(id))
            }
            PortSel::One(_) => self.for_ports(sel, f),
        }
    }

    /// Runs `f` for the selected ports (by DPDK port id).
    fn for_ports(&self, sel: PortSel, f: impl Fn(&Appliance, usize) -> String) -> String {
        let idx: Vec<usize> = match sel {
            PortSel::All => (0..self.ports.len()).collect(),
            PortSel::One(id) => match self.ports.iter().position(|(_, p)| p.id() == id) {
                Some(i) => vec![i],
                None => {
                    let ids: Vec<String> = self
                        .ports
                        .iter()
                        .map(|(_, p)| p.id())
                        .chain(self.tapped_ports().map(|tp| tp.port))
                        .map(|id| id.to_string())
                        .collect();
                    return format!("no port {id}; ports are {} or all\n", ids.join(", "));
                }
            },
        };
        idx.into_iter().map(|i| f(self, i)).collect()
    }

    fn port_info(&self, i: usize) -> String {
        let (pc, p) = &self.ports[i];
        let mut s = format!(
            "\n  ********************* Infos for port {}  *********************\n",
            p.id()
        );
        let _ = writeln!(
            s,
            "  Name: {} ({:?}, {:?})",
            pc.name,
            pc.role,
            pc.direction()
        );
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
        s.push_str(&super::links::line(&events::of(p.id())));
        s
    }

    fn port_stats_of(&self, i: usize) -> String {
        let p = &self.ports[i].1;
        match p.stats() {
            Ok(st) => format!(
                "\n  ######################## NIC statistics for port {id}  ########################\n  \
                 RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}\n  RX-errors: {}\n  RX-nombuf:  {}\n  \
                 TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}\n{}  \
                 ############################################################################\n",
                st.ipackets,
                st.imissed,
                st.ibytes,
                st.ierrors,
                st.rx_nombuf,
                st.opackets,
                st.oerrors,
                st.obytes,
                super::links::line(&events::of(p.id())),
                id = p.id()
            ),
            Err(e) => format!("  port {}: {e}\n", p.id()),
        }
    }

    fn port_xstats(&self, i: usize) -> String {
        let p = &self.ports[i].1;
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

    /// Asks every worker to zero its counters and waits (briefly) until all
    /// have: they do it between bursts, with nothing in flight.
    fn clear_fwd_stats(&self) -> String {
        let epoch = self.clear_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        // Workers loop continuously, so this takes microseconds; the bound
        // only guards against a worker that died meanwhile.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self
            .stat_parts()
            .iter()
            .all(|p| p.stats.counters.cleared_epoch.get() >= epoch)
        {
            if Instant::now() > deadline {
                return "forward statistics: not every worker answered the clear\n".into();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        "forward statistics cleared\n".into()
    }

    fn config_fwd(&self) -> String {
        let mut s = format!(
            "  {} worker(s){}; burst {}; state {}\n",
            self.workers.len(),
            if self.distributor.is_some() {
                " behind a distributor"
            } else {
                " on RSS queues"
            },
            dataplane::stage::BURST,
            self.state.name()
        );
        for (l, r) in &self.lcore_roles {
            let _ = writeln!(s, "  lcore {l}: {r}");
        }
        s
    }

    fn show_policy(&self, part: Option<&str>) -> String {
        let m = &self.policy_model;
        let mut s = String::new();
        if part.is_none() {
            let _ = writeln!(
                s,
                "  policy {:?}: {} group(s), {} destination(s), {} rule(s), default drop",
                self.policy.version,
                m.groups.len(),
                m.destinations.len(),
                m.rules.len()
            );
        }
        if matches!(part, None | Some("groups")) {
            for g in &m.groups {
                let labels: Vec<String> =
                    g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
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
            for d in &self.policy.destinations {
                let _ = writeln!(
                    s,
                    "  destination {:<12} {:?} to {}",
                    d.name, d.tunnel, d.remote
                );
            }
        }
        if matches!(part, None | Some("rules")) {
            for (i, name) in self.policy.rule_names.iter().enumerate() {
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
                let _ = writeln!(s, "  rule {i:<4} {name:<20} {action}");
            }
        }
        s
    }

    fn show_dedup(&self) -> String {
        let mut s = format!(
            "  window: {} µs  table: {} entries per worker  ignore DSCP/ECN: {}  include L2: {}\n",
            self.dedup_window_us.load(Ordering::Relaxed),
            self.cfg.dedup.table_entries,
            self.cfg.dedup.ignore_dscp,
            self.cfg.dedup.include_l2
        );
        for (i, w) in self.workers.iter().enumerate() {
            let c = &w.stats.counters;
            let _ = writeln!(
                s,
                "  worker {i}: checked {} duplicates {} inserts {} evictions {}",
                c.dedup_checked.get(),
                c.dedup_hits.get(),
                c.dedup_inserts.get(),
                c.dedup_evictions.get()
            );
        }
        let t = self.totals();
        let _ = writeln!(
            s,
            "  deduplicated packets: {}",
            t.terminal(Terminal::Deduplicated)
        );
        s
    }

    fn show_tunnel(&self, name: Option<&str>) -> String {
        let tables = self.tables.load();
        let mut s = String::new();
        for (d, dt) in self.policy.destinations.iter().zip(&tables.dests) {
            if name.is_some_and(|n| n != d.name) {
                continue;
            }
            let hop = self.neighbors.next_hop(d.remote);
            let mac = hop.and_then(|h| self.neighbors.lookup(h));
            let slot = usize::from(dt.slot);
            let sum = |f: &dyn Fn(&dataplane::runtime::counters::WorkerStats) -> u64| -> u64 {
                self.stat_parts().iter().map(|p| f(p.stats)).sum()
            };
            let _ = writeln!(s, "  destination {}", d.name);
            let _ = writeln!(s, "    tunnel: {:?}", d.tunnel);
            let _ = writeln!(
                s,
                "    remote: {}  dscp {} ttl {}  oversize {:?}",
                d.remote, d.dscp, d.ttl, d.oversize
            );
            let _ = writeln!(
                s,
                "    next hop: {}  MAC: {}",
                hop.map_or("none (unreachable)".to_owned(), |h| h.to_string()),
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
                sum(&|w| w.dests[slot].tx_packets.get()),
                sum(&|w| w.dests[slot].tx_bytes.get()),
                sum(&|w| w.dests[slot].truncated_to_mtu.get())
            );
            for r in dataplane::runtime::counters::DestDrop::ALL {
                let v = sum(&|w| w.dests[slot].drop(r).get());
                if v > 0 {
                    let _ = writeln!(s, "    {} {v}", r.name());
                }
            }
        }
        if s.is_empty() {
            let names: Vec<&str> = self
                .policy
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

    fn show_arp(&self) -> String {
        let mut rows: Vec<String> = self
            .neighbors
            .entries()
            .map(|(ip, st)| {
                let mac = st.mac().map_or("incomplete".to_owned(), |m| {
                    m.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                });
                let kind = match st {
                    crate::neighbor::State::Static(_) => "static",
                    crate::neighbor::State::Incomplete { .. } => "resolving",
                    crate::neighbor::State::Reachable { .. } => "reachable",
                };
                format!("  {ip:<40} {mac:<18} {kind}\n")
            })
            .collect();
        rows.sort();
        let mut s = format!("  {:<40} {:<18} state\n{}", "address", "MAC", rows.concat());
        for a in &self.answerers {
            let mac: Vec<String> = a.mac.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(
                s,
                "  decap input {:?} (port {}) answers for {} with {}: {} answer(s) sent",
                a.name,
                a.port,
                a.addr,
                mac.join(":"),
                a.answered
            );
        }
        s
    }

    fn show_trace(&self) -> String {
        let recs = self.trace.records();
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

    fn show_guard(&self) -> String {
        let c = &self.guard.cfg;
        let now = self.guard_sample(self.now_ms());
        format!(
            "  state: {}{}\n  limits: missed-pps {} free-mbufs-pct {} ring-fill-pct {} rss-mb {} calm-ms {}\n  \
             now: missed {} (counter) free mbufs {}/{} ring fill {}% rss {} MiB\n  shed: {:?} (sample 1 in {}, keep rules {})\n  dropped_protect: {}\n",
            self.state.name(),
            if self.guard.protecting() { format!(" (protecting: {})", self.protect_reason) } else { String::new() },
            c.max_missed_pps,
            c.min_free_mbufs_pct,
            c.max_ring_fill_pct,
            c.max_rss_mb,
            c.calm_ms,
            now.missed,
            now.free_mbufs,
            now.total_mbufs,
            now.ring_fill_pct,
            now.rss_bytes >> 20,
            c.shed,
            c.sample_keep_1_in,
            c.keep_rules,
            self.totals().terminal(Terminal::DroppedProtect)
        )
    }

    fn set_guard(&mut self, limit: &str, v: u64) -> String {
        let c = &mut self.guard.cfg;
        match limit {
            "missed-pps" => c.max_missed_pps = v,
            "free-mbufs-pct" if v <= 100 => c.min_free_mbufs_pct = v as u32,
            "ring-fill-pct" if (1..=100).contains(&v) => c.max_ring_fill_pct = v as u32,
            "rss-mb" => c.max_rss_mb = v,
            "calm-ms" => c.calm_ms = v,
            _ => {
                return format!(
                "guard {limit} {v} is out of range (percentages are 0..=100, ring fill 1..=100)\n"
            )
            }
        }
        format!("guard {limit} set to {v}\n")
    }

    /// Each worker's (and the distributor's) counters by name.
    pub fn named_stats(&self) -> Vec<(String, &dataplane::runtime::counters::WorkerStats)> {
        self.stat_parts()
            .into_iter()
            .map(|p| (p.name, p.stats))
            .collect()
    }

    /// Every destination ever known, with its counter slot.
    pub fn destination_slots(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .slots
            .iter()
            .map(|(n, s)| (n.clone(), usize::from(*s)))
            .collect();
        v.sort_by_key(|(_, s)| *s);
        v
    }

    /// Port id, name and the counters of `show port stats`, in the order
    /// RX-packets, RX-bytes, RX-missed, RX-errors, RX-nombuf, TX-packets,
    /// TX-bytes, TX-errors.
    pub fn port_counters(&self) -> Vec<(u16, String, [u64; 8])> {
        self.ports
            .iter()
            .filter_map(|(pc, p)| {
                let s = p.stats().ok()?;
                Some((
                    p.id(),
                    pc.name.clone(),
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
            .collect()
    }

    /// The appliance state for metrics and heartbeats.
    pub fn state(&self) -> State {
        self.state
    }
}
