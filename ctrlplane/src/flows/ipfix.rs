//! IPFIX encoding lives with the record model in `dataplane::flow::ipfix`
//! (plain bytes, no DPDK: the benchmarks use it too); here under the name
//! the control plane's flow modules use.

pub use dataplane::flow::ipfix::*;
