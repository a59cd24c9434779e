//! NetFlow v5, v9 and IPFIX datagrams into flow records, decoded by the
//! `netflow_parser` crate. v9 and IPFIX templates are kept per exporter
//! (address and port) and per source ID / observation domain, as RFC 3954
//! and RFC 7011 scope them (`AutoScopedParser`); so is the sampling
//! interval an exporter announces in options data.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use dataplane::flow::{DirectionCounts, FlowKey, FlowOrigin, FlowRecord, OriginProtocol};
use netflow_parser::static_versions::v5::V5;
use netflow_parser::variable_versions::field_value::FieldValue;
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::ipfix::{FlowSetBody as IpfixBody, IPFix};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::{AutoScopedParser, NetflowPacket};

/// Information element IDs the normaliser reads (the same numbers in v9
/// and IPFIX).
mod ie {
    pub const OCTETS: u16 = 1;
    pub const PACKETS: u16 = 2;
    pub const PROTOCOL: u16 = 4;
    pub const TCP_FLAGS: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const SRC_V4: u16 = 8;
    pub const INPUT: u16 = 10;
    pub const DST_PORT: u16 = 11;
    pub const DST_V4: u16 = 12;
    pub const END_UPTIME: u16 = 21;
    pub const START_UPTIME: u16 = 22;
    pub const SRC_V6: u16 = 27;
    pub const DST_V6: u16 = 28;
    pub const SAMPLING_INTERVAL: u16 = 34;
    pub const VLAN: u16 = 58;
    pub const START_S: u16 = 150;
    pub const END_S: u16 = 151;
    pub const START_MS: u16 = 152;
    pub const END_MS: u16 = 153;
    pub const SYSTEM_INIT_MS: u16 = 160;
    pub const SAMPLING_PACKET_INTERVAL: u16 = 305;
    /// Every ID above: what an IPFIX field is compared against.
    pub const ALL: [u16; 21] = [
        OCTETS,
        PACKETS,
        PROTOCOL,
        TCP_FLAGS,
        SRC_PORT,
        SRC_V4,
        INPUT,
        DST_PORT,
        DST_V4,
        END_UPTIME,
        START_UPTIME,
        SRC_V6,
        DST_V6,
        SAMPLING_INTERVAL,
        VLAN,
        START_S,
        END_S,
        START_MS,
        END_MS,
        SYSTEM_INIT_MS,
        SAMPLING_PACKET_INTERVAL,
    ];
}

/// Why a datagram yielded nothing, or less than it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetflowError {
    /// Not NetFlow v5/v9 or IPFIX (the first two bytes).
    Version(u16),
    /// Too short to hold a version.
    Truncated,
    /// The parser's reason.
    Malformed(String),
}

/// What one datagram gave.
#[derive(Debug, Default)]
pub struct Decoded {
    pub protocol: Option<OriginProtocol>,
    pub records: Vec<FlowRecord>,
    /// Data sets that arrived before their template (not decodable yet).
    pub no_template: u64,
    pub error: Option<NetflowError>,
}

/// The v9/IPFIX normaliser's context for one packet.
struct Context {
    exporter: IpAddr,
    domain: u32,
    protocol: OriginProtocol,
    sampling: u32,
    /// Epoch ms at which the exporter's uptime was 0 (v9 and IPFIX with
    /// systemInitTimeMilliseconds), for uptime-relative times.
    boot_ms: Option<u64>,
    /// The export time (epoch ms): the times of a record that has none.
    export_ms: u64,
}

/// Decodes NetFlow and IPFIX datagrams, remembering templates and
/// announced sampling intervals per exporter.
pub struct NetflowDecoder {
    parser: AutoScopedParser,
    /// Sampling interval announced in options data, per exporter and domain.
    sampling: HashMap<(SocketAddr, u32), u32>,
    /// IPFIX systemInitTimeMilliseconds announced, per exporter and domain.
    boot: HashMap<(SocketAddr, u32), u64>,
}

impl Default for NetflowDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl NetflowDecoder {
    pub fn new() -> Self {
        NetflowDecoder {
            parser: AutoScopedParser::new(),
            sampling: HashMap::new(),
            boot: HashMap::new(),
        }
    }

    /// Exporters with templates or state kept.
    pub fn sources(&self) -> usize {
        self.parser.source_count()
    }

