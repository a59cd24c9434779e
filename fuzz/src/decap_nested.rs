//! Target `decap_nested`: decap alone, on the frame as it comes and on the
//! frame wrapped in up to three of our own tunnels.
//!
//! Input: three knob bytes, then the frame.
//! - byte 0: `max_layers` - 1 (bits 0-1), re-tagging (bits 2-3: none,
//!   low 12 bits, a table, low 12 bits with PCP 7), wrappings (bits 4-5);
//! - bytes 1-2 (little end first): each wrapping's tunnel (3 bits each,
//!   from the inside out) and outer IPv6 (bits 9-11).

use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{
    Classified, Decap, DecapConfig, DecapError, DecapOutcome, Retag, VidMap, MAX_LAYERS,
};
use dataplane::stage::encap::EncapMeta;

use crate::fixtures;

fn decapper(max_layers: u8, retag: u8) -> Decap {
    let retag = match retag & 3 {
        0 => None,
        1 => Some(Retag {
            map: VidMap::Low12,
            pcp: 0,
        }),
        2 => Some(Retag {
            map: VidMap::Table {
                entries: vec![(100, 10), (77, 4094), (7, 1), (0x00ab_cdef, 2)],
                default: Some(3),
            },
            pcp: 3,
        }),
        _ => Some(Retag {
            map: VidMap::Low12,
            pcp: 7,
        }),
    };
    Decap::new(DecapConfig {
        vxlan_ports: vec![4789, 8472],
        max_layers,
        retag,
        ..DecapConfig::default()
    })
    .expect("decap config")
}

pub fn run(data: &[u8]) {
    let [b0, b1, b2, ref frame @ ..] = *data else {
        return;
    };
    let max = (b0 & 3) + 1;
    let mut d = decapper(max, b0 >> 2);
    check_one(&mut d, frame);

    // Wrap the frame in `k` tunnels of our own making.
    let k = usize::from((b0 >> 4) & 3);
    if k == 0 {
        return;
    }
    let picks = u16::from_le_bytes([b1, b2]);
    let mut f = VecFrame::with_room(frame, 512, 0);
    let mut once = None;
    for i in 0..k {
        let t = usize::from(picks >> (3 * i)) & 7;
        let v6 = picks & (1 << (9 + i)) != 0;
        let mut tpl = fixtures::template(t, v6, false, 65535, true);
        if tpl.encap(&mut f, &EncapMeta::default(), 1).is_err() {
            // Too big for one more tunnel: nothing to predict.
            return;
        }
        if i == 0 {
            once = Some(f.data().to_vec());
        }
    }
    let wrapped = f.data().to_vec();
    let once = once.expect("k >= 1");

    // What decap must make of it, from what it makes of the frame alone.
    let alone = decapper(MAX_LAYERS as u8, 0).classify(frame, frame.len());
    let (depth, inner): (usize, &[u8]) = if frame.len() < 14 {
        // The innermost wrapping carries no whole Ethernet header: it is
        // malformed, and so the payload of the tunnels around it.
        (k - 1, &once)
    } else {
        match alone {
            Ok(Classified::Ethernet { start, end, info }) => {
                (k + usize::from(info.layers), &frame[start..end])
            }
            Err(DecapError::TooDeep) => (usize::MAX, frame),
            _ => (k, frame),
        }
    };
    let mut d = decapper(max, 0);
    let mut f = VecFrame::new(&wrapped);
    let got = d.decap(&mut f);
    if depth == 0 {
        assert!(got.is_err(), "a wrapped runt frame decapsulated: {got:?}");
        assert_eq!(f.data(), &wrapped[..]);
    } else if depth > usize::from(max) {
        assert_eq!(got, Err(DecapError::TooDeep), "{depth} layers, limit {max}");
        assert_eq!(f.data(), &wrapped[..]);
    } else {
        let Ok(DecapOutcome::Decapsulated(info)) = got else {
            panic!("{depth} layers (limit {max}) not decapsulated: {got:?}");
        };
        assert_eq!(usize::from(info.layers), depth);
        assert_eq!(f.data(), inner, "decap did not recover the inner frame");
    }
}

/// Invariants of one decap call on any input: a frame left alone is
/// byte-identical; a decapsulated one is a slice of the input (plus the
/// pushed tag) that classify located, with no further tunnel in it.
fn check_one(d: &mut Decap, input: &[u8]) {
    let located = d.classify(input, input.len());
    let mut f = VecFrame::new(input);
    let got = d.decap(&mut f);
    let c = d.counters();
    assert_eq!(
        c.decapsulated + c.not_tunnel + c.not_ethernet + c.errors(),
        1,
        "one frame, one outcome: {c:?}"
    );
    match got {
        Ok(DecapOutcome::Decapsulated(info)) => {
            let Ok(Classified::Ethernet { start, end, .. }) = located else {
                panic!("decap and classify disagree: {got:?} / {located:?}");
            };
            let out = f.data();
            let body = if let Some(vid) = info.vlan {
                assert!((1..=4094).contains(&vid));
                assert_eq!(&out[12..14], &[0x81, 0x00]);
                [&out[..12], &out[16..]].concat()
            } else {
                out.to_vec()
            };
            assert_eq!(info.stripped, start);
            assert_eq!(&input[start..end], &body[..], "decap invented bytes");
            assert!(body.len() >= 14);
            assert!(info.layers >= 1 && info.layers <= d.config().max_layers);
            if info.vlan.is_none() {
                let again = d.classify(&body, body.len());
                assert!(
                    !matches!(again, Ok(Classified::Ethernet { .. })),
                    "decap stopped before a tunnel it could strip: {again:?}"
                );
            }
        }
        Ok(DecapOutcome::NotTunnel) => {
            assert_eq!(located, Ok(Classified::NotTunnel));
            assert_eq!(f.data(), input);
        }
        Ok(DecapOutcome::NotEthernet(t)) => {
            assert_eq!(located, Ok(Classified::NotEthernet(t)));
            assert_eq!(f.data(), input);
        }
        Err(e) => {
            assert_eq!(located, Err(e));
            assert_eq!(f.data(), input, "a refused frame was changed");
        }
    }
}
