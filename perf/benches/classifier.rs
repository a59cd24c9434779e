//! Criterion comparison of the classifier's miss path: TupleMerge (the
//! `filter` stage's own tables) against DPDK's `rte_acl` built from the
//! same compiled entries and the per-field bit vectors built from the
//! rules (the appliance's miss path), on the same rule sets and the same keys as
//! `benches/filter.rs` (1,000 and 10,000 mixed rules, 65,536 flows). The
//! flow cache's size and associativity: `benches/flow_cache.rs`.
//!
//! - `alone/<path>/<rules>`: the classifier with no flow cache, bursts of 32;
//! - `miss/<path>/<rules>`: 65,536 flows through a 4,096-flow cache, nearly
//!   every packet a miss (what the worker runs, `classify_burst_cached`).
//!
//! Measured in the thread's CPU time (see `common/cputime.rs`): ns/packet
//! = 1e3 / Melem/s. Needs EAL (hugepages): rte_acl allocates DPDK memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::stage::filter::{
    AclMissPath, Action, BitVecMissPath, BurstFields, Classifier, FlowCache, Verdict,
};
use dataplane::stage::parse::Layers;
use dataplane::stage::{Direction, BURST};

mod common;
#[path = "common/cputime.rs"]
mod cputime;
use common::{flows, rules, Rng};
use cputime::ThreadCpuTime;

fn shuffled(pkts: &[Layers], len: usize, seed: u64) -> Vec<Layers> {
    let mut r = Rng(seed);
    (0..len)
        .map(|_| pkts[r.below(pkts.len() as u64) as usize])
        .collect()
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    dataplane::dpdk::testing::shared_eal("bench-classifier");
    let mut g = c.benchmark_group("classifier");
    g.throughput(Throughput::Elements(BURST as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    let ports = [0u16; BURST];
    let dirs = [Direction::Ingress; BURST];
    let mut out = [Verdict::DEFAULT; BURST];
    for n in [1_000usize, 10_000] {
        // The filter bench's seeds: the same rules and flows.
        let rules = rules(n, 0x5eed + n as u64);
        let tm = Classifier::build(&rules, Action::Drop).expect("bench rules are valid");
        let t = Instant::now();
        let acl = AclMissPath::build(&tm).expect("rte_acl builds the bench rules");
        eprintln!(
            "classifier: {n} rules -> {} entries; rte_acl {:?} (v4, v6) rules, built in {:?}",
            tm.entry_count(),
            acl.rule_counts(),
            t.elapsed()
        );
        let t = Instant::now();
        let bv = BitVecMissPath::build(&rules).expect("bit vectors build the bench rules");
        eprintln!(
            "classifier: {n} rules -> bit vectors of {:.1} MB ({}), built in {:?}",
            bv.memory() as f64 / 1e6,
            bv.describe(),
            t.elapsed()
        );
        // `Classifier::build` makes the bit vectors for policies up to
        // `BITVEC_MAX_RULES`; here every size has them, the others none.
        let mut with_bv = tm.clone();
        with_bv
            .adopt_bitvec(&rules)
            .expect("bit vectors build the bench rules");
        let mut tm = tm;
        tm.drop_bitvec();
        let mut with_acl = tm.clone();
        with_acl
            .adopt_acl()
            .expect("rte_acl builds the bench rules");
        let order = shuffled(&flows(&rules, 65_536, 0xf10e + n as u64), 65_536, 7);
        // Same answers, or the comparison means nothing.
        let mut differ = 0;
        for burst in order.chunks(BURST) {
            acl.classify_burst(&tm, burst, &ports, &dirs, &mut out);
            for (l, v) in burst.iter().zip(&out) {
                differ += usize::from(tm.classify(l, 0, Direction::Ingress) != *v);
            }
        }
        assert_eq!(differ, 0, "rte_acl and TupleMerge disagree at {n} rules");
        for burst in order.chunks(BURST) {
            bv.classify_burst(&tm, burst, &ports, &dirs, &mut out);
            for (l, v) in burst.iter().zip(&out) {
                differ += usize::from(tm.classify(l, 0, Direction::Ingress) != *v);
            }
        }
        assert_eq!(
            differ, 0,
            "bit vectors and TupleMerge disagree at {n} rules"
        );
        {
            let mut hist = [0usize; 22];
            for l in &order {
                let v = tm.classify(l, 0, Direction::Ingress);
                hist[v.rule_index().map_or(21, |i| (i / 512).min(20))] += 1;
            }
            eprintln!("classifier: first match by block of 512 (last: default): {hist:?}");
        }

        let mut at = 0usize;
        g.bench_function(BenchmarkId::new("alone/tuplemerge", n), |b| {
            b.iter(|| {
                let burst = &order[at..at + BURST];
                at = (at + BURST) % order.len();
                for (o, l) in out.iter_mut().zip(burst) {
                    *o = tm.classify(l, 0, Direction::Ingress);
                }
                black_box(&out);
            })
        });
        g.bench_function(BenchmarkId::new("alone/rte_acl", n), |b| {
            b.iter(|| {
                let burst = &order[at..at + BURST];
                at = (at + BURST) % order.len();
                acl.classify_burst(&tm, burst, &ports, &dirs, &mut out);
                black_box(&out);
            })
        });
        g.bench_function(BenchmarkId::new("alone/bitvec", n), |b| {
            b.iter(|| {
                let burst = &order[at..at + BURST];
                at = (at + BURST) % order.len();
                bv.classify_burst(&tm, burst, &ports, &dirs, &mut out);
                black_box(&out);
            })
        });
        for (name, cls) in [
            ("miss/tuplemerge", &tm),
            ("miss/rte_acl", &with_acl),
            ("miss/bitvec", &with_bv),
        ] {
            let mut cache = FlowCache::new(4096);
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    let burst = &order[at..at + BURST];
                    at = (at + BURST) % order.len();
                    let fields = BurstFields {
                        layers: burst,
                        in_ports: &ports,
                        dirs: &dirs,
                    };
                    cls.classify_burst_cached(&mut cache, fields, &mut out);
                    black_box(&out);
                })
            });
            eprintln!(
                "classifier: {name} {n}: cache hits {} misses {}",
                cache.hits(),
                cache.misses()
            );
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
