//! encap → decap gives back the frame that went in, for every tunnel type ×
//! outer IPv4/IPv6 × sliced/unsliced (and cut to the MTU or not): the
//! decapsulated bytes are the original frame as the slice stage and the MTU
//! left it, and what decap reads from the tunnel header is what encap was
//! asked to write (ID with and without a rule's override, ERSPAN T bit,
//! index, hardware ID, direction, sequence numbers).

mod common;

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{Decap, DecapConfig, DecapOutcome, TunnelKind};
use dataplane::stage::encap::{
    EncapMeta, EncapTemplate, OuterVlan, TimestampMode, TunnelConfig, VxlanExtendedConfig,
};
use dataplane::stage::parse::parse;
use dataplane::stage::tag::TagInfo;
use dataplane::stage::Direction;
use proptest::prelude::*;

const CUSTOM_VXLAN_PORT: u16 = 8472;

/// Every tunnel an [`EncapTemplate`] can build, with its IDs.
fn tunnels() -> Vec<TunnelConfig> {
    vec![
        TunnelConfig::vxlan(0x00ab_cdef),
        TunnelConfig::Vxlan {
            vni: 7,
            udp_dst_port: CUSTOM_VXLAN_PORT,
            extended: Some(VxlanExtendedConfig { flags: 0x0c }),
        },
        TunnelConfig::ErspanII { session: 1023 },
        TunnelConfig::erspan3(511),
        TunnelConfig::ErspanIII {
            session: 3,
            hw_id: Some(0x2a),
            timestamp: TimestampMode::Us100,
        },
        TunnelConfig::L2Gre { key: 0xdead_beef },
        TunnelConfig::Geneve { vni: 0x0012_3456 },
    ]
}

fn expected_kind(t: &TunnelConfig) -> TunnelKind {
    match t {
        TunnelConfig::Vxlan { .. } => TunnelKind::Vxlan,
        TunnelConfig::ErspanII { .. } => TunnelKind::ErspanII,
        TunnelConfig::ErspanIII { .. } => TunnelKind::ErspanIII,
        TunnelConfig::L2Gre { .. } => TunnelKind::L2Gre,
        TunnelConfig::Geneve { .. } => TunnelKind::Geneve,
    }
}

/// The ID the tunnel header must carry: the override cut to the field's
/// width, else the destination's.
fn expected_id(t: &TunnelConfig, over: Option<u32>) -> u32 {
    match t {
        TunnelConfig::Vxlan { vni, .. } | TunnelConfig::Geneve { vni } => {
            over.unwrap_or(*vni) & 0x00ff_ffff
        }
        TunnelConfig::ErspanII { session } | TunnelConfig::ErspanIII { session, .. } => {
            over.unwrap_or(u32::from(*session)) & 0x3ff
        }
        TunnelConfig::L2Gre { key } => over.unwrap_or(*key),
    }
}

#[derive(Debug, Clone)]
struct Case {
    tunnel: usize,
    outer_v6: bool,
    outer_vlan: bool,
    inner_v6: bool,
    len: usize,
    /// The slice stage's cut, if it cut.
    slice: Option<usize>,
    mtu: u16,
    tag: TagInfo,
    over: Option<u32>,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            0..tunnels().len(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            62usize..3000,
            proptest::option::of(14usize..400),
            600u16..=9000,
        ),
        (any::<u16>(), any::<u16>(), any::<bool>()),
        (proptest::option::of(any::<u32>()), any::<u64>()),
    )
        .prop_map(
            |(
                (tunnel, outer_v6, outer_vlan, inner_v6),
                (len, slice, mtu),
                (app, port, eg),
                (over, seed),
            )| Case {
                tunnel,
                outer_v6,
                outer_vlan,
                inner_v6,
                len,
                slice,
                mtu,
                tag: TagInfo {
                    appliance_id: app,
                    input_port: port,
                    rule_id: 0,
                    direction: if eg {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                },
                over,
                seed,
            },
        )
}

