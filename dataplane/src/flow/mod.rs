//! Flow metering: the record model every flow source and sink shares
//! ([`record`]).

pub mod record;

pub use record::{
    DirectionCounts, EndReason, FlowDirection, FlowKey, FlowOrigin, FlowRecord, FlowTunnel,
    OriginProtocol, TunnelType,
};
