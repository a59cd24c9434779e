//! Every stage's criterion benches in one binary: what `make bench` builds
//! and runs.
//!
//! The release profile links with thin LTO, so each bench binary costs a
//! whole-program optimisation of dataplane, criterion and their
//! dependencies: about as much CPU as `sluice` itself. One binary for all
//! of them is one such link instead of one per file. Each file stays its
//! own bench target too (`cargo bench --bench parse`).
//!
//! A new bench file gets a module here and a call of each group its
//! `criterion_main!` names; `perf`'s unit tests check that none is left
//! out.

// Each file declares the `common` helpers it uses, as its own target
// needs; here they are compiled once per file that does.
#![allow(clippy::duplicate_mod)]

// Each file's `main` (its `criterion_main!`) is its own target's entry
// point; here the groups are called directly.
#[allow(dead_code)]
#[path = "classifier.rs"]
mod classifier;
#[allow(dead_code)]
#[path = "clone.rs"]
mod clone;
#[allow(dead_code)]
#[path = "decap.rs"]
mod decap;
#[allow(dead_code)]
#[path = "dedup.rs"]
mod dedup;
#[allow(dead_code)]
#[path = "encap.rs"]
mod encap;
#[allow(dead_code)]
#[path = "filter.rs"]
mod filter;
#[allow(dead_code)]
#[path = "flow_cache.rs"]
mod flow_cache;
#[allow(dead_code)]
#[path = "flows.rs"]
mod flows;
#[allow(dead_code)]
#[path = "parse.rs"]
mod parse;
#[allow(dead_code)]
#[path = "slice.rs"]
mod slice;
#[allow(dead_code)]
#[path = "tools.rs"]
mod tools;

fn main() {
    parse::benches();
    filter::benches();
    classifier::benches();
    flow_cache::benches();
    dedup::benches();
    dedup::benches_cpu();
    slice::benches();
    encap::benches();
    decap::benches();
    clone::benches();
    tools::benches();
    flows::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
