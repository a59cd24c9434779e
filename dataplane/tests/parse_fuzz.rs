//! Property tests of the parse stage: random and mangled bytes never make it
//! panic or point past the frame, and frames built by an independent
//! builder (etherparse's `PacketBuilder`) parse to exactly what was built.

use dataplane::frame::ChainFrame;
use dataplane::stage::parse::{parse, parse_frame, Fragment, Layers, ParseError};
use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader, VlanId};
use proptest::prelude::*;

/// What must hold for any input, well-formed or not.
fn check_invariants(f: &[u8], l: &Layers) -> Result<(), TestCaseError> {
    let len = f.len();
    prop_assert!(usize::from(l.l3_offset) <= len);
    prop_assert!(usize::from(l.l4_offset) <= len);
    prop_assert!(usize::from(l.payload_offset) <= len);
    if len < 14 {
        prop_assert_eq!(l.error, Some(ParseError::TruncatedL2));
    }
    if l.l4_offset != 0 {
        prop_assert!(l.l3_offset >= 14 && l.l4_offset > l.l3_offset);
        prop_assert!(l.payload_offset >= l.l4_offset);
        prop_assert!(l.fragment != Fragment::Later);
    }
    if l.ip_version == 0 {
        prop_assert_eq!((l.src_addr, l.dst_addr, l.l4_offset), (0, 0, 0));
    }
    if l.ip_version == 4 {
        prop_assert!(l.src_addr <= u128::from(u32::MAX));
    }
    prop_assert!(usize::from(l.vlan_count) <= dataplane::stage::parse::MAX_VLAN_TAGS);
    prop_assert_eq!(l.outer_vlan.is_some(), l.vlan_count >= 1);
    prop_assert_eq!(l.inner_vlan.is_some(), l.vlan_count >= 2);
    Ok(())
}

/// A frame that starts like something parse knows, then goes random: it
/// reaches the VLAN/MPLS/IP/L4 code instead of stopping at an unknown
/// EtherType as most random bytes do.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    let ethertype = prop::sample::select(vec![
        0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8847, 0x8848, 0x0806,
    ]);
    let first = prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x44, 0x00]);
    let proto = prop::sample::select(vec![6u8, 17, 1, 58, 132, 0, 43, 44, 51, 60, 135, 50]);
    (
        ethertype,
        first,
        proto,
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(t, first, proto, mut tail)| {
            let mut f = vec![0u8; 12];
            f.extend(t.to_be_bytes());
            // Seed the byte where an IP header would start and its protocol
            // field so the random rest is read as IP more often.
            if !tail.is_empty() {
                tail[0] = first;
            }
            if tail.len() > 9 {
                tail[if first >> 4 == 6 { 6 } else { 9 }] = proto;
            }
            if tail.len() > 3 && first >> 4 == 4 {
                let total = tail.len() as u16;
                tail[2..4].copy_from_slice(&total.to_be_bytes());
            }
            f.extend(tail);
            f
        })
}

type SetFlag = fn(PacketBuilderStep<TcpHeader>) -> PacketBuilderStep<TcpHeader>;

/// What an independent builder put in a frame.
#[derive(Debug, Clone)]
struct Built {
    vlans: Vec<u16>,
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    tcp: bool,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: Vec<u8>,
}

fn built() -> impl Strategy<Value = Built> {
    (
        proptest::collection::vec(0u16..4096, 0..=2),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<bool>(),
        (any::<u16>(), any::<u16>(), any::<u8>()),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(vlans, v6, src, dst, tcp, (sport, dport, flags), payload)| Built {
                vlans,
                v6,
                src,
                dst,
                tcp,
                sport,
                dport,
                flags,
                payload,
            },
        )
}

