//! tshark judges what encap emits.
//!
//! Each test encapsulates frames, writes them to a pcap in a temp dir, has
//! tshark dissect them (`-T json`, with IPv4 and UDP checksum validation on)
//! and checks the dissected fields against what encap was asked to write:
//! tunnel IDs, ERSPAN version / T bit / index / timestamp / hardware ID /
//! direction / granularity / platform sub-header, GRE sequence and key,
//! UDP ports (source port in 49152–65535 and the same for both directions
//! of a flow), DF, outer DSCP/TTL/VLAN, IPv4 header checksum good, UDP
//! checksum good over IPv6, the inner addresses — and that tshark finds
//! nothing malformed (in any layer for whole frames; in the outer layers
//! for sliced frames, whose inner IP lengths still give the original size).

mod common;

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::encap::{
    EncapMeta, EncapTemplate, OuterVlan, TimestampMode, TunnelConfig, VxlanExtendedConfig,
};
use dataplane::stage::parse::parse;
use dataplane::stage::tag::TagInfo;
use dataplane::stage::Direction;
use serde_json::Value;

const NOW_NS: u64 = 1_732_000_123_987_654_321;

/// One encapsulated frame and what went into it.
struct Sent {
    frame: Vec<u8>,
    tag: TagInfo,
    sliced: bool,
    inner_v6: bool,
}

/// Encapsulates `n` frames for `tunnel`: alternating inner IPv4/IPv6,
/// directions and input ports; every third frame sliced to 80 bytes.
fn encap_frames(tunnel: TunnelConfig, outer_v6: bool, vlan: bool, n: usize) -> Vec<Sent> {
    let mut cfg = encap_config(tunnel, outer_v6, 1500);
    if vlan {
        cfg.outer.vlan = Some(OuterVlan { vid: 42, pcp: 5 });
    }
    let mut tpl = EncapTemplate::new(&cfg).expect("config");
    tpl.set_next_seq(1000);
    (0..n)
        .map(|i| {
            let inner_v6 = i % 2 == 1;
            let inner = inner_frame(inner_v6, 200 + i * 37, i as u64);
            let layers = parse(&inner);
            let mut f = VecFrame::new(&inner);
            let sliced = i % 3 == 2;
            if sliced {
                f.truncate(80);
            }
            let tag = TagInfo {
                appliance_id: 0x100 + i as u16,
                input_port: 7 + i as u16,
                rule_id: 0,
                direction: if i % 2 == 0 {
                    Direction::Ingress
                } else {
                    Direction::Egress
                },
            };
            let meta = EncapMeta {
                layers: Some(&layers),
                flow_hash: None,
                tag,
                tag_override: None,
                sliced,
            };
            tpl.encap(&mut f, &meta, NOW_NS + i as u64).expect("encap");
            Sent {
                frame: f.data().to_vec(),
                tag,
                sliced,
                inner_v6,
            }
        })
        .collect()
}

/// Writes the frames and returns tshark's dissection of each.
fn dissect(name: &str, sent: &[Sent], extra: &[&str]) -> Vec<Value> {
    let dir = temp_dir(&format!("tshark_encap_{name}"));
    let path = dir.join("out.pcap");
    let frames: Vec<Vec<u8>> = sent.iter().map(|s| s.frame.clone()).collect();
    write_pcap(&path, &frames);
    let mut args = vec![
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    args.extend_from_slice(extra);
    let d = tshark_json(&path, &args);
    assert_eq!(d.len(), sent.len(), "{name}: tshark read every frame");
    d
}

/// The `n`th (0 = outermost) top-level occurrence of `proto`.
fn layer<'a>(l: &'a Value, proto: &str, n: usize) -> &'a Value {
    occurrences(l, proto)
        .get(n)
        .copied()
        .unwrap_or_else(|| panic!("no {proto} #{n} in {:?}", protocols(l)))
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {s}"))
}

fn f_num(v: &Value, name: &str) -> u64 {
    num(&field(v, name))
}

