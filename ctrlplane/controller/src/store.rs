//! The policy directory: one TOML policy per file, and `assign.toml`
//! saying which appliance runs which.
//!
//! ```text
//! policies/
//!   assign.toml      default = "base"
//!                    [appliance]
//!                    tap-01 = "web"
//!                    [[label]]
//!                    match = { site = "paris", role = "tap" }
//!                    policy = "paris"
//!   base.toml        policy "base"
//!   web.toml         policy "web"
//! ```
//!
//! An appliance gets the policy named for it in `[appliance]`, else the
//! first `[[label]]` rule all of whose labels it carries, else `default`.
//! Without `assign.toml` every appliance gets `default.toml` if there is one.
//!
//! Every policy is parsed before it is served; one that does not parse is
//! reported (log, `sluice-controller policies`) and not pushed: the last
//! good version of that file, if any, stays served. A policy's version is
//! `<name>@<12 hex digits of a hash of the file>`, so it changes exactly
//! when the file does and is the same after a controller restart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use ahash::{AHashMap, AHashSet};
use sluice_protocol::policy;
use sluice_protocol::{encode, ControllerMsg, MAX_FRAME};

pub const ASSIGN_FILE: &str = "assign.toml";

/// One `[[label]]` rule of `assign.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRule {
    /// Every one of these labels must be on the appliance.
    #[serde(rename = "match")]
    pub labels: BTreeMap<String, String>,
    pub policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignFile {
    default: Option<String>,
    #[serde(default)]
    appliance: BTreeMap<String, String>,
    #[serde(default)]
    label: Vec<LabelRule>,
}

/// Which appliance runs which policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignments {
    pub default: Option<String>,
    pub by_name: BTreeMap<String, String>,
    pub by_label: Vec<LabelRule>,
}

impl Default for Assignments {
    /// No `assign.toml`: everyone gets `default`.
    fn default() -> Self {
        Self {
            default: Some("default".into()),
            by_name: BTreeMap::new(),
            by_label: Vec::new(),
        }
    }
}

impl Assignments {
    /// The policy name for an appliance.
    pub fn resolve(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<&str> {
        if let Some(p) = self.by_name.get(name) {
            return Some(p);
        }
        for r in &self.by_label {
            if r.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return Some(&r.policy);
            }
        }
        self.default.as_deref()
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.default
            .iter()
            .chain(self.by_name.values())
            .chain(self.by_label.iter().map(|r| &r.policy))
            .map(String::as_str)
    }
}

/// A policy ready to push.
#[derive(Debug, Clone)]
pub struct Served {
    pub version: String,
    /// The whole `policy` frame, encoded once for every session.
    pub frame: Arc<Vec<u8>>,
}

/// One policy file.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub name: String,
    pub file: PathBuf,
    /// The last good version of the file, if it ever parsed.
    pub served: Option<Served>,
    /// Why the file as it is now is not served.
    pub error: Option<String>,
    file_hash: u64,
}

/// What changed in a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Policies whose served version changed (new, edited, removed).
    pub changed: Vec<String>,
    /// Whether the assignments changed.
    pub assignments_changed: bool,
    /// Problems found in this scan (each also logged once).
    pub problems: Vec<String>,
}

/// The directory and what was last read from it.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// By name; looked up for every appliance at each connect and push.
    policies: AHashMap<String, PolicyEntry>,
    assignments: Assignments,
    assign_hash: Option<u64>,
    assign_error: Option<String>,
}

/// FNV-1a, 64 bits: stable across builds and restarts, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FRAME as u64 {
        return Err(format!(
            "{} bytes, more than a frame can carry ({MAX_FRAME})",
            meta.len()
        ));
    }
    fs::read(path).map_err(|e| e.to_string())
}

impl Store {
    /// An empty store over `dir`; nothing is read until [`Store::scan`].
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            policies: AHashMap::new(),
            assignments: Assignments::default(),
            assign_hash: None,
            assign_error: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn assignments(&self) -> &Assignments {
        &self.assignments
    }

    /// Every policy file read, in no particular order.
    pub fn policies(&self) -> impl Iterator<Item = &PolicyEntry> {
        self.policies.values()
    }

    pub fn assign_error(&self) -> Option<&str> {
        self.assign_error.as_deref()
    }

