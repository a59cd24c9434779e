//! What the integration tests of every Sluice crate share, in one place
//! (a dev-dependency only; nothing here ships).
//!
//! - [`names`]: names, DPDK file prefixes and temp dirs unique to a
//!   process and call, so tests running at once never share a file.
//! - [`pcap`]: pcap files in and out, what tests feed `net_pcap` and read
//!   back from it.
//! - [`tshark`]: tshark as the independent judge, as fields or as JSON.
//! - [`eal`]: EAL arguments for a test run: no PCI, in memory (no hugepage
//!   files to clean up), a unique prefix.
//! - [`process`]: a child process whose stderr a test waits on, killed if
//!   the test fails half-way.
//! - [`netns`]: network namespaces, veth pairs and captures inside them,
//!   all removed on drop; nothing touches the machine's own namespace.
//!
//! What only one crate's tests need (Sluice's report format, pktgen's frame
//! reader, dataplane's frame builders) stays in that crate's `tests/common`.

pub mod eal;
pub mod names;
pub mod netns;
pub mod pcap;
pub mod process;
pub mod tshark;
