//! The end-to-end scenarios: the traffic (a pktgen profile), Sluice's
//! policy and config, and what the issue asks of each.

use std::fmt::Write;

use crate::ovs::PeerWork;

/// What Sluice does in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// TAP aggregation: `rules` filter rules (the last one matches all),
    /// towards `dests` destinations.
    Tap {
        rules: usize,
        dedup: bool,
        slice: Option<u16>,
        dests: Vec<Tunnel>,
        /// Flow metering on (`[flows]`, every packet metered), its records
        /// exported to the harness's own IPFIX collector.
        meter: bool,
    },
    /// The decap front-end: tunnels in, inner frames out on a tool port.
    Decap,
    /// A decap input with `non_tunnel = "pass"` fed frames that are not
    /// tunnels: each is classified and handed to the tool port unchanged.
    /// Sluice's closest equivalent of testpmd's io forwarding.
    PassThrough,
    /// TAP mode, one match-all rule to a tool group of two members: each
    /// frame classified, hashed and sent unchanged to one member.
    ToolGroup,
}

/// Tunnel of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan,
    Erspan3,
}

/// How Sluice's worker runs: issue 18 asks that adaptive idling cost
/// little at full load and that one-lcore mode keep the pipeline's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// The classic busy-polling worker lcore beside the main lcore.
    Poll,
    /// The same worker with `[workers] idle = "adaptive"`.
    Adaptive,
    /// No worker lcore: the main lcore runs the worker between its
    /// control rounds (EAL given the worker's core alone).
    OneLcore,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    /// The input capture; scenarios on one capture share its testpmd and
    /// OVS runs.
    pub capture: Capture,
    pub work: Work,
    pub workers: Workers,
    /// What OVS-DPDK does on the same capture for comparison, if anything.
    pub peer: Option<PeerWork>,
    /// The issue's target for Sluice / testpmd, if any.
    pub target_ratio: Option<f64>,
    /// The issue's target for Sluice / OVS-DPDK, if any.
    pub target_ovs: Option<f64>,
    /// The issue's per-worker target in Mpps, if any.
    pub target_mpps: Option<f64>,
}

/// An input capture: a pktgen profile and how it is named in reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// Short name: the capture's file is `<name>.pcap`.
    pub name: &'static str,
    /// Distinct 5-tuples in it.
    pub flows: u64,
    /// What the frames are, for tables ("64 B", "IMIX", ...).
    pub frames: &'static str,
    /// Share of the originals that a second mirror point copied.
    pub copies: f64,
    /// pktgen profile.
    pub profile: String,
}

impl Capture {
    /// Frames in the capture: originals and copies.
    pub fn len(&self) -> u64 {
        originals(self.flows, self.copies)
            + (originals(self.flows, self.copies) as f64 * self.copies).floor() as u64
    }

    /// Whether the capture has no frames (never, for the harness's own).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mbufs a program's pool needs: `net_pcap`'s `infinite_rx` keeps the
    /// whole capture in mbufs of the RX queue's pool, and the program
    /// needs `working` more for its descriptors, bursts and copies.
    pub fn mbufs(&self, working: u32) -> u32 {
        u32::try_from(self.len() + u64::from(working)).unwrap_or(u32::MAX)
    }
}

/// Frames in each capture of 1,024 flows: `net_pcap` replays it in a
/// loop, so one pass must last longer than the dedup window (see
/// [`DEDUP_WINDOW_US`]).
pub const CAPTURE_FRAMES: u64 = 8192;

/// The dedup window Sluice gets in these runs. The capture repeats
/// byte for byte every pass; with the default 50 ms window every packet
/// after the first pass would be a copy of itself from the pass before,
/// and the "full pipeline" would drop 100 % as duplicates instead of the
/// capture's 20 %. 200 µs is shorter than a pass of 8,192 packets at up
/// to 40 Mpps and far longer than the 2 µs (30 packets) between an
/// original and its copy.
pub const DEDUP_WINDOW_US: u64 = 200;

