//! The Sluice dataplane: everything a worker lcore runs.
//!
//! - [`wire`]: zero-copy header views and emitters (no DPDK).
//! - [`stage`]: the pipeline stages as functions over a burst (no DPDK).
//! - [`frame`]: the buffer abstraction stages work on, implemented by
//!   DPDK mbufs and by plain vectors in tests.
//! - `dpdk`: the safe layer over DPDK, the only module with `unsafe`.
//! - `runtime`: worker loop, tx buffering, exception path, counters.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod frame;
pub mod runtime;
pub mod stage;
pub mod wire;

#[cfg(feature = "dpdk")]
pub mod dpdk;
