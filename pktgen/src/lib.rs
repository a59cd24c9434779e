//! Traffic generator: profiles, pcap writer, DPDK sender and checker.
//!
//! - [`profile`]: the TOML profile (flows, sizes, duplicates, tunnel), checked.
//! - [`gen`]: one cycle of frames built from a profile, deterministic.
//! - [`stamp`]: the per-flow sequence stamp in every payload.
//! - [`check`]: loss, reordering and duplicates from the stamps received.
//! - [`pcap`]: capture files in and out (no DPDK needed).
//! - [`port`]: send and receive through any DPDK port.

pub mod check;
pub mod gen;
pub mod pcap;
pub mod port;
pub mod profile;
pub mod stamp;

pub use check::{Checker, Report};
pub use gen::{generate, Cycle, Packet};
pub use profile::{Profile, ProfileError};