fn build(b: &Built) -> Vec<u8> {
    let mac_a = [2, 0, 0, 0, 0, 1];
    let mac_b = [2, 0, 0, 0, 0, 2];
    let v4 = |a: &[u8; 16]| [a[0], a[1], a[2], a[3]];
    let eth = PacketBuilder::ethernet2(mac_a, mac_b);
    // The builder's steps have distinct types, hence one arm per shape.
    let ip = match b.vlans[..] {
        [] if b.v6 => eth.ipv6(b.src, b.dst, 64),
        [] => eth.ipv4(v4(&b.src), v4(&b.dst), 64),
        [v] => {
            let s = eth.single_vlan(VlanId::try_new(v).unwrap());
            if b.v6 {
                s.ipv6(b.src, b.dst, 64)
            } else {
                s.ipv4(v4(&b.src), v4(&b.dst), 64)
            }
        }
        [o, i, ..] => {
            let s = eth.double_vlan(VlanId::try_new(o).unwrap(), VlanId::try_new(i).unwrap());
            if b.v6 {
                s.ipv6(b.src, b.dst, 64)
            } else {
                s.ipv4(v4(&b.src), v4(&b.dst), 64)
            }
        }
    };
    let mut out = Vec::new();
    if b.tcp {
        let setters: [(u8, SetFlag); 8] = [
            (0x01, |t| t.fin()),
            (0x02, |t| t.syn()),
            (0x04, |t| t.rst()),
            (0x08, |t| t.psh()),
            (0x10, |t| t.ack(7)),
            (0x20, |t| t.urg(1)),
            (0x40, |t| t.ece()),
            (0x80, |t| t.cwr()),
        ];
        let mut t = ip.tcp(b.sport, b.dport, 1, 1000);
        for (bit, set) in setters {
            if b.flags & bit != 0 {
                t = set(t);
            }
        }
        t.write(&mut out, &b.payload).unwrap();
    } else {
        ip.udp(b.sport, b.dport)
            .write(&mut out, &b.payload)
            .unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(f in proptest::collection::vec(any::<u8>(), 0..256)) {
        let l = parse(&f);
        check_invariants(&f, &l)?;
    }

    #[test]
    fn plausible_frames_never_panic(f in plausible_frame()) {
        let l = parse(&f);
        check_invariants(&f, &l)?;
        for n in 0..f.len() {
            check_invariants(&f[..n], &parse(&f[..n]))?;
        }
    }

    #[test]
    fn built_frames_parse_to_what_was_built(b in built()) {
        let f = build(&b);
        let l = parse(&f);
        check_invariants(&f, &l)?;
        prop_assert_eq!(l.error, None);
        prop_assert_eq!(usize::from(l.vlan_count), b.vlans.len());
        prop_assert_eq!(l.outer_vlan, b.vlans.first().copied());
        prop_assert_eq!(l.inner_vlan, b.vlans.get(1).copied());
        prop_assert_eq!(l.ethertype, if b.v6 { 0x86dd } else { 0x0800 });
        let l3 = 14 + 4 * b.vlans.len();
        prop_assert_eq!(usize::from(l.l3_offset), l3);
        let (l4, src, dst) = if b.v6 {
            (l3 + 40, u128::from_be_bytes(b.src), u128::from_be_bytes(b.dst))
        } else {
            let v4 = |a: &[u8; 16]| u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
            (l3 + 20, v4(&b.src), v4(&b.dst))
        };
        prop_assert_eq!(l.ip_version, if b.v6 { 6 } else { 4 });
        prop_assert_eq!((l.src_addr, l.dst_addr), (src, dst));
        prop_assert_eq!(usize::from(l.l4_offset), l4);
        prop_assert_eq!(l.l4_proto, if b.tcp { 6 } else { 17 });
        prop_assert_eq!((l.src_port, l.dst_port), (b.sport, b.dport));
        prop_assert_eq!(l.tcp_flags, if b.tcp { b.flags } else { 0 });
        prop_assert_eq!(usize::from(l.payload_offset), f.len() - b.payload.len());
        prop_assert_eq!(l.fragment, Fragment::None);
    }

    #[test]
    fn mangled_built_frames_never_panic(
        b in built(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = build(&b);
        for (at, v) in edits {
            let i = at.index(f.len());
            f[i] = v;
        }
        let n = cut.index(f.len() + 1);
        check_invariants(&f, &parse(&f))?;
        check_invariants(&f[..n], &parse(&f[..n]))?;
    }

    /// A chained frame (a jumbo frame in mbufs) parses as the same bytes in
    /// one segment do as long as its first segment holds every header,
    /// however far the packet runs on past it.
    #[test]
    fn chained_frames_parse_like_the_same_bytes_in_one_segment(
        b in built(),
        more in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let f = build(&Built { payload: [b.payload.clone(), more].concat(), ..b });
        let whole = parse(&f);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(f.len() + 1)).collect();
        at.sort_unstable();
        let chained = parse_frame(&ChainFrame::new(&f, &at));
        check_invariants(&f, &chained)?;
        if at[0] >= usize::from(whole.payload_offset) {
            prop_assert_eq!(chained, whole);
        }
    }

    /// Whatever the bytes and wherever the segments are cut, parse keeps to
    /// the frame.
    #[test]
    fn chained_plausible_frames_never_panic(f in plausible_frame(), cut in any::<prop::sample::Index>()) {
        let at = cut.index(f.len() + 1);
        check_invariants(&f, &parse_frame(&ChainFrame::new(&f, &[at])))?;
    }

    #[test]
    fn padding_after_the_ip_packet_changes_nothing(b in built(), pad in proptest::collection::vec(any::<u8>(), 1..40)) {
        let f = build(&b);
        let mut padded = f.clone();
        padded.extend(pad);
        prop_assert_eq!(parse(&padded), parse(&f));
    }
}
