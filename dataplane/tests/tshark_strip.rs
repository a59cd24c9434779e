//! tshark judges what strip leaves of a frame.
//!
//! The reference captures (QinQ, MPLS, VXLAN, Geneve, ERSPAN, GRE …) and a
//! set of built frames (VN-Tag, E-Tag, an Ethernet pseudowire, every shim
//! on a tunnelled frame) are stripped of everything, written to a pcap and
//! dissected by tshark: wherever strip reports nothing left, tshark finds
//! none of those headers, and a frame tshark read cleanly before still
//! reads cleanly (the type chain and lengths are consistent).

mod common;

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::DecapConfig;
use dataplane::stage::strip::{Strip, StripSpec, Stripped, E_TAG, VN_TAG};
use serde_json::Value;

/// What tshark calls the headers strip removes.
const STRIPPED: [&str; 12] = [
    "vlan",
    "ieee8021ad",
    "mpls",
    "vntag",
    "etag",
    "vxlan",
    "geneve",
    "erspan",
    "gre",
    "pwethcw",
    "pwethnocw",
    "pwethheuristic",
];

fn all() -> StripSpec {
    StripSpec {
        vlan: true,
        mpls: true,
        vntag: true,
        tunnel: true,
        dst_mac: None,
    }
}

fn dissect(name: &str, frames: &[Vec<u8>]) -> Vec<Value> {
    let path = temp_dir(&format!("tshark_strip_{name}")).join("f.pcap");
    write_pcap(&path, frames);
    let d = tshark_json(&path, &[]);
    assert_eq!(d.len(), frames.len(), "{name}: tshark read every frame");
    d
}

/// Strips every frame; each output with what strip said.
fn strip_all(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Stripped)> {
    let mut st = Strip::new(all(), &DecapConfig::default()).expect("config");
    frames
        .iter()
        .map(|b| {
            let mut f = VecFrame::new(b);
            let s = st.strip(&mut f);
            (f.data().to_vec(), s)
        })
        .collect()
}

/// Checks the judged outputs against the judged inputs; returns how many
/// frames lost a header.
fn judge(name: &str, inputs: &[Vec<u8>]) -> usize {
    let out = strip_all(inputs);
    let before = dissect(&format!("{name}_in"), inputs);
    let after = dissect(
        &format!("{name}_out"),
        &out.iter().map(|o| o.0.clone()).collect::<Vec<_>>(),
    );
    let mut changed = 0;
    for (i, ((frame, s), (b, a))) in out.iter().zip(before.iter().zip(&after)).enumerate() {
        let protos = protocols(a);
        if s.left.is_none() && s.bytes > 0 {
            for p in STRIPPED {
                assert!(
                    !protos.iter().any(|x| x == p),
                    "{name} frame {i}: tshark still finds {p} in {protos:?} ({s:?}, {frame:02x?})"
                );
            }
        }
        if tshark_errors(b).is_empty() {
            assert_eq!(
                tshark_errors(a),
                Vec::<String>::new(),
                "{name} frame {i}: clean before strip, not after ({protos:?}, {s:?})"
            );
        }
        changed += usize::from(s.bytes > 0);
    }
    changed
}

/// Every Ethernet capture's frames in one pcap: two tshark runs in all.
#[test]
fn reference_captures_lose_their_tags_mpls_and_tunnels() {
    let mut frames = Vec::new();
    for path in all_captures() {
        let (link, f) = read_pcap_link(&path);
        if link == DataLink::ETHERNET {
            frames.extend(f);
        }
    }
    let changed = judge("captures", &frames);
    assert!(changed > 300, "only {changed} frames had anything to strip");
}

