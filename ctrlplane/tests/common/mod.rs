//! Helpers for end-to-end tests that run the `sluice` binary on virtual
//! devices: temp dirs, pcap files, tshark, and the exit report.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

static SEQ: AtomicU32 = AtomicU32::new(0);

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
