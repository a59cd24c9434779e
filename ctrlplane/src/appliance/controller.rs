//! The controller link: the agent thread's handle, the session as its
//! events tell it (`show controller`, a line of `show state`), and the
//! heartbeat. The agent thread does the network work; the main loop
//! records its events here and carries out the policies and commands it
//! hands on.

use std::fmt::Write;
use std::time::{Duration, Instant};

use dataplane::runtime::counters::{DestDrop, Terminal};
use dataplane::runtime::snapshot::Snapshot;

use crate::agent::protocol::{Counters, DestinationCounters, RuleHits, ToolPortSends};
use crate::agent::{self, AgentConfig, AgentEvent, AgentHandle, AgentReply, HeartbeatData};
use crate::config::{Config, ControllerConfig};
use crate::log::log;

/// Where the session stands, from the agent's events.
#[derive(Debug)]
struct Session {
    state: SessionState,
    since: Instant,
}

#[derive(Debug)]
enum SessionState {
    /// No event yet: the first attempt is under way.
    Connecting,
    Up {
        controller: String,
    },
    Down {
        reason: String,
        retry_in: Duration,
    },
}

impl Default for Session {
    fn default() -> Self {
        Session {
            state: SessionState::Connecting,
            since: Instant::now(),
        }
    }
}

impl Session {
    fn up(&mut self, controller: String) {
        self.state = SessionState::Up { controller };
        self.since = Instant::now();
    }

    /// A session ended or an attempt failed. A failed retry keeps the time
    /// the session went down.
    fn down(&mut self, reason: String, retry_in: Duration) {
        if !matches!(self.state, SessionState::Down { .. }) {
            self.since = Instant::now();
        }
        self.state = SessionState::Down { reason, retry_in };
    }
}

/// The session to the controller, when `[controller]` is configured.
pub struct ControllerLink {
    agent: AgentHandle,
    cfg: ControllerConfig,
    session: Session,
    heartbeat_every: Duration,
    last_heartbeat: Instant,
    /// The controller's version of the running policy.
    version: Option<String>,
}

impl ControllerLink {
    /// Starts the agent when the config has a controller; `version` is the
    /// controller's version of the starting policy (a persisted one).
    pub fn connect(cfg: &Config, version: Option<String>) -> Option<ControllerLink> {
        let mut ac = AgentConfig::from_config(cfg)?;
        let c = cfg.controller.clone()?;
        ac.policy_version = version.clone();
        log(format!(
            "controller session to {}",
            ac.addresses.join(" or ")
        ));
        Some(ControllerLink {
            heartbeat_every: ac.heartbeat,
            agent: agent::spawn(ac),
            cfg: c,
            session: Session::default(),
            last_heartbeat: Instant::now(),
            version,
        })
    }

    /// The agent's events since the last look. Session changes are
    /// recorded and logged here; policies and commands are returned for
    /// the appliance to carry out.
    pub fn events(&mut self) -> Vec<AgentEvent> {
        let events: Vec<AgentEvent> = self.agent.events.try_iter().collect();
        let mut todo = Vec::new();
        for ev in events {
            match ev {
                AgentEvent::Connected {
                    controller,
                    assigned,
                } => {
                    log(format!(
                        "controller {controller} connected (policy {assigned:?})"
                    ));
                    self.session.up(controller);
                }
                AgentEvent::Disconnected { reason, retry_in } => {
                    log(format!("controller session down: {reason}; retry in {retry_in:?}; forwarding goes on"));
                    self.session.down(reason, retry_in);
                }
                other => todo.push(other),
            }
        }
        todo
    }

    /// Sends `r` to the agent.
    pub fn reply(&self, r: AgentReply) {
        // The agent thread lives as long as its handle.
        let _ = self.agent.replies.send(r);
    }

    /// The controller's policy `version` now runs.
    pub fn running(&mut self, version: String) {
        self.version = Some(version);
    }