/// Checks shared by every tunnel: no malformed outer layer (none at all for
/// whole frames), DF and a good header checksum on IPv4, outer DSCP and
/// TTL, the outer VLAN, and the inner source address.
fn check_common(name: &str, s: &Sent, l: &Value, outer_v6: bool, vlan: bool, outer: &[&str]) {
    let at = format!("{name}: {:?}", protocols(l));
    if s.sliced {
        for p in outer {
            let v = occurrences(l, p);
            let Some(first) = v.first() else {
                panic!("{at}: no {p} layer")
            };
            assert!(
                tshark_errors(first).is_empty(),
                "{at}: {p}: {:?}",
                tshark_errors(first)
            );
        }
    } else {
        assert!(tshark_errors(l).is_empty(), "{at}: {:?}", tshark_errors(l));
    }
    if vlan {
        assert_eq!(f_num(layer(l, "vlan", 0), "vlan.id"), 42, "{at}");
    }
    if outer_v6 {
        let ip = layer(l, "ipv6", 0);
        assert_eq!(field(ip, "ipv6.src"), OUTER_SRC6.to_string(), "{at}");
        assert_eq!(field(ip, "ipv6.dst"), OUTER_DST6.to_string(), "{at}");
        assert_eq!(f_num(ip, "ipv6.hlim"), 63, "{at}");
        assert_eq!(f_num(ip, "ipv6.tclass.dscp"), 10, "{at}");
    } else {
        let ip = layer(l, "ip", 0);
        assert_eq!(field(ip, "ip.src"), OUTER_SRC4.to_string(), "{at}");
        assert_eq!(field(ip, "ip.dst"), OUTER_DST4.to_string(), "{at}");
        assert_eq!(f_num(ip, "ip.flags.df"), 1, "{at}: DF");
        // 1 = good (0 bad, 2 unverified): validation is on.
        assert_eq!(
            f_num(ip, "ip.checksum.status"),
            1,
            "{at}: IPv4 header checksum"
        );
        assert_eq!(f_num(ip, "ip.ttl"), 63, "{at}");
        assert_eq!(f_num(ip, "ip.dsfield.dscp"), 10, "{at}");
        assert_eq!(
            f_num(ip, "ip.len") as usize,
            s.frame.len() - 14 - if vlan { 4 } else { 0 },
            "{at}"
        );
    }
    // The inner frame's addresses, as tshark finds them inside the tunnel.
    let inner_src = if s.inner_v6 {
        let n = usize::from(outer_v6);
        field(layer(l, "ipv6", n), "ipv6.src")
    } else {
        let n = usize::from(!outer_v6);
        field(layer(l, "ip", n), "ip.src")
    };
    let want = if s.inner_v6 {
        INNER_SRC6.to_string()
    } else {
        INNER_SRC4.to_string()
    };
    assert_eq!(inner_src, want, "{at}: inner source address");
}

fn check_udp(name: &str, s: &Sent, l: &Value, outer_v6: bool, dst_port: u16) -> u16 {
    let u = layer(l, "udp", 0);
    let sport = f_num(u, "udp.srcport") as u16;
    assert!(sport >= 49152, "{name}: source port {sport}");
    assert_eq!(f_num(u, "udp.dstport"), u64::from(dst_port), "{name}");
    let ip_hdr = if outer_v6 { 40 } else { 20 };
    let l2 = s.frame.len() - f_num(u, "udp.length") as usize - ip_hdr;
    assert!(l2 == 14 || l2 == 18, "{name}: UDP length");
    if outer_v6 {
        assert_eq!(
            f_num(u, "udp.checksum.status"),
            1,
            "{name}: UDP checksum over IPv6"
        );
    } else {
        assert_eq!(
            f_num(u, "udp.checksum"),
            0,
            "{name}: UDP checksum 0 over IPv4"
        );
    }
    sport
}

