//! The built-in default: Sluice on virtual devices with no file at all —
//! the sample traffic in through `net_pcap`, tunnels out into a pcap file
//! that tshark can read.

use std::path::Path;

use crate::config::{Config, ConfigError};

/// The default config, reading `input` and writing the uplink to `output`.
pub fn config(input: &Path, output: &Path) -> String {
    format!(
        r#"
[appliance]
name = "sluice-default"
id = 1

[[port]]
name = "tap0"
device = "net_pcap_tap0,rx_pcap={input}"
role = "input"
direction = "ingress"

[[port]]
name = "uplink"
device = "net_pcap_uplink,tx_pcap={output}"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

# The pcap uplink has no one to answer ARP: the receivers' MACs are fixed.
[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[[neighbor]]
ip = "192.0.2.20"
mac = "02:00:00:00:00:14"

[dedup]
table_entries = 65536
"#,
        input = input.display(),
        output = output.display()
    )
}

/// The default policy: web and DNS to the NOC over VXLAN, everything but
/// SSH to the IDS over ERSPAN III sliced to 128 bytes, duplicates removed.
pub const POLICY: &str = r#"
version = "built-in-1"

[[group]]
name = "servers"
cidrs = ["10.2.0.0/16", "2001:db8:2::/48"]
labels = { service = "web", business_unit = "demo" }

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100

[[destination]]
name = "ids"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 7
slice = 128

[[rule]]
name = "no-ssh"
proto = "tcp"
dst_port = 22
action = "drop"

[[rule]]
name = "servers"
dst_group = "servers"
to = ["noc", "ids"]

[[rule]]
name = "rest-to-ids"
to = ["ids"]
"#;

/// Parses the default config; it is part of the program, so a failure is a bug.
pub fn parsed(input: &Path, output: &Path) -> Result<Config, ConfigError> {
    Config::parse(&config(input, output), "built-in default")
}
