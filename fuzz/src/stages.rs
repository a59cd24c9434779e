//! Target `stages`: one frame through every stage a worker runs, each
//! checked against what its contract says rather than only for panics.
//!
//! Input: three knob bytes, then the frame.
//! - byte 0: input port (bits 0-1), egress (bit 2), tunnel of the NOC
//!   destination (bits 3-5; the IDS takes the next one);
//! - byte 1: outer IPv6 (bit 0), outer VLAN (bit 1), oversize = drop
//!   (bit 2), MTU choice (bits 3-4);
//! - byte 2: the slice length the standalone slice checks use, and where
//!   the chained checks cut the frame into segments (8 × byte 2, and the
//!   middle of what is left).

use dataplane::frame::{ChainFrame, Frame, VecFrame};
use dataplane::stage::decap::{Classified, Decap, DecapConfig, DecapError, MAX_LAYERS};
use dataplane::stage::dedup::{Dedup, DedupConfig, Verdict};
use dataplane::stage::encap::{EncapError, EncapMeta, EncapTemplate, MAX_HEADER_LEN};
use dataplane::stage::filter::{Action, FlowCache};
use dataplane::stage::parse::{self, Fragment, Layers, ParseError};
use dataplane::stage::slice::{keep_len, slice, SliceSpec};
use dataplane::stage::tag::TagInfo;
use dataplane::stage::Direction;

use crate::fixtures;

const MTUS: [u16; 4] = [1500, 9000, 1280, 65535];
/// Some time (ns since the epoch) for dedup and ERSPAN III timestamps.
const NOW_NS: u64 = 1_700_000_000_123_456_789;

