//! Safe layer over DPDK.
