//! Criterion benchmark of the filter stage: ns per packet, bursts of 32.
//!
//! Rule sets of 10 / 1,000 / 10,000 mixed rules (CIDRs of varied lengths,
//! groups, port ranges, protocol, VLAN, TCP flags, some IPv6). Three paths:
//! - `hit`:     256 flows, all resident in the flow cache;
//! - `miss`:    65,536 flows through a 4,096-flow cache (nearly every packet
//!   misses, is classified and inserted);
//! - `nocache`: the classifier alone, same 65,536 flows.
//!
//! Criterion reports time per burst and throughput in packets (elements);
//! ns/packet = 1e3 / Melem/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::stage::filter::{Action, Classifier, FilterCounters, FlowCache, Verdict};
use dataplane::stage::parse::Layers;
use dataplane::stage::{Direction, BURST};

mod common;
use common::{flows, rules, Rng};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    for n in [10usize, 1_000, 10_000] {
        let rules = rules(n, 0x5eed + n as u64);
        let t = std::time::Instant::now();
        let cls = Classifier::build(&rules, Action::Drop).expect("bench rules are valid");
        eprintln!(
            "filter: {n} rules -> {} entries, {} tables, built in {:?}",
            cls.entry_count(),
            cls.table_count(),
            t.elapsed()
        );
        let ports = [0u16; BURST];
        let dirs = [Direction::Ingress; BURST];
        let mut out = [Verdict::DEFAULT; BURST];
        let mut counters = FilterCounters::new();

        for (name, nflows, cache_size) in [("hit", 256usize, 4096usize), ("miss", 65_536, 4096)] {
            let pkts = flows(&rules, nflows, 0xf10e + n as u64);
            // Send each flow's packets in a shuffled order, repeated.
            let mut r = Rng(7);
            let order: Vec<Layers> = (0..65_536)
                .map(|_| pkts[r.below(nflows as u64) as usize])
                .collect();
            let matched = order
                .iter()
                .filter(|l| !cls.classify(l, 0, Direction::Ingress).is_default())
                .count();
            eprintln!(
                "filter: {n} rules, {name}: {:.0}% of packets match a rule",
                100.0 * matched as f64 / order.len() as f64
            );
            let mut cache = FlowCache::new(cache_size);
            let mut at = 0usize;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    let burst = &order[at..at + BURST];
                    at = (at + BURST) % order.len();
                    cls.classify_burst(&mut cache, burst, &ports, &dirs, &mut out, &mut counters);
                    black_box(&out);
                })
            });
            if name == "miss" {
                let mut at = 0usize;
                g.bench_function(BenchmarkId::new("nocache", n), |b| {
                    b.iter(|| {
                        let burst = &order[at..at + BURST];
                        at = (at + BURST) % order.len();
                        for (o, l) in out.iter_mut().zip(burst) {
                            *o = cls.classify(l, 0, Direction::Ingress);
                        }
                        black_box(&out);
                    })
                });
            }
            eprintln!(
                "filter: {n} rules, {name}: cache hits {} misses {}",
                cache.hits(),
                cache.misses()
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
