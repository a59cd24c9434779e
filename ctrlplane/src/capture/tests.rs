//! The reader against hand-built pcap and pcapng bytes, and the link-type
//! conversions against hand-built frames.

use super::file::{pcap_link, CaptureReader, Link};
use super::link::{self, to_ethernet, Unconvertible, DST_MAC, SRC_MAC};

const ETH: Link = Link {
    link_type: 1,
    fcs_bytes: 0,
};

/// A minimal IPv4/UDP packet (20 + 8 + 4 bytes) to 10.0.0.2.
fn ipv4() -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
    p
}

fn ipv6() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 4, 59, 64];
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(b"wxyz");
    p
}

/// A classic pcap file: (seconds, fraction, captured bytes, wire length).
fn pcap(magic: u32, big_endian: bool, link_field: u32, recs: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(magic));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(link_field));
    for (s, frac, data, len) in recs {
        f.extend_from_slice(&w32(*s));
        f.extend_from_slice(&w32(*frac));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(&w32(*len));
        if magic == 0xa1b2_cd34 {
            f.extend_from_slice(&[0; 8]);
        }
        f.extend_from_slice(data);
    }
    f
}

/// pcapng blocks, little-endian.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn opt(code: u16, v: &[u8]) -> Vec<u8> {
    let mut o = code.to_le_bytes().to_vec();
    o.extend_from_slice(&(v.len() as u16).to_le_bytes());
    o.extend_from_slice(v);
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    o
}

fn shb(options: &[u8]) -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    body.extend_from_slice(options);
    block(0x0a0d_0d0a, &body)
}

fn idb(link_type: u16, options: &[u8]) -> Vec<u8> {
    let mut body = link_type.to_le_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(options);
    block(1, &body)
}

fn epb(iface: u32, ts: u64, data: &[u8], options: &[u8]) -> Vec<u8> {
    let mut body = iface.to_le_bytes().to_vec();
    body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    body.extend_from_slice(options);
    block(6, &body)
}

/// Every record as (link, time, bytes without FCS).
fn records(bytes: &[u8]) -> Vec<(Link, u64, Vec<u8>)> {
    let mut r = CaptureReader::new(bytes).expect("header");
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().expect("record") {
        out.push((rec.link, rec.time_ns, rec.without_fcs().to_vec()));
    }
    out
}

#[test]
fn the_link_type_is_the_low_16_bits_and_the_fcs_length_needs_the_p_bit() {
    assert_eq!(pcap_link(1), ETH);
    // In the wild: FCS length bits without P (unknown length), P with 0.
    for field in [0x3000_0001, 0x4000_0001, 0x0400_0001] {
        assert_eq!(pcap_link(field), ETH, "{field:#x}");
    }
    // P with 2 words: a 4-byte FCS.
    assert_eq!(
        pcap_link(0x2400_0001),
        Link {
            link_type: 1,
            fcs_bytes: 4
        }
    );
    assert_eq!(pcap_link(0x0000_0071).link_type, link::LINUX_SLL);
}

#[test]
fn pcap_in_both_byte_orders_and_resolutions_gives_times_in_ns() {
    let f = [0xaau8; 60];
    for big in [false, true] {
        let us = pcap(0xa1b2_c3d4, big, 1, &[(2, 500_000, &f, 60)]);
        assert_eq!(records(&us), vec![(ETH, 2_500_000_000, f.to_vec())]);
        let ns = pcap(0xa1b2_3c4d, big, 1, &[(2, 7, &f, 60)]);
        assert_eq!(records(&ns), vec![(ETH, 2_000_000_007, f.to_vec())]);
        let modified = pcap(
            0xa1b2_cd34,
            big,
            0x3000_0001,
            &[(1, 0, &f, 60), (1, 1, &f, 60)],
        );
        assert_eq!(records(&modified).len(), 2);
    }
}

#[test]
fn a_known_fcs_is_removed_even_from_a_frame_cut_by_the_snapshot() {
    let mut frame = vec![0x11u8; 60];
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let f = pcap(
        0xa1b2_c3d4,
        false,
        0x2400_0001,
        &[
            (0, 0, &frame, 64),
            (0, 0, &frame[..62], 64),
            (0, 0, &frame[..40], 64),
        ],
    );
    let got: Vec<usize> = records(&f).iter().map(|(_, _, d)| d.len()).collect();
    assert_eq!(got, [60, 60, 40]);
    assert!(records(&f)
        .iter()
        .all(|(_, _, d)| d.iter().all(|b| *b == 0x11)));
}