fn decapper() -> Decap {
    Decap::new(DecapConfig {
        vxlan_ports: vec![4789, CUSTOM_VXLAN_PORT],
        ..DecapConfig::default()
    })
    .expect("decap config")
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let tunnel = tunnels()[c.tunnel];
    let mut cfg = encap_config(tunnel, c.outer_v6, c.mtu);
    if c.outer_vlan {
        cfg.outer.vlan = Some(OuterVlan { vid: 100, pcp: 2 });
    }
    let mut tpl = EncapTemplate::new(&cfg).expect("valid config");
    tpl.set_next_seq(c.seed as u32);
    let original = inner_frame(c.inner_v6, c.len, c.seed);
    let layers = parse(&original);

    let mut f = VecFrame::new(&original);
    // What the slice stage would have done.
    let sliced = match c.slice {
        Some(n) if n < f.pkt_len() => {
            f.truncate(n);
            true
        }
        _ => false,
    };
    let after_slice = f.data().to_vec();
    let expected = &after_slice[..after_slice.len().min(tpl.max_inner_len())];
    let cut_by_mtu = expected.len() < after_slice.len();

    let meta = EncapMeta {
        layers: Some(&layers),
        flow_hash: None,
        tag: c.tag,
        tag_override: c.over,
        sliced,
    };
    let now = 1_732_000_000_123_456_789u64;
    tpl.encap(&mut f, &meta, now).expect("encap");
    prop_assert!(f.pkt_len() - tpl.header_len() <= tpl.max_inner_len());

    let mut d = decapper();
    let got = d.decap(&mut f);
    let Ok(DecapOutcome::Decapsulated(info)) = got else {
        return Err(TestCaseError::fail(format!("decap said {got:?}")));
    };
    prop_assert_eq!(f.data(), expected, "decapsulated bytes");
    prop_assert_eq!(info.layers, 1);
    prop_assert_eq!(info.stripped, tpl.header_len());
    let t = info.outer();
    prop_assert_eq!(t.kind, expected_kind(&tunnel));
    prop_assert_eq!(t.id, Some(expected_id(&tunnel, c.over)));
    prop_assert_eq!(t.ip_version, if c.outer_v6 { 6 } else { 4 });
    match tunnel {
        TunnelConfig::ErspanII { .. } => {
            prop_assert_eq!(t.truncated, sliced || cut_by_mtu);
            prop_assert_eq!(t.sequence, Some(c.seed as u32));
            prop_assert_eq!(t.origin.input_port, Some(u32::from(c.tag.input_port)));
        }
        TunnelConfig::ErspanIII {
            hw_id, timestamp, ..
        } => {
            prop_assert_eq!(t.truncated, sliced || cut_by_mtu);
            prop_assert_eq!(t.sequence, Some(c.seed as u32));
            let hw = hw_id.unwrap_or(c.tag.appliance_id as u8 & 0x3f);
            prop_assert_eq!(t.origin.hw_id, Some(hw));
            prop_assert_eq!(t.origin.direction, Some(c.tag.direction));
            let port = (timestamp == TimestampMode::Ieee1588)
                .then_some(u32::from(c.tag.input_port & 0x3fff));
            prop_assert_eq!(t.origin.input_port, port);
        }
        TunnelConfig::L2Gre { .. } => prop_assert_eq!(t.sequence, None),
        _ => {}
    }
    prop_assert_eq!(tpl.counters().truncated_to_mtu, u64::from(cut_by_mtu));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encap_then_decap_gives_back_the_frame(c in case()) {
        run(&c)?;
    }
}

/// The product the proptest samples, walked exhaustively once: every tunnel
/// × outer family × outer VLAN × sliced/unsliced × cut by the MTU or not.
#[test]
fn every_combination_round_trips() {
    let mut n = 0;
    for tunnel in 0..tunnels().len() {
        for outer_v6 in [false, true] {
            for outer_vlan in [false, true] {
                for slice in [None, Some(100)] {
                    for (len, mtu) in [(500, 1500), (1600, 1500), (9000, 9000)] {
                        let c = Case {
                            tunnel,
                            outer_v6,
                            outer_vlan,
                            inner_v6: outer_v6 ^ outer_vlan,
                            len,
                            slice,
                            mtu,
                            tag: TagInfo {
                                appliance_id: 0x41,
                                input_port: 9,
                                rule_id: 1,
                                direction: Direction::Egress,
                            },
                            over: (len == 1600).then_some(0x0100_0203),
                            seed: n,
                        };
                        run(&c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                        n += 1;
                    }
                }
            }
        }
    }
    assert_eq!(n, 7 * 2 * 2 * 2 * 3);
}

/// A burst with frames for several cases at once: verdicts line up with
/// frames, and frames without headroom are refused and left untouched.
#[test]
fn burst_verdicts_line_up() {
    let mut tpl = EncapTemplate::new(&encap_config(TunnelConfig::vxlan(5), false, 1500)).unwrap();
    let frames_in: Vec<Vec<u8>> = (0..8)
        .map(|i| inner_frame(i % 2 == 0, 100, i as u64))
        .collect();
    let mut frames: Vec<VecFrame> = frames_in
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i == 3 {
                VecFrame::with_room(b, 10, 0)
            } else {
                VecFrame::new(b)
            }
        })
        .collect();
    let metas = vec![EncapMeta::default(); 8];
    let mut verdicts = vec![Ok(()); 8];
    assert_eq!(tpl.encap_burst(&mut frames, &metas, 0, &mut verdicts), 7);
    let mut d = decapper();
    for (i, f) in frames.iter_mut().enumerate() {
        if i == 3 {
            assert!(verdicts[i].is_err());
            assert_eq!(f.data(), &frames_in[i][..]);
            continue;
        }
        assert!(verdicts[i].is_ok());
        assert!(matches!(d.decap(f), Ok(DecapOutcome::Decapsulated(_))));
        assert_eq!(f.data(), &frames_in[i][..]);
    }
    assert_eq!(tpl.counters().no_headroom, 1);
}
