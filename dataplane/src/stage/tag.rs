//! tag: where a packet came from, as the tunnel header will carry it.

use crate::stage::Direction;

/// The per-packet facts a tunnel header carries about the packet's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagInfo {
    /// This appliance's ID (ERSPAN III hardware ID is its low 6 bits).
    pub appliance_id: u16,
    /// Input port the packet arrived on.
    pub input_port: u16,
    /// Rule (policy entry) that matched.
    pub rule_id: u32,
    pub direction: Direction,
}
