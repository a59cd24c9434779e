//! The parse stage on hand-built frames: every layer it knows, the limits it
//! enforces, and frames cut at every byte.

use dataplane::frame::VecFrame;
use dataplane::stage::parse::{
    parse, parse_burst, parse_frames, Fragment, Layers, ParseCounters, ParseError, MAX_MPLS_LABELS,
    MAX_VLAN_TAGS,
};
use dataplane::wire::{ipv4, ipv6, tcp, udp, IpProtocol};
use std::net::{Ipv4Addr, Ipv6Addr};

const SRC4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
const DST4: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);

fn src6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}

fn dst6() -> Ipv6Addr {
    "2001:db8:ffff::abcd".parse().unwrap()
}

/// Destination, source MACs and an EtherType.
fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0, 0, 0, 0, 1];
    f.extend(ethertype.to_be_bytes());
    f
}

/// A VLAN tag's TCI and next EtherType (the TPID is the previous EtherType).
fn tag(vid: u16, next: u16) -> [u8; 4] {
    let t = (5u16 << 13) | vid;
    let [a, b] = t.to_be_bytes();
    let [c, d] = next.to_be_bytes();
    [a, b, c, d]
}

fn mpls(label: u32, bottom: bool) -> [u8; 4] {
    ((label << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes()
}

fn ipv4_hdr(proto: u8, options: &[u8], payload_len: usize) -> Vec<u8> {
    let mut r = ipv4::Repr::new(SRC4, DST4, IpProtocol::from(proto), payload_len);
    r.options = ipv4::Options::new(options).unwrap();
    let mut b = vec![0u8; r.header_len()];
    r.emit_to(&mut b).unwrap();
    b
}

fn ipv6_hdr(next: u8, payload_len: usize) -> Vec<u8> {
    let r = ipv6::Repr::new(src6(), dst6(), IpProtocol::from(next), payload_len);
    let mut b = vec![0u8; 40];
    r.emit_to(&mut b).unwrap();
    b
}

/// TCP 1234 → 80 with flags SYN|ACK (0x12) and `opt_words` words of NOPs.
fn tcp_hdr(opt_words: usize) -> Vec<u8> {
    let r = tcp::Repr {
        src_port: 1234,
        dst_port: 80,
        seq_number: 7,
        ack_number: 9,
        flags: tcp::Flags::SYN | tcp::Flags::ACK,
        window_len: 1000,
        urgent_at: 0,
        options: tcp::Options::new(&vec![1u8; opt_words * 4]).unwrap(),
    };
    let mut b = vec![0u8; r.header_len()];
    r.emit_to(&mut b).unwrap();
    b
}

fn udp_hdr(payload_len: usize) -> Vec<u8> {
    let r = udp::Repr {
        src_port: 5353,
        dst_port: 4789,
        payload_len,
    };
    let mut b = vec![0u8; 8];
    r.emit_to(&mut b).unwrap();
    b
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Eth / IPv4 / UDP with 10 bytes of payload.
fn ipv4_udp() -> Vec<u8> {
    let payload = [0xabu8; 10];
    cat(&[&eth(0x0800), &ipv4_hdr(17, &[], 18), &udp_hdr(10), &payload])
}

#[test]
fn ipv4_udp_fields() {
    let l = parse(&ipv4_udp());
    assert_eq!(
        l,
        Layers {
            ethertype: 0x0800,
            l3_offset: 14,
            ip_version: 4,
            l4_proto: 17,
            l4_offset: 34,
            payload_offset: 42,
            ip_end: 52,
            src_addr: 0x0a01_0203,
            dst_addr: 0xc0a8_6407,
            src_port: 5353,
            dst_port: 4789,
            ..Layers::default()
        }
    );
    assert_eq!(l.src_ip(), Some(SRC4.into()));
    assert_eq!(l.dst_ip(), Some(DST4.into()));
}

#[test]
fn ipv4_options_and_tcp_options_move_the_offsets() {
    // IHL 7 (8 option bytes), TCP data offset 8 (12 option bytes).
    let f = cat(&[
        &eth(0x0800),
        &ipv4_hdr(6, &[0x94, 4, 0, 0, 1, 1, 1, 0], 32 + 3),
        &tcp_hdr(3),
        b"abc",
    ]);
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!((l.l3_offset, l.l4_offset, l.payload_offset), (14, 42, 74));
    assert_eq!((l.src_port, l.dst_port, l.tcp_flags), (1234, 80, 0x12));
    assert_eq!(usize::from(l.payload_offset), f.len() - 3);
}

#[test]
fn qinq_ipv6_tcp() {
    for outer_tpid in [0x88a8, 0x9100, 0x8100] {
        let f = cat(&[
            &eth(outer_tpid),
            &tag(100, 0x8100),
            &tag(200, 0x86dd),
            &ipv6_hdr(6, 20),
            &tcp_hdr(0),
        ]);
        let l = parse(&f);
        assert_eq!(l.error, None);
        assert_eq!(l.vlan_count, 2);
        assert_eq!((l.outer_vlan, l.inner_vlan), (Some(100), Some(200)));
        assert_eq!(l.ethertype, 0x86dd);
        assert_eq!((l.l3_offset, l.l4_offset, l.payload_offset), (22, 62, 82));
        assert_eq!(l.ip_version, 6);
        assert_eq!(l.src_addr, u128::from(src6()));
        assert_eq!(l.dst_addr, u128::from(dst6()));
        assert_eq!((l.l4_proto, l.src_port, l.tcp_flags), (6, 1234, 0x12));
    }
}

#[test]
fn single_tag_sets_only_the_outer_vlan() {
    let f = cat(&[&eth(0x8100), &tag(4095, 0x0806), &[0u8; 28]]);
    let l = parse(&f);
    assert_eq!(
        (l.vlan_count, l.outer_vlan, l.inner_vlan),
        (1, Some(4095), None)
    );
    assert_eq!(
        (l.ethertype, l.payload_offset, l.ip_version),
        (0x0806, 18, 0)
    );
    assert_eq!(l.error, None);
}

#[test]
fn vlan_limit_and_cut_tags() {
    let build = |n: usize| {
        let mut f = eth(0x8100);
        for i in 0..n {
            let next = if i + 1 == n { 0x0800 } else { 0x8100 };
            f.extend(tag(i as u16 + 1, next));
        }
        f.extend(ipv4_hdr(17, &[], 8));
        f.extend(udp_hdr(0));
        f
    };
    let ok = parse(&build(MAX_VLAN_TAGS));
    assert_eq!(ok.error, None);
    assert_eq!(usize::from(ok.vlan_count), MAX_VLAN_TAGS);
    assert_eq!(ok.l3_offset as usize, 14 + 4 * MAX_VLAN_TAGS);

    let too_many = parse(&build(MAX_VLAN_TAGS + 1));
    assert_eq!(too_many.error, Some(ParseError::BadVlan));
    assert_eq!(usize::from(too_many.vlan_count), MAX_VLAN_TAGS);
    assert_eq!(
        (too_many.outer_vlan, too_many.inner_vlan),
        (Some(1), Some(2))
    );
    assert_eq!(too_many.payload_offset as usize, 14 + 4 * MAX_VLAN_TAGS);
    assert_eq!(too_many.l3_offset, 0);

    let f = build(2);
    let cut = parse(&f[..14 + 4 + 3]);
    assert_eq!(cut.error, Some(ParseError::BadVlan));
    assert_eq!((cut.vlan_count, cut.outer_vlan), (1, Some(1)));
}

#[test]
fn mpls_over_ipv4_and_ipv6() {
    let f = cat(&[
        &eth(0x8847),
        &mpls(1000, false),
        &mpls(2000, true),
        &ipv4_hdr(17, &[], 8),
        &udp_hdr(0),
    ]);
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!((l.ethertype, l.mpls_labels, l.ip_version), (0x8847, 2, 4));
    assert_eq!((l.l3_offset, l.l4_offset, l.payload_offset), (22, 42, 50));
    assert_eq!(l.dst_port, 4789);

    let f = cat(&[
        &eth(0x8100),
        &tag(7, 0x8848),
        &mpls(2, true),
        &ipv6_hdr(17, 8),
        &udp_hdr(0),
    ]);
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!(
        (l.outer_vlan, l.ethertype, l.mpls_labels),
        (Some(7), 0x8848, 1)
    );
    assert_eq!((l.ip_version, l.l3_offset, l.l4_offset), (6, 22, 62));
}

#[test]
fn mpls_without_ip_and_broken_stacks() {
    // Ethernet pseudowire with a control word: first nibble 0, not IP.
    let f = cat(&[&eth(0x8847), &mpls(16, true), &[0, 0, 0, 0], &eth(0x0800)]);
    let l = parse(&f);
    assert_eq!((l.error, l.ip_version, l.l3_offset), (None, 0, 0));
    assert_eq!((l.mpls_labels, l.payload_offset), (1, 18));

    let mut no_bottom = eth(0x8847);
    for i in 0..=MAX_MPLS_LABELS {
        no_bottom.extend(mpls(i as u32, false));
    }
    let l = parse(&no_bottom);
    assert_eq!(l.error, Some(ParseError::BadMpls));
    assert_eq!(usize::from(l.mpls_labels), MAX_MPLS_LABELS);

    let cut = cat(&[&eth(0x8847), &mpls(1, false), &mpls(2, true)]);
    let l = parse(&cut[..cut.len() - 1]);
    assert_eq!((l.error, l.mpls_labels), (Some(ParseError::BadMpls), 1));
    // A stack that ends exactly at the end of the frame is fine, just empty.
    assert_eq!(parse(&cut).error, None);
}

/// IPv6 with one extension header of kind `kind` (and `body` after its
/// two first bytes) before UDP.
fn ipv6_with_ext(kind: u8, len_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut ext = vec![17, len_byte];
    ext.extend(body);
    let payload = ext.len() + 8;
    cat(&[&eth(0x86dd), &ipv6_hdr(kind, payload), &ext, &udp_hdr(0)])
}

#[test]
fn ipv6_each_extension_header() {
    // (kind, length byte, body, header length)
    let cases: [(u8, u8, Vec<u8>, usize); 6] = [
        (0, 0, vec![1, 4, 0, 0, 0, 0], 8),               // hop-by-hop, PadN
        (43, 2, [vec![4, 1], vec![0; 20]].concat(), 24), // routing (SRH)
        (44, 0, vec![0, 1, 0, 0, 0, 42], 8),             // fragment, offset 0, M
        (60, 1, [vec![1, 12], vec![0; 12]].concat(), 16), // destination options
        (51, 4, vec![0; 22], 24),                        // AH: (4 + 2) × 4
        (135, 0, vec![0; 6], 8),                         // mobility
    ];
    for (kind, len_byte, body, hl) in cases {
        let f = ipv6_with_ext(kind, len_byte, &body);
        let l = parse(&f);
        assert_eq!(l.error, None, "kind {kind}");
        assert_eq!(l.l4_proto, 17, "kind {kind}");
        assert_eq!(usize::from(l.l4_offset), 54 + hl, "kind {kind}");
        assert_eq!(usize::from(l.payload_offset), 54 + hl + 8, "kind {kind}");
        assert_eq!((l.src_port, l.dst_port), (5353, 4789));
        let frag = if kind == 44 {
            Fragment::First
        } else {
            Fragment::None
        };
        assert_eq!(l.fragment, frag, "kind {kind}");
    }
}

#[test]
fn ipv6_chain_of_every_kind() {
    let mut chain = vec![43, 0, 1, 4, 0, 0, 0, 0]; // HBH → routing
    chain.extend([51, 2, 0, 0]); // routing → AH
    chain.extend([0u8; 20]);
    chain.extend([44, 2, 0, 0, 0, 0, 0, 1]); // AH → fragment
    chain.extend([0u8; 8]);
    chain.extend([60, 0, 0, 0, 1, 2, 3, 4]); // fragment (atomic) → dest opts
    chain.extend([6, 0, 1, 4, 0, 0, 0, 0]); // dest opts → TCP
    let f = cat(&[
        &eth(0x86dd),
        &ipv6_hdr(0, chain.len() + 20),
        &chain,
        &tcp_hdr(0),
    ]);
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!((l.l4_proto, l.l4_offset), (6, 54 + 64));
    assert_eq!(l.fragment, Fragment::None, "atomic fragment is whole");
    assert_eq!(l.tcp_flags, 0x12);
}

#[test]
fn ipv6_extension_header_errors() {
    // Too many: MAX + 1 destination options headers.
    let n = dataplane::stage::parse::MAX_EXT_HEADERS + 1;
    let mut chain = Vec::new();
    for i in 0..n {
        chain.extend([if i + 1 == n { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    let f = cat(&[
        &eth(0x86dd),
        &ipv6_hdr(60, chain.len() + 8),
        &chain,
        &udp_hdr(0),
    ]);
    let l = parse(&f);
    assert_eq!(l.error, Some(ParseError::BadExtHeader));
    assert_eq!((l.l3_offset, l.ip_version, l.l4_offset), (14, 6, 0));

    // A length byte that runs past the packet.
    let f = ipv6_with_ext(60, 9, &[1, 4, 0, 0, 0, 0]);
    let l = parse(&f);
    assert_eq!(l.error, Some(ParseError::BadExtHeader));
    assert_eq!(l.payload_offset, 54);

    // A header that fits the frame but not the IPv6 payload length: the
    // rest is Ethernet padding, not a header.
    let mut f = cat(&[&eth(0x86dd), &ipv6_hdr(0, 4), &[17, 0, 1, 4, 0, 0, 0, 0]]);
    f.resize(80, 0);
    assert_eq!(parse(&f).error, Some(ParseError::BadExtHeader));
}

#[test]
fn ipv6_esp_and_no_next_header_are_opaque() {
    for proto in [50u8, 59, 47, 4, 41] {
        let f = cat(&[&eth(0x86dd), &ipv6_hdr(proto, 16), &[0xee; 16]]);
        let l = parse(&f);
        assert_eq!(l.error, None);
        assert_eq!((l.l4_proto, l.l4_offset, l.payload_offset), (proto, 54, 54));
        assert_eq!((l.src_port, l.dst_port), (0, 0));
    }
}

#[test]
fn ipv6_later_fragment_has_no_l4() {
    let frag = [17u8, 0, 0x05, 0xa8, 0, 0, 0, 9]; // offset 181 × 8, no M
    let f = cat(&[&eth(0x86dd), &ipv6_hdr(44, 8 + 30), &frag, &[0x55; 30]]);
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!(l.fragment, Fragment::Later);
    assert_eq!((l.l4_offset, l.l4_proto, l.payload_offset), (0, 17, 62));
    assert_eq!((l.src_port, l.dst_port), (0, 0));
}

#[test]
fn ipv4_fragments() {
    let mut first = ipv4_udp();
    first[14 + 6] = 0x20; // MF, offset 0
    fix_ipv4_checksum(&mut first);
    let l = parse(&first);
    assert_eq!(
        (l.fragment, l.l4_offset, l.dst_port),
        (Fragment::First, 34, 4789)
    );

    let mut later = ipv4_udp();
    later[14 + 6] = 0x00;
    later[14 + 7] = 0xb9; // offset 185 × 8, last fragment
    let l = parse(&later);
    assert_eq!(l.fragment, Fragment::Later);
    assert_eq!((l.l4_offset, l.l4_proto, l.payload_offset), (0, 17, 34));
    assert_eq!((l.src_port, l.dst_port, l.error), (0, 0, None));

    // Only the top bit of the 13-bit offset field set: offset 4096 × 8.
    let mut top = ipv4_udp();
    top[14 + 6] = 0x10;
    top[14 + 7] = 0x00;
    assert_eq!(parse(&top).fragment, Fragment::Later);

    let df = ipv4_udp(); // emit sets DF only
    assert_eq!(parse(&df).fragment, Fragment::None);
}

fn fix_ipv4_checksum(f: &mut [u8]) {
    let mut p = ipv4::Packet::new_unchecked(&mut f[14..34]);
    p.fill_checksum();
}

#[test]
fn ipv4_lengths_that_lie() {
    let good = ipv4_udp();
    let bad_l3 = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        edit(&mut f);
        let l = parse(&f);
        assert_eq!(l.error, Some(ParseError::BadL3));
        assert_eq!((l.l3_offset, l.l4_offset, l.payload_offset), (14, 0, 14));
        assert_eq!(l.l4_proto, 0);
        assert_eq!(l.ip_end, 0, "no end kept for lying lengths");
        l
    };
    bad_l3(&|f| f[14] = 0x44); // IHL 4
    bad_l3(&|f| f[17] = 19); // total < 20
    bad_l3(&|f| f[14] = 0x4f); // IHL 15: 60 bytes, more than the total 38
    let l = bad_l3(&|f| {
        f[16] = 0x01; // total 256+38 > frame
    });
    assert_eq!(l.ip_version, 4, "the header itself was readable");
    assert_eq!(l.src_addr, 0x0a01_0203);
    let l = bad_l3(&|f| f[14] = 0x65); // version 6 under EtherType IPv4
    assert_eq!(l.ip_version, 0);
    bad_l3(&|f| f.truncate(14 + 19));
}

#[test]
fn ipv4_gso_total_length_zero_runs_to_the_end() {
    let mut f = ipv4_udp();
    f[16] = 0;
    f[17] = 0;
    let l = parse(&f);
    assert_eq!(l.error, None);
    assert_eq!((l.l4_offset, l.payload_offset, l.dst_port), (34, 42, 4789));
    assert_eq!(l.ip_end as usize, f.len());
}

#[test]
fn ethernet_padding_is_ignored() {
    // 28-byte IPv4/UDP datagram padded to the 60-byte Ethernet minimum.
    let mut f = cat(&[&eth(0x0800), &ipv4_hdr(17, &[], 8), &udp_hdr(0)]);
    f.resize(60, 0);
    let l = parse(&f);
    assert_eq!((l.error, l.l4_offset, l.payload_offset), (None, 34, 42));
    assert_eq!(l.ip_end, 14 + 28, "the padding is not the packet's");

    // IPv6 says 8 bytes of payload: a TCP header "in" the padding is cut short.
    let mut f = cat(&[&eth(0x86dd), &ipv6_hdr(6, 8), &tcp_hdr(0)]);
    f.resize(80, 0);
    let l = parse(&f);
    assert_eq!(l.error, Some(ParseError::TruncatedL4));
    assert_eq!((l.l4_offset, l.payload_offset), (54, 54));
    assert_eq!(l.ip_end, 14 + 48);
    assert_eq!((l.src_port, l.dst_port), (1234, 80), "ports were inside");
}

#[test]
fn icmp_sctp_and_unknown_transports() {
    let icmp = [8u8, 0, 0, 0, 0, 1, 0, 1];
    let f = cat(&[&eth(0x0800), &ipv4_hdr(1, &[], 8), &icmp]);
    let l = parse(&f);
    assert_eq!((l.l4_proto, l.l4_offset, l.payload_offset), (1, 34, 42));
    assert_eq!((l.src_port, l.dst_port), (0, 0), "ICMP has no ports");

    let f = cat(&[&eth(0x86dd), &ipv6_hdr(58, 8), &[128, 0, 0, 0, 0, 1, 0, 1]]);
    let l = parse(&f);
    assert_eq!((l.l4_proto, l.payload_offset, l.error), (58, 62, None));

    let sctp = [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0];
    let f = cat(&[&eth(0x0800), &ipv4_hdr(132, &[], 12), &sctp]);
    let l = parse(&f);
    assert_eq!((l.src_port, l.dst_port, l.payload_offset), (3000, 3001, 46));

    let f = cat(&[&eth(0x0800), &ipv4_hdr(47, &[], 4), &[0, 0, 0x65, 0x58]]);
    let l = parse(&f);
    assert_eq!((l.l4_proto, l.l4_offset, l.payload_offset), (47, 34, 34));
    assert_eq!(l.error, None);
}

#[test]
fn tcp_data_offset_below_five_is_an_error() {
    let mut f = cat(&[&eth(0x0800), &ipv4_hdr(6, &[], 20), &tcp_hdr(0)]);
    f[34 + 12] = 0x40;
    let l = parse(&f);
    assert_eq!(l.error, Some(ParseError::TruncatedL4));
    assert_eq!((l.src_port, l.payload_offset), (1234, 34));
}

#[test]
fn non_ip_and_runt_frames() {
    let arp = cat(&[&eth(0x0806), &[0u8; 28]]);
    let l = parse(&arp);
    assert_eq!((l.ethertype, l.payload_offset, l.error), (0x0806, 14, None));
    for n in 0..14 {
        assert_eq!(
            parse(&arp[..n]),
            Layers {
                error: Some(ParseError::TruncatedL2),
                ..Layers::default()
            }
        );
    }
}

/// Where each header of a frame starts, to predict the error of a cut.
struct Shape {
    frame: Vec<u8>,
    vlan_end: usize,
    mpls_end: usize,
    l3: usize,
    ipv6: bool,
    l3_end: usize,
    l4_end: usize,
}

fn shapes() -> Vec<Shape> {
    // QinQ / IPv6 / HBH + routing / TCP with options.
    let chain = [vec![43, 0, 1, 4, 0, 0, 0, 0], vec![6, 1, 4, 0], vec![0; 12]].concat();
    let qinq6 = cat(&[
        &eth(0x88a8),
        &tag(10, 0x8100),
        &tag(20, 0x86dd),
        &ipv6_hdr(0, chain.len() + 24 + 5),
        &chain,
        &tcp_hdr(1),
        b"hello",
    ]);
    // VLAN / MPLS ×2 / IPv4 with options / UDP.
    let mpls4 = cat(&[
        &eth(0x8100),
        &tag(30, 0x8847),
        &mpls(1, false),
        &mpls(2, true),
        &ipv4_hdr(17, &[1, 1, 1, 0], 8 + 3),
        &udp_hdr(3),
        b"xyz",
    ]);
    vec![
        Shape {
            vlan_end: 22,
            mpls_end: 22,
            l3: 22,
            ipv6: true,
            l3_end: 22 + 40 + 24,
            l4_end: 22 + 40 + 24 + 24,
            frame: qinq6,
        },
        Shape {
            vlan_end: 18,
            mpls_end: 26,
            l3: 26,
            ipv6: false,
            l3_end: 26 + 24,
            l4_end: 26 + 24 + 8,
            frame: mpls4,
        },
    ]
}

/// Cuts every frame at every byte: with the IP length left as it was, a cut
/// past the IP header start is a lying length (BadL3); with the IP length
/// fixed to the cut, the error names the header that was cut.
#[test]
fn cut_at_every_byte() {
    for s in shapes() {
        assert_eq!(parse(&s.frame).error, None);
        for n in 0..=s.frame.len() {
            let cut = &s.frame[..n];
            let l = parse(cut);
            let expect = if n < 14 {
                Some(ParseError::TruncatedL2)
            } else if n < s.vlan_end {
                Some(ParseError::BadVlan)
            } else if n < s.mpls_end {
                Some(ParseError::BadMpls)
            } else if n == s.mpls_end && s.mpls_end > s.vlan_end {
                // A label stack that ends with the frame carries nothing.
                None
            } else if n < s.frame.len() {
                Some(ParseError::BadL3)
            } else {
                None
            };
            assert_eq!(l.error, expect, "cut at {n}");
            assert!(usize::from(l.payload_offset) <= n, "cut at {n}");
            assert!(usize::from(l.l4_offset) <= n, "cut at {n}");

            if n < s.l3 + if s.ipv6 { 40 } else { 24 } {
                continue;
            }
            // Same cut with the IP length field agreeing with it.
            let mut fixed = cut.to_vec();
            if s.ipv6 {
                let pl = (n - s.l3 - 40) as u16;
                fixed[s.l3 + 4..s.l3 + 6].copy_from_slice(&pl.to_be_bytes());
            } else {
                let tl = (n - s.l3) as u16;
                fixed[s.l3 + 2..s.l3 + 4].copy_from_slice(&tl.to_be_bytes());
            }
            // At n == l3 + 40 the IPv6 payload length becomes 0, which means
            // "to the end of the frame" (jumbo/GSO): the same cut.
            let l = parse(&fixed);
            let expect = if n < s.l3_end {
                Some(ParseError::BadExtHeader)
            } else if n < s.l4_end {
                Some(ParseError::TruncatedL4)
            } else {
                None
            };
            assert_eq!(l.error, expect, "fixed cut at {n}");
            assert_eq!(usize::from(l.l3_offset), s.l3);
            if n >= s.l3_end {
                assert_eq!(usize::from(l.l4_offset), s.l3_end, "fixed cut at {n}");
            }
            if n >= s.l3_end + 4 {
                assert_ne!(l.dst_port, 0, "ports survive a cut after them");
            }
        }
    }
}

#[test]
fn burst_forms_and_counters_agree_with_parse() {
    let frames: Vec<Vec<u8>> = vec![
        ipv4_udp(),
        vec![0u8; 10],
        ipv4_udp()[..20].to_vec(),
        cat(&[&eth(0x0806), &[0u8; 28]]),
    ];
    let slices: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let mut out = [Layers::default(); 8];
    let mut c = ParseCounters::default();
    assert_eq!(parse_burst(&slices, &mut out, &mut c), 4);
    for (f, l) in frames.iter().zip(&out) {
        assert_eq!(*l, parse(f));
    }
    assert_eq!(out[4], Layers::default());
    assert_eq!(c.parsed, 4);
    assert_eq!(c.error(ParseError::TruncatedL2), 1);
    assert_eq!(c.error(ParseError::BadL3), 1);
    assert_eq!(c.total_errors(), 2);

    let vf: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(f)).collect();
    let mut out2 = [Layers::default(); 2];
    let mut c2 = ParseCounters::default();
    assert_eq!(parse_frames(&vf, &mut out2, &mut c2), 2, "limited by out");
    assert_eq!(out2[..], out[..2]);
    assert_eq!((c2.parsed, c2.total_errors()), (2, 1));
}
