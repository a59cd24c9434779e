//! Hostile input through a running appliance on virtual devices: every
//! reference capture, hand-made malformed and oversized frames, tunnels
//! nested past the decap limit, and capture files of the wrong link type.
//!
//! What must hold whatever comes in: Sluice exits 0, every received frame
//! is in exactly one terminal counter (`difference 0`), `rx` is the number
//! of frames in the file, a match-all policy forwards every frame however
//! broken, and what is malformed is counted in `parse_errors`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{Decap, DecapConfig, DecapOutcome};
use dataplane::stage::encap::{
    EncapConfig, EncapMeta, EncapTemplate, OuterConfig, OversizePolicy, TunnelConfig,
};
use dataplane::stage::parse::parse;
use dataplane::wire::ethernet::Address;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

/// Bytes of a frame in the first mbuf: data room 2176 less the 128-byte
/// headroom. `net_pcap` chains longer frames over several mbufs; parse
/// reads headers from the first one and checks lengths against all.
const FIRST_SEGMENT: usize = 2048;

/// The uplink MTU (the default): no outer frame may be longer than this
/// plus the Ethernet header.
const MTU: usize = 1500;

fn captures_dir() -> PathBuf {
    let dir = std::env::var_os("SLUICE_CAPTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/tcpdump"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "reference captures not found at {} (set SLUICE_CAPTURES)",
        dir.display()
    );
    dir
}

struct Capture {
    name: String,
    path: PathBuf,
    /// The low 16 bits of the header's link type (the high bits may carry
    /// FCS information, pcap-savefile(5)).
    link: DataLink,
    frames: Vec<Vec<u8>>,
}

fn captures() -> Vec<Capture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .expect("read captures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    paths.sort();
    let out: Vec<Capture> = paths
        .into_iter()
        .map(|path| {
            let f = std::fs::File::open(&path).expect("open capture");
            let mut r = PcapReader::new(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let link = DataLink::from(u32::from(r.header().datalink) & 0xffff);
            let mut frames = Vec::new();
            // Raw packets: some fuzzed captures have headers (orig_len below
            // caplen and the like) that the validating reader refuses.
            while let Some(p) = r.next_raw_packet() {
                frames.push(
                    p.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                        .data
                        .into_owned(),
                );
            }
            Capture {
                name: path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                path,
                link,
                frames,
            }
        })
        .collect();
    assert!(
        out.len() > 50,
        "too few captures in {}",
        captures_dir().display()
    );
    out
}

/// Writes Ethernet frames of any length (up to the 256 KiB libpcap reads).
fn write_frames(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).expect("create pcap");
    let header = PcapHeader {
        snaplen: 262_144,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(f, header).expect("pcap header");
    for (i, fr) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(1 + i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .expect("write");
    }
}

const TAP_CONFIG: &str = r#"
[appliance]
name = "hostile"
id = 9

[[port]]
name = "tap0"
device = "net_pcap_hin@N@,rx_pcap=@IN@"
role = "input"

[[port]]
name = "uplink"
device = "net_pcap_hup@N@,tx_pcap=@OUT@"
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

/// What one run of Sluice said.
struct Run {
    report: String,
    stderr: String,
    code: Option<i32>,
    /// The uplink's (or tool port's) frames.
    out: Vec<Vec<u8>>,
}

impl Run {
    fn total(&self, name: &str) -> u64 {
        total(&self.report, name)
    }

    /// `rx_invalid`, printed only when not 0.
    fn rx_invalid(&self) -> u64 {
        let block = self
            .report
            .split("Accumulated forward statistics")
            .nth(1)
            .unwrap_or("");
        block
            .lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix("rx_invalid")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "sluice failed:\n{}\n{}",
            self.report,
            self.stderr
        );
        assert_accounting(&self.report);
    }
}

