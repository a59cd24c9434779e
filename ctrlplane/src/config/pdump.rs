//! `[pdump]`: Sluice as a DPDK secondary process of a primary that
//! initialised packet capture, tapping its ports (the `pdump` inputs).

use serde::Deserialize;

use super::values::Device;

/// `[pdump]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdumpSection {
    /// The primary's EAL `--file-prefix`.
    pub file_prefix: String,
    /// Copies each tapped direction's ring holds (a power of two).
    #[serde(default = "default_ring_size")]
    pub ring_size: u32,
    /// Mbufs of the pool the primary copies into (in its shared memory).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// First remove taps already on the tapped ports (left by a Sluice
    /// that was killed); otherwise such a port is refused.
    #[serde(default)]
    pub replace_taps: bool,
}

fn default_ring_size() -> u32 {
    16384
}
fn default_mbufs() -> u32 {
    32767
}

impl PdumpSection {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
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

/// Why a pdump secondary cannot run a device of its own, if it cannot.
/// Its devices are hot-plugged through the primary and configured from
/// the secondary; of the virtual ones, net_pcap (files, or `iface=` a
/// kernel interface), net_ring and net_null work. net_tap's ioctls belong
/// to the primary, net_af_packet's rings are mapped in the primary only
/// (the secondary crashes on them), vhost-user lives in one process.
pub(super) fn secondary_refuses(device: &Device) -> Option<String> {
    let works = ["net_pcap", "net_ring", "net_null"];
    let runs = device.driver().is_some_and(|d| works.contains(&d));
    (device.is_virtual() && !runs).then(|| {
        format!(
            "{} cannot be run by a pdump secondary (it is hot-plugged through the primary and \
             configured from here): use net_pcap (a file, or iface=<kernel interface> for a real \
             uplink), net_ring or net_null",
            device.name()
        )
    })
}
