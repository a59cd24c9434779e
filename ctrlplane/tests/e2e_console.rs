//! The console against a running appliance on virtual devices: every
//! command over the control socket, sluice-cli, the interactive prompt in a
//! pseudo-terminal, the Prometheus endpoint and DPDK telemetry.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ctrlplane::cli::socket::Client;
use etherparse::PacketBuilder;

const CONFIG: &str = r#"
[appliance]
name = "console"

[[port]]
name = "tap0"
device = "net_pcap_con_in@N@,rx_pcap=@IN@,infinite_rx=1"
role = "input"

[[port]]
name = "uplink"
device = "net_pcap_con_up@N@,tx_pcap=@OUT@"
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
version = "console-1"

[[group]]
name = "servers"
cidrs = ["10.2.0.0/16"]
labels = { service = "web" }

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
slice = 64
dedup = false

[[rule]]
name = "ssh"
proto = "tcp"
dst_port = 22
action = "drop"

[[rule]]
name = "servers"
dst_group = "servers"
to = ["noc", "ids"]
"#;

struct Fixture {
    dir: PathBuf,
    socket: PathBuf,
    prefix: String,
    metrics: String,
    sluice: Running,
}

fn frames() -> Vec<Vec<u8>> {
    (0..16u32)
        .map(|i| {
            let mut out = Vec::new();
            let port = if i % 4 == 0 { 22 } else { 443 };
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, 1], [10, 2, 0, (i % 3) as u8], 64)
                .tcp(40000 + i as u16, port, i, 1000)
                .write(&mut out, &[i as u8; 100])
                .expect("build");
            out
        })
        .collect()
}

