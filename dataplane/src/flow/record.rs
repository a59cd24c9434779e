//! The flow record: one bidirectional conversation as Sluice meters it in
//! its workers, or as a switch exported it (sFlow, NetFlow, IPFIX intake).
//! Plain data, no DPDK: the IPFIX exporter, the data-service stream and the
//! console read the same struct. Serialized as the stream's JSON schema
//! (docs/IPFIX.md).

use std::net::IpAddr;

use serde::Serialize;

use crate::stage::decap::TunnelKind;
use crate::stage::Direction;

/// The two ends of a flow in canonical order: the *initiator* is the side
/// whose packet was seen first, the *responder* the other one. A record's
/// `forward` counts run initiator → responder, `reverse` the other way
/// (RFC 5103's forward and reverse directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowKey {
    pub initiator: IpAddr,
    pub responder: IpAddr,
    /// TCP/UDP/SCTP port, 0 for other protocols.
    pub initiator_port: u16,
    pub responder_port: u16,
    /// IP protocol number.
    pub protocol: u8,
}

/// Counts of one direction of a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectionCounts {
    pub packets: u64,
    /// Frame bytes as received (the IP packet plus its L2 header).
    pub bytes: u64,
    /// Union of the TCP flags (CWR..FIN) of every packet, 0 for non-TCP.
    pub tcp_flags: u8,
}

impl DirectionCounts {
    /// Adds one packet.
    #[inline]
    pub fn add(&mut self, bytes: u64, tcp_flags: u8) {
        self.packets += 1;
        self.bytes += bytes;
        self.tcp_flags |= tcp_flags;
    }
}

/// Why a record left the flow table (IPFIX `flowEndReason`, RFC 5102).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No packet for the idle timeout.
    #[default]
    IdleTimeout,
    /// Open for the active timeout: the flow goes on in a new record.
    ActiveTimeout,
    /// TCP FIN or RST seen.
    EndOfFlow,
    /// The table was flushed (shutdown, metering turned off).
    ForcedEnd,
    /// The table needed the slot.
    LackOfResources,
}

impl EndReason {
    /// The IPFIX `flowEndReason` value (IANA registry).
    pub fn ipfix(self) -> u8 {
        match self {
            EndReason::IdleTimeout => 1,
            EndReason::ActiveTimeout => 2,
            EndReason::EndOfFlow => 3,
            EndReason::ForcedEnd => 4,
            EndReason::LackOfResources => 5,
        }
    }
}

/// Which way the mirrored traffic went, as the input port says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowDirection {
    Ingress,
    Egress,
}

impl From<Direction> for FlowDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Ingress => FlowDirection::Ingress,
            Direction::Egress => FlowDirection::Egress,
        }
    }
}

/// The tunnel a decapsulated flow arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelType {
    Vxlan,
    Geneve,
    L2Gre,
    ErspanI,
    ErspanII,
    ErspanIII,
    Gre,
}

impl TunnelType {
    /// Sluice's `tunnelType` IE value (docs/IPFIX.md).
    pub fn code(self) -> u8 {
        match self {
            TunnelType::Vxlan => 1,
            TunnelType::Geneve => 2,
            TunnelType::L2Gre => 3,
            TunnelType::ErspanI => 4,
            TunnelType::ErspanII => 5,
            TunnelType::ErspanIII => 6,
            TunnelType::Gre => 7,
        }
    }
}

impl From<TunnelKind> for TunnelType {
    fn from(k: TunnelKind) -> Self {
        match k {
            TunnelKind::Vxlan => TunnelType::Vxlan,
            TunnelKind::Geneve => TunnelType::Geneve,
            TunnelKind::L2Gre => TunnelType::L2Gre,
            TunnelKind::ErspanI => TunnelType::ErspanI,
            TunnelKind::ErspanII => TunnelType::ErspanII,
            TunnelKind::ErspanIII => TunnelType::ErspanIII,
            TunnelKind::Gre => TunnelType::Gre,
        }
    }
}

