//! A generated capture has exactly the configured flows, sizes and
//! duplicate ratio: read back with etherparse and judged by tshark.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use common::*;
use pktgen::pcap;

/// 3 flows: IPv4 TCP with a VLAN over 2 × 2 addresses × 3 ports (12
/// tuples), IPv6 UDP in QinQ over 2 ports (2 tuples), ICMP echo (1 tuple).
/// 1,200 originals; sizes 7:4:1; a quarter of them copied 5 µs later
/// (5 packets at 1 Mpps) with TTL − 1, VLAN 101 and another source MAC.
const PROFILE: &str = r#"
packets = 1200
rate_pps = 1000000
size = [[128, 7], [594, 4], [1518, 1]]

[[flow]]
name = "web"
src = "10.1.0.1-10.1.0.2"
dst = "10.2.0.0/31"
proto = "tcp"
src_port = "1024-1026"
dst_port = 40080
vlan = 100

[[flow]]
name = "v6"
src = "2001:db8::1"
dst = "2001:db8::2"
proto = "udp"
src_port = "5000-5001"
dst_port = 40053
vlan = [10, 20]
weight = 2

[[flow]]
name = "ping"
src = "10.9.0.1"
dst = "10.9.0.2"
proto = "icmp"
src_port = 7

[duplicates]
ratio = 0.25
delay_us = 5
ttl_delta = -1
vlan = 101
src_mac = "02:00:00:00:00:99"
"#;

fn expected_tuples() -> BTreeSet<(IpAddr, IpAddr, u8, u16, u16)> {
    let mut want = BTreeSet::new();
    for s in ["10.1.0.1", "10.1.0.2"] {
        for d in ["10.2.0.0", "10.2.0.1"] {
            for sp in 1024..=1026 {
                want.insert((s.parse().unwrap(), d.parse().unwrap(), 6, sp, 40080));
            }
        }
    }
    for sp in [5000, 5001] {
        want.insert((
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            17,
            sp,
            40053,
        ));
    }
    want.insert((
        "10.9.0.1".parse().unwrap(),
        "10.9.0.2".parse().unwrap(),
        1,
        7,
        0,
    ));
    want
}

