//! Decap never panics and never invents bytes: random byte strings and
//! randomly damaged tunnel frames (bytes flipped, cut short) go through it;
//! whatever the outcome, a frame left alone is byte-identical and a
//! decapsulated one is a slice of the input (plus the pushed tag). Also:
//! QinQ-tagged outer frames, and tunnels nested in tunnels up to the limit.

mod common;

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{
    Decap, DecapConfig, DecapError, DecapOutcome, Retag, TunnelKind, VidMap,
};
use dataplane::stage::encap::{EncapMeta, EncapTemplate, TimestampMode, TunnelConfig};
use proptest::prelude::*;

fn decapper(max_layers: u8) -> Decap {
    Decap::new(DecapConfig {
        vxlan_ports: vec![4789, 8472],
        max_layers,
        retag: Some(Retag {
            map: VidMap::Low12,
            pcp: 1,
        }),
        ..DecapConfig::default()
    })
    .expect("decap config")
}

/// Runs decap and checks the invariants that hold for any input.
fn check(d: &mut Decap, input: &[u8]) -> Result<(), TestCaseError> {
    let mut f = VecFrame::new(input);
    match d.decap(&mut f) {
        Ok(DecapOutcome::Decapsulated(info)) => {
            let out = f.data();
            let body = if info.vlan.is_some() {
                prop_assert_eq!(&out[12..14], &[0x81, 0x00]);
                [&out[..12], &out[16..]].concat()
            } else {
                out.to_vec()
            };
            let s = info.stripped;
            prop_assert!(body.len() >= 14);
            prop_assert_eq!(&input[s..s + body.len()], &body[..]);
            prop_assert!(info.layers >= 1);
        }
        _ => prop_assert_eq!(f.data(), input, "a frame not decapsulated is untouched"),
    }
    Ok(())
}

const TUNNELS: [TunnelConfig; 6] = [
    TunnelConfig::vxlan(42),
    TunnelConfig::Geneve { vni: 42 },
    TunnelConfig::L2Gre { key: 42 },
    TunnelConfig::ErspanII { session: 42 },
    TunnelConfig::erspan3(42),
    TunnelConfig::ErspanIII {
        session: 42,
        hw_id: None,
        timestamp: TimestampMode::Us100,
    },
];

fn encapsulated(t: usize, v6: bool, len: usize, seed: u64) -> Vec<u8> {
    let mut tpl = EncapTemplate::new(&encap_config(TUNNELS[t], v6, 1500)).expect("config");
    let mut f = VecFrame::new(&inner_frame(seed & 1 == 0, len, seed));
    tpl.encap(&mut f, &EncapMeta::default(), 5).expect("encap");
    f.data().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&mut decapper(2), &b)?;
    }

    /// Random bytes behind a plausible Ethernet + IPv4/IPv6 + UDP/GRE
    /// start, so the parser gets past the first checks.
    #[test]
    fn random_bytes_behind_tunnel_headers(
        t in 0..TUNNELS.len(), v6 in any::<bool>(), cut in 0usize..120,
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut b = encapsulated(t, v6, 62, 1);
        b.truncate(cut.min(b.len()));
        b.extend_from_slice(&tail);
        check(&mut decapper(2), &b)?;
    }

    #[test]
    fn damaged_tunnel_frames(
        t in 0..TUNNELS.len(), v6 in any::<bool>(), len in 62usize..400, seed in any::<u64>(),
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        cut in proptest::option::of(0usize..500),
    ) {
        let mut b = encapsulated(t, v6, len, seed);
        for (at, x) in flips {
            if let Some(byte) = b.get_mut(at) {
                *byte ^= x;
            }
        }
        if let Some(n) = cut {
            b.truncate(n);
        }
        check(&mut decapper(2), &b)?;
        check(&mut decapper(4), &b)?;
    }
}

#[test]
fn qinq_tagged_outer_frames_decapsulate() {
    let inner = inner_frame(false, 100, 3);
    let mut tpl = EncapTemplate::new(&encap_config(TunnelConfig::vxlan(7), true, 1500)).unwrap();
    let mut f = VecFrame::new(&inner);
    tpl.encap(&mut f, &EncapMeta::default(), 0).unwrap();
    let plain = f.data().to_vec();
    // Insert an 802.1ad S-tag and an 802.1Q C-tag after the MACs.
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8]);
    tagged.extend_from_slice(&plain[12..]);
    let mut d = decapper(2);
    let mut f = VecFrame::new(&tagged);
    let Ok(DecapOutcome::Decapsulated(info)) = d.decap(&mut f) else {
        panic!("QinQ outer frame not decapsulated");
    };
    assert_eq!(info.stripped, plain.len() - inner.len() + 8);
    assert_eq!(info.outer().ip_version, 6);
    // Re-tagged with VNI 7's low bits, then the original frame.
    assert_eq!(&f.data()[12..16], &[0x81, 0x00, 0x20, 0x07]);
    assert_eq!([&f.data()[..12], &f.data()[16..]].concat(), inner);
}

#[test]
fn nested_tunnels_up_to_the_limit() {
    let inner = inner_frame(true, 300, 9);
    let mut erspan =
        EncapTemplate::new(&encap_config(TunnelConfig::erspan3(5), false, 1500)).unwrap();
    let mut vxlan = EncapTemplate::new(&encap_config(TunnelConfig::vxlan(6), true, 1500)).unwrap();
    let mut gre =
        EncapTemplate::new(&encap_config(TunnelConfig::L2Gre { key: 7 }, false, 1500)).unwrap();
    // ERSPAN III inside VXLAN inside L2GRE.
    let mut f = VecFrame::with_room(&inner, 256, 0);
    erspan.encap(&mut f, &EncapMeta::default(), 1).unwrap();
    vxlan.encap(&mut f, &EncapMeta::default(), 1).unwrap();
    let two = f.data().to_vec();
    gre.encap(&mut f, &EncapMeta::default(), 1).unwrap();
    let three = f.data().to_vec();

    let mut d = Decap::new(DecapConfig::default()).unwrap();
    let mut f = VecFrame::new(&two);
    let Ok(DecapOutcome::Decapsulated(info)) = d.decap(&mut f) else {
        panic!("two layers not decapsulated");
    };
    assert_eq!(info.layers, 2);
    assert_eq!(info.outer().kind, TunnelKind::Vxlan);
    assert_eq!(info.innermost().kind, TunnelKind::ErspanIII);
    assert_eq!(info.innermost().id, Some(5));
    assert_eq!(f.data(), &inner[..]);

    // Three layers: beyond the default limit of two.
    let mut f = VecFrame::new(&three);
    assert_eq!(d.decap(&mut f), Err(DecapError::TooDeep));
    assert_eq!(f.data(), &three[..]);
    assert_eq!(d.counters().too_deep, 1);

    // With the limit raised, all three come off.
    let mut d3 = Decap::new(DecapConfig {
        max_layers: 3,
        ..DecapConfig::default()
    })
    .unwrap();
    let mut f = VecFrame::new(&three);
    let Ok(DecapOutcome::Decapsulated(info)) = d3.decap(&mut f) else {
        panic!("three layers not decapsulated");
    };
    assert_eq!((info.layers, info.outer().kind), (3, TunnelKind::L2Gre));
    assert_eq!(info.outer().id, Some(7));
    assert_eq!(f.data(), &inner[..]);
}
