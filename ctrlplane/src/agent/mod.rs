//! The appliance's session with its controller (`docs/protocol.md`).
//!
//! The agent runs on its own thread and talks to the appliance main loop
//! through two crossbeam channels, which the agent waits on together with
//! its session's input:
//!
//! ```text
//!   controller ══TLS 1.3, mTLS══ agent thread ──events──▶ main loop
//!                                             ◀─replies──
//! ```
//!
//! - [`AgentEvent::Policy`]: validate and apply it (`policy::load_text`),
//!   then reply [`AgentReply::Ack`] or [`AgentReply::Nack`] with every error
//!   ([`policy_errors`]). The agent persists every acked policy atomically.
//! - [`AgentEvent::Command`]: do it, reply [`AgentReply::CommandDone`].
//! - [`AgentReply::Heartbeat`]: the main loop sends one about every
//!   [`AgentConfig::heartbeat`]; the agent forwards it when connected and
//!   drops it otherwise.
//! - [`AgentEvent::Connected`] / [`AgentEvent::Disconnected`]: for the log
//!   and the console; reconnecting is the agent's business: it tries the
//!   configured controllers in turn, in this appliance's own order
//!   (`rotation`: a fleet starts spread over its controllers, and a dead
//!   controller's appliances spread over the others), each failure moving
//!   on to the next one, and waits (exponential backoff with full jitter)
//!   once every one of them failed. After a session ends it waits a
//!   jittered first step and goes on with the next controller: any
//!   controller can hold any appliance's session, and the one that ended
//!   it may be gone.
//!
//! At start-up, [`load_persisted`] gives the last acked policy to run while
//! the controller is unreachable; put its version in
//! [`AgentConfig::policy_version`] so the controller does not push it again.
//!
//! Dropping the [`AgentHandle`] (or every clone of `replies`) stops the agent.

pub mod backoff;
pub mod persist;
mod rotation;
mod session;

/// Framing, messages and TLS set-up are shared with the controller.
pub use sluice_protocol as protocol;
pub use sluice_protocol::tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender};
pub use protocol::{AgentCounters, CommandKind, Counters, DestinationCounters, PortInfo};

use crate::config::{Config, Role};
use crate::policy::PolicyError;

/// Everything the agent needs; [`AgentConfig::from_config`] builds it from
/// the appliance config's `[controller]` section.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The appliance's name: must be a DNS name of its certificate.
    pub name: String,
    /// Free-form labels the controller may assign policies by.
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortInfo>,
    pub capabilities: Vec<String>,
    /// The controllers' `host:port`, tried in turn in this appliance's
    /// own order (`protocol::failover`).
    pub addresses: Vec<String>,
    /// The name every controller's certificate must carry; `None`: the
    /// host part of the address connected to.
    pub server_name: Option<String>,
    /// The CA that issued the controller's certificate (PEM).
    pub ca: PathBuf,
    /// The appliance's certificate chain and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the last acked policy is kept; `None`: nowhere.
    pub persist: Option<PathBuf>,
    /// The controller policy version running at start (from
    /// [`load_persisted`]), if any.
    pub policy_version: Option<String>,
    /// How often the main loop sends heartbeats.
    pub heartbeat: Duration,
    /// First reconnect step; doubles up to `backoff_max`. Each delay is
    /// drawn from zero to the step.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// TCP connect, TLS handshake and hello must each finish within this.
    pub connect_timeout: Duration,
}

/// What this appliance supports, as the hello announces it.
pub const CAPABILITIES: &[&str] = &[
    "policy-toml",
    "heartbeat-counters",
    "command-start",
    "command-stop",
    "command-reload",
    "persist",
];

