//! `[eal]`: the EAL options a service start uses, and `[flow_cache]`.
//!
//! A service runs `sluice -- --config /etc/sluice/NAME.toml`: what EAL gets
//! (lcores, memory, file prefix, devices to allow) belongs to the
//! appliance, so it lives in its config, not in the unit. EAL options on
//! the command line still win.

use serde::Deserialize;

/// `[eal]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// EAL options as on the command line before `--`, without the
    /// program name: `["-l", "0-1", "--no-pci", "-m", "128"]`.
    pub args: Vec<String>,
}

impl EalSection {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        if self.args.iter().any(|a| a == "--") {
            p.push("eal.args: \"--\" ends EAL's options on a command line; leave it out".into());
        }
        if self.args.iter().any(|a| a.contains('\0')) {
            p.push("eal.args: an option contains a NUL byte".into());
        }
        if let Err(e) = self.lcores() {
            p.push(format!("eal.args: {e}"));
        }
    }

    /// The lcores `-l`/`--lcores` lists, if the args give them.
    pub fn lcores(&self) -> Result<Option<Vec<u32>>, String> {
        lcores_in(&self.args)
    }
}

/// The memory `-m MB` or `--socket-mem MB,MB` asks EAL to take at start,
/// in MiB, if the options give it.
pub fn memory_in(args: &[String]) -> Option<u64> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (value, per_socket) = match a.as_str() {
            "-m" => (it.next().map(String::as_str), false),
            "--socket-mem" => (it.next().map(String::as_str), true),
            _ => match (a.strip_prefix("-m"), a.strip_prefix("--socket-mem=")) {
                (Some(v), _) if !v.is_empty() => (Some(v), false),
                (_, Some(v)) => (Some(v), true),
                _ => continue,
            },
        };
        let value = value?;
        return if per_socket {
            value
                .split(',')
                .map(|v| v.trim().parse::<u64>().ok())
                .sum::<Option<u64>>()
        } else {
            value.trim().parse().ok()
        };
    }
    None
}

/// The lcores `-l`/`--lcores` list in EAL options, if they give one.
pub fn lcores_in(args: &[String]) -> Result<Option<Vec<u32>>, String> {
    {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let list = match a.as_str() {
                "-l" | "--lcores" => it.next().map(String::as_str),
                _ => a
                    .strip_prefix("--lcores=")
                    .or_else(|| a.strip_prefix("-l").filter(|s| !s.is_empty())),
            };
            if let Some(list) = list {
                return parse_lcore_list(list).map(Some);
            }
            if matches!(a.as_str(), "-l" | "--lcores") {
                return Err(format!("{a} needs a list of lcores"));
            }
        }
        Ok(None)
    }
}

/// `0-3`, `0,2,4`, `0-1,3`: EAL's lcore list (not the `--lcores` mapping
/// syntax with `@` and parentheses, which is refused with its text).
pub fn parse_lcore_list(list: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("lcore list {list:?} is not of the form 0-3 or 0,2,4");
    let mut out = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse(), b.trim().parse()),
            None => (part.trim().parse(), part.trim().parse()),
        };
        let (Ok(lo), Ok(hi)): (Result<u32, _>, Result<u32, _>) = (lo, hi) else {
            return Err(bad());
        };
        if lo > hi || hi >= 1024 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `[flow_cache]`: each worker's exact-match cache in front of the
/// classifier, one 64-byte line per flow on the heap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowCacheConfig {
    /// Flows per worker (a power of two).
    pub entries: u32,
}

impl Default for FlowCacheConfig {
    /// 1 Mi flows, 64 MiB a worker: against 1 Mi flows 119 ns a packet
    /// where 256 Ki entries in 4 ways took 202-212, against 64 Ki flows
    /// 40-42 where they took 50 (perf/benches/flow_cache.rs, random order).
    fn default() -> Self {
        Self { entries: 1 << 20 }
    }
}

impl FlowCacheConfig {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        let e = self.entries;
        if !e.is_power_of_two() || !(1024..=1 << 24).contains(&e) {
            p.push(format!(
                "flow_cache.entries: {e} is not a power of two in 1024..=16777216"
            ));
        }
    }
}
