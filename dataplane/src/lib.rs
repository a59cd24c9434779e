//! The Sluice dataplane: everything a worker lcore runs.
//!
//! - [`wire`]: zero-copy header views and emitters (no DPDK).
//! - [`stage`]: the pipeline stages as functions over a burst (no DPDK).
//! - [`frame`]: the buffer abstraction stages work on, implemented by
//!   DPDK mbufs and by plain vectors in tests.
//! - `dpdk`: the safe layer over DPDK, the only module with `unsafe`.
//! - `runtime`: worker loop, tx buffering, exception path, counters.

pub mod frame;
pub mod runtime;
pub mod stage;
pub mod wire;

// The one module of this crate where `unsafe` is allowed (the workspace
// denies it everywhere else): every block there carries a SAFETY line.
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;