/// 64-byte IPv4 UDP frames over 1,024 flows (they all fit a worker's
/// flow cache); `dups` of the originals copied 2 µs later
/// with TTL − 1 and another source MAC, as a second mirror point sends
/// them.
fn ipv4_traffic(dups: f64) -> String {
    let mut s = String::from(
        r#"rate_pps = 14880952
size = 64

[[flow]]
name = "clients"
src = "10.1.0.0/24"
dst = "10.2.0.1-10.2.0.4"
proto = "udp"
src_port = 40000
dst_port = 5001
"#,
    );
    duplicates(&mut s, dups);
    sized(s, dups)
}

fn duplicates(s: &mut String, dups: f64) {
    if dups > 0.0 {
        let _ = write!(
            s,
            "\n[duplicates]\nratio = {dups}\ndelay_us = 2\nttl_delta = -1\nsrc_mac = \"02:00:00:00:00:99\"\n"
        );
    }
}

/// Originals in a capture of `frames` frames with `dups` of them copied.
fn originals_of(frames: u64, dups: f64) -> u64 {
    (frames as f64 / (1.0 + dups)).round() as u64
}

/// Originals in a capture where each of `flows` flows sends once per pass.
fn originals(flows: u64, dups: f64) -> u64 {
    if flows == 1024 {
        originals_of(CAPTURE_FRAMES, dups)
    } else {
        flows
    }
}

/// Sets `packets` so that originals and copies make [`CAPTURE_FRAMES`].
fn sized(profile: String, dups: f64) -> String {
    format!(
        "packets = {}\n{profile}",
        originals_of(CAPTURE_FRAMES, dups)
    )
}

/// IPv4 UDP traffic of `flows` distinct 5-tuples (a power of two from
/// 4,096 up: 64 sources per destination, sources in 10.1.0.0/16 and up,
/// destinations in 10.64.0.0/10), each sending one original per pass of
/// the capture in turn, as many concurrent flows do on a TAP link; `dups`
/// of the originals copied 2 µs later by a second mirror point. `imix`:
/// 7 × 64, 4 × 594, 1 × 1,518 bytes; else 64 bytes.
fn many_flows(flows: u64, imix: bool, dups: f64) -> String {
    let sources = 64u64;
    let dests = flows / sources;
    let dst_last = 0x0a40_0000u32 + dests as u32 - 1;
    let mut s = format!(
        r#"packets = {flows}
rate_pps = 14880952
size = {size}

[[flow]]
name = "many"
src = "10.1.0.0/26"
dst = "10.64.0.0-{dst_last}"
proto = "udp"
src_port = 40000
dst_port = 5001
"#,
        size = if imix { "\"imix\"" } else { "64" },
        dst_last = std::net::Ipv4Addr::from(dst_last),
    );
    duplicates(&mut s, dups);
    s
}

/// IPv6 UDP frames of 96 bytes (the smallest that holds IPv6, UDP and the
/// sequence stamp, rounded up) over 1,024 flows, 25 % of the originals
/// copied 2 µs later with the hop limit − 1.
fn ipv6_traffic() -> String {
    let p = r#"rate_pps = 14880952
size = 96

[[flow]]
name = "clients6"
src = "2001:db8:1::/120"
dst = "2001:db8:2::1-2001:db8:2::4"
proto = "udp"
src_port = 40000
dst_port = 5001

[duplicates]
ratio = 0.25
delay_us = 2
ttl_delta = -1
"#;
    sized(p.to_owned(), 0.25)
}

/// 64-byte inner frames in VXLAN (outer IPv4), for the decap front-end.
fn vxlan_traffic() -> String {
    let mut s = ipv4_traffic(0.0);
    s.push_str(
        "\n[tunnel]\nkind = \"vxlan\"\nsrc = \"192.0.2.50\"\ndst = \"192.0.2.1\"\nvni = 100\n",
    );
    s
}

/// The captures of 1,024 flows.
fn small(name: &'static str, frames: &'static str, copies: f64, profile: String) -> Capture {
    Capture {
        name,
        flows: 1024,
        frames,
        copies,
        profile,
    }
}

/// A capture of many flows (see [`many_flows`]).
fn many(name: &'static str, flows: u64, imix: bool) -> Capture {
    Capture {
        name,
        flows,
        frames: if imix { "IMIX" } else { "64 B" },
        copies: 0.25,
        profile: many_flows(flows, imix, 0.25),
    }
}

