//! What workers read on every burst: the compiled policy plus, per
//! destination, its ready-built tunnel template. Swapped as a whole by the
//! main lcore (policy change, next hop resolved or lost).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::runtime::policy::CompiledPolicy;
use crate::stage::balance::{FlowHasher, GroupTable};
use crate::stage::encap::EncapTemplate;

/// One destination as the workers use it.
#[derive(Debug, Clone)]
pub struct DestTable {
    /// Counter slot: stays with the destination's name across swaps.
    pub slot: u16,
    /// Outer headers; `None` while the next hop is unresolved (its copies
    /// are counted `dropped_no_nexthop`).
    pub template: Option<EncapTemplate>,
    /// The destination's sequence numbers, shared by every worker and kept
    /// across swaps: each number is used once, so a receiver that sees a
    /// gap has lost a packet (workers take them in blocks per burst, so
    /// numbers may arrive out of order between workers).
    pub seq: Arc<AtomicU32>,
}

/// Everything a worker needs from the control plane, immutable once published.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Bumped on every publish; workers rebuild their local state on change.
    pub generation: u64,
    pub policy: Arc<CompiledPolicy>,
    /// Indexed like `policy.destinations`.
    pub dests: Vec<DestTable>,
    /// The tool ports and tool groups tool destinations send to, indexed
    /// by [`crate::runtime::policy::Output::Tool`]: every tool port of the
    /// config (a group of one), then every tool group. Rebuilt when a
    /// member's link goes down or comes back.
    pub tools: Arc<[ToolTable]>,
}

/// A tool port or a tool group as the workers use it.
#[derive(Debug, Clone)]
pub struct ToolTable {
    pub name: String,
    /// The members' tool port indexes (the worker's tool TX queues and
    /// [`crate::runtime::counters::WorkerStats::tool_ports`]).
    pub members: Vec<u16>,
    /// Slot table over `members` by flow hash; `None` when no member is
    /// live (copies are counted `dropped_no_tool`).
    pub table: Option<GroupTable>,
    /// The group's flow hash (unused with one member).
    pub hasher: FlowHasher,
    /// The longest untagged frame every live member carries (the smallest
    /// member MTU plus the Ethernet header), so that a burst is checked
    /// against one number; 0 when no member is live.
    pub max_frame: usize,
}

impl ToolTable {
    /// The tool port index a copy with flow hash `hash` goes to, if any
    /// member is live.
    #[inline]
    pub fn port_for(&self, hash: u32) -> Option<u16> {
        let t = self.table.as_ref()?;
        self.members.get(t.member(hash)).copied()
    }
}
