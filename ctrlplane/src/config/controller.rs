//! `[controller]`: where the controllers are and how to prove who we are.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawController;
use super::values::Endpoint;

/// `[controller]`. Paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// The controllers' `host:port`, tried in turn in an order of the
    /// appliance's own (a hash of its name and each address): any of them
    /// can hold the session, so the agent fails over to the next live one.
    pub addresses: Vec<Endpoint>,
    /// The name every controller's certificate must carry; without it,
    /// the host part of the address connected to.
    pub server_name: Option<String>,
    /// PEM: the CA that issued the controller's certificate.
    pub ca: PathBuf,
    /// PEM: this appliance's certificate chain (its DNS names must include
    /// `appliance.name`) and private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the last acked policy is kept, for restarts without a controller.
    pub persist: PathBuf,
    /// Heartbeat interval (`heartbeat_ms`).
    pub heartbeat: Duration,
    /// First reconnect step; it doubles up to `backoff_max`, each delay
    /// drawn from zero to the step (full jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Bound on each of TCP connect, TLS handshake and hello.
    pub connect_timeout: Duration,
    /// Labels the controller may assign policies by.
    pub labels: BTreeMap<String, String>,
}

impl ControllerConfig {
    /// The typed section, or `None` with its problems added to `p`.
    pub(super) fn check(raw: RawController, p: &mut Vec<String>) -> Option<ControllerConfig> {
        let before = p.len();
        let mut addresses = Vec::new();
        if raw.addresses.is_empty() {
            p.push("controller.addresses: list at least one controller as host:port".into());
        }
        for (i, a) in raw.addresses.iter().enumerate() {
            match Endpoint::parse(a) {
                Some(e) => {
                    if raw.server_name.is_none()
                        && rustls_pki_types::ServerName::try_from(e.host.as_str()).is_err()
                    {
                        p.push(format!(
                            "controller.addresses[{i}]: {:?} is not a DNS name or IP address",
                            e.host
                        ));
                    }
                    addresses.push(e);
                }
                None => p.push(format!("controller.addresses[{i}]: {a:?} is not host:port")),
            }
        }
        if let Some(s) = &raw.server_name {
            if rustls_pki_types::ServerName::try_from(s.as_str()).is_err() {
                p.push(format!(
                    "controller.server_name: {s:?} is not a DNS name or IP address"
                ));
            }
        }
        for (key, path) in [
            ("controller.ca", &raw.ca),
            ("controller.cert", &raw.cert),
            ("controller.key", &raw.key),
            ("controller.persist", &raw.persist),
        ] {
            if path.as_os_str().is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if !(100..=60_000).contains(&raw.heartbeat_ms) {
            p.push(format!(
                "controller.heartbeat_ms: {} is outside 100..=60000",
                raw.heartbeat_ms
            ));
        }
        if !(10..=3_600_000).contains(&raw.backoff_max_ms) {
            p.push(format!(
                "controller.backoff_max_ms: {} is outside 10..=3600000",
                raw.backoff_max_ms
            ));
        }
        if raw.backoff_initial_ms == 0 || raw.backoff_initial_ms > raw.backoff_max_ms {
            p.push(format!(
                "controller.backoff_initial_ms: {} is not in 1..=backoff_max_ms",
                raw.backoff_initial_ms
            ));
        }
        if !(10..=600_000).contains(&raw.connect_timeout_ms) {
            p.push(format!(
                "controller.connect_timeout_ms: {} is outside 10..=600000",
                raw.connect_timeout_ms
            ));
        }
        if raw.labels.keys().any(|k| k.trim().is_empty()) {
            p.push("controller.labels: a label name is empty".into());
        }
        if p.len() != before {
            return None;
        }
        Some(ControllerConfig {
            addresses,
            server_name: raw.server_name,
            ca: raw.ca,
            cert: raw.cert,
            key: raw.key,
            persist: raw.persist,
            heartbeat: Duration::from_millis(raw.heartbeat_ms),
            backoff_initial: Duration::from_millis(raw.backoff_initial_ms),
            backoff_max: Duration::from_millis(raw.backoff_max_ms),
            connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
            labels: raw.labels,
        })
    }
}