#[test]
fn vxlan_fields_as_tshark_sees_them() {
    for outer_v6 in [false, true] {
        for vlan in [false, true] {
            let name = format!("vxlan_v6{outer_v6}_vlan{vlan}");
            let sent = encap_frames(TunnelConfig::vxlan(0x00ab_cdef), outer_v6, vlan, 9);
            let d = dissect(&name, &sent, &[]);
            for (s, l) in sent.iter().zip(&d) {
                let x = layer(l, "vxlan", 0);
                assert_eq!(f_num(x, "vxlan.vni"), 0x00ab_cdef, "{name}");
                // Standard mode: I flag only, reserved zero.
                assert_eq!(f_num(x, "vxlan.flags"), 0x0800, "{name}");
                assert_eq!(f_num(x, "vxlan.reserved8"), 0, "{name}");
                check_udp(&name, s, l, outer_v6, 4789);
                let outer: &[&str] = if outer_v6 {
                    &["ipv6", "udp", "vxlan"]
                } else {
                    &["ip", "udp", "vxlan"]
                };
                check_common(&name, s, l, outer_v6, vlan, outer);
            }
        }
    }
}

#[test]
fn vxlan_extended_mode_uses_the_reserved_bits() {
    let t = TunnelConfig::Vxlan {
        vni: 99,
        udp_dst_port: 4789,
        extended: Some(VxlanExtendedConfig { flags: 0x0c }),
    };
    let sent = encap_frames(t, false, false, 4);
    let d = dissect("vxlan_ext", &sent, &[]);
    for (i, (s, l)) in sent.iter().zip(&d).enumerate() {
        let x = layer(l, "vxlan", 0);
        let seq = 1000 + i as u64;
        // tshark reads bytes 0–1 as flags and 2–3 as the GBP policy ID:
        // the 24-bit sequence spans byte 1 and bytes 2–3.
        assert_eq!(f_num(x, "vxlan.flags"), (0x0c << 8) | (seq >> 16));
        assert_eq!(f_num(x, "vxlan.gbp"), seq & 0xffff);
        assert_eq!(f_num(x, "vxlan.vni"), 99);
        let egress = s.tag.direction == Direction::Egress;
        assert_eq!(f_num(x, "vxlan.reserved8"), u64::from(egress));
    }
}

#[test]
fn vxlan_source_port_is_the_same_both_ways() {
    let mut tpl = EncapTemplate::new(&encap_config(TunnelConfig::vxlan(1), false, 1500)).unwrap();
    let mut sent = Vec::new();
    for i in 0..6u64 {
        let mut a = inner_frame(false, 120, i);
        // One flow per client port (the UDP checksum is not judged here).
        a[34..36].copy_from_slice(&(30000 + i as u16).to_be_bytes());
        // The reverse direction: swap MACs, addresses and ports.
        let mut b = a.clone();
        b[..6].copy_from_slice(&a[6..12]);
        b[6..12].copy_from_slice(&a[..6]);
        b[26..30].copy_from_slice(&a[30..34]);
        b[30..34].copy_from_slice(&a[26..30]);
        b[34..36].copy_from_slice(&a[36..38]);
        b[36..38].copy_from_slice(&a[34..36]);
        for bytes in [a, b] {
            let layers = parse(&bytes);
            let mut f = VecFrame::new(&bytes);
            let meta = EncapMeta {
                layers: Some(&layers),
                ..EncapMeta::default()
            };
            tpl.encap(&mut f, &meta, 0).unwrap();
            sent.push(Sent {
                frame: f.data().to_vec(),
                tag: TagInfo::default(),
                sliced: false,
                inner_v6: false,
            });
        }
    }
    let d = dissect("vxlan_symmetric", &sent, &[]);
    let ports: Vec<u64> = d
        .iter()
        .map(|l| f_num(layer(l, "udp", 0), "udp.srcport"))
        .collect();
    for pair in ports.chunks(2) {
        assert_eq!(pair[0], pair[1], "both directions of a flow: {ports:?}");
    }
    // Different flows spread (six flows, at least four ports).
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 4, "{ports:?}");
    // The inner addresses were really swapped, as tshark sees them.
    assert_eq!(
        field(layer(&d[0], "ip", 1), "ip.src"),
        field(layer(&d[1], "ip", 1), "ip.dst")
    );
}

