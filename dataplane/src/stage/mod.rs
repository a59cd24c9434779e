//! Pipeline stages: pure functions over a burst of frames, no DPDK.
//!
//! Order on a worker: parse → filter → dedup → slice → tag → encap (TAP
//! aggregation), or parse → decap → filter → dedup (decap front-end). Each
//! stage keeps its own counters and can be benchmarked alone.

pub mod decap;
pub mod dedup;
pub mod encap;
pub mod filter;
pub mod parse;
pub mod slice;
pub mod tag;

/// Packets per burst, as in DPDK's l2fwd and testpmd.
pub const BURST: usize = 32;
