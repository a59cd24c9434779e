//! The parse stage on every real capture in shared/captures/tcpdump: no
//! panic on any Ethernet frame (malformed ones included), and facts that
//! `tshark -r FILE -V` shows, checked frame by frame.
//!
//! The directory is `$SLUICE_CAPTURES` if set, else
//! `../../shared/captures/tcpdump` from this crate (the repo and shared/
//! sit side by side). A missing directory fails the test: silently passing
//! without captures would hide that nothing ran.

use dataplane::stage::parse::{parse, Fragment, Layers, ParseError};
use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

fn captures_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SLUICE_CAPTURES") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/tcpdump")
}

struct Capture {
    link: DataLink,
    frames: Vec<Vec<u8>>,
}

/// Every `.pcap` in the directory, by file name.
fn load_all() -> BTreeMap<String, Capture> {
    let dir = captures_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("captures directory {}: {e}", dir.display()));
    let mut out = BTreeMap::new();
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("pcap") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut r =
            PcapReader::new(File::open(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let link = r.header().datalink;
        let mut frames = Vec::new();
        // Raw records: several of these captures are fuzzer finds whose
        // record headers (orig_len > snaplen) the validating reader refuses,
        // and those frames are exactly the ones parse must survive.
        while let Some(p) = r.next_raw_packet() {
            frames.push(
                p.unwrap_or_else(|e| panic!("{name}: {e}"))
                    .data
                    .into_owned(),
            );
        }
        out.insert(name, Capture { link, frames });
    }
    assert!(
        out.len() >= 50,
        "expected the tcpdump captures in {}, found {} files",
        dir.display(),
        out.len()
    );
    out
}

/// The Ethernet captures parsed frame by frame, the others listed apart.
struct Parsed {
    ethernet: BTreeMap<String, (Vec<Vec<u8>>, Vec<Layers>)>,
    skipped: Vec<(String, DataLink)>,
}

fn parse_all() -> Parsed {
    let mut ethernet = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, c) in load_all() {
        // parse() reads Ethernet frames; raw IP, PPP, SLIP or loopback
        // captures would be misread as MAC addresses, so they are skipped
        // here on purpose (the appliance refuses such ports).
        if c.link != DataLink::ETHERNET {
            skipped.push((name, c.link));
            continue;
        }
        let layers = c.frames.iter().map(|f| parse(f)).collect();
        ethernet.insert(name, (c.frames, layers));
    }
    Parsed { ethernet, skipped }
}

fn get<'a>(p: &'a Parsed, name: &str) -> &'a (Vec<Vec<u8>>, Vec<Layers>) {
    p.ethernet
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not among the Ethernet captures"))
}

#[test]
fn every_ethernet_frame_parses_within_bounds_and_cut_short() {
    let p = parse_all();
    let mut frames = 0;
    for (name, (raw, layers)) in &p.ethernet {
        for (i, (f, l)) in raw.iter().zip(layers).enumerate() {
            frames += 1;
            let at = format!("{name} frame {}", i + 1);
            let len = f.len();
            assert!(usize::from(l.l3_offset) <= len, "{at}");
            assert!(usize::from(l.l4_offset) <= len, "{at}");
            assert!(usize::from(l.payload_offset) <= len, "{at}");
            if l.l4_offset != 0 {
                assert!(l.l4_offset > l.l3_offset && l.l3_offset > 0, "{at}");
                assert!(l.payload_offset >= l.l4_offset, "{at}");
            }
            if l.ip_version != 0 {
                assert!(l.l3_offset >= 14, "{at}");
            }
            // Cut short anywhere in its headers, a frame still parses, and
            // nothing found lies beyond the cut.
            for n in 0..len.min(160) {
                let c = parse(&f[..n]);
                assert!(usize::from(c.payload_offset) <= n, "{at} cut at {n}");
                assert!(usize::from(c.l4_offset) <= n, "{at} cut at {n}");
                if n < 14 {
                    assert_eq!(c.error, Some(ParseError::TruncatedL2), "{at}");
                }
            }
        }
    }
    assert!(frames > 500, "only {frames} Ethernet frames");
}

