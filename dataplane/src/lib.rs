//! The Sluice dataplane: everything a worker lcore runs (DESIGN §2, §3).
//! Dependencies point one way, `dpdk-sys` ← `dataplane` ← `ctrlplane`, and
//! inside the crate from the bottom up: `wire` ← `frame` ← `stage` ←
//! `runtime`, with `dpdk` beside them.
//!
//! [`wire`] holds the packet facts: a zero-copy view per header (Ethernet,
//! VLAN, MPLS, ARP, IPv4, IPv6, TCP, UDP, ICMP, GRE, ERSPAN, VXLAN, Geneve)
//! in smoltcp's style, with a `field` module of offsets, a `Packet` view
//! whose accessors never panic and a `Repr` with `parse`/`emit`; the
//! EtherType and IP protocol numbers and the GSO length rule are written
//! there once. No DPDK.
//!
//! [`frame`] is the buffer the stages work on: the `Frame` trait, which
//! `dpdk::Mbuf` implements on the appliance and `VecFrame`/`ChainFrame`
//! implement in tests, benchmarks and fuzzing, so every stage runs with
//! plain `cargo test`.
//!
//! [`stage`] holds the pipeline stages of DESIGN §4, pure functions over a
//! burst: parse → filter → dedup → slice → tag → encap for TAP aggregation,
//! parse → decap → filter → dedup on a decap front end; per tool
//! destination, sample (1 in N packets or flows), strip (VLAN, MPLS,
//! VN-Tag and tunnel headers off), mask (bytes at an offset from a layer
//! overwritten) and balance (a tool group's member by a symmetric flow
//! hash and a weighted slot table with failover). Each declares its error
//! counters in one place, as a VPP node does, and none calls another except
//! through documented helpers (decap's classifier, encap's flow hash).
//!
//! [`flow`] is flow metering: the record model that the workers' flow
//! tables, intake and every exporter share.
//!
//! `runtime` is what runs on the lcores around the stages (DESIGN §3): the
//! compiled policy and its quiescent-state swap, the per-worker counters
//! that make `rx = Σ terminals`, the worker loop in l2fwd's shape (rx
//! burst → stages → buffered tx), the distributor for ports without RSS,
//! rate limits, packet traces and the exception path to the main lcore;
//! and the `Snapshot` the main lcore reads those counters into, once, for
//! every renderer (console, Prometheus, telemetry, heartbeat).
//!
//! `dpdk` (feature `dpdk`) is the safe layer over the `dpdk-sys` bindings:
//! EAL, mempools, an owned `Mbuf` that frees on drop, ports and queues,
//! rings, lcores, pdump and telemetry. It is the one module of the crate
//! where `unsafe` is allowed, each block with a `// SAFETY:` line.

pub mod flow;
pub mod frame;
pub mod runtime;
pub mod stage;
pub mod wire;

// The one module of this crate where `unsafe` is allowed (the workspace
// denies it everywhere else): every block there carries a SAFETY line.
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;
