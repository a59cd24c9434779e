//! Sluice's performance measurements.
//!
//! - `benches/`: criterion micro benchmarks, ns per packet per stage.
//! - [`scenario`], [`run`], [`report`]: the end-to-end harness behind the
//!   `e2e` binary — Sluice against `dpdk-testpmd` in io mode on the same
//!   virtual devices, alternating runs, medians, JSON, Markdown and a chart.

pub mod ovs;
pub mod report;
pub mod run;
pub mod scenario;
