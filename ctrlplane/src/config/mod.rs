//! The appliance config: one TOML file (ports, lcores, mempools, dedup,
//! uplink addressing, limits, controller). Unknown keys and bad values are
//! errors that name the key; every problem is reported, not just the first.
//!
//! Loading has two steps. `raw` is the file as TOML has it, read by serde,
//! which stops at the first unknown key or wrong type. Each section file
//! then turns its raw part into typed values (addresses and prefixes,
//! MACs, devices, durations) and checks them, naming the key of every
//! problem; the use sites take those values and parse nothing again.
//!
//! - `values`: the value types (`Cidr`, `MacAddr`, `Device`, `Endpoint`);
//! - `ports`: `[[port]]`, roles and modes, and the rules between ports;
//! - `uplink`: `[[uplink]]`, `[[neighbor]]` and the routes to tunnel remotes;
//! - `controller`: `[controller]`;
//! - `pdump`: `[pdump]`, and the devices a secondary can run;
//! - `decap`: `[decap]`;
//! - `tools`: the tool ports' rules and `[[tool_group]]`;
//! - `limits`: `[appliance]`, `[workers]`, `[mempool]`, `[queues]`, `[dedup]`;
//! - `eal`: `[eal]` (EAL options for a service start) and `[flow_cache]`;
//! - `intake`: `[intake]`, flow telemetry taken in on the uplink;
//! - `stream`: `[stream]`, the NATS JetStream data-service stream;
//! - `memory`: the hugepages, heap and lcores a config needs;
//! - `flows`: `[flows]` (flow metering and IPFIX collectors).
//!
//! `[guard]` is the guard's own (`crate::guard::GuardConfig`).

mod controller;
mod decap;
mod eal;
mod flows;
mod intake;
mod limits;
mod memory;
mod pdump;
mod ports;
mod raw;
mod stream;
mod tools;
mod uplink;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

use thiserror::Error;

pub use controller::ControllerConfig;
pub use decap::{DecapSection, NonTunnel, RetagMode};
pub use eal::{lcores_in, memory_in, parse_lcore_list, EalSection, FlowCacheConfig};
pub use flows::FlowsConfig;
pub use intake::IntakeConfig;
pub use limits::{ApplianceId, DedupConfig, IdleMode, MempoolConfig, QueuesConfig, WorkersConfig};
pub use memory::{Footprint, Place};
pub use pdump::PdumpSection;
pub use ports::{CaptureConfig, PdumpTap, PortConfig, PortDirection, PortMode, Role};
pub use stream::StreamConfig;
pub use tools::{GroupHash, ToolGroupConfig, ToolMember, MAX_WEIGHT};
pub use uplink::{NeighborConfig, Route, Routes, StaticRoute, UplinkConfig, MAX_UPLINKS};
pub use values::{parse_mac, Cidr, Device, Endpoint, MacAddr};

use crate::guard::GuardConfig;
use raw::RawConfig;

/// A config that could not be used, with every reason.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path}: {reason}")]
    Syntax { path: String, reason: String },
    #[error("config {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

