//! The fleet's history: every policy version with who imported it and
//! when, every push, ack and nack with its errors, every command and its
//! result, every state change of every appliance, every inventory change.
//!
//! Each event is one etcd key, `history/<ms since the epoch, 13 digits>-<controller>-<seq>`,
//! so a time range is a key range; events are listed in the order etcd
//! wrote them (their create revision), which is the order they happened
//! in across all controllers. Old events are deleted by the fleet's
//! run-once job (`jobs`) after the retention.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A policy version was imported.
    Policy {
        policy: String,
        version: String,
        by: String,
    },
    /// A policy was removed by an import.
    PolicyRemoved {
        policy: String,
        by: String,
    },
    /// The assignments changed.
    Assignments {
        by: String,
    },
    /// A workload was added, moved or removed (`addresses` empty).
    Workload {
        workload: String,
        addresses: Vec<String>,
        by: String,
    },
    Connected {
        appliance: String,
        address: String,
        running: Option<String>,
    },
    Disconnected {
        appliance: String,
        reason: String,
    },
    /// The state its heartbeats report changed.
    State {
        appliance: String,
        from: String,
        to: String,
    },
    Push {
        appliance: String,
        version: String,
    },
    Ack {
        appliance: String,
        version: String,
    },
    Nack {
        appliance: String,
        version: String,
        errors: Vec<String>,
    },
    Command {
        appliance: String,
        id: u64,
        command: String,
        by: String,
    },
    CommandResult {
        appliance: String,
        id: u64,
        ok: bool,
        message: String,
    },
    /// Not seen for longer than the registration lifetime: forgotten.
    Expired {
        appliance: String,
    },
}

impl What {
    /// The appliance it concerns, if one.
    pub fn appliance(&self) -> Option<&str> {
        match self {
            What::Connected { appliance, .. }
            | What::Disconnected { appliance, .. }
            | What::State { appliance, .. }
            | What::Push { appliance, .. }
            | What::Ack { appliance, .. }
            | What::Nack { appliance, .. }
            | What::Command { appliance, .. }
            | What::CommandResult { appliance, .. }
            | What::Expired { appliance } => Some(appliance),
            _ => None,
        }
    }

    /// One line for the operator (without time and controller).
    pub fn describe(&self) -> String {
        match self {
            What::Policy {
                policy,
                version,
                by,
            } => format!("policy {policy}: version {version} imported by {by}"),
            What::PolicyRemoved { policy, by } => format!("policy {policy}: removed by {by}"),
            What::Assignments { by } => format!("assignments changed by {by}"),
            What::Workload {
                workload,
                addresses,
                by,
            } if addresses.is_empty() => format!("workload {workload}: removed by {by}"),
            What::Workload {
                workload,
                addresses,
                by,
            } => format!("workload {workload}: at {} (by {by})", addresses.join(", ")),
            What::Connected {
                appliance,
                address,
                running,
            } => format!(
                "{appliance}: connected from {address}, runs {}",
                running.as_deref().unwrap_or("none")
            ),
            What::Disconnected { appliance, reason } => {
                format!("{appliance}: disconnected: {reason}")
            }
            What::State {
                appliance,
                from,
                to,
            } => format!("{appliance}: state {from} → {to}"),
            What::Push { appliance, version } => format!("{appliance}: pushed {version}"),
            What::Ack { appliance, version } => format!("{appliance}: acked {version}"),
            What::Nack {
                appliance,
                version,
                errors,
            } => format!("{appliance}: nacked {version}: {}", errors.join("; ")),
            What::Command {
                appliance,
                id,
                command,
                by,
            } => format!("{appliance}: command {id} {command} (by {by})"),
            What::CommandResult {
                appliance,
                id,
                ok,
                message,
            } => format!(
                "{appliance}: command {id} {}{}",
                if *ok { "done" } else { "failed" },
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
            What::Expired { appliance } => format!("{appliance}: registration expired"),
        }
    }
}

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    /// The controller that recorded it.
    pub controller: String,
    #[serde(flatten)]
    pub what: What,
}

/// The key (under the fleet prefix) of an event recorded at `at_ms`.
pub fn key(at_ms: u64, controller: &str, seq: u64) -> String {
    format!("history/{at_ms:013}-{controller}-{seq:010}")
}

/// The first key at or after `at_ms`.
pub fn key_from(at_ms: u64) -> String {
    format!("history/{at_ms:013}")
}

/// `--since`: seconds since the epoch, or an age
/// (`90s`, `15m`, `2h`, `7d`), as ms since the epoch.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let bad = || {
        format!("--since {s:?}: give seconds since the epoch, or an age such as 90s, 15m, 2h, 7d")
    };
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(now_ms.saturating_sub(Duration::from_secs(secs).as_millis() as u64))
}

/// `2026-12-05 13:04:05.123` (UTC) for `ms` since the epoch.
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_since_takes_ages_and_epochs() {
        assert!(key(999, "a", 2) < key(1000, "a", 1));
        assert!(key_from(1000) <= key(1000, "a", 0));
        assert_eq!(parse_since("1700000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since("15m", 1_000_000).unwrap(), 100_000);
        assert!(parse_since("yesterday", 0).is_err());
        assert_eq!(format_utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_utc(1_796_389_445_123), "2026-12-04 13:04:05.123");
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = Event {
            at_ms: 5,
            controller: "c1".into(),
            what: What::Nack {
                appliance: "tap".into(),
                version: "web@1".into(),
                errors: vec!["rule[0]: bad".into()],
            },
        };
        let j = serde_json::to_string(&e).unwrap();
        assert!(j.contains("\"kind\":\"nack\""), "{j}");
        assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), e);
        assert_eq!(e.what.appliance(), Some("tap"));
    }
}