#[test]
fn geneve_fields_as_tshark_sees_them() {
    for outer_v6 in [false, true] {
        let name = format!("geneve_v6{outer_v6}");
        let sent = encap_frames(TunnelConfig::Geneve { vni: 0x12_3456 }, outer_v6, false, 6);
        let d = dissect(&name, &sent, &[]);
        for (s, l) in sent.iter().zip(&d) {
            let g = layer(l, "geneve", 0);
            assert_eq!(f_num(g, "geneve.vni"), 0x12_3456, "{name}");
            assert_eq!(f_num(g, "geneve.version"), 0, "{name}");
            assert_eq!(f_num(g, "geneve.proto_type"), 0x6558, "{name}");
            check_udp(&name, s, l, outer_v6, 6081);
            let outer: &[&str] = if outer_v6 {
                &["ipv6", "udp", "geneve"]
            } else {
                &["ip", "udp", "geneve"]
            };
            check_common(&name, s, l, outer_v6, false, outer);
        }
    }
}

#[test]
fn l2gre_fields_as_tshark_sees_them() {
    for outer_v6 in [false, true] {
        let name = format!("l2gre_v6{outer_v6}");
        let sent = encap_frames(TunnelConfig::L2Gre { key: 0xdead_beef }, outer_v6, true, 6);
        let d = dissect(&name, &sent, &[]);
        for (s, l) in sent.iter().zip(&d) {
            let g = layer(l, "gre", 0);
            assert_eq!(f_num(g, "gre.key"), 0xdead_beef, "{name}");
            assert_eq!(f_num(g, "gre.proto"), 0x6558, "{name}");
            assert!(field_values(g, "gre.sequence_number").is_empty());
            let p = protocols(l);
            let gi = p.iter().position(|x| x == "gre").unwrap();
            assert_eq!(p[gi + 1], "eth", "{name}: {p:?}");
            let outer: &[&str] = if outer_v6 {
                &["ipv6", "gre"]
            } else {
                &["ip", "gre"]
            };
            check_common(&name, s, l, outer_v6, true, outer);
        }
    }
}

#[test]
fn erspan2_fields_as_tshark_sees_them() {
    for outer_v6 in [false, true] {
        let name = format!("erspan2_v6{outer_v6}");
        let sent = encap_frames(TunnelConfig::ErspanII { session: 1023 }, outer_v6, false, 9);
        let d = dissect(&name, &sent, &[]);
        for (i, (s, l)) in sent.iter().zip(&d).enumerate() {
            let g = layer(l, "gre", 0);
            assert_eq!(f_num(g, "gre.proto"), 0x88be, "{name}");
            assert_eq!(f_num(g, "gre.sequence_number"), 1000 + i as u64, "{name}");
            let e = layer(l, "erspan", 0);
            assert_eq!(f_num(e, "erspan.version"), 1, "{name}");
            assert_eq!(f_num(e, "erspan.spanid"), 1023, "{name}");
            assert_eq!(
                f_num(e, "erspan.index"),
                u64::from(s.tag.input_port),
                "{name}"
            );
            assert_eq!(f_num(e, "erspan.truncated"), u64::from(s.sliced), "{name}");
            // COS is the DSCP's class selector (10 >> 3).
            assert_eq!(f_num(e, "erspan.cos"), 1, "{name}");
            let outer: &[&str] = if outer_v6 {
                &["ipv6", "gre", "erspan"]
            } else {
                &["ip", "gre", "erspan"]
            };
            check_common(&name, s, l, outer_v6, false, outer);
        }
    }
}

