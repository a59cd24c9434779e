//! `[flows]`: flow metering in the workers and IPFIX export. The section's
//! presence turns metering on; the policy's `metering` says which packets.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use dataplane::flow::table::{MAX_ENTRIES, MIN_ENTRIES};
use serde::Deserialize;

/// `[flows]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFlows {
    pub table_entries: u32,
    pub active_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub collectors: Vec<String>,
    pub template_refresh_ms: u64,
    pub max_message: u16,
    pub ring_entries: u32,
}

impl Default for RawFlows {
    fn default() -> Self {
        RawFlows {
            table_entries: 1 << 16,
            active_timeout_ms: 60_000,
            idle_timeout_ms: 15_000,
            collectors: Vec::new(),
            template_refresh_ms: 60_000,
            max_message: 1400,
            ring_entries: 1 << 14,
        }
    }
}

/// `[flows]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowsConfig {
    /// Flow table entries per worker (a power of two).
    pub table_entries: usize,
    pub active_timeout: Duration,
    pub idle_timeout: Duration,
    /// IPFIX collectors (UDP).
    pub collectors: Vec<SocketAddr>,
    pub template_refresh: Duration,
    /// Largest IPFIX message (UDP payload).
    pub max_message: usize,
    /// Expired records each worker's ring to the exporter holds.
    pub ring_entries: usize,
}

impl FlowsConfig {
    pub(super) fn check(raw: RawFlows, p: &mut Vec<String>) -> FlowsConfig {
        let e = raw.table_entries as usize;
        if !e.is_power_of_two() || !(MIN_ENTRIES..=MAX_ENTRIES).contains(&e) {
            p.push(format!(
                "flows.table_entries: {e} is not a power of two in {MIN_ENTRIES}..={MAX_ENTRIES}"
            ));
        }
        for (key, ms) in [
            ("active_timeout_ms", raw.active_timeout_ms),
            ("idle_timeout_ms", raw.idle_timeout_ms),
            ("template_refresh_ms", raw.template_refresh_ms),
        ] {
            if ms == 0 || ms > 86_400_000 {
                p.push(format!("flows.{key}: {ms} is outside 1..=86400000"));
            }
        }
        if raw.max_message < 512 {
            p.push(format!(
                "flows.max_message: {} is below 512 bytes",
                raw.max_message
            ));
        }
        if raw.ring_entries < 64 {
            p.push(format!(
                "flows.ring_entries: {} is below 64",
                raw.ring_entries
            ));
        }
        let collectors = raw
            .collectors
            .iter()
            .filter_map(|c| match c.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(a)) => Some(a),
                _ => {
                    p.push(format!(
                        "flows.collectors: {c:?} is not an address:port (\"192.0.2.1:4739\")"
                    ));
                    None
                }
            })
            .collect();
        FlowsConfig {
            table_entries: e,
            active_timeout: Duration::from_millis(raw.active_timeout_ms),
            idle_timeout: Duration::from_millis(raw.idle_timeout_ms),
            collectors,
            template_refresh: Duration::from_millis(raw.template_refresh_ms),
            max_message: usize::from(raw.max_message),
            ring_entries: raw.ring_entries as usize,
        }
    }
}
