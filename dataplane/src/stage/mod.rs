//! Pipeline stages: pure functions over a burst of frames, no DPDK.
//!
//! Order on a worker: parse → filter → dedup → slice → tag → encap (TAP
//! aggregation), or parse → decap → filter → dedup (decap front-end). A
//! tool destination takes its copy through strip and mask, a tool group
//! picks its member with balance, and sample keeps 1 in N. Each stage keeps
//! its own counters and can be benchmarked alone.

pub mod balance;
pub mod decap;
pub mod dedup;
pub mod encap;
pub mod filter;
pub mod mask;
pub mod parse;
pub mod sample;
pub mod slice;
pub mod strip;
pub mod tag;

/// Packets per burst, as in DPDK's l2fwd and testpmd.
pub const BURST: usize = 32;

/// Which way a mirrored packet travelled, as the input port's config says
/// (a TAP has one port per direction). ERSPAN's D bit: 0 ingress, 1 egress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    #[default]
    Ingress,
    Egress,
}
