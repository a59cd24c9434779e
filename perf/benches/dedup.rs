//! Criterion benchmark of the dedup stage (ns per packet, 64-byte packets, bursts of 32).
//!
//! Every iteration checks one burst of 32 frames; criterion's element
//! throughput is packets, so ns per packet = 1e9 / (elements per second).
//! The frames' payload carries a counter rewritten before each burst (an
//! 8-byte store per packet, inside the timed loop), which is how a handful
//! of buffers stand for an endless stream of distinct packets while their
//! bytes stay in cache, as a just-received and parsed burst would be.
//!
//! - `miss/*`: every packet new; time advances at 10 GbE line rate for
//!   64-byte frames, so the 1 Mi-entry table reaches its steady state (about
//!   70 % live, the rest expired and reused).
//! - `hit/*`: every packet a copy of one inserted before (an eighth of the
//!   table's capacity, spread over all of it, so with 1 Mi entries buckets
//!   come from L3/DRAM).
//! - `*/1M` is the 1 Mi-entry table (16 MiB); `*/64K` a 1 MiB one that
//!   stays in cache, to tell memory cost from compute cost.
//! - `*/single` checks the same packets one call each: no overlap of misses.
//! - `hot_hit`: the same 32 packets again and again: buckets stay in L1, so
//!   this is the compute cost alone (hash + probe).
//! - `fingerprint/*`: the hash alone, for a 64-byte and a 1514-byte frame.
//! - `dedup/1Mi-flows/<memory>`: copies of 1 Mi distinct packets in a
//!   4 Mi-entry table (64 MiB, far beyond the cache), the table on 4 KiB
//!   heap pages, on the heap with transparent huge pages advised, or in
//!   DPDK hugepages (what a worker uses). Thread CPU time, not wall time
//!   (`common/cputime.rs`).
//! - `dedup/1Mi-flows/hit/…`, on hugepages, where the bucket loads start:
//!   `other-work-then-dedup` hashes, loads and probes after the other
//!   work (a second fingerprint pass standing for the worker's classify),
//!   `prefetch-other-work-dedup` hashes and prefetches before it (what the
//!   worker runs), `pipelined-one-burst-ahead` probes burst N after
//!   prefetching burst N+1, with no other work.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
#[path = "common/cputime.rs"]
mod cputime;
use cputime::ThreadCpuTime;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::dedup::{Dedup, DedupConfig, Fingerprint, Verdict};
use dataplane::stage::parse::Layers;
use dataplane::stage::BURST;

const ENTRIES: usize = 1 << 20;
/// 64-byte frames at 10 GbE line rate: 14.88 Mpps, one every 67.2 ns.
const PKT_NS: u64 = 67;
const T0: u64 = 1_000_000_000;
/// Where the per-packet counter goes: UDP payload.
const CTR: usize = 42;

