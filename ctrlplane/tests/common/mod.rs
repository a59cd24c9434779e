//! Helpers for end-to-end tests that run the `sluice` binary on virtual
//! devices: temp dirs, pcap files, tshark, and the exit report.

#![allow(dead_code)]

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process.
pub fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A unique name for this process and call.
pub fn unique(name: &str) -> String {
    format!(
        "sluice-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system temp dir; removed by the caller.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).expect("create pcap");
    let mut w = PcapWriter::new(f).expect("pcap header");
    for (i, fr) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(1 + i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .expect("write");
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).expect("open pcap");
    let mut r = PcapReader::new(f).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("packet").data.into_owned());
    }
    out
}

/// EAL arguments for a test run: no PCI, unique prefix, main + one worker.
pub fn eal(prefix: &str, lcores: &str) -> Vec<String> {
    [
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        prefix,
        "--lcores",
        lcores,
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs sluice with EAL args, `--`, and its own args, to completion.
pub fn sluice(eal: &[String], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(eal)
        .arg("--")
        .args(args)
        .output()
        .expect("run sluice")
}

/// Everything to two destinations (noc: VXLAN to 192.0.2.10; ids: ERSPAN
/// III to 192.0.2.20, sliced to 128 bytes); no dedup, so every frame goes
/// out twice: the original to ids, a copy to noc.
pub const MATCH_ALL: &str = r#"
version = "hostile-1"

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
slice = 128
dedup = false

[[rule]]
name = "all"
to = ["noc", "ids"]
"#;

/// The value of counter `name` in the total block of the exit report.
pub fn total(report: &str, name: &str) -> u64 {
    let block = report
        .split("Accumulated forward statistics")
        .nth(1)
        .unwrap_or_else(|| panic!("no totals in report:\n{report}"));
    block
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().and_then(|v| v.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no counter {name} in report:\n{report}"))
}

/// Asserts the report's accounting line says the difference is 0.
pub fn assert_accounting(report: &str) {
    let line = report
        .lines()
        .find(|l| l.contains("accounting: rx"))
        .unwrap_or_else(|| panic!("no accounting line:\n{report}"));
    assert!(line.ends_with("(difference 0)"), "{line}");
}

/// tshark's fields for every frame of `pcap`, tab-separated, one Vec per frame.
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is missing: run `make setup`");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Frames tshark calls malformed (or with an error-level expert note).
pub fn tshark_count(pcap: &Path, filter: &str) -> usize {
    tshark_fields(pcap, filter, &["frame.number"]).len()
}

/// A running sluice whose stderr is read line by line, so a test can wait
/// for what it says (with a deadline) instead of sleeping.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(eal: &[String], args: &[&str]) -> Running {
        Running::start_in(None, eal, args)
    }

    /// Starts sluice, inside network namespace `netns` when given.
    pub fn start_in(netns: Option<&str>, eal: &[String], args: &[&str]) -> Running {
        match netns {
            Some(ns) => Running::start_under(&["ip", "netns", "exec", ns], eal, args),
            None => Running::start_under(&[], eal, args),
        }
    }

    /// Starts sluice as the last argument of `wrapper` (a command that
    /// execs it, such as `ip netns exec ns`, so that the PID is sluice's).
    pub fn start_under(wrapper: &[&str], eal: &[String], args: &[&str]) -> Running {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(env!("CARGO_BIN_EXE_sluice"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
        };
        let mut child = cmd
            .args(eal)
            .arg("--")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a stderr line contains `text`; panics (after killing
    /// sluice) if it does not come within `secs` or sluice exits first.
    pub fn wait_for(&mut self, text: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "sluice never said {text:?}; it said:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit and returns (exit code, stdout report).
    pub fn finish(mut self) -> (Option<i32>, String) {
        let mut report = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut report);
        }
        let status = self.child.wait().expect("wait");
        (status.code(), report)
    }
}

/// The counters of destination `name` in the report's table, by column.
pub fn dest_row(report: &str, name: &str) -> Vec<(String, u64)> {
    let table = report
        .split("---------------------- Destinations")
        .nth(1)
        .unwrap_or_else(|| panic!("no destinations:\n{report}"));
    let mut lines = table.lines().skip(1);
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no destination {name}:\n{report}"));
    let values = row
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().expect("count"));
    header.into_iter().zip(values).collect()
}

/// Column `column` (`tx_packets`, `dropped_tx_full`, ...) of destination
/// `name` in the report's destination table.
pub fn dest_counter(report: &str, name: &str, column: &str) -> u64 {
    dest_row(report, name)
        .into_iter()
        .find_map(|(k, v)| (k == column).then_some(v))
        .unwrap_or_else(|| panic!("no column {column} for {name}:\n{report}"))
}

/// tx_packets of destination `name` in the report's destination table.
pub fn dest_tx(report: &str, name: &str) -> u64 {
    let table = report
        .split("Destinations")
        .nth(1)
        .unwrap_or_else(|| panic!("no destinations:\n{report}"));
    table
        .lines()
        .find_map(|l| {
            // A destination of an earlier policy is listed as "name (removed)".
            let rest = l.trim_start().strip_prefix(name)?;
            let rest = rest.trim_start().strip_prefix("(removed)").unwrap_or(rest);
            rest.split_whitespace().next().and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no destination {name}:\n{report}"))
}

/// tcpdump on `iface` inside namespace `netns`, writing `count` frames to
/// `out` and then exiting; returns once it listens. Immediate mode and a
/// large buffer, so a fast burst is not dropped by the capture socket.
pub fn capture_in(
    netns: &str,
    iface: &str,
    extra: &[&str],
    out: &Path,
    count: usize,
) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "tcpdump",
            "-i",
            iface,
            "--immediate-mode",
            "-B",
            "32768",
            "-n",
            "-U",
            "-s",
            "0",
        ])
        .args(extra)
        .arg("-w")
        .arg(out)
        .args(["-c", &count.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump (run `make setup`)");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("listening on")),
        "tcpdump did not start on {iface}"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Waits (at most 30 s) for a capture started with `capture_in` to end.
pub fn wait_capture(child: &mut std::process::Child, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("tcpdump").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Asks the console at `sock` until destination `dest` has sent a packet
/// (bounded by count; the console answers at once, so no sleep is needed).
pub fn wait_sent(sock: &Path, dest: &str) {
    let mut c = ctrlplane::cli::socket::Client::connect(sock).expect("console");
    for _ in 0..100_000 {
        let t = c.command(&format!("show tunnel {dest}")).expect("answer");
        let sent = t
            .split("tx_packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if sent > 0 {
            return;
        }
    }
    panic!("destination {dest} never sent a packet");
}

impl Drop for Running {
    /// A test that fails half-way must not leave its sluice running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `ip <args>`; panics with its message when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (package iproute2: run `make setup`)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of the test, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A new namespace named after `tag`, loopback up and IPv6 off (no
    /// router or neighbour solicitations in a capture).
    pub fn quiet(tag: &str) -> Netns {
        let ns = Netns(unique(tag));
        ip(&["netns", "add", &ns.0]);
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])
            .status()
            .expect("sysctl")
            .success();
        assert!(ok, "cannot disable IPv6 in {}", ns.0);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Asks the console `cmd` until `done` holds for its answer (bounded by
/// `secs`); returns that answer.
pub fn wait_console(
    c: &mut ctrlplane::cli::socket::Client,
    cmd: &str,
    secs: u64,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let out = c.command(cmd).expect("console answers");
        if done(&out) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{cmd} never showed what the test waits for; last answer:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sluice's own arguments: config `cfg` and policy `p.toml` in `dir`,
/// control socket `sock` there, metrics on a port of its choosing.
pub fn sluice_args(dir: &Path, cfg: &str, sock: &str) -> Vec<String> {
    let p = |x: &str| dir.join(x).display().to_string();
    [
        "--config",
        &p(cfg),
        "--policy",
        &p("p.toml"),
        "--socket",
        &p(sock),
        "--metrics",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` as the `&str`s `Running::start` and `sluice` take.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
