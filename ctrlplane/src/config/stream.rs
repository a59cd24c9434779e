//! `[stream]`: the data-service stream, flow records and appliance events
//! published to NATS JetStream (docs/STREAM.md).

use serde::Deserialize;

/// `[stream]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// NATS servers, `nats://host:port` (any of a cluster's).
    pub servers: Vec<String>,
    /// The JetStream stream that stores the subjects; created (with
    /// `replicas`) if the server has none of that name.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First subject token: subjects are `<prefix>.<appliance>.flows` and
    /// `<prefix>.<appliance>.events`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Messages held while the server is unreachable or slow; what does
    /// not fit is counted (`stream_overflow`), oldest kept.
    #[serde(default = "default_buffer")]
    pub buffer: u32,
    /// Copies of the stream in a JetStream cluster (when it is created).
    #[serde(default = "default_replicas")]
    pub replicas: u8,
    /// JetStream's duplicate window: a retry of a message within it is not
    /// stored twice.
    #[serde(default = "default_dedup_window_s")]
    pub dedup_window_s: u32,
}

fn default_stream() -> String {
    "SLUICE".into()
}
fn default_prefix() -> String {
    "sluice".into()
}
fn default_buffer() -> u32 {
    65_536
}
fn default_replicas() -> u8 {
    1
}
fn default_dedup_window_s() -> u32 {
    120
}

/// A subject token: no dots, wildcards or spaces.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl StreamConfig {
    pub(super) fn problems(&self, appliance: &str, p: &mut Vec<String>) {
        if self.servers.is_empty() {
            p.push("stream.servers: empty: name at least one nats://host:port".into());
        }
        for s in &self.servers {
            let rest = s.strip_prefix("nats://").unwrap_or(s);
            if rest
                .rsplit_once(':')
                .is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err())
            {
                p.push(format!("stream.servers: {s:?} is not nats://host:port"));
            }
        }
        if !is_token(&self.stream) {
            p.push(format!(
                "stream.stream: {:?} is not a stream name (letters, digits, - and _)",
                self.stream
            ));
        }
        if !is_token(&self.subject_prefix) {
            p.push(format!(
                "stream.subject_prefix: {:?} is not a subject token (letters, digits, - and _)",
                self.subject_prefix
            ));
        }
        if !is_token(appliance) {
            p.push(format!(
                "appliance.name: {appliance:?} cannot be a subject token of the stream (letters, digits, - and _)"
            ));
        }
        if self.buffer == 0 {
            p.push("stream.buffer: 0 holds nothing while the server is away".into());
        }
        if !(1..=5).contains(&self.replicas) {
            p.push(format!("stream.replicas: {} is not 1 to 5", self.replicas));
        }
        if self.dedup_window_s == 0 {
            p.push("stream.dedup_window_s: 0 would store a retry twice".into());
        }
    }
}
