//! What only the dataplane's encap/decap/tshark integration tests need:
//! the reference captures and a few frame builders. Shared helpers (pcap
//! files, tshark as the independent judge) are `sluice_testkit`'s,
//! re-exported here.

// Each test binary uses a different subset of these.
#![allow(dead_code, unused_imports)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub use sluice_testkit::pcap::{read_pcap_link, write_pcap, DataLink};
pub use sluice_testkit::tshark::*;

use dataplane::stage::encap::{EncapConfig, OuterConfig, OversizePolicy, TunnelConfig};
use dataplane::wire::ethernet::Address;

/// `$SLUICE_CAPTURES`, else `../../shared/captures/tcpdump` from this crate.
pub fn captures_dir() -> PathBuf {
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

/// Every capture file in the reference directory, sorted.
pub fn all_captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .expect("read captures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    v
}

/// A fresh directory for this test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A small deterministic generator for test data (no external crate).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// An Ethernet/IPv4/UDP or Ethernet/IPv6/UDP inner frame of `len` bytes
/// (at least 62) with valid headers and checksums, ports 40000 → 40001
/// (nothing tshark would dissect further) and random payload.
pub fn inner_frame(v6: bool, len: usize, seed: u64) -> Vec<u8> {
    use dataplane::wire::udp;
    let mut rng = Rng(seed);
    let mut f = rng.bytes(len.max(62));
    f[0..6].copy_from_slice(&[0x00, 0x1b, 0x21, 0x01, 0x02, 0x03]);
    f[6..12].copy_from_slice(&[0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c]);
    let (l4, src, dst) = if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let plen = (f.len() - 54) as u16;
        f[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f[20] = 17;
        f[21] = 64;
        f[22..38].copy_from_slice(&INNER_SRC6.octets());
        f[38..54].copy_from_slice(&INNER_DST6.octets());
        (54, IpAddr::V6(INNER_SRC6), IpAddr::V6(INNER_DST6))
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let tot = (f.len() - 14) as u16;
        f[14..26].copy_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f[26..30].copy_from_slice(&INNER_SRC4.octets());
        f[30..34].copy_from_slice(&INNER_DST4.octets());
        let c = dataplane::wire::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        (34, IpAddr::V4(INNER_SRC4), IpAddr::V4(INNER_DST4))
    };
    let ulen = (f.len() - l4) as u16;
    let mut u = udp::Packet::new_unchecked(&mut f[l4..]);
    u.set_src_port(40000);
    u.set_dst_port(40001);
    u.set_len(ulen);
    u.fill_checksum(&src, &dst);
    f
}

pub const INNER_SRC4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
pub const INNER_DST4: Ipv4Addr = Ipv4Addr::new(10, 9, 8, 7);
pub const INNER_SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 3);
pub const INNER_DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 7);
pub const OUTER_SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const OUTER_DST4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
pub const OUTER_SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);
pub const OUTER_DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 20);

/// A destination config with documentation addresses.
pub fn encap_config(tunnel: TunnelConfig, outer_v6: bool, mtu: u16) -> EncapConfig {
    let (src_ip, dst_ip) = if outer_v6 {
        (IpAddr::V6(OUTER_SRC6), IpAddr::V6(OUTER_DST6))
    } else {
        (IpAddr::V4(OUTER_SRC4), IpAddr::V4(OUTER_DST4))
    };
    EncapConfig {
        tunnel,
        outer: OuterConfig {
            src_mac: Address([0x02, 0x53, 0x4c, 0x00, 0x00, 0x01]),
            dst_mac: Address([0x02, 0x53, 0x4c, 0x00, 0x00, 0x02]),
            vlan: None,
            src_ip,
            dst_ip,
            dscp: 10,
            ttl: 63,
        },
        mtu,
        oversize: OversizePolicy::TruncateToMtu,
    }
}