/// Runs Sluice over `frames` with `config` (`@IN@`, `@OUT@`, `@N@` filled
/// in) and `policy` until the input has been idle a while.
fn run(name: &str, config: &str, policy: Option<&str>, frames: &[Vec<u8>]) -> Run {
    let dir = tmpdir(name);
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    write_frames(&input, frames);
    let cfg = config
        .replace("@IN@", &input.display().to_string())
        .replace("@OUT@", &output.display().to_string())
        .replace("@N@", &seq().to_string());
    std::fs::write(dir.join("appliance.toml"), cfg).expect("config");
    let cfg = dir.join("appliance.toml").display().to_string();
    let pol = dir.join("policy.toml").display().to_string();
    let mut args = vec!["--config", &cfg, "--exit-when-idle", "300"];
    if let Some(p) = policy {
        std::fs::write(&pol, p).expect("policy");
        args.extend(["--policy", &pol]);
    }
    let out = sluice(&eal(&unique(name), "0-1"), &args);
    let r = Run {
        report: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        out: if output.exists() {
            read_all(&output)
        } else {
            Vec::new()
        },
    };
    if r.code == Some(0) {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        // Kept for whoever looks into the failure.
        eprintln!(
            "sluice exited with {:?}: its input and config are in {}",
            r.code,
            dir.display()
        );
    }
    r
}

/// The frames of an output file; none if Sluice never wrote its header
/// (the caller's exit-code check says why).
fn read_all(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).expect("open output");
    let Ok(mut r) = PcapReader::new(f) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        v.push(p.expect("output packet").data.into_owned());
    }
    v
}

/// Frames that are malformed as a whole.
fn whole_frame_errors(frames: &[Vec<u8>]) -> u64 {
    frames.iter().filter(|f| parse(f).error.is_some()).count() as u64
}

