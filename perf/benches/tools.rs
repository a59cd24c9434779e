//! Criterion benchmark of the tool-destination stages — strip, mask, sample,
//! balance — in ns per packet, bursts of 32 frames of 64 bytes (a VXLAN
//! frame carries a 64-byte one).
//!
//! Strip and mask change their frames, so each iteration puts the burst's
//! bytes back afterwards (a `VecFrame` only moves its ends, so `prepend`
//! and `append` give the bytes back, then a copy of the 64–114 bytes):
//! `restore_only` measures that alone, to subtract. (Fresh copies per
//! iteration, as `iter_batched` makes them, measured cache misses instead.)
//! The burst's parse is done once, outside (but in
//! `balance/burst32/five_tuple_parse_then_hash`, set beside the hash at
//! fixed offsets that a match-all group's burst uses instead). Thread CPU time
//! (`common/cputime.rs`), so other tenants' preemption does not count;
//! throughput is in elements: ns/packet is the time divided by 32.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
#[path = "common/cputime.rs"]
mod cputime;
use cputime::ThreadCpuTime;
use dataplane::frame::{Frame, VecFrame, DEFAULT_HEADROOM};
use dataplane::stage::balance::{FlowFields, FlowHasher, GroupTable};
use dataplane::stage::decap::DecapConfig;
use dataplane::stage::mask::{mask_burst, Anchor, MaskCounters, MaskSpec};
use dataplane::stage::parse::{parse, parse_frame, Layers};
use dataplane::stage::sample::{SampleSpec, Sampler};
use dataplane::stage::strip::{Strip, StripSpec, Stripped};
use dataplane::stage::BURST;

const LEN: usize = 64;

/// A 64-byte Ethernet/IPv4/UDP frame of flow `i` behind `tags` VLAN tags.
fn udp(i: u16, tags: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    for t in 0..tags {
        let tpid: u16 = if t == 0 && tags > 1 { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + t as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = (LEN - f.len()) as u16;
    let mut ip = vec![0u8; usize::from(ip_len)];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, (i >> 8) as u8, i as u8]);
    ip[16..20].copy_from_slice(&[10, 1, 0, 1]);
    ip[20..22].copy_from_slice(&(1024 + i).to_be_bytes());
    ip[22..24].copy_from_slice(&53u16.to_be_bytes());
    ip[24..26].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&ip);
    f
}

/// `inner` in Ethernet/IPv4/UDP/VXLAN (VNI 42).
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 50];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (36 + inner.len()) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..34].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    f[34..36].copy_from_slice(&49152u16.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[42] = 0x08;
    f[48] = 42;
    f.extend_from_slice(inner);
    f
}

fn burst(make: impl Fn(u16) -> Vec<u8>) -> (Vec<VecFrame>, Vec<Layers>) {
    let bytes: Vec<Vec<u8>> = (0..BURST as u16).map(make).collect();
    let layers = bytes.iter().map(|b| parse(b)).collect();
    (bytes.iter().map(|b| VecFrame::new(b)).collect(), layers)
}

/// Gives `frames` back the bytes of `template`, in place.
fn restore(frames: &mut [VecFrame], template: &[VecFrame]) {
    for (f, t) in frames.iter_mut().zip(template) {
        let _ = f.prepend(f.headroom() - DEFAULT_HEADROOM);
        let _ = f.append(t.pkt_len() - f.pkt_len());
        f.data_mut().copy_from_slice(t.data());
    }
}

fn strip(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("strip");
    g.throughput(Throughput::Elements(BURST as u64));
    let all = StripSpec {
        vlan: true,
        mpls: true,
        vntag: true,
        tunnel: true,
        dst_mac: None,
    };
    let vlan = StripSpec {
        vlan: true,
        ..StripSpec::default()
    };
    for (name, spec, make) in [
        (
            "burst32/vlan_qinq",
            vlan,
            (|i| udp(i, 2)) as fn(u16) -> Vec<u8>,
        ),
        ("burst32/all_untagged", all, |i| udp(i, 0)),
        ("burst32/all_qinq", all, |i| udp(i, 2)),
        ("burst32/all_vxlan", all, |i| vxlan(&udp(i, 0))),
    ] {
        let mut st = Strip::new(spec, &DecapConfig::default()).unwrap();
        let (template, _) = burst(make);
        let mut frames = template.clone();
        let mut out = [Stripped::default(); BURST];
        if name == "burst32/all_vxlan" {
            g.bench_function("burst32/restore_only_vxlan", |b| {
                b.iter(|| restore(black_box(&mut frames), &template))
            });
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                st.strip_burst(&mut frames, &mut out);
                restore(&mut frames, &template);
            })
        });
        black_box(st.counters());
    }
    g.finish();
}

