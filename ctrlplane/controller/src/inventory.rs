//! The workload inventory and the policies that follow it.
//!
//! A workload is a VM, pod or host with its current addresses and labels
//! (service, business unit, pod, host…), as a CMDB or cloud inventory
//! knows it. A policy group may select workloads by label
//! (`workloads = { service = "web" }`) next to or instead of CIDRs; the
//! controller compiles the policy by adding every selected workload's
//! addresses to the group's `cidrs`. When a workload moves or changes
//! address, the compiled text of the policies that select it changes, and
//! so does their version: only the appliances running those are pushed.
//!
//! ```toml
//! [[workload]]
//! name = "web-1"
//! addresses = ["10.1.0.5", "2001:db8::5"]
//! labels = { service = "web", bu = "retail", host = "hv-3" }
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sluice_protocol::policy::{self, Policy};

/// One workload as the inventory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// Carries every label of `selector`.
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    workload: Vec<Workload>,
}

/// Parses an inventory file; every problem names the workload.
pub fn parse_file(text: &str, origin: &str) -> Result<Vec<Workload>, String> {
    let f: InventoryFile = toml::from_str(text)
        .map_err(|e| format!("{origin}: {}", e.to_string().trim().replace('\n', " ")))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for (i, w) in f.workload.iter().enumerate() {
        if !crate::store::valid_name(&w.name) {
            problems.push(format!(
                "{origin}: workload[{i}].name: {:?} is not a name (1 to 64 of A-Z a-z 0-9 - _ .)",
                w.name
            ));
        }
        if !seen.insert(w.name.as_str()) {
            problems.push(format!(
                "{origin}: workload[{i}]: {:?} is listed twice",
                w.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(f.workload)
    } else {
        Err(problems.join("; "))
    }
}

/// A policy's source with its workload selectors resolved against
/// `inventory`: the text an appliance gets. A policy that selects nothing
/// by label is returned as it was written, byte for byte.
pub fn compile<'a>(
    source: &str,
    origin: &str,
    inventory: impl Iterator<Item = &'a Workload> + Clone,
) -> Result<String, String> {
    let mut p: Policy = policy::parse_toml(source, origin).map_err(|e| e.to_string())?;
    if p.groups.iter().all(|g| g.workloads.is_empty()) {
        return Ok(source.to_owned());
    }
    for g in &mut p.groups {
        if g.workloads.is_empty() {
            continue;
        }
        let mut addrs: Vec<IpAddr> = inventory
            .clone()
            .filter(|w| w.selected_by(&g.workloads))
            .flat_map(|w| w.addresses.iter().copied())
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        g.cidrs.extend(addrs.into_iter().map(|a| match a {
            IpAddr::V4(v) => format!("{v}/32"),
            IpAddr::V6(v) => format!("{v}/128"),
        }));
        g.workloads.clear();
    }
    toml::to_string(&p).map_err(|e| format!("{origin}: cannot write the compiled policy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"version = "w"

[[group]]
name = "web"
cidrs = ["192.0.2.0/24"]
workloads = { service = "web" }

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "198.51.100.1"
vni = 7

[[rule]]
name = "web"
dst_group = "web"
to = ["noc"]
"#;

    fn inv() -> Vec<Workload> {
        parse_file(
            r#"
[[workload]]
name = "web-1"
addresses = ["10.1.0.5", "2001:db8::5"]
labels = { service = "web", host = "hv-1" }
[[workload]]
name = "db-1"
addresses = ["10.2.0.9"]
labels = { service = "db" }
"#,
            "inv.toml",
        )
        .unwrap()
    }

    #[test]
    fn selectors_become_addresses_and_the_result_parses_again() {
        let out = compile(POLICY, "p", inv().iter()).unwrap();
        let p = policy::parse_toml(&out, "compiled").unwrap();
        assert_eq!(
            p.groups[0].cidrs,
            ["192.0.2.0/24", "10.1.0.5/32", "2001:db8::5/128"]
        );
        assert!(p.groups[0].workloads.is_empty());
        assert_eq!(p.rules[0].dst_group.as_deref(), Some("web"));
        // The same inventory gives the same text (and so the same version).
        assert_eq!(out, compile(POLICY, "p", inv().iter()).unwrap());
        // A workload that moves changes it; one the policy does not select does not.
        let mut moved = inv();
        moved[0].addresses = vec!["10.1.0.6".parse().unwrap()];
        assert_ne!(out, compile(POLICY, "p", moved.iter()).unwrap());
        let mut other = inv();
        other[1].addresses = vec!["10.2.0.10".parse().unwrap()];
        assert_eq!(out, compile(POLICY, "p", other.iter()).unwrap());
    }

    #[test]
    fn a_policy_without_selectors_is_left_as_written() {
        let text = "version = \"plain\"\n# a comment\n";
        assert_eq!(compile(text, "p", inv().iter()).unwrap(), text);
    }

    #[test]
    fn bad_inventories_name_the_workload() {
        let e = parse_file(
            "[[workload]]\nname = \"a\"\naddresses = []\n[[workload]]\nname = \"a\"\naddresses = []\n",
            "inv.toml",
        )
        .unwrap_err();
        assert!(e.contains("workload[1]") && e.contains("twice"), "{e}");
        let e = parse_file(
            "[[workload]]\nname = \"a\"\naddresses = [\"10.0.0.300\"]\n",
            "inv.toml",
        )
        .unwrap_err();
        assert!(e.contains("inv.toml"), "{e}");
    }
}