/// A TAP run over a match-all policy: every frame forwarded (at least one
/// destination took it), each destination either sent or counted a drop
/// for every frame, the uplink carries what they sent, each outer frame
/// within the MTU, parse errors counted.
fn assert_tap_run(r: &Run, frames: &[Vec<u8>]) {
    r.assert_ok();
    // Frames over 64 KiB can reach net_pcap as broken chains: the RX queue
    // drops those on receipt, counted rx_invalid (not in rx).
    let big = frames.iter().filter(|f| f.len() > 65_535).count() as u64;
    let invalid = r.rx_invalid();
    assert!(
        invalid <= big,
        "only frames over 64 KiB may be invalid\n{}",
        r.report
    );
    let n = frames.len() as u64 - invalid;
    assert_eq!(r.total("rx"), n, "rx is not the frame count\n{}", r.report);
    assert_eq!(r.total("forwarded"), n, "{}", r.report);
    let mut sent = 0;
    for dest in ["noc", "ids"] {
        let row = dest_row(&r.report, dest);
        let tx = row
            .iter()
            .find(|(k, _)| k == "tx_packets")
            .expect("tx_packets")
            .1;
        let dropped: u64 = row
            .iter()
            .filter(|(k, _)| k.starts_with("dropped_"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(
            tx + dropped,
            n,
            "{dest}: every frame sent or dropped\n{}",
            r.report
        );
        sent += tx;
    }
    assert_eq!(r.out.len() as u64, sent, "frames on the uplink");
    for (i, f) in r.out.iter().enumerate() {
        assert!(
            f.len() <= MTU + 14,
            "uplink frame {i} is {} bytes, over the MTU",
            f.len()
        );
    }
    // Exactly the frames malformed as a whole are counted, however many
    // mbufs they arrived in. Frames dropped as rx_invalid are not parsed:
    // with some, which of the frames over 64 KiB came whole is not known.
    let errors = r.total("parse_errors");
    let all = whole_frame_errors(frames);
    if invalid == 0 {
        assert_eq!(
            errors, all,
            "parse_errors are not the malformed frames\n{}",
            r.report
        );
    } else {
        let small: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| f.len() <= 65_535)
            .cloned()
            .collect();
        let least = whole_frame_errors(&small);
        assert!(
            least <= errors && errors <= all,
            "parse_errors {errors}: malformed {least} up to 64 KiB, {all} in all\n{}",
            r.report
        );
    }
}

/// Both destinations sent every frame.
fn assert_all_sent(r: &Run, n: u64) {
    assert_eq!(dest_tx(&r.report, "noc"), n, "{}", r.report);
    assert_eq!(dest_tx(&r.report, "ids"), n, "{}", r.report);
    assert_eq!(r.out.len() as u64, 2 * n);
}

#[test]
fn every_ethernet_capture_through_the_appliance() {
    let caps = captures();
    let frames: Vec<Vec<u8>> = caps
        .iter()
        .filter(|c| c.link == DataLink::ETHERNET)
        .flat_map(|c| c.frames.iter().cloned())
        .collect();
    assert!(frames.len() > 500, "{} Ethernet frames", frames.len());
    let r = run("hostile-caps", TAP_CONFIG, Some(MATCH_ALL), &frames);
    assert_tap_run(&r, &frames);
    assert_all_sent(&r, r.total("rx"));
    assert!(r.total("parse_errors") > 0, "{}", r.report);
}

/// Captures whose damage is in headers Sluice parses (Ethernet, VLAN,
/// MPLS, IP, IPv6 extension headers, L4), as tshark also reports it.
const MALFORMED: [&str; 8] = [
    "gre-heapoverflow-1.pcap",
    "ikev1_id_ipv6_addr_subnet-oobr.pcap",
    "ip6_frag_asan.pcap",
    "ipv6-bad-version.pcap",
    "ipv6-srh-tlv-pad1-padn-5-trunc.pcap",
    "ipv6_39_byte_header.pcap",
    "ipv6_invalid_length.pcap",
    "ipv6_invalid_length_2.pcap",
];

#[test]
fn each_malformed_capture_is_counted_as_a_parse_error() {
    let caps = captures();
    for name in MALFORMED {
        let c = caps
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("capture {name} is missing"));
        assert_eq!(c.link, DataLink::ETHERNET, "{name}");
        let r = run("hostile-bad", TAP_CONFIG, Some(MATCH_ALL), &c.frames);
        assert_tap_run(&r, &c.frames);
        assert_all_sent(&r, c.frames.len() as u64);
        assert!(
            r.total("parse_errors") > 0,
            "{name}: no parse error counted\n{}",
            r.report
        );
    }
}

