//! `[[port]]`: what each port is, which device runs it, and the rules
//! between them (an uplink for tap inputs unless they send to tool ports
//! only, a tool port for decap inputs, each primary's device tapped once).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use super::pdump::secondary_refuses;
use super::raw::RawPort;
use super::values::{parse_cidr, Device};
use crate::capture::{ring_device, PortKind, Replay, ReplayKeys};

/// What a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Mirrored traffic in (TAP, SPAN, vhost, pdump).
    Input,
    /// Tunnels out towards the destinations.
    Uplink,
    /// Frames out as captured to a tool: decap inputs' inner frames, and
    /// tap inputs' copies to tool destinations.
    Tool,
}

/// What an input port carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    /// Mirrored traffic: filtered, deduplicated, sliced, tunnelled out.
    #[default]
    Tap,
    /// ERSPAN/VXLAN/GRE/Geneve tunnels: stripped, the inner frames go to
    /// the tool port.
    Decap,
}

/// Which way traffic on an input port travelled (a TAP has one port per
/// direction). ERSPAN's D bit and filter rules use it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortDirection {
    #[default]
    Ingress,
    Egress,
}

/// Which of a tapped port's directions a pdump input copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureConfig {
    /// What the port receives (direction ingress).
    Rx,
    /// What the port sends (direction egress).
    Tx,
    /// Both, each copy with its own direction.
    #[default]
    Both,
}

/// `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Operator's name for the port (policy rules refer to it).
    pub name: String,
    /// The DPDK device: the devargs Sluice opens (`device`), or for a
    /// pdump input the primary's device it taps (`pdump`), never opened
    /// here.
    pub device: Device,
    pub role: Role,
    /// `direction`, default ingress; a pdump input's copies take theirs
    /// from what they capture.
    pub direction: PortDirection,
    /// A pdump input: what it copies from the primary's device.
    pub pdump: Option<PdumpTap>,
    /// For inputs: `tap` (mirrored traffic, tunnelled out) or `decap`
    /// (tunnels in, their inner frames out on the tool port).
    pub mode: PortMode,
    /// MTU to set on the device (an uplink's `[[uplink]] mtu` bounds
    /// encapsulated packets).
    pub mtu: Option<u16>,
    /// A decap input's own address (written as IPv4 or IPv6, a prefix
    /// length allowed): Sluice answers ARP and neighbour solicitations for
    /// it on this port, so switches can send their tunnels to it.
    pub address: Option<IpAddr>,
    /// A capture input (`file`, `timing`, `speed`, `loop`): the file a
    /// replay thread feeds into the port (`device` is then its `net_ring`).
    pub replay: Option<Replay>,
}

/// What a pdump input copies from the primary's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdumpTap {
    /// `capture`: `rx`, `tx` or `both` (default).
    pub capture: CaptureConfig,
    /// `queues`: the queues to tap; `None`: every queue.
    pub queues: Option<Vec<u16>>,
}

/// The typed ports, and every problem with them added to `p` (the ports
/// are only used when there is none). `secondary`:
/// the config has a `[pdump]` section (Sluice runs as a secondary).
pub(super) fn check(raw: Vec<RawPort>, secondary: bool, p: &mut Vec<String>) -> Vec<PortConfig> {
    let mut names = HashSet::new();
    let mut tapped = HashSet::new();
    let mut ports = Vec::with_capacity(raw.len());
    for (i, port) in raw.iter().enumerate() {
        let key = format!("port[{i}]");
        if port.name.trim().is_empty() {
            p.push(format!("{key}.name: must not be empty"));
        }
        if !names.insert(port.name.as_str()) {
            p.push(format!("{key}.name: {:?} is used by two ports", port.name));
        }
        let replay = replay_of(&key, port, secondary, p);
        let device = match &port.pdump {
            None if replay.is_some() => Device::parse(&ring_device(i)),
            None => own_device(&key, port, secondary, p),
            Some(dev) => {
                if !tapped.insert(dev.trim()) {
                    p.push(format!(
                        "{key}.pdump: {dev:?} is tapped by two ports (capture = \"both\" takes both directions)"
                    ));
                }
                tapped_device(&key, port, secondary, p)
            }
        };
        if let Some(mtu) = port.mtu {
            if !(68..=9600).contains(&mtu) {
                p.push(format!("{key}.mtu: {mtu} is outside 68..=9600"));
            }
        }
        let address = port
            .address
            .as_deref()
            .and_then(|a| address(&key, a, port, p));
        if let Some(device) = device {
            ports.push(PortConfig {
                name: port.name.clone(),
                device,
                role: port.role,
                direction: port.direction.unwrap_or_default(),
                pdump: port.pdump.as_ref().map(|_| PdumpTap {
                    capture: port.capture.unwrap_or_default(),
                    queues: port.queues.clone(),
                }),
                mode: port.mode,
                mtu: port.mtu,
                address,
                replay,
            });
        }
    }
    roles(&raw, p);
    ports
}