#[test]
fn non_ethernet_link_types_are_skipped() {
    let p = parse_all();
    let skipped: BTreeMap<_, _> = p.skipped.iter().cloned().collect();
    // What capinfos reports for these files.
    for (name, link) in [
        ("LINKTYPE_RAW_ipv6.pcap", DataLink::RAW),
        ("LINKTYPE_IPV6.pcap", DataLink::IPV6),
        ("icmpv6_nodeinfo_queryipv6.pcap", DataLink::IPV6),
        ("mpls-ldp-hello.pcap", DataLink::PPP),
        ("ospf-gmpls.pcap", DataLink::NULL),
        ("erspan-type-iii-pb-1.pcap", DataLink::RAW),
    ] {
        assert_eq!(skipped.get(name), Some(&link), "{name}");
        assert!(!p.ethernet.contains_key(name));
    }
    assert!(p.ethernet.contains_key("802.1ad_QinQ.pcap"));
}

#[test]
fn qinq_vlan_ids_match_tshark() {
    // tshark: "IEEE 802.1ad, ID: 200" then "802.1Q Virtual LAN, ID: 2001",
    // then ARP; 64-byte frames with padding.
    let p = parse_all();
    let (_, layers) = get(&p, "802.1ad_QinQ.pcap");
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert_eq!(l.error, None);
        assert_eq!(
            (l.vlan_count, l.outer_vlan, l.inner_vlan),
            (2, Some(200), Some(2001))
        );
        assert_eq!(
            (l.ethertype, l.payload_offset, l.ip_version),
            (0x0806, 22, 0)
        );
    }
}

/// Frame `n` (1-based, as tshark numbers them) of a capture.
fn frame<'a>(p: &'a Parsed, name: &str, n: usize) -> &'a Layers {
    &get(p, name).1[n - 1]
}

#[test]
fn vlan_over_gre_capture_matches_tshark() {
    // tshark: 51 frames "802.1Q Virtual LAN, ID: 1213", 30 of them IP/GRE;
    // the other 49 are untagged LLC (STP, CDP, DTP).
    let p = parse_all();
    let (_, layers) = get(&p, "various_gre.pcap");
    assert_eq!(layers.len(), 100);
    let tagged: Vec<_> = layers.iter().filter(|l| l.vlan_count > 0).collect();
    assert_eq!(tagged.len(), 51);
    assert!(tagged
        .iter()
        .all(|l| l.outer_vlan == Some(1213) && l.vlan_count == 1));
    let gre = layers.iter().filter(|l| l.l4_proto == 47).count();
    assert_eq!(gre, 30);
    assert!(layers.iter().all(|l| l.error.is_none()));
}

