//! The fleet's policies, as every controller holds them in memory: the
//! policy sources, the assignments and the workload inventory that etcd
//! keeps (`fleet`), and what is served of each policy after its workload
//! selectors are compiled (`inventory`). The policy directory is the
//! import and export format:
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
//! Without assignments every appliance gets `default` if there is one.
//!
//! Every policy is parsed before it is imported; one that does not parse
//! is reported and not imported: the last good version, if any, stays
//! served. A policy's version is `<name>@<12 hex digits of a hash of the
//! compiled text>`, so it changes exactly when what the appliance gets
//! does, and is the same on every controller and after a restart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use ahash::AHashMap;
use sluice_protocol::policy;

use crate::inventory::{self, Workload};
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

/// One policy.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub name: String,
    /// As imported, workload selectors and all.
    pub source: String,
    /// The compiled policy, if it compiles against the inventory.
    pub served: Option<Served>,
    /// Why it does not compile now (the last good version stays served).
    pub error: Option<String>,
}

/// The fleet's policies, assignments and inventory, and what is served.
#[derive(Debug, Default)]
pub struct Store {
    /// By name; looked up for every appliance at each connect and push.
    policies: AHashMap<String, PolicyEntry>,
    assignments: Assignments,
    inventory: BTreeMap<String, Workload>,
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

/// A policy, workload or appliance name: what can be a key and a file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Parses `assign.toml`; the error names what is wrong.
pub fn parse_assign(text: &str, origin: &str) -> Result<Assignments, String> {
    let a: AssignFile = toml::from_str(text)
        .map_err(|e| format!("{origin}: {}", e.to_string().trim().replace('\n', " ")))?;
    let bad: Vec<String> = a
        .default
        .iter()
        .chain(a.appliance.values())
        .chain(a.label.iter().map(|r| &r.policy))
        .filter(|n| !valid_name(n))
        .map(|n| format!("{n:?} is not a policy name"))
        .collect();
    if !bad.is_empty() {
        return Err(format!("{origin}: {}", bad.join("; ")));
    }
    Ok(Assignments {
        default: a.default,
        by_name: a.appliance,
        by_label: a.label,
    })
}

/// Compiles `source` against `inventory` into what is served.
pub fn serve(
    name: &str,
    source: &str,
    origin: &str,
    inventory: &BTreeMap<String, Workload>,
) -> Result<Served, String> {
    let text = inventory::compile(source, origin, inventory.values())?;
    policy::parse_toml(&text, origin).map_err(|e| e.to_string())?;
    let version = format!("{name}@{:012x}", fnv1a(text.as_bytes()) >> 16);
    let frame = encode(&ControllerMsg::Policy {
        version: version.clone(),
        name: name.to_owned(),
        text,
    })
    .map_err(|e| format!("{origin}: {e}"))?;
    Ok(Served {
        version,
        frame: Arc::new(frame),
    })
}

impl Store {
    pub fn assignments(&self) -> &Assignments {
        &self.assignments
    }

    /// Every policy, in no particular order.
    pub fn policies(&self) -> impl Iterator<Item = &PolicyEntry> {
        self.policies.values()
    }

    pub fn policy(&self, name: &str) -> Option<&PolicyEntry> {
        self.policies.get(name)
    }

