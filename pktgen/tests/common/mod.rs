//! What only pktgen's tests need: running the binary and reading frames
//! back with etherparse. Shared helpers (names, EAL arguments, tshark) are
//! `sluice_testkit`'s, re-exported here.

// Each test binary uses a different subset of these.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Output};

pub use sluice_testkit::names::{tmpdir, unique};
pub use sluice_testkit::tshark::tshark_fields_with;

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use pktgen::stamp::Stamp;

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

/// EAL options for one DPDK run of the binary on the main lcore alone.
pub fn eal(name: &str) -> Vec<String> {
    sluice_testkit::eal::eal(&unique(name), "0")
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

/// Counts of each value.
pub fn histogram<T: Ord>(it: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for x in it {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}