#[test]
fn capture_has_the_configured_flows_sizes_and_duplicates() {
    let dir = tmpdir("capture");
    std::fs::write(dir.join("p.toml"), PROFILE).unwrap();
    let out = dir.join("p.pcap");
    pktgen(&[
        "pcap",
        "--profile",
        dir.join("p.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let frames = pcap::read(&out).unwrap();
    let seen: Vec<Seen> = frames.iter().map(|f| seen(f)).collect();
    assert_eq!(
        seen.len(),
        1200 + 300,
        "originals plus floor(1200 × 0.25) copies"
    );

    // A copy carries its original's stamp: the second sighting of a
    // (flow, sequence) is the copy.
    let mut first = std::collections::HashSet::new();
    let (originals, copies): (Vec<&Seen>, Vec<&Seen>) = seen
        .iter()
        .partition(|s| first.insert(s.stamp.expect("every frame is stamped")));
    assert_eq!(originals.len(), 1200);
    assert_eq!(copies.len(), 300);
    // The checker counts the copies as duplicates, nothing lost or reordered.
    let o = pktgen(&["check", "--pcap", out.to_str().unwrap(), "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            &r["in_order"],
            &r["duplicates"],
            &r["lost"],
            &r["reordered"]
        ),
        (
            &serde_json::json!(1200),
            &serde_json::json!(300),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{r}"
    );

    // Flows: exactly the configured 5-tuples, shared 1:2:1 by weight.
    let tuples: BTreeSet<_> = originals.iter().map(|s| s.tuple()).collect();
    assert_eq!(tuples, expected_tuples());
    let per_proto = histogram(originals.iter().map(|s| s.proto));
    assert_eq!(per_proto.get(&6), Some(&300));
    assert_eq!(per_proto.get(&17), Some(&600));
    assert_eq!(per_proto.get(&1), Some(&300));
    // Within a flow spec, tuples share evenly: 300 / 12, 600 / 2.
    let per_tuple = histogram(originals.iter().map(|s| s.tuple()));
    for (t, n) in &per_tuple {
        let want = match t.2 {
            6 => 25,
            17 => 300,
            _ => 300,
        };
        assert_eq!(*n, want, "{t:?}");
    }

    // Sizes: frame + FCS, exactly 7:4:1.
    let sizes = histogram(originals.iter().map(|s| s.len + 4));
    assert_eq!(sizes, [(128, 700), (594, 400), (1518, 100)].into());

    // VLANs as configured on originals.
    for s in &originals {
        let want: Vec<u16> = match s.proto {
            6 => vec![100],
            17 => vec![10, 20],
            _ => vec![],
        };
        assert_eq!(s.vlans, want);
        assert_eq!(s.ttl, 64);
    }

    // Each copy: its original's flow, sequence and payload, 5 µs later;
    // TTL − 1, outer VLAN 101 (a tag added to untagged ICMP), the new
    // source MAC.
    let ts = {
        let f = std::fs::File::open(&out).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
        let mut v = Vec::new();
        while let Some(p) = r.next_packet() {
            v.push(p.unwrap().timestamp);
        }
        v
    };
    let mut where_orig: HashMap<(u32, u32), usize> = HashMap::new();
    for (i, s) in seen.iter().enumerate() {
        let st = s.stamp.unwrap();
        let Some(&o) = where_orig.get(&(st.flow, st.seq)) else {
            where_orig.insert((st.flow, st.seq), i);
            continue;
        };
        let orig = &seen[o];
        assert_eq!(s.tuple(), orig.tuple());
        // Byte for byte the same payload: what a deduplicator keys on.
        assert_eq!(s.payload, orig.payload, "copy {i}");
        assert_eq!(s.ttl, 63);
        assert_eq!(s.src_mac, [2, 0, 0, 0, 0, 0x99]);
        assert_eq!(s.vlans[0], 101);
        assert_eq!(s.vlans.len(), orig.vlans.len().max(1));
        assert_eq!(s.len, orig.len + if orig.vlans.is_empty() { 4 } else { 0 });
        assert_eq!((ts[i] - ts[o]).as_nanos(), 5_000, "copy {i}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tshark_agrees_on_flows_sizes_duplicates_and_checksums() {
    let dir = tmpdir("tshark");
    std::fs::write(dir.join("p.toml"), PROFILE).unwrap();
    let out = dir.join("p.pcap");
    pktgen(&[
        "pcap",
        "--profile",
        dir.join("p.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    // Nothing malformed, no bad checksum at any layer.
    let bad = tshark_fields_with(
        &out,
        &checks,
        "_ws.malformed || _ws.expert.severity >= error || ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\" || icmpv6.checksum.status == \"Bad\"",
        &["frame.number"],
    );
    assert!(bad.is_empty(), "tshark finds fault with frames {bad:?}");
    let good = tshark_fields_with(
        &out,
        &checks,
        "udp.checksum.status == \"Good\" || tcp.checksum.status == \"Good\"",
        &["frame.number"],
    );
    let l4 = tshark_fields_with(&out, &[], "tcp || udp", &["frame.number"]);
    assert!(l4.len() >= 900, "{}", l4.len());
    assert_eq!(
        good.len(),
        l4.len(),
        "every TCP and UDP checksum verified good"
    );

    let rows = tshark_fields_with(
        &out,
        &[],
        "",
        &[
            "frame.len",
            "ip.ttl",
            "ipv6.hlim",
            "ip.src",
            "ipv6.src",
            "ip.dst",
            "ipv6.dst",
            "tcp.srcport",
            "udp.srcport",
            "icmp.ident",
        ],
    );
    assert_eq!(rows.len(), 1500);
    let hop = |r: &Vec<String>| {
        if r[1].is_empty() {
            r[2].clone()
        } else {
            r[1].clone()
        }
    };
    // Copies are the frames one hop later (TTL 63): 300 of them; originals TTL 64.
    let copies = rows.iter().filter(|r| hop(r) == "63").count();
    let originals: Vec<&Vec<String>> = rows.iter().filter(|r| hop(r) == "64").collect();
    assert_eq!((originals.len(), copies), (1200, 300));
    let sizes = histogram(originals.iter().map(|r| r[0].parse::<usize>().unwrap() + 4));
    assert_eq!(sizes, [(128, 700), (594, 400), (1518, 100)].into());
    let flows: BTreeSet<String> = originals.iter().map(|r| r[3..].join(",")).collect();
    assert_eq!(flows.len(), expected_tuples().len(), "{flows:?}");
    // tshark reads the copies' tags: 802.1Q 101 on the copied ICMP and
    // TCP frames, 802.1ad 101 outside the IPv6 QinQ ones.
    let tags = tshark_fields_with(
        &out,
        &[],
        "ip.ttl == 63 || ipv6.hlim == 63",
        &["vlan.id", "ieee8021ad.id"],
    );
    for t in &tags {
        assert!(
            t[0].split(',').any(|v| v == "101") || t[1] == "101",
            "{t:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tunnelled_frames_carry_the_flows_inside() {
    let dir = tmpdir("tunnel");
    for (kind, filter, field, want) in [
        ("vxlan", "vxlan", "vxlan.vni", "100"),
        ("geneve", "geneve", "geneve.vni", "0x000064"),
        ("gre", "gre", "gre.key", "0x00000064"),
        ("erspan2", "erspan", "erspan.spanid", "100"),
        ("erspan3", "erspan", "erspan.spanid", "100"),
    ] {
        let profile = format!(
            "packets = 40\nsize = 128\n[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\nsrc_port = \"1-4\"\ndst_port = 40000\n\n[tunnel]\nkind = \"{kind}\"\nsrc = \"192.0.2.10\"\ndst = \"192.0.2.1\"\nvni = 100\n"
        );
        let p = dir.join(format!("{kind}.toml"));
        std::fs::write(&p, profile).unwrap();
        let out = dir.join(format!("{kind}.pcap"));
        pktgen(&[
            "pcap",
            "--profile",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let rows = tshark_fields_with(
            &out,
            &["-o", "udp.check_checksum:TRUE"],
            filter,
            &[
                field,
                "ip.src",
                "udp.srcport",
                "frame.len",
                "udp.checksum.status",
            ],
        );
        assert_eq!(
            rows.len(),
            40,
            "{kind}: tshark sees the tunnel in every frame"
        );
        let inner_ports: BTreeSet<String> = rows
            .iter()
            .map(|r| {
                assert_eq!(r[0], want, "{kind}: {r:?}");
                // Outer then inner addresses.
                assert_eq!(r[1], "192.0.2.10,10.0.0.1", "{kind}: {r:?}");
                r[2].split(',').next_back().unwrap().to_owned()
            })
            .collect();
        assert_eq!(inner_ports.len(), 4, "{kind}: {inner_ports:?}");
        // The sequence check finds every stamp inside the tunnel.
        let o = pktgen(&["check", "--pcap", out.to_str().unwrap(), "--json"]);
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["in_order"], 40, "{kind}: {r}");
        assert_eq!(r["flows"], 4, "{kind}: {r}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_profiles_are_refused_with_the_key() {
    let dir = tmpdir("bad");
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\nproto = \"sctp\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(["pcap", "--profile", p.to_str().unwrap(), "--out"])
        .arg(dir.join("x.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flow[0].proto"), "{err}");
    assert!(!dir.join("x.pcap").exists());
    let _ = std::fs::remove_dir_all(dir);
}
