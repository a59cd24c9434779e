//! The appliance's log: one line on stderr per event, with its level.
//!
//! - `text` (the default): `sluice: message`, with `warning: ` or
//!   `error: ` before the message of those levels; journald stamps the
//!   time and keeps stderr's lines as they are.
//! - `json`: one object a line, `{"time","level","target","message",
//!   "fields"}`, `time` in RFC 3339 UTC with microseconds and `target` the
//!   module that logged (`appliance::protect`), for log shippers.
//!
//! Hand-written rather than `tracing`: the appliance logs a few dozen
//! events from the main lcore, never from a worker, and needs neither
//! spans nor per-module filters; this is the whole of it.
//!
//! Every module of the main lcore may log; this module imports nothing of
//! the crate but the format and level names, so no arrow runs back up to
//! the appliance.

use std::io::Write;
use std::panic::Location;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::args::{LogFormat, LogLevel};

static SETTINGS: OnceLock<(LogFormat, LogLevel)> = OnceLock::new();

/// Sets the format and the least severe level logged, once, before the
/// first line (later calls change nothing). Without it: text, info.
pub fn init(format: LogFormat, level: LogLevel) {
    let _ = SETTINGS.set((format, level));
}

fn settings() -> (LogFormat, LogLevel) {
    *SETTINGS.get_or_init(|| (LogFormat::Text, LogLevel::Info))
}

/// An event at `info`.
#[track_caller]
pub fn log(msg: impl AsRef<str>) {
    event(LogLevel::Info, msg.as_ref(), &[]);
}

/// An event at `warn`: something failed and the appliance carries on.
#[track_caller]
pub fn warn(msg: impl AsRef<str>) {
    event(LogLevel::Warn, msg.as_ref(), &[]);
}

/// An event at `error`: the appliance cannot do what it was asked.
#[track_caller]
pub fn error(msg: impl AsRef<str>) {
    event(LogLevel::Error, msg.as_ref(), &[]);
}

/// An event with named values (in JSON, the `fields` object; in text, the
/// message says them already).
#[track_caller]
pub fn event(level: LogLevel, msg: &str, fields: &[(&str, &str)]) {
    let (format, least) = settings();
    if level < least {
        return;
    }
    let line = match format {
        LogFormat::Text => text_line(level, msg),
        LogFormat::Json => json_line(
            SystemTime::now(),
            level,
            &target(Location::caller().file()),
            msg,
            fields,
        ),
    };
    // A closed stderr (the reader went away) must not panic the main
    // lcore: that would leave the workers running forever.
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn text_line(level: LogLevel, msg: &str) -> String {
    match level {
        LogLevel::Debug | LogLevel::Info => format!("sluice: {msg}"),
        LogLevel::Warn => format!("sluice: warning: {msg}"),
        LogLevel::Error => format!("sluice: error: {msg}"),
    }
}

fn json_line(
    time: SystemTime,
    level: LogLevel,
    target: &str,
    msg: &str,
    fields: &[(&str, &str)],
) -> String {
    let fields: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::json!({
        "time": rfc3339(time),
        "level": level.name(),
        "target": target,
        "message": msg,
        "fields": fields,
    })
    .to_string()
}

/// The module a source file is: `ctrlplane/src/appliance/protect.rs` is
/// `appliance::protect`, `…/appliance/mod.rs` is `appliance`, `main.rs`
/// is `main`.
fn target(file: &str) -> String {
    let rel = file.rsplit_once("src/").map_or(file, |(_, r)| r);
    let rel = rel.trim_end_matches(".rs").trim_end_matches("/mod");
    rel.replace('/', "::")
}

/// `2026-12-05T12:34:56.123456Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_lines_carry_time_level_target_message_and_fields() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_473_296_123_456);
        let line = json_line(
            t,
            LogLevel::Warn,
            "appliance::protect",
            "entering \"protect\"",
            &[("why", "rx misses")],
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(v["time"], "2026-12-05T12:21:36.123456Z");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "appliance::protect");
        assert_eq!(v["message"], "entering \"protect\"");
        assert_eq!(v["fields"]["why"], "rx misses");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn targets_are_module_paths() {
        assert_eq!(
            target("ctrlplane/src/appliance/protect.rs"),
            "appliance::protect"
        );
        assert_eq!(target("ctrlplane/src/appliance/mod.rs"), "appliance");
        assert_eq!(target("ctrlplane/src/main.rs"), "main");
    }

    #[test]
    fn text_marks_warnings_and_errors() {
        assert_eq!(text_line(LogLevel::Info, "up"), "sluice: up");
        assert_eq!(text_line(LogLevel::Warn, "x"), "sluice: warning: x");
        assert_eq!(text_line(LogLevel::Error, "x"), "sluice: error: x");
    }
}
