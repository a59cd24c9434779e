//! Tool ports and tool groups in TAP mode (issue 14): frames from network
//! ports reach `net_tap` tool ports in a network namespace of the test's
//! own, where tcpdump reads them back; tshark and byte compares judge them.
//!
//! - stripping: QinQ, MPLS, VN-Tag and VXLAN-wrapped inputs come out on a
//!   stripping destination as the plain frames inside them (its MAC
//!   rewritten), and tshark finds none of those headers; the same frames on
//!   a destination that strips nothing are byte-equal to what went in;
//! - masking: only the masked bytes differ, and the checksums are left as
//!   captured (tshark calls them bad);
//! - sampling: exact counts for 1-in-N, per rule and per destination, and
//!   every flow whole or absent under flow sampling; per-rule hits are
//!   what each rule matched, on the console and in Prometheus;
//! - symmetry: over 1,000 bidirectional flows, both directions of every
//!   flow reach one member of a weighted group, each member's share within
//!   ±10 % of its weight's;
//! - failover: a member taken down under traffic (`set link-down`) loses
//!   its flows to the others and no packet goes unaccounted; up again, its
//!   flows come back, or (sticky) stay where they went.
//!
//! Every test checks `rx = Σ terminals` from the exit report. Nothing
//! waits by sleeping: the tests poll the console and the capture files,
//! each wait bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ctrlplane::cli::socket::Client;
use dataplane::frame::VecFrame;
use dataplane::runtime::counters::{DestDrop, Terminal};
use dataplane::stage::parse::parse;
use dataplane::stage::sample::{SampleSpec, Sampler};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket};
use sluice_testkit::netns::ifname;
use sluice_testkit::tshark::tshark_fields_with;

/// How long any one wait may take: generous, the machine is shared.
const WAIT_S: u64 = 30;

// ---------------------------------------------------------------------
// Frames

/// A flow between two endpoints, built with etherparse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Flow {
    a: [u8; 4],
    b: [u8; 4],
    pa: u16,
    pb: u16,
    tcp: bool,
}

impl Flow {
    /// The `i`th of a set of distinct flows: clients in 10.1/16, servers
    /// in 10.2.0.0/28, TCP and UDP, well-known server ports.
    fn nth(i: u32) -> Flow {
        Flow {
            a: [10, 1, (i / 250) as u8, (i % 250 + 1) as u8],
            b: [10, 2, 0, (i % 13 + 1) as u8],
            pa: 20_000 + (i * 7919 % 40_000) as u16,
            pb: [80, 443, 53, 8080][(i % 4) as usize],
            tcp: !i.is_multiple_of(3),
        }
    }

    /// A frame of the flow from `a` to `b` (`back`: from `b` to `a`), IPv4
    /// ID `id`, `len` payload bytes (none of them 0 or 0xff).
    fn frame(&self, back: bool, id: u16, len: usize) -> Vec<u8> {
        let (src, dst, sp, dp) = if back {
            (self.b, self.a, self.pb, self.pa)
        } else {
            (self.a, self.b, self.pa, self.pb)
        };
        let payload: Vec<u8> = (0..len)
            .map(|k| ((k as u8).wrapping_mul(31).wrapping_add(id as u8) % 0xfd) + 1)
            .collect();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, src[3]], [2, 0, 0, 0, 2, dst[3]])
            .ipv4(src, dst, 64);
        let mut out = Vec::new();
        if self.tcp {
            b.tcp(sp, dp, 1000 + u32::from(id), 8192)
                .write(&mut out, &payload)
        } else {
            b.udp(sp, dp).write(&mut out, &payload)
        }
        .expect("build frame");
        set_ip_id(&mut out, 14, id);
        out
    }

    /// Where the payload starts in an untagged frame of the flow.
    fn payload_at(&self) -> usize {
        14 + 20 + if self.tcp { 20 } else { 8 }
    }
}

/// Writes IPv4 ID `id` into the header at `l3` and fixes its checksum
/// (the L4 checksum does not cover the ID).
fn set_ip_id(f: &mut [u8], l3: usize, id: u16) {
    f[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
    f[l3 + 10..l3 + 12].fill(0);
    let ihl = usize::from(f[l3] & 0xf) * 4;
    let mut s: u32 = f[l3..l3 + ihl]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    f[l3 + 10..l3 + 12].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// The IPv4 ID of a frame (VLAN tags allowed), as etherparse reads it.
fn ip_id(f: &[u8]) -> u16 {
    match SlicedPacket::from_ethernet(f).map(|p| p.net) {
        Ok(Some(NetSlice::Ipv4(v4))) => v4.header().identification(),
        _ => panic!("not an IPv4 frame: {f:02x?}"),
    }
}

/// `base` with `shim` between its MAC addresses and its EtherType.
fn with_shim(base: &[u8], shim: &[u8]) -> Vec<u8> {
    [&base[..12], shim, &base[12..]].concat()
}

/// An 802.1Q tag.
fn vlan(base: &[u8], vid: u16) -> Vec<u8> {
    let [hi, lo] = vid.to_be_bytes();
    with_shim(base, &[0x81, 0x00, hi, lo])
}

/// QinQ: an 802.1ad tag (100) and an 802.1Q tag (200).
fn qinq(base: &[u8]) -> Vec<u8> {
    with_shim(base, &[0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x00, 200])
}

/// A VN-Tag.
fn vntag(base: &[u8]) -> Vec<u8> {
    with_shim(base, &[0x89, 0x26, 0x80, 0x05, 0x00, 0x01])
}

/// The IP packet of an untagged `base` under two MPLS labels.
fn mpls(base: &[u8]) -> Vec<u8> {
    let label = |l: u32, bos: u32| ((l << 12) | (bos << 8) | 64).to_be_bytes();
    [
        &base[..12],
        &[0x88, 0x47],
        &label(1000, 0),
        &label(2000, 1),
        &base[14..],
    ]
    .concat()
}

/// `inner` in VXLAN (UDP 4789, VNI `vni`) between two VTEPs.
fn vxlan(inner: &[u8], vni: u32) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 7, 1], [2, 0, 0, 0, 7, 2])
        .ipv4([192, 0, 2, 50], [192, 0, 2, 60], 64)
        .udp(49_152 + (vni % 1000) as u16, 4789)
        .write(&mut out, &payload)
        .expect("build VXLAN");
    out
}

/// `f` with its destination MAC replaced.
fn with_dst_mac(f: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut f = f.to_vec();
    f[..6].copy_from_slice(&mac);
    f
}

