//! Helpers for pktgen's tests: temp dirs, running the binary, reading
//! frames back with etherparse, asking tshark.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use pktgen::stamp::Stamp;

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn unique(name: &str) -> String {
    format!(
        "pktgen-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Runs the pktgen binary with `args` (EAL options, if any, before `--`).
pub fn pktgen(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(args)
        .output()
        .expect("run pktgen");
    assert!(
        out.status.success(),
        "pktgen {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// EAL options for one DPDK run of the binary: no PCI, in memory, unique prefix.
pub fn eal(name: &str) -> Vec<String> {
    [
        "-l",
        "0",
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        &unique(name),
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What a test wants to know about one frame, read with etherparse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub len: usize,
    pub src_mac: [u8; 6],
    /// VLAN IDs, outer first.
    pub vlans: Vec<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub stamp: Option<Stamp>,
    /// The L4 payload.
    pub payload: Vec<u8>,
}

impl Seen {
    pub fn tuple(&self) -> (IpAddr, IpAddr, u8, u16, u16) {
        (self.src, self.dst, self.proto, self.src_port, self.dst_port)
    }
}

/// Parses a plain (untunnelled) frame.
pub fn seen(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads the frame");
    let src_mac = match &p.link {
        Some(LinkSlice::Ethernet2(e)) => e.source(),
        other => panic!("not Ethernet: {other:?}"),
    };
    let vlans = match &p.vlan {
        None => vec![],
        Some(etherparse::VlanSlice::SingleVlan(v)) => vec![v.vlan_identifier().value()],
        Some(etherparse::VlanSlice::DoubleVlan(v)) => vec![
            v.outer().vlan_identifier().value(),
            v.inner().vlan_identifier().value(),
        ],
    };
    let (src, dst, ttl, proto) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                h.protocol().0,
            )
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                h.next_header().0,
            )
        }
        other => panic!("not IP: {other:?}"),
    };
    let (src_port, dst_port, payload) = match &p.transport {
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port(), u.payload()),
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port(), t.payload()),
        Some(TransportSlice::Icmpv4(i)) => {
            let id = u16::from_be_bytes([i.bytes5to8()[0], i.bytes5to8()[1]]);
            (id, 0, i.payload())
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let id = u16::from_be_bytes([i.bytes5to8()[0], i.bytes5to8()[1]]);
            (id, 0, i.payload())
        }
        other => panic!("no transport: {other:?}"),
    };
    Seen {
        len: frame.len(),
        src_mac,
        vlans,
        src,
        dst,
        proto,
        src_port,
        dst_port,
        ttl,
        stamp: Stamp::read(payload),
        payload: payload.to_vec(),
    }
}

/// tshark's fields for every frame of `pcap` (one Vec per frame).
pub fn tshark(pcap: &Path, opts: &[&str], filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(opts).args([
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
    ]);
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

/// Counts of each value.
pub fn histogram<T: Ord>(it: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for x in it {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}
