//! Flow metering and IPFIX export, judged by two independent collectors.
//!
//! Sluice forwards real traffic (the reference captures' frames: a TCP
//! session both ways from inside `geneve.pcap`, and the UDP flows of
//! `vxlan.pcap` and `mpls-over-udp.pcap`) with `[flows]` exporting to
//! (a) a UDP socket of the test, whose datagrams become a pcap that
//! tshark's CFLOW dissector reads: every record decodes without an error,
//! and per flow the packets and bytes of each direction are what tshark's
//! `conv,tcp` / `conv,udp` statistics count in the input; and (b) nfcapd
//! (nfdump), whose stored totals (flows, packets, bytes) are the records'.
//! The flows end with the run: shutdown flushes the table ("forced end").

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use sluice_testkit::tshark::{field_values, tshark, tshark_errors, tshark_json};

/// Frames of a reference capture.
fn reference(name: &str) -> Vec<Vec<u8>> {
    let dir = std::env::var_os("SLUICE_CAPTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/tcpdump"),
        PathBuf::from,
    );
    read_pcap(&dir.join(name))
}

/// The inner Ethernet frames of a Geneve capture (outer IPv4/UDP).
fn geneve_inner(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .map(|f| {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let geneve = 14 + ihl + 8;
            let options = usize::from(f[geneve] & 0x3f) * 4;
            f[geneve + 8 + options..].to_vec()
        })
        .collect()
}

const POLICY: &str = r#"
version = "ipfix"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100

[[rule]]
name = "all"
to = ["noc"]
"#;

fn appliance(input: &Path, out: &Path, n: &str, collectors: &[u16]) -> String {
    let list: Vec<String> = collectors
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    format!(
        r#"
[[port]]
name = "in"
role = "input"
file = {input:?}

[[port]]
name = "uplink"
device = "net_pcap_ipfix_{n},tx_pcap={out}"
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

[flows]
table_entries = 1024
collectors = [{}]
"#,
        list.join(", "),
        input = input.display().to_string(),
        out = out.display(),
    )
}

/// Counts of one conversation: (packets, bytes) from A to B and B to A.
type Conv = ((u64, u64), (u64, u64));

/// tshark's `conv,tcp` and `conv,udp` of `pcap`, keyed by protocol and
/// the two ends as tshark prints them (A, B).
fn conversations(pcap: &Path) -> BTreeMap<(u8, String, String), Conv> {
    let mut out = BTreeMap::new();
    for (proto, stat) in [(6u8, "conv,tcp"), (17, "conv,udp")] {
        let o = Command::new(tshark())
            .args(["-n", "-q", "-r"])
            .arg(pcap)
            .args(["-z", stat])
            .output()
            .expect("run tshark");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1) != Some(&"<->") {
                continue;
            }
            // A <-> B | frames bytes "bytes" (B to A) | frames bytes "bytes" (A to B) | ...
            assert_eq!(
                (f[5], f[8]),
                ("bytes", "bytes"),
                "exact byte counts: {line}"
            );
            let n = |i: usize| f[i].parse::<u64>().expect("number");
            out.insert(
                (proto, f[0].to_owned(), f[2].to_owned()),
                ((n(6), n(7)), (n(3), n(4))),
            );
        }
    }
    out
}

/// One IPFIX data record as tshark decoded it.
#[derive(Debug)]
struct Decoded {
    proto: u8,
    src: String,
    dst: String,
    fwd: (u64, u64),
    rev: (u64, u64),
}

/// Every data record in the CFLOW dissection of one packet.
fn records(v: &Value, out: &mut Vec<Decoded>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("cflow.protocol") {
                let one = |k: &str| field_values(v, k);
                let num = |k: &str, i: usize| -> u64 {
                    one(k)
                        .get(i)
                        .unwrap_or_else(|| panic!("{k} #{i} in {v}"))
                        .parse()
                        .expect("number")
                };
                let addr = |v4: &str, v6: &str| {
                    one(v4).into_iter().chain(one(v6)).next().expect("address")
                };
                // Forward counters first, the RFC 5103 reverse ones after.
                out.push(Decoded {
                    proto: num("cflow.protocol", 0) as u8,
                    src: format!(
                        "{}:{}",
                        addr("cflow.srcaddr", "cflow.srcaddrv6"),
                        num("cflow.srcport", 0)
                    ),
                    dst: format!(
                        "{}:{}",
                        addr("cflow.dstaddr", "cflow.dstaddrv6"),
                        num("cflow.dstport", 0)
                    ),
                    fwd: (num("cflow.packets", 0), num("cflow.octets", 0)),
                    rev: (num("cflow.packets", 1), num("cflow.octets", 1)),
                });
                return;
            }
            m.values().for_each(|x| records(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| records(x, out)),
        _ => {}
    }
}

/// nfcapd listening on a loopback port of its own, storing into `dir`.
struct Nfcapd {
    child: Child,
    port: u16,
}