/// Complete frames in a pcap file that tcpdump may still be writing (a
/// record cut short at the end is not counted).
fn frames_in(path: &Path) -> usize {
    let Ok(b) = std::fs::read(path) else {
        return 0;
    };
    if b.len() < 24 {
        return 0;
    }
    let le = matches!(b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let (mut at, mut n) = (24, 0);
    while at + 16 <= b.len() {
        let raw = [b[at + 8], b[at + 9], b[at + 10], b[at + 11]];
        let len = if le {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        } as usize;
        if at + 16 + len > b.len() {
            break;
        }
        at += 16 + len;
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------
// The appliance and its tool ports

/// A tool port: a `net_tap` in the test's namespace, tcpdump on it.
struct Tool {
    /// The port's name in the config.
    name: String,
    iface: String,
    device: String,
    pcap: PathBuf,
    tcpdump: Option<Child>,
}

/// A tool group's member as `show tool-group` shows it.
#[derive(Debug)]
struct Member {
    link_up: bool,
    /// Taking a share of the group's flows.
    live: bool,
    tx_packets: u64,
    dropped_tx_full: u64,
}

/// Sluice in a namespace of the test's own, its tool ports captured.
struct Bench {
    ns: Netns,
    dir: PathBuf,
    tools: Vec<Tool>,
    sluice: Option<Running>,
    console: Option<Client>,
    /// The running Sluice's EAL file prefix (its telemetry socket).
    prefix: String,
}

impl Bench {
    /// A namespace and a directory for a test; tool ports named `tools`.
    fn new(tag: &str, tools: &[&str]) -> Bench {
        let dir = tmpdir(tag);
        let tools = tools
            .iter()
            .map(|name| {
                let iface = ifname("slt");
                Tool {
                    name: name.to_string(),
                    device: format!("net_tap_tt{},iface={iface}", seq()),
                    pcap: dir.join(format!("{name}.pcap")),
                    iface,
                    tcpdump: None,
                }
            })
            .collect();
        Bench {
            ns: Netns::quiet(&format!("ns-{tag}")),
            dir,
            tools,
            sluice: None,
            console: None,
            prefix: unique("tool"),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A `net_pcap` input port named `name` reading `frames`.
    fn pcap_input(&self, name: &str, frames: &[Vec<u8>]) -> String {
        let file = self.dir.join(format!("{name}.in.pcap"));
        write_pcap(&file, frames);
        format!(
            "[[port]]\nname = \"{name}\"\nrole = \"input\"\ndevice = \"net_pcap_tti{},rx_pcap={}\"\n\n",
            seq(),
            file.display()
        )
    }

    /// The `[[port]]` of every tool port.
    fn tool_ports(&self) -> String {
        self.tools
            .iter()
            .map(|t| {
                format!(
                    "[[port]]\nname = \"{}\"\nrole = \"tool\"\ndevice = \"{}\"\n\n",
                    t.name, t.device
                )
            })
            .collect()
    }

    /// Starts sluice (stopped) with `config` (tool ports appended) and
    /// `policy`, captures every tool port, then starts forwarding.
    fn start(&mut self, inputs: &str, extra: &str, policy: &str) {
        // No uplink: an appliance whose destinations are all tool ports
        // needs none.
        let config = format!(
            "{inputs}{}{extra}\n\n[dedup]\ntable_entries = 4096\n",
            self.tool_ports()
        );
        std::fs::write(self.dir.join("a.toml"), config).expect("config");
        std::fs::write(self.dir.join("p.toml"), policy).expect("policy");
        let sock = self.dir.join("s.sock");
        let mut args = sluice_args(&self.dir, "a.toml", "s.sock");
        args.push("--stopped".into());
        let mut s = Running::start_in(
            Some(self.ns.name()),
            &eal(&self.prefix, "0-1"),
            &strs(&args),
        );
        s.wait_for("control socket", WAIT_S);
        let deadline = Instant::now() + Duration::from_secs(WAIT_S);
        let console = loop {
            match Client::connect(&sock) {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "console: {e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        for t in &mut self.tools {
            self.ns.ip(&["link", "set", &t.iface, "up"]);
            // What the port sends is what the kernel receives on the tap;
            // anything the kernel itself sends there is not Sluice's.
            t.tcpdump = Some(capture_in(
                self.ns.name(),
                &t.iface,
                // A snap length over the largest frame here keeps the
                // capture ring's slots small: thousands of frames fit in it
                // while tcpdump waits for a core.
                &["-Q", "in", "-s", "2048"],
                &t.pcap,
                1_000_000_000,
            ));
        }
        self.sluice = Some(s);
        self.console = Some(console);
    }

    /// One `dpdk-telemetry.py` command's answer, as JSON.
    fn telemetry(&self, command: &str) -> serde_json::Value {
        let mut child = Command::new("dpdk-telemetry.py")
            .args(["-f", &self.prefix])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dpdk-telemetry.py (package dpdk: run `make setup`)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{command}\n").as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("telemetry");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"{command}\"")))
            .unwrap_or_else(|| panic!("no {command} in:\n{text}"));
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        v[command].clone()
    }

    fn cmd(&mut self, line: &str) -> String {
        match self.console.as_mut().expect("started").command(line) {
            Ok(answer) => answer,
            Err(e) => {
                // Say why: whether sluice is still there, and what it said.
                let s = self.sluice.as_mut().expect("started");
                let status = s.child.try_wait();
                eprintln!("console {line:?}: {e}; sluice: {status:?}");
                s.wait_for("(everything sluice said)", 1);
                unreachable!("wait_for panics with what sluice said");
            }
        }
    }

    fn fwd(&mut self) -> String {
        self.cmd("show fwd stats all")
    }

    /// Polls `ok` until it holds; panics after [`WAIT_S`] with the counters.
    fn until(&mut self, what: &str, mut ok: impl FnMut(&mut Bench) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(WAIT_S);
        while !ok(self) {
            if Instant::now() > deadline {
                let state = match self.sluice {
                    Some(_) => [
                        "show fwd stats all",
                        "show port stats all",
                        "show tool-group",
                    ]
                    .map(|q| self.cmd(q))
                    .join("\n"),
                    None => "(sluice has exited)".to_owned(),
                };
                panic!("{what}: not within {WAIT_S} s\n{state}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `rx` frames have been received and every one of them
    /// is in a terminal counter.
    fn settle(&mut self, rx: u64) {
        self.until(&format!("{rx} frames received and accounted for"), |b| {
            let s = b.fwd();
            total(&s, "rx") == rx && s.contains("(difference 0)")
        });
    }

    /// DPDK port id of every port, by name (`show port info all`).
    fn port_ids(&mut self) -> HashMap<String, u16> {
        let info = self.cmd("show port info all");
        let mut ids = HashMap::new();
        let mut id = None;
        for l in info.lines() {
            if let Some(rest) = l.split("Infos for port ").nth(1) {
                id = rest.split_whitespace().next().and_then(|v| v.parse().ok());
            } else if let (Some(n), Some(i)) = (l.trim().strip_prefix("Name: "), id) {
                let name = n.split_whitespace().next().unwrap_or_default();
                ids.insert(name.to_string(), i);
            }
        }
        ids
    }

    /// What DPDK counts as sent on tool port `name` (its `TX-packets`).
    fn port_tx(&mut self, name: &str) -> u64 {
        let id = self.port_ids()[name];
        let text = self.cmd(&format!("show port stats {id}"));
        text.split("TX-packets:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no TX-packets in:\n{text}"))
    }

    /// Member `port` of tool group `group` as `show tool-group` shows it.
    fn member(&mut self, group: &str, port: &str) -> Member {
        let text = self.cmd(&format!("show tool-group {group}"));
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(port))
            .unwrap_or_else(|| panic!("no member {port} in:\n{text}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .copied()
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let count = |key: &str| {
            after(key)
                .parse()
                .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
        };
        Member {
            link_up: after("link") == "up",
            live: words.contains(&"live"),
            tx_packets: count("tx_packets"),
            dropped_tx_full: count("dropped_tx_full"),
        }
    }

    /// The frames tool port `name` delivered, once its capture holds
    /// `count` of them; its capture ends there.
    fn delivered(&mut self, name: &str, count: usize) -> Vec<Vec<u8>> {
        let i = self
            .tools
            .iter()
            .position(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tool {name}"));
        let pcap = self.tools[i].pcap.clone();
        let deadline = Instant::now() + Duration::from_secs(WAIT_S);
        while frames_in(&pcap) < count {
            if Instant::now() > deadline {
                let state = match self.sluice {
                    Some(_) => [
                        "show fwd stats all",
                        "show port stats all",
                        "show tool-group",
                    ]
                    .map(|q| self.cmd(q))
                    .join("\n"),
                    None => "(sluice has exited)".to_owned(),
                };
                let iface = self.tools[i].iface.clone();
                panic!(
                    "{name}: {} frames captured, not {count}, within {WAIT_S} s\n{}\n{state}",
                    frames_in(&pcap),
                    self.ns.ip_output(&["-s", "link", "show", &iface])
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(mut t) = self.tools[i].tcpdump.take() {
            // SIGINT by its PID: tcpdump writes out what it has and exits.
            let _ = Command::new("kill")
                .args(["-INT", &t.id().to_string()])
                .status();
            let _ = t.wait();
        }
        read_pcap(&pcap)
    }

    /// Quits sluice; its exit report, `rx = Σ terminals` checked.
    fn finish(&mut self) -> String {
        assert!(self.cmd("quit").contains("bye"));
        let s = self.sluice.take().expect("started");
        let (code, report) = s.finish();
        assert_eq!(code, Some(0), "sluice failed:\n{report}");
        assert_identity(&report);
        report
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for t in &mut self.tools {
            if let Some(mut c) = t.tcpdump.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.sluice.take();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `TX-packets` of port `name` in the exit report's port lines.
fn report_port_tx(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find(|l| l.contains(&format!(" \"{name}\" (")))
        .and_then(|l| l.split("TX-packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no TX-packets for port {name}:\n{report}"))
}

/// The Prometheus text sluice serves (its address from its log), fetched
/// inside its namespace, where its loopback address is.
fn scrape(b: &mut Bench) -> String {
    let s = b.sluice.as_mut().expect("started");
    let line = s.wait_for("metrics on http://", WAIT_S);
    let url = line
        .split("metrics on ")
        .nth(1)
        .expect("metrics address")
        .trim()
        .to_owned();
    let out = b.ns.exec(
        "python3",
        &[
            "-c",
            "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
            &url,
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rx = Σ terminals` from the report's totals, each terminal read by name.
fn assert_identity(report: &str) {
    assert_accounting(report);
    let sum: u64 = Terminal::ALL.iter().map(|t| total(report, t.name())).sum();
    assert_eq!(
        total(report, "rx"),
        sum,
        "rx is not the sum of the terminals:\n{report}"
    );
}

/// Asserts `got` is `want`, frame by frame, saying where they differ.
fn assert_frames(what: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(got.len(), want.len(), "{what}: frame count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: frame {i} differs\n got {g:02x?}\nwant {w:02x?}"
        );
    }
}

/// tshark's `frame.protocols` of every frame of `pcap`.
fn protocols(pcap: &Path) -> Vec<String> {
    tshark_fields(pcap, "", &["frame.protocols"])
        .into_iter()
        .map(|f| f.join(""))
        .collect()
}

// ---------------------------------------------------------------------
// Stripping

/// Wraps a plain frame in shims or a tunnel.
type Wrap = fn(&[u8]) -> Vec<u8>;

/// The MAC the stripping destination writes.
const TOOL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

const STRIPPED: &str = r#"
[[destination]]
name = "stripped"
port = "clean"
strip = ["vlan", "mpls", "vntag", "tunnel"]
dst_mac = "02:00:00:00:00:99"
"#;

/// Plain frames of 84 to 1,414 bytes wrapped in each kind of shim and
/// tunnel (alone and nested), and what a destination stripping all of
/// them with [`TOOL_MAC`] makes of each: the plain frame with that MAC.
fn wrapped() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let kinds: [Wrap; 10] = [
        |b| b.to_vec(),
        |b| vlan(b, 10),
        qinq,
        mpls,
        |b| vlan(&mpls(b), 20),
        vntag,
        |b| vntag(&vlan(b, 30)),
        |b| vxlan(b, 100),
        |b| vxlan(&vlan(b, 40), 200),
        |b| vlan(&vxlan(&qinq(b), 300), 50),
    ];
    (0..60u32)
        .map(|i| {
            let base = Flow::nth(i).frame(i % 2 == 1, i as u16, 30 + (i as usize * 37) % 1300);
            let wrap = kinds[i as usize % kinds.len()];
            (wrap(&base), with_dst_mac(&base, TOOL_MAC))
        })
        .unzip()
}

#[test]
fn stripped_frames_carry_no_qinq_mpls_vntag_or_vxlan() {
    let (inputs, want) = wrapped();
    let mut b = Bench::new("strip", &["clean"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        "",
        &format!("{STRIPPED}\n[[rule]]\nname = \"all\"\nto = [\"stripped\"]\n"),
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let clean = b.delivered("clean", inputs.len());
    let fwd = b.fwd();
    assert_eq!(
        dest_counter(&fwd, "stripped", "tx_packets"),
        inputs.len() as u64
    );
    assert_eq!(b.port_tx("clean"), inputs.len() as u64);
    // The strip stage's own counts: six frames of each of the ten kinds;
    // all but the plain kind lose bytes; VLAN tags per round of kinds:
    // 1 + 2 (QinQ) + 1 + 1 + 1 (inside VXLAN) + 3 (outside and inside);
    // two MPLS stacks of two labels.
    let edits = |text: &str| dest_edits(text, "stripped", "strip");
    b.until("the strip counts published", |b| {
        edits(&b.fwd()).get("stripped") == Some(&54)
    });
    let strip = edits(&b.fwd());
    for (counter, n) in [
        ("stripped", 54),
        ("vlan_tags", 54),
        ("mpls_labels", 24),
        ("vn_tags", 12),
        ("tunnels", 18),
        ("dst_mac_rewritten", 60),
    ] {
        assert_eq!(strip.get(counter), Some(&n), "{counter}: {strip:?}");
    }
    let metrics = scrape(&mut b);
    let line = "sluice_destination_strip_total{destination=\"stripped\",counter=\"tunnels\"} 18";
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in:\n{metrics}"
    );
    let report = b.finish();
    assert_eq!(total(&report, "rx"), inputs.len() as u64, "{report}");
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");

    assert_frames("the stripping destination", &clean, &want);
    // tshark: the shims are in what went in, none is in what the tool got,
    // and what it got dissects as the plain frames do.
    let (in_pcap, clean_pcap) = (b.dir.join("net0.in.pcap"), b.tools[0].pcap.clone());
    for shim in ["vlan", "mpls", "vntag", "vxlan"] {
        assert!(tshark_count(&in_pcap, shim) > 0, "no {shim} in the inputs");
    }
    assert_eq!(
        tshark_count(
            &clean_pcap,
            "vlan || mpls || vntag || etag || vxlan || udp.port == 4789"
        ),
        0,
        "tshark finds a header that should be stripped"
    );
    let expected = b.dir.join("expected.pcap");
    write_pcap(&expected, &want);
    assert_eq!(protocols(&clean_pcap), protocols(&expected));
    assert_eq!(
        tshark_count(&clean_pcap, "eth.dst == 02:00:00:00:00:99 && ip"),
        inputs.len()
    );
}

/// A destination that edits nothing gets every frame byte for byte as it
/// went in, also when another destination of the same rule strips its own
/// copy (listed after it, so that one gets the original packet).
#[test]
fn a_tool_port_gets_frames_as_captured_beside_one_that_strips_them() {
    let (inputs, want) = wrapped();
    let mut b = Bench::new("raw", &["raw", "clean"]);
    // With an uplink that sends chained mbufs (as the example's, for its
    // tunnel destination), Sluice may give a destination an indirect clone
    // that shares the original's bytes.
    let input = format!(
        "{}[[port]]\nname = \"uplink\"\nrole = \"uplink\"\ndevice = \"net_pcap_ttu{},tx_pcap={}\"\n\n",
        b.pcap_input("net0", &inputs),
        seq(),
        b.path("uplink.pcap")
    );
    b.start(
        &input,
        "[[uplink]]\nport = \"uplink\"\naddress = \"192.0.2.1/24\"\n",
        &format!(
            "[[destination]]\nname = \"as-captured\"\nport = \"raw\"\n{STRIPPED}\n\
             [[rule]]\nname = \"all\"\nto = [\"as-captured\", \"stripped\"]\n"
        ),
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let raw = b.delivered("raw", inputs.len());
    let clean = b.delivered("clean", inputs.len());
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");
    assert_frames("the destination that strips nothing", &raw, &inputs);
    assert_frames("the stripping destination", &clean, &want);
    let raw_pcap = b.tools[0].pcap.clone();
    assert_eq!(
        protocols(&raw_pcap),
        protocols(&b.dir.join("net0.in.pcap")),
        "tshark reads the tool's frames as it reads the inputs"
    );
}

// ---------------------------------------------------------------------
// Masking

#[test]
fn masking_changes_only_the_masked_bytes_and_leaves_checksums_as_captured() {
    // Payloads shorter and longer than the mask, some frames VLAN-tagged.
    let mut inputs = Vec::new();
    let mut flows = Vec::new();
    for i in 0..40u32 {
        let flow = Flow::nth(i);
        let base = flow.frame(false, i as u16, [20, 63, 64, 65, 200, 1000][i as usize % 6]);
        flows.push((flow, base.clone()));
        inputs.push(if i % 4 == 0 { vlan(&base, 7) } else { base });
    }
    let mut b = Bench::new("mask", &["hidden", "anon"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        "",
        r#"
[[destination]]
name = "headers-only"
port = "hidden"
strip = ["vlan"]
mask = { from = "payload", offset = 0, length = 64, pattern = 0 }

[[destination]]
name = "no-addresses"
port = "anon"
mask = { from = "l3", offset = 12, length = 8, pattern = 255 }

[[rule]]
name = "all"
to = ["headers-only", "no-addresses"]
"#,
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let hidden = b.delivered("hidden", inputs.len());
    let anon = b.delivered("anon", inputs.len());
    // The mask stage's own counts: every frame has a payload and an L3
    // header to mask; the address mask is 8 bytes of each.
    b.until("the mask counts published", |b| {
        let fwd = b.fwd();
        dest_edits(&fwd, "headers-only", "mask").get("masked") == Some(&40)
            && dest_edits(&fwd, "no-addresses", "mask").get("masked") == Some(&40)
    });
    let fwd = b.fwd();
    let anon_mask = dest_edits(&fwd, "no-addresses", "mask");
    assert_eq!(anon_mask.get("bytes_masked"), Some(&320), "{anon_mask:?}");
    let hidden_strip = dest_edits(&fwd, "headers-only", "strip");
    assert_eq!(hidden_strip.get("vlan_tags"), Some(&10), "{hidden_strip:?}");
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");

    // Which bytes differ from the original, and that they are exactly the
    // masked range, all set to the pattern.
    let check = |what: &str, got: &[u8], orig: &[u8], range: std::ops::Range<usize>, pat: u8| {
        assert_eq!(got.len(), orig.len(), "{what}: length");
        let range = range.start.min(orig.len())..range.end.min(orig.len());
        let differ: Vec<usize> = (0..orig.len()).filter(|&k| got[k] != orig[k]).collect();
        let masked: Vec<usize> = range.clone().collect();
        assert_eq!(differ, masked, "{what}: bytes that differ");
        assert!(got[range].iter().all(|&x| x == pat), "{what}: pattern");
    };
    for (i, ((flow, base), input)) in flows.iter().zip(&inputs).enumerate() {
        let p = flow.payload_at();
        check(
            &format!("frame {i} payload-masked"),
            &hidden[i],
            base,
            p..p + 64,
            0,
        );
        let l3 = if i % 4 == 0 { 18 } else { 14 };
        check(
            &format!("frame {i} address-masked"),
            &anon[i],
            input,
            l3 + 12..l3 + 20,
            0xff,
        );
    }
    // Checksums as captured: every masked IPv4 header, and every masked
    // UDP/TCP payload, fails tshark's checksum check.
    let bad = |pcap: &Path, opts: &[&str], filter: &str| {
        tshark_fields_with(pcap, opts, filter, &["frame.number"]).len()
    };
    let anon_pcap = b.tools[1].pcap.clone();
    assert_eq!(
        bad(
            &anon_pcap,
            &["-o", "ip.check_checksum:TRUE"],
            "ip.checksum.status == 0"
        ),
        inputs.len()
    );
    let hidden_pcap = b.tools[0].pcap.clone();
    assert_eq!(
        bad(
            &hidden_pcap,
            &[
                "-o",
                "udp.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE"
            ],
            "udp.checksum.status == 0 || tcp.checksum.status == 0"
        ),
        inputs.len()
    );
}

// ---------------------------------------------------------------------
// Sampling

#[test]
fn one_in_n_sampling_is_exact_and_flow_sampling_keeps_whole_flows() {
    // DNS (UDP 53): the rule samples 1 in 10. Web: 200 bidirectional
    // flows, 3 packets each way, to a destination that samples 1 flow in 4
    // and one that samples 1 packet in 7.
    let mut inputs = Vec::new();
    let mut dns = Vec::new();
    let mut web: Vec<(u16, u32)> = Vec::new();
    let mut id = 0u16;
    let dns_flow = |i: u32| Flow {
        a: [10, 9, (i / 200) as u8, (i % 200 + 1) as u8],
        b: [10, 9, 255, 1],
        pa: 30_000 + i as u16,
        pb: 53,
        tcp: false,
    };
    let web_flow = |i: u32| Flow {
        pb: 80,
        tcp: true,
        ..Flow::nth(i)
    };
    for round in 0..6u32 {
        for f in 0..200u32 {
            inputs.push(web_flow(f).frame(round % 2 == 1, id, 40));
            web.push((id, f));
            id += 1;
            // 1,000 DNS packets among the 1,200 web ones.
            if (f + round) % 6 != 0 {
                inputs.push(dns_flow(dns.len() as u32).frame(false, id, 30));
                dns.push(id);
                id += 1;
            }
        }
    }
    assert_eq!(dns.len(), 1000);
    let mut b = Bench::new("sample", &["t-rule", "t-flow", "t-packet"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        "",
        r#"
[[destination]]
name = "dns"
port = "t-rule"

[[destination]]
name = "flows"
port = "t-flow"
sample = { one_in = 4, by = "flow" }

[[destination]]
name = "packets"
port = "t-packet"
sample = { one_in = 7, by = "packet" }

[[rule]]
name = "dns"
proto = "udp"
dst_port = 53
sample = { one_in = 10, by = "packet" }
to = ["dns"]

[[rule]]
name = "web"
proto = "tcp"
dst_port = 80
to = ["flows", "packets"]

[[rule]]
name = "replies"
proto = "tcp"
src_port = 80
to = ["flows", "packets"]
"#,
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);

    // 1 in N: the first packet and every Nth after it. A destination's
    // sampler counts every packet that reaches it, whichever rule sent it.
    let dns_kept: Vec<u16> = dns.iter().copied().step_by(10).collect();
    let packets_kept: Vec<u16> = web.iter().map(|w| w.0).step_by(7).collect();
    // Flow sampling: the stage's own decision for each flow's first
    // packet; the delivered packets must then be exactly those flows'
    // (whole flows, both directions).
    let by_id: HashMap<u16, &Vec<u8>> = inputs.iter().map(|f| (ip_id(f), f)).collect();
    let mut s = Sampler::new(SampleSpec::FlowHash { one_in: 4 }).expect("sampler");
    let flow_kept: BTreeSet<u32> = web[..200]
        .iter()
        .filter(|w| s.keep(&VecFrame::new(by_id[&w.0]), &parse(by_id[&w.0])))
        .map(|w| w.1)
        .collect();
    let flows_want: Vec<u16> = web
        .iter()
        .filter(|w| flow_kept.contains(&w.1))
        .map(|w| w.0)
        .collect();
    assert!(
        !flows_want.is_empty() && flows_want.len() < web.len(),
        "flow sampling keeps some flows and not others"
    );

    let got_dns: Vec<u16> = b
        .delivered("t-rule", dns_kept.len())
        .iter()
        .map(|f| ip_id(f))
        .collect();
    let got_packets: Vec<u16> = b
        .delivered("t-packet", packets_kept.len())
        .iter()
        .map(|f| ip_id(f))
        .collect();
    let got_flows: Vec<u16> = b
        .delivered("t-flow", flows_want.len())
        .iter()
        .map(|f| ip_id(f))
        .collect();
    let fwd = b.fwd();
    assert_eq!(got_dns, dns_kept, "1 in 10 of the rule's packets");
    assert_eq!(got_packets, packets_kept, "1 in 7 of the destination's");
    assert_eq!(got_flows, flows_want, "the flows the sampler keeps");
    // Whole or absent: every flow's 6 packets, or none.
    let flow_of: HashMap<u16, u32> = web.iter().copied().collect();
    let mut per_flow: BTreeMap<u32, usize> = BTreeMap::new();
    for id in &got_flows {
        *per_flow.entry(flow_of[id]).or_default() += 1;
    }
    assert!(
        per_flow.values().all(|&n| n == 6),
        "a flow split: {per_flow:?}"
    );

    // Counters: per destination (what its own sampler left out), and the
    // terminal `sampled` for packets no destination took.
    assert_eq!(dest_counter(&fwd, "dns", "tx_packets"), 100, "{fwd}");
    assert_eq!(
        dest_counter(&fwd, "packets", "sampled"),
        (web.len() - packets_kept.len()) as u64,
        "{fwd}"
    );
    assert_eq!(
        dest_counter(&fwd, "flows", "sampled"),
        (web.len() - flows_want.len()) as u64,
        "{fwd}"
    );
    // Per-rule hits count what each rule matched, sampled or not, on the
    // console and in Prometheus (published at the workers' drain tick).
    let matched = [("dns", dns.len() as u64), ("web", 600), ("replies", 600)];
    let hits = |text: &str, rule: &str| -> u64 {
        text.lines()
            .find(|l| l.split_whitespace().nth(2) == Some(rule))
            .and_then(|l| {
                // "... packets N bytes M": the line's own counters.
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len()
                    .checked_sub(4)
                    .filter(|&i| w[i] == "packets")
                    .and_then(|i| w[i + 1].parse().ok())
            })
            .unwrap_or_else(|| panic!("no hits for rule {rule} in:\n{text}"))
    };
    b.until("the rules' hits published", |b| {
        let p = b.cmd("show policy rules");
        matched.iter().all(|(r, n)| hits(&p, r) == *n)
    });
    let metrics = scrape(&mut b);
    for (rule, n) in matched {
        let want = format!("sluice_rule_packets_total{{rule=\"{rule}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == want),
            "no {want:?} in:\n{metrics}"
        );
    }
    let taken: BTreeSet<u16> = packets_kept.iter().chain(&flows_want).copied().collect();
    let report = b.finish();
    assert_eq!(total(&report, "rx"), inputs.len() as u64, "{report}");
    assert_eq!(
        total(&report, "forwarded"),
        (dns_kept.len() + taken.len()) as u64,
        "{report}"
    );
    assert_eq!(
        total(&report, "sampled"),
        (inputs.len() - dns_kept.len() - taken.len()) as u64,
        "{report}"
    );
}

/// A packet a rule's sampling leaves out counts `sampled` on each of the
/// rule's destinations, as one their own sampling left out does, and once
/// in the terminal `sampled`.
#[test]
fn a_rules_sampling_counts_sampled_on_each_of_its_destinations() {
    let inputs: Vec<Vec<u8>> = (0..100u32)
        .map(|i| Flow::nth(i).frame(false, i as u16, 40))
        .collect();
    let mut b = Bench::new("rsample", &["ta", "tb"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        "",
        r#"
[[destination]]
name = "a"
port = "ta"

[[destination]]
name = "b"
port = "tb"

[[rule]]
name = "all"
sample = { one_in = 10, by = "packet" }
to = ["a", "b"]
"#,
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let kept: Vec<u16> = (0..100).step_by(10).collect();
    for t in ["ta", "tb"] {
        let got: Vec<u16> = b
            .delivered(t, kept.len())
            .iter()
            .map(|f| ip_id(f))
            .collect();
        assert_eq!(got, kept, "{t}: 1 in 10 of the rule's packets");
    }
    let fwd = b.fwd();
    for d in ["a", "b"] {
        assert_eq!(dest_counter(&fwd, d, "tx_packets"), 10, "{fwd}");
        assert_eq!(dest_counter(&fwd, d, "sampled"), 90, "{d}:\n{fwd}");
    }
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), 10, "{report}");
    assert_eq!(total(&report, "sampled"), 90, "{report}");
}

// ---------------------------------------------------------------------
// Tool groups: symmetry and weights

/// A group of three: two of weight 1, one of weight 2.
const GROUP: &str = r#"
[[tool_group]]
name = "farm"
members = ["ids1", "ids2", { port = "ids3", weight = 2 }]
hash = "5-tuple"
sticky = @STICKY@
"#;

const TO_FARM: &str = r#"
[[destination]]
name = "ids"
port = "farm"

[[rule]]
name = "all"
to = ["ids"]
"#;

const MEMBERS: [(&str, u32); 3] = [("ids1", 1), ("ids2", 1), ("ids3", 2)];

#[test]
fn a_tool_group_keeps_both_directions_of_every_flow_on_one_member_by_weight() {
    const FLOWS: u32 = 1000;
    // Two network ports, one per direction, as a TAP gives them.
    let (mut there, mut back) = (Vec::new(), Vec::new());
    let mut flow_of = HashMap::new();
    let mut id = 0u16;
    for round in 0..4 {
        for f in 0..FLOWS {
            let way = if round % 2 == 0 {
                &mut there
            } else {
                &mut back
            };
            way.push(Flow::nth(f).frame(round % 2 == 1, id, 20));
            flow_of.insert(id, f);
            id += 1;
        }
    }
    let inputs: Vec<Vec<u8>> = there.iter().chain(&back).cloned().collect();
    let names: Vec<&str> = MEMBERS.iter().map(|m| m.0).collect();
    let mut b = Bench::new("sym", &names);
    let input = format!(
        "{}{}",
        b.pcap_input("tap-a2b", &there),
        b.pcap_input("tap-b2a", &back)
    );
    b.start(&input, &GROUP.replace("@STICKY@", "false"), TO_FARM);
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let mut sent = Vec::new();
    for (name, _) in MEMBERS {
        sent.push(b.port_tx(name));
    }
    assert_eq!(sent.iter().sum::<u64>(), inputs.len() as u64, "{sent:?}");
    let mut member_of: HashMap<u32, usize> = HashMap::new();
    for (m, (name, _)) in MEMBERS.iter().enumerate() {
        for f in b.delivered(name, sent[m] as usize) {
            let flow = flow_of[&ip_id(&f)];
            let was = member_of.insert(flow, m);
            assert!(
                was.is_none_or(|w| w == m),
                "flow {flow} ({:?}) reached {} and {name}",
                Flow::nth(flow),
                MEMBERS[was.unwrap_or(m)].0
            );
        }
    }
    // Each member's counters on the console: what DPDK sent, and what
    // the capture holds.
    for (m, (name, _)) in MEMBERS.iter().enumerate() {
        let c = b.member("farm", name);
        assert!(c.link_up && c.live, "{name}: {c:?}");
        assert_eq!((c.tx_packets, c.dropped_tx_full), (sent[m], 0), "{name}");
    }
    // The same per-member counts in Prometheus and DPDK telemetry.
    let metrics = scrape(&mut b);
    let telemetry = b.telemetry("/sluice/tool_ports");
    for (m, (name, _)) in MEMBERS.iter().enumerate() {
        let want = format!(
            "sluice_tool_port_tx_packets_total{{port=\"{name}\"}} {}",
            sent[m]
        );
        assert!(
            metrics.lines().any(|l| l == want),
            "no {want:?} in:\n{metrics}"
        );
        assert_eq!(
            telemetry[format!("{name}/tx_packets")].as_u64(),
            Some(sent[m]),
            "{name}: {telemetry}"
        );
    }
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");
    assert_eq!(
        member_of.len(),
        FLOWS as usize,
        "every flow reached a member"
    );
    let weight: u32 = MEMBERS.iter().map(|m| m.1).sum();
    for (m, (name, w)) in MEMBERS.iter().enumerate() {
        let flows = member_of.values().filter(|&&x| x == m).count() as f64;
        let share = flows / f64::from(FLOWS);
        let want = f64::from(*w) / f64::from(weight);
        assert!(
            (share - want).abs() <= 0.1 * want,
            "{name} took {flows} flows: share {share:.3}, its weight's {want:.3}"
        );
    }
}

/// A match-all rule to a group without dedup: every burst skips parse and
/// classification, and plain frames are hashed at fixed offsets. A flow's
/// 802.1Q-tagged frames (parsed, then hashed) reach the member its plain
/// frames reach; frames whose IPv4 length lies are forwarded and counted
/// as parse errors; the rule's hits, each member's counters and
/// `rx = Σ terminals` hold.
#[test]
fn a_match_all_group_hashes_plain_and_tagged_frames_of_a_flow_alike() {
    const FLOWS: u32 = 300;
    let mut inputs = Vec::new();
    let mut flow_of = HashMap::new();
    for f in 0..FLOWS {
        let id = f as u16;
        let plain = Flow::nth(f).frame(f % 2 == 1, id, 20);
        let tagged_id = id + 1000;
        inputs.push(plain);
        inputs.push(vlan(&Flow::nth(f).frame(f % 2 == 0, tagged_id, 20), 42));
        flow_of.insert(id, f);
        flow_of.insert(tagged_id, f);
    }
    // An IPv4 total length past the frame: parse's bad_l3.
    let lying: Vec<Vec<u8>> = (0..20u32)
        .map(|f| {
            let mut b = Flow::nth(f).frame(false, 2000 + f as u16, 20);
            b[16..18].copy_from_slice(&1400u16.to_be_bytes());
            b
        })
        .collect();
    inputs.extend(lying.iter().cloned());
    let names: Vec<&str> = MEMBERS.iter().map(|m| m.0).collect();
    let mut b = Bench::new("direct", &names);
    let input = b.pcap_input("tap", &inputs);
    let policy = TO_FARM.replace("port = \"farm\"", "port = \"farm\"\ndedup = false");
    b.start(&input, &GROUP.replace("@STICKY@", "false"), &policy);
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let mut member_of: HashMap<u32, usize> = HashMap::new();
    let mut lied = 0;
    let mut sent = 0;
    for (m, (name, _)) in MEMBERS.iter().enumerate() {
        let c = b.member("farm", name);
        assert_eq!(c.dropped_tx_full, 0, "{name}");
        sent += c.tx_packets;
        for f in b.delivered(name, c.tx_packets as usize) {
            if lying.contains(&f) {
                lied += 1;
                continue;
            }
            let flow = flow_of[&ip_id(&f)];
            let was = member_of.insert(flow, m);
            assert!(
                was.is_none_or(|w| w == m),
                "flow {flow}: its plain and tagged frames reached {} and {name}",
                MEMBERS[was.unwrap_or(m)].0
            );
        }
    }
    assert_eq!(sent, inputs.len() as u64);
    assert_eq!(lied, lying.len());
    assert_eq!(member_of.len(), FLOWS as usize);
    assert!(
        (0..MEMBERS.len()).all(|m| member_of.values().any(|&x| x == m)),
        "every member took flows: {member_of:?}"
    );
    b.until("the rule's hits published", |b| {
        let p = b.cmd("show policy rules");
        p.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = inputs.len().to_string();
            w.get(2) == Some(&"all") && w.windows(2).any(|p| p == ["packets", n.as_str()])
        })
    });
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");
    assert_eq!(
        total(&report, "parse_errors"),
        lying.len() as u64,
        "{report}"
    );
}

/// The other two hashes: `ip-pair` keeps every flow between two hosts on
/// one member; `inner-5-tuple` keeps both directions of a tunnelled flow
/// on one member although the two directions' tunnels differ (outer
/// addresses swapped, each VTEP its own source port).
#[test]
fn ip_pair_and_inner_groups_keep_hosts_and_tunnelled_flows_together() {
    let mut inputs = Vec::new();
    let mut pair_of = HashMap::new();
    let mut inner_of = HashMap::new();
    let mut id = 0u16;
    // 100 host pairs, 4 flows between each, both ways: plain, to "pairs".
    for h in 0..100u32 {
        for k in 0..4u32 {
            let f = Flow {
                pa: 1024 + (k * 1009 + h) as u16,
                pb: [80, 443, 22, 8080][k as usize],
                ..Flow::nth(h)
            };
            for back in [false, true] {
                inputs.push(f.frame(back, id, 20));
                pair_of.insert(id, h);
                id += 1;
            }
        }
    }
    // 200 flows in VXLAN, both ways, to "inner": the way there from VTEP
    // 192.0.2.50, the way back from 192.0.2.60 with another source port.
    for i in 0..200u32 {
        let f = Flow::nth(500 + i);
        for back in [false, true] {
            let mut t = vxlan(&f.frame(back, id, 20), 1000 + i);
            if back {
                // The other VTEP: addresses swapped (the IPv4 checksum is
                // symmetric in them), another source port.
                let (a, b) = (t[26..30].to_vec(), t[30..34].to_vec());
                t[26..30].copy_from_slice(&b);
                t[30..34].copy_from_slice(&a);
                t[34..36].copy_from_slice(&(60_000 - i as u16).to_be_bytes());
                t[40..42].fill(0);
            }
            inputs.push(t);
            inner_of.insert(id, i);
            id += 1;
        }
    }
    let mut b = Bench::new("hash", &["p1", "p2", "i1", "i2"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        r#"
[[tool_group]]
name = "by-pair"
members = ["p1", "p2"]
hash = "ip-pair"

[[tool_group]]
name = "by-inner"
members = ["i1", "i2"]
hash = "inner-5-tuple"
"#,
        r#"
[[destination]]
name = "pairs"
port = "by-pair"

[[destination]]
name = "inner"
port = "by-inner"

[[rule]]
name = "tunnels"
proto = "udp"
dst_port = 4789
to = ["inner"]

[[rule]]
name = "rest"
to = ["pairs"]
"#,
    );
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let check = |b: &mut Bench,
                 group: &str,
                 members: [&str; 2],
                 of: &HashMap<u16, u32>,
                 id_of: fn(&[u8]) -> u16| {
        let mut member_of: HashMap<u32, &str> = HashMap::new();
        for name in members {
            let n = b.member(group, name).tx_packets as usize;
            for f in b.delivered(name, n) {
                let key = of[&id_of(&f)];
                let was = member_of.insert(key, name);
                assert!(
                    was.is_none_or(|w| w == name),
                    "{group}: {key} reached {was:?} and {name}"
                );
            }
        }
        let on_first = member_of.values().filter(|m| **m == members[0]).count();
        assert!(
            on_first > 0 && on_first < member_of.len(),
            "{group}: every key on one member"
        );
        member_of.len()
    };
    assert_eq!(check(&mut b, "by-pair", ["p1", "p2"], &pair_of, ip_id), 100);
    // The inner frame's IPv4 ID, past the outer headers (50 bytes).
    let inner_id: fn(&[u8]) -> u16 = |f| ip_id(&f[50..]);
    assert_eq!(
        check(&mut b, "by-inner", ["i1", "i2"], &inner_of, inner_id),
        200
    );
    let report = b.finish();
    assert_eq!(total(&report, "forwarded"), inputs.len() as u64, "{report}");
}

/// A group whose every member is down counts its copies as
/// `dropped_no_tool`, on the destination and as the packets' terminal.
#[test]
fn a_group_with_no_live_member_counts_dropped_no_tool() {
    let inputs: Vec<Vec<u8>> = (0..50u32)
        .map(|i| Flow::nth(i).frame(false, i as u16, 20))
        .collect();
    let mut b = Bench::new("notool", &["ids1", "ids2"]);
    let input = b.pcap_input("net0", &inputs);
    b.start(
        &input,
        "[[tool_group]]\nname = \"farm\"\nmembers = [\"ids1\", \"ids2\"]\n",
        TO_FARM,
    );
    for m in ["ids1", "ids2"] {
        b.cmd(&format!("set link-down {m}"));
    }
    b.until("no live member", |b| {
        b.cmd("show tool-group farm").contains("no live member")
    });
    assert!(b.cmd("start").contains("forwarding started"));
    b.settle(inputs.len() as u64);
    let fwd = b.fwd();
    assert_eq!(dest_counter(&fwd, "ids", "dropped_no_tool"), 50, "{fwd}");
    assert_eq!(dest_counter(&fwd, "ids", "tx_packets"), 0, "{fwd}");
    for m in ["ids1", "ids2"] {
        assert_eq!(b.member("farm", m).tx_packets, 0);
    }
    let report = b.finish();
    assert_eq!(total(&report, "dropped_no_tool"), 50, "{report}");
    assert_eq!(total(&report, "forwarded"), 0, "{report}");
}

// ---------------------------------------------------------------------
// Failover under traffic

/// 1,000 UDP flows (one per client address), a sequence stamp in each
/// payload: flow id and the flow's sequence number.
const PROFILE: &str = r#"
packets = 1000
size = 128
sequence = true

[[flow]]
name = "clients"
src = "10.1.0.1-10.1.3.232"
dst = "10.2.0.1"
proto = "udp"
src_port = 5000
dst_port = 80
"#;

/// The pktgen stamp right after the UDP header: (flow, sequence).
fn stamp(f: &[u8]) -> (u32, u32) {
    let s = f
        .get(42..54)
        .unwrap_or_else(|| panic!("short frame {f:02x?}"));
    assert_eq!(&s[..4], b"SLPG", "no stamp in {f:02x?}");
    (
        u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_be_bytes([s[8], s[9], s[10], s[11]]),
    )
}

/// A member of the group taken down under traffic and brought back;
/// every packet is followed by its stamp to the member that got it.
fn failover(sticky: bool) {
    let names: Vec<&str> = MEMBERS.iter().map(|m| m.0).collect();
    let mut b = Bench::new(if sticky { "fo-sticky" } else { "fo" }, &names);
    let memif = b.dir.join("in.sock");
    let input = format!(
        "[[port]]\nname = \"net0\"\nrole = \"input\"\ndevice = \"net_memif_tti{},role=server,socket={},socket-abstract=no\"\n\n",
        seq(),
        memif.display()
    );
    b.start(
        &input,
        &GROUP.replace("@STICKY@", &sticky.to_string()),
        TO_FARM,
    );
    assert!(b.cmd("start").contains("forwarding started"));
    let (down, others) = ("ids1", ["ids2", "ids3"]);

    // Traffic until the test has seen what it waits for; killed by PID.
    let port = format!(
        "net_memif_pg{},role=client,socket={},socket-abstract=no",
        seq(),
        memif.display()
    );
    let mut pktgen = Pktgen::send(
        &b.dir,
        None,
        PROFILE,
        &port,
        &["--rate-pps", "10000", "--duration", "600"],
    );
    let tx = |b: &mut Bench, port: &str| b.member("farm", port).tx_packets;
    let others_tx = |b: &mut Bench| others.iter().map(|n| tx(b, n)).sum::<u64>();

    // All up: three rounds of every flow.
    b.until("3,000 packets to the group", |b| {
        total(&b.fwd(), "forwarded") >= 3000
    });
    let answer = b.cmd(&format!("set link-down {down}"));
    b.until(
        &format!("{down} down and out of the group ({answer})"),
        |b| {
            let m = b.member("farm", down);
            !m.link_up && !m.live
        },
    );
    // Down: the member sends nothing more while the others send 2,000
    // (with it up, a quarter of those would be its flows').
    b.until(&format!("{down} quiet while the others send"), |b| {
        let (x, o) = (tx(b, down), others_tx(b));
        let mut quiet = true;
        b.until("2,000 more to the others", |b| {
            quiet &= tx(b, down) == x;
            others_tx(b) >= o + 2000
        });
        quiet
    });
    let answer = b.cmd(&format!("set link-up {down}"));
    b.until(&format!("{down} up and live again ({answer})"), |b| {
        let m = b.member("farm", down);
        m.link_up && m.live
    });
    // Then 3,000 more packets: a plain group takes its flows back, a
    // sticky one leaves them where they went.
    if sticky {
        let o = others_tx(&mut b);
        b.until("3,000 more to the others", |b| others_tx(b) >= o + 3000);
    } else {
        let x = tx(&mut b, down);
        b.until(&format!("{down} sending 1,000 again"), |b| {
            tx(b, down) >= x + 1000
        });
    }
    // Sluice quits under traffic, its sender still connected (a memif peer
    // going away while sluice runs can take sluice's control socket with
    // it); the exit report has the final counts. What a tool port sent is
    // in its capture already: tap writes reach tcpdump's ring at once.
    let report = b.finish();
    pktgen.kill();
    let rx = total(&report, "rx");
    let counted: u64 = DestDrop::ALL
        .iter()
        .map(|d| dest_counter(&report, "ids", d.name()))
        .sum();
    assert_eq!(
        dest_counter(&report, "ids", "dropped_no_tool"),
        0,
        "{report}"
    );
    // Every packet sent by a member or counted: a copy queued for the
    // member as its link went, before the group moved its flows, is
    // refused by the port and counted dropped_tx_full.
    let sent: Vec<u64> = MEMBERS
        .iter()
        .map(|(name, _)| report_port_tx(&report, name))
        .collect();
    assert_eq!(sent.iter().sum::<u64>() + counted, rx, "{report}");
    assert_eq!(
        dest_counter(&report, "ids", "tx_packets"),
        sent.iter().sum::<u64>()
    );
    let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
    for (m, (name, _)) in MEMBERS.iter().enumerate() {
        got.push(b.delivered(name, sent[m] as usize));
    }

    // Per flow, the member each packet reached, in sequence order.
    let mut path: BTreeMap<u32, BTreeMap<u32, usize>> = BTreeMap::new();
    let mut captured = 0u64;
    for (m, frames) in got.iter().enumerate() {
        for f in frames {
            let (flow, sq) = stamp(f);
            captured += 1;
            assert!(
                path.entry(flow).or_default().insert(sq, m).is_none(),
                "flow {flow} packet {sq} delivered twice"
            );
        }
    }
    assert_eq!(captured + counted, rx, "every packet delivered or counted");
    assert_eq!(path.len(), 1000, "every flow delivered");
    let x = MEMBERS.iter().position(|m| m.0 == down).expect("member");
    let (mut moved, mut gaps) = (0, 0);
    for (flow, seqs) in &path {
        let first = *seqs.keys().next().expect("a packet");
        let last = *seqs.keys().last().expect("a packet");
        let missing = (last - first + 1) as u64 - seqs.len() as u64;
        // Runs of one member in sequence order.
        let mut runs: Vec<usize> = Vec::new();
        for m in seqs.values() {
            if runs.last() != Some(m) {
                runs.push(*m);
            }
        }
        if runs[0] != x {
            assert_eq!(
                (runs.len(), missing),
                (1, 0),
                "flow {flow} moved or lost a packet though its member stayed up: {runs:?}"
            );
            continue;
        }
        moved += 1;
        gaps += missing;
        let want = if sticky { 2 } else { 3 };
        assert_eq!(
            runs.len(),
            want,
            "flow {flow} of the downed member: {runs:?}"
        );
        assert_ne!(runs[1], x, "flow {flow} moved to a live member");
        if !sticky {
            assert_eq!(runs[2], x, "flow {flow} came back");
        }
    }
    assert!(moved > 0, "the downed member had flows");
    assert!(gaps <= counted, "{gaps} packets missing, {counted} counted");
}

#[test]
fn failover_moves_a_downed_members_flows_and_gives_them_back() {
    failover(false);
}

#[test]
fn failover_in_a_sticky_group_leaves_moved_flows_where_they_went() {
    failover(true);
}
