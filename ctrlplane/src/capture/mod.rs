//! Capture files as inputs.
//!
//! A capture input (`file = "trace.pcapng"` on an input port) is read by a
//! replay thread of its own, not by a worker: it reads the file
//! ([`file`]), gives every frame an Ethernet header where its link type has
//! none ([`link`]), paces it ([`replay`]) and hands it to a `net_ring`
//! port that the workers poll like any other input. The data path is the
//! same as for a NIC; a worker never waits for a capture's clock.
//!
//! With `timing = "capture"` each packet carries its capture time (the
//! mbuf's RX timestamp field) and dedup's window runs on that time, so a
//! replay's outcome does not depend on how fast it was read.

pub mod file;
pub mod inputs;
pub mod link;
pub mod replay;

use std::path::Path;

use serde::Deserialize;

pub use file::{CaptureError, CaptureReader, Link, Record};
pub use inputs::CaptureInputs;
pub use replay::{Replay, ReplayStats};

/// How a capture input paces its frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// As fast as the workers take them; dedup's window runs on arrival
    /// time (the default, and what benchmarks use).
    #[default]
    Fast,
    /// At the capture's own spacing (divided by `speed`); dedup's window
    /// runs on capture time.
    Capture,
}

impl Timing {
    pub fn name(self) -> &'static str {
        match self {
            Timing::Fast => "fast",
            Timing::Capture => "capture",
        }
    }
}

/// The `net_ring` device a capture input's replay thread feeds; the
/// index keeps it unique and its rings' names short enough for DPDK.
pub fn ring_device(index: usize) -> String {
    format!("net_ring_cap{index}")
}

/// Checks that `path` is a capture Sluice can read and carry: a pcap or
/// pcapng file with at least one link type Sluice converts (an empty
/// pcapng with no interface is fine: there is nothing to carry). Returns
/// the link types that are not carried, whose frames will be skipped.
pub fn check_file(path: &Path) -> Result<Vec<u16>, String> {
    let mut r = CaptureReader::open(path).map_err(|e| e.to_string())?;
    let links = r.links().map_err(|e| e.to_string())?;
    let (carried, skipped): (Vec<u16>, Vec<u16>) = links
        .iter()
        .map(|l| l.link_type)
        .partition(|t| link::carried(*t));
    if carried.is_empty() && !skipped.is_empty() {
        let names: Vec<String> = skipped.iter().map(|t| link::name(*t)).collect();
        return Err(format!(
            "link type {}: Sluice carries {} only",
            names.join(", "),
            link::CARRIED
        ));
    }
    Ok(skipped)
}

/// A `net_pcap` input hands its `rx_pcap` files' frames to the pipeline as
/// they are, as Ethernet: refuse a file of another link type, or with an
/// FCS, and say how to give it as a capture input instead (which converts).
pub fn check_pcap_files<'a>(
    port: &str,
    files: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    for file in files {
        let mut r = CaptureReader::open(Path::new(file))
            .map_err(|e| format!("port {port:?}: rx_pcap {file}: {e}"))?;
        let links = r
            .links()
            .map_err(|e| format!("port {port:?}: rx_pcap {file}: {e}"))?;
        let hint = format!("give it as `file = {file:?}` on the input instead of `device`, and Sluice converts its frames to Ethernet");
        for l in links {
            if l.link_type != link::ETHERNET {
                return Err(format!(
                    "port {port:?}: rx_pcap {file} has link type {}, not Ethernet, and net_pcap hands frames over as they are: {hint}",
                    link::name(l.link_type)
                ));
            }
            if l.fcs_bytes != 0 {
                return Err(format!(
                    "port {port:?}: rx_pcap {file} has a {}-byte FCS on every frame, which net_pcap would forward: {hint}",
                    l.fcs_bytes
                ));
            }
        }
    }
    Ok(())
}

/// A port's capture-input keys, as the config file has them.
#[derive(Debug, Clone, Default)]
pub struct ReplayKeys {
    pub file: Option<std::path::PathBuf>,
    pub timing: Option<Timing>,
    pub speed: Option<f64>,
    pub loops: Option<u32>,
}

/// Where the capture-input keys sit on a port.
#[derive(Debug, Clone, Copy)]
pub struct PortKind {
    pub input: bool,
    /// `device` or `pdump` is given too.
    pub has_device: bool,
    /// A decap input's `address` is given (its ARP/ND answers would go
    /// out on the port's only TX queue, which the replay thread owns).
    pub has_address: bool,
    /// Sluice runs as a pdump secondary.
    pub secondary: bool,
}

/// The replay a port's keys ask for (`None`: not a capture input), with
/// every problem added to `p`, each naming its key under `key`.
pub fn replay_of(
    key: &str,
    keys: &ReplayKeys,
    kind: PortKind,
    p: &mut Vec<String>,
) -> Option<Replay> {
    let Some(file) = &keys.file else {
        for (set, name) in [
            (keys.timing.is_some(), "timing"),
            (keys.speed.is_some(), "speed"),
            (keys.loops.is_some(), "loop"),
        ] {
            if set {
                p.push(format!(
                    "{key}.{name}: only a capture input (file = \"...\") has one"
                ));
            }
        }
        return None;
    };
    if file.as_os_str().is_empty() {
        p.push(format!("{key}.file: must name a pcap or pcapng file"));
    }
    if !kind.input {
        p.push(format!("{key}.file: only an input replays a capture"));
    }
    if kind.has_device {
        p.push(format!(
            "{key}.file: a capture input has no device or pdump of its own (Sluice feeds it)"
        ));
    }
    if kind.has_address {
        p.push(format!(
            "{key}.address: a capture input answers no ARP/ND (nothing is sent to it)"
        ));
    }
    if kind.secondary {
        p.push(format!(
            "{key}.file: capture inputs are not run by a pdump secondary"
        ));
    }
    let timing = keys.timing.unwrap_or_default();
    let speed = keys.speed.unwrap_or(1.0);
    if keys.speed.is_some() && timing != Timing::Capture {
        p.push(format!(
            "{key}.speed: scales capture timing; add timing = \"capture\""
        ));
    }
    if !(speed.is_finite() && speed > 0.0) {
        p.push(format!("{key}.speed: {speed} is not a positive number"));
    }
    let loops = keys.loops.unwrap_or(1);
    if loops == 0 {
        p.push(format!(
            "{key}.loop: plays the file at least once (1 or more)"
        ));
    }
    Some(Replay {
        file: file.clone(),
        timing,
        speed,
        loops,
    })
}

#[cfg(test)]
mod tests;