impl Nfcapd {
    fn start(dir: &Path) -> Nfcapd {
        // A port the kernel picked, handed to nfcapd.
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("pick a port")
            .port();
        let child = Command::new("nfcapd")
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-w"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nfcapd is not installed (Debian nfdump): run `make setup`");
        let n = Nfcapd { child, port };
        n.wait_bound();
        n
    }

    /// Waits until the port is bound (it shows in /proc/net/udp).
    fn wait_bound(&self) {
        let needle = format!(":{:04X} ", self.port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::fs::read_to_string("/proc/net/udp")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").contains(&needle))
            })
        {
            assert!(
                std::time::Instant::now() < deadline,
                "nfcapd never bound port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGTERM: nfcapd writes out its open file and exits.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
        let st = self.child.wait().expect("wait nfcapd");
        assert!(st.success() || st.code().is_some(), "nfcapd: {st}");
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// nfdump's summary of everything stored under `dir`: flows, bytes, packets.
fn nfdump_totals(dir: &Path) -> (u64, u64, u64) {
    let o = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-o", "line", "-n", "0"])
        .output()
        .expect("nfdump is not installed (Debian nfdump): run `make setup`");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "nfdump: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no summary from nfdump:\n{text}"));
    let value = |key: &str| -> u64 {
        let at = summary
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {summary}"))
            + key.len();
        summary[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {summary}"))
    };
    (
        value("total flows:"),
        value("total bytes:"),
        value("total packets:"),
    )
}

#[test]
fn metered_flows_reach_tshark_and_nfcapd_with_the_inputs_counts() {
    tshark();
    let dir = tmpdir("ipfix");
    let input = dir.join("in.pcap");
    let mut frames = geneve_inner(reference("geneve.pcap"));
    frames.extend(reference("vxlan.pcap"));
    frames.extend(reference("mpls-over-udp.pcap"));
    write_pcap(&input, &frames);

    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind collector");
    let port = collector.local_addr().expect("addr").port();
    let nfdir = dir.join("nfcapd");
    std::fs::create_dir_all(&nfdir).expect("nfcapd dir");
    let nfcapd = Nfcapd::start(&nfdir);

    let n = unique("ipfix");
    std::fs::write(
        dir.join("appliance.toml"),
        appliance(&input, &dir.join("out.pcap"), &n, &[port, nfcapd.port]),
    )
    .expect("config");
    std::fs::write(dir.join("policy.toml"), POLICY).expect("policy");
    let cfg = dir.join("appliance.toml").display().to_string();
    let policy = dir.join("policy.toml").display().to_string();
    let out = sluice(
        &eal(&n, "0-1"),
        &[
            "--config",
            &cfg,
            "--policy",
            &policy,
            "--exit-when-idle",
            "300",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}\n{stderr}");
    assert_accounting(&report);
    assert_eq!(total(&report, "rx"), frames.len() as u64, "{report}");
    // The exporter's own count, logged once the last record is sent.
    let exported: u64 = stderr
        .lines()
        .find_map(|l| l.split("flows: ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no export count in:\n{stderr}"));

    // (a) The datagrams as a pcap, and tshark's reading of them.
    collector.set_nonblocking(true).expect("nonblocking");
    let mut datagrams = Vec::new();
    let mut buf = [0u8; 65_536];
    while let Ok(len) = collector.recv(&mut buf) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(4739, port)
            .write(&mut f, &buf[..len])
            .expect("frame");
        datagrams.push(f);
    }
    assert!(!datagrams.is_empty(), "no IPFIX message arrived\n{stderr}");
    let ipfix = dir.join("ipfix.pcap");
    write_pcap(&ipfix, &datagrams);
    let decode = format!("udp.port=={port},cflow");
    let packets = tshark_json(&ipfix, &["-d", &decode]);
    let mut decoded = Vec::new();
    for p in &packets {
        let errors = tshark_errors(p);
        assert!(errors.is_empty(), "tshark: {errors:?} in {p}");
        assert_eq!(field_values(p, "cflow.version"), ["10"], "{p}");
        records(p, &mut decoded);
    }
    assert_eq!(decoded.len() as u64, exported, "{decoded:?}");

    // Per flow, both directions, against tshark's conversations.
    let convs = conversations(&input);
    assert!(convs.keys().any(|k| k.0 == 6) && convs.keys().any(|k| k.0 == 17));
    let mut seen = BTreeMap::new();
    for r in decoded.iter().filter(|r| r.proto == 6 || r.proto == 17) {
        let e = seen
            .entry((r.proto, r.src.clone(), r.dst.clone()))
            .or_insert(((0, 0), (0, 0)));
        e.0 .0 += r.fwd.0;
        e.0 .1 += r.fwd.1;
        e.1 .0 += r.rev.0;
        e.1 .1 += r.rev.1;
    }
    for ((proto, a, b), conv) in &convs {
        // A flow may span records (FIN/RST, timeouts), each with its own
        // initiator: sum both orientations.
        let ab = seen.remove(&(*proto, a.clone(), b.clone()));
        let ba = seen.remove(&(*proto, b.clone(), a.clone()));
        assert!(
            ab.is_some() || ba.is_some(),
            "{proto} {a} <-> {b}: no record; decoded {decoded:?}"
        );
        let (x, y) = ab.unwrap_or_default();
        let (ry, rx) = ba.unwrap_or_default();
        let got = ((x.0 + rx.0, x.1 + rx.1), (y.0 + ry.0, y.1 + ry.1));
        assert_eq!(&got, conv, "{proto} {a} <-> {b}: (packets, bytes) a→b, b→a");
    }
    assert!(
        seen.is_empty(),
        "records tshark saw no conversation of: {seen:?}"
    );
    let both_ways = convs.values().filter(|c| c.0 .0 > 0 && c.1 .0 > 0).count();
    assert!(both_ways > 0, "a conversation both ways: {convs:?}");

    // (b) nfcapd stored the same records: its totals are theirs.
    nfcapd.stop();
    let (flows, bytes, pkts) = nfdump_totals(&nfdir);
    let sum = |f: fn(&Decoded) -> u64| decoded.iter().map(f).sum::<u64>();
    assert_eq!(flows, decoded.len() as u64);
    assert_eq!(pkts, sum(|r| r.fwd.0 + r.rev.0));
    assert_eq!(bytes, sum(|r| r.fwd.1 + r.rev.1));
    // Every IP frame of the input is in some record.
    assert_eq!(pkts, frames.len() as u64);
    assert_eq!(bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    let _ = std::fs::remove_dir_all(dir);
}