fn mask(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("mask");
    g.throughput(Throughput::Elements(BURST as u64));
    let (template, layers) = burst(|i| udp(i, 0));
    let mut frames = template.clone();
    let mut counters = MaskCounters::default();
    g.bench_function("burst32/restore_only", |b| {
        b.iter(|| restore(black_box(&mut frames), &template))
    });
    for (name, anchor, len) in [
        ("burst32/payload_all", Anchor::Payload, 64),
        ("burst32/l3_addresses", Anchor::L3, 8),
    ] {
        let spec = MaskSpec {
            anchor,
            offset: if anchor == Anchor::L3 { 12 } else { 0 },
            len,
            pattern: 0,
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                mask_burst(&mut frames, &layers, black_box(&spec), &mut counters);
                restore(&mut frames, &template);
            })
        });
    }
    black_box(counters);
    g.finish();
}

fn sample(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("sample");
    g.throughput(Throughput::Elements(BURST as u64));
    let (frames, layers) = burst(|i| udp(i, 0));
    let mut keep = [false; BURST];
    for (name, spec) in [
        ("burst32/one_in_8", SampleSpec::OneInN(8)),
        ("burst32/flow_one_in_8", SampleSpec::FlowHash { one_in: 8 }),
    ] {
        let mut s = Sampler::new(spec).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| s.keep_burst(&frames, &layers, &mut keep))
        });
        black_box((s.counters(), keep));
    }
    g.finish();
}

fn balance(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("balance");
    g.throughput(Throughput::Elements(BURST as u64));
    let table = GroupTable::build(&[1, 1, 2], &[true, true, true], None, false).unwrap();
    let mut members = [0usize; BURST];
    for (name, fields, make) in [
        (
            "burst32/five_tuple",
            FlowFields::FiveTuple,
            (|i| udp(i, 0)) as fn(u16) -> Vec<u8>,
        ),
        ("burst32/ip_pair", FlowFields::IpPair, |i| udp(i, 0)),
        (
            "burst32/inner_five_tuple_vxlan",
            FlowFields::InnerFiveTuple,
            |i| vxlan(&udp(i, 0)),
        ),
    ] {
        let h = FlowHasher::new(fields, &DecapConfig::default()).unwrap();
        let (frames, layers) = burst(make);
        g.bench_function(name, |b| {
            b.iter(|| {
                for ((f, l), m) in frames.iter().zip(&layers).zip(members.iter_mut()) {
                    *m = table.member(h.hash(f, l));
                }
            })
        });
        black_box(members);
    }
    // A match-all group's burst: each frame's member from the hash at
    // fixed offsets, against parse then hash (what the general path does).
    let h = FlowHasher::new(FlowFields::FiveTuple, &DecapConfig::default()).unwrap();
    let (frames, _) = burst(|i| udp(i, 0));
    g.bench_function("burst32/five_tuple_fixed_offsets", |b| {
        b.iter(|| {
            for (f, m) in frames.iter().zip(members.iter_mut()) {
                *m = h
                    .hash_plain(f.data(), f.pkt_len())
                    .map_or(usize::MAX, |x| table.member(x));
            }
        })
    });
    g.bench_function("burst32/five_tuple_parse_then_hash", |b| {
        b.iter(|| {
            for (f, m) in frames.iter().zip(members.iter_mut()) {
                *m = table.member(h.hash(f, &parse_frame(f)));
            }
        })
    });
    black_box(members);
    g.bench_function("rebuild_failover_3_members", |b| {
        b.iter(|| {
            GroupTable::build(
                &[1, 1, 2],
                black_box(&[true, false, true]),
                Some(&table),
                false,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = strip, mask, sample, balance
}
criterion_main!(benches);
