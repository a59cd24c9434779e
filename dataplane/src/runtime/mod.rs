//! What runs on the lcores around the stages: the compiled policy, counters,
//! the worker loop, TX buffering and the exception path.

pub mod counters;
pub mod policy;
pub mod ratelimit;
pub mod tables;
pub mod trace;

#[cfg(feature = "dpdk")]
pub mod clock;
#[cfg(feature = "dpdk")]
pub mod distributor;
#[cfg(feature = "dpdk")]
pub mod worker;