    pub fn inventory(&self) -> &BTreeMap<String, Workload> {
        &self.inventory
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

    /// A policy as etcd holds it now; true when what is served changed.
    pub fn set_policy(&mut self, name: &str, source: String) -> bool {
        let entry = self
            .policies
            .entry(name.to_owned())
            .or_insert_with(|| PolicyEntry {
                name: name.to_owned(),
                source: String::new(),
                served: None,
                error: None,
            });
        entry.source = source;
        Self::recompile(entry, &self.inventory)
    }

    /// True when it was there.
    pub fn remove_policy(&mut self, name: &str) -> bool {
        self.policies.remove(name).is_some()
    }

    /// The assignments as etcd holds them now (`None`: none stored).
    pub fn set_assignments(&mut self, a: Option<Assignments>) -> bool {
        let a = a.unwrap_or_default();
        let changed = a != self.assignments;
        self.assignments = a;
        changed
    }

    /// A workload added, changed (`Some`) or removed (`None`); the
    /// policies whose served version changed because of it, by name.
    pub fn set_workload(&mut self, name: &str, w: Option<Workload>) -> Vec<String> {
        match w {
            Some(w) => self.inventory.insert(name.to_owned(), w),
            None => self.inventory.remove(name),
        };
        let mut changed: Vec<String> = self
            .policies
            .values_mut()
            .filter(|e| e.source.contains("workloads"))
            .filter_map(|e| Self::recompile(e, &self.inventory).then(|| e.name.clone()))
            .collect();
        changed.sort_unstable();
        changed
    }

    fn recompile(entry: &mut PolicyEntry, inventory: &BTreeMap<String, Workload>) -> bool {
        let origin = format!("policy {}", entry.name);
        let before = entry.served.as_ref().map(|s| s.version.clone());
        match serve(&entry.name, &entry.source, &origin, inventory) {
            Ok(s) => {
                entry.served = Some(s);
                entry.error = None;
            }
            Err(e) => {
                let keep = if entry.served.is_some() {
                    " (the previous version stays served)"
                } else {
                    " (not served)"
                };
                entry.error = Some(format!("{e}{keep}"));
            }
        }
        entry.served.as_ref().map(|s| &s.version) != before.as_ref()
    }
}

/// A policy directory as read for an import.
#[derive(Debug, Default)]
pub struct PolicyDir {
    /// Every `NAME.toml` that parses, by name.
    pub policies: BTreeMap<String, String>,
    /// `assign.toml`, if present and valid.
    pub assign: Option<String>,
    /// Files that were not taken, each with why.
    pub problems: Vec<String>,
    /// Policies whose file is there but was not taken: the fleet keeps
    /// the version it has rather than losing the policy.
    pub broken: Vec<String>,
    /// `assign.toml` is there but was not taken.
    pub assign_broken: bool,
}

fn read_small(path: &Path) -> Result<String, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FRAME as u64 {
        return Err(format!(
            "{} bytes, more than a frame can carry ({MAX_FRAME})",
            meta.len()
        ));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())
}

/// Reads a policy directory; each policy must compile against `inventory`.
pub fn read_dir(dir: &Path, inventory: &BTreeMap<String, Workload>) -> Result<PolicyDir, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = PolicyDir::default();
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let origin = path.display().to_string();
        if file_name == ASSIGN_FILE {
            match read_small(&path).and_then(|t| parse_assign(&t, &origin).map(|_| t)) {
                Ok(t) => out.assign = Some(t),
                Err(e) => {
                    out.assign_broken = true;
                    out.problems.push(if e.starts_with(&origin) {
                        e
                    } else {
                        format!("{origin}: {e}")
                    });
                }
            }
            continue;
        }
        let Some(name) = file_name.strip_suffix(".toml") else {
            continue;
        };
        if !path.is_file() || name.starts_with('.') {
            continue;
        }
        if !valid_name(name) {
            out.problems.push(format!(
                "{origin}: {name:?} is not a policy name (1 to 64 of A-Z a-z 0-9 - _ .)"
            ));
            continue;
        }
        match read_small(&path) {
            Ok(text) => match serve(name, &text, &origin, inventory) {
                Ok(_) => {
                    out.policies.insert(name.to_owned(), text);
                }
                Err(e) => {
                    out.broken.push(name.to_owned());
                    out.problems.push(e);
                }
            },
            Err(e) => {
                out.broken.push(name.to_owned());
                out.problems.push(format!("{origin}: {e}"));
            }
        }
    }
    if let Some(a) = &out.assign {
        if let Ok(a) = parse_assign(a, ASSIGN_FILE) {
            for n in a.names() {
                if !out.policies.contains_key(n) {
                    out.problems.push(format!(
                        "{}: policy {n:?} has no file {n}.toml",
                        dir.join(ASSIGN_FILE).display()
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Writes policies and assignments as a directory an import reads back.
pub fn write_dir(
    dir: &Path,
    policies: &BTreeMap<String, String>,
    assign: Option<&str>,
) -> Result<usize, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |file: String, text: &str| -> Result<(), String> {
        // Write then rename: a reader never sees half a file.
        let tmp = dir.join(format!(".{file}.tmp"));
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, dir.join(&file)))
            .map_err(|e| format!("{}: {e}", dir.join(&file).display()))
    };
    for (name, text) in policies {
        write(format!("{name}.toml"), text)?;
    }
    if let Some(a) = assign {
        write(ASSIGN_FILE.to_owned(), a)?;
    }
    Ok(policies.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn versions_follow_content_and_bad_policies_keep_the_last_good_one() {
        let mut s = Store::default();
        assert!(s.set_policy("web", "version = \"a\"\n".into()));
        // No assignments: everyone gets `default`, which does not exist here.
        let (p, served) = s.policy_for("any", &BTreeMap::new());
        assert_eq!(p.as_deref(), Some("default"));
        assert!(served.is_none());

        let a = parse_assign("default = \"web\"\n", "assign").unwrap();
        assert!(s.set_assignments(Some(a.clone())));
        assert!(!s.set_assignments(Some(a)));
        let v1 = s
            .policy_for("any", &BTreeMap::new())
            .1
            .unwrap()
            .version
            .clone();
        assert!(v1.starts_with("web@"), "{v1}");
        // The same text: the same version, nothing changed.
        assert!(!s.set_policy("web", "version = \"a\"\n".into()));

        // A text that does not parse: reported, the old version stays.
        assert!(!s.set_policy("web", "[[rule]]\nname = 3\n".into()));
        let e = s.policy("web").unwrap().error.clone().unwrap();
        assert!(e.contains("previous version stays"), "{e}");
        assert_eq!(s.policy_for("any", &BTreeMap::new()).1.unwrap().version, v1);

        assert!(s.set_policy("web", "version = \"b\"\n".into()));
        let v2 = s
            .policy_for("any", &BTreeMap::new())
            .1
            .unwrap()
            .version
            .clone();
        assert_ne!(v1, v2);
        // Another controller computes the same version from the same text.
        let mut other = Store::default();
        other.set_policy("web", "version = \"b\"\n".into());
        assert_eq!(
            other
                .policy("web")
                .unwrap()
                .served
                .as_ref()
                .unwrap()
                .version,
            v2
        );
        assert!(s.remove_policy("web"));
    }

    #[test]
    fn a_directory_imports_what_parses_and_reports_the_rest() {
        let d = std::env::temp_dir().join(format!("sluice-store-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("web.toml"), "version = \"a\"\n").unwrap();
        fs::write(d.join("broken.toml"), "[[rule]]\nname = 3\n").unwrap();
        fs::write(d.join("notes.txt"), "ignored").unwrap();
        fs::write(
            d.join(ASSIGN_FILE),
            "default = \"web\"\n[appliance]\nx = \"nope\"\n",
        )
        .unwrap();
        let r = read_dir(&d, &BTreeMap::new()).unwrap();
        assert_eq!(r.policies.keys().collect::<Vec<_>>(), ["web"]);
        assert!(r.assign.is_some());
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].contains("broken.toml"), "{:?}", r.problems);
        assert!(r.problems[1].contains("\"nope\""), "{:?}", r.problems);

        // Export and import again: the same policies.
        let out = d.join("export");
        write_dir(&out, &r.policies, r.assign.as_deref()).unwrap();
        let back = read_dir(&out, &BTreeMap::new()).unwrap();
        assert_eq!(back.policies, r.policies);
        assert_eq!(back.assign, r.assign);

        fs::write(d.join(ASSIGN_FILE), "default = [").unwrap();
        let r = read_dir(&d, &BTreeMap::new()).unwrap();
        assert!(r.assign.is_none());
        assert!(
            r.problems.iter().any(|p| p.contains(ASSIGN_FILE)),
            "{:?}",
            r.problems
        );
        let _ = fs::remove_dir_all(&d);
    }
}
