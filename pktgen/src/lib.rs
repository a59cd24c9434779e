//! pktgen: Sluice's traffic generator and pcap writer (DESIGN §2, §8). It
//! uses `dataplane` only for DPDK ports (`dataplane::dpdk`); frames are built
//! with etherparse, so the generator and the appliance never share a bug.
//! The `pktgen` binary (`main.rs`) is a thin command line over these modules.
//!
//! [`profile`] is the TOML traffic profile: flows, sizes, duplicate ratio,
//! VLANs, an optional tunnel, checked on load with errors that name the
//! offending key.
//!
//! [`gen`] builds one cycle of frames from a profile, deterministically (the
//! same profile gives the same bytes); duplicates are delayed copies with
//! the rewrites the profile asks for (as another mirror point sees them).
//!
//! [`stamp`] is the per-flow sequence stamp every payload carries, what the
//! soak test and [`check`] use to find loss, reordering and duplicates.
//!
//! [`check`] reads the stamps of received frames and reports loss,
//! reordering and duplicates per flow.
//!
//! [`latency`] keeps receive time − send time of frames whose stamp is
//! followed by a send time, as a histogram with percentiles.
//!
//! [`pcap`] writes a cycle as a capture file and reads captures back; no
//! DPDK needed.
//!
//! [`port`] sends and receives through any DPDK port given by its devargs
//! (net_pcap, net_ring, net_tap...), at a given rate or as fast as it can,
//! and runs a latency loop: send on one port, receive on another.

pub mod check;
pub mod gen;
pub mod latency;
pub mod pcap;
pub mod port;
pub mod profile;
pub mod stamp;

pub use check::{Checker, Report};
pub use gen::{generate, Cycle, Packet};
pub use profile::{Profile, ProfileError};
