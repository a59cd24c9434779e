//! Capture files as inputs (`file = ...`): every link type Sluice carries,
//! the link-type field's upper bits, lenient pcapng, runs that end by
//! themselves, and replay at capture timing under dedup.
//!
//! The captures are written here byte by byte and judged by tshark: the
//! frames Sluice tunnels carry the IP packets tshark reads in the input.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use etherparse::PacketBuilder;

const UPLINK: &str = r#"
[[port]]
name = "uplink"
device = "net_pcap_ci_up@N@,tx_pcap=@OUT@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[dedup]
table_entries = 4096
"#;

/// Everything to one VXLAN destination; `@DEDUP@` true or false.
const POLICY: &str = r#"
version = "capture-inputs"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
dedup = @DEDUP@

[[rule]]
name = "all"
to = ["noc"]
"#;

/// VXLAN over IPv4: outer Ethernet, IPv4, UDP, VXLAN.
const OUTER: usize = 14 + 20 + 8 + 8;

// ---------------------------------------------------------------------
// Packets and the link layers around them.

fn udp4(tag: u8, i: u16, ttl: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, tag, 1], [10, 1, tag, 2], ttl)
        .udp(30000 + i, 40001)
        .write(&mut out, format!("capture {tag} packet {i}").as_bytes())
        .expect("build");
    out
}

fn udp6(tag: u8, i: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut src = [0u8; 16];
    src[..2].copy_from_slice(&[0x20, 0x01]);
    src[14] = tag;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    PacketBuilder::ipv6(src, dst, 64)
        .udp(31000 + i, 40001)
        .write(&mut out, format!("capture {tag} v6 packet {i}").as_bytes())
        .expect("build");
    out
}

fn ethernet(ip: &[u8]) -> Vec<u8> {
    let ethertype: [u8; 2] = if ip[0] >> 4 == 6 {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    };
    [
        &[2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa][..],
        &ethertype,
        ip,
    ]
    .concat()
}

fn ethertype(ip: &[u8]) -> u16 {
    if ip[0] >> 4 == 6 {
        0x86dd
    } else {
        0x0800
    }
}

/// Linux cooked v1: incoming, Ethernet interface, the sender's MAC.
fn sll(ip: &[u8]) -> Vec<u8> {
    let mut h = vec![0, 0, 0, 1, 0, 6, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0];
    h.extend_from_slice(&ethertype(ip).to_be_bytes());
    [&h[..], ip].concat()
}

/// Linux cooked v2: sent by us on a tunnel interface (no MAC).
fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut h = ethertype(ip).to_be_bytes().to_vec();
    h.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0xff, 0xfe, 4, 0]);
    h.extend_from_slice(&[0; 8]);
    [&h[..], ip].concat()
}

/// BSD loopback, the capturing host's byte order (little-endian here).
fn null(ip: &[u8]) -> Vec<u8> {
    let family: u32 = if ip[0] >> 4 == 6 { 30 } else { 2 };
    [&family.to_le_bytes()[..], ip].concat()
}

/// OpenBSD loopback: the family in network byte order.
fn loopback(ip: &[u8]) -> Vec<u8> {
    let family: u32 = if ip[0] >> 4 == 6 { 24 } else { 2 };
    [&family.to_be_bytes()[..], ip].concat()
}

// ---------------------------------------------------------------------
// Capture writers (the formats as pcap-savefile(5) and pcapng specify).

/// One captured frame: time (ns), bytes, length on the wire.
struct Rec {
    ns: u64,
    data: Vec<u8>,
    wire: u32,
}

fn rec(ns: u64, data: Vec<u8>) -> Rec {
    let wire = data.len() as u32;
    Rec { ns, data, wire }
}

/// A µs pcap file with this link-type field (upper bits included).
fn write_pcap_link(path: &Path, link_field: u32, recs: &[Rec]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 262_144, link_field] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    for r in recs {
        let (s, us) = (
            (r.ns / 1_000_000_000) as u32,
            ((r.ns / 1000) % 1_000_000) as u32,
        );
        for v in [s, us, r.data.len() as u32, r.wire] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&r.data);
    }
    std::fs::write(path, f).expect("write pcap");
}

fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (body.len() + 12) as u32;
    [
        &kind.to_le_bytes()[..],
        &len.to_le_bytes(),
        &body,
        &len.to_le_bytes(),
    ]
    .concat()
}