#[test]
fn captures_of_another_link_type_are_refused() {
    let caps = captures();
    let others: Vec<&Capture> = caps
        .iter()
        .filter(|c| c.link != DataLink::ETHERNET)
        .collect();
    assert!(others.len() >= 5, "{} non-Ethernet captures", others.len());
    for c in others {
        let dir = tmpdir("hostile-link");
        let cfg = TAP_CONFIG
            .replace("@IN@", &c.path.display().to_string())
            .replace("@OUT@", &dir.join("out.pcap").display().to_string())
            .replace("@N@", &seq().to_string());
        std::fs::write(dir.join("appliance.toml"), cfg).expect("config");
        let out = sluice(
            &eal(&unique("hostile-link"), "0-1"),
            &[
                "--config",
                &dir.join("appliance.toml").display().to_string(),
                "--exit-when-idle",
                "300",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} ({:?}) was accepted:\n{stderr}",
            c.name,
            c.link
        );
        assert!(
            stderr.contains("link type") && stderr.contains("not Ethernet"),
            "{}: no clear message:\n{stderr}",
            c.name
        );
        assert!(
            stderr.contains(&c.path.display().to_string()),
            "{}: the message does not name the file:\n{stderr}",
            c.name
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------------
// Hand-made hostile frames.

const MAC: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

fn udp4(payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
        .udp(40000, 443)
        .write(&mut v, &vec![0x5a; payload])
        .expect("build");
    v
}

fn tcp6(payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6([0x20; 16], [0x21; 16], 64)
        .tcp(40000, 22, 1, 1000)
        .write(&mut v, &vec![0xa5; payload])
        .expect("build");
    v
}

/// Ethernet + IPv6 with `next` as the first next header, then `ext`, then
/// `tail`; the payload length field says `plen` (None: the truth).
fn ipv6_with(next: u8, ext: &[u8], tail: &[u8], plen: Option<u16>) -> Vec<u8> {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    let len = plen.unwrap_or((ext.len() + tail.len()) as u16);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&[0x20; 16]);
    f.extend_from_slice(&[0x21; 16]);
    f.extend_from_slice(ext);
    f.extend_from_slice(tail);
    f
}

/// An 8-byte extension header pointing at `next`.
fn ext8(next: u8) -> [u8; 8] {
    [next, 0, 1, 4, 0, 0, 0, 0]
}

/// The hand-made frames, each with whether it is malformed as a whole.
fn hostile_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut v: Vec<(&'static str, Vec<u8>, bool)> = vec![
        ("0 bytes", Vec::new(), true),
        ("1 byte", vec![0xff], true),
        (
            "13 bytes",
            MAC.iter().copied().chain([0x08]).collect(),
            true,
        ),
        (
            "14 bytes, IPv4 EtherType",
            [&MAC[..], &[0x08, 0x00]].concat(),
            true,
        ),
        (
            "14 bytes, unknown EtherType",
            [&MAC[..], &[0x88, 0xb5]].concat(),
            false,
        ),
    ];

    // IPv4 header lengths that lie.
    let good = udp4(64);
    for (what, ihl) in [
        ("IHL 0", 0x40u8),
        ("IHL 4", 0x44),
        ("IHL 15 in 20 bytes", 0x4f),
    ] {
        let mut f = good.clone();
        f.truncate(14 + 20);
        f[14] = ihl;
        v.push((what, f, true));
    }
    let mut f = good.clone();
    f[14] = 0x4f; // 60-byte header in a 92-byte packet: past the UDP header
    f.truncate(14 + 40);
    v.push(("IHL 15 past the end", f, true));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&1000u16.to_be_bytes());
    v.push(("IPv4 total length too long", f, true));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes());
    v.push(("IPv4 total length under the header", f, true));

    // IPv6 payload lengths that lie.
    let udp = [0x9c, 0x40, 0x01, 0xbb, 0, 28, 0, 0];
    let body: Vec<u8> = udp.iter().copied().chain([0u8; 20]).collect();
    v.push(("IPv6 honest", ipv6_with(17, &[], &body, None), false));
    v.push((
        "IPv6 payload length too long",
        ipv6_with(17, &[], &body, Some(1000)),
        true,
    ));
    v.push((
        "IPv6 payload length too short",
        ipv6_with(17, &[], &body, Some(4)),
        true,
    ));
    v.push((
        "IPv6 header cut short",
        ipv6_with(17, &[], &[], None)[..50].to_vec(),
        true,
    ));

    // Extension-header chains: endless, running off the end.
    let mut chain = Vec::new();
    for i in 0..40 {
        // HBH first, then destination options and routing taking turns.
        chain.extend_from_slice(&ext8(if i % 2 == 0 { 43 } else { 60 }));
    }
    v.push((
        "40 extension headers",
        ipv6_with(0, &chain, &body, None),
        true,
    ));
    let mut frag = Vec::new();
    for _ in 0..40 {
        frag.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 1]);
    }
    v.push((
        "40 fragment headers in a row",
        ipv6_with(44, &frag, &body, None),
        true,
    ));
    let long = [17, 255, 1, 4, 0, 0, 0, 0]; // claims 2048 bytes
    v.push((
        "extension header past the end",
        ipv6_with(0, &long, &body, None),
        true,
    ));
    v.push((
        "extension header cut short",
        ipv6_with(60, &[17, 0, 1], &[], None),
        true,
    ));

    // 64 VLAN tags, 802.1Q and 802.1ad, then IPv4.
    for tpid in [[0x81u8, 0x00], [0x88, 0xa8]] {
        let mut f = MAC.to_vec();
        for i in 0..64u16 {
            f.extend_from_slice(&tpid);
            f.extend_from_slice(&(i + 1).to_be_bytes());
        }
        f.extend_from_slice(&good[12..]);
        v.push(("64 VLAN tags", f, true));
    }
    // An MPLS stack without bottom of stack.
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[0x88, 0x47]);
    for _ in 0..40 {
        f.extend_from_slice(&[0, 0x01, 0x00, 64]);
    }
    v.push(("MPLS without bottom of stack", f, true));
    // A TCP header with data offset 2, and one cut short.
    let mut f = tcp6(10);
    f[14 + 40 + 12] = 0x20;
    v.push(("TCP data offset 2", f, true));
    v.push(("TCP cut short", tcp6(0)[..14 + 40 + 10].to_vec(), true));
    v
}

