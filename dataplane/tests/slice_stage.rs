//! slice stage: what is kept, edges, chained frames, counters, fit_to.

use dataplane::frame::{Frame, FrameError, VecFrame};
use dataplane::stage::parse::Layers;
use dataplane::stage::slice::{
    fit_to, keep_len, slice, slice_burst, SliceCounters, SliceOutcome, SliceSpec,
};
use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};
use proptest::prelude::*;

/// A chained mbuf stand-in: `data()` is the first segment only.
#[derive(Clone, Debug)]
struct Chained {
    segs: Vec<Vec<u8>>,
}

impl Chained {
    fn new(bytes: &[u8], first: usize) -> Self {
        let (a, b) = bytes.split_at(first.min(bytes.len()));
        Self {
            segs: vec![a.to_vec(), b.to_vec()],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.segs.concat()
    }
}

impl Frame for Chained {
    fn data(&self) -> &[u8] {
        &self.segs[0]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.segs[0]
    }
    fn pkt_len(&self) -> usize {
        self.segs.iter().map(Vec::len).sum()
    }
    fn headroom(&self) -> usize {
        0
    }
    fn prepend(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        Err(FrameError::NoHeadroom { need: len, have: 0 })
    }
    fn adj(&mut self, len: usize) -> Result<(), FrameError> {
        Err(FrameError::TooShort { need: len, have: 0 })
    }
    fn trim(&mut self, mut len: usize) -> Result<(), FrameError> {
        if len > self.pkt_len() {
            return Err(FrameError::TooShort {
                need: len,
                have: self.pkt_len(),
            });
        }
        for s in self.segs.iter_mut().rev() {
            let cut = len.min(s.len());
            s.truncate(s.len() - cut);
            len -= cut;
        }
        Ok(())
    }
    fn append(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        Err(FrameError::NoTailroom { need: len, have: 0 })
    }
}

/// Ethernet + IPv4 + TCP with MSS, SACK-permitted and timestamp options
/// (a 36-byte TCP header) and `payload`, with the layers parse reports.
fn tcp_with_options(payload: &[u8]) -> (Vec<u8>, Layers) {
    let mut tcp = TcpHeader::new(40000, 443, 7, 65535);
    tcp.syn = true;
    tcp.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 2),
    ])
    .unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp_header(tcp)
        .write(&mut v, payload)
        .unwrap();
    assert_eq!(usize::from(v[14 + 20 + 12] >> 4) * 4, 36, "options present");
    let layers = Layers {
        ethertype: 0x0800,
        l3_offset: 14,
        ip_version: 4,
        l4_proto: 6,
        l4_offset: 34,
        payload_offset: 70,
        ..Layers::default()
    };
    (v, layers)
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

// In a module so that `cargo test slice` selects these tests by name.
mod slice {
    use super::*;

    #[test]
    fn bytes_keeps_exactly_the_first_n() {
        let data = bytes(100);
        let l = Layers::default();
        for (n, want_len) in [
            (0, 0),
            (1, 1),
            (60, 60),
            (99, 99),
            (100, 100),
            (101, 100),
            (u16::MAX, 100),
        ] {
            let mut f = VecFrame::new(&data);
            let out = slice(&mut f, &l, SliceSpec::Bytes(n));
            assert_eq!(f.data(), &data[..want_len], "n={n}");
            assert_eq!(out.removed, 100 - want_len, "n={n}");
            assert_eq!(out.truncated(), want_len < 100, "n={n}");
        }
    }

    #[test]
    fn whole_never_cuts() {
        let data = bytes(1500);
        let mut f = VecFrame::new(&data);
        assert_eq!(
            slice(&mut f, &Layers::default(), SliceSpec::Whole),
            SliceOutcome::default()
        );
        assert_eq!(f.data(), &data[..]);
        assert_eq!(keep_len(&Layers::default(), SliceSpec::Whole), None);
    }