fn ng_opt(code: u16, v: &[u8]) -> Vec<u8> {
    let mut o = [&code.to_le_bytes()[..], &(v.len() as u16).to_le_bytes(), v].concat();
    o.resize(o.len().div_ceil(4) * 4, 0);
    o
}

/// A pcapng file full of what older readers trip on: options and blocks
/// nobody registered, a custom block, options on every packet.
fn write_pcapng_unknown_options(path: &Path, link_type: u16, recs: &[Rec]) {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    shb.extend(ng_opt(0x0bad, b"an option nobody registered"));
    shb.extend(ng_opt(4, b"sluice test"));
    shb.extend(ng_opt(0, &[]));
    let mut f = ng_block(0x0a0d_0d0a, &shb);
    f.extend(ng_block(0x0000_7bad, b"a block nobody registered"));
    let mut idb = link_type.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&0u32.to_le_bytes());
    idb.extend(ng_opt(2, b"eth0"));
    idb.extend(ng_opt(9, &[9])); // ns resolution
    idb.extend(ng_opt(0x7777, &[1, 2, 3]));
    idb.extend(ng_opt(0, &[]));
    f.extend(ng_block(1, &idb));
    // A custom block (PEN 32473, the documentation number).
    f.extend(ng_block(
        0x4000_0bad,
        &[&32473u32.to_le_bytes()[..], b"x"].concat(),
    ));
    for r in recs {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((r.ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(r.ns as u32).to_le_bytes());
        epb.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&r.wire.to_le_bytes());
        epb.extend_from_slice(&r.data);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        epb.extend(ng_opt(1, b"a comment"));
        epb.extend(ng_opt(0x1234, &[9; 5]));
        epb.extend(ng_opt(0, &[]));
        f.extend(ng_block(6, &epb));
        f.extend(ng_block(5, &[0u8; 12])); // interface statistics
    }
    std::fs::write(path, f).expect("write pcapng");
}

// ---------------------------------------------------------------------
// Running Sluice on capture inputs.

/// A capture input's port section.
fn capture_port(name: &str, file: &Path, extra: &str) -> String {
    format!(
        "[[port]]\nname = {name:?}\nrole = \"input\"\nfile = {:?}\n{extra}\n",
        file.display().to_string()
    )
}

struct Run {
    code: Option<i32>,
    report: String,
    stderr: String,
    out: PathBuf,
}

/// Runs Sluice on these input sections until it ends by itself (idle for
/// `idle_ms`), or fails the test after a minute.
fn run(dir: &Path, inputs: &str, dedup: bool, idle_ms: u32) -> Run {
    let out = dir.join("out.pcap");
    let n = seq();
    let cfg = format!(
        "{inputs}\n{}",
        UPLINK
            .replace("@OUT@", &out.display().to_string())
            .replace("@N@", &format!("{}x{n}", std::process::id()))
    );
    std::fs::write(dir.join("appliance.toml"), cfg).expect("config");
    std::fs::write(
        dir.join("policy.toml"),
        POLICY.replace("@DEDUP@", &dedup.to_string()),
    )
    .expect("policy");
    let args = [
        "--config".to_owned(),
        dir.join("appliance.toml").display().to_string(),
        "--policy".to_owned(),
        dir.join("policy.toml").display().to_string(),
        "--exit-when-idle".to_owned(),
        idle_ms.to_string(),
    ];
    let (code, report, stderr) = run_to_end(&eal(&unique("capin"), "0-1"), &args, 60);
    Run {
        code,
        report,
        stderr,
        out,
    }
}

/// Runs sluice to its end; kills it and fails the test if it runs longer
/// than `secs` (a run that does not end is the failure).
fn run_to_end(eal: &[String], args: &[String], secs: u64) -> (Option<i32>, String, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(eal)
        .arg("--")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sluice did not end by itself within {secs} s:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// The capture input line of `port` in the report's port statistics.
fn capture_line<'a>(report: &'a str, port: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(&format!("capture input {port:?}")))
        .unwrap_or_else(|| panic!("no capture input {port} in:\n{report}"))
}

/// A counter of a capture input line (`fed 12`).
fn capture_counter(report: &str, port: &str, name: &str) -> u64 {
    let line = capture_line(report, port);
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            if let Some(v) = words
                .next()
                .and_then(|v| v.trim_end_matches([';', ',']).parse().ok())
            {
                return v;
            }
        }
    }
    panic!("no {name} in {line}");
}

