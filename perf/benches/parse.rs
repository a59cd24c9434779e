//! Criterion benchmark of the parse stage (ns per packet, bursts of 32).
//!
//! Frames are minimum size: 64 bytes for Eth/IPv4/UDP, and 74 for
//! Eth/IPv6/TCP, the smallest such frame there is (14 + 40 + 20). Each of
//! the 32 frames of a burst has its own addresses and ports, as a real burst
//! would. Throughput is in elements, so criterion prints packets per second;
//! time per iteration / 32 is ns per packet.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::stage::parse::{parse_burst, Layers, ParseCounters};
use dataplane::stage::BURST;
use dataplane::wire::{ethernet, ipv4, ipv6, tcp, udp, IpProtocol};
use std::net::{Ipv4Addr, Ipv6Addr};

fn eth(buf: &mut [u8], ethertype: ethernet::EtherType) -> usize {
    ethernet::Repr {
        src_addr: ethernet::Address([2, 0, 0, 0, 0, 1]),
        dst_addr: ethernet::Address([2, 0, 0, 0, 0, 2]),
        ethertype,
    }
    .emit_to(buf)
    .unwrap()
}

/// Eth / IPv4 / UDP, 64 bytes (18 of payload, like pktgen's minimum).
fn ipv4_udp(i: usize) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let mut at = eth(&mut f, ethernet::EtherType::Ipv4);
    let ip = ipv4::Repr::new(
        Ipv4Addr::new(10, 0, 0, i as u8),
        Ipv4Addr::new(10, 1, 0, 1),
        IpProtocol::Udp,
        64 - 14 - 20,
    );
    at += ip.emit_to(&mut f[at..]).unwrap();
    let u = udp::Repr {
        src_port: 1024 + i as u16,
        dst_port: 4789,
        payload_len: 64 - 14 - 20 - 8,
    };
    u.emit_to(&mut f[at..]).unwrap();
    f
}

/// Eth / IPv6 / TCP ACK, 74 bytes, no payload.
fn ipv6_tcp(i: usize) -> Vec<u8> {
    let mut f = vec![0u8; 74];
    let mut at = eth(&mut f, ethernet::EtherType::Ipv6);
    let ip = ipv6::Repr::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1),
        IpProtocol::Tcp,
        20,
    );
    at += ip.emit_to(&mut f[at..]).unwrap();
    let t = tcp::Repr {
        src_port: 40000 + i as u16,
        dst_port: 443,
        seq_number: i as u32,
        ack_number: 1,
        flags: tcp::Flags::ACK,
        window_len: 512,
        urgent_at: 0,
        options: tcp::Options::NONE,
    };
    t.emit_to(&mut f[at..]).unwrap();
    f
}

fn bench_burst(c: &mut Criterion, name: &str, frames: &[Vec<u8>]) {
    let slices: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let mut out = [Layers::default(); BURST];
    let mut counters = ParseCounters::default();
    // Sanity: the frames parse cleanly, so the bench times the full path.
    parse_burst(&slices, &mut out, &mut counters);
    assert!(out.iter().all(|l| l.error.is_none() && l.l4_offset != 0));

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(slices.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            parse_burst(black_box(&slices), &mut out, &mut counters);
            black_box(&out);
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let v4: Vec<_> = (0..BURST).map(ipv4_udp).collect();
    let v6: Vec<_> = (0..BURST).map(ipv6_tcp).collect();
    let mixed: Vec<_> = (0..BURST)
        .map(|i| if i % 2 == 0 { ipv4_udp(i) } else { ipv6_tcp(i) })
        .collect();
    bench_burst(c, "burst32_eth_ipv4_udp_64B", &v4);
    bench_burst(c, "burst32_eth_ipv6_tcp_74B", &v6);
    bench_burst(c, "burst32_mixed_v4udp_v6tcp", &mixed);
}

criterion_group!(benches, bench);
criterion_main!(benches);
