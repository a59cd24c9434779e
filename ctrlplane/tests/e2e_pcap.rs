//! pcap in → sluice → pcap out: filter, dedup, slice and two destinations
//! (VXLAN and ERSPAN III), judged by tshark and by the bytes themselves;
//! large frames to two destinations, whose extra copy is an indirect clone.

mod common;

use std::path::Path;

use common::*;
use etherparse::PacketBuilder;

const CONFIG: &str = r#"
[appliance]
name = "e2e"
id = 5

[[port]]
name = "tap0"
device = "net_pcap_e2e_in,rx_pcap=@IN@"
role = "input"

[[port]]
name = "uplink"
device = "net_pcap_e2e_up,tx_pcap=@OUT@"
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

[dedup]
table_entries = 4096
"#;

const POLICY: &str = r#"
version = "e2e-1"

[[group]]
name = "servers"
cidrs = ["10.2.0.0/16"]

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100

[[destination]]
name = "ids"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 7
slice = 96

[[rule]]
name = "no-ssh"
proto = "tcp"
dst_port = 22
action = "drop"

[[rule]]
name = "servers"
dst_group = "servers"
to = ["noc", "ids"]

[[rule]]
name = "rest"
to = ["ids"]
"#;

struct Input {
    frames: Vec<Vec<u8>>,
    /// Frames that must reach the NOC, in order.
    to_noc: Vec<Vec<u8>>,
    /// Frames that must reach the IDS, in order (before slicing).
    to_ids: Vec<Vec<u8>>,
    ssh: usize,
    dups: usize,
}

fn tcp(dst: [u8; 4], port: u16, i: u32, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
        .ipv4([10, 1, 0, 1], dst, 64)
        .tcp(40000, port, i, 1000)
        .write(&mut out, &payload)
        .expect("build");
    out
}

