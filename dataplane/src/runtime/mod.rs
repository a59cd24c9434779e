//! What runs on the lcores around the stages: the compiled policy, counters,
//! the worker loop, TX buffering, the exception path, and the one reading
//! of the counters (`snapshot`) that the control plane renders.

pub mod counters;
pub mod policy;
pub mod polling;
pub mod ratelimit;
pub mod tables;
pub mod trace;

#[cfg(feature = "dpdk")]
pub mod clock;
#[cfg(feature = "dpdk")]
pub mod distributor;
#[cfg(feature = "dpdk")]
pub mod idle;
#[cfg(feature = "dpdk")]
pub mod snapshot;
#[cfg(feature = "dpdk")]
pub mod worker;