/// The whole appliance config, every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub appliance: ApplianceId,
    pub ports: Vec<PortConfig>,
    /// Each uplink port's addressing, in `[[uplink]]` order: an uplink's
    /// position here is its uplink index (its TX lanes, its counters,
    /// `Route::uplink`).
    pub uplinks: Vec<UplinkConfig>,
    pub neighbors: Vec<NeighborConfig>,
    pub workers: WorkersConfig,
    pub mempool: MempoolConfig,
    pub queues: QueuesConfig,
    pub dedup: DedupConfig,
    pub decap: DecapSection,
    /// Tool groups, in config order (after the tool ports, they are what
    /// tool destinations may name).
    pub tool_groups: Vec<ToolGroupConfig>,
    /// Secondary process tapping a primary's ports (pdump inputs).
    pub pdump: Option<PdumpSection>,
    /// Limits that send the appliance into `protect`, and how it sheds.
    pub guard: GuardConfig,
    /// The controller session; without it the appliance runs its local policy.
    pub controller: Option<ControllerConfig>,
    /// EAL options when the command line gives none.
    pub eal: EalSection,
    pub flow_cache: FlowCacheConfig,
    /// Flow metering and IPFIX export; off without `[flows]`.
    pub flows: Option<FlowsConfig>,
    /// sFlow/NetFlow/IPFIX taken in on the uplink's address.
    pub intake: Option<IntakeConfig>,
    /// Flow records and events published to NATS JetStream.
    pub stream: Option<StreamConfig>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        let mut problems = Vec::new();
        let cfg = Config::check(raw, &mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_owned(),
                problems,
            })
        }
    }

    /// The typed config, and every value that cannot work as a problem in
    /// `p`, each naming its key (the config is only used when there is none).
    fn check(raw: RawConfig, p: &mut Vec<String>) -> Config {
        let uplink_ports: Vec<&str> = raw
            .ports
            .iter()
            .filter(|x| x.role == Role::Uplink)
            .map(|x| x.name.as_str())
            .collect();
        let named: Vec<String> = raw.uplinks.iter().map(|u| u.port.clone()).collect();
        let uplinks: Vec<UplinkConfig> = raw
            .uplinks
            .into_iter()
            .enumerate()
            .filter_map(|(i, u)| UplinkConfig::check(i, u, p))
            .collect();
        uplink::check_all(&uplinks, &named, &uplink_ports, p);
        let taps_primary = raw.ports.iter().any(|x| x.pdump.is_some());
        let tool_groups = tools::check(raw.tool_groups, &raw.ports, &raw.decap, p);
        let ports = ports::check(raw.ports, raw.pdump.is_some(), p);
        raw.decap.problems(p);
        let neighbors = NeighborConfig::check(raw.neighbors, &uplinks, p);
        raw.workers.problems(p);
        raw.mempool.problems(p);
        raw.queues.problems(p);
        raw.eal.problems(p);
        raw.flow_cache.problems(p);
        let dedup = DedupConfig::check(raw.dedup, p);
        raw.guard.problems(p);
        let controller = raw.controller.and_then(|c| ControllerConfig::check(c, p));
        let flows = raw.flows.map(|f| FlowsConfig::check(f, p));
        if let Some(i) = &raw.intake {
            i.problems(!uplinks.is_empty(), p);
        }
        if let Some(s) = &raw.stream {
            s.problems(&raw.appliance.name, p);
        }
        if let Some(d) = &raw.pdump {
            d.problems(p);
            if !taps_primary {
                p.push(
                    "pdump: no input taps the primary (an input with pdump = \"<device>\")".into(),
                );
            }
        }
        Config {
            appliance: raw.appliance,
            ports,
            uplinks,
            neighbors,
            workers: raw.workers,
            mempool: raw.mempool,
            queues: raw.queues,
            dedup,
            decap: raw.decap,
            tool_groups,
            pdump: raw.pdump,
            guard: raw.guard,
            controller,
            eal: raw.eal,
            flow_cache: raw.flow_cache,
            flows,
            intake: raw.intake,
            stream: raw.stream,
        }
    }

    /// Inputs that tap a primary's port (pdump mode).
    pub fn pdump_inputs(&self) -> impl Iterator<Item = &PortConfig> {
        self.input_ports().filter(|p| p.pdump.is_some())
    }

    /// The uplink ports' configs, by uplink index (`[[uplink]]` order).
    pub fn uplink_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.uplinks
            .iter()
            .filter_map(|u| self.ports.iter().find(|p| p.name == u.port))
    }

    /// The routes tunnel remotes leave by.
    pub fn routes(&self) -> Routes {
        Routes::new(&self.uplinks, &self.neighbors)
    }

    /// The routes a policy's tunnels are checked against: none when no
    /// input is in tap mode (only tap inputs' packets are tunnelled).
    pub fn tunnel_routes(&self) -> Option<Routes> {
        self.input_ports()
            .any(|p| p.mode == PortMode::Tap)
            .then(|| self.routes())
    }

    /// The tool port decap inputs send to: `[decap] tool`, or the only
    /// one; none without decap inputs.
    pub fn decap_tool_port(&self) -> Option<&PortConfig> {
        if !self.input_ports().any(|p| p.mode == PortMode::Decap) {
            return None;
        }
        match &self.decap.tool {
            Some(t) => self.tool_ports().find(|p| &p.name == t),
            None => self.tool_ports().next(),
        }
    }

    /// Tool ports in config order: a tool port's position here is its
    /// tool port index (its TX queues, its counters, `Output::Tool`).
    pub fn tool_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.ports.iter().filter(|p| p.role == Role::Tool)
    }

    /// What tool destinations may name, in the order of the workers' tool
    /// tables: every tool port, then every tool group.
    pub fn tool_names(&self) -> Vec<String> {
        self.tool_ports()
            .map(|p| p.name.clone())
            .chain(self.tool_groups.iter().map(|g| g.name.clone()))
            .collect()
    }

    /// Input ports in config order.
    pub fn input_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.ports.iter().filter(|p| p.role == Role::Input)
    }
}