    /// The policy name and what is served of it, for an appliance.
    pub fn policy_for(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> (Option<String>, Option<&Served>) {
        let Some(p) = self.assignments.resolve(name, labels) else {
            return (None, None);
        };
        let served = self.policies.get(p).and_then(|e| e.served.as_ref());
        (Some(p.to_owned()), served)
    }

    /// Reads the directory again; only files whose content changed are
    /// parsed again. Problems are returned (and were not seen before when
    /// the file is unchanged, so the caller logs each once).
    pub fn scan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                report
                    .problems
                    .push(format!("cannot read {}: {e}", self.dir.display()));
                return report;
            }
        };
        let mut seen = AHashSet::new();
        let mut assign_present = false;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if file_name == ASSIGN_FILE {
                assign_present = true;
                self.scan_assign(&path, &mut report);
                continue;
            }
            let Some(name) = file_name.strip_suffix(".toml") else {
                continue;
            };
            if !path.is_file() {
                continue;
            }
            if !valid_name(name) {
                // Logged every scan would be noise; the listing shows nothing for it.
                continue;
            }
            seen.insert(name.to_owned());
            self.scan_policy(name, &path, &mut report);
        }
        let mut gone: Vec<String> = self
            .policies
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        gone.sort_unstable();
        for g in gone {
            self.policies.remove(&g);
            report.changed.push(g);
        }
        if !assign_present && self.assign_hash.is_some() {
            self.assign_hash = None;
            self.assign_error = None;
            self.assignments = Assignments::default();
            report.assignments_changed = true;
        }
        if report.assignments_changed {
            for n in self.assignments.names() {
                if !self.policies.contains_key(n) {
                    report.problems.push(format!(
                        "{}: policy {n:?} has no file {n}.toml",
                        self.dir.join(ASSIGN_FILE).display()
                    ));
                }
            }
        }
        report
    }

    fn scan_assign(&mut self, path: &Path, report: &mut ScanReport) {
        let bytes = match read_small(path) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("{}: {e}", path.display());
                if self.assign_error.as_deref() != Some(&msg) {
                    report.problems.push(msg.clone());
                }
                self.assign_error = Some(msg);
                return;
            }
        };
        let h = fnv1a(&bytes);
        if self.assign_hash == Some(h) {
            return;
        }
        self.assign_hash = Some(h);
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<AssignFile>(t).map_err(|e| e.to_string()));
        match parsed {
            Ok(a) => {
                let mut bad = Vec::new();
                for n in a
                    .default
                    .iter()
                    .chain(a.appliance.values())
                    .chain(a.label.iter().map(|r| &r.policy))
                {
                    if !valid_name(n) {
                        bad.push(format!("{n:?} is not a policy name"));
                    }
                }
                if !bad.is_empty() {
                    let msg = format!(
                        "{}: {} (the previous assignments stay)",
                        path.display(),
                        bad.join("; ")
                    );
                    report.problems.push(msg.clone());
                    self.assign_error = Some(msg);
                    return;
                }
                let new = Assignments {
                    default: a.default,
                    by_name: a.appliance,
                    by_label: a.label,
                };
                self.assign_error = None;
                if new != self.assignments {
                    self.assignments = new;
                    report.assignments_changed = true;
                }
            }
            Err(e) => {
                let msg = format!(
                    "{}: {} (the previous assignments stay)",
                    path.display(),
                    e.trim().replace('\n', " ")
                );
                report.problems.push(msg.clone());
                self.assign_error = Some(msg);
            }
        }
    }

    fn scan_policy(&mut self, name: &str, path: &Path, report: &mut ScanReport) {
        let origin = path.display().to_string();
        let entry = self
            .policies
            .entry(name.to_owned())
            .or_insert_with(|| PolicyEntry {
                name: name.to_owned(),
                file: path.to_path_buf(),
                served: None,
                error: None,
                file_hash: 0,
            });
        let bytes = match read_small(path) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("{origin}: {e}");
                if entry.error.as_deref() != Some(&msg) {
                    report.problems.push(msg.clone());
                }
                entry.error = Some(msg);
                // Read it whole again once it can be read.
                entry.file_hash = 0;
                return;
            }
        };
        let h = fnv1a(&bytes);
        if entry.file_hash == h && (entry.served.is_some() || entry.error.is_some()) {
            return;
        }
        entry.file_hash = h;
        let keep = if entry.served.is_some() {
            " (the previous version stays served)"
        } else {
            " (not served)"
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                let msg = format!("{origin}: not UTF-8{keep}");
                report.problems.push(msg.clone());
                entry.error = Some(msg);
                return;
            }
        };
        if let Err(e) = policy::parse_toml(&text, &origin) {
            let msg = format!("{e}{keep}");
            report.problems.push(msg.clone());
            entry.error = Some(msg);
            return;
        }
        let version = format!("{name}@{:012x}", h >> 16);
        let frame = encode(&ControllerMsg::Policy {
            version: version.clone(),
            name: name.to_owned(),
            text,
        });
        match frame {
            Ok(f) => {
                entry.error = None;
                if entry.served.as_ref().map(|s| &s.version) != Some(&version) {
                    report.changed.push(name.to_owned());
                }
                entry.served = Some(Served {
                    version,
                    frame: Arc::new(f),
                });
            }
            Err(e) => {
                let msg = format!("{origin}: {e}{keep}");
                report.problems.push(msg.clone());
                entry.error = Some(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn assignment_by_name_then_label_then_default() {
        let a: AssignFile = toml::from_str(
            r#"
            default = "base"
            [appliance]
            tap-01 = "web"
            [[label]]
            match = { site = "par", role = "tap" }
            policy = "paris"
            [[label]]
            match = { site = "par" }
            policy = "par-other"
            "#,
        )
        .unwrap();
        let a = Assignments {
            default: a.default,
            by_name: a.appliance,
            by_label: a.label,
        };
        let par_tap = labels(&[("site", "par"), ("role", "tap")]);
        assert_eq!(a.resolve("tap-01", &par_tap), Some("web"));
        assert_eq!(a.resolve("tap-02", &par_tap), Some("paris"));
        assert_eq!(
            a.resolve("tap-03", &labels(&[("site", "par")])),
            Some("par-other")
        );
        assert_eq!(a.resolve("x", &labels(&[("site", "lyon")])), Some("base"));
    }

    #[test]
    fn versions_follow_content_and_bad_files_are_reported_not_served() {
        let d = dir("scan");
        fs::write(d.join("web.toml"), "version = \"a\"\n").unwrap();
        fs::write(d.join("notes.txt"), "ignored").unwrap();
        let mut s = Store::new(&d);
        let r = s.scan();
        assert_eq!(r.changed, ["web"]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        // No assign.toml: everyone gets `default`, which has no file here.
        let (p, served) = s.policy_for("any", &BTreeMap::new());
        assert_eq!(p.as_deref(), Some("default"));
        assert!(served.is_none());

        fs::write(d.join(ASSIGN_FILE), "default = \"web\"\n").unwrap();
        let r = s.scan();
        assert!(r.assignments_changed && r.changed.is_empty());
        let v1 = s
            .policy_for("any", &BTreeMap::new())
            .1
            .unwrap()
            .version
            .clone();
        assert!(v1.starts_with("web@"), "{v1}");

        // Unchanged: nothing to report.
        assert_eq!(s.scan(), ScanReport::default());

        // A file that does not parse: reported once, the old version stays.
        fs::write(d.join("web.toml"), "[[rule]]\nname = 3\n").unwrap();
        let r = s.scan();
        assert!(r.changed.is_empty());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("web.toml"), "{:?}", r.problems);
        assert!(s.scan().problems.is_empty());
        assert_eq!(s.policy_for("any", &BTreeMap::new()).1.unwrap().version, v1);

        fs::write(d.join("web.toml"), "version = \"b\"\n").unwrap();
        let r = s.scan();
        assert_eq!(r.changed, ["web"]);
        let v2 = s
            .policy_for("any", &BTreeMap::new())
            .1
            .unwrap()
            .version
            .clone();
        assert_ne!(v1, v2);

        // The same content gives the same version in a new store (restart).
        let mut again = Store::new(&d);
        again.scan();
        assert_eq!(
            again.policy_for("any", &BTreeMap::new()).1.unwrap().version,
            v2
        );

        // Assignments naming a missing policy are reported.
        fs::write(d.join(ASSIGN_FILE), "default = \"nope\"\n").unwrap();
        let r = s.scan();
        assert!(
            r.problems.iter().any(|p| p.contains("nope")),
            "{:?}",
            r.problems
        );
        // A broken assign.toml keeps the previous assignments.
        fs::write(d.join(ASSIGN_FILE), "default = [").unwrap();
        let r = s.scan();
        assert_eq!(r.problems.len(), 1);
        assert_eq!(s.assignments().default.as_deref(), Some("nope"));

        fs::remove_file(d.join("web.toml")).unwrap();
        assert_eq!(s.scan().changed, ["web"]);
        let _ = fs::remove_dir_all(&d);
    }
}
