//! The appliance config: one TOML file (ports, lcores, mempools, dedup,
//! uplink addressing, limits). Unknown keys and bad values are errors that
//! name the key; every problem is reported, not just the first.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// A config that could not be used, with every reason.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path}: {reason}")]
    Syntax { path: String, reason: String },
    #[error("config {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

/// What a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Mirrored traffic in (TAP, SPAN, vhost, pdump).
    Input,
    /// Tunnels out towards the destinations.
    Uplink,
    /// Plain frames out to a legacy tool (decap mode).
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

/// What happens to frames on a decap input that are not tunnels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonTunnel {
    /// Counted (`filtered`) and dropped.
    #[default]
    Drop,
    /// Handed to the tool port as they are.
    Pass,
}

/// How decap re-tags inner frames so a tool can tell sources apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetagMode {
    #[default]
    None,
    /// An 802.1Q tag whose VID is the tunnel ID's low 12 bits.
    Low12,
}

/// `[decap]`: the tunnel-decap front-end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecapSection {
    pub vxlan_ports: Vec<u16>,
    pub geneve_ports: Vec<u16>,
    /// Tunnels stripped at most (1..=4).
    pub max_layers: u8,
    pub retag: RetagMode,
    pub retag_pcp: u8,
    pub non_tunnel: NonTunnel,
    /// Drop copies of inner frames seen within the dedup window.
    pub dedup: bool,
}

impl Default for DecapSection {
    fn default() -> Self {
        Self {
            vxlan_ports: vec![4789, 8472],
            geneve_ports: vec![6081],
            max_layers: 2,
            retag: RetagMode::None,
            retag_pcp: 0,
            non_tunnel: NonTunnel::Drop,
            dedup: false,
        }
    }
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Operator's name for the port (policy rules refer to it).
    pub name: String,
    /// DPDK devargs (`net_pcap0,rx_pcap=in.pcap`) or a PCI address; empty
    /// for a pdump input.
    #[serde(default)]
    pub device: String,
    pub role: Role,
    /// Default ingress; a pdump input's comes from what it captures.
    pub direction: Option<PortDirection>,
    /// A pdump input: the name of the primary's device to tap (a PCI
    /// address, or a vdev name such as `net_vhost0`).
    pub pdump: Option<String>,
    /// A pdump input: `rx`, `tx` or `both` (default).
    pub capture: Option<CaptureConfig>,
    /// A pdump input: the queues to tap; default every queue.
    pub queues: Option<Vec<u16>>,
    /// For inputs: `tap` (mirrored traffic, tunnelled out) or `decap`
    /// (tunnels in, their inner frames out on the tool port).
    #[serde(default)]
    pub mode: PortMode,
    /// MTU to set on the device; the uplink's bounds encapsulated packets.
    pub mtu: Option<u16>,
    /// A decap input's own address (IPv4 or IPv6, a prefix length allowed):
    /// Sluice answers ARP and neighbour solicitations for it on this port,
    /// so switches can send their tunnels to it.
    pub address: Option<String>,
}

impl PortConfig {
    /// The port's traffic direction (`direction`, default ingress).
    pub fn direction(&self) -> PortDirection {
        self.direction.unwrap_or_default()
    }

    /// What a pdump input captures (`capture`, default both).
    pub fn capture(&self) -> CaptureConfig {
        self.capture.unwrap_or_default()
    }

