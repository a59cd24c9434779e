//! The Sluice control plane: everything on the main lcore (DESIGN §2, §3,
//! §6). The map, one paragraph per module. Arrows point down: `appliance`
//! composes the others, and no module below it imports it.
//!
//! - [`appliance`]: the appliance on the main lcore, a small struct of
//!   owned parts, each in a file of its own with a narrow interface: port
//!   and lcore planning (`plan`, a builder failing with a typed
//!   `PlanError`), the workers' and distributor's set-up, launch, health
//!   and join (`lcores`), the policy publisher (`publisher`: compile,
//!   publish, destination slots and sequence words, the next hops'
//!   tunnel templates), the guard's sampling and shed word (`protect`),
//!   the controller link (`controller`: agent, session, heartbeat), the
//!   ports and their link events (`links`), pdump taps (`pdump`),
//!   vhost-user sockets (`vhost`), ARP/ND answerers of decap inputs
//!   (`answer`) and each console command's text from a view of the parts
//!   (`console`). `mod.rs` starts the parts in order (a `StartError`
//!   names what failed), runs the control loop and shuts down with the
//!   final counters.
//! - [`capture`]: capture files as inputs: read, given an Ethernet header
//!   where their link type has none, paced, and handed to a `net_ring`
//!   port the workers poll like a NIC.
//! - [`config`]: the appliance TOML (ports, lcores, mempools, dedup,
//!   uplink, limits, controller), parsed at load into typed values
//!   (prefixes, MACs, devices, durations); errors name the key, all at once.
//! - [`policy`]: the policy model operators and the controller write, its
//!   validation (every problem with its path) and its compilation into the
//!   tables the workers run.
//! - [`neighbor`]: ARP and neighbour discovery, one table per uplink; pure logic
//!   (frames in, frames out), tested without DPDK.
//! - [`guard`]: when to enter and leave `protect`; pure logic over the
//!   pressure samples `appliance` feeds it.
//! - [`agent`]: the session with the controller on a thread of its own
//!   (TLS 1.3, mutual authentication, the `sluice-protocol` crate's
//!   frames), talking to the main loop through an `AgentHandle`. The
//!   reference controller is the `sluice-controller` crate beside this one.
//! - [`cli`]: the testpmd-style command language, the interactive prompt
//!   and the control socket `sluice-cli` talks to; requests reach the main
//!   lcore as `Envelope`s, served between slow-path rounds.
//! - [`stats`], [`metrics`], [`telemetry`]: one counter snapshot
//!   (`dataplane::runtime::snapshot`, read once) rendered three ways:
//!   console text (`show fwd stats`, `show port stats`, the exit report),
//!   the Prometheus exposition, and DPDK telemetry's `/sluice/…`
//!   commands. The controller heartbeat renders the same snapshot.
//! - [`state`]: the appliance's state (`selfcheck`, `running`, `protect`,
//!   `stopped`, `exception`) as everyone reports it.
//! - [`log`]: one line on stderr per event, with its level, as text or
//!   JSON; every module may import it.
//! - [`args`]: the command lines of `sluice` and `sluice-cli` (the man
//!   pages are generated from them).
//! - [`flows`]: flow telemetry: IPFIX encoding and the export thread
//!   that takes flow records from the workers and intake to collectors.
//! - [`default`], [`sample`]: the built-in default run on virtual devices,
//!   and its sample traffic.

pub mod agent;
pub mod appliance;
pub mod args;
pub mod capture;
pub mod cli;
pub mod config;
pub mod default;
pub mod flows;
pub mod guard;
pub mod intake;
pub mod log;
pub mod metrics;
pub mod neighbor;
pub mod policy;
pub mod sample;
pub mod state;
pub mod stats;
pub mod stream;
pub mod telemetry;
