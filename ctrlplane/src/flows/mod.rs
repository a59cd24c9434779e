//! Flow telemetry off the main lcore: IPFIX encoding ([`ipfix`]) and the
//! export thread that takes records from every source (the workers' flow
//! rings, intake) to every sink (IPFIX collectors, the data-service
//! stream) ([`export`]). The record model is `dataplane::flow`.

pub mod export;
pub mod ipfix;
pub mod recent;
pub mod workers;

pub use export::{FlowExport, FlowSink, FlowSource, IpfixConfig, IpfixExporter, IpfixStats};
