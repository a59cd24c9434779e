//! The config file as TOML has it: every key, its default, and text where
//! the value needs more parsing than serde does. Unknown keys stop here
//! (serde names them); values that do not parse are left to the typed
//! sections, which name every one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::decap::DecapSection;
use super::eal::{EalSection, FlowCacheConfig};
use super::flows::RawFlows;
use super::limits::{ApplianceId, MempoolConfig, QueuesConfig, WorkersConfig};
use super::pdump::PdumpSection;
use super::ports::{CaptureConfig, PortDirection, PortMode, Role};
use super::tools::RawToolGroup;
use crate::guard::GuardConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub appliance: ApplianceId,
    #[serde(rename = "port")]
    pub ports: Vec<RawPort>,
    #[serde(default, rename = "uplink")]
    pub uplinks: Vec<RawUplink>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<RawNeighbor>,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default)]
    pub queues: QueuesConfig,
    #[serde(default)]
    pub dedup: RawDedup,
    #[serde(default, rename = "tool_group")]
    pub tool_groups: Vec<RawToolGroup>,
    #[serde(default)]
    pub decap: DecapSection,
    pub pdump: Option<PdumpSection>,
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub controller: Option<RawController>,
    #[serde(default)]
    pub eal: EalSection,
    #[serde(default)]
    pub flow_cache: FlowCacheConfig,
    pub flows: Option<RawFlows>,
    pub intake: Option<super::intake::IntakeConfig>,
    pub stream: Option<super::stream::StreamConfig>,
}

/// `[[port]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: String,
    #[serde(default)]
    pub device: String,
    pub role: Role,
    pub direction: Option<PortDirection>,
    pub pdump: Option<String>,
    pub capture: Option<CaptureConfig>,
    pub queues: Option<Vec<u16>>,
    #[serde(default)]
    pub mode: PortMode,
    pub mtu: Option<u16>,
    pub address: Option<String>,
    /// A capture input's file, pacing, speed and repetitions.
    pub file: Option<std::path::PathBuf>,
    pub timing: Option<crate::capture::Timing>,
    pub speed: Option<f64>,
    #[serde(rename = "loop")]
    pub loops: Option<u32>,
}

/// `[[uplink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUplink {
    pub port: String,
    pub address: String,
    pub gateway: Option<IpAddr>,
    /// `"PREFIX via NEXT-HOP"` each.
    #[serde(default)]
    pub routes: Vec<String>,
    pub mac: Option<String>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default = "default_arp_refresh_s")]
    pub arp_refresh_s: u32,
}

/// `[[neighbor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub ip: IpAddr,
    pub mac: String,
    /// The uplink port it is on, when its subnet does not say.
    pub uplink: Option<String>,
}

/// `[dedup]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDedup {
    pub table_entries: u32,
    pub window_us: u64,
    pub ignore_dscp: bool,
    pub include_l2: bool,
}

impl Default for RawDedup {
    fn default() -> Self {
        Self {
            table_entries: 1 << 20,
            window_us: 50_000,
            ignore_dscp: false,
            include_l2: false,
        }
    }
}

/// `[controller]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    pub addresses: Vec<String>,
    pub server_name: Option<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default = "default_persist")]
    pub persist: PathBuf,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_mtu() -> u16 {
    1500
}
fn default_arp_refresh_s() -> u32 {
    30
}
fn default_persist() -> PathBuf {
    PathBuf::from("/var/lib/sluice/last-policy.json")
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