/// Flows in the "64 Ki flows" captures.
pub const FLOWS_64K: u64 = 65_536;
/// Flows in the "1 Mi flows" captures.
pub const FLOWS_1M: u64 = 1 << 20;

/// Every scenario, the issue's first, then the same work on captures of
/// many flows.
pub fn all() -> Vec<Scenario> {
    let plain = small("1k-64b", "64 B", 0.0, ipv4_traffic(0.0));
    let dups = small("1k-64b-dups", "64 B", 0.25, ipv4_traffic(0.25));
    let v6 = small("1k-ipv6-dups", "96 B IPv6", 0.25, ipv6_traffic());
    let vxlan = small("1k-vxlan", "64 B in VXLAN", 0.0, vxlan_traffic());
    let full = |dests: Vec<Tunnel>| Work::Tap {
        rules: 1000,
        dedup: true,
        slice: Some(128),
        dests,
        meter: false,
    };
    let filter = |rules: usize| Work::Tap {
        rules,
        dedup: false,
        slice: None,
        dests: vec![Tunnel::Vxlan],
        meter: false,
    };
    let forward_all = Work::Tap {
        rules: 1,
        dedup: false,
        slice: None,
        dests: vec![Tunnel::Vxlan],
        meter: false,
    };
    let rules = Some(PeerWork::Rules { rules: 1024 });
    let sc = |name: &str,
              title: &str,
              capture: &Capture,
              work: Work,
              peer: Option<PeerWork>,
              target_ratio: Option<f64>| Scenario {
        name: name.to_owned(),
        title: title.to_owned(),
        capture: capture.clone(),
        work,
        workers: Workers::Poll,
        peer,
        target_ratio,
        target_ovs: None,
        target_mpps: None,
    };
    let mut v = vec![
        sc(
            "forward-all",
            "forward all, one VXLAN tunnel, no other work",
            &plain,
            forward_all.clone(),
            Some(PeerWork::Vxlan),
            Some(0.5),
        ),
        sc(
            "pass-through",
            "pass-through, no work (frames unchanged to a tool port)",
            &plain,
            Work::PassThrough,
            Some(PeerWork::Io),
            Some(0.9),
        ),
        sc(
            "tool-group",
            "pass-through to a two-member tool group (frames unchanged, by flow hash)",
            &plain,
            Work::ToolGroup,
            Some(PeerWork::Io),
            Some(0.8),
        ),
        sc(
            "filter-1k",
            "filter, 1,000 rules",
            &plain,
            filter(1000),
            rules,
            None,
        ),
        sc(
            "filter-1k-dedup",
            "filter 1k + dedup",
            &dups,
            Work::Tap {
                rules: 1000,
                dedup: true,
                slice: None,
                dests: vec![Tunnel::Vxlan],
                meter: false,
            },
            rules,
            None,
        ),
        sc(
            "full-1dest",
            "full pipeline, 1 destination",
            &dups,
            full(vec![Tunnel::Vxlan]),
            rules,
            Some(0.33),
        ),
        sc(
            "full-1dest-meter",
            "full pipeline, 1 destination, flow metering on (IPFIX to a local collector)",
            &dups,
            Work::Tap {
                rules: 1000,
                dedup: true,
                slice: Some(128),
                dests: vec![Tunnel::Vxlan],
                meter: true,
            },
            None,
            None,
        ),
        Scenario {
            workers: Workers::Adaptive,
            ..sc(
                "full-1dest-adaptive",
                "full pipeline, 1 destination, adaptive idle worker",
                &dups,
                full(vec![Tunnel::Vxlan]),
                None,
                None,
            )
        },
        Scenario {
            workers: Workers::OneLcore,
            ..sc(
                "full-1dest-1lcore",
                "full pipeline, 1 destination, one lcore (main runs the worker)",
                &dups,
                full(vec![Tunnel::Vxlan]),
                None,
                None,
            )
        },
        sc(
            "full-2dest",
            "full pipeline, 2 destinations",
            &dups,
            full(vec![Tunnel::Vxlan, Tunnel::Erspan3]),
            None,
            Some(0.25),
        ),
        sc(
            "erspan3",
            "full pipeline, ERSPAN III",
            &dups,
            full(vec![Tunnel::Erspan3]),
            None,
            None,
        ),
        sc(
            "decap",
            "decap (VXLAN in, inner frames out)",
            &vxlan,
            Work::Decap,
            None,
            Some(0.8),
        ),
        sc(
            "ipv6",
            "full pipeline, IPv6 traffic",
            &v6,
            full(vec![Tunnel::Vxlan]),
            None,
            None,
        ),
        sc(
            "filter-10k",
            "filter, 10,000 rules",
            &plain,
            filter(10_000),
            None,
            None,
        ),
    ];
    for cap in [
        many("64k-64b", FLOWS_64K, false),
        many("64k-imix", FLOWS_64K, true),
        many("1m-64b", FLOWS_1M, false),
        many("1m-imix", FLOWS_1M, true),
    ] {
        let tag = cap.name;
        let what = format!(
            "{} flows, {}, 25 % copies",
            if cap.flows == FLOWS_1M {
                "1 Mi"
            } else {
                "64 Ki"
            },
            cap.frames
        );
        let mut full1 = sc(
            &format!("full-1dest-{tag}"),
            &format!("full pipeline, 1 destination; {what}"),
            &cap,
            full(vec![Tunnel::Vxlan]),
            rules,
            None,
        );
        if tag == "64k-64b" {
            full1.target_ratio = Some(0.25);
            full1.target_ovs = Some(3.0);
        }
        v.push(full1);
        v.push(sc(
            &format!("filter-1k-{tag}"),
            &format!("filter, 1,000 rules; {what}"),
            &cap,
            filter(1000),
            rules,
            None,
        ));
        v.push(sc(
            &format!("filter-10k-{tag}"),
            &format!("filter, 10,000 rules; {what}"),
            &cap,
            filter(10_000),
            None,
            None,
        ));
        v.push(sc(
            &format!("forward-all-{tag}"),
            &format!("forward all; {what}"),
            &cap,
            forward_all.clone(),
            Some(PeerWork::Vxlan),
            None,
        ));
        v.push(sc(
            &format!("full-2dest-{tag}"),
            &format!("full pipeline, 2 destinations; {what}"),
            &cap,
            full(vec![Tunnel::Vxlan, Tunnel::Erspan3]),
            None,
            None,
        ));
    }
    v
}