#[test]
fn erspan3_fields_as_tshark_sees_them() {
    for (mode, outer_v6) in [
        (TimestampMode::Ieee1588, false),
        (TimestampMode::Ieee1588, true),
        (TimestampMode::Us100, false),
    ] {
        let name = format!("erspan3_{mode:?}_v6{outer_v6}");
        let t = TunnelConfig::ErspanIII {
            session: 300,
            hw_id: None,
            timestamp: mode,
        };
        let sent = encap_frames(t, outer_v6, false, 9);
        let d = dissect(&name, &sent, &[]);
        for (i, (s, l)) in sent.iter().zip(&d).enumerate() {
            let now = NOW_NS + i as u64;
            let g = layer(l, "gre", 0);
            assert_eq!(f_num(g, "gre.proto"), 0x22eb, "{name}");
            assert_eq!(f_num(g, "gre.sequence_number"), 1000 + i as u64, "{name}");
            let e = layer(l, "erspan", 0);
            assert_eq!(f_num(e, "erspan.version"), 2, "{name}");
            assert_eq!(f_num(e, "erspan.spanid"), 300, "{name}");
            assert_eq!(f_num(e, "erspan.truncated"), u64::from(s.sliced), "{name}");
            assert_eq!(
                f_num(e, "erspan.hw"),
                u64::from(s.tag.appliance_id & 0x3f),
                "{name}: hardware ID from the appliance ID"
            );
            let egress = s.tag.direction == Direction::Egress;
            assert_eq!(
                field(e, "erspan.direction"),
                if egress { "1" } else { "0" },
                "{name}"
            );
            assert_eq!(f_num(e, "erspan.ft"), 0, "{name}");
            match mode {
                TimestampMode::Ieee1588 => {
                    assert_eq!(f_num(e, "erspan.gra"), 2, "{name}");
                    assert_eq!(f_num(e, "erspan.timestamp"), now % 1_000_000_000, "{name}");
                    assert_eq!(f_num(e, "erspan.o"), 1, "{name}");
                    assert_eq!(f_num(e, "erspan.platid"), 3, "{name}");
                    assert_eq!(
                        f_num(e, "erspan.pid3.timestamp"),
                        now / 1_000_000_000,
                        "{name}: upper timestamp bits = seconds"
                    );
                    assert_eq!(
                        f_num(e, "erspan.pid3.port_index"),
                        u64::from(s.tag.input_port),
                        "{name}"
                    );
                }
                TimestampMode::Us100 => {
                    assert_eq!(f_num(e, "erspan.gra"), 0, "{name}");
                    assert_eq!(
                        f_num(e, "erspan.timestamp"),
                        (now / 100_000) & 0xffff_ffff,
                        "{name}"
                    );
                    assert_eq!(f_num(e, "erspan.o"), 0, "{name}");
                    assert!(field_values(e, "erspan.platid").is_empty(), "{name}");
                }
            }
            let outer: &[&str] = if outer_v6 {
                &["ipv6", "gre", "erspan"]
            } else {
                &["ip", "gre", "erspan"]
            };
            check_common(&name, s, l, outer_v6, false, outer);
        }
    }
}

/// Frames cut to the MTU carry T=1 and tshark finds the outer layers whole.
#[test]
fn truncate_to_mtu_sets_t_and_stays_within_the_mtu() {
    let mut tpl = EncapTemplate::new(&encap_config(TunnelConfig::erspan3(5), false, 1000)).unwrap();
    let mut sent = Vec::new();
    for i in 0..3u64 {
        let inner = inner_frame(false, 1400 + i as usize, i);
        let layers = parse(&inner);
        let mut f = VecFrame::new(&inner);
        let meta = EncapMeta {
            layers: Some(&layers),
            ..EncapMeta::default()
        };
        tpl.encap(&mut f, &meta, NOW_NS).unwrap();
        sent.push(Sent {
            frame: f.data().to_vec(),
            tag: TagInfo::default(),
            sliced: true,
            inner_v6: false,
        });
    }
    let d = dissect("erspan3_mtu", &sent, &[]);
    for l in &d {
        assert_eq!(f_num(layer(l, "ip", 0), "ip.len"), 1000);
        assert_eq!(f_num(layer(l, "erspan", 0), "erspan.truncated"), 1);
        assert!(tshark_errors(layer(l, "erspan", 0)).is_empty());
    }
    assert_eq!(tpl.counters().truncated_to_mtu, 3);
}