/// 9,000-byte frames: more than one mbuf's 2,048 bytes of data room.
fn jumbo_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("IPv4 UDP 9000", udp4(9000 - 42), false),
        ("IPv6 TCP 9000", tcp6(9000 - 74), false),
        ("IPv4 UDP 9000, 2nd", udp4(9000 - 42), false),
        ("IPv4 UDP 2049", udp4(2049 - 42), false),
        ("IPv4 UDP 65000", udp4(65000 - 42), false),
    ]
}

#[test]
fn hand_made_hostile_frames_through_the_appliance() {
    let labelled = hostile_frames();
    // The labels are right: parse of the whole frame agrees with each.
    for (what, f, bad) in &labelled {
        assert_eq!(parse(f).error.is_some(), *bad, "{what}: {:?}", parse(f));
    }
    let frames: Vec<Vec<u8>> = labelled.iter().map(|(_, f, _)| f.clone()).collect();
    let r = run("hostile-made", TAP_CONFIG, Some(MATCH_ALL), &frames);
    assert_tap_run(&r, &frames);
    let bad = labelled.iter().filter(|(_, _, b)| *b).count() as u64;
    assert_eq!(r.total("parse_errors"), bad, "{}", r.report);
    // The IDS (the last destination, which takes the frame itself) sends
    // every one; see `an_empty_frame_reaches_every_destination` for the NOC.
    assert_eq!(
        dest_tx(&r.report, "ids"),
        frames.len() as u64,
        "{}",
        r.report
    );
}

/// A 0-byte frame (pcap allows it, net_pcap delivers it) is copied for
/// every destination but the last with `Mbuf::copy`; `rte_pktmbuf_copy`
/// refuses an offset that is not below `pkt_len`, which once made the NOC
/// count a bogus `dropped_no_mbuf` with the pool full of free mbufs.
#[test]
fn an_empty_frame_reaches_every_destination() {
    let frames = vec![Vec::new(), udp4(10)];
    let r = run("hostile-empty", TAP_CONFIG, Some(MATCH_ALL), &frames);
    assert_tap_run(&r, &frames);
    assert_all_sent(&r, 2);
}

/// Frames over 64 KiB (BIG TCP and GSO captures have them): net_pcap's
/// jumbo path copies only `caplen` modulo 65,536 bytes into the chain but
/// sets `pkt_len` to all of `caplen`, and the worker's `Mbuf::copy` then
/// walks off the end of the chain (SIGSEGV in `rte_pktmbuf_copy`). See
/// `net_pcap_frames_over_64_kib_arrive_whole_or_not_at_all` in
/// dataplane/tests/dpdk_hostile.rs.
#[test]
fn frames_over_64_kib_through_the_appliance() {
    // As BIG TCP captures carry them: IPv4 total length 0, the rest of the
    // frame is the packet.
    let mut big = udp4(100);
    big.resize(70_000, 0x77);
    big[16..18].copy_from_slice(&[0, 0]);
    big[38..40].copy_from_slice(&[0, 0]);
    let frames = vec![udp4(100), big, udp4(100)];
    let r = run("hostile-64k", TAP_CONFIG, Some(MATCH_ALL), &frames);
    r.assert_ok();
    // Whether the broken chain is dropped on receipt or repaired, the
    // frames around it go through and whatever was received is forwarded.
    let rx = r.total("rx");
    assert!(rx == 2 || rx == 3, "rx {rx}\n{}", r.report);
    assert_eq!(r.total("forwarded"), rx, "{}", r.report);
    assert_eq!(dest_tx(&r.report, "noc"), rx, "{}", r.report);
    assert_eq!(dest_tx(&r.report, "ids"), rx, "{}", r.report);
}