#[test]
fn a_record_cut_by_the_end_of_the_file_ends_it() {
    let f = [0x55u8; 60];
    let mut bytes = pcap(0xa1b2_c3d4, false, 1, &[(0, 0, &f, 60), (0, 1, &f, 60)]);
    bytes.truncate(bytes.len() - 10);
    let mut r = CaptureReader::new(&bytes[..]).expect("header");
    assert!(r.next_record().expect("first").is_some());
    assert!(r.next_record().expect("cut").is_none());
    assert!(r.truncated());
}

#[test]
fn pcapng_skips_unknown_options_and_blocks_and_honours_the_interface_options() {
    let f = [0x66u8; 61];
    let mut bytes = shb(&[opt(0x0bad, b"vendor"), opt(2, b"hw"), opt(0, &[])].concat());
    // An unknown block before any interface, a custom block after.
    bytes.extend(block(0x0000_0bad, b"something new"));
    // ns resolution, one second of offset, an unknown option.
    bytes.extend(idb(
        1,
        &[
            opt(9, &[9]),
            opt(14, &1i64.to_le_bytes()),
            opt(0x7777, b"x"),
            opt(0, &[]),
        ]
        .concat(),
    ));
    bytes.extend(block(0x4000_0bad, b"custom"));
    // A 2^-10 s clock and a 32-bit FCS (in bits) on interface 1.
    bytes.extend(idb(1, &[opt(9, &[0x80 | 10]), opt(13, &[32])].concat()));
    bytes.extend(epb(
        0,
        5,
        &f,
        &[opt(0x1234, b"unknown"), opt(1, b"comment")].concat(),
    ));
    bytes.extend(block(5, &[0u8; 16])); // interface statistics
    bytes.extend(epb(1, 1024, &f, &[]));
    let got = records(&bytes);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1), (ETH, 1_000_000_005));
    assert_eq!(got[0].2, f.to_vec());
    assert_eq!(got[1].1, 1_000_000_000);
    assert_eq!(got[1].0.fcs_bytes, 4);
    assert_eq!(got[1].2.len(), 57);
}

#[test]
fn pcapng_per_packet_fcs_flags_and_interfaces_per_section() {
    let f = [0x77u8; 64];
    let mut bytes = shb(&[]);
    bytes.extend(idb(link::LINUX_SLL, &[]));
    // epb_flags bits 5-8: a 4-byte FCS on this packet.
    bytes.extend(epb(0, 0, &f, &opt(2, &(4u32 << 5).to_le_bytes())));
    // A new section forgets the interfaces of the last one.
    bytes.extend(shb(&[]));
    bytes.extend(idb(link::RAW, &[]));
    bytes.extend(epb(0, 1, &f, &[]));
    // A packet of an interface that does not exist is skipped.
    bytes.extend(epb(3, 2, &f, &[]));
    let got = records(&bytes);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.link_type, link::LINUX_SLL);
    assert_eq!(got[0].2.len(), 60);
    assert_eq!(got[1].0.link_type, link::RAW);
}

#[test]
fn links_are_known_before_the_first_packet() {
    let mut bytes = shb(&[]);
    bytes.extend(idb(link::LINUX_SLL2, &[]));
    bytes.extend(idb(127, &[]));
    bytes.extend(epb(0, 0, &[0; 30], &[]));
    let mut r = CaptureReader::new(&bytes[..]).expect("header");
    let links: Vec<u16> = r
        .links()
        .expect("links")
        .iter()
        .map(|l| l.link_type)
        .collect();
    assert_eq!(links, [link::LINUX_SLL2, 127]);
    // The packet read ahead is still there.
    assert!(r.next_record().expect("record").is_some());
    assert!(r.next_record().expect("end").is_none());
}

#[test]
fn what_is_not_a_capture_is_refused_with_its_first_bytes() {
    let e = CaptureReader::new(&b"GET / HTTP/1.1\r\n"[..])
        .err()
        .expect("refused");
    assert!(e.to_string().contains("neither pcap nor pcapng"), "{e}");
    let e = CaptureReader::new(&b""[..]).err().expect("refused");
    assert!(e.to_string().contains("empty"), "{e}");
    let mut bytes = shb(&[]);
    bytes.extend_from_slice(&6u32.to_le_bytes());
    bytes.extend_from_slice(&7u32.to_le_bytes()); // not a multiple of 4
    bytes.extend_from_slice(&[0; 16]);
    let mut r = CaptureReader::new(&bytes[..]).expect("header");
    assert!(r.next_record().is_err());
}