impl AgentConfig {
    /// The agent config for an appliance config with a `[controller]`
    /// section; `None` without one.
    pub fn from_config(cfg: &Config) -> Option<AgentConfig> {
        let c = cfg.controller.as_ref()?;
        Some(AgentConfig {
            name: cfg.appliance.name.clone(),
            labels: c.labels.clone(),
            ports: cfg
                .ports
                .iter()
                .map(|p| PortInfo {
                    name: p.name.clone(),
                    role: match p.role {
                        Role::Input => "input",
                        Role::Uplink => "uplink",
                        Role::Tool => "tool",
                    }
                    .into(),
                })
                .collect(),
            capabilities: CAPABILITIES.iter().map(|s| (*s).to_owned()).collect(),
            addresses: c.addresses.iter().map(ToString::to_string).collect(),
            server_name: c.server_name.clone(),
            ca: c.ca.clone(),
            cert: c.cert.clone(),
            key: c.key.clone(),
            persist: Some(c.persist.clone()),
            policy_version: None,
            heartbeat: c.heartbeat,
            backoff_initial: c.backoff_initial,
            backoff_max: c.backoff_max,
            connect_timeout: c.connect_timeout,
        })
    }
}

/// An operator command relayed by the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorCommand {
    /// Echo it in [`AgentReply::CommandDone`].
    pub id: u64,
    pub kind: CommandKind,
}

/// From the agent to the main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// A session is up (TLS, hello and hello-ack done).
    Connected {
        controller: String,
        /// The policy name the controller assigns to this appliance.
        assigned: Option<String>,
    },
    /// A session ended or an attempt failed; the next attempt is in `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// Validate and apply; reply `Ack` or `Nack` with this `version`.
    Policy {
        version: String,
        name: String,
        text: String,
    },
    /// Do it; reply `CommandDone` with its `id`.
    Command(OperatorCommand),
}

/// The main loop's part of a heartbeat; the agent adds its own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatData {
    /// `selfcheck`, `running`, `protect`, `stopped` or `exception`.
    pub state: String,
    /// The controller policy version running; `None`: the agent fills in
    /// the last acked one.
    pub policy_version: Option<String>,
    pub uptime_s: u64,
    pub counters: Counters,
}

/// From the main loop to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentReply {
    /// The policy of this version is running (the agent persists it).
    Ack {
        version: String,
    },
    /// The policy of this version was refused; every error, with its path.
    Nack {
        version: String,
        errors: Vec<String>,
    },
    Heartbeat(HeartbeatData),
    CommandDone {
        id: u64,
        ok: bool,
        message: String,
    },
}

/// The agent's counters and connection state, readable from any thread.
#[derive(Debug, Default)]
pub struct AgentStatus {
    connected: AtomicBool,
    sessions: AtomicU64,
    connect_failures: AtomicU64,
    persist_writes: AtomicU64,
    persist_failures: AtomicU64,
    /// Why the last persist write failed; `None` once one succeeds.
    persist_error: Mutex<Option<String>>,
}

impl AgentStatus {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Why the last persist write failed, if it did.
    pub fn persist_error(&self) -> Option<String> {
        self.persist_error.lock().ok().and_then(|e| e.clone())
    }

    fn persisted(&self, outcome: Result<(), String>) {
        let n = match &outcome {
            Ok(()) => &self.persist_writes,
            Err(_) => &self.persist_failures,
        };
        n.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.persist_error.lock() {
            *e = outcome.err();
        }
    }

    pub fn counters(&self) -> AgentCounters {
        AgentCounters {
            sessions: self.sessions.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            persist_writes: self.persist_writes.load(Ordering::Relaxed),
            persist_failures: self.persist_failures.load(Ordering::Relaxed),
        }
    }
}

/// The main loop's end of the agent.
#[derive(Debug)]
pub struct AgentHandle {
    pub events: Receiver<AgentEvent>,
    pub replies: Sender<AgentReply>,
    pub status: Arc<AgentStatus>,
}

/// Starts the agent on its own thread; it connects at once and keeps
/// reconnecting until the handle is dropped.
pub fn spawn(cfg: AgentConfig) -> AgentHandle {
    session::spawn(cfg)
}

/// The last acked policy `(version, text)` persisted at `path`, if any.
pub fn load_persisted(path: &Path) -> Option<(String, String)> {
    persist::load(path)
}

/// A policy error as the nack's list: one entry per problem, each with its
/// path.
pub fn policy_errors(e: &PolicyError) -> Vec<String> {
    match e {
        PolicyError::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}
