//! Criterion benchmark of the flow cache's size and associativity against
//! many flows: every lookup goes through `classify_burst_cached` (what the
//! worker runs) with the worker's miss path for 1,000 rules behind the
//! cache (the bit vectors: `adopt_acl` below, as the runtime calls it,
//! keeps them below `BITVEC_MAX_RULES`), so ns/packet is what a miss costs
//! times the miss rate plus what a hit costs.
//!
//! `flow_cache/<entries>x<ways>/<flows>-<order>`:
//! - entries: 64 Ki, 256 Ki or 1 Mi (the worker's);
//! - ways: 1 (direct-mapped, the worker's), 2, 4 or 8 per set, a cache
//!   line per way;
//! - flows: 64 Ki or 1 Mi distinct keys;
//! - order `random`: each packet's flow drawn uniformly, an endless stream;
//!   `harness`: the end-to-end harness's captures (`perf/src/scenario.rs`):
//!   each flow once per pass in turn, a quarter of them copied about 30
//!   packets later, the pass replayed again and again.
//!
//! Each case run also prints its hit rate in the steady state (a fresh
//! cache warmed by 2 Mi packets, then 2 Mi counted). Thread CPU time: ns/packet
//! = 1e3 / Melem/s. Needs EAL (hugepages), as the runtime's adopt does.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::stage::filter::{Action, BurstFields, Classifier, FlowCacheOf, Verdict};
use dataplane::stage::parse::Layers;
use dataplane::stage::{Direction, BURST};

mod common;
#[path = "common/cputime.rs"]
mod cputime;
use common::{flows, rules, Rng};
use cputime::ThreadCpuTime;

/// The harness's many-flow traffic: UDP 40000 → 5001 from 64 sources in
/// 10.1.0.0/26 to `n / 64` destinations from 10.64.0.0, sources fastest.
fn harness_flows(n: usize) -> Vec<Layers> {
    (0..n)
        .map(|i| Layers {
            ethertype: 0x0800,
            l3_offset: 14,
            ip_version: 4,
            l4_proto: 17,
            l4_offset: 34,
            payload_offset: 42,
            src_addr: u128::from(0x0a01_0000u32 + (i % 64) as u32),
            dst_addr: u128::from(0x0a40_0000u32 + (i / 64) as u32),
            src_port: 40000,
            dst_port: 5001,
            ..Layers::default()
        })
        .collect()
}

/// One pass of the harness's capture: every flow in turn, every fourth
/// original copied 30 packets later (2 µs at 14.88 Mpps).
fn harness_pass(n: usize) -> Vec<u32> {
    const LATER: usize = 30;
    let mut pass = Vec::with_capacity(n + n / 4);
    let mut pending = std::collections::VecDeque::new();
    for f in 0..n {
        pass.push(f as u32);
        if f % 4 == 0 {
            pending.push_back((pass.len() + LATER, f as u32));
        }
        while pending.front().is_some_and(|&(at, _)| at <= pass.len()) {
            if let Some((_, c)) = pending.pop_front() {
                pass.push(c);
            }
        }
    }
    pass.extend(pending.into_iter().map(|(_, c)| c));
    pass
}

/// Where the next packets' flows come from.
enum Order {
    Random(Rng),
    Pass { pass: Vec<u32>, at: usize },
}

impl Order {
    fn burst(&mut self, flows: &[Layers], out: &mut [Layers; BURST]) {
        for o in out.iter_mut() {
            let i = match self {
                Order::Random(r) => r.below(flows.len() as u64) as usize,
                Order::Pass { pass, at } => {
                    let i = pass[*at] as usize;
                    *at = (*at + 1) % pass.len();
                    i
                }
            };
            *o = flows[i];
        }
    }
}

/// Bench one cache configuration on one stream, and print its hit rate.
fn case<const W: usize>(
    g: &mut criterion::BenchmarkGroup<'_, ThreadCpuTime>,
    cls: &Classifier,
    entries: usize,
    stream: &str,
    flows: &[Layers],
    order: impl Fn() -> Order,
) {
    let ports = [0u16; BURST];
    let dirs = [Direction::Ingress; BURST];
    let mut out = [Verdict::DEFAULT; BURST];
    let mut burst = [Layers::default(); BURST];
    let id = format!("{}x{W}", entries_name(entries));

    let mut cache = FlowCacheOf::<W>::new(entries);
    let mut o = order();
    let mut first = true;
    g.bench_function(BenchmarkId::new(&id, stream), |b| {
        if first {
            // Steady-state hit rate, once per case run: warm up, then count.
            first = false;
            let mut fresh = FlowCacheOf::<W>::new(entries);
            let mut o = order();
            let mut run = |cache: &mut FlowCacheOf<W>, packets: usize| {
                for _ in 0..packets / BURST {
                    o.burst(flows, &mut burst);
                    let fields = BurstFields {
                        layers: &burst,
                        in_ports: &ports,
                        dirs: &dirs,
                    };
                    cls.classify_burst_cached(cache, fields, &mut out);
                }
            };
            run(&mut fresh, 2 << 20);
            let (h0, m0) = (fresh.hits(), fresh.misses());
            run(&mut fresh, 2 << 20);
            let (h, m) = (fresh.hits() - h0, fresh.misses() - m0);
            eprintln!(
                "flow_cache: {id} {stream}: hit rate {:.1} % ({h} hits, {m} misses)",
                100.0 * h as f64 / (h + m) as f64
            );
        }
        b.iter(|| {
            o.burst(flows, &mut burst);
            let fields = BurstFields {
                layers: &burst,
                in_ports: &ports,
                dirs: &dirs,
            };
            cls.classify_burst_cached(&mut cache, fields, &mut out);
            black_box(&out);
        })
    });
}

fn entries_name(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{}Mi", n >> 20)
    } else {
        format!("{}Ki", n >> 10)
    }
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    dataplane::dpdk::testing::shared_eal("bench-flow-cache");
    let rules = rules(1_000, 0x5eed + 1_000);
    let mut cls = Classifier::build(&rules, Action::Drop).expect("bench rules are valid");
    cls.adopt_acl().expect("rte_acl builds the bench rules");
    let mut g = c.benchmark_group("flow_cache");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(1));
    g.sample_size(10);
    for nflows in [1usize << 16, 1 << 20] {
        let random = flows(&rules, nflows, 0xcafe);
        let harness = harness_flows(nflows);
        let pass = harness_pass(nflows);
        let k = if nflows >= 1 << 20 { "1Mi" } else { "64Ki" };
        for entries in [1usize << 16, 1 << 18, 1 << 20] {
            macro_rules! ways {
                ($($w:literal)*) => {$(
                    case::<$w>(&mut g, &cls, entries, &format!("{k}-random"), &random,
                        || Order::Random(Rng(11)));
                    case::<$w>(&mut g, &cls, entries, &format!("{k}-harness"), &harness,
                        || Order::Pass { pass: pass.clone(), at: 0 });
                )*};
            }
            ways!(1 2 4 8);
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