#[test]
fn jumbo_frames_through_the_appliance() {
    let labelled = jumbo_frames();
    let frames: Vec<Vec<u8>> = labelled.iter().map(|(_, f, _)| f.clone()).collect();
    for (what, f, _) in &labelled {
        assert!(f.len() > FIRST_SEGMENT, "{what}");
        assert_eq!(parse(f).error, None, "{what}");
    }
    // net_pcap chains them over several mbufs: each is received once,
    // forwarded to both destinations and cut to the uplink MTU.
    let r = run("hostile-jumbo", TAP_CONFIG, Some(MATCH_ALL), &frames);
    assert_tap_run(&r, &frames);
    assert_all_sent(&r, frames.len() as u64);
    let noc: Vec<&Vec<u8>> = r
        .out
        .iter()
        .filter(|f| f.len() > 50 && f[23] == 17)
        .collect();
    assert_eq!(noc.len(), frames.len(), "VXLAN frames on the uplink");
    for (outer, inner) in noc.iter().zip(&frames) {
        // Outer Ethernet, IPv4, UDP, VXLAN: 50 bytes, then the inner frame's
        // front, cut to fit the MTU.
        assert_eq!(outer.len(), MTU + 14, "a jumbo frame cut to the MTU");
        assert_eq!(&outer[50..], &inner[..outer.len() - 50], "inner bytes");
    }
}

/// Port rules see jumbo frames' ports: the headers are in the first mbuf
/// of the chain, the lengths checked against the whole frame.
#[test]
fn jumbo_frames_meet_port_rules() {
    let frames = vec![tcp6(9000 - 74), udp4(9000 - 42), tcp6(100), tcp6(5000)];
    // MATCH_ALL's destinations, and an SSH drop rule before its rule.
    let policy = MATCH_ALL.replace(
        "[[rule]]\nname = \"all\"",
        "[[rule]]\nname = \"no-ssh\"\ndst_port = 22\naction = \"drop\"\n\n[[rule]]\nname = \"all\"",
    );
    assert!(policy.contains("no-ssh"));
    let r = run("hostile-jport", TAP_CONFIG, Some(&policy), &frames);
    r.assert_ok();
    assert_eq!(r.total("parse_errors"), 0, "{}", r.report);
    assert_eq!(
        r.total("filtered"),
        3,
        "the SSH frames, jumbo or not\n{}",
        r.report
    );
    assert_eq!(r.total("forwarded"), 1, "{}", r.report);
    assert_eq!(dest_tx(&r.report, "noc"), 1, "{}", r.report);
}

// ---------------------------------------------------------------------
// Tunnels nested past the decap limit, on a decap input.

const DECAP_CONFIG: &str = r#"
[appliance]
name = "hostile-decap"
id = 10

[[port]]
name = "span"
device = "net_pcap_hdin@N@,rx_pcap=@IN@"
role = "input"
mode = "decap"

[[port]]
name = "tool"
device = "net_pcap_hdtool@N@,tx_pcap=@OUT@"
role = "tool"

[decap]
max_layers = 2

[dedup]
table_entries = 4096
"#;