    /// The parsed `address`, if any.
    pub fn address(&self) -> Option<IpAddr> {
        let a = self.address.as_deref()?;
        parse_cidr(a)
            .map(|(ip, _)| ip)
            .or_else(|| a.trim().parse().ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// The appliance's address on the uplink, with prefix length: `192.0.2.1/24`.
    pub address: String,
    /// Next hop for destinations outside the uplink's subnet.
    pub gateway: Option<IpAddr>,
    /// Source MAC of tunnels; default: the uplink port's own.
    pub mac: Option<String>,
    /// Largest outer IP packet; encapsulated packets never exceed it.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Seconds between next-hop re-resolutions.
    #[serde(default = "default_arp_refresh")]
    pub arp_refresh_s: u32,
}

impl UplinkConfig {
    fn problems(&self, p: &mut Vec<String>) {
        match parse_cidr(&self.address) {
            None => p.push(format!(
                "uplink.address: {:?} is not an address with prefix length such as 192.0.2.1/24",
                self.address
            )),
            Some((addr, _)) => {
                if let Some(gw) = self.gateway {
                    if gw.is_ipv4() != addr.is_ipv4() {
                        p.push(format!(
                            "uplink.gateway: {gw} is not of the address family of uplink.address"
                        ));
                    }
                }
                if addr.is_unspecified() || addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
                    p.push(format!(
                        "uplink.address: {addr} cannot be an interface address"
                    ));
                }
            }
        }
        if let Some(mac) = &self.mac {
            if parse_mac(mac).is_none() {
                p.push(format!("uplink.mac: {mac:?} is not a MAC address"));
            }
        }
        if !(576..=9600).contains(&self.mtu) {
            p.push(format!("uplink.mtu: {} is outside 576..=9600", self.mtu));
        }
        if self.arp_refresh_s == 0 {
            p.push("uplink.arp_refresh_s: must be at least 1".into());
        }
    }
}

/// `[pdump]`: Sluice as a DPDK secondary process of a primary that
/// initialised packet capture, tapping its ports (the `pdump` inputs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdumpSection {
    /// The primary's EAL `--file-prefix`.
    pub file_prefix: String,
    /// Copies each tapped direction's ring holds (a power of two).
    #[serde(default = "default_pdump_ring")]
    pub ring_size: u32,
    /// Mbufs of the pool the primary copies into (in its shared memory).
    #[serde(default = "default_pdump_mbufs")]
    pub mbufs: u32,
    /// First remove taps already on the tapped ports (left by a Sluice
    /// that was killed); otherwise such a port is refused.
    #[serde(default)]
    pub replace_taps: bool,
}

impl PdumpSection {
    fn problems(&self, p: &mut Vec<String>) {
        let f = self.file_prefix.trim();
        if f.is_empty() || f.contains('/') || f.contains(char::is_whitespace) {
            p.push(format!(
                "pdump.file_prefix: {:?} is not a DPDK file prefix (the primary's --file-prefix)",
                self.file_prefix
            ));
        }
        if !self.ring_size.is_power_of_two() || !(1024..=1 << 20).contains(&self.ring_size) {
            p.push(format!(
                "pdump.ring_size: {} is not a power of two in 1024..=1048576",
                self.ring_size
            ));
        }
        if self.mbufs < 1024 {
            p.push(format!("pdump.mbufs: {} is fewer than 1024", self.mbufs));
        }
    }
}

/// A neighbour's MAC fixed by the operator: no ARP/ND for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    pub ip: IpAddr,
    pub mac: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Worker lcores; default: every EAL lcore but the main one.
    pub lcores: Option<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default = "default_cache")]
    pub cache: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesConfig {
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Per-worker ring from the distributor, for inputs without RSS.
    #[serde(default = "default_ring")]
    pub distributor_ring: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Entries per worker (a power of two).
    #[serde(default = "default_dedup_entries")]
    pub table_entries: u32,
    #[serde(default = "default_window_us")]
    pub window_us: u64,
    #[serde(default)]
    pub ignore_dscp: bool,
    #[serde(default)]
    pub include_l2: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceId {
    #[serde(default = "default_name")]
    pub name: String,
    /// Carried in tunnels (ERSPAN III hardware ID: low 6 bits).
    #[serde(default = "default_id")]
    pub id: u16,
}

/// The whole appliance config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub appliance: ApplianceId,
    #[serde(rename = "port")]
    pub ports: Vec<PortConfig>,
    /// The uplink's addressing; needed when any input is in `tap` mode.
    pub uplink: Option<UplinkConfig>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default)]
    pub queues: QueuesConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub decap: DecapSection,
    /// Secondary process tapping a primary's ports (pdump inputs).
    pub pdump: Option<PdumpSection>,
    /// Limits that send the appliance into `protect`, and how it sheds.
    #[serde(default)]
    pub guard: crate::guard::GuardConfig,
    /// The controller session; without it the appliance runs its local policy.
    #[serde(default)]
    pub controller: Option<ControllerConfig>,
}