    #[test]
    fn after_l4_keeps_tcp_options_and_leaves_headers_alone() {
        let (data, l) = tcp_with_options(&bytes(200));
        assert_eq!(data.len(), 70 + 200);
        for (n, want_len) in [
            (0u16, 70),
            (1, 71),
            (64, 134),
            (200, 270),
            (201, 270),
            (5000, 270),
        ] {
            let mut f = VecFrame::new(&data);
            let out = slice(&mut f, &l, SliceSpec::AfterL4(n));
            assert_eq!(f.data(), &data[..want_len], "n={n}");
            assert_eq!(out.removed, data.len() - want_len, "n={n}");
            // The IP total length still tells the original size.
            assert_eq!(
                u16::from_be_bytes([f.data()[16], f.data()[17]]),
                20 + 36 + 200
            );
        }
    }

    #[test]
    fn after_l4_without_l4_keeps_the_headers_parse_found() {
        let data = bytes(120);
        // ARP: parse ends at the EtherType (after one VLAN tag here).
        let arp = Layers {
            vlan_count: 1,
            ethertype: 0x0806,
            payload_offset: 18,
            ..Layers::default()
        };
        // IPv4 carrying GRE, which parse does not open: headers end after IPv4.
        let gre = Layers {
            ethertype: 0x0800,
            l3_offset: 14,
            ip_version: 4,
            l4_proto: 47,
            payload_offset: 34,
            ..Layers::default()
        };
        // A later IPv4 fragment: no L4 header at all.
        let frag = Layers {
            l3_offset: 14,
            ip_version: 4,
            l4_proto: 6,
            payload_offset: 34,
            ..gre
        };
        // Nothing parsed (a runt): offsets are all 0, so the first N bytes.
        let runt = Layers::default();
        // A parse that stopped at L4 without a payload offset still keeps L4's start.
        let cut_short = Layers {
            l3_offset: 14,
            ip_version: 4,
            l4_offset: 34,
            payload_offset: 0,
            ..Layers::default()
        };
        for (name, l, want) in [
            ("arp", arp, 18 + 10),
            ("gre", gre, 34 + 10),
            ("frag", frag, 34 + 10),
            ("runt", runt, 10),
            ("cut_short", cut_short, 34 + 10),
        ] {
            let mut f = VecFrame::new(&data);
            slice(&mut f, &l, SliceSpec::AfterL4(10));
            assert_eq!(f.data(), &data[..want], "{name}");
        }
    }

    #[test]
    fn a_frame_shorter_than_the_cut_is_untouched() {
        let (data, l) = tcp_with_options(&bytes(5));
        let mut f = VecFrame::new(&data);
        let out = slice(&mut f, &l, SliceSpec::AfterL4(6));
        assert_eq!(out, SliceOutcome { removed: 0 });
        assert!(!out.truncated());
        assert_eq!(f.data(), &data[..]);
        // Even a frame shorter than the headers parse claims.
        let mut short = VecFrame::new(&data[..40]);
        assert_eq!(slice(&mut short, &l, SliceSpec::AfterL4(0)).removed, 0);
        assert_eq!(short.data(), &data[..40]);
    }

    #[test]
    fn chained_frames_are_cut_over_their_whole_length() {
        let (data, l) = tcp_with_options(&bytes(3000));
        // Cut inside the second segment, at the boundary, and inside the first.
        for (spec, want_len) in [
            (SliceSpec::AfterL4(2500), 70 + 2500),
            (SliceSpec::Bytes(2048), 2048),
            (SliceSpec::Bytes(100), 100),
            (SliceSpec::AfterL4(3000), data.len()),
        ] {
            let mut f = Chained::new(&data, 2048);
            let out = slice(&mut f, &l, spec);
            assert_eq!(f.bytes(), &data[..want_len], "{spec:?}");
            assert_eq!(f.pkt_len(), want_len);
            assert_eq!(out.removed, data.len() - want_len);
        }
    }