/// The same IPv4 packet as another mirror point sees it: a VLAN tag, other
/// MACs, TTL one lower and the checksum to match.
fn mirror_copy(f: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(f.len() + 4);
    c.extend_from_slice(&[2, 0, 0, 0, 9, 9, 2, 0, 0, 0, 8, 8]);
    c.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    c.extend_from_slice(&f[12..]);
    let ip = 18;
    c[ip + 8] -= 1;
    c[ip + 10] = 0;
    c[ip + 11] = 0;
    let sum = dataplane::wire::checksum::checksum(&c[ip..ip + 20]);
    c[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    c
}

fn input() -> Input {
    let mut inp = Input {
        frames: Vec::new(),
        to_noc: Vec::new(),
        to_ids: Vec::new(),
        ssh: 0,
        dups: 0,
    };
    for i in 0..40u32 {
        match i % 4 {
            0 | 1 => {
                let f = tcp([10, 2, 0, 1], 443, i, 20 + 30 * (i as usize % 7));
                inp.frames.push(f.clone());
                inp.to_noc.push(f.clone());
                inp.to_ids.push(f.clone());
                if i % 4 == 0 {
                    inp.frames.push(mirror_copy(&f));
                    inp.dups += 1;
                }
            }
            2 => {
                inp.frames.push(tcp([10, 2, 0, 1], 22, i, 10));
                inp.ssh += 1;
            }
            _ => {
                let f = tcp([10, 9, 0, 1], 80, i, 200);
                inp.frames.push(f.clone());
                inp.to_ids.push(f);
            }
        }
    }
    inp
}

fn setup(dir: &Path, inp: &Input) -> (String, String) {
    write_pcap(&dir.join("in.pcap"), &inp.frames);
    let cfg = CONFIG
        .replace("@IN@", &dir.join("in.pcap").display().to_string())
        .replace("@OUT@", &dir.join("out.pcap").display().to_string());
    std::fs::write(dir.join("appliance.toml"), cfg).expect("config");
    std::fs::write(dir.join("policy.toml"), POLICY).expect("policy");
    (
        dir.join("appliance.toml").display().to_string(),
        dir.join("policy.toml").display().to_string(),
    )
}

#[test]
fn tap_aggregation_end_to_end() {
    let dir = tmpdir("e2e");
    let inp = input();
    let (cfg, pol) = setup(&dir, &inp);
    let out = sluice(
        &eal(&unique("e2e"), "0-1"),
        &[
            "--config",
            &cfg,
            "--policy",
            &pol,
            "--exit-when-idle",
            "300",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Counters: every packet in exactly one terminal.
    assert_accounting(&report);
    assert_eq!(total(&report, "rx"), inp.frames.len() as u64);
    assert_eq!(total(&report, "forwarded"), inp.to_ids.len() as u64);
    assert_eq!(total(&report, "filtered"), inp.ssh as u64);
    assert_eq!(total(&report, "deduplicated"), inp.dups as u64);
    assert_eq!(total(&report, "parse_errors"), 0);

    let pcap = dir.join("out.pcap");
    let frames = read_pcap(&pcap);
    assert_eq!(frames.len(), inp.to_noc.len() + inp.to_ids.len());

    // The NOC's tunnels: VXLAN VNI 100, DF set, inner frames byte for byte.
    let noc = tshark_fields(
        &pcap,
        "vxlan",
        &[
            "frame.number",
            "vxlan.vni",
            "ip.dst",
            "ip.flags.df",
            "udp.srcport",
            "udp.dstport",
            "eth.dst",
        ],
    );
    assert_eq!(noc.len(), inp.to_noc.len());
    for row in &noc {
        assert_eq!(row[1], "100");
        assert!(row[2].starts_with("192.0.2.10,10.2.0.1"), "{row:?}");
        assert!(row[3].starts_with("1"), "DF must be set: {row:?}");
        let sport: u16 = row[4]
            .split(',')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("udp port");
        assert!(sport >= 49152, "source port from the flow hash: {sport}");
        assert!(row[5].starts_with("4789"));
        assert!(
            row[6].starts_with("02:00:00:00:00:0a"),
            "next hop MAC: {row:?}"
        );
    }
    let inner_noc: Vec<Vec<u8>> = noc
        .iter()
        .map(|r| {
            let n: usize = r[0].parse().expect("frame number");
            frames[n - 1][14 + 20 + 8 + 8..].to_vec()
        })
        .collect();
    assert_eq!(
        inner_noc, inp.to_noc,
        "NOC gets the original frames, in order"
    );

    // The IDS's tunnels: ERSPAN III session 7, hardware ID = appliance ID,
    // ingress, sliced to 96 bytes with T set exactly when cut, sequence
    // numbers used once each.
    let ids = tshark_fields(
        &pcap,
        "erspan",
        &[
            "frame.number",
            "erspan.version",
            "erspan.spanid",
            "erspan.truncated",
            "erspan.hw",
            "erspan.direction",
            "gre.sequence_number",
            "ip.dst",
        ],
    );
    assert_eq!(ids.len(), inp.to_ids.len());
    let mut seqs = Vec::new();
    for (row, orig) in ids.iter().zip(&inp.to_ids) {
        assert_eq!(row[1], "2", "ERSPAN type III is version 2: {row:?}");
        assert_eq!(row[2], "7");
        assert_eq!(row[3], if orig.len() > 96 { "1" } else { "0" }, "{row:?}");
        assert_eq!(row[4], "5");
        assert_eq!(row[5], "0");
        assert!(row[7].starts_with("192.0.2.20"));
        seqs.push(row[6].parse::<u32>().expect("sequence"));
        let n: usize = row[0].parse().expect("frame number");
        // Outer Ethernet, IPv4, GRE with sequence, ERSPAN III, platform sub-header.
        let inner = &frames[n - 1][14 + 20 + 8 + 12 + 8..];
        assert_eq!(
            inner,
            &orig[..orig.len().min(96)],
            "IDS gets the sliced original"
        );
    }
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "each sequence number once");
    // Duplicates dropped by dedup and SSH dropped by the filter take no
    // number: a receiver that counts gaps as loss sees none.
    assert_eq!(
        sorted.last().map(|l| l - sorted[0] + 1),
        Some(seqs.len() as u32),
        "sequence numbers without a gap: {sorted:?}"
    );

    // tshark finds nothing malformed, except inside sliced copies whose
    // inner lengths tell the original size on purpose.
    assert_eq!(
        tshark_count(&pcap, "_ws.malformed && !(erspan.truncated == 1)"),
        0
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Replays `frames` through Sluice (one worker, the pcap uplink of
/// [`CONFIG`]) under `policy`, in `dir`; returns the exit report, whose
/// accounting balanced, and what the uplink sent.
fn run_policy(dir: &Path, name: &str, frames: &[Vec<u8>], policy: &str) -> (String, Vec<Vec<u8>>) {
    write_pcap(&dir.join("in.pcap"), frames);
    let cfg = CONFIG
        .replace("@IN@", &dir.join("in.pcap").display().to_string())
        .replace("@OUT@", &dir.join("out.pcap").display().to_string());
    std::fs::write(dir.join("appliance.toml"), cfg).expect("config");
    std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    let out = sluice(
        &eal(&unique(name), "0-1"),
        &[
            "--config",
            &dir.join("appliance.toml").display().to_string(),
            "--policy",
            &dir.join("policy.toml").display().to_string(),
            "--exit-when-idle",
            "300",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_accounting(&report);
    (report, read_pcap(&dir.join("out.pcap")))
}

#[test]
fn rate_limited_destination_counts_what_it_drops() {
    let dir = tmpdir("ratelimit");
    let frames: Vec<Vec<u8>> = (0..400u32)
        .map(|i| tcp([10, 2, 0, 1], 443, i, 100))
        .collect();
    // 100 packets/s: a bucket of 32 to start with, then one every 10 ms; the
    // capture replays far faster than that.
    let policy = "[[destination]]\nname = \"slow\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = 3\ndedup = false\nrate_pps = 100\n\n[[rule]]\nname = \"all\"\nto = [\"slow\"]\n";
    let (report, wire) = run_policy(&dir, "ratelimit", &frames, policy);
    let fwd = total(&report, "forwarded");
    let limited = total(&report, "dropped_rate_limit");
    assert_eq!(fwd + limited, frames.len() as u64, "{report}");
    assert!(
        fwd >= 32 && limited > 0,
        "the bucket's depth passes, the rest is limited: {fwd} {limited}"
    );
    assert_eq!(wire.len() as u64, fwd);
    let _ = std::fs::remove_dir_all(dir);
}

/// Two destinations for frames of 100 to 1,514 bytes, below and above the
/// size (1,024) from which the extra copy is an indirect clone behind a
/// header segment. The extra copy is the first destination's: ERSPAN III
/// sliced to 96 bytes for 10.2.0.0/16 (a copy of the frame's first 97
/// bytes, which the slice cuts: T set), and VXLAN of the whole frame, cut
/// to the MTU from 1,464 bytes (the cut shortens the clone's chain), for
/// 10.3.0.0/16; the original goes to the other. Both sides' inner frames
/// must be the input's bytes, the outer headers right, and every packet
/// counted once.
#[test]
fn large_frames_to_two_destinations() {
    let dir = tmpdir("clones");
    let sizes = [100usize, 300, 600, 1000, 1400, 1464, 1514];
    let mut frames = Vec::new();
    for i in 0..56u32 {
        let net = if i % 2 == 0 { 2 } else { 3 };
        let len = sizes[i as usize / 2 % sizes.len()];
        frames.push(tcp([10, net, 0, 1], 443, i, len - 54));
    }
    let policy = r#"
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
dedup = false

[[destination]]
name = "ids"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 7
slice = 96
dedup = false

[[rule]]
name = "ids-first"
dst = "10.2.0.0/16"
to = ["ids", "noc"]

[[rule]]
name = "noc-first"
dst = "10.3.0.0/16"
to = ["noc", "ids"]
"#;
    let (report, wire) = run_policy(&dir, "clones", &frames, policy);
    let n = frames.len() as u64;
    assert_eq!(total(&report, "rx"), n);
    assert_eq!(total(&report, "forwarded"), n, "{report}");
    assert_eq!(dest_tx(&report, "noc"), n, "{report}");
    assert_eq!(dest_tx(&report, "ids"), n, "{report}");
    // VXLAN leaves 1,464 bytes of a 1,500-byte MTU to the inner frame.
    let longer = frames.iter().filter(|f| f.len() > 1464).count() as u64;
    assert_eq!(
        dest_counter(&report, "noc", "truncated"),
        longer,
        "{report}"
    );

    let pcap = dir.join("out.pcap");
    assert_eq!(wire.len(), 2 * frames.len());
    let ipv4_ok = |f: &[u8]| {
        let ip = &f[14..34];
        u16::from_be_bytes([ip[2], ip[3]]) as usize == f.len() - 14
            && dataplane::wire::checksum::checksum(ip) == 0
    };
    let noc = tshark_fields(&pcap, "vxlan", &["frame.number", "vxlan.vni", "ip.dst"]);
    assert_eq!(noc.len(), frames.len());
    for (row, orig) in noc.iter().zip(&frames) {
        assert_eq!(row[1], "100", "{row:?}");
        assert!(row[2].starts_with("192.0.2.10,"), "{row:?}");
        let f = &wire[row[0].parse::<usize>().expect("frame number") - 1];
        assert!(ipv4_ok(f), "outer IPv4 length and checksum: {row:?}");
        assert_eq!(
            u16::from_be_bytes([f[38], f[39]]) as usize,
            f.len() - 34,
            "UDP length: {row:?}"
        );
        assert_eq!(
            &f[14 + 20 + 8 + 8..],
            &orig[..orig.len().min(1464)],
            "NOC gets the frame, cut to the MTU: {row:?}"
        );
    }
    let ids = tshark_fields(
        &pcap,
        "erspan",
        &["frame.number", "erspan.spanid", "erspan.truncated"],
    );
    assert_eq!(ids.len(), frames.len());
    for (row, orig) in ids.iter().zip(&frames) {
        assert_eq!(row[1], "7", "{row:?}");
        assert_eq!(row[2], if orig.len() > 96 { "1" } else { "0" }, "{row:?}");
        let f = &wire[row[0].parse::<usize>().expect("frame number") - 1];
        assert!(ipv4_ok(f), "outer IPv4 length and checksum: {row:?}");
        assert_eq!(
            &f[14 + 20 + 8 + 12 + 8..],
            &orig[..orig.len().min(96)],
            "IDS gets the sliced frame: {row:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Frames of every shape a match-all tunnel meets: plain IPv4 and IPv6
/// TCP and UDP (hashed at fixed offsets on the direct path), and frames
/// it parses first: 802.1Q-tagged, ICMP, a fragment, an IPv4 length that
/// lies (a parse error), no IP at all (hashed by MAC addresses); sizes
/// below and above what the MTU leaves the inner frame.
fn every_shape() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let build = |b: etherparse::PacketBuilderStep<etherparse::UdpHeader>, n: usize| {
        let mut out = Vec::new();
        b.write(&mut out, &vec![0x5a; n]).expect("build");
        out
    };
    for i in 0..24u32 {
        let len = [20usize, 300, 1460][i as usize % 3];
        let f = tcp([10, 2, (i % 5) as u8, 1], 443, i, len);
        frames.push(mirror_copy(&f));
        frames.push(f);
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2]);
        let v4 = eth.ipv4([10, 1, 0, i as u8], [10, 3, 0, 1], 64);
        frames.push(build(v4.udp(5000 + i as u16, 53), len));
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2]);
        let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        src[15] = i as u8;
        let v6 = eth.ipv6(
            src,
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        );
        frames.push(build(v6.udp(6000 + i as u16, 4789), len));
    }
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
        .ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, &[0; 32])
        .expect("build");
    frames.push(icmp);
    let mut fragment = tcp([10, 2, 0, 1], 443, 99, 100);
    fragment[20] = 0x20; // MF
    frames.push(fragment);
    let mut lying = tcp([10, 2, 0, 1], 443, 98, 100);
    lying[16..18].copy_from_slice(&1400u16.to_be_bytes());
    frames.push(lying);
    let mut not_ip = vec![2, 0, 0, 0, 3, 3, 2, 0, 0, 0, 4, 4, 0x88, 0xb5];
    not_ip.resize(60, 0xa5);
    frames.push(not_ip);
    frames
}

/// A match-all rule to one tunnel destination takes the direct path (no
/// parse for plain frames, no classification); behind a rule that never
/// matches (a classifier with a key to read) the same destination takes
/// the general path. Both must send the same bytes — VXLAN's source port
/// from the flow hash, ERSPAN II's sequence numbers, frames cut to the
/// MTU or dropped as too big — and count the same.
#[test]
fn a_match_all_tunnel_sends_what_the_general_path_sends() {
    let frames = every_shape();
    let tunnels = [
        "tunnel = \"vxlan\"\nvni = 100",
        "tunnel = \"erspan2\"\nsession = 7\noversize = \"drop\"",
    ];
    for tunnel in tunnels {
        let run = |general: bool| {
            let dir = tmpdir("direct-tunnel");
            let never = "[[rule]]\nname = \"never\"\nsrc = \"198.51.100.0/24\"\nto = [\"out\"]\n\n";
            let policy = format!(
                "[[destination]]\nname = \"out\"\n{tunnel}\nremote = \"192.0.2.10\"\ndedup = false\n\n{}[[rule]]\nname = \"all\"\nto = [\"out\"]\n",
                if general { never } else { "" }
            );
            let (report, wire) = run_policy(&dir, "direct-tunnel", &frames, &policy);
            assert_eq!(total(&report, "rx"), frames.len() as u64, "{report}");
            let _ = std::fs::remove_dir_all(dir);
            (wire, report)
        };
        let (direct, direct_report) = run(false);
        let (general, general_report) = run(true);
        assert_eq!(direct.len(), general.len(), "{tunnel}");
        for (k, (d, g)) in direct.iter().zip(&general).enumerate() {
            assert_eq!(d, g, "{tunnel}: frame {k}");
        }
        for counter in ["rx", "forwarded", "parse_errors", "dropped_too_big"] {
            assert_eq!(
                total(&direct_report, counter),
                total(&general_report, counter),
                "{tunnel}: {counter}\n{direct_report}\n{general_report}"
            );
        }
        assert_eq!(
            dest_row(&direct_report, "out"),
            dest_row(&general_report, "out"),
            "{tunnel}"
        );
        assert!(total(&direct_report, "parse_errors") > 0, "{direct_report}");
    }
}

/// Two destinations behind one match-all rule: every burst follows one
/// plan and takes the hoisted loop for several destinations. The same
/// frames with a dropped filler frame between each two make every burst
/// mixed, which takes the general path. Both must send the same bytes —
/// copies and clones (from 1,024 bytes), the slice, ERSPAN II's sequence
/// numbers, duplicates (the mirror copies) only to the destination that
/// keeps them — and count the same, every packet once.
#[test]
fn two_destinations_hoisted_send_what_the_general_path_sends() {
    let frames = every_shape();
    let policy = r#"
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
dedup = false

[[destination]]
name = "ids"
tunnel = "erspan2"
remote = "192.0.2.20"
session = 7
slice = 96
dedup = true

[[rule]]
name = "filler"
src = "198.51.100.0/24"

[[rule]]
name = "all"
to = ["noc", "ids"]
"#;
    let filler = {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
            .ipv4([198, 51, 100, 1], [10, 9, 0, 1], 64)
            .udp(9, 9)
            .write(&mut out, &[0; 18])
            .expect("build");
        out
    };
    let run = |mixed: bool| {
        let dir = tmpdir("two-dests");
        let input: Vec<Vec<u8>> = if mixed {
            frames
                .iter()
                .flat_map(|f| [f.clone(), filler.clone()])
                .collect()
        } else {
            frames.clone()
        };
        let (report, wire) = run_policy(&dir, "two-dests", &input, policy);
        assert_eq!(total(&report, "rx"), input.len() as u64, "{report}");
        let _ = std::fs::remove_dir_all(dir);
        (wire, report)
    };
    let (hoisted, hoisted_report) = run(false);
    let (general, general_report) = run(true);
    assert_eq!(
        total(&general_report, "filtered"),
        frames.len() as u64,
        "{general_report}"
    );
    assert_eq!(hoisted.len(), general.len());
    for (k, (h, g)) in hoisted.iter().zip(&general).enumerate() {
        assert_eq!(h, g, "frame {k}");
    }
    for counter in ["forwarded", "deduplicated", "parse_errors"] {
        assert_eq!(
            total(&hoisted_report, counter),
            total(&general_report, counter),
            "{counter}\n{hoisted_report}\n{general_report}"
        );
    }
    // Each duplicate still went to the NOC: forwarded, not deduplicated.
    assert_eq!(
        total(&hoisted_report, "deduplicated"),
        0,
        "{hoisted_report}"
    );
    for dest in ["noc", "ids"] {
        assert_eq!(
            dest_row(&hoisted_report, dest),
            dest_row(&general_report, dest),
            "{dest}"
        );
    }
    // The mirror copies went to the NOC only.
    assert!(
        dest_tx(&hoisted_report, "noc") > dest_tx(&hoisted_report, "ids"),
        "{hoisted_report}"
    );
}