/// `[controller]`: where the controller is and how to prove who we are.
/// Paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// The controller's `host:port`.
    pub address: String,
    /// The name the controller's certificate must carry; default: the host
    /// part of `address`.
    pub server_name: Option<String>,
    /// PEM: the CA that issued the controller's certificate.
    pub ca: PathBuf,
    /// PEM: this appliance's certificate chain (its DNS names must include
    /// `appliance.name`) and private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the last acked policy is kept, for restarts without a controller.
    #[serde(default = "default_persist")]
    pub persist: PathBuf,
    /// Heartbeat interval.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// First reconnect delay; it doubles (with jitter) up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Bound on each of TCP connect, TLS handshake and hello.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Labels the controller may assign policies by.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ControllerConfig {
    /// `server_name`, or the host part of `address`.
    pub fn server_name(&self) -> String {
        match &self.server_name {
            Some(s) => s.clone(),
            None => split_host_port(&self.address)
                .map(|(h, _)| h.to_owned())
                .unwrap_or_default(),
        }
    }

    fn problems(&self, p: &mut Vec<String>) {
        if split_host_port(&self.address).is_none() {
            p.push(format!(
                "controller.address: {:?} is not host:port",
                self.address
            ));
        }
        let name = self.server_name();
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            p.push(format!(
                "controller.server_name: {name:?} is not a DNS name or IP address"
            ));
        }
        for (key, path) in [
            ("controller.ca", &self.ca),
            ("controller.cert", &self.cert),
            ("controller.key", &self.key),
            ("controller.persist", &self.persist),
        ] {
            if path.as_os_str().is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if !(100..=60_000).contains(&self.heartbeat_ms) {
            p.push(format!(
                "controller.heartbeat_ms: {} is outside 100..=60000",
                self.heartbeat_ms
            ));
        }
        if !(10..=3_600_000).contains(&self.backoff_max_ms) {
            p.push(format!(
                "controller.backoff_max_ms: {} is outside 10..=3600000",
                self.backoff_max_ms
            ));
        }
        if self.backoff_initial_ms == 0 || self.backoff_initial_ms > self.backoff_max_ms {
            p.push(format!(
                "controller.backoff_initial_ms: {} is not in 1..=backoff_max_ms",
                self.backoff_initial_ms
            ));
        }
        if !(10..=600_000).contains(&self.connect_timeout_ms) {
            p.push(format!(
                "controller.connect_timeout_ms: {} is outside 10..=600000",
                self.connect_timeout_ms
            ));
        }
        for k in self.labels.keys() {
            if k.trim().is_empty() {
                p.push("controller.labels: a label name is empty".into());
            }
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) into host and port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

fn default_mtu() -> u16 {
    1500
}
fn default_arp_refresh() -> u32 {
    30
}
fn default_mbufs() -> u32 {
    16383
}
fn default_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}
fn default_ring() -> u32 {
    4096
}
fn default_dedup_entries() -> u32 {
    1 << 20
}
fn default_window_us() -> u64 {
    50_000
}
fn default_pdump_ring() -> u32 {
    16384
}
fn default_pdump_mbufs() -> u32 {
    32767
}
fn default_persist() -> PathBuf {
    PathBuf::from("/var/lib/sluice/last-policy.json")
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_name() -> String {
    "sluice".into()
}
fn default_id() -> u16 {
    1
}

impl Default for ApplianceId {
    fn default() -> Self {
        Self {
            name: default_name(),
            id: default_id(),
        }
    }
}
impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            mbufs: default_mbufs(),
            cache: default_cache(),
        }
    }
}
impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            rx_desc: default_desc(),
            tx_desc: default_desc(),
            distributor_ring: default_ring(),
        }
    }
}
impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            table_entries: default_dedup_entries(),
            window_us: default_window_us(),
            ignore_dscp: false,
            include_l2: false,
        }
    }
}

