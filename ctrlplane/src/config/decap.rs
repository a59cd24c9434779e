//! `[decap]`: the tunnel-decap front-end (inputs in `decap` mode).

use serde::Deserialize;

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

/// `[decap]`.
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
    /// The tool port decap inputs send to; needed only when there are
    /// several tool ports.
    pub tool: Option<String>,
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
            tool: None,
        }
    }
}

impl DecapSection {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        if self.max_layers == 0 || self.max_layers > 4 {
            p.push(format!(
                "decap.max_layers: {} is outside 1..=4",
                self.max_layers
            ));
        }
        if self.retag_pcp > 7 {
            p.push(format!(
                "decap.retag_pcp: {} is outside 0..=7",
                self.retag_pcp
            ));
        }
        if self
            .vxlan_ports
            .iter()
            .chain(&self.geneve_ports)
            .any(|p| *p == 0)
        {
            p.push("decap: UDP port 0 cannot carry tunnels".into());
        }
    }
}