/// Ethernet + IPv4 + UDP, `len` bytes in all, and its layers.
fn frame(len: usize) -> (VecFrame, Layers) {
    let mut b = vec![0u8; len];
    b[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    b[14..34].copy_from_slice(&[
        0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    b[16..18].copy_from_slice(&ip_len.to_be_bytes());
    b[34..38].copy_from_slice(&[0x9c, 0x40, 0x12, 0xb5]);
    b[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    for (i, x) in b[CTR..].iter_mut().enumerate() {
        *x = i as u8;
    }
    let layers = Layers {
        ethertype: 0x0800,
        l3_offset: 14,
        ip_version: 4,
        l4_proto: 17,
        l4_offset: 34,
        payload_offset: 42,
        ip_end: len as u32,
        ..Layers::default()
    };
    (VecFrame::new(&b), layers)
}

/// Makes the burst packets `first..first + 32` (mod `modulo`).
fn stamp(frames: &mut [VecFrame], first: u64, modulo: u64) {
    for (i, f) in frames.iter_mut().enumerate() {
        let k = (first + i as u64) % modulo;
        f.data_mut()[CTR..CTR + 8].copy_from_slice(&k.to_le_bytes());
    }
}

fn table(entries: usize) -> Dedup {
    Dedup::new(&DedupConfig {
        entries,
        ..DedupConfig::default()
    })
    .expect("valid config")
}

fn bench(c: &mut Criterion) {
    let (f, l) = frame(64);
    let mut frames = vec![f; BURST];
    let layers = [l; BURST];
    let mut verdicts = [Verdict::Unique; BURST];
    let n = BURST as u64;

    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(n));

    // All unique, burst API; the 1 Mi table (16 MiB) next to a 64 Ki one
    // (1 MiB, cache-resident) shows what memory costs.
    for (name, entries) in [("1M", ENTRIES), ("64K", 1 << 16)] {
        let mut d = table(entries);
        let (mut next, mut now) = (0u64, T0);
        g.bench_function(format!("miss/burst32/{name}"), |b| {
            b.iter(|| {
                stamp(&mut frames, next, u64::MAX);
                next += n;
                now += PKT_NS * n;
                d.check_burst(&frames, &layers, now, &mut verdicts);
                black_box(&verdicts);
            })
        });
        report(&format!("miss/burst32/{name}"), &d);
    }

    // All unique, one packet at a time: what the burst's early loads buy.
    let mut d = table(ENTRIES);
    let (mut next, mut now) = (0u64, T0);
    g.bench_function("miss/single/1M", |b| {
        b.iter(|| {
            stamp(&mut frames, next, u64::MAX);
            next += n;
            now += PKT_NS * n;
            for ((f, l), v) in frames.iter().zip(&layers).zip(&mut verdicts) {
                *v = d.check(f, l, now);
            }
            black_box(&verdicts);
        })
    });
    report("miss/single/1M", &d);

    // All copies of earlier packets, spread over the table: an eighth of
    // its capacity, so almost none is evicted while it is filled.
    for (name, entries) in [("1M", ENTRIES), ("64K", 1 << 16)] {
        let set = entries as u64 / 8;
        let mut d = table(entries);
        fill(&mut d, &mut frames, &layers, set);
        let mut next = 0u64;
        g.bench_function(format!("hit/burst32/{name}"), |b| {
            b.iter(|| {
                stamp(&mut frames, next, set);
                next += n;
                d.check_burst(&frames, &layers, T0 + 1000, &mut verdicts);
                black_box(&verdicts);
            })
        });
        report(&format!("hit/burst32/{name}"), &d);
    }
    let set = ENTRIES as u64 / 8;
    let mut d = table(ENTRIES);
    fill(&mut d, &mut frames, &layers, set);
    let mut next = 0u64;
    g.bench_function("hit/single/1M", |b| {
        b.iter(|| {
            stamp(&mut frames, next, set);
            next += n;
            for ((f, l), v) in frames.iter().zip(&layers).zip(&mut verdicts) {
                *v = d.check(f, l, T0 + 1000);
            }
            black_box(&verdicts);
        })
    });
    report("hit/single/1M", &d);

    // The same burst again and again: buckets in L1.
    let mut d = table(ENTRIES);
    stamp(&mut frames, 0, u64::MAX);
    d.check_burst(&frames, &layers, T0, &mut verdicts);
    g.bench_function("hot_hit/burst32", |b| {
        b.iter(|| {
            d.check_burst(&frames, &layers, T0 + 1000, &mut verdicts);
            black_box(&verdicts);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("dedup/fingerprint");
    g.throughput(Throughput::Elements(1));
    let d = table(ENTRIES);
    for len in [64, 1514] {
        let (f, l) = frame(len);
        g.bench_function(format!("{len}B"), |b| {
            b.iter(|| black_box(d.fingerprint(black_box(f.data()), black_box(&l))))
        });
    }
    g.finish();
}

/// 1 Mi flows: where the table's memory comes from decides how many of
/// the random bucket loads also miss the TLB.
fn bench_1m_flows(c: &mut Criterion<ThreadCpuTime>) {
    dataplane::dpdk::testing::shared_eal("bench-dedup");
    let (f, l) = frame(64);
    let mut frames = vec![f; BURST];
    let layers = vec![l; BURST];
    let mut verdicts = [Verdict::Unique; BURST];
    let flows = 1u64 << 20;
    let cfg = DedupConfig {
        entries: 4 << 20,
        ..DedupConfig::default()
    };
    let mut g = c.benchmark_group("dedup/1Mi-flows");
    g.throughput(Throughput::Elements(BURST as u64));
    type Make = fn(&DedupConfig) -> Dedup;
    let tables: [(&str, Make); 3] = [
        ("heap-4k-pages", |cfg| {
            Dedup::new(cfg).expect("valid config")
        }),
        ("heap-thp", |cfg| {
            Dedup::new_with(cfg, |a, n| {
                dataplane::dpdk::advise_hugepages(a, n);
            })
            .expect("valid config")
        }),
        ("dpdk-hugepages", |cfg| {
            let d = Dedup::new_on_hugepages(cfg).expect("valid config");
            assert!(d.on_hugepages(), "EAL has 64 MiB of hugepages");
            d
        }),
    ];
    for (name, make) in tables {
        let mut d = make(&cfg);
        fill(&mut d, &mut frames, &layers, flows);
        let mut next = 0u64;
        g.bench_function(format!("hit/{name}"), |b| {
            b.iter(|| {
                stamp(&mut frames, next, flows);
                next += BURST as u64;
                d.check_burst(&frames, &layers, T0 + 1000, &mut verdicts);
                black_box(&verdicts);
            })
        });
        report(&format!("1Mi-flows/hit/{name}"), &d);
    }

    // Where the buckets' loads start, on the worker's table (hugepages):
    // `other-work` stands for what the worker does between parse and
    // dedup (classify): here a second fingerprint pass over the burst,
    // the same work in each order.
    let other_work = |d: &Dedup, frames: &[VecFrame], layers: &[Layers]| {
        for (f, l) in frames.iter().zip(layers) {
            black_box(d.fingerprint(black_box(f.data()), l));
        }
    };
    let want = [true; BURST];
    let mut fps = [Fingerprint::default(); BURST];
    let mut d = Dedup::new_on_hugepages(&cfg).expect("valid config");
    fill(&mut d, &mut frames, &layers, flows);
    let mut next = 0u64;
    g.bench_function("hit/other-work-then-dedup", |b| {
        b.iter(|| {
            stamp(&mut frames, next, flows);
            next += BURST as u64;
            other_work(&d, &frames, &layers);
            d.check_burst_where(&frames, &layers, &want, T0 + 1000, &mut verdicts);
            black_box(&verdicts);
        })
    });
    g.bench_function("hit/prefetch-other-work-dedup", |b| {
        b.iter(|| {
            stamp(&mut frames, next, flows);
            next += BURST as u64;
            d.prefetch_burst(&frames, &layers, &mut fps);
            other_work(&d, &frames, &layers);
            d.check_prefetched_where(&fps, &want, T0 + 1000, &mut verdicts);
            black_box(&verdicts);
        })
    });
    // Burst N's probes after burst N+1's prefetch, no other work.
    let mut ahead = frames.clone();
    let mut fps_ahead = [Fingerprint::default(); BURST];
    stamp(&mut ahead, next, flows);
    d.prefetch_burst(&ahead, &layers, &mut fps_ahead);
    g.bench_function("hit/pipelined-one-burst-ahead", |b| {
        b.iter(|| {
            next += BURST as u64;
            stamp(&mut ahead, next, flows);
            fps = fps_ahead;
            d.prefetch_burst(&ahead, &layers, &mut fps_ahead);
            d.check_prefetched_where(&fps, &want, T0 + 1000, &mut verdicts);
            black_box(&verdicts);
        })
    });
    report("1Mi-flows/hit/where-the-loads-start", &d);
    g.finish();
}

/// Inserts packets `0..set` at T0.
fn fill(d: &mut Dedup, frames: &mut [VecFrame], layers: &[Layers], set: u64) {
    let mut verdicts = [Verdict::Unique; BURST];
    for first in (0..set).step_by(BURST) {
        stamp(frames, first, set);
        d.check_burst(frames, layers, T0, &mut verdicts);
    }
}

fn report(name: &str, d: &Dedup) {
    let c = d.counters();
    eprintln!(
        "  {name}: checked {} hits {} ({:.4} %) inserts {} evictions {} expired-replacements {}",
        c.checked,
        c.hits,
        100.0 * c.hits as f64 / c.checked.max(1) as f64,
        c.inserts,
        c.evictions,
        c.expired_replacements
    );
}

criterion_group!(benches, bench);
criterion_group! {
    name = benches_cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_1m_flows
}
criterion_main!(benches, benches_cpu);