    /// The records of `payload`, a UDP payload from `from`.
    pub fn decode(&mut self, from: SocketAddr, payload: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        let Some(v) = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            out.error = Some(NetflowError::Truncated);
            return out;
        };
        out.protocol = match v {
            5 => Some(OriginProtocol::NetflowV5),
            9 => Some(OriginProtocol::NetflowV9),
            10 => Some(OriginProtocol::Ipfix),
            other => {
                out.error = Some(NetflowError::Version(other));
                return out;
            }
        };
        let result = self.parser.parse_from_source(from, payload);
        for p in &result.packets {
            match p {
                NetflowPacket::V5(v5) => self.v5(from, v5, &mut out),
                NetflowPacket::V9(v9) => self.v9(from, v9, &mut out),
                NetflowPacket::IPFix(ipfix) => self.ipfix(from, ipfix, &mut out),
                // v7 was refused by the version check above.
                _ => {}
            }
        }
        if let Some(e) = result.error {
            out.error = Some(NetflowError::Malformed(e.to_string()));
        }
        out
    }

    fn v5(&mut self, from: SocketAddr, p: &V5, out: &mut Decoded) {
        let h = &p.header;
        let export_ms = u64::from(h.unix_secs) * 1000 + u64::from(h.unix_nsecs) / 1_000_000;
        let boot_ms = export_ms.saturating_sub(u64::from(h.sys_up_time));
        // The top two bits are the sampling mode, the rest the interval.
        let sampling = u32::from(h.sampling_interval & 0x3fff).max(1);
        let origin = FlowOrigin {
            exporter: from.ip(),
            observation_domain: u32::from(h.engine_type) << 8 | u32::from(h.engine_id),
            sampling_rate: sampling,
            protocol: OriginProtocol::NetflowV5,
        };
        for f in &p.flowsets {
            let mut r = empty_record(
                FlowKey {
                    initiator: IpAddr::V4(f.src_addr),
                    responder: IpAddr::V4(f.dst_addr),
                    initiator_port: f.src_port,
                    responder_port: f.dst_port,
                    protocol: f.protocol_number,
                },
                origin,
            );
            r.forward = DirectionCounts {
                packets: u64::from(f.d_pkts),
                bytes: u64::from(f.d_octets),
                tcp_flags: f.tcp_flags,
            };
            r.start_ms = boot_ms + u64::from(f.first);
            r.end_ms = boot_ms + u64::from(f.last);
            r.input_port = Some(f.input);
            out.records.push(r);
        }
    }

    fn v9(&mut self, from: SocketAddr, p: &V9, out: &mut Decoded) {
        let h = &p.header;
        let export_ms = u64::from(h.unix_secs) * 1000;
        let scope = (from, h.source_id);
        for fs in &p.flowsets {
            if let V9Body::OptionsData(o) = &fs.body {
                for rec in &o.fields {
                    for (f, v) in &rec.options_fields {
                        if u16::from(*f) == ie::SAMPLING_INTERVAL {
                            if let Some(n) = v.as_u64() {
                                self.sampling
                                    .insert(scope, n.clamp(1, u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                }
            }
        }
        let ctx = Context {
            exporter: from.ip(),
            domain: h.source_id,
            protocol: OriginProtocol::NetflowV9,
            sampling: self.sampling.get(&scope).copied().unwrap_or(1),
            boot_ms: Some(export_ms.saturating_sub(u64::from(h.sys_up_time))),
            export_ms,
        };
        for fs in &p.flowsets {
            match &fs.body {
                V9Body::Data(d) => {
                    for rec in &d.fields {
                        let fields = rec.iter().map(|(f, v)| (u16::from(*f), v));
                        if let Some(r) = normalise(&ctx, fields) {
                            out.records.push(r);
                        }
                    }
                }
                V9Body::NoTemplate(_) => out.no_template += 1,
                _ => {}
            }
        }
    }

    fn ipfix(&mut self, from: SocketAddr, p: &IPFix, out: &mut Decoded) {
        let h = &p.header;
        let scope = (from, h.observation_domain_id);
        for fs in &p.flowsets {
            if let IpfixBody::OptionsData(o) = &fs.body {
                for rec in &o.fields {
                    for (f, v) in rec {
                        match ipfix_id(f) {
                            Some(ie::SAMPLING_INTERVAL | ie::SAMPLING_PACKET_INTERVAL) => {
                                if let Some(n) = v.as_u64() {
                                    self.sampling
                                        .insert(scope, n.clamp(1, u64::from(u32::MAX)) as u32);
                                }
                            }
                            Some(ie::SYSTEM_INIT_MS) => {
                                if let Some(n) = v.as_u64() {
                                    self.boot.insert(scope, n);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let ctx = Context {
            exporter: from.ip(),
            domain: h.observation_domain_id,
            protocol: OriginProtocol::Ipfix,
            sampling: self.sampling.get(&scope).copied().unwrap_or(1),
            boot_ms: self.boot.get(&scope).copied(),
            export_ms: u64::from(h.export_time) * 1000,
        };
        for fs in &p.flowsets {
            match &fs.body {
                IpfixBody::Data(d) => {
                    for rec in &d.fields {
                        let fields = rec
                            .iter()
                            .filter_map(|(f, v)| ipfix_id(f).map(|id| (id, v)));
                        if let Some(r) = normalise(&ctx, fields) {
                            out.records.push(r);
                        }
                    }
                }
                IpfixBody::V9Data(d) => {
                    for rec in &d.fields {
                        let fields = rec.iter().map(|(f, v)| (u16::from(*f), v));
                        if let Some(r) = normalise(&ctx, fields) {
                            out.records.push(r);
                        }
                    }
                }
                IpfixBody::NoTemplate(_) => out.no_template += 1,
                _ => {}
            }
        }
    }
}

/// The IANA element ID of an IPFIX field the normaliser reads.
fn ipfix_id(f: &IPFixField) -> Option<u16> {
    let IPFixField::IANA(x) = f else {
        return None;
    };
    ie::ALL
        .into_iter()
        .find(|id| IANAIPFixField::from(*id) == *x)
}

fn empty_record(key: FlowKey, origin: FlowOrigin) -> FlowRecord {
    FlowRecord {
        origin: Some(origin),
        ..FlowRecord::new(key)
    }
}

fn ip(v: &FieldValue) -> Option<IpAddr> {
    IpAddr::try_from(v).ok()
}

/// A v9 or IPFIX data record as a flow record; none without addresses.
fn normalise<'a>(
    ctx: &Context,
    fields: impl Iterator<Item = (u16, &'a FieldValue)>,
) -> Option<FlowRecord> {
    let (mut src, mut dst) = (None, None);
    let (mut sport, mut dport, mut proto) = (0, 0, 0);
    let mut fwd = DirectionCounts::default();
    let (mut start, mut end) = (None, None);
    let (mut vlan, mut input, mut sampling) = (None, None, None);
    for (id, v) in fields {
        match id {
            ie::SRC_V4 | ie::SRC_V6 => src = src.or(ip(v)),
            ie::DST_V4 | ie::DST_V6 => dst = dst.or(ip(v)),
            ie::SRC_PORT => sport = v.as_u16().unwrap_or(0),
            ie::DST_PORT => dport = v.as_u16().unwrap_or(0),
            ie::PROTOCOL => proto = v.as_u8().unwrap_or(0),
            ie::OCTETS => fwd.bytes = v.as_u64().unwrap_or(0),
            ie::PACKETS => fwd.packets = v.as_u64().unwrap_or(0),
            ie::TCP_FLAGS => fwd.tcp_flags = tcp_flags(v),
            ie::START_MS | ie::START_S => start = v.as_u64(),
            ie::END_MS | ie::END_S => end = v.as_u64(),
            ie::START_UPTIME => start = start.or(uptime(ctx, v)),
            ie::END_UPTIME => end = end.or(uptime(ctx, v)),
            ie::VLAN => vlan = v.as_u16(),
            ie::INPUT => input = v.as_u64().map(|n| n.min(u64::from(u16::MAX)) as u16),
            ie::SAMPLING_INTERVAL | ie::SAMPLING_PACKET_INTERVAL => {
                sampling = v.as_u64().map(|n| n.clamp(1, u64::from(u32::MAX)) as u32)
            }
            _ => {}
        }
    }
    let mut r = empty_record(
        FlowKey {
            initiator: src?,
            responder: dst?,
            initiator_port: sport,
            responder_port: dport,
            protocol: proto,
        },
        FlowOrigin {
            exporter: ctx.exporter,
            observation_domain: ctx.domain,
            sampling_rate: sampling.unwrap_or(ctx.sampling),
            protocol: ctx.protocol,
        },
    );
    r.forward = fwd;
    r.start_ms = start.unwrap_or(ctx.export_ms);
    r.end_ms = end.unwrap_or(r.start_ms);
    r.vlan = vlan;
    r.input_port = input;
    Some(r)
}

/// An uptime-relative time as epoch ms, when the exporter's boot is known.
fn uptime(ctx: &Context, v: &FieldValue) -> Option<u64> {
    Some(ctx.boot_ms? + v.as_u64()?)
}

/// TCP flags whichever way the parser typed them.
fn tcp_flags(v: &FieldValue) -> u8 {
    match v {
        FieldValue::TcpControlBits(bits, _) => (u16::from(*bits) & 0xff) as u8,
        other => other.as_u8().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source, destination, ports, protocol, packets, bytes.
    type V5Flow = ([u8; 4], [u8; 4], u16, u16, u8, u32, u32);

    fn v5_datagram(flows: &[V5Flow]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&5u16.to_be_bytes());
        b.extend_from_slice(&(flows.len() as u16).to_be_bytes());
        b.extend_from_slice(&10_000u32.to_be_bytes()); // uptime ms
        b.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes()); // sequence
        b.extend_from_slice(&[0, 7]); // engine type, id
        b.extend_from_slice(&(0x4000u16 | 64).to_be_bytes()); // sampling 1 in 64
        for (s, d, sp, dp, proto, pkts, bytes) in flows {
            b.extend_from_slice(s);
            b.extend_from_slice(d);
            b.extend_from_slice(&[0; 4]); // next hop
            b.extend_from_slice(&[0, 1, 0, 2]); // input, output
            b.extend_from_slice(&pkts.to_be_bytes());
            b.extend_from_slice(&bytes.to_be_bytes());
            b.extend_from_slice(&9_000u32.to_be_bytes()); // first
            b.extend_from_slice(&9_500u32.to_be_bytes()); // last
            b.extend_from_slice(&sp.to_be_bytes());
            b.extend_from_slice(&dp.to_be_bytes());
            b.extend_from_slice(&[0, 0x1b, *proto, 0]);
            b.extend_from_slice(&[0; 8]); // AS, masks, pad
        }
        b
    }

    #[test]
    fn v5_flows_become_records_with_their_exporter_and_sampling() {
        let mut d = NetflowDecoder::new();
        let from: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let b = v5_datagram(&[
            ([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80, 6, 10, 1500),
            ([10, 0, 0, 3], [10, 0, 0, 4], 53, 5353, 17, 1, 80),
        ]);
        let out = d.decode(from, &b);
        assert_eq!(out.error, None);
        assert_eq!(out.protocol, Some(OriginProtocol::NetflowV5));
        assert_eq!(out.records.len(), 2);
        let r = &out.records[0];
        assert_eq!(r.key.initiator, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (r.key.initiator_port, r.key.responder_port, r.key.protocol),
            (1234, 80, 6)
        );
        assert_eq!(
            (r.forward.packets, r.forward.bytes, r.forward.tcp_flags),
            (10, 1500, 0x1b)
        );
        let o = r.origin.unwrap();
        assert_eq!(
            (o.exporter, o.observation_domain, o.sampling_rate),
            (from.ip(), 7, 64)
        );
        assert_eq!(r.start_ms, 1_700_000_000_000 - 1_000);
        assert_eq!(r.end_ms, 1_700_000_000_000 - 500);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut d = NetflowDecoder::new();
        let from: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        assert_eq!(d.decode(from, &[1]).error, Some(NetflowError::Truncated));
        assert_eq!(
            d.decode(from, &[0, 7, 1, 2]).error,
            Some(NetflowError::Version(7))
        );
        let b = v5_datagram(&[([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 6, 1, 1)]);
        let cut = d.decode(from, &b[..30]);
        assert!(
            matches!(cut.error, Some(NetflowError::Malformed(_))),
            "{:?}",
            cut.error
        );
        assert!(cut.records.is_empty());
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = d.decode(from, &junk);
            let mut v9 = vec![0, 9];
            v9.extend_from_slice(&junk);
            let _ = d.decode(from, &v9);
            let mut ipfix = vec![0, 10];
            ipfix.extend_from_slice(&junk);
            let _ = d.decode(from, &ipfix);
        }
    }
}