fn convert(link_type: u16, data: &[u8]) -> Result<Vec<u8>, Unconvertible> {
    let mut out = Vec::new();
    to_ethernet(link_type, data, &mut out).map(|()| out)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &ethertype.to_be_bytes(), payload].concat()
}

#[test]
fn raw_ip_link_types_get_the_fixed_addresses() {
    let (v4, v6) = (ipv4(), ipv6());
    assert_eq!(
        convert(link::RAW, &v4),
        Ok(eth(DST_MAC, SRC_MAC, 0x0800, &v4))
    );
    assert_eq!(
        convert(link::RAW, &v6),
        Ok(eth(DST_MAC, SRC_MAC, 0x86dd, &v6))
    );
    assert_eq!(
        convert(link::RAW_DLT12, &v4),
        Ok(eth(DST_MAC, SRC_MAC, 0x0800, &v4))
    );
    assert_eq!(
        convert(link::IPV4, &v4),
        Ok(eth(DST_MAC, SRC_MAC, 0x0800, &v4))
    );
    assert_eq!(
        convert(link::IPV6, &v6),
        Ok(eth(DST_MAC, SRC_MAC, 0x86dd, &v6))
    );
    assert_eq!(convert(link::RAW, &[0x20, 0, 0]), Err(Unconvertible::NotIp));
    assert_eq!(convert(link::RAW, &[]), Err(Unconvertible::NotIp));
}

#[test]
fn loopback_families_in_either_byte_order() {
    let v4 = ipv4();
    let v6 = ipv6();
    let null_le = [&2u32.to_le_bytes()[..], &v4].concat();
    let null_be = [&2u32.to_be_bytes()[..], &v4].concat();
    for f in [null_le, null_be] {
        assert_eq!(
            convert(link::NULL, &f),
            Ok(eth(DST_MAC, SRC_MAC, 0x0800, &v4))
        );
    }
    for family in [10u32, 24, 28, 30] {
        let f = [&family.to_le_bytes()[..], &v6].concat();
        assert_eq!(
            convert(link::NULL, &f),
            Ok(eth(DST_MAC, SRC_MAC, 0x86dd, &v6))
        );
        let f = [&family.to_be_bytes()[..], &v6].concat();
        assert_eq!(
            convert(link::LOOP, &f),
            Ok(eth(DST_MAC, SRC_MAC, 0x86dd, &v6))
        );
    }
    let f = [&7u32.to_le_bytes()[..], &v4].concat();
    assert_eq!(convert(link::NULL, &f), Err(Unconvertible::NotIp));
    assert_eq!(convert(link::LOOP, &[0, 0]), Err(Unconvertible::Short));
}

