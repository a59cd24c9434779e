//! What only Sluice's end-to-end tests need: running the `sluice` binary,
//! reading its exit report, asking its console. Shared helpers (names,
//! pcap files, tshark, EAL arguments, process guards, namespaces) are
//! `sluice_testkit`'s, re-exported here.

// Each test binary uses a different subset of these.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

pub use sluice_testkit::eal::{eal, strs};
pub use sluice_testkit::names::{seq, tmpdir, unique};
pub use sluice_testkit::netns::{capture_in, ip, wait_capture, Netns};
pub use sluice_testkit::pcap::{read_pcap, write_pcap};
pub use sluice_testkit::process::Running;
pub use sluice_testkit::tshark::{tshark_count, tshark_fields};

mod pktgen;
pub use pktgen::{pktgen_bin, Pktgen};

/// The binary under test.
pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// [`Running`] for the `sluice` binary.
pub trait StartSluice {
    /// Starts sluice with EAL args, `--`, and its own args.
    fn start(eal: &[String], args: &[&str]) -> Running;
    /// Starts sluice, inside network namespace `netns` when given.
    fn start_in(netns: Option<&str>, eal: &[String], args: &[&str]) -> Running;
    /// Starts sluice as the last argument of `wrapper` (a command that
    /// execs it, such as `ip netns exec ns`, so that the PID is sluice's).
    fn start_under(wrapper: &[&str], eal: &[String], args: &[&str]) -> Running;
}

impl StartSluice for Running {
    fn start(eal: &[String], args: &[&str]) -> Running {
        Running::spawn(SLUICE, &[], eal, args)
    }

    fn start_in(netns: Option<&str>, eal: &[String], args: &[&str]) -> Running {
        match netns {
            Some(ns) => Running::spawn(SLUICE, &["ip", "netns", "exec", ns], eal, args),
            None => Running::spawn(SLUICE, &[], eal, args),
        }
    }

    fn start_under(wrapper: &[&str], eal: &[String], args: &[&str]) -> Running {
        Running::spawn(SLUICE, wrapper, eal, args)
    }
}

/// Runs sluice with EAL args, `--`, and its own args, to completion.
pub fn sluice(eal: &[String], args: &[&str]) -> Output {
    Command::new(SLUICE)
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

/// What stage `stage` (`strip`, `mask`) counted for destination `name`,
/// from the line under the report's destination table (only counts that
/// are not zero are on it; no line when all are).
pub fn dest_edits(report: &str, name: &str, stage: &str) -> BTreeMap<String, u64> {
    let head = format!("{stage}:");
    let Some(line) = report.lines().find(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some(name) && w.next() == Some(head.as_str())
    }) else {
        return BTreeMap::new();
    };
    let words: Vec<&str> = line.split_whitespace().skip(2).collect();
    words
        .chunks(2)
        .map(|kv| {
            let n = kv.get(1).and_then(|v| v.parse().ok());
            let n = n.unwrap_or_else(|| panic!("a count after {:?} in {line:?}", kv[0]));
            (kv[0].to_owned(), n)
        })
        .collect()
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