/// The tunnel of decapsulated traffic: its type and VNI / session / key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowTunnel {
    #[serde(rename = "type")]
    pub kind: TunnelType,
    /// VNI (VXLAN, Geneve), session ID (ERSPAN), key (GRE); none if absent.
    pub id: Option<u32>,
}

/// Where a record came from when Sluice did not meter it itself: the
/// switch that exported it (intake). `None` on locally metered records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowOrigin {
    /// The exporter's address (the datagram's source, or sFlow's agent).
    pub exporter: IpAddr,
    /// NetFlow v9 source ID, IPFIX observation domain, sFlow sub-agent.
    pub observation_domain: u32,
    /// 1 in N packets sampled; 1 when unsampled or unknown.
    pub sampling_rate: u32,
    /// The protocol it arrived in.
    pub protocol: OriginProtocol,
}

/// The export protocol an intake record arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginProtocol {
    NetflowV5,
    NetflowV9,
    Ipfix,
    Sflow,
}

/// One bidirectional flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    pub key: FlowKey,
    /// Initiator → responder.
    pub forward: DirectionCounts,
    /// Responder → initiator.
    pub reverse: DirectionCounts,
    /// First and last packet, milliseconds since the Unix epoch.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Outermost VLAN ID of the first packet.
    pub vlan: Option<u16>,
    /// Input port id of the first packet.
    pub input_port: Option<u16>,
    /// Direction of the input port of the first packet.
    pub direction: Option<FlowDirection>,
    /// The policy rule that matched (its id; none for the default action).
    pub rule_id: Option<u32>,
    /// The destinations the rule sends to (policy destination indices).
    pub destinations: Vec<u16>,
    /// Copies dedup removed from this flow.
    pub dedup_removed: u64,
    /// The tunnel decapsulated traffic came in.
    pub tunnel: Option<FlowTunnel>,
    pub end_reason: EndReason,
    /// The exporting switch, for intake records.
    pub origin: Option<FlowOrigin>,
}

impl FlowRecord {
    /// A record of `key` with nothing counted and nothing known beyond it:
    /// what a decoder or a test fills in field by field.
    pub fn new(key: FlowKey) -> FlowRecord {
        FlowRecord {
            key,
            forward: DirectionCounts::default(),
            reverse: DirectionCounts::default(),
            start_ms: 0,
            end_ms: 0,
            vlan: None,
            input_port: None,
            direction: None,
            rule_id: None,
            destinations: Vec::new(),
            dedup_removed: 0,
            tunnel: None,
            end_reason: EndReason::default(),
            origin: None,
        }
    }

    /// Packets of both directions.
    pub fn packets(&self) -> u64 {
        self.forward.packets + self.reverse.packets
    }

    /// Bytes of both directions.
    pub fn bytes(&self) -> u64 {
        self.forward.bytes + self.reverse.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn json_schema_names_every_field() {
        let r = FlowRecord {
            key: FlowKey {
                initiator: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                responder: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                initiator_port: 40000,
                responder_port: 443,
                protocol: 6,
            },
            forward: DirectionCounts {
                packets: 3,
                bytes: 200,
                tcp_flags: 0x12,
            },
            reverse: DirectionCounts::default(),
            start_ms: 1,
            end_ms: 2,
            vlan: Some(10),
            input_port: Some(0),
            direction: Some(FlowDirection::Ingress),
            rule_id: Some(7),
            destinations: vec![0, 2],
            dedup_removed: 1,
            tunnel: Some(FlowTunnel {
                kind: TunnelType::Vxlan,
                id: Some(42),
            }),
            end_reason: EndReason::EndOfFlow,
            origin: None,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["key"]["initiator"], "10.0.0.1");
        assert_eq!(json["forward"]["tcp_flags"], 0x12);
        assert_eq!(json["tunnel"]["type"], "vxlan");
        assert_eq!(json["end_reason"], "end_of_flow");
        assert_eq!(json["destinations"][1], 2);
        assert!(json["origin"].is_null());
        assert_eq!(r.packets(), 3);
    }
}
