//! Criterion benchmark of the encap stage (ns per packet, 64-byte packets, bursts of 32).
//!
//! Each iteration encapsulates a burst of 32 64-byte frames with one
//! destination's template, then strips the outer headers again with `adj`
//! (a pointer bump, well under 1 ns a frame) so the same frames — hot in
//! cache, as a worker's just-received mbufs are — serve the next iteration.
//! Throughput is set in elements: criterion's "thrpt" is packets per
//! second, and ns/packet is the time divided by 32.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::encap::{
    EncapConfig, EncapError, EncapMeta, EncapTemplate, OuterConfig, OversizePolicy, TunnelConfig,
};
use dataplane::stage::parse::Layers;
use dataplane::stage::tag::TagInfo;
use dataplane::stage::BURST;
use dataplane::wire::ethernet::Address;

/// A 64-byte Ethernet/IPv4/UDP frame and what parse would say about it.
fn frame(i: u16) -> (Vec<u8>, Layers) {
    let mut f = vec![0u8; 64];
    f[..12].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    let layers = Layers {
        ethertype: 0x0800,
        l3_offset: 14,
        ip_version: 4,
        l4_proto: 17,
        l4_offset: 34,
        payload_offset: 42,
        src_addr: 0x0a00_0001,
        dst_addr: 0x0a00_0002,
        src_port: 1024 + i,
        dst_port: 53,
        ..Layers::default()
    };
    (f, layers)
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

fn bench(c: &mut Criterion) {
    let (frames, layers): (Vec<Vec<u8>>, Vec<Layers>) = (0..BURST as u16).map(frame).unzip();
    let tag = TagInfo {
        appliance_id: 1,
        input_port: 3,
        ..TagInfo::default()
    };
    let metas: Vec<EncapMeta<'_>> = layers
        .iter()
        .map(|l| EncapMeta {
            layers: Some(l),
            flow_hash: None,
            tag,
            tag_override: None,
            sliced: false,
        })
        .collect();

    let cases = [
        ("vxlan_ipv4", TunnelConfig::vxlan(100), false),
        ("erspan3_ipv4", TunnelConfig::erspan3(7), false),
        ("erspan2_ipv4", TunnelConfig::ErspanII { session: 7 }, false),
        ("vxlan_ipv6", TunnelConfig::vxlan(100), true),
        ("erspan3_ipv6", TunnelConfig::erspan3(7), true),
    ];
    let mut g = c.benchmark_group("encap");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, tunnel, v6) in cases {
        let mut tpl = EncapTemplate::new(&config(tunnel, v6)).expect("valid bench config");
        let mut verdicts = [Ok::<(), EncapError>(()); BURST];
        let mut now = 1_700_000_000_000_000_000u64;
        let hl = tpl.header_len();
        let mut burst: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(f)).collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                now += 1000;
                let n = tpl.encap_burst(&mut burst, &metas, black_box(now), &mut verdicts);
                for f in burst.iter_mut() {
                    let _ = f.adj(hl);
                }
                n
            })
        });
        assert_eq!(
            tpl.counters().no_headroom,
            0,
            "{name}: frames kept their headroom"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
