//! Intake from the fabric, judged by the exporters the field runs:
//! softflowd replays a capture as NetFlow v5, v9 and IPFIX, pmacct's
//! `pmacctd` (sfprobe plugin) replays it as sFlow, all sent from a router's
//! address to Sluice's uplink (a `net_tap` inside a network namespace of
//! the test, where Sluice runs). Sluice re-exports every record as IPFIX to
//! a collector address in the namespace; tshark's CFLOW dissector reads the
//! captured messages, and per flow the packets, bytes and sampling rate
//! must be what the capture holds. Garbage datagrams (random bytes,
//! truncated, wrong version) are counted per exporter and kind, and
//! nothing else changes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use ctrlplane::cli::socket::Client;
use etherparse::PacketBuilder;
use serde_json::Value;
use sluice_testkit::tshark::{field_values, tshark, tshark_errors, tshark_json};

const SLUICE_IP: &str = "192.0.2.50";
const ROUTER_IP: &str = "192.0.2.1";

const CONFIG: &str = r#"
[appliance]
name = "edge-1"

[[port]]
name = "span"
device = "net_pcap_fi@N@,rx_pcap=@EMPTY@"
role = "input"

[[port]]
name = "uplink"
device = "net_tap_fu@N@,iface=@TAP@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.50/24"

[dedup]
table_entries = 4096

[intake]
sflow_port = 6343
netflow_port = 2055

[flows]
table_entries = 1024
collectors = ["127.0.0.1:4739"]
"#;

const POLICY: &str = r#"
version = "drop-all"

[[rule]]
name = "all"
action = "drop"
"#;

fn here(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// The capture the exporters replay: a TCP conversation (5 packets each
/// way) and a one-way UDP flow (3 packets), with its frames' lengths.
fn capture() -> Vec<Vec<u8>> {
    let a = [2, 0, 0, 0, 0, 1];
    let b = [2, 0, 0, 0, 0, 2];
    let mut frames = Vec::new();
    for i in 0..5usize {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(a, b)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000 + i as u32, 65535)
            .ack(1)
            .psh()
            .write(&mut f, &vec![b'x'; 100 + i])
            .expect("frame");
        frames.push(f);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(b, a)
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .tcp(80, 40000, 5000 + i as u32, 65535)
            .ack(1)
            .write(&mut f, &[b'y'; 200])
            .expect("frame");
        frames.push(f);
    }
    for _ in 0..3 {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(a, b)
            .ipv4([10, 0, 0, 3], [10, 0, 0, 4], 64)
            .udp(5353, 53)
            .write(&mut f, &[b'z'; 50])
            .expect("frame");
        frames.push(f);
    }
    frames
}

/// Per direction of each flow in `frames`: packets, IP bytes, frame bytes.
fn truth(frames: &[Vec<u8>]) -> BTreeMap<String, (u64, u64, u64)> {
    let mut t = BTreeMap::new();
    for f in frames {
        let l = dataplane::stage::parse::parse(f);
        let key = format!(
            "{} {}:{} > {}:{}",
            l.l4_proto,
            l.src_ip().expect("ip"),
            l.src_port,
            l.dst_ip().expect("ip"),
            l.dst_port
        );
        let e = t.entry(key).or_insert((0, 0, 0));
        e.0 += 1;
        e.1 += (f.len() - 14) as u64;
        e.2 += f.len() as u64;
    }
    t
}

/// One re-exported IPFIX data record, as tshark decoded it.
#[derive(Debug, Clone)]
struct Rec {
    key: String,
    packets: u64,
    octets: u64,
    sampling: u64,
    exporter: String,
}

fn records(v: &Value, out: &mut Vec<Rec>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("cflow.protocol") {
                let one = |k: &str| field_values(v, k).into_iter().next();
                let num = |k: &str| -> u64 {
                    one(k)
                        .unwrap_or_else(|| panic!("{k} in {v}"))
                        .parse()
                        .expect("number")
                };
                out.push(Rec {
                    key: format!(
                        "{} {}:{} > {}:{}",
                        num("cflow.protocol"),
                        one("cflow.srcaddr").expect("srcaddr"),
                        num("cflow.srcport"),
                        one("cflow.dstaddr").expect("dstaddr"),
                        num("cflow.dstport")
                    ),
                    packets: num("cflow.packets"),
                    octets: num("cflow.octets"),
                    sampling: num("cflow.sampling_packet_interval"),
                    exporter: one("cflow.original_exporter_ipv4_address").unwrap_or_default(),
                });
                return;
            }
            m.values().for_each(|x| records(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| records(x, out)),
        _ => {}
    }
}