fn ip_udp() -> Vec<u8> {
    let mut ip = vec![0u8; 20 + 8 + 6];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&34u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let sum = !ip_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip[20..22].copy_from_slice(&1000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&2000u16.to_be_bytes());
    ip[24..26].copy_from_slice(&14u16.to_be_bytes());
    ip[28..].copy_from_slice(b"strip!");
    ip
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// MACs, the `(type, body)` shims, then `last` and `rest`.
fn frame(shims: &[(u16, &[u8])], last: u16, rest: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0xd, 2, 0, 0, 0, 0, 5];
    for (t, body) in shims {
        f.extend_from_slice(&t.to_be_bytes());
        f.extend_from_slice(body);
    }
    f.extend_from_slice(&last.to_be_bytes());
    f.extend_from_slice(rest);
    f
}

fn label(l: u32, bottom: bool) -> [u8; 4] {
    ((l << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes()
}

/// `inner` in IPv4/UDP/VXLAN (no Ethernet): what goes after a type.
fn vxlan_ip(inner: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + 8 + inner.len()) as u16;
    let mut ip = vec![0u8; 36];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..20].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    let sum = !ip_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip[20..22].copy_from_slice(&50000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&4789u16.to_be_bytes());
    ip[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    ip[28] = 0x08;
    ip[34] = 7;
    ip.extend_from_slice(inner);
    ip
}

#[test]
fn built_frames_with_every_shim_strip_to_plain_ip() {
    let ip = ip_udp();
    let tci: &[u8] = &[0x20, 0x64];
    let vn: &[u8] = &[0x80, 0x01, 0x00, 0x02];
    let etag: &[u8] = &[0x00, 0x00, 0x10, 0x01, 0x00, 0x00];
    let mpls_ip = [
        label(100, false).to_vec(),
        label(200, true).to_vec(),
        ip.clone(),
    ]
    .concat();
    let customer = frame(&[(0x8100, tci)], 0x0800, &ip);
    let pw = [label(300, true).to_vec(), vec![0; 4], customer.clone()].concat();
    let inner = frame(&[(0x88a8, tci), (0x8100, tci)], 0x8847, &mpls_ip);
    let inputs = vec![
        frame(&[(0x88a8, tci), (0x8100, tci)], 0x0800, &ip),
        frame(&[(VN_TAG, vn), (0x8100, tci)], 0x0800, &ip),
        frame(&[(E_TAG, etag), (0x8100, tci)], 0x0800, &ip),
        frame(&[(0x8100, tci)], 0x8847, &mpls_ip),
        frame(&[(0x8100, tci)], 0x8847, &pw),
        frame(
            &[(VN_TAG, vn), (0x88a8, tci), (0x8100, tci)],
            0x0800,
            &vxlan_ip(&inner),
        ),
        frame(
            &[(0x8100, tci)],
            0x8847,
            &[label(5, true).to_vec(), vxlan_ip(&customer)].concat(),
        ),
    ];
    // The inputs carry what they should, as tshark sees it.
    let seen: Vec<String> = dissect("built_in", &inputs)
        .iter()
        .flat_map(protocols)
        .collect();
    // (tshark's heuristic takes the pseudowire's control word for the
    // start of a frame without one: a guess, which strip does not make.)
    for p in [
        "ieee8021ad",
        "vlan",
        "mpls",
        "vntag",
        "etag",
        "vxlan",
        "pwethnocw",
    ] {
        assert!(
            seen.iter().any(|x| x == p),
            "no {p} in the inputs: {seen:?}"
        );
    }
    assert_eq!(judge("built", &inputs), inputs.len());
    for (out, s) in strip_all(&inputs) {
        assert_eq!(s.left, None);
        assert_eq!(out.len(), 14 + ip.len());
        assert_eq!(&out[12..], &[&[0x08, 0x00][..], &ip].concat()[..]);
    }
    let after = dissect(
        "built_out_fields",
        &strip_all(&inputs)
            .into_iter()
            .map(|o| o.0)
            .collect::<Vec<_>>(),
    );
    for a in &after {
        assert_eq!(protocols(a), ["eth", "ethertype", "ip", "udp", "data"]);
    }
}