#[test]
fn ipv6_extension_header_captures_match_tshark() {
    let p = parse_all();
    // ipv6-routing-header.pcap: "ipv6:ipv6.routing:icmpv6" for frames 1-2
    // (86 and 102 bytes: routing headers of 24 and 40), "…:udp" 5645 → 5642
    // for frames 3-4.
    for (n, l4) in [(1, 78), (2, 94)] {
        let l = frame(&p, "ipv6-routing-header.pcap", n);
        assert_eq!(
            (l.l4_proto, l.l4_offset, l.error),
            (58, l4, None),
            "frame {n}"
        );
    }
    for n in [3, 4] {
        let l = frame(&p, "ipv6-routing-header.pcap", n);
        assert_eq!((l.l4_proto, l.src_port, l.dst_port), (17, 5645, 5642));
    }
    // Segment routing header, then UDP 57745 → 5001.
    let l = frame(&p, "ipv6-srh-insert-cksum.pcap", 1);
    assert_eq!((l.l4_proto, l.src_port, l.dst_port), (17, 57745, 5001));
    // SRH then IPv6 (41), SRH then Ethernet (143): tshark shows the inner
    // packet right after ipv6.routing.
    assert_eq!(frame(&p, "ipv6-srh-ext-header.pcap", 1).l4_proto, 41);
    assert_eq!(frame(&p, "ipv6-srh-ipproto-ether.pcap", 1).l4_proto, 143);
    // Hop-by-hop jumbo option, payload length 0: "ipv6.hopopts:icmpv6".
    let l = frame(&p, "ipv6_jumbogram_1.pcap", 1);
    assert_eq!((l.l4_proto, l.l4_offset, l.error), (58, 62, None));
    // BIG TCP, 80094 bytes: "ipv6.hopopts:tcp", 41851 → …, flags 0x018.
    let l = frame(&p, "bigtcp-ipv6-hbh.pcap", 1);
    assert_eq!((l.l4_proto, l.src_port, l.tcp_flags), (6, 41851, 0x18));
    assert_eq!(l.error, None);
    // "Next Header: No Next Header for IPv6 (59)": nothing after.
    let l = frame(&p, "ipv6_no_next_header.pcap", 1);
    assert_eq!((l.l4_proto, l.l4_offset, l.payload_offset), (59, 54, 54));
    // A fragment header with offset 0x500 and next header IGMP (2).
    let l = frame(&p, "ipv6_frag6_negative_len.pcap", 1);
    assert_eq!(
        (l.fragment, l.l4_proto, l.l4_offset),
        (Fragment::Later, 2, 0)
    );
}

#[test]
fn tunnel_outer_headers_match_tshark() {
    let p = parse_all();
    // vxlan_port_8472.pcap: "User Datagram Protocol, … Dst Port: 8472".
    for l in &get(&p, "vxlan_port_8472.pcap").1 {
        assert_eq!((l.ip_version, l.l4_proto, l.dst_port), (4, 17, 8472));
    }
    let l = frame(&p, "vxlan_port_8472.pcap", 1);
    assert_eq!(l.src_port, 45149);
    assert_eq!(l.src_ip(), Some("192.168.203.1".parse().unwrap()));
    for l in &get(&p, "erspan-type-iii-ft-0.pcap").1 {
        assert_eq!((l.l4_proto, l.l4_offset, l.payload_offset), (47, 34, 34));
    }
    // IPv4 total length 0 (BIG TCP): tshark presumes TSO and shows UDP
    // 47044 → 4789; parse takes the packet to the end of the frame too.
    let l = frame(&p, "bigtcp-ipv4-vxlan-ipv4.pcap", 1);
    assert_eq!((l.error, l.src_port, l.dst_port), (None, 47044, 4789));
    assert_eq!(l.dst_ip(), Some("10.25.132.13".parse().unwrap()));
}

#[test]
fn malformed_captures_are_flagged_like_tshark() {
    let p = parse_all();
    // "Bogus IPv6 version" on frames 2 and 4 only.
    for n in 1..=4 {
        let l = frame(&p, "ipv6-bad-version.pcap", n);
        let want = if n % 2 == 0 {
            Some(ParseError::BadL3)
        } else {
            None
        };
        assert_eq!(l.error, want, "frame {n}");
    }
    // Payload Length 27136 in a 60-byte capture.
    assert_eq!(
        frame(&p, "ip6_frag_asan.pcap", 1).error,
        Some(ParseError::BadL3)
    );
    // "IPv6 header must be exactly 40 bytes": only 39 were captured.
    let l = frame(&p, "ipv6_invalid_length.pcap", 1);
    assert_eq!(
        (l.error, l.l3_offset, l.l4_offset),
        (Some(ParseError::BadL3), 14, 0)
    );
    // IPv4 "Total Length: 32808" in 107 captured bytes.
    let l = frame(&p, "ikev1_id_ipv6_addr_subnet-oobr.pcap", 1);
    assert_eq!((l.error, l.ip_version), (Some(ParseError::BadL3), 4));
}