/// `show intake`'s row for the router's datagrams of `kind`: datagrams,
/// records, malformed (zeros when there is no row yet).
fn intake_row(text: &str, kind: &str) -> (u64, u64, u64) {
    text.lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&ROUTER_IP) && w.get(1) == Some(&kind)).then(|| {
                let n = |i: usize| w.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
                (n(2), n(3), n(4))
            })
        })
        .unwrap_or((0, 0, 0))
}

/// Datagrams that cannot be read: what a broken or hostile exporter sends.
const GARBAGE: &str = r#"
import socket, struct, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
junk = bytes((i * 73 + 41) % 256 for i in range(64))
s.sendto(b"\x12\x34" + junk, (dst, 2055))                    # no such version
s.sendto(struct.pack(">HH", 7, 1) + junk[:20], (dst, 2055))  # NetFlow v7: not taken
v5 = struct.pack(">HHIIIIBBH", 5, 3, 1, 2, 3, 4, 0, 0, 0)
s.sendto(v5 + junk[:30], (dst, 2055))                        # v5 claiming 3 records, holding less
s.sendto(junk, (dst, 6343))                                  # not sFlow v5
sflow = struct.pack(">II4sIIII", 5, 1, bytes([192, 0, 2, 1]), 0, 1, 2, 2)
s.sendto(sflow + struct.pack(">II", 1, 400) + junk[:16], (dst, 6343))  # samples cut short
"#;

