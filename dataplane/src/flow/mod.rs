//! Flow metering: the record model every flow source and sink shares
//! ([`record`]) and a worker's flow table ([`table`]).

pub mod record;
pub mod table;

pub use record::{
    DirectionCounts, EndReason, FlowDirection, FlowKey, FlowOrigin, FlowRecord, FlowTunnel,
    OriginProtocol, TunnelType,
};