/// The input capture, `a.toml` and `p.toml` in `dir`.
fn write_inputs(dir: &Path) {
    write_pcap(&dir.join("in.pcap"), &frames());
    let p = |n: &str| dir.join(n).display().to_string();
    let cfg = CONFIG
        .replace("@IN@", &p("in.pcap"))
        .replace("@OUT@", &p("out.pcap"))
        .replace("@N@", &seq().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
}

fn start(extra: &[&str]) -> Fixture {
    let dir = tmpdir("console");
    write_inputs(&dir);
    let p = |n: &str| dir.join(n).display().to_string();
    let socket = dir.join("ctl.sock");
    let prefix = unique("console");
    let mut args = vec![
        "--config".to_owned(),
        p("a.toml"),
        "--policy".to_owned(),
        p("p.toml"),
        "--socket".to_owned(),
        socket.display().to_string(),
        "--metrics".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sluice = Running::start(&eal(&prefix, "0-1"), &argv);
    // sluice says these in this order.
    sluice.wait_for("control socket", 60);
    let line = sluice.wait_for("metrics on http://", 60);
    let metrics = line
        .split("http://")
        .nth(1)
        .and_then(|a| a.strip_suffix("/metrics"))
        .expect("address")
        .to_owned();
    Fixture {
        dir,
        socket,
        prefix,
        metrics,
        sluice,
    }
}

impl Fixture {
    fn cmd(&self, line: &str) -> String {
        let mut c = Client::connect(&self.socket).expect("connect");
        c.command(line).expect("answer")
    }

    fn stop(self) {
        let _ = Client::connect(&self.socket).and_then(|mut c| c.command("quit"));
        let (code, report) = self.sluice.finish();
        assert_eq!(code, Some(0), "{report}");
        assert_accounting(&report);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has(out: &str, want: &str) {
    assert!(out.contains(want), "expected {want:?} in:\n{out}");
}

#[test]
fn every_command_answers_over_the_socket() {
    let f = start(&[]);
    has(&f.cmd("show port info all"), "Driver name: net_pcap");
    has(&f.cmd("show port info 1"), "Name: uplink (Uplink");
    has(&f.cmd("show port stats all"), "NIC statistics for port 1");
    has(&f.cmd("show port xstats 0"), "rx_good_packets");
    has(
        &f.cmd("clear port stats 0"),
        "NIC statistics for port 0 cleared",
    );
    has(&f.cmd("show fwd stats all"), "accounting: rx");
    has(
        &f.cmd("show config fwd"),
        "lcore 1: worker 0: polls port 0 queue 0",
    );
    has(&f.cmd("show lcores"), "lcore 0: main");
    let pol = f.cmd("show policy");
    has(
        &pol,
        "policy \"console-1\": 1 group(s), 2 destination(s), 2 rule(s)",
    );
    has(&pol, "rule 1    servers");
    has(&f.cmd("show policy groups"), "group servers");
    has(&f.cmd("show policy destinations"), "destination ids");
    has(&f.cmd("show dedup"), "window: 50000 µs");
    has(
        &f.cmd("set dedup window 20000"),
        "dedup window set to 20000 µs",
    );
    has(&f.cmd("show dedup"), "window: 20000 µs");
    has(&f.cmd("set dedup window 0"), "outside 1..=10000000");
    let t = f.cmd("show tunnel noc");
    has(&t, "destination noc");
    has(&t, "template: ready");
    assert!(!t.contains("destination ids"), "{t}");
    has(
        &f.cmd("show tunnel nowhere"),
        "no destination \"nowhere\"; destinations are noc, ids",
    );
    has(&f.cmd("show state"), "state: running");
    has(&f.cmd("show controller"), "no controller configured");
    // A pcap file has no link to take down: the device says so.
    has(&f.cmd("set link-down port 1"), "port 1 \"uplink\": port ");
    has(&f.cmd("set link-up port 9"), "no port 9; ports are 0, 1");
    has(&f.cmd("show version"), "DPDK 22.11");
    has(&f.cmd("show arp"), "192.0.2.10");
    has(&f.cmd("help"), "trace add <packets>");
    let h = f.cmd("help show port");
    has(&h, "show port info|stats|xstats");
    assert!(!h.contains("trace"), "{h}");

    // Trace: five packets with their rule and verdicts.
    has(&f.cmd("trace add 5"), "tracing the next 5 packet(s)");
    let mut tr = String::new();
    // Traffic loops forever: the five are recorded at the next bursts.
    for _ in 0..1000 {
        tr = f.cmd("show trace");
        if tr.contains("Packet 5 ") {
            break;
        }
    }
    has(&tr, "Packet 5 ");
    assert!(!tr.contains("Packet 6 "), "{tr}");
    assert_eq!(tr.matches("  filter:  rule").count(), 5, "{tr}");
    assert_eq!(tr.matches("  verdict: ").count(), 5, "{tr}");
    has(&tr, "  dedup:   not checked");
    assert!(
        tr.contains("rule 0 \"ssh\"") || tr.contains("rule 1 \"servers\""),
        "{tr}"
    );
    has(&f.cmd("trace clear"), "trace cleared");
    has(&f.cmd("show trace"), "no packet traced");

    // Policy load: a broken file is refused with its errors, a good one taken.
    std::fs::write(
        f.dir.join("bad.toml"),
        "[[rule]]\nname = \"x\"\nto = [\"nowhere\"]\n",
    )
    .expect("write");
    let bad = f.cmd(&format!("policy load {}", f.dir.join("bad.toml").display()));
    has(&bad, "rule[0].to[0]: no destination named \"nowhere\"");
    has(&bad, "keeping policy \"console-1\"");
    std::fs::write(
        f.dir.join("good.toml"),
        POLICY.replace("console-1", "console-2"),
    )
    .expect("write");
    has(
        &f.cmd(&format!(
            "policy load {}",
            f.dir.join("good.toml").display()
        )),
        "policy \"console-2\" loaded",
    );

    // Errors are one line, and the appliance carries on.
    for (bad, want) in [
        ("show port stats 9", "no port 9; ports are 0, 1 or all"),
        ("frobnicate", "unknown command \"frobnicate\""),
        ("show port stats x", "expected <port>|all where \"x\" is"),
        ("trace add", "expected <packets> where nothing is"),
    ] {
        let out = f.cmd(bad);
        has(&out, want);
        assert_eq!(out.trim_end().lines().count(), 1, "one line: {out}");
    }

    // stop / start, and counters cleared to an exact zero while stopped.
    has(&f.cmd("stop"), "forwarding stopped");
    has(&f.cmd("show state"), "state: stopped");
    has(&f.cmd("clear fwd stats all"), "forward statistics cleared");
    has(
        &f.cmd("show fwd stats all"),
        "accounting: rx 0 = sum of terminal counters 0 (difference 0)",
    );
    has(&f.cmd("start"), "forwarding started");
    has(&f.cmd("show state"), "state: running");
    has(&f.cmd("show controller"), "no controller configured");
    // A pcap file has no link to take down: the device says so.
    has(&f.cmd("set link-down port 1"), "port 1 \"uplink\": port ");
    has(&f.cmd("set link-up port 9"), "no port 9; ports are 0, 1");

    let mut c = Client::connect(&f.socket).expect("connect");
    assert_eq!(
        c.complete("show port ").expect("complete"),
        vec!["info", "stats", "xstats"]
    );
    assert_eq!(
        c.complete("show port stats ").expect("complete"),
        vec!["0", "1", "all"]
    );
    f.stop();
}

#[test]
fn socket_is_private_and_survives_clients_that_hang_up() {
    let f = start(&[]);
    let mode = std::fs::metadata(&f.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Another user cannot connect.
    let out = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_sluice-cli"),
            "--socket",
        ])
        .arg(&f.socket)
        .args(["show", "state"])
        .output()
        .expect("runuser");
    assert!(!out.status.success(), "nobody reached the console");
    has(&String::from_utf8_lossy(&out.stderr), "Permission denied");

    // A client that sends half a line and leaves, one that leaves without
    // reading its answer, and a garbage request: the next client is served.
    let mut s = UnixStream::connect(&f.socket).expect("connect");
    s.write_all(b"C show por").expect("write");
    drop(s);
    let mut s = UnixStream::connect(&f.socket).expect("connect");
    s.write_all(b"C show fwd stats all\n").expect("write");
    drop(s);
    let mut s = UnixStream::connect(&f.socket).expect("connect");
    s.write_all(b"\x00\xffgarbage\n").expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("answer");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("answer");
    has(&String::from_utf8_lossy(&body), "bad request");
    let mut long = vec![b'C'; ctrlplane::cli::socket::MAX_REQUEST + 10];
    long.push(b'\n');
    s.write_all(&long).expect("write");
    s.read_exact(&mut len).expect("answer");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("answer");
    has(&String::from_utf8_lossy(&body), "request longer than");
    has(&f.cmd("show state"), "state: running");
    has(&f.cmd("show controller"), "no controller configured");
    // A pcap file has no link to take down: the device says so.
    has(&f.cmd("set link-down port 1"), "port 1 \"uplink\": port ");
    has(&f.cmd("set link-up port 9"), "no port 9; ports are 0, 1");

    // sluice-cli runs one command.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .arg("--socket")
        .arg(&f.socket)
        .args(["show", "port", "stats", "all"])
        .output()
        .expect("sluice-cli");
    assert!(out.status.success());
    has(
        &String::from_utf8_lossy(&out.stdout),
        "NIC statistics for port 0",
    );
    f.stop();
}

fn metric(samples: &prometheus_parse::Scrape, name: &str, label: (&str, &str)) -> f64 {
    samples
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name} {label:?}"))
}

fn field(stats: &str, port_block: usize, name: &str) -> u64 {
    let block = stats
        .split("NIC statistics for port")
        .nth(port_block + 1)
        .unwrap_or_else(|| panic!("no block {port_block}:\n{stats}"));
    let rest = block
        .split(&format!("{name}:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name}"));
    rest.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number")
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "{resp}"
    );
    resp.split("\r\n\r\n").nth(1).expect("body").to_owned()
}

#[test]
fn metrics_and_telemetry_equal_the_console() {
    let f = start(&[]);
    // Some traffic first (bounded), then quiesce: stopped workers no
    // longer poll the input, and the pcap uplink has no RX queue, so
    // nothing moves between the readings.
    for _ in 0..10_000 {
        if total(&f.cmd("show fwd stats all"), "rx") > 0 {
            break;
        }
    }
    has(&f.cmd("stop"), "forwarding stopped");
    // The burst in hand when `stop` came still leaves the TX buffer: wait
    // until nothing is in flight and the counters read the same twice.
    let mut fwd = f.cmd("show fwd stats all");
    for _ in 0..10_000 {
        let again = f.cmd("show fwd stats all");
        if again == fwd && again.contains("(difference 0)") {
            break;
        }
        fwd = again;
    }
    let stats = f.cmd("show port stats all");
    let body = scrape(&f.metrics);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid exposition text");
    assert_eq!(
        metric(&parsed, "sluice_port_rx_packets_total", ("port", "0")) as u64,
        field(&stats, 0, "RX-packets")
    );
    assert_eq!(
        metric(&parsed, "sluice_port_tx_packets_total", ("port", "1")) as u64,
        field(&stats, 1, "TX-packets")
    );
    assert_eq!(
        metric(&parsed, "sluice_port_rx_bytes_total", ("port", "0")) as u64,
        field(&stats, 0, "RX-bytes")
    );
    assert_eq!(metric(&parsed, "sluice_state", ("state", "stopped")), 1.0);
    let rx = total(&fwd, "rx");
    assert!(rx > 0);
    let worker_rx: f64 = parsed
        .samples
        .iter()
        .filter(|s| s.metric == "sluice_rx_packets_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(worker_rx as u64, rx);

    // dpdk-telemetry.py, from the dpdk package, reads the same counters.
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", &f.prefix])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (package dpdk: run `make setup`)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"/sluice/stats\n/sluice/destinations\n/sluice/rules\n")
        .expect("write");
    let out = child.wait_with_output().expect("telemetry");
    let text = String::from_utf8_lossy(&out.stdout);
    let stats_json = text
        .lines()
        .find(|l| l.contains("\"/sluice/stats\""))
        .unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(stats_json).expect("json");
    assert_eq!(v["/sluice/stats"]["rx"].as_u64(), Some(rx));
    assert_eq!(
        v["/sluice/stats"]["forwarded"].as_u64(),
        Some(total(&fwd, "forwarded"))
    );
    let dests_json = text
        .lines()
        .find(|l| l.contains("\"/sluice/destinations\""))
        .unwrap_or_else(|| panic!("{text}"));
    let d: serde_json::Value = serde_json::from_str(dests_json).expect("json");
    assert_eq!(
        d["/sluice/destinations"]["noc/tx_packets"].as_u64(),
        Some(metric(
            &parsed,
            "sluice_destination_tx_packets_total",
            ("destination", "noc")
        ) as u64)
    );

    // Per-rule hits: the capture replays in order, one frame in four to
    // port 22 (rule "ssh", from the first), the rest to the servers; every
    // packet is counted on exactly one rule (or the default).
    let policy = f.cmd("show policy rules");
    let hits = |rule: &str| -> u64 {
        let line = policy
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(rule))
            .unwrap_or_else(|| panic!("no rule {rule:?} in:\n{policy}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "packets").expect("packets");
        words[at + 1].parse().expect("a count")
    };
    let default = policy
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no default line in:\n{policy}"));
    assert_eq!(hits("ssh"), rx.div_ceil(4), "{policy}");
    assert_eq!(hits("ssh") + hits("servers") + default, rx, "{policy}");
    assert_eq!(default, 0, "{policy}");
    let rules_json = text
        .lines()
        .find(|l| l.contains("\"/sluice/rules\""))
        .unwrap_or_else(|| panic!("{text}"));
    let r: serde_json::Value = serde_json::from_str(rules_json).expect("json");
    for rule in ["ssh", "servers"] {
        assert_eq!(
            metric(&parsed, "sluice_rule_packets_total", ("rule", rule)) as u64,
            hits(rule),
            "{rule}"
        );
        assert_eq!(
            r["/sluice/rules"][format!("{rule}/packets")].as_u64(),
            Some(hits(rule)),
            "{rule}: {rules_json}"
        );
    }
    f.stop();
}

#[test]
fn interactive_prompt_edits_completes_and_quits() {
    let dir = tmpdir("prompt");
    write_inputs(&dir);
    let p = |n: &str| dir.join(n).display().to_string();
    let cmd = format!(
        "{} {} -- --config {} --policy {} --socket {} --metrics 127.0.0.1:0 -i",
        env!("CARGO_BIN_EXE_sluice"),
        eal(&unique("prompt"), "0-1").join(" "),
        p("a.toml"),
        p("p.toml"),
        p("s.sock")
    );
    let mut s = rexpect::spawn(&cmd, Some(60_000)).expect("spawn in a pty");
    s.exp_string("sluice> ").expect("prompt");
    // -i without -a: forwarding waits for `start`, like testpmd.
    s.send_line("show state").expect("type");
    s.exp_string("state: stopped").expect("stopped");
    s.send_line("start").expect("type");
    s.exp_string("forwarding started").expect("started");
    // Tab completes "sh" to "show " and "st" to "state".
    s.send("sh\tst").expect("type");
    s.send("\t").expect("tab");
    s.send_line("").expect("enter");
    s.exp_string("state: running")
        .expect("completed command ran");
    s.send_line("show port stats 7").expect("type");
    s.exp_string("no port 7").expect("error line");
    s.send_line("quit").expect("type");
    s.exp_eof().expect("exits");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cmdline_file_runs_its_commands() {
    let dir = tmpdir("cmdfile");
    write_inputs(&dir);
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(
        dir.join("cmds"),
        "# comment\nshow state\nshow version\nquit\n",
    )
    .expect("cmds");
    let out = sluice(
        &eal(&unique("cmdfile"), "0-1"),
        &[
            "--config",
            &p("a.toml"),
            "--policy",
            &p("p.toml"),
            "--socket",
            &p("s.sock"),
            "--metrics",
            "127.0.0.1:0",
            "--cmdline-file",
            &p("cmds"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    has(&text, "state: running");
    has(&text, "Sluice ");
    has(&text, "bye");
    assert!(!Path::new(&p("s.sock")).exists(), "socket removed at exit");
    let _ = std::fs::remove_dir_all(dir);
}