    #[test]
    fn fit_to_truncates_to_the_room_left_by_the_tunnel() {
        // 1500-byte uplink MTU, ERSPAN II over IPv4: 20 + 8 + 8 = 36 bytes of
        // outer IP, GRE and ERSPAN header; the inner frame gets the rest.
        let room = 1500 - 36;
        let data = bytes(1514);
        let mut f = VecFrame::new(&data);
        let out = fit_to(&mut f, room);
        assert_eq!(out.removed, 1514 - room);
        assert!(out.truncated());
        assert_eq!(f.data(), &data[..room]);
        assert_eq!(fit_to(&mut f, room), SliceOutcome::default());
        assert_eq!(fit_to(&mut f, 9000), SliceOutcome::default());
        assert_eq!(f.pkt_len(), room);
        let mut c = Chained::new(&data, 1000);
        assert_eq!(fit_to(&mut c, 999).removed, 515);
        assert_eq!(c.bytes(), &data[..999]);
    }

    #[test]
    fn a_burst_is_sliced_and_counted() {
        let (big, l) = tcp_with_options(&bytes(400));
        let (small, _) = tcp_with_options(&bytes(4));
        let mut frames = vec![
            VecFrame::new(&big),
            VecFrame::new(&small),
            VecFrame::new(&big),
        ];
        let layers = [l; 3];
        let mut c = SliceCounters::default();
        slice_burst(&mut frames, &layers, SliceSpec::AfterL4(8), &mut c);
        assert_eq!(
            frames.iter().map(Frame::pkt_len).collect::<Vec<_>>(),
            [78, small.len(), 78]
        );
        assert_eq!(
            c,
            SliceCounters {
                sliced: 2,
                bytes_removed: 2 * (big.len() as u64 - 78),
            }
        );
        // Whole is a no-op, and only as many frames as layers are sliced.
        slice_burst(&mut frames, &layers, SliceSpec::Whole, &mut c);
        let mut more = vec![VecFrame::new(&big), VecFrame::new(&big)];
        slice_burst(&mut more, &layers[..1], SliceSpec::Bytes(10), &mut c);
        assert_eq!((more[0].pkt_len(), more[1].pkt_len()), (10, big.len()));
        assert_eq!(c.sliced, 3);
        c.record(SliceOutcome { removed: 0 });
        assert_eq!(c.sliced, 3);
    }

    fn arb_spec() -> impl Strategy<Value = SliceSpec> {
        prop_oneof![
            Just(SliceSpec::Whole),
            any::<u16>().prop_map(SliceSpec::Bytes),
            (0u16..300).prop_map(SliceSpec::Bytes),
            any::<u16>().prop_map(SliceSpec::AfterL4),
            (0u16..300).prop_map(SliceSpec::AfterL4),
        ]
    }

    proptest! {
        #[test]
        fn the_result_is_always_a_prefix_of_the_right_length(
            data in prop::collection::vec(any::<u8>(), 0..400),
            spec in arb_spec(),
            l3 in 0u16..200,
            l4 in 0u16..250,
            payload in 0u16..300,
            first_seg in 0usize..400,
            chained in any::<bool>(),
        ) {
            let l = Layers { l3_offset: l3, l4_offset: l4, payload_offset: payload, ..Layers::default() };
            let want_len = match spec {
                SliceSpec::Whole => data.len(),
                SliceSpec::Bytes(n) => data.len().min(usize::from(n)),
                SliceSpec::AfterL4(n) => data.len().min(usize::from(l3.max(l4).max(payload)) + usize::from(n)),
            };
            let (out, got) = if chained {
                let mut f = Chained::new(&data, first_seg);
                (slice(&mut f, &l, spec), f.bytes())
            } else {
                let mut f = VecFrame::new(&data);
                (slice(&mut f, &l, spec), f.data().to_vec())
            };
            prop_assert_eq!(&got[..], &data[..want_len]);
            prop_assert_eq!(out.removed, data.len() - want_len);
            prop_assert_eq!(out.truncated(), want_len < data.len());
        }
    }
}