    /// Whether a heartbeat is due; the clock restarts when it is.
    pub fn heartbeat_due(&mut self) -> bool {
        if self.last_heartbeat.elapsed() < self.heartbeat_every {
            return false;
        }
        self.last_heartbeat = Instant::now();
        true
    }

    /// The heartbeat's state and counters.
    pub fn heartbeat(&self, state: &str, uptime_s: u64, snap: &Snapshot) -> HeartbeatData {
        let t = &snap.total;
        let destinations = snap
            .destinations
            .iter()
            .map(|d| {
                let drops = DestDrop::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), d.drop(*r)))
                    .collect();
                (
                    d.name.clone(),
                    DestinationCounters {
                        tx_packets: d.tx_packets,
                        tx_bytes: d.tx_bytes,
                        drops,
                    },
                )
            })
            .collect();
        HeartbeatData {
            state: state.to_owned(),
            policy_version: self.version.clone(),
            uptime_s,
            counters: Counters {
                rx: t.rx,
                rx_bytes: t.rx_bytes,
                forwarded: t.terminal(Terminal::Forwarded),
                parse_errors: t.parse_errors,
                terminals: t
                    .terminals
                    .iter()
                    .map(|(k, v)| (k.name().to_owned(), *v))
                    .collect(),
                destinations,
                rules: snap
                    .rules
                    .iter()
                    .map(|r| {
                        let hits = RuleHits {
                            packets: r.packets,
                            bytes: r.bytes,
                        };
                        (r.name.clone(), hits)
                    })
                    .collect(),
                tool_ports: snap
                    .tool_ports
                    .iter()
                    .map(|t| {
                        let sends = ToolPortSends {
                            tx_packets: t.tx_packets,
                            tx_bytes: t.tx_bytes,
                            dropped_tx_full: t.dropped_tx_full,
                        };
                        (t.name.clone(), sends)
                    })
                    .collect(),
            },
        }
    }

    /// `show controller`.
    pub fn show(&self, policy_version: &str) -> String {
        let c = &self.cfg;
        let st = &self.agent.status;
        let n = st.counters();
        let addresses: Vec<String> = c.addresses.iter().map(ToString::to_string).collect();
        let mut s = format!(
            "  controllers: {} (server name {})\n",
            addresses.join(", "),
            c.server_name.as_deref().unwrap_or("each address's host")
        );
        let ago = self.session.since.elapsed().as_secs();
        let _ = match &self.session.state {
            SessionState::Connecting => writeln!(s, "  session: connecting"),
            SessionState::Up { controller } => {
                writeln!(s, "  session: up for {ago} s ({controller})")
            }
            SessionState::Down { reason, retry_in } => writeln!(
                s,
                "  session: down for {ago} s: {reason}; next attempt in {} ms; forwarding goes on",
                retry_in.as_millis()
            ),
        };
        let _ = writeln!(
            s,
            "  sessions: {}  failed attempts: {}",
            n.sessions, n.connect_failures
        );
        let _ = writeln!(
            s,
            "  policy: {:?} (controller version {})",
            policy_version,
            self.version.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            s,
            "  persist: {}: {} write(s), {} failure(s){}",
            c.persist.display(),
            n.persist_writes,
            n.persist_failures,
            match st.persist_error() {
                Some(e) => format!(
                    "; the last write failed: {e} (the file on disk is the last policy written)"
                ),
                None => String::new(),
            }
        );
        s
    }

    /// `show state`'s line on the session, when there is a controller.
    pub fn state_line(&self) -> String {
        let n = self.agent.status.counters();
        let state = match &self.session.state {
            SessionState::Connecting => "connecting",
            SessionState::Up { .. } => "up",
            SessionState::Down { .. } => "down",
        };
        format!(
            "  controller session: {state} ({} session(s), {} failed attempt(s); show controller)\n",
            n.sessions, n.connect_failures
        )
    }
}

/// `show controller` without a controller.
pub const NONE: &str =
    "  no controller configured: the policy comes from the command line or the built-in default\n";
