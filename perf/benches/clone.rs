//! Criterion benchmark of one extra destination's copy of a packet: a full
//! data copy (`Mbuf::copy`) against an indirect clone behind a fresh header
//! segment (`Mbuf::share` + `SharedMbuf::with_header`), each followed by
//! VXLAN encap and the free a sent copy gets, on real DPDK mbufs, at 64 to
//! 1500 bytes. Where the clone becomes cheaper is the worker's
//! `CLONE_MIN_LEN` (dataplane/src/runtime/worker/mod.rs).
//!
//! Each iteration makes, encapsulates and frees one copy of each of a
//! burst of 32 received frames, after reading what a worker has read of
//! them by then (the mbuf header and the frame's first cache line). `hot`:
//! the same 32 frames every time, in cache, as frames a software device
//! just copied into their mbufs are. `cold`: bursts in turn from 24 Ki
//! frames (58 MB, more than the L3 holds), whose payload is in memory, as
//! the payload of frames a NIC wrote and no stage read may be.
//! Thread CPU time (`common/cputime.rs`); throughput is in elements:
//! ns/packet is the time divided by 32.
use std::net::{IpAddr, Ipv4Addr};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
#[path = "common/cputime.rs"]
mod cputime;
use cputime::ThreadCpuTime;
use dataplane::dpdk::testing::shared_eal;
use dataplane::dpdk::{Mbuf, Mempool};
use dataplane::frame::Frame;
use dataplane::stage::encap::{
    EncapConfig, EncapMeta, EncapTemplate, OuterConfig, OversizePolicy, TunnelConfig,
};
use dataplane::stage::parse::{parse, Layers};
use dataplane::stage::tag::TagInfo;
use dataplane::stage::BURST;
use dataplane::wire::ethernet::Address;

/// An Ethernet/IPv4/UDP frame of `len` bytes.
fn frame(len: usize, i: u16) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..12].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&(1024 + i).to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

fn vxlan() -> EncapTemplate {
    let cfg = EncapConfig {
        tunnel: TunnelConfig::vxlan(100),
        outer: OuterConfig {
            src_mac: Address([2, 0, 0, 0, 0, 1]),
            dst_mac: Address([2, 0, 0, 0, 0, 2]),
            vlan: None,
            src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            dscp: 0,
            ttl: 64,
        },
        mtu: 1600,
        oversize: OversizePolicy::TruncateToMtu,
    };
    EncapTemplate::new(&cfg).expect("valid bench config")
}

/// Source packets of the cold case: 24 Ki × 2,368-byte mbufs, 58 MB, past
/// the 32 MiB L3 of the machine the figures come from.
const COLD: usize = 24 * 1024;

/// What a worker has touched of a packet before it forwards it: the mbuf
/// header (RX) and the first cache line of the frame (parse).
fn touch(m: &Mbuf) -> u32 {
    u32::from(m.port()) + m.data().iter().take(64).map(|&b| u32::from(b)).sum::<u32>()
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    shared_eal("bench-clone");
    // The worker's pools: full-size buffers for packets and copies, small
    // ones (headroom only) for clones' header and indirect segments.
    let pool = Mempool::new("bench_pkts", 32767, 256, 2176, -1).expect("packet pool");
    let small = Mempool::new("bench_clones", 8191, 256, 128, -1).expect("clone pool");
    let tag = TagInfo {
        appliance_id: 1,
        input_port: 3,
        ..TagInfo::default()
    };
    let mut tpl = vxlan();
    for (group, n) in [("extra_copy_hot", BURST), ("extra_copy_cold", COLD)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(BURST as u64));
        for len in [64usize, 128, 256, 512, 1024, 1500] {
            let bytes: Vec<Vec<u8>> = (0..BURST as u16).map(|i| frame(len, i)).collect();
            let layers: Vec<Layers> = bytes.iter().map(|b| parse(b)).collect();
            let src: Vec<Mbuf> = (0..n)
                .map(|i| Mbuf::from_bytes(&pool, &bytes[i % BURST]).expect("mbuf"))
                .collect();
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
            let mut at = 0;
            g.bench_with_input(BenchmarkId::new("copy", len), &len, |b, _| {
                b.iter(|| {
                    let burst = &src[at..at + BURST];
                    at = (at + BURST) % n;
                    black_box(burst.iter().map(touch).sum::<u32>());
                    for (m, meta) in burst.iter().zip(&metas) {
                        let mut c = m.copy(&pool).expect("pool holds a burst");
                        let _ = tpl.encap(&mut c, meta, 0);
                        black_box(&c);
                    }
                })
            });
            g.bench_with_input(BenchmarkId::new("clone", len), &len, |b, _| {
                b.iter(|| {
                    let burst = &src[at..at + BURST];
                    at = (at + BURST) % n;
                    black_box(burst.iter().map(touch).sum::<u32>());
                    for (m, meta) in burst.iter().zip(&metas) {
                        let mut c = m
                            .share(&small)
                            .and_then(|s| s.with_header(&small))
                            .expect("pool holds a burst");
                        let _ = tpl.encap(&mut c, meta, 0);
                        black_box(&c);
                    }
                })
            });
        }
        g.finish();
    }
    assert_eq!(tpl.counters().no_headroom, 0, "header segments had room");
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
