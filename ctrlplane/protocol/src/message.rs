//! The messages of the controller protocol, one enum per direction
//! (`docs/protocol.md` lists every field). Each is one JSON object whose
//! `type` names the variant; [`crate::frame`] adds the version `v`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An input port as the hello describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    /// `input`, `uplink` or `tool`.
    pub role: String,
}

/// The appliance introduces itself; first message of every session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must be a DNS name of the appliance's client certificate.
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub sluice_version: String,
    pub protocol_version: u32,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortInfo>,
    /// The controller policy version the appliance runs (last acked), if any.
    #[serde(default)]
    pub policy_version: Option<String>,
}

/// One destination's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationCounters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Drops per reason (`rate_limit`, `tx_full`…).
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
}

/// The appliance's packet counters, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub rx: u64,
    #[serde(default)]
    pub rx_bytes: u64,
    pub forwarded: u64,
    #[serde(default)]
    pub parse_errors: u64,
    /// Every terminal counter by name (`forwarded`, `filtered`,
    /// `deduplicated`, `dropped_*`): `rx` is their sum.
    #[serde(default)]
    pub terminals: BTreeMap<String, u64>,
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationCounters>,
    /// Hits per rule of the running policy by rule name (`default`: no
    /// rule matched), since it was loaded or the counters cleared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleHits>,
    /// Every tool port's sends by port name (members of tool groups
    /// included), since start or the counters cleared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_ports: BTreeMap<String, ToolPortSends>,
}

/// One tool port's sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPortSends {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Copies dropped because its TX queue stayed full.
    pub dropped_tx_full: u64,
}

/// One rule's hits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHits {
    pub packets: u64,
    pub bytes: u64,
}

/// The agent's own counters, added to every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    /// Sessions that got as far as the controller's hello-ack.
    pub sessions: u64,
    /// Connection attempts that failed (TCP, TLS, hello).
    pub connect_failures: u64,
    /// Policies written to the persist file.
    pub persist_writes: u64,
    /// Persist writes that failed (disk full, no directory…).
    pub persist_failures: u64,
}

/// What the appliance reports every heartbeat interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `selfcheck`, `running`, `protect`, `stopped` or `exception`.
    pub state: String,
    pub policy_version: Option<String>,
    pub uptime_s: u64,
    pub counters: Counters,
    #[serde(default)]
    pub agent: AgentCounters,
}

/// An operator command for the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandKind {
    /// Start forwarding (testpmd `start`).
    Start,
    /// Stop forwarding, keep the ports up (testpmd `stop`).
    Stop,
    /// Reload the policy as SIGHUP does.
    Reload,
}

impl CommandKind {
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Start => "start",
            CommandKind::Stop => "stop",
            CommandKind::Reload => "reload",
        }
    }
}

impl std::str::FromStr for CommandKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "start" => Ok(CommandKind::Start),
            "stop" => Ok(CommandKind::Stop),
            "reload" => Ok(CommandKind::Reload),
            _ => Err(format!("unknown command {s:?} (start, stop or reload)")),
        }
    }
}

/// How a command went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: u64,
    pub command: CommandKind,
    pub ok: bool,
    #[serde(default)]
    pub message: String,
}

/// Appliance → controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApplianceMsg {
    Hello(Hello),
    /// The policy of this version is valid and running.
    Ack {
        version: String,
    },
    /// The policy of this version was refused; every validation error.
    Nack {
        version: String,
        errors: Vec<String>,
    },
    Heartbeat(Heartbeat),
    CommandResult(CommandResult),
}

/// Controller → appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerMsg {
    /// The hello was accepted.
    HelloAck {
        controller_version: String,
        protocol_version: u32,
        /// The controller sends something at least this often; silence for
        /// three intervals means the session is dead.
        keepalive_ms: u64,
        /// How often the controller expects heartbeats.
        heartbeat_ms: u64,
        /// The name of the policy assigned to this appliance, if any.
        policy: Option<String>,
    },
    /// Run this policy (TOML text); answer with ack or nack of `version`.
    Policy {
        version: String,
        name: String,
        text: String,
    },
    Command {
        id: u64,
        command: CommandKind,
    },
    /// Nothing to say; keeps the session alive.
    Keepalive,
    /// The controller is about to close the session, and why.
    Error {
        reason: String,
    },
}