/// xorshift64*: deterministic rules, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// An IPv4 prefix in 10.0.0.0/8 or 172.16.0.0/12 of a realistic length.
fn v4_cidr(r: &mut Rng) -> String {
    let lens = [8u32, 12, 16, 16, 20, 22, 24, 24, 24, 26, 28, 32, 32, 32];
    let len = lens[r.below(lens.len() as u64) as usize];
    let base = if r.below(4) == 0 {
        0xac10_0000 | (r.next_u64() as u32 & 0x000f_ffff)
    } else {
        0x0a00_0000 | (r.next_u64() as u32 & 0x00ff_ffff)
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("{}/{len}", std::net::Ipv4Addr::from(base & mask))
}

fn v6_cidr(r: &mut Rng) -> String {
    let lens = [32u32, 48, 56, 64, 64, 128];
    let len = lens[r.below(lens.len() as u64) as usize];
    let a = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128
        | u128::from(r.next_u64() as u16) << 80
        | u128::from(r.next_u64() as u16);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    format!("{}/{len}", std::net::Ipv6Addr::from(a & mask))
}

const PORTS: [u16; 12] = [22, 25, 53, 80, 123, 443, 3306, 5432, 6379, 8080, 8443, 9092];

/// The policy for `work`: `rules − 1` mixed rules (CIDRs of varied
/// lengths, port ranges, protocols, VLANs, TCP flags, some IPv6), each
/// sending to every destination, then one match-all rule. Every packet is
/// forwarded whichever rule it hits, so forwarding work is the same and
/// only classification varies with the rule count.
pub fn policy(work: &Work) -> String {
    if *work == Work::ToolGroup {
        return "version = \"perf-tools\"\n\n[[destination]]\nname = \"tools\"\nport = \"farm\"\ndedup = false\n\n[[rule]]\nname = \"all\"\nto = [\"tools\"]\n".to_owned();
    }
    let Work::Tap {
        rules,
        dedup,
        slice,
        dests,
        meter,
    } = work
    else {
        // Decap needs no TAP policy: an empty one drops nothing it handles.
        return "version = \"perf-decap\"\n".to_owned();
    };
    let mut s = String::from("version = \"perf\"\n");
    if *meter {
        s.push_str("metering = \"all\"\n");
    }
    let mut names = Vec::new();
    for (i, d) in dests.iter().enumerate() {
        let name = format!("d{i}");
        let _ = write!(s, "\n[[destination]]\nname = \"{name}\"\n");
        match d {
            Tunnel::Vxlan => {
                let _ = writeln!(
                    s,
                    "tunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = {}",
                    100 + i
                );
            }
            Tunnel::Erspan3 => {
                let _ = writeln!(
                    s,
                    "tunnel = \"erspan3\"\nremote = \"192.0.2.20\"\nsession = {}",
                    7 + i
                );
            }
        }
        let _ = writeln!(s, "dedup = {dedup}");
        if let Some(n) = slice {
            let _ = writeln!(s, "slice = {n}");
        }
        names.push(format!("\"{name}\""));
    }
    let to = names.join(", ");
    let mut r = Rng(0x5eed_1234_abcd_0001);
    for i in 0..rules.saturating_sub(1) {
        let _ = write!(s, "\n[[rule]]\nname = \"r{i}\"\n");
        let v6 = r.below(10) == 0;
        let cidr = |r: &mut Rng| if v6 { v6_cidr(r) } else { v4_cidr(r) };
        match r.below(4) {
            0 => {
                let _ = writeln!(s, "src = \"{}\"", cidr(&mut r));
            }
            1 => {
                let _ = writeln!(s, "dst = \"{}\"", cidr(&mut r));
            }
            _ => {
                let _ = writeln!(s, "src = \"{}\"\ndst = \"{}\"", cidr(&mut r), cidr(&mut r));
            }
        }
        match r.below(5) {
            0 => {}
            1 => {
                let _ = writeln!(s, "proto = \"udp\"");
            }
            2 => {
                let p = PORTS[r.below(PORTS.len() as u64) as usize];
                let _ = writeln!(s, "proto = \"tcp\"\ndst_port = {p}");
            }
            3 => {
                let lo = 1024 + r.below(30_000) as u16;
                let _ = writeln!(
                    s,
                    "proto = \"tcp\"\nsrc_port = \"{lo}-{}\"",
                    lo + r.below(2000) as u16
                );
            }
            _ => {
                let _ = writeln!(s, "proto = \"tcp\"\ntcp_flags = \"syn,!ack\"");
            }
        }
        if r.below(8) == 0 {
            let _ = writeln!(s, "vlan = {}", 1 + r.below(4000));
        }
        let _ = writeln!(s, "to = [{to}]");
    }
    let _ = write!(s, "\n[[rule]]\nname = \"all\"\nto = [{to}]\n");
    s
}

/// Flow table entries per worker in the metering scenarios: room for the
/// capture's flows many times over, as a deployment sizes it.
pub const METER_TABLE_ENTRIES: u32 = 1 << 18;

/// Sluice's appliance config: the capture in through `net_pcap` with
/// `infinite_rx=1`, the output a `net_null` that receives nothing.
/// `held` of the pool's `mbufs` are the capture, which `net_pcap` keeps
/// in the pool for the whole run: for a capture larger than the 1,024-flow
/// ones the guard's free-mbuf limit (10 % of the pool) is taken of the
/// rest, or the guard would see the capture as pressure and shed load.
/// A metering scenario exports to `collector` (none: no collector).
pub fn config(
    work: &Work,
    workers: Workers,
    capture: &str,
    tag: &str,
    mbufs: u32,
    held: u64,
    collector: Option<std::net::SocketAddr>,
) -> String {
    let mut common = format!(
        "\n[mempool]\nmbufs = {mbufs}\ncache = 256\n\n[dedup]\nwindow_us = {DEDUP_WINDOW_US}\n"
    );
    if let Work::Tap { meter: true, .. } = work {
        let collectors = collector.map(|c| format!("\"{c}\"")).unwrap_or_default();
        let _ = write!(
            common,
            "\n[flows]\ntable_entries = {METER_TABLE_ENTRIES}\ncollectors = [{collectors}]\n"
        );
    }
    if workers == Workers::Adaptive {
        common.push_str("\n[workers]\nidle = \"adaptive\"\n");
    }
    if held > CAPTURE_FRAMES {
        let working = u64::from(mbufs).saturating_sub(held);
        let pct = (10 * working / u64::from(mbufs).max(1)).max(1);
        let _ = write!(common, "\n[guard]\nmin_free_mbufs_pct = {pct}\n");
    }
    match work {
        Work::Tap { .. } => format!(
            r#"[appliance]
name = "perf"
id = 1

[[port]]
name = "tap0"
device = "net_pcap_in{tag},rx_pcap={capture},infinite_rx=1"
role = "input"

[[port]]
name = "uplink"
device = "net_null_up{tag},no-rx=1"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[[neighbor]]
ip = "192.0.2.20"
mac = "02:00:00:00:00:14"
{common}"#
        ),
        Work::ToolGroup => format!(
            r#"[appliance]
name = "perf"
id = 1

[[port]]
name = "tap0"
device = "net_pcap_in{tag},rx_pcap={capture},infinite_rx=1"
role = "input"

[[port]]
name = "tool0"
device = "net_null_t0{tag},no-rx=1"
role = "tool"

[[port]]
name = "tool1"
device = "net_null_t1{tag},no-rx=1"
role = "tool"

[[tool_group]]
name = "farm"
members = ["tool0", "tool1"]
{common}"#
        ),
        Work::Decap | Work::PassThrough => format!(
            r#"[appliance]
name = "perf"
id = 1

[[port]]
name = "span"
device = "net_pcap_in{tag},rx_pcap={capture},infinite_rx=1"
role = "input"
mode = "decap"

[[port]]
name = "tool"
device = "net_null_tool{tag},no-rx=1"
role = "tool"
{common}{pass}"#,
            pass = if *work == Work::PassThrough {
                "\n[decap]\nnon_tunnel = \"pass\"\n"
            } else {
                ""
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_policies_have_the_rule_count() {
        let mut names = std::collections::HashSet::new();
        for s in all() {
            assert!(names.insert(s.name.clone()), "{} twice", s.name);
            let p = pktgen::Profile::parse(&s.capture.profile)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let tuples: u64 = p.flows.iter().map(|f| f.tuples()).sum();
            assert_eq!(tuples, s.capture.flows, "{}", s.name);
            let ratio = p.duplicates.as_ref().map_or(0.0, |d| d.ratio);
            assert_eq!(ratio, s.capture.copies, "{}", s.name);
            let copies = (p.packets as f64 * ratio).floor() as u64;
            assert_eq!(p.packets + copies, s.capture.len(), "{}", s.name);
            if let Work::Tap { rules, .. } = &s.work {
                let p = policy(&s.work);
                assert_eq!(p.matches("[[rule]]").count(), *rules, "{}", s.name);
            }
        }
    }

    #[test]
    fn a_many_flow_capture_sends_each_flow_once_a_pass() {
        let cap = many("t", 4096, true);
        let p = pktgen::Profile::parse(&cap.profile).unwrap();
        let cycle = pktgen::generate(&p);
        assert_eq!(cycle.packets.len() as u64, cap.len());
        assert_eq!(cycle.per_flow.len(), 4096);
        assert!(cycle.per_flow.values().all(|n| *n == 1));
        let sizes: std::collections::HashSet<usize> =
            cycle.packets.iter().map(|p| p.size).collect();
        assert_eq!(sizes, [64, 594, 1518].into_iter().collect());
        // The pool holds the capture and the working mbufs.
        assert_eq!(cap.mbufs(1000), 4096 + 1024 + 1000);
    }
}