/// Why a pdump secondary cannot run a device of its own, if it cannot.
/// Its devices are hot-plugged through the primary and configured from
/// the secondary; of the virtual ones, net_pcap (files, or `iface=` a
/// kernel interface), net_ring and net_null work. net_tap's ioctls belong
/// to the primary, net_af_packet's rings are mapped in the primary only
/// (the secondary crashes on them), vhost-user lives in one process.
fn secondary_refuses(device: &str) -> Option<String> {
    let name = device.split(',').next().unwrap_or_default().trim();
    let works = [
        "net_pcap", "eth_pcap", "net_ring", "eth_ring", "net_null", "eth_null",
    ];
    let virtual_dev = name.starts_with("net_") || name.starts_with("eth_");
    (virtual_dev && !works.iter().any(|w| name.starts_with(w))).then(|| {
        format!(
            "{name} cannot be run by a pdump secondary (it is hot-plugged through the primary and \
             configured from here): use net_pcap (a file, or iface=<kernel interface> for a real \
             uplink), net_ring or net_null"
        )
    })
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses `addr/len` into the address and prefix length.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let addr: IpAddr = a.trim().parse().ok()?;
    let len: u8 = l.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_owned(),
                problems,
            })
        }
    }

    /// Every value that cannot work, each naming its key.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut names = HashSet::new();
        let mut tapped = HashSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            let key = format!("port[{i}]");
            if port.name.trim().is_empty() {
                p.push(format!("{key}.name: must not be empty"));
            }
            if !names.insert(port.name.as_str()) {
                p.push(format!("{key}.name: {:?} is used by two ports", port.name));
            }
            match &port.pdump {
                None if port.device.trim().is_empty() => {
                    p.push(format!("{key}.device: must not be empty"));
                }
                None => {
                    if self.pdump.is_some() {
                        if let Some(why) = secondary_refuses(&port.device) {
                            p.push(format!("{key}.device: {why}"));
                        }
                    }
                    if port.capture.is_some() || port.queues.is_some() {
                        p.push(format!(
                            "{key}: capture and queues are for pdump inputs (pdump = \"<device of the primary>\")"
                        ));
                    }
                }
                Some(dev) => {
                    if dev.trim().is_empty() {
                        p.push(format!("{key}.pdump: must name the primary's device"));
                    }
                    if !tapped.insert(dev.trim()) {
                        p.push(format!(
                            "{key}.pdump: {dev:?} is tapped by two ports (capture = \"both\" takes both directions)"
                        ));
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
                    if self.pdump.is_none() {
                        p.push(format!(
                            "{key}.pdump: needs a [pdump] section with the primary's file_prefix"
                        ));
                    }
                    if let Some(q) = &port.queues {
                        let mut seen = HashSet::new();
                        if q.is_empty() {
                            p.push(format!("{key}.queues: leave it out to tap every queue"));
                        }
                        for x in q {
                            if !seen.insert(x) {
                                p.push(format!("{key}.queues: queue {x} is listed twice"));
                            }
                        }
                    }
                }
            }
            if let Some(mtu) = port.mtu {
                if !(68..=9600).contains(&mtu) {
                    p.push(format!("{key}.mtu: {mtu} is outside 68..=9600"));
                }
            }
            if let Some(a) = &port.address {
                if port.role != Role::Input || port.mode != PortMode::Decap {
                    p.push(format!(
                        "{key}.address: only a decap input has an address (tunnels are sent to it)"
                    ));
                }
                match port.address() {
                    None => p.push(format!(
                        "{key}.address: {a:?} is not an IPv4 or IPv6 address"
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
                    Some(_) => {}
                }
            }
        }
        let inputs = self.ports.iter().filter(|x| x.role == Role::Input).count();
        let taps = self
            .ports
            .iter()
            .filter(|x| x.role == Role::Input && x.mode == PortMode::Tap)
            .count();
        let decaps = inputs - taps;
        let uplinks = self.ports.iter().filter(|x| x.role == Role::Uplink).count();
        let tools = self.ports.iter().filter(|x| x.role == Role::Tool).count();
        if inputs == 0 {
            p.push("port: at least one port needs role = \"input\"".into());
        }
        if uplinks > 1 || (taps > 0 && uplinks != 1) {
            p.push(format!(
                "port: exactly one port needs role = \"uplink\" when inputs are in tap mode ({uplinks} have it)"
            ));
        }
        if tools > 1 || (decaps > 0 && tools != 1) {
            p.push(format!(
                "port: exactly one port needs role = \"tool\" when inputs are in decap mode ({tools} have it)"
            ));
        }
        for (i, port) in self.ports.iter().enumerate() {
            if port.role != Role::Input && port.mode != PortMode::Tap {
                p.push(format!("port[{i}].mode: only input ports have a mode"));
            }
        }
        match (&self.uplink, uplinks) {
            (None, 1) => {
                p.push("uplink: the uplink port needs an [uplink] section with its address".into())
            }
            (Some(u), _) => u.problems(&mut p),
            (None, _) => {}
        }
        let d = &self.decap;
        if d.max_layers == 0 || d.max_layers > 4 {
            p.push(format!(
                "decap.max_layers: {} is outside 1..=4",
                d.max_layers
            ));
        }
        if d.retag_pcp > 7 {
            p.push(format!("decap.retag_pcp: {} is outside 0..=7", d.retag_pcp));
        }
        if d.vxlan_ports.iter().chain(&d.geneve_ports).any(|p| *p == 0) {
            p.push("decap: UDP port 0 cannot carry tunnels".into());
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            if parse_mac(&n.mac).is_none() {
                p.push(format!(
                    "neighbor[{i}].mac: {:?} is not a MAC address",
                    n.mac
                ));
            }
        }
        if let Some(l) = &self.workers.lcores {
            if l.is_empty() {
                p.push("workers.lcores: must list at least one lcore".into());
            }
            let mut seen = HashSet::new();
            for c in l {
                if !seen.insert(c) {
                    p.push(format!("workers.lcores: lcore {c} is listed twice"));
                }
            }
        }
        if self.mempool.mbufs < 1024 {
            p.push(format!(
                "mempool.mbufs: {} is fewer than 1024",
                self.mempool.mbufs
            ));
        }
        if self.mempool.cache > 512 {
            p.push(format!(
                "mempool.cache: {} is more than DPDK's 512",
                self.mempool.cache
            ));
        }
        for (key, v) in [
            ("queues.rx_desc", self.queues.rx_desc),
            ("queues.tx_desc", self.queues.tx_desc),
        ] {
            if !(64..=8192).contains(&v) {
                p.push(format!("{key}: {v} is outside 64..=8192"));
            }
        }
        if !self.queues.distributor_ring.is_power_of_two() {
            p.push(format!(
                "queues.distributor_ring: {} is not a power of two",
                self.queues.distributor_ring
            ));
        }
        let e = self.dedup.table_entries;
        if !e.is_power_of_two() || !(1024..=1 << 26).contains(&e) {
            p.push(format!(
                "dedup.table_entries: {e} is not a power of two in 1024..=67108864"
            ));
        }
        self.guard.problems(&mut p);
        if self.dedup.window_us == 0 || self.dedup.window_us > 10_000_000 {
            p.push(format!(
                "dedup.window_us: {} is outside 1..=10000000",
                self.dedup.window_us
            ));
        }
        if let Some(c) = &self.controller {
            c.problems(&mut p);
        }
        if let Some(d) = &self.pdump {
            d.problems(&mut p);
            if tapped.is_empty() {
                p.push(
                    "pdump: no input taps the primary (an input with pdump = \"<device>\")".into(),
                );
            }
        }
        p
    }

    /// Inputs that tap a primary's port (pdump mode).
    pub fn pdump_inputs(&self) -> impl Iterator<Item = &PortConfig> {
        self.input_ports().filter(|p| p.pdump.is_some())
    }

    /// The uplink port's config.
    pub fn uplink_port(&self) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.role == Role::Uplink)
    }

    /// The tool port's config (decap mode).
    pub fn tool_port(&self) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.role == Role::Tool)
    }

    /// Input ports in config order.
    pub fn input_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.ports.iter().filter(|p| p.role == Role::Input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[port]]
        name = "tap0"
        device = "net_pcap0,rx_pcap=in.pcap"
        role = "input"
        [[port]]
        name = "up"
        device = "net_pcap1,tx_pcap=out.pcap"
        role = "uplink"
        [uplink]
        address = "192.0.2.1/24"
        gateway = "192.0.2.254"
    "#;

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, "t").expect("valid");
        assert_eq!(c.uplink.as_ref().map(|u| u.mtu), Some(1500));
        assert_eq!(c.dedup.window_us, 50_000);
        assert_eq!(c.uplink_port().map(|p| p.name.as_str()), Some("up"));
        assert_eq!(c.input_ports().count(), 1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let bad = GOOD.replace("[uplink]", "[uplink]\nmtuu = 9000");
        let e = Config::parse(&bad, "t")
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("mtuu"), "{e}");
        let bad = format!("{GOOD}\n[dedupe]\nx = 1\n");
        let e = Config::parse(&bad, "t")
            .expect_err("unknown table")
            .to_string();
        assert!(e.contains("dedupe"), "{e}");
    }

    #[test]
    fn every_bad_value_is_named_with_its_reason() {
        let bad = GOOD
            .replace("192.0.2.1/24", "192.0.2.1")
            .replace("role = \"uplink\"", "role = \"input\"")
            + "\n[dedup]\ntable_entries = 1000\n[mempool]\nmbufs = 10\n[[neighbor]]\nip = \"192.0.2.9\"\nmac = \"zz\"\n";
        let e = Config::parse(&bad, "t")
            .expect_err("bad values")
            .to_string();
        for key in [
            "uplink.address",
            "exactly one port needs role = \"uplink\"",
            "dedup.table_entries: 1000",
            "mempool.mbufs: 10",
            "neighbor[0].mac",
        ] {
            assert!(e.contains(key), "missing {key} in {e}");
        }
    }

    #[test]
    fn bad_enum_values_say_what_is_accepted() {
        let bad = GOOD.replace("role = \"input\"", "role = \"sideways\"");
        let e = Config::parse(&bad, "t").expect_err("bad role").to_string();
        assert!(e.contains("sideways") && e.contains("input"), "{e}");
    }

    #[test]
    fn the_controller_section_gets_defaults_and_named_errors() {
        let ok = format!(
            "{GOOD}\n[controller]\naddress = \"ctl.example:7443\"\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\nlabels = {{ site = \"par\" }}\n"
        );
        let c = Config::parse(&ok, "t")
            .expect("valid")
            .controller
            .expect("section");
        assert_eq!(c.server_name(), "ctl.example");
        assert_eq!(c.heartbeat_ms, 1000);
        assert_eq!(c.backoff_max_ms, 30_000);
        assert_eq!(c.labels.get("site").map(String::as_str), Some("par"));
        assert!(Config::parse(GOOD, "t")
            .expect("valid")
            .controller
            .is_none());

        let bad = ok.replace("ctl.example:7443", "ctl.example").replace(
            "[controller]",
            "[controller]\nheartbeat_ms = 5\nbackoff_initial_ms = 0",
        );
        let e = Config::parse(&bad, "t").expect_err("bad").to_string();
        for key in [
            "controller.address",
            "controller.heartbeat_ms: 5",
            "controller.backoff_initial_ms: 0",
        ] {
            assert!(e.contains(key), "missing {key} in {e}");
        }
        let e = Config::parse(&ok.replace("key = ", "kee = "), "t")
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("kee"), "{e}");
        assert_eq!(split_host_port("[::1]:7443"), Some(("::1", 7443)));
        assert_eq!(split_host_port("127.0.0.1:0"), None);
    }

    #[test]
    fn only_a_decap_input_has_an_address() {
        let decap = "[[port]]\nname = \"span\"\ndevice = \"net_tap0\"\nrole = \"input\"\nmode = \"decap\"\naddress = \"198.51.100.7/24\"\n[[port]]\nname = \"tool\"\ndevice = \"net_tap1\"\nrole = \"tool\"\n";
        let c = Config::parse(decap, "t").expect("valid");
        assert_eq!(
            c.ports[0].address(),
            Some("198.51.100.7".parse().expect("ip"))
        );
        let v6 = decap.replace("198.51.100.7/24", "2001:db8::7");
        assert!(Config::parse(&v6, "t").expect("valid").ports[0]
            .address()
            .is_some_and(|a| a.is_ipv6()));
        for (bad, why) in [
            ("address = \"198.51.100.7/24\"", "only a decap input"),
            ("address = \"0.0.0.0\"", "cannot be an interface address"),
            ("address = \"not-an-ip\"", "not an IPv4 or IPv6 address"),
        ] {
            let text = if why == "only a decap input" {
                format!("{GOOD}\n").replace("role = \"input\"", &format!("role = \"input\"\n{bad}"))
            } else {
                decap.replace("address = \"198.51.100.7/24\"", bad)
            };
            let e = Config::parse(&text, "t").expect_err(why).to_string();
            assert!(e.contains("port[0].address") && e.contains(why), "{e}");
        }
    }

    const PDUMP: &str = r#"
        [pdump]
        file_prefix = "vswitch"
        [[port]]
        name = "vm1"
        role = "input"
        pdump = "net_vhost0"
        capture = "rx"
        queues = [0, 1]
        [[port]]
        name = "vm2"
        role = "input"
        pdump = "0000:01:00.0"
        [[port]]
        name = "up"
        device = "net_pcap1,tx_pcap=out.pcap"
        role = "uplink"
        [uplink]
        address = "192.0.2.1/24"
    "#;

    #[test]
    fn pdump_inputs_tap_a_primary_and_their_errors_are_named() {
        let c = Config::parse(PDUMP, "t").expect("valid");
        let d = c.pdump.as_ref().expect("section");
        assert_eq!(
            (d.ring_size, d.mbufs, d.replace_taps),
            (16384, 32767, false)
        );
        let taps: Vec<_> = c.pdump_inputs().collect();
        assert_eq!(taps.len(), 2);
        assert_eq!(taps[0].capture(), CaptureConfig::Rx);
        assert_eq!(taps[1].capture(), CaptureConfig::Both);
        assert_eq!(taps[0].queues.as_deref(), Some(&[0, 1][..]));

        for (edit, key) in [
            (
                ("file_prefix = \"vswitch\"", "file_prefix = \"a/b\""),
                "pdump.file_prefix",
            ),
            (
                (
                    "file_prefix = \"vswitch\"",
                    "file_prefix = \"v\"\nring_size = 1000",
                ),
                "pdump.ring_size: 1000",
            ),
            (
                ("queues = [0, 1]", "queues = [1, 1]"),
                "port[0].queues: queue 1 is listed twice",
            ),
            (
                ("queues = [0, 1]", "direction = \"egress\""),
                "port[0].direction",
            ),
            (
                ("queues = [0, 1]", "device = \"net_pcap9\""),
                "port[0].device",
            ),
            (
                ("\"0000:01:00.0\"", "\"net_vhost0\""),
                "port[1].pdump: \"net_vhost0\" is tapped by two ports",
            ),
            (
                ("role = \"uplink\"", "role = \"uplink\"\ncapture = \"tx\""),
                "port[2]: capture and queues are for pdump inputs",
            ),
            (("capture = \"rx\"", "capture = \"sideways\""), "sideways"),
            (
                ("net_pcap1,tx_pcap=out.pcap", "net_tap1,iface=up"),
                "port[2].device: net_tap1 cannot be run by a pdump secondary",
            ),
        ] {
            let bad = PDUMP.replacen(edit.0, edit.1, 1);
            let e = Config::parse(&bad, "t").expect_err(key).to_string();
            assert!(e.contains(key), "missing {key} in {e}");
        }
        let e = Config::parse(
            &PDUMP.replace("[pdump]\n        file_prefix = \"vswitch\"", ""),
            "t",
        )
        .expect_err("no section")
        .to_string();
        assert!(e.contains("port[0].pdump: needs a [pdump] section"), "{e}");
        let e = Config::parse(&format!("{GOOD}\n[pdump]\nfile_prefix = \"x\"\n"), "t")
            .expect_err("no tap")
            .to_string();
        assert!(e.contains("pdump: no input taps the primary"), "{e}");
    }

    #[test]
    fn macs_and_cidrs_parse_strictly() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_cidr("10.0.0.1/33"), None);
        assert_eq!(parse_cidr("2001:db8::1/64").map(|c| c.1), Some(64));
    }
}
