//! Criterion benchmark of the decap stage (ns per packet, 64-byte packets, bursts of 32).
//!
//! The inputs are 64-byte inner frames encapsulated by the encap stage
//! (VXLAN, ERSPAN III, ERSPAN II, Geneve; outer IPv4 or IPv6). Each
//! iteration decapsulates a burst of 32, then puts the outer headers back
//! with `prepend` — the bytes are still in the buffer in front of the inner
//! frame, so this is a pointer move — and the same frames serve the next
//! iteration. A burst of plain (non-tunnel) frames measures the cost of
//! deciding "not a tunnel". Throughput is in elements: "thrpt" is packets
//! per second and ns/packet is the time divided by 32.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{Decap, DecapConfig, DecapError, DecapOutcome};
use dataplane::stage::encap::{
    EncapConfig, EncapMeta, EncapTemplate, OuterConfig, OversizePolicy, TunnelConfig,
};
use dataplane::stage::parse::parse;
use dataplane::stage::BURST;
use dataplane::wire::ethernet::Address;

/// A 64-byte Ethernet/IPv4/UDP frame.
fn inner(i: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..12].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&(1024 + i).to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

fn config(tunnel: TunnelConfig, v6: bool) -> EncapConfig {
    let (src_ip, dst_ip) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        )
    };
    EncapConfig {
        tunnel,
        outer: OuterConfig {
            src_mac: Address([2, 0, 0, 0, 0, 1]),
            dst_mac: Address([2, 0, 0, 0, 0, 2]),
            vlan: None,
            src_ip,
            dst_ip,
            dscp: 0,
            ttl: 64,
        },
        mtu: 1500,
        oversize: OversizePolicy::TruncateToMtu,
    }
}

/// A burst of encapsulated frames for `tunnel` (or plain frames for `None`).
fn burst(tunnel: Option<(TunnelConfig, bool)>) -> Vec<VecFrame> {
    (0..BURST as u16)
        .map(|i| {
            let bytes = inner(i);
            let mut f = VecFrame::new(&bytes);
            if let Some((t, v6)) = tunnel {
                let mut tpl = EncapTemplate::new(&config(t, v6)).expect("valid bench config");
                let layers = parse(&bytes);
                let meta = EncapMeta {
                    layers: Some(&layers),
                    ..EncapMeta::default()
                };
                tpl.encap(&mut f, &meta, 0).expect("encap");
            }
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cases: [(&str, Option<(TunnelConfig, bool)>); 6] = [
        ("vxlan_ipv4", Some((TunnelConfig::vxlan(100), false))),
        ("erspan3_ipv4", Some((TunnelConfig::erspan3(7), false))),
        (
            "erspan2_ipv4",
            Some((TunnelConfig::ErspanII { session: 7 }, false)),
        ),
        (
            "geneve_ipv4",
            Some((TunnelConfig::Geneve { vni: 9 }, false)),
        ),
        ("vxlan_ipv6", Some((TunnelConfig::vxlan(100), true))),
        ("not_tunnel", None),
    ];
    let mut g = c.benchmark_group("decap");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, tunnel) in cases {
        let mut d = Decap::new(DecapConfig::default()).expect("decap config");
        let mut frames = burst(tunnel);
        let mut out = [Ok::<DecapOutcome, DecapError>(DecapOutcome::NotTunnel); BURST];
        g.bench_function(name, |b| {
            b.iter(|| {
                let n = d.decap_burst(&mut frames, &mut out);
                for (f, o) in frames.iter_mut().zip(&out) {
                    if let Ok(DecapOutcome::Decapsulated(info)) = o {
                        let _ = f.prepend(info.stripped);
                    }
                }
                n
            })
        });
        let want = if tunnel.is_some() { BURST } else { 0 };
        assert_eq!(
            d.decap_burst(&mut frames, &mut out),
            want,
            "{name}: every frame decapsulated"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