fn sll(packet_type: u16, hatype: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = packet_type.to_be_bytes().to_vec();
    h.extend_from_slice(&hatype.to_be_bytes());
    h.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    let mut a = addr.to_vec();
    a.resize(8, 0);
    h.extend_from_slice(&a);
    h.extend_from_slice(&protocol.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn sll2(packet_type: u8, hatype: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = protocol.to_be_bytes().to_vec();
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&3u32.to_be_bytes());
    h.extend_from_slice(&hatype.to_be_bytes());
    h.push(packet_type);
    h.push(addr.len() as u8);
    let mut a = addr.to_vec();
    a.resize(8, 0);
    h.extend_from_slice(&a);
    h.extend_from_slice(payload);
    h
}

#[test]
fn cooked_captures_keep_the_sender_and_the_protocol() {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let v4 = ipv4();
    let want = eth(DST_MAC, mac, 0x0800, &v4);
    assert_eq!(
        convert(link::LINUX_SLL, &sll(0, 1, &mac, 0x0800, &v4)),
        Ok(want.clone())
    );
    assert_eq!(
        convert(link::LINUX_SLL2, &sll2(0, 1, &mac, 0x0800, &v4)),
        Ok(want)
    );
    // A tunnel interface has no MAC: the fixed one stands in.
    assert_eq!(
        convert(link::LINUX_SLL, &sll(4, 65534, &[], 0x0800, &v4)),
        Ok(eth(DST_MAC, SRC_MAC, 0x0800, &v4))
    );
    // Broadcast and multicast packets get their group addresses.
    assert_eq!(
        convert(link::LINUX_SLL2, &sll2(1, 1, &mac, 0x0806, &[0; 28])).map(|f| f[..6].to_vec()),
        Ok(vec![0xff; 6])
    );
    assert_eq!(
        convert(link::LINUX_SLL, &sll(2, 1, &mac, 0x86dd, &ipv6())).map(|f| f[..6].to_vec()),
        Ok(vec![0x33, 0x33, 0, 0, 0, 1])
    );
    // 802.2 LLC: an 802.3 frame with its length.
    let llc = [0x42, 0x42, 0x03, 0, 0, 0];
    assert_eq!(
        convert(link::LINUX_SLL, &sll(0, 1, &mac, 0x0004, &llc)),
        Ok(eth(DST_MAC, mac, 6, &llc))
    );
    // Netlink and CAN are not carried; a cut header is said so.
    assert_eq!(
        convert(link::LINUX_SLL, &sll(4, 824, &[], 0x0000, &[0; 20])),
        Err(Unconvertible::NotIp)
    );
    assert_eq!(
        convert(link::LINUX_SLL2, &sll2(0, 280, &[], 0x000c, &[0; 16])),
        Err(Unconvertible::NotIp)
    );
    assert_eq!(
        convert(link::LINUX_SLL, &[0; 10]),
        Err(Unconvertible::Short)
    );
}

#[test]
fn link_types_have_their_pcap_names() {
    assert_eq!(link::name(113), "LINUX_SLL (113)");
    assert_eq!(link::name(127), "IEEE802_11_RADIOTAP (127)");
    assert_eq!(link::name(150), "USER3 (150)");
    assert!(link::name(65000).contains("65000"));
    for t in [0, 1, 12, 101, 108, 113, 228, 229, 276] {
        assert!(link::carried(t), "{t}");
    }
    assert!(!link::carried(127));
}

#[test]
fn capture_input_keys_are_checked_and_named() {
    use super::{replay_of, PortKind, ReplayKeys, Timing};
    let input = PortKind {
        input: true,
        has_device: false,
        has_address: false,
        secondary: false,
    };
    let mut p = Vec::new();
    let keys = ReplayKeys {
        file: Some("a.pcap".into()),
        timing: Some(Timing::Capture),
        speed: Some(2.5),
        loops: Some(3),
    };
    let r = replay_of("port[0]", &keys, input, &mut p).expect("a capture input");
    assert!(p.is_empty(), "{p:?}");
    assert_eq!((r.timing, r.speed, r.loops), (Timing::Capture, 2.5, 3));
    // Defaults: fast, once.
    let r = replay_of(
        "port[0]",
        &ReplayKeys {
            file: Some("a.pcap".into()),
            ..ReplayKeys::default()
        },
        input,
        &mut p,
    )
    .expect("a capture input");
    assert_eq!((r.timing, r.loops), (Timing::Fast, 1));
    assert!(p.is_empty(), "{p:?}");
    // Every problem, with its key.
    let bad = ReplayKeys {
        file: Some("a.pcap".into()),
        timing: None,
        speed: Some(-1.0),
        loops: Some(0),
    };
    let kind = PortKind {
        input: false,
        has_device: true,
        has_address: true,
        secondary: true,
    };
    replay_of("port[2]", &bad, kind, &mut p);
    let all = p.join("\n");
    for k in [
        "port[2].file: only an input",
        "port[2].file: a capture input has no device",
        "port[2].file: capture inputs are not run by a pdump",
        "port[2].address: a capture input answers no ARP/ND",
        "port[2].speed: scales",
        "port[2].speed: -1",
        "port[2].loop:",
    ] {
        assert!(all.contains(k), "{k}: {all}");
    }
    // Replay keys without a file.
    let mut p = Vec::new();
    let none = replay_of(
        "port[1]",
        &ReplayKeys {
            loops: Some(2),
            ..ReplayKeys::default()
        },
        input,
        &mut p,
    );
    assert!(none.is_none());
    assert_eq!(
        p,
        ["port[1].loop: only a capture input (file = \"...\") has one"]
    );
}

proptest::proptest! {
    /// Whatever follows a valid magic, reading ends (a record, an error or
    /// the end) without a panic, and every record lies inside the input.
    #[test]
    fn any_bytes_after_a_magic_are_read_without_panicking(
        ng in proptest::bool::ANY,
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
    ) {
        let mut bytes = if ng {
            shb(&[])
        } else {
            pcap(0xa1b2_c3d4, false, 1, &[])
        };
        bytes.extend_from_slice(&body);
        if let Ok(mut r) = CaptureReader::new(&bytes[..]) {
            let _ = r.links();
            for _ in 0..100 {
                match r.next_record() {
                    Ok(Some(rec)) => proptest::prop_assert!(rec.data.len() <= bytes.len()),
                    _ => break,
                }
            }
        }
    }
}