/// What tshark reads of each IP packet: version, addresses, IPv4 ID, UDP
/// ports and payload (the innermost of each, so tunnels show their inner
/// packet).
fn tshark_ip_packets(pcap: &Path, filter: &str) -> BTreeMap<Vec<String>, usize> {
    let rows = tshark_fields(
        pcap,
        filter,
        &[
            "ip.src",
            "ip.dst",
            "ip.id",
            "ipv6.src",
            "ipv6.dst",
            "udp.srcport",
            "udp.dstport",
            "data.data",
        ],
    );
    let mut out = BTreeMap::new();
    for r in rows {
        let last = |i: usize| r[i].rsplit(',').next().unwrap_or("").to_owned();
        let key = if !r[3].is_empty() {
            vec!["6".into(), last(3), last(4), last(5), last(6), last(7)]
        } else {
            vec![
                "4".into(),
                last(0),
                last(1),
                last(2),
                last(5),
                last(6),
                last(7),
            ]
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

// ---------------------------------------------------------------------
// Tests.

#[test]
fn every_carried_link_type_tunnels_the_ip_packets_tshark_reads() {
    let dir = tmpdir("capin-links");
    let ts = |i: u16| 1_700_000_000_000_000_000 + u64::from(i) * 1_000_000;
    type Frame = fn(&[u8]) -> Vec<u8>;
    let with_fcs = |ip: &[u8]| {
        let mut f = ethernet(ip);
        f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        f
    };
    // (name, link-type field, frame builder, IPv4, IPv6, pcapng)
    let cases: Vec<(&str, u32, Frame, bool, bool, bool)> = vec![
        ("eth-bits-3", 0x3000_0001, ethernet, true, true, false),
        ("eth-bits-4", 0x4000_0001, ethernet, true, true, false),
        ("eth-p-bit", 0x0400_0001, ethernet, true, true, false),
        ("eth-fcs", 0x2400_0001, with_fcs, true, true, false),
        ("pcapng", 1, ethernet, true, true, true),
        ("sll", 113, sll, true, true, false),
        ("sll2", 276, sll2, true, true, true),
        ("raw", 101, |ip| ip.to_vec(), true, true, false),
        ("ipv4", 228, |ip| ip.to_vec(), true, false, false),
        ("ipv6", 229, |ip| ip.to_vec(), false, true, false),
        ("null", 0, null, true, true, false),
        ("loop", 108, loopback, true, true, true),
    ];
    let mut inputs = String::new();
    let mut expected = BTreeMap::new();
    let mut ip_packets = Vec::new();
    for (tag, (name, field, frame, v4, v6, ng)) in cases.iter().enumerate() {
        let tag = tag as u8;
        let mut recs = Vec::new();
        for i in 0..5u16 {
            let mut ips = Vec::new();
            if *v4 {
                ips.push(udp4(tag, i, 64));
            }
            if *v6 {
                ips.push(udp6(tag, i));
            }
            for ip in ips {
                recs.push(rec(ts(i), frame(&ip)));
                ip_packets.push(ip);
            }
        }
        let file = dir.join(format!("{name}.{}", if *ng { "pcapng" } else { "pcap" }));
        if *ng {
            write_pcapng_unknown_options(&file, *field as u16, &recs);
        } else {
            write_pcap_link(&file, *field, &recs);
        }
        // tshark's reading of the input is what the tunnels must carry.
        let read = tshark_ip_packets(&file, "udp");
        assert_eq!(
            read.values().sum::<usize>(),
            recs.len(),
            "tshark reads every frame of {name}: {read:?}"
        );
        for (k, v) in read {
            *expected.entry(k).or_insert(0) += v;
        }
        inputs.push_str(&capture_port(name, &file, ""));
    }
    let r = run(&dir, &inputs, false, 300);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_accounting(&r.report);
    assert_eq!(
        total(&r.report, "rx"),
        ip_packets.len() as u64,
        "{}",
        r.report
    );
    assert_eq!(total(&r.report, "forwarded"), ip_packets.len() as u64);
    for (name, ..) in &cases {
        assert_eq!(
            capture_counter(&r.report, name, "read"),
            capture_counter(&r.report, name, "fed"),
            "{}",
            r.report
        );
    }

    // The tunnels carry the same IP packets tshark read in the inputs...
    let got = tshark_ip_packets(&r.out, "vxlan");
    assert_eq!(got, expected);
    // ...byte for byte, each after an Ethernet header and nothing else
    // (no FCS, no padding).
    let mut inner_ips: Vec<Vec<u8>> = read_pcap(&r.out)
        .iter()
        .map(|f| f[OUTER + 14..].to_vec())
        .collect();
    inner_ips.sort();
    ip_packets.sort();
    assert_eq!(inner_ips, ip_packets);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_link_type_sluice_cannot_carry_is_refused_by_name() {
    let dir = tmpdir("capin-refuse");
    let file = dir.join("wifi.pcap");
    write_pcap_link(&file, 127, &[rec(0, vec![0; 40])]);
    let r = run(&dir, &capture_port("wifi", &file, ""), false, 300);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("IEEE802_11_RADIOTAP (127)")
            && r.stderr.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
    // Through net_pcap, a cooked capture is refused with the way to read it.
    let sll_file = dir.join("any.pcap");
    write_pcap_link(&sll_file, 113, &[rec(0, sll(&udp4(1, 1, 64)))]);
    let inputs = format!(
        "[[port]]\nname = \"tap\"\nrole = \"input\"\ndevice = \"net_pcap_ci_sll{},rx_pcap={}\"\n",
        seq(),
        sll_file.display()
    );
    let r = run(&dir, &inputs, false, 300);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("LINUX_SLL (113)") && r.stderr.contains("file = "),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn empty_and_all_invalid_captures_end_by_themselves() {
    let dir = tmpdir("capin-empty");
    let empty = dir.join("empty.pcap");
    write_pcap_link(&empty, 1, &[]);
    let empty_ng = dir.join("empty.pcapng");
    write_pcapng_unknown_options(&empty_ng, 1, &[]);
    // BIG TCP: GSO super-packets over 64 KiB, which no port can hand over.
    let big: Vec<Rec> = (0..3u64)
        .map(|i| {
            rec(
                i,
                ethernet(&[&udp4(9, i as u16, 64)[..], &vec![0u8; 70_000]].concat()),
            )
        })
        .collect();
    let bigtcp = dir.join("bigtcp.pcap");
    write_pcap_link(&bigtcp, 1, &big);

    // Nothing arrives at all.
    let inputs = capture_port("empty", &empty, "") + &capture_port("emptyng", &empty_ng, "");
    let r = run(&dir, &inputs, false, 200);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("inputs idle: stopping (nothing valid arrived)"),
        "{}",
        r.stderr
    );
    assert_eq!(total(&r.report, "rx"), 0);
    assert_accounting(&r.report);
    for port in ["empty", "emptyng"] {
        assert_eq!(capture_counter(&r.report, port, "read"), 0);
        assert!(
            capture_line(&r.report, port).ends_with("done"),
            "{}",
            r.report
        );
    }

    // Nothing valid arrives: the capture input skips the frames it cannot
    // hand over, net_pcap drops them on receipt (rx_invalid).
    let inputs = capture_port("big", &bigtcp, "")
        + &format!(
            "[[port]]\nname = \"bigpcap\"\nrole = \"input\"\ndevice = \"net_pcap_ci_big{},rx_pcap={}\"\n",
            seq(),
            bigtcp.display()
        );
    let r = run(&dir, &inputs, false, 200);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(total(&r.report, "rx"), 0, "{}", r.report);
    assert_eq!(total(&r.report, "rx_invalid"), 3, "{}", r.report);
    assert_eq!(capture_counter(&r.report, "big", "read"), 3);
    assert_eq!(capture_counter(&r.report, "big", "too-big"), 3);
    assert_eq!(capture_counter(&r.report, "big", "fed"), 0);
    assert_accounting(&r.report);
    let _ = std::fs::remove_dir_all(dir);
}

/// A packet, its copy from a second mirror point 0.5 s later (other TTL),
/// and a true duplicate 10 ms after the first: per round, three frames.
fn copies_apart(rounds: u16) -> Vec<Rec> {
    let mut recs = Vec::new();
    for i in 0..rounds {
        let t = 1_700_000_000_000_000_000 + u64::from(i) * 2_000_000_000;
        recs.push(rec(t, ethernet(&udp4(7, i, 64))));
        recs.push(rec(t + 10_000_000, ethernet(&udp4(7, i, 63))));
        recs.push(rec(t + 500_000_000, ethernet(&udp4(7, i, 62))));
    }
    recs
}

#[test]
fn copies_half_a_second_apart_are_kept_apart_at_capture_timing() {
    let dir = tmpdir("capin-timing");
    let file = dir.join("copies.pcap");
    write_pcap_link(&file, 1, &copies_apart(4));

    // At capture timing (1000 times as fast: the run takes milliseconds)
    // dedup's 50 ms window runs on capture time: the copy 10 ms later is
    // merged, the one 0.5 s later is kept. Twice through the file: the
    // second pass is not taken for copies of the first.
    let extra = "timing = \"capture\"\nspeed = 1000.0\nloop = 2";
    let r = run(&dir, &capture_port("copies", &file, extra), true, 300);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_accounting(&r.report);
    assert_eq!(total(&r.report, "rx"), 24, "{}", r.report);
    assert_eq!(total(&r.report, "forwarded"), 16, "{}", r.report);
    assert_eq!(total(&r.report, "deduplicated"), 8, "{}", r.report);
    assert_eq!(capture_counter(&r.report, "copies", "loops-done"), 2);
    // The tunnels carry the first sighting and the late copy, each round.
    let ttls: Vec<String> = tshark_fields(&r.out, "vxlan", &["ip.ttl"])
        .iter()
        .map(|row| row[0].rsplit(',').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ttls.iter().filter(|t| *t == "64").count(), 8);
    assert_eq!(ttls.iter().filter(|t| *t == "62").count(), 8);

    // Read fast, the same file is judged by arrival time: the whole file
    // arrives within one window and the late copy is merged too (the
    // README's caveat).
    let r = run(&dir, &capture_port("copies", &file, ""), true, 300);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_accounting(&r.report);
    assert_eq!(total(&r.report, "rx"), 12);
    assert_eq!(total(&r.report, "deduplicated"), 8, "{}", r.report);
    let _ = std::fs::remove_dir_all(dir);
}

fn reference_captures() -> Vec<PathBuf> {
    let dir = std::env::var_os("SLUICE_CAPTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/tcpdump"),
        PathBuf::from,
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reference captures at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    paths.sort();
    paths
}

/// How many records the pcap-file crate finds (without validating them:
/// some of these captures are deliberately malformed).
fn read_all_records(path: &Path) -> usize {
    let f = std::fs::File::open(path).expect("open capture");
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("pcap header");
    let mut n = 0;
    while let Some(p) = r.next_raw_packet() {
        p.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    n
}

/// The low 16 bits of a pcap file's link-type field (pcap-savefile(5)).
fn pcap_link_type(path: &Path) -> u16 {
    let h = std::fs::read(path).expect("read capture");
    let field = if h[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || h[..4] == [0x4d, 0x3c, 0xb2, 0xa1] {
        u32::from_le_bytes([h[20], h[21], h[22], h[23]])
    } else {
        u32::from_be_bytes([h[20], h[21], h[22], h[23]])
    };
    field as u16
}

#[test]
fn every_reference_capture_is_replayed_or_refused_by_its_link_type_name() {
    // Link types Sluice carries, as pcap-linktype(7) numbers them.
    const CARRIED: [u16; 9] = [0, 1, 12, 101, 108, 113, 228, 229, 276];
    let dir = tmpdir("capin-corpus");
    let (carried, other): (Vec<PathBuf>, Vec<PathBuf>) = reference_captures()
        .into_iter()
        .partition(|p| CARRIED.contains(&pcap_link_type(p)));
    assert!(
        carried.len() >= 70 && !other.is_empty(),
        "{carried:?} {other:?}"
    );
    // DPDK has 32 ports: a few dozen inputs per run.
    for batch in carried.chunks(24) {
        let inputs: String = batch
            .iter()
            .enumerate()
            .map(|(i, p)| capture_port(&format!("c{i}"), p, ""))
            .collect();
        let r = run(&dir, &inputs, false, 200);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_accounting(&r.report);
        let mut fed = 0;
        for (i, p) in batch.iter().enumerate() {
            let name = format!("c{i}");
            // An independent reader finds as many frames as the capture
            // input read (tshark agrees on every one of these files).
            let frames = read_all_records(p);
            assert_eq!(
                capture_counter(&r.report, &name, "read"),
                frames as u64,
                "{}:\n{}",
                p.display(),
                r.report
            );
            fed += capture_counter(&r.report, &name, "fed");
        }
        assert_eq!(total(&r.report, "rx"), fed, "{}", r.report);
    }
    for p in &other {
        let r = run(&dir, &capture_port("other", p, ""), false, 200);
        assert_eq!(
            r.code,
            Some(2),
            "{} was accepted:\n{}",
            p.display(),
            r.stderr
        );
        let name = format!("({})", pcap_link_type(p));
        assert!(
            r.stderr.contains("link type ") && r.stderr.contains(&name),
            "{}: the refusal does not name the link type:\n{}",
            p.display(),
            r.stderr
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