#[test]
fn softflowd_and_pmacct_records_come_back_as_ipfix_and_garbage_is_counted() {
    tshark();
    let ns = Netns::quiet("ns-fi");
    let dir = tmpdir("flow-intake");
    let frames = capture();
    let input = dir.join("replay.pcap");
    write_pcap(&input, &frames);
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, &[]);
    let n = seq();
    let tap = format!("slfi{}x{n}", std::process::id() % 100_000);
    let cfg = CONFIG
        .replace("@N@", &n.to_string())
        .replace("@TAP@", &tap)
        .replace("@EMPTY@", &empty.display().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let p = |x: &Path| x.display().to_string();
    let ipfix = dir.join("ipfix.pcap");
    let mut capture = capture_in(ns.name(), "lo", &["udp", "port", "4739"], &ipfix, 100_000);

    let sock = dir.join("s.sock");
    let mut s = Running::start_in(
        Some(ns.name()),
        &eal(&unique("flow-intake"), "0-1"),
        &[
            "--config",
            &p(&dir.join("a.toml")),
            "--policy",
            &p(&dir.join("p.toml")),
            "--socket",
            &p(&sock),
        ],
    );
    s.wait_for("control socket", 60);
    ns.ip(&["addr", "add", &format!("{ROUTER_IP}/24"), "dev", &tap]);
    ns.ip(&["link", "set", &tap, "up"]);
    let mut c = Client::connect(&sock).expect("console");

    // The router: softflowd in each NetFlow version, pmacctd as sFlow,
    // one NetFlow v5 datagram with a sampling interval, then garbage.
    let to = format!("{SLUICE_IP}:2055");
    for v in ["5", "9", "10"] {
        ns.exec("softflowd", &["-r", &p(&input), "-n", &to, "-v", v, "-d"]);
    }
    let pm = dir.join("pmacctd.conf");
    std::fs::write(
        &pm,
        format!(
            "daemonize: false\npcap_savefile: {}\nplugins: sfprobe\n\
             sfprobe_receiver: {SLUICE_IP}:6343\nsfprobe_agentip: {ROUTER_IP}\nsampling_rate: 1\n",
            input.display()
        ),
    )
    .expect("pmacctd config");
    // pmacctd's exit status is not its success: the records it sent are
    // (counted below); what it said is printed for a failing run.
    let pmacct = Command::new("ip")
        .args(["netns", "exec", ns.name(), "pmacctd", "-f", &p(&pm)])
        .output()
        .expect("pmacctd (package pmacct: run `make setup`)");
    if !pmacct.status.success() {
        eprintln!("pmacctd: {}", String::from_utf8_lossy(&pmacct.stderr));
    }
    ns.exec(
        "python3",
        &[
            &here("tests/nats/send_v5.py"),
            SLUICE_IP,
            "2055",
            "1",
            "2",
            "0",
        ],
    );
    ns.exec("python3", &["-c", GARBAGE, SLUICE_IP]);

    let t = truth(&frames);
    let flows = t.len() as u64;
    let packets: u64 = t.values().map(|x| x.0).sum();
    let shown = wait_console(&mut c, "show intake", 30, |x| {
        intake_row(x, "netflow_v5").1 == flows + 2
            && intake_row(x, "netflow_v9").1 == flows
            && intake_row(x, "ipfix").1 == flows
            && intake_row(x, "sflow").1 == packets
            && intake_row(x, "sflow").2 == 2
            && intake_row(x, "unknown").0 == 2
            && intake_row(x, "netflow_v5").2 == 1
    });
    // Garbage is counted where it arrived, and only there.
    assert_eq!(intake_row(&shown, "unknown"), (2, 0, 2), "{shown}");
    assert_eq!(intake_row(&shown, "netflow_v5").2, 1, "{shown}");
    assert_eq!(intake_row(&shown, "netflow_v9").2, 0, "{shown}");
    assert_eq!(intake_row(&shown, "ipfix").2, 0, "{shown}");
    let stats = c.command("show fwd stats all").expect("stats");
    assert!(total(&stats, "intake") >= 12, "{stats}");
    assert_eq!(total(&stats, "intake_dropped"), 0, "{stats}");

    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(
        total(&report, "rx"),
        0,
        "intake is not forwarded traffic: {report}"
    );
    let ok = Command::new("kill")
        .args(["-INT", &capture.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    wait_capture(&mut capture, "tcpdump did not stop");

    // tshark reads every message without an error.
    let packets_json = tshark_json(&ipfix, &["-d", "udp.port==4739,cflow"]);
    assert!(!packets_json.is_empty(), "no IPFIX captured:\n{report}");
    let mut got = Vec::new();
    for pkt in &packets_json {
        let errors = tshark_errors(pkt);
        assert!(errors.is_empty(), "tshark: {errors:?}");
        assert_eq!(field_values(pkt, "cflow.version"), ["10"]);
        records(pkt, &mut got);
    }
    for r in &got {
        assert_eq!(r.exporter, ROUTER_IP, "{r:?}");
    }
    // Per flow direction: softflowd's three exports each carry the whole
    // flow (IP bytes); pmacct's sFlow one record per sampled frame (frame
    // bytes), 1 in 1.
    for (key, (pk, ip_bytes, frame_bytes)) in &t {
        let mine: Vec<&Rec> = got.iter().filter(|r| &r.key == key).collect();
        let whole: Vec<&&Rec> = mine.iter().filter(|r| r.packets == *pk).collect();
        assert_eq!(
            whole.len(),
            3,
            "{key}: v5, v9 and IPFIX records in {mine:?}"
        );
        for r in &whole {
            assert_eq!((r.octets, r.sampling), (*ip_bytes, 1), "{key}: {r:?}");
        }
        let sampled: Vec<&&Rec> = mine.iter().filter(|r| r.packets == 1).collect();
        assert_eq!(
            sampled.len() as u64,
            *pk,
            "{key}: one sFlow sample per frame: {mine:?}"
        );
        let bytes: u64 = sampled.iter().map(|r| r.octets).sum();
        assert!(
            bytes == *frame_bytes || bytes == frame_bytes + 4 * pk,
            "{key}: sFlow frame bytes {bytes}, the capture's {frame_bytes}"
        );
        assert!(sampled.iter().all(|r| r.sampling == 1), "{key}");
    }
    // The v5 datagram of our own: two flows, sampled 1 in 10.
    let own: Vec<&Rec> = got.iter().filter(|r| r.key.contains("10.1.0.0:")).collect();
    assert_eq!(own.len(), 2, "{got:?}");
    assert!(own.iter().all(|r| r.sampling == 10), "{own:?}");
    assert_eq!(
        got.len() as u64,
        3 * flows + packets + 2,
        "nothing but these records: {got:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
