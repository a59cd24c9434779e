//! The controller tests' support (`ctrlplane/controller/tests/support/`,
//! one copy for both packages) and the appliance side the tests here add:
//! agent configs for the fixture's certificates, and a stand-in for the
//! appliance main loop around `agent::spawn`.
//!
//! Nothing here sleeps to synchronise: waits are on the agent's events
//! with a deadline.

#![allow(dead_code)]

#[path = "../../controller/tests/support/mod.rs"]
mod fleet;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ctrlplane::agent::{self, AgentConfig, AgentEvent, AgentHandle, AgentReply, PortInfo};
use ctrlplane::policy::{self, Context};
pub use fleet::*;

/// Agent configs for appliances with the fixture's certificates.
pub trait AgentConfigs {
    /// An agent config for appliance `name` with its own good certificate.
    fn agent_config(&self, ctl: &Controller, name: &str) -> AgentConfig;
    fn agent_config_with(
        &self,
        ctl: &Controller,
        name: &str,
        id: &Issued,
        ca: &Path,
    ) -> AgentConfig;
    /// An agent config for a controller at `addr` (which may be a stand-in).
    fn agent_config_at(&self, addr: &str, name: &str, id: &Issued, ca: &Path) -> AgentConfig;
}

impl AgentConfigs for Fixture {
    fn agent_config(&self, ctl: &Controller, name: &str) -> AgentConfig {
        let id = self.ca.client(self.dir.path(), name);
        self.agent_config_with(ctl, name, &id, &self.ca.pem)
    }

    fn agent_config_with(
        &self,
        ctl: &Controller,
        name: &str,
        id: &Issued,
        ca: &Path,
    ) -> AgentConfig {
        self.agent_config_at(&ctl.addr, name, id, ca)
    }

    fn agent_config_at(&self, addr: &str, name: &str, id: &Issued, ca: &Path) -> AgentConfig {
        AgentConfig {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            ports: vec![PortInfo {
                name: "tap0".into(),
                role: "input".into(),
            }],
            capabilities: agent::CAPABILITIES.iter().map(|s| s.to_string()).collect(),
            addresses: vec![addr.to_owned()],
            server_name: Some("localhost".into()),
            ca: ca.to_path_buf(),
            cert: id.cert.clone(),
            key: id.key.clone(),
            persist: Some(self.dir.path().join(format!("persist/{name}.json"))),
            policy_version: None,
            heartbeat: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The appliance main loop's part, played by the test.
pub struct Appliance {
    pub handle: AgentHandle,
    pub ctx: Context,
}

impl Appliance {
    pub fn spawn(cfg: AgentConfig) -> Appliance {
        Appliance {
            handle: agent::spawn(cfg),
            ctx: Context {
                ports: vec![("tap0".into(), 0)],
                ..Context::default()
            },
        }
    }

    /// The next event that `want` accepts; others are skipped.
    pub fn wait_event(&self, what: &str, want: impl Fn(&AgentEvent) -> bool) -> AgentEvent {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.handle.events.recv_timeout(left) {
                Ok(e) if want(&e) => return e,
                Ok(e) => seen.push(format!("{e:?}")),
                Err(e) => panic!("no {what} event ({e}); saw:\n{}", seen.join("\n")),
            }
        }
    }

    pub fn wait_connected(&self) -> Option<String> {
        match self.wait_event("connected", |e| matches!(e, AgentEvent::Connected { .. })) {
            AgentEvent::Connected { assigned, .. } => assigned,
            _ => unreachable!(),
        }
    }

    pub fn wait_disconnected(&self) -> String {
        match self.wait_event("disconnected", |e| {
            matches!(e, AgentEvent::Disconnected { .. })
        }) {
            AgentEvent::Disconnected { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    /// Waits for a policy push: `(version, name, text)`.
    pub fn wait_policy(&self) -> (String, String, String) {
        match self.wait_event("policy", |e| matches!(e, AgentEvent::Policy { .. })) {
            AgentEvent::Policy {
                version,
                name,
                text,
            } => (version, name, text),
            _ => unreachable!(),
        }
    }

    /// What the main loop does with a policy: validate, then ack or nack.
    /// Returns whether it was acked.
    pub fn apply(&self, version: &str, text: &str) -> bool {
        let reply = match policy::load_text(text, version, &self.ctx) {
            Ok(_) => AgentReply::Ack {
                version: version.to_owned(),
            },
            Err(e) => AgentReply::Nack {
                version: version.to_owned(),
                errors: agent::policy_errors(&e),
            },
        };
        let ok = matches!(reply, AgentReply::Ack { .. });
        self.handle.replies.send(reply).unwrap();
        ok
    }

    /// Waits for a policy and applies it; returns its version and whether it was acked.
    pub fn take_policy(&self) -> (String, bool) {
        let (v, _, text) = self.wait_policy();
        let ok = self.apply(&v, &text);
        (v, ok)
    }

    pub fn heartbeat(&self, state: &str, rx: u64) {
        let mut terminals = BTreeMap::new();
        terminals.insert("forwarded".to_string(), rx);
        self.handle
            .replies
            .send(AgentReply::Heartbeat(agent::HeartbeatData {
                state: state.into(),
                policy_version: None,
                uptime_s: 1,
                counters: agent::Counters {
                    rx,
                    forwarded: rx,
                    terminals,
                    ..Default::default()
                },
            }))
            .unwrap();
    }
}