fn template(tunnel: TunnelConfig, n: u8) -> EncapTemplate {
    EncapTemplate::new(&EncapConfig {
        tunnel,
        outer: OuterConfig {
            src_mac: Address([2, 0, 0, 0, 1, n]),
            dst_mac: Address([2, 0, 0, 0, 2, n]),
            vlan: None,
            src_ip: [192, 0, 2, n].into(),
            dst_ip: [198, 51, 100, n].into(),
            dscp: 0,
            ttl: 64,
        },
        mtu: 9000,
        oversize: OversizePolicy::Drop,
    })
    .expect("template")
}

/// `inner` wrapped in `depth` tunnels, each kind in turn.
fn nested(inner: &[u8], depth: usize) -> Vec<u8> {
    let kinds = [
        TunnelConfig::vxlan(100),
        TunnelConfig::erspan3(5),
        TunnelConfig::L2Gre { key: 7 },
        TunnelConfig::Geneve { vni: 9 },
    ];
    let mut f = VecFrame::with_room(inner, 1024, 0);
    for i in 0..depth {
        template(kinds[i % kinds.len()], i as u8 + 1)
            .encap(&mut f, &EncapMeta::default(), 1_700_000_000_000_000_000)
            .expect("encap");
    }
    f.data().to_vec()
}

#[test]
fn tunnels_nested_past_the_decap_limit() {
    let inner = udp4(100);
    // depth 1 and 2 come off (the limit is 2); 3 to 16 are refused whole.
    let depths = [1usize, 2, 3, 4, 8, 16, 2, 1];
    let frames: Vec<Vec<u8>> = depths.iter().map(|d| nested(&inner, *d)).collect();
    let ok = depths.iter().filter(|d| **d <= 2).count() as u64;
    let deep = depths.len() as u64 - ok;
    let r = run("hostile-nest", DECAP_CONFIG, None, &frames);
    r.assert_ok();
    assert_eq!(r.total("rx"), frames.len() as u64, "{}", r.report);
    assert_eq!(r.total("decapsulated"), ok, "{}", r.report);
    assert_eq!(r.total("decap_errors"), deep, "{}", r.report);
    assert_eq!(r.total("forwarded"), ok, "{}", r.report);
    assert_eq!(r.total("dropped_error"), deep, "{}", r.report);
    assert_eq!(r.out.len() as u64, ok, "frames on the tool port");
    for f in &r.out {
        assert_eq!(
            f, &inner,
            "the tool port got something else than the inner frame"
        );
    }
}

#[test]
fn hostile_frames_on_a_decap_input() {
    // The same hostile frames, and the jumbo ones, on a decap input: none
    // is a tunnel, all are dropped as non-tunnel traffic, all accounted.
    let frames: Vec<Vec<u8>> = hostile_frames()
        .into_iter()
        .chain(jumbo_frames())
        .map(|(_, f, _)| f)
        .collect();
    // What the decap stage makes of each: not a tunnel, or (a UDP or GRE
    // packet whose IP lengths lie) an error.
    let mut d = Decap::new(DecapConfig {
        max_layers: 2,
        ..DecapConfig::default()
    })
    .expect("decap");
    let (mut not_tunnel, mut errors) = (0u64, 0u64);
    for f in &frames {
        match d.decap(&mut VecFrame::new(f)) {
            Ok(DecapOutcome::NotTunnel) => not_tunnel += 1,
            Err(_) => errors += 1,
            other => panic!("a hostile frame decapsulated: {other:?}"),
        }
    }
    assert!(not_tunnel > 0 && errors > 0, "{not_tunnel} / {errors}");
    let r = run("hostile-dmade", DECAP_CONFIG, None, &frames);
    r.assert_ok();
    let n = frames.len() as u64;
    assert_eq!(r.total("rx"), n, "{}", r.report);
    assert_eq!(r.total("decap_not_tunnel"), not_tunnel, "{}", r.report);
    assert_eq!(r.total("decap_errors"), errors, "{}", r.report);
    assert_eq!(r.total("filtered"), not_tunnel, "{}", r.report);
    assert_eq!(r.total("dropped_error"), errors, "{}", r.report);
    assert!(r.out.is_empty(), "{} frames on the tool port", r.out.len());
}
