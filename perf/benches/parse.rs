//! Criterion benchmark of the parse stage (ns per packet, 64-byte packets, bursts of 32).
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(_c: &mut Criterion) {}

criterion_group!(benches, bench);
criterion_main!(benches);
