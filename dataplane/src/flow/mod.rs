//! Flow metering: the record model every flow source and sink shares
//! ([`record`]), a worker's flow table ([`table`]) and the IPFIX encoding
//! of records ([`ipfix`]).

pub mod ipfix;
pub mod record;
pub mod table;

pub use record::{
    DirectionCounts, EndReason, FlowDirection, FlowKey, FlowOrigin, FlowRecord, FlowTunnel,
    OriginProtocol, TunnelType,
};