/// A capture input's replay, its keys checked.
fn replay_of(key: &str, port: &RawPort, secondary: bool, p: &mut Vec<String>) -> Option<Replay> {
    let keys = ReplayKeys {
        file: port.file.clone(),
        timing: port.timing,
        speed: port.speed,
        loops: port.loops,
    };
    let kind = PortKind {
        input: port.role == Role::Input,
        has_device: !port.device.trim().is_empty() || port.pdump.is_some(),
        has_address: port.address.is_some(),
        secondary,
    };
    crate::capture::replay_of(key, &keys, kind, p)
}

/// The device of a port that opens its own.
fn own_device(key: &str, port: &RawPort, secondary: bool, p: &mut Vec<String>) -> Option<Device> {
    let Some(device) = Device::parse(&port.device) else {
        p.push(format!("{key}.device: must not be empty"));
        return None;
    };
    if secondary {
        if let Some(why) = secondary_refuses(&device) {
            p.push(format!("{key}.device: {why}"));
        }
    }
    if port.capture.is_some() || port.queues.is_some() {
        p.push(format!(
            "{key}: capture and queues are for pdump inputs (pdump = \"<device of the primary>\")"
        ));
    }
    Some(device)
}

/// The primary's device a pdump input taps.
fn tapped_device(
    key: &str,
    port: &RawPort,
    secondary: bool,
    p: &mut Vec<String>,
) -> Option<Device> {
    let device = Device::parse(port.pdump.as_deref().unwrap_or_default());
    if device.is_none() {
        p.push(format!("{key}.pdump: must name the primary's device"));
    }
    if port.role != Role::Input {
        p.push(format!("{key}.pdump: only an input taps a primary's port"));
    }
    if !port.device.trim().is_empty() {
        p.push(format!(
            "{key}.device: a pdump input has no device of its own (pdump names the primary's)"
        ));
    }
    if port.direction.is_some() {
        p.push(format!(
            "{key}.direction: a pdump input's direction comes from capture (rx: ingress, tx: egress)"
        ));
    }
    if !secondary {
        p.push(format!(
            "{key}.pdump: needs a [pdump] section with the primary's file_prefix"
        ));
    }
    if let Some(q) = &port.queues {
        if q.is_empty() {
            p.push(format!("{key}.queues: leave it out to tap every queue"));
        }
        let mut seen = HashSet::new();
        for x in q {
            if !seen.insert(x) {
                p.push(format!("{key}.queues: queue {x} is listed twice"));
            }
        }
    }
    device
}

/// A decap input's own address; a bad one is a problem in `p`.
fn address(key: &str, text: &str, port: &RawPort, p: &mut Vec<String>) -> Option<IpAddr> {
    if port.role != Role::Input || port.mode != PortMode::Decap {
        p.push(format!(
            "{key}.address: only a decap input has an address (tunnels are sent to it)"
        ));
    }
    let ip = parse_cidr(text)
        .map(|c| c.addr)
        .or_else(|| text.trim().parse().ok());
    match ip {
        None => p.push(format!(
            "{key}.address: {text:?} is not an IPv4 or IPv6 address"
        )),
        Some(ip)
            if ip.is_unspecified()
                || ip.is_multicast()
                || ip == IpAddr::V4(Ipv4Addr::BROADCAST) =>
        {
            p.push(format!(
                "{key}.address: {ip} cannot be an interface address"
            ))
        }
        Some(ip) => return Some(ip),
    }
    None
}

/// How many ports have each role, against what the inputs' modes need.
fn roles(ports: &[RawPort], p: &mut Vec<String>) {
    let inputs = ports.iter().filter(|x| x.role == Role::Input).count();
    let taps = ports
        .iter()
        .filter(|x| x.role == Role::Input && x.mode == PortMode::Tap)
        .count();
    let decaps = inputs - taps;
    let uplinks = ports.iter().filter(|x| x.role == Role::Uplink).count();
    let tools = ports.iter().filter(|x| x.role == Role::Tool).count();
    if inputs == 0 {
        p.push("port: at least one port needs role = \"input\"".into());
    }
    if taps > 0 && uplinks == 0 && tools == 0 {
        p.push(
            "port: a port needs role = \"uplink\" when inputs are in tap mode (none has it), unless every destination is a tool port (role = \"tool\")".into(),
        );
    }
    if decaps > 0 && tools == 0 {
        p.push(
            "port: a port needs role = \"tool\" when inputs are in decap mode (none has it)".into(),
        );
    }
    for (i, port) in ports.iter().enumerate() {
        if port.role != Role::Input && port.mode != PortMode::Tap {
            p.push(format!("port[{i}].mode: only input ports have a mode"));
        }
    }
}
