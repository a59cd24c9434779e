//! The compiled policy the workers run: what the control plane's policy
//! compiler produces and swaps in as a whole.

use std::net::IpAddr;

use crate::stage::encap::{OuterVlan, OversizePolicy, TunnelConfig};
use crate::stage::filter::Classifier;
use crate::stage::mask::MaskSpec;
use crate::stage::sample::SampleSpec;
use crate::stage::strip::StripSpec;

/// A per-destination rate limit; either bound may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Megabits per second of encapsulated traffic.
    pub mbps: Option<u64>,
    /// Packets per second.
    pub pps: Option<u64>,
}

/// One analysis destination: where its copies go, and what each copy
/// loses (strip), has hidden (mask) or is left out by (sample) on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub name: String,
    pub out: Output,
    pub rate: RateLimit,
    /// Headers taken off every copy before it leaves.
    pub strip: StripSpec,
    /// Bytes overwritten in every copy before it leaves.
    pub mask: Option<MaskSpec>,
    /// Which packets this destination takes.
    pub sample: Option<SampleSpec>,
}

/// How a destination's copies leave the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// In a tunnel to a remote analyser, by the uplink its route takes.
    Tunnel(TunnelOut),
    /// As captured (after strip and mask), on a tool port or spread over a
    /// tool group: the index into [`crate::runtime::tables::Tables::tools`].
    Tool(u16),
}

/// A tunnel destination: where its tunnel goes, by which uplink, and how
/// it is built. The route is chosen when the policy is compiled; outer
/// MACs and source address come from that uplink and its resolved next
/// hop when the tables are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelOut {
    pub tunnel: TunnelConfig,
    pub remote: IpAddr,
    /// The uplink its copies leave by: the worker's uplink TX lane.
    pub uplink: u16,
    /// Whose MAC the outer Ethernet header goes to: the remote itself on
    /// the uplink's subnet, else a static route's next hop or the gateway.
    pub next_hop: IpAddr,
    pub dscp: u8,
    pub ttl: u8,
    pub vlan: Option<OuterVlan>,
    pub oversize: OversizePolicy,
}

impl Destination {
    /// The tunnel, for a tunnel destination.
    pub fn tunnel(&self) -> Option<&TunnelOut> {
        match &self.out {
            Output::Tunnel(t) => Some(t),
            Output::Tool(_) => None,
        }
    }
}

/// A validated, compiled policy. Immutable once built: changes make a new one.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The operator's or controller's version label.
    pub version: String,
    pub classifier: Classifier,
    /// Indexed by [`crate::stage::filter::DestId`].
    pub destinations: Vec<Destination>,
    /// Rule names, indexed by [`crate::stage::filter::RuleId`].
    pub rule_names: Vec<String>,
    /// Each rule's own sampling, indexed like `rule_names`.
    pub rule_samples: Vec<Option<SampleSpec>>,
    /// Whether flow metering counts each rule's packets, indexed like
    /// `rule_names`.
    pub rule_meters: Vec<bool>,
    /// Whether it counts packets no rule matched.
    pub meter_default: bool,
}

#[cfg(feature = "dpdk")]
impl CompiledPolicy {
    /// Moves the classifier's flow-cache misses onto rte_acl (on the main
    /// lcore, before the policy reaches the workers: building takes up to
    /// seconds for 10,000 rules) when its bit vectors could not be built.
    /// rte_acl is as fast as TupleMerge at 1,000 rules and about twice as
    /// fast at 10,000 (`perf/benches/classifier.rs`). Returns what the
    /// operator should be told: why a policy's misses do not take the
    /// fastest path its size allows (bit vectors refused, rte_acl refused
    /// or no EAL), `None` when they do.
    pub fn choose_miss_path(&mut self) -> Option<String> {
        if self.classifier.uses_bitvec() {
            return None;
        }
        let refused = self
            .classifier
            .bitvec_refusal()
            .map(|e| format!("no bit vectors ({e}); "))
            .unwrap_or_default();
        let acl = if !crate::dpdk::eal_running() {
            Err("EAL is not running".to_string())
        } else {
            self.classifier.adopt_acl().map_err(|e| e.to_string())
        };
        match acl {
            Ok(()) if refused.is_empty() => None,
            Ok(()) => Some(format!(
                "policy {:?}: {refused}flow-cache misses go to rte_acl",
                self.version
            )),
            Err(e) => Some(format!(
                "policy {:?}: {refused}flow-cache misses stay on TupleMerge: {e}",
                self.version
            )),
        }
    }
}
