//! Shared by the encap/decap/tshark integration tests: pcap files in and
//! out, tshark as the independent judge, the reference captures, and a few
//! frame builders. Each test binary uses a different subset.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use serde_json::Value;

use dataplane::stage::encap::{EncapConfig, OuterConfig, OversizePolicy, TunnelConfig};
use dataplane::wire::ethernet::Address;

/// The tshark binary. A missing tshark fails the test: skipping would let a
/// broken encoder pass unjudged.
pub fn tshark() -> &'static str {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tshark is not installed or does not run: it judges every emitted format; run `make setup`"
    );
    "tshark"
}

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

/// The link type and frames of a pcap file.
pub fn read_pcap(path: &Path) -> (DataLink, Vec<Vec<u8>>) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = PcapReader::new(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The link type is the low 16 bits; the high bits of the field carry
    // FCS information (pcap-savefile(5)), which one fuzzed capture sets.
    let link = DataLink::from(u32::from(r.header().datalink) & 0xffff);
    let mut out = Vec::new();
    // Raw packets: the fuzzed captures carry headers (orig_len < snaplen
    // and the like) that the validating reader refuses but tshark reads.
    while let Some(p) = r.next_raw_packet() {
        out.push(
            p.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .data
                .into_owned(),
        );
    }
    (link, out)
}

/// Writes Ethernet frames to a pcap file, 1 µs apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = BufWriter::new(File::create(path).expect("create pcap"));
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(f, header).expect("pcap header");
    for (i, fr) in frames.iter().enumerate() {
        let p = PcapPacket::new(Duration::from_micros(i as u64), fr.len() as u32, fr);
        w.write_packet(&p).expect("write packet");
    }
}

/// tshark's dissection of every packet of `path` as JSON `layers` objects,
/// duplicate keys merged into arrays (`--no-duplicate-keys`) so nested
/// layers are all there, with raw bytes and offsets (`-x`).
pub fn tshark_json(path: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(tshark())
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "json", "-x", "--no-duplicate-keys"])
        .args(extra)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    v.as_array()
        .expect("tshark JSON is an array")
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// The values of field `name` anywhere in a layers object (nested layers
/// and subtrees included), in document order.
pub fn field_values(v: &Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(v, name, &mut out);
    out
}

fn collect(v: &Value, name: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == name {
                    push_leaves(x, out);
                } else {
                    collect(x, name, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, name, out)),
        _ => {}
    }
}

fn push_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| push_leaves(x, out)),
        Value::Object(_) => {}
        other => out.push(other.to_string()),
    }
}

/// The one value of a field; panics naming the field if it is not there
/// exactly once.
pub fn field(v: &Value, name: &str) -> String {
    let all = field_values(v, name);
    assert_eq!(all.len(), 1, "field {name}: {all:?}");
    all[0].clone()
}

/// `(offset, length)` of each occurrence of protocol `proto` from its
/// `<proto>_raw` entry.
pub fn raw_positions(layers: &Value, proto: &str) -> Vec<(usize, usize)> {
    let key = format!("{proto}_raw");
    let mut out = Vec::new();
    let one = |x: &Value| -> Option<(usize, usize)> {
        let a = x.as_array()?;
        Some((a.get(1)?.as_u64()? as usize, a.get(2)?.as_u64()? as usize))
    };
    if let Some(v) = layers.get(&key) {
        match v.as_array() {
            Some(a) if a.first().is_some_and(Value::is_array) => {
                out.extend(a.iter().filter_map(one));
            }
            _ => out.extend(one(v)),
        }
    }
    out
}

/// tshark's notes that the capture cut the packet short (snaplen).
pub fn tshark_short(layers: &Value) -> Vec<String> {
    field_values(layers, "_ws.short")
}

/// The top-level occurrences of a protocol layer, outermost first (with
/// `--no-duplicate-keys` a repeated layer is an array).
pub fn occurrences<'a>(layers: &'a Value, proto: &str) -> Vec<&'a Value> {
    match layers.get(proto) {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

/// `frame.protocols` split on ':'.
pub fn protocols(layers: &Value) -> Vec<String> {
    field(layers, "frame.protocols")
        .split(':')
        .map(str::to_string)
        .collect()
}

/// Expert messages tshark attached to a packet at severity error, and
/// whether it marked the packet malformed.
pub fn tshark_errors(layers: &Value) -> Vec<String> {
    let mut out = field_values(layers, "_ws.malformed");
    let sev = field_values(layers, "_ws.expert.severity");
    let msg = field_values(layers, "_ws.expert.message");
    for (i, s) in sev.iter().enumerate() {
        // Severity codes: 0x00800000 is error (0x00600000 warning).
        if s == "8388608" {
            out.push(msg.get(i).cloned().unwrap_or_default());
        }
    }
    out
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
