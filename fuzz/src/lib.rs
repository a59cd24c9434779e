//! The checks behind Sluice's fuzz targets, one module per target.
//!
//! Each `fuzz_targets/*.rs` is one line that calls a `run` function here,
//! so `tests/replay.rs` can put every checked-in corpus and regression
//! input through the very same checks with plain `cargo test` (stable, no
//! sanitizer, no libFuzzer). A check that fails panics: libFuzzer records
//! the input as a crash.
//!
//! The frame targets use dataplane without DPDK; the control-plane targets
//! need ctrlplane, which links DPDK, and are behind the `ctrl` feature.

pub mod decap_nested;
pub mod fixtures;
pub mod sflow;
pub mod stages;

#[cfg(feature = "ctrl")]
pub mod cli;
#[cfg(feature = "ctrl")]
pub mod config;
#[cfg(feature = "ctrl")]
pub mod policy;
#[cfg(feature = "ctrl")]
pub mod protocol;

/// A fuzz target's name and its checks.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target this build has.
pub fn targets() -> Vec<Target> {
    let frames: [Target; 3] = [
        ("stages", stages::run),
        ("decap_nested", decap_nested::run),
        ("sflow", sflow::run),
    ];
    #[cfg(feature = "ctrl")]
    let ctrl: [Target; 4] = [
        ("config", config::run),
        ("policy", policy::run),
        ("protocol", protocol::run),
        ("cli", cli::run),
    ];
    #[cfg(not(feature = "ctrl"))]
    let ctrl: [Target; 0] = [];
    frames.into_iter().chain(ctrl).collect()
}
