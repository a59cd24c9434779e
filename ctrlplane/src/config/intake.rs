//! `[intake]`: flow telemetry the fabric exports to the appliance (sFlow
//! v5, NetFlow v5/v9, IPFIX), received on the uplink's address. Without
//! the section nothing is taken in and such datagrams stay ignored uplink
//! traffic.

use serde::Deserialize;

/// `[intake]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// UDP port of sFlow v5 datagrams (0: none taken in).
    pub sflow_port: u16,
    /// UDP port of NetFlow v5/v9 and IPFIX datagrams, told apart by their
    /// version (0: none taken in).
    pub netflow_port: u16,
    /// Frames the workers may queue for the intake thread; a full queue
    /// counts `intake_dropped`.
    pub queue: u32,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            sflow_port: 6343,
            netflow_port: 2055,
            queue: 4096,
        }
    }
}

impl IntakeConfig {
    /// The ports taken in, the unused ones as 0.
    pub fn ports(&self) -> [u16; 2] {
        [self.sflow_port, self.netflow_port]
    }

    pub(super) fn problems(&self, has_uplink: bool, p: &mut Vec<String>) {
        if self.sflow_port == 0 && self.netflow_port == 0 {
            p.push("intake: both sflow_port and netflow_port are 0: nothing to take in".into());
        }
        if self.sflow_port != 0 && self.sflow_port == self.netflow_port {
            p.push(format!(
                "intake.netflow_port: {} is sflow_port too: the two need their own ports",
                self.netflow_port
            ));
        }
        if !self.queue.is_power_of_two() || self.queue < 64 {
            p.push(format!(
                "intake.queue: {} is not a power of two of at least 64",
                self.queue
            ));
        }
        if !has_uplink {
            p.push(
                "intake: datagrams arrive at the uplink's address: the config has no uplink".into(),
            );
        }
    }
}
