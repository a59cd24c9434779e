//! The end-to-end scenarios: the traffic (a pktgen profile), Sluice's
//! policy and config, and what the issue asks of each.

use std::fmt::Write;

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
    },
    /// The decap front-end: tunnels in, inner frames out on a tool port.
    Decap,
    /// A decap input with `non_tunnel = "pass"` fed frames that are not
    /// tunnels: each is classified and handed to the tool port unchanged.
    /// Sluice's closest equivalent of testpmd's io forwarding.
    PassThrough,
}

/// Tunnel of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan,
    Erspan3,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// pktgen profile of the input capture.
    pub profile: String,
    pub work: Work,
    /// The issue's target for Sluice / testpmd, if any.
    pub target_ratio: Option<f64>,
    /// The issue's per-worker target in Mpps, if any.
    pub target_mpps: Option<f64>,
}

/// Frames in each capture: `net_pcap` replays it in a loop, so one pass
/// must last longer than the dedup window (see [`DEDUP_WINDOW_US`]).
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
/// 4,096-entry flow cache); `dups` of the originals copied 2 µs later
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
    if dups > 0.0 {
        let _ = write!(
            s,
            "\n[duplicates]\nratio = {dups}\ndelay_us = 2\nttl_delta = -1\nsrc_mac = \"02:00:00:00:00:99\"\n"
        );
    }
    sized(s, dups)
}

/// Sets `packets` so that originals and copies make [`CAPTURE_FRAMES`].
fn sized(profile: String, dups: f64) -> String {
    let originals = (CAPTURE_FRAMES as f64 / (1.0 + dups)).round() as u64;
    format!("packets = {originals}\n{profile}")
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

/// Every scenario the issue lists, in its order.
pub fn all() -> Vec<Scenario> {
    let full = |dests: Vec<Tunnel>| Work::Tap {
        rules: 1000,
        dedup: true,
        slice: Some(128),
        dests,
    };
    vec![
        Scenario {
            name: "forward-all",
            title: "forward all, one VXLAN tunnel, no other work",
            profile: ipv4_traffic(0.0),
            work: Work::Tap {
                rules: 1,
                dedup: false,
                slice: None,
                dests: vec![Tunnel::Vxlan],
            },
            target_ratio: Some(0.9),
            target_mpps: None,
        },
        Scenario {
            name: "pass-through",
            title: "pass-through, no work (frames unchanged to a tool port)",
            profile: ipv4_traffic(0.0),
            work: Work::PassThrough,
            target_ratio: Some(0.9),
            target_mpps: None,
        },
        Scenario {
            name: "filter-1k",
            title: "filter, 1,000 rules",
            profile: ipv4_traffic(0.0),
            work: Work::Tap {
                rules: 1000,
                dedup: false,
                slice: None,
                dests: vec![Tunnel::Vxlan],
            },
            target_ratio: None,
            target_mpps: None,
        },
        Scenario {
            name: "filter-1k-dedup",
            title: "filter 1k + dedup",
            profile: ipv4_traffic(0.25),
            work: Work::Tap {
                rules: 1000,
                dedup: true,
                slice: None,
                dests: vec![Tunnel::Vxlan],
            },
            target_ratio: None,
            target_mpps: None,
        },
        Scenario {
            name: "full-1dest",
            title: "full pipeline, 1 destination",
            profile: ipv4_traffic(0.25),
            work: full(vec![Tunnel::Vxlan]),
            target_ratio: Some(0.5),
            target_mpps: Some(14.88),
        },
        Scenario {
            name: "full-2dest",
            title: "full pipeline, 2 destinations",
            profile: ipv4_traffic(0.25),
            work: full(vec![Tunnel::Vxlan, Tunnel::Erspan3]),
            target_ratio: Some(0.4),
            target_mpps: None,
        },
        Scenario {
            name: "erspan3",
            title: "full pipeline, ERSPAN III",
            profile: ipv4_traffic(0.25),
            work: full(vec![Tunnel::Erspan3]),
            target_ratio: None,
            target_mpps: None,
        },
        Scenario {
            name: "decap",
            title: "decap (VXLAN in, inner frames out)",
            profile: vxlan_traffic(),
            work: Work::Decap,
            target_ratio: Some(0.8),
            target_mpps: None,
        },
        Scenario {
            name: "ipv6",
            title: "full pipeline, IPv6 traffic",
            profile: ipv6_traffic(),
            work: full(vec![Tunnel::Vxlan]),
            target_ratio: None,
            target_mpps: None,
        },
        Scenario {
            name: "filter-10k",
            title: "filter, 10,000 rules",
            profile: ipv4_traffic(0.0),
            work: Work::Tap {
                rules: 10_000,
                dedup: false,
                slice: None,
                dests: vec![Tunnel::Vxlan],
            },
            target_ratio: None,
            target_mpps: None,
        },
    ]
}

/// xorshift64*: deterministic rules, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An IPv4 prefix in 10.0.0.0/8 or 172.16.0.0/12 of a realistic length.
fn v4_cidr(r: &mut Rng) -> String {
    let lens = [8u32, 12, 16, 16, 20, 22, 24, 24, 24, 26, 28, 32, 32, 32];
    let len = lens[r.below(lens.len() as u64) as usize];
    let base = if r.below(4) == 0 {
        0xac10_0000 | (r.next() as u32 & 0x000f_ffff)
    } else {
        0x0a00_0000 | (r.next() as u32 & 0x00ff_ffff)
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("{}/{len}", std::net::Ipv4Addr::from(base & mask))
}

fn v6_cidr(r: &mut Rng) -> String {
    let lens = [32u32, 48, 56, 64, 64, 128];
    let len = lens[r.below(lens.len() as u64) as usize];
    let a = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128
        | u128::from(r.next() as u16) << 80
        | u128::from(r.next() as u16);
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
    let Work::Tap {
        rules,
        dedup,
        slice,
        dests,
    } = work
    else {
        // Decap needs no TAP policy: an empty one drops nothing it handles.
        return "version = \"perf-decap\"\n".to_owned();
    };
    let mut s = String::from("version = \"perf\"\n");
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

/// Sluice's appliance config: the capture in through `net_pcap` with
/// `infinite_rx=1`, the output a `net_null` that receives nothing.
pub fn config(work: &Work, capture: &str, tag: &str, mbufs: u32) -> String {
    let common = format!(
        "\n[mempool]\nmbufs = {mbufs}\ncache = 256\n\n[dedup]\nwindow_us = {DEDUP_WINDOW_US}\n"
    );
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

[uplink]
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
        for s in all() {
            pktgen::Profile::parse(&s.profile).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            if let Work::Tap { rules, .. } = &s.work {
                let p = policy(&s.work);
                assert_eq!(p.matches("[[rule]]").count(), *rules, "{}", s.name);
            }
        }
    }
}
