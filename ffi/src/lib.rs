//! `dpdk-sys`: raw bindings to the system DPDK 22.11, the bottom of the
//! dependency chain `dpdk-sys` ← `dataplane` ← `ctrlplane` (DESIGN §2).
//! Kept apart from everything hand-written, as Firecracker keeps its
//! generated bindings, and as capsule's `ffi/` crate does.
//!
//! The bindings are generated at build time (`build.rs`): pkg-config finds
//! libdpdk, bindgen reads `wrapper.h` with the same cflags DPDK was built
//! with, and only `rte_*` and `sluice_rte_*` items are kept. They are
//! included below as one module.
//!
//! `shim.c` / `shim.h` give real symbols to what DPDK only has as
//! static-inline functions or macros (`sluice_rte_*`: rx/tx bursts, mbuf
//! allocation and freeing, `rte_errno`...), compiled by `cc` with those
//! same cflags, so a call from Rust costs what a call from C does. What is
//! cheaper to read inline has no shim: `dataplane::dpdk` reads those fields
//! itself.
//!
//! Everything here is `unsafe` to call. The safe layer is
//! `dataplane::dpdk`; this crate and that module are the only places the
//! workspace lets `unsafe` in.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(dead_code, clippy::all, rustdoc::all, improper_ctypes)]
// Bindings to C are `unsafe` by nature; this crate and `dataplane::dpdk` are
// the only places the workspace lets it in. bindgen's generated accessors
// call unsafe functions from unsafe fns without inner blocks.
#![allow(unsafe_code, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