pub fn run(data: &[u8]) {
    let [b0, b1, b2, ref frame @ ..] = *data else {
        return;
    };
    let in_port = u16::from(b0 & 3);
    let dir = if b0 & 4 != 0 {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    let layers = parse::parse(frame);
    check_layers(frame, &layers);
    // The burst entry point agrees with the single-frame one.
    let mut out = [Layers::default(); 1];
    let mut counters = parse::ParseCounters::default();
    parse::parse_burst(&[frame], &mut out, &mut counters);
    assert_eq!(out[0], layers, "parse_burst disagrees with parse");
    assert_eq!(counters.total_errors(), u64::from(layers.error.is_some()));

    let action = check_filter(&layers, in_port, dir);
    check_dedup(frame, &layers);
    check_chained(frame, &layers, usize::from(b2) * 8);
    for spec in [
        SliceSpec::Whole,
        SliceSpec::Bytes(u16::from(b2) * 3),
        SliceSpec::AfterL4(u16::from(b2)),
    ] {
        check_slice(frame, &layers, spec);
    }

    // The TAP-aggregation path: every destination the verdict names gets
    // its own copy, sliced, tagged and encapsulated.
    if let Action::Forward(dests) = action {
        for d in dests {
            let t = usize::from(b0 >> 3) + usize::from(d.dest);
            let mtu = MTUS[usize::from(b1 >> 3) & 3];
            let mut tpl = fixtures::template(t, b1 & 1 != 0, b1 & 2 != 0, mtu, b1 & 4 != 0);
            let mut f = VecFrame::new(frame);
            let cut = slice(&mut f, &layers, d.slice);
            let meta = EncapMeta {
                layers: Some(&layers),
                flow_hash: None,
                tag: TagInfo {
                    appliance_id: u16::from(b2),
                    input_port: in_port,
                    rule_id: 7,
                    direction: dir,
                },
                tag_override: d.tag,
                sliced: cut.truncated(),
            };
            check_encap_decap(&mut tpl, f, &meta);
        }
    }
}

/// What must hold of parse's answer for any input.
fn check_layers(f: &[u8], l: &Layers) {
    let len = f.len();
    assert!(usize::from(l.l3_offset) <= len, "l3 past the end: {l:?}");
    assert!(usize::from(l.l4_offset) <= len, "l4 past the end: {l:?}");
    assert!(
        usize::from(l.payload_offset) <= len,
        "payload past the end: {l:?}"
    );
    if len < 14 {
        assert_eq!(l.error, Some(ParseError::TruncatedL2));
    }
    if l.l4_offset != 0 {
        assert!(l.l3_offset >= 14 && l.l4_offset > l.l3_offset, "{l:?}");
        assert!(l.payload_offset >= l.l4_offset, "{l:?}");
        assert!(l.fragment != Fragment::Later, "{l:?}");
    }
    if l.ip_version == 0 {
        assert_eq!((l.src_addr, l.dst_addr, l.l4_offset), (0, 0, 0), "{l:?}");
    } else {
        assert!(matches!(l.ip_version, 4 | 6), "{l:?}");
    }
    if l.ip_version == 4 {
        assert!(l.src_addr <= u128::from(u32::MAX) && l.dst_addr <= u128::from(u32::MAX));
    }
    assert!(usize::from(l.vlan_count) <= parse::MAX_VLAN_TAGS, "{l:?}");
    assert!(
        usize::from(l.mpls_labels) <= parse::MAX_MPLS_LABELS,
        "{l:?}"
    );
    assert_eq!(l.outer_vlan.is_some(), l.vlan_count >= 1, "{l:?}");
    assert_eq!(l.inner_vlan.is_some(), l.vlan_count >= 2, "{l:?}");
}

/// The classifier agrees with the flow cache and with the rules read one
/// by one.
fn check_filter(l: &Layers, in_port: u16, dir: Direction) -> Action {
    let cls = fixtures::classifier();
    let v = cls.classify(l, in_port, dir);
    let mut cache = FlowCache::new(64);
    assert_eq!(cls.classify_cached(&mut cache, l, in_port, dir), v);
    assert_eq!(
        cls.classify_cached(&mut cache, l, in_port, dir),
        v,
        "a cached verdict changed"
    );
    let want = fixtures::rules()
        .iter()
        .position(|r| fixtures::naive_matches(&r.matches, l, in_port, dir));
    assert_eq!(
        v.rule_index(),
        want,
        "classifier and the rules read one by one disagree on {l:?} port {in_port} {dir:?}"
    );
    cls.action(v).clone()
}

/// A packet is unique once, then a duplicate; so is its copy from another
/// mirror point (other MACs, no VLAN tags, TTL/hop limit one lower, other
/// IPv4 checksum); after the window it is unique again.
fn check_dedup(frame: &[u8], l: &Layers) {
    let cfg = DedupConfig {
        entries: 64,
        window_us: 1000,
        seed: 1,
        ..DedupConfig::default()
    };
    let mut d = Dedup::new(&cfg).expect("dedup config");
    let f = VecFrame::new(frame);
    assert_eq!(d.check(&f, l, NOW_NS), Verdict::Unique);
    assert_eq!(d.check(&f, l, NOW_NS + 1_000), Verdict::Duplicate);

    let tags = 4 * usize::from(l.vlan_count);
    if l.error.is_none()
        && frame.len() >= 14 + tags
        && usize::from(l.vlan_count) < parse::MAX_VLAN_TAGS
    {
        let mut copy = Vec::with_capacity(frame.len());
        copy.extend_from_slice(&frame[..12]);
        copy.extend_from_slice(&frame[12 + tags..]);
        if l.ip_version != 0 {
            copy[..12].copy_from_slice(&[2, 0, 0, 0, 0x99, 0x99, 2, 0, 0, 0, 0x88, 0x88]);
            let ip = usize::from(l.l3_offset) - tags;
            let hop = ip + if l.ip_version == 4 { 8 } else { 7 };
            if let Some(b) = copy.get_mut(hop) {
                *b = b.wrapping_sub(1);
            }
            if l.ip_version == 4 {
                if let Some(c) = copy.get_mut(ip + 10..ip + 12) {
                    c.copy_from_slice(&[0xab, 0xcd]);
                }
            }
        }
        let cl = parse::parse(&copy);
        let same_place = if l.ip_version != 0 {
            usize::from(cl.l3_offset) + tags == usize::from(l.l3_offset)
        } else {
            cl.vlan_count == 0
        };
        if cl.ip_version == l.ip_version && same_place {
            assert_eq!(
                d.check(&VecFrame::new(&copy), &cl, NOW_NS + 2_000),
                Verdict::Duplicate,
                "a mirror copy was not a duplicate: {l:?} / {cl:?}"
            );
        }
    }
    let later = NOW_NS + u64::from(cfg.window_us) * 1000;
    assert_eq!(
        d.check(&f, l, later),
        Verdict::Unique,
        "the window did not end"
    );
    let c = d.counters();
    assert_eq!(c.checked, c.hits + c.inserts);
}

/// The same frame as a chain of segments cut at `cut` and half-way after
/// it (a jumbo frame in mbufs): parse sees what it saw in one buffer when
/// the first segment holds every header of a well-formed frame, and keeps
/// to the frame whatever the cut; dedup keys it exactly as the same bytes in
/// one buffer; slicing keeps the same bytes.
fn check_chained(frame: &[u8], l: &Layers, cut: usize) {
    let cuts = [cut, cut + frame.len().saturating_sub(cut) / 2];
    let chain = ChainFrame::new(frame, &cuts);
    assert_eq!(chain.to_vec(), frame);
    let cl = parse::parse_frame(&chain);
    check_layers(frame, &cl);
    if l.error.is_none() && chain.data().len() >= usize::from(l.payload_offset) {
        assert_eq!(&cl, l, "a chain cut at {cut} parsed otherwise");
    }
    let d = Dedup::new(&DedupConfig {
        entries: 64,
        seed: 2,
        ..DedupConfig::default()
    })
    .expect("dedup config");
    assert_eq!(
        d.fingerprint_frame(&chain, l),
        d.fingerprint(frame, l),
        "a chain cut at {cut} keyed otherwise"
    );
    for spec in [SliceSpec::Bytes(cut as u16), SliceSpec::AfterL4(8)] {
        let mut c = chain.clone();
        slice(&mut c, l, spec);
        let mut v = VecFrame::new(frame);
        slice(&mut v, l, spec);
        assert_eq!(c.to_vec(), v.data(), "{spec:?} of a chain cut at {cut}");
    }
}

/// Slicing keeps exactly the front `keep_len` says, never more than there is.
fn check_slice(frame: &[u8], l: &Layers, spec: SliceSpec) {
    let mut f = VecFrame::new(frame);
    let out = slice(&mut f, l, spec);
    let keep = keep_len(l, spec).unwrap_or(usize::MAX).min(frame.len());
    assert_eq!(f.data(), &frame[..keep], "{spec:?} kept the wrong bytes");
    assert_eq!(out.removed, frame.len() - keep);
}

fn decapper() -> Decap {
    Decap::new(DecapConfig {
        vxlan_ports: vec![4789, 8472],
        max_layers: MAX_LAYERS as u8,
        ..DecapConfig::default()
    })
    .expect("decap config")
}

/// Encap prepends exactly the template's header (cutting the frame to the
/// MTU or refusing it as configured), and decap of the result gives back
/// what was put in — or what decap of the inner frame alone would.
fn check_encap_decap(tpl: &mut EncapTemplate, mut f: VecFrame, meta: &EncapMeta<'_>) {
    let before = f.data().to_vec();
    let hl = tpl.header_len();
    assert!(hl <= MAX_HEADER_LEN);
    let max = tpl.max_inner_len();
    match tpl.encap(&mut f, meta, NOW_NS) {
        Ok(()) => {
            let inner = before.len().min(max);
            assert_eq!(f.pkt_len(), hl + inner);
            assert_eq!(
                &f.data()[hl..],
                &before[..inner],
                "encap changed the inner frame"
            );
            assert_eq!(
                &f.data()[..14],
                &tpl.header()[..14],
                "outer Ethernet header"
            );
        }
        Err(EncapError::TooBig) => {
            assert!(before.len() > max, "refused a frame that fits");
            assert_eq!(f.data(), &before[..], "a refused frame was changed");
            return;
        }
        Err(e) => panic!("encap failed with room to spare: {e}"),
    }
    let outer = f.data().to_vec();
    let inner = &outer[hl..];
    let d = decapper();
    let got = d.classify(&outer, outer.len());
    if inner.len() < 14 {
        assert!(
            !matches!(got, Ok(Classified::Ethernet { .. })),
            "decap found an Ethernet frame in {} bytes: {got:?}",
            inner.len()
        );
        return;
    }
    match d.classify(inner, inner.len()) {
        Ok(Classified::Ethernet { start, end, info }) if usize::from(info.layers) < MAX_LAYERS => {
            let Ok(Classified::Ethernet {
                start: s,
                end: e,
                info: i,
            }) = got
            else {
                panic!("tunnel in tunnel not decapsulated: {got:?}");
            };
            assert_eq!((s, e, i.layers), (hl + start, hl + end, info.layers + 1));
        }
        Ok(Classified::Ethernet { .. }) | Err(DecapError::TooDeep) => {
            assert_eq!(got, Err(DecapError::TooDeep));
        }
        _ => {
            let Ok(Classified::Ethernet { start, end, info }) = got else {
                panic!("our own tunnel not decapsulated: {got:?}");
            };
            assert_eq!((start, end, info.layers), (hl, outer.len(), 1));
        }
    }
}
