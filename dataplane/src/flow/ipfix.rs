//! IPFIX encoding (RFC 7011) of [`FlowRecord`]s as bidirectional records
//! (RFC 5103): the forward counters in the standard information elements,
//! the reverse ones in the same elements under enterprise 29305. Sluice's
//! own fields (rule, destinations, dedup, tunnel) are in the enterprise
//! set of [`SLUICE_PEN`]. docs/IPFIX.md lists every element.
//!
//! A record picks one of six templates by its flow's IP version and its
//! origin's (none, IPv4 or IPv6 exporter), so every field is fixed-length
//! except the destination list.

use std::net::IpAddr;

use super::FlowRecord;

/// IPFIX version number in the message header.
pub const VERSION: u16 = 10;
/// Message header length.
pub const HEADER_LEN: usize = 16;
/// Set ID of a template set.
pub const TEMPLATE_SET: u16 = 2;
/// The enterprise number of RFC 5103's reverse information elements.
pub const REVERSE_PEN: u32 = 29305;
/// The private enterprise number of Sluice's own information elements:
/// 32473, which RFC 5612 reserves for documentation and examples, until
/// the project has one of its own (docs/IPFIX.md).
pub const SLUICE_PEN: u32 = 32473;
/// A variable-length field in a template.
const VARIABLE: u16 = 0xffff;
/// The first template ID (IDs below 256 are set IDs).
pub const FIRST_TEMPLATE: u16 = 256;

/// IANA IPFIX information elements Sluice sends.
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const INGRESS_INTERFACE: u16 = 10;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const VLAN_ID: u16 = 58;
    pub const FLOW_DIRECTION: u16 = 61;
    pub const FLOW_END_REASON: u16 = 136;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const SAMPLING_PACKET_INTERVAL: u16 = 305;
    pub const ORIGINAL_EXPORTER_IPV4_ADDRESS: u16 = 403;
    pub const ORIGINAL_EXPORTER_IPV6_ADDRESS: u16 = 404;
    pub const ORIGINAL_OBSERVATION_DOMAIN_ID: u16 = 405;
}

/// Sluice's enterprise information elements (under [`SLUICE_PEN`]).
pub mod sluice_ie {
    /// unsigned32: the policy rule's id; 0xffffffff for the default action.
    pub const RULE_ID: u16 = 1;
    /// octetArray: the rule's destinations, unsigned16 indices in network order.
    pub const DESTINATION_IDS: u16 = 2;
    /// unsigned64: copies dedup removed from the flow.
    pub const DEDUP_REMOVED_COUNT: u16 = 3;
    /// unsigned8: the tunnel decapsulated traffic came in (0 none, 1 VXLAN,
    /// 2 Geneve, 3 L2GRE, 4–6 ERSPAN I–III, 7 other GRE).
    pub const TUNNEL_TYPE: u16 = 4;
    /// unsigned32: the tunnel's VNI, session ID or key (0 when none).
    pub const TUNNEL_ID: u16 = 5;
}

/// One field of a template: element, length, enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub ie: u16,
    pub len: u16,
    pub enterprise: Option<u32>,
}

const fn std_ie(ie: u16, len: u16) -> FieldSpec {
    FieldSpec {
        ie,
        len,
        enterprise: None,
    }
}

const fn rev_ie(ie: u16, len: u16) -> FieldSpec {
    FieldSpec {
        ie,
        len,
        enterprise: Some(REVERSE_PEN),
    }
}

const fn sluice(ie: u16, len: u16) -> FieldSpec {
    FieldSpec {
        ie,
        len,
        enterprise: Some(SLUICE_PEN),
    }
}

/// The fields every template shares, after the addresses.
const COMMON: [FieldSpec; 21] = [
    std_ie(ie::SOURCE_TRANSPORT_PORT, 2),
    std_ie(ie::DESTINATION_TRANSPORT_PORT, 2),
    std_ie(ie::PROTOCOL_IDENTIFIER, 1),
    std_ie(ie::FLOW_START_MILLISECONDS, 8),
    std_ie(ie::FLOW_END_MILLISECONDS, 8),
    std_ie(ie::OCTET_DELTA_COUNT, 8),
    std_ie(ie::PACKET_DELTA_COUNT, 8),
    std_ie(ie::TCP_CONTROL_BITS, 2),
    rev_ie(ie::OCTET_DELTA_COUNT, 8),
    rev_ie(ie::PACKET_DELTA_COUNT, 8),
    rev_ie(ie::TCP_CONTROL_BITS, 2),
    std_ie(ie::VLAN_ID, 2),
    std_ie(ie::INGRESS_INTERFACE, 4),
    std_ie(ie::FLOW_DIRECTION, 1),
    std_ie(ie::FLOW_END_REASON, 1),
    sluice(sluice_ie::RULE_ID, 4),
    sluice(sluice_ie::DESTINATION_IDS, VARIABLE),
    sluice(sluice_ie::DEDUP_REMOVED_COUNT, 8),
    sluice(sluice_ie::TUNNEL_TYPE, 1),
    sluice(sluice_ie::TUNNEL_ID, 4),
    std_ie(ie::SAMPLING_PACKET_INTERVAL, 4),
];

/// Which template a record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateKind {
    pub ipv6: bool,
    /// None for locally metered records; the exporter's IP version otherwise.
    pub origin_ipv6: Option<bool>,
}

impl TemplateKind {
    /// Every template, in ID order.
    pub const ALL: [TemplateKind; 6] = [
        TemplateKind::new(false, None),
        TemplateKind::new(true, None),
        TemplateKind::new(false, Some(false)),
        TemplateKind::new(true, Some(false)),
        TemplateKind::new(false, Some(true)),
        TemplateKind::new(true, Some(true)),
    ];

    const fn new(ipv6: bool, origin_ipv6: Option<bool>) -> Self {
        TemplateKind { ipv6, origin_ipv6 }
    }

    /// The template a record needs.
    pub fn of(r: &FlowRecord) -> Self {
        TemplateKind {
            ipv6: r.key.initiator.is_ipv6() || r.key.responder.is_ipv6(),
            origin_ipv6: r.origin.map(|o| o.exporter.is_ipv6()),
        }
    }

    /// The template ID.
    pub fn id(self) -> u16 {
        let origin = match self.origin_ipv6 {
            None => 0,
            Some(false) => 2,
            Some(true) => 4,
        };
        FIRST_TEMPLATE + origin + u16::from(self.ipv6)
    }

    /// The template's fields, in record order.
    pub fn fields(self) -> Vec<FieldSpec> {
        let mut f = if self.ipv6 {
            vec![
                std_ie(ie::SOURCE_IPV6_ADDRESS, 16),
                std_ie(ie::DESTINATION_IPV6_ADDRESS, 16),
            ]
        } else {
            vec![
                std_ie(ie::SOURCE_IPV4_ADDRESS, 4),
                std_ie(ie::DESTINATION_IPV4_ADDRESS, 4),
            ]
        };
        f.extend_from_slice(&COMMON);
        match self.origin_ipv6 {
            None => {}
            Some(false) => f.push(std_ie(ie::ORIGINAL_EXPORTER_IPV4_ADDRESS, 4)),
            Some(true) => f.push(std_ie(ie::ORIGINAL_EXPORTER_IPV6_ADDRESS, 16)),
        }
        if self.origin_ipv6.is_some() {
            f.push(std_ie(ie::ORIGINAL_OBSERVATION_DOMAIN_ID, 4));
        }
        f
    }
}

/// Appends a template set holding every template.
pub fn encode_template_set(out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for kind in TemplateKind::ALL {
        let fields = kind.fields();
        out.extend_from_slice(&kind.id().to_be_bytes());
        out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for f in fields {
            match f.enterprise {
                None => out.extend_from_slice(&f.ie.to_be_bytes()),
                Some(_) => out.extend_from_slice(&(f.ie | 0x8000).to_be_bytes()),
            }
            out.extend_from_slice(&f.len.to_be_bytes());
            if let Some(pen) = f.enterprise {
                out.extend_from_slice(&pen.to_be_bytes());
            }
        }
    }
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr, v6: bool) {
    match (a, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
        // A v6 address in a v4 template cannot happen: the template is
        // chosen from the addresses. Zero keeps the record's length right.
        (IpAddr::V6(_), false) => out.extend_from_slice(&[0; 4]),
    }
}

/// Appends one data record in its template's layout.
pub fn encode_record(out: &mut Vec<u8>, r: &FlowRecord, kind: TemplateKind) {
    let k = &r.key;
    put_addr(out, k.initiator, kind.ipv6);
    put_addr(out, k.responder, kind.ipv6);
    out.extend_from_slice(&k.initiator_port.to_be_bytes());
    out.extend_from_slice(&k.responder_port.to_be_bytes());
    out.push(k.protocol);
    out.extend_from_slice(&r.start_ms.to_be_bytes());
    out.extend_from_slice(&r.end_ms.to_be_bytes());
    out.extend_from_slice(&r.forward.bytes.to_be_bytes());
    out.extend_from_slice(&r.forward.packets.to_be_bytes());
    out.extend_from_slice(&u16::from(r.forward.tcp_flags).to_be_bytes());
    out.extend_from_slice(&r.reverse.bytes.to_be_bytes());
    out.extend_from_slice(&r.reverse.packets.to_be_bytes());
    out.extend_from_slice(&u16::from(r.reverse.tcp_flags).to_be_bytes());
    out.extend_from_slice(&r.vlan.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&u32::from(r.input_port.unwrap_or(0)).to_be_bytes());
    out.push(match r.direction {
        Some(super::FlowDirection::Egress) => 1,
        _ => 0,
    });
    out.push(r.end_reason.ipfix());
    out.extend_from_slice(&r.rule_id.unwrap_or(u32::MAX).to_be_bytes());
    // Variable length (RFC 7011 §7): one length byte below 255, else 255
    // and two bytes. More destinations than fit in 65535 bytes are cut.
    let n = r.destinations.len().min(usize::from(u16::MAX / 2));
    let len = n * 2;
    if len < 255 {
        out.push(len as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    for d in &r.destinations[..n] {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(&r.dedup_removed.to_be_bytes());
    out.push(r.tunnel.map_or(0, |t| t.kind.code()));
    out.extend_from_slice(&r.tunnel.and_then(|t| t.id).unwrap_or(0).to_be_bytes());
    let rate = r.origin.map_or(1, |o| o.sampling_rate.max(1));
    out.extend_from_slice(&rate.to_be_bytes());
    if let Some(o) = r.origin {
        put_addr(out, o.exporter, o.exporter.is_ipv6());
        out.extend_from_slice(&o.observation_domain.to_be_bytes());
    }
}

/// The encoded length of a record (to decide whether it fits a message).
pub fn record_len(r: &FlowRecord, kind: TemplateKind) -> usize {
    let addr = if kind.ipv6 { 32 } else { 8 };
    let n = r.destinations.len().min(usize::from(u16::MAX / 2)) * 2;
    let var = if n < 255 { 1 + n } else { 3 + n };
    let origin = match kind.origin_ipv6 {
        None => 0,
        Some(false) => 8,
        Some(true) => 20,
    };
    let fixed: usize = COMMON
        .iter()
        .filter(|f| f.len != VARIABLE)
        .map(|f| usize::from(f.len))
        .sum();
    addr + fixed + var + origin
}

/// Builds IPFIX messages one after another for one observation domain:
/// data sets of records, with the templates in front when asked. Keeps
/// the sequence number (RFC 7011 §3.1: data records sent before this
/// message, modulo 2^32).
#[derive(Debug)]
pub struct MessageBuilder {
    observation_domain: u32,
    max_len: usize,
    sequence: u32,
    buf: Vec<u8>,
    /// Open data set: its start offset and template.
    set: Option<(usize, u16)>,
    records: u32,
}

impl MessageBuilder {
    /// Messages of at most `max_len` bytes (a UDP payload that fits the
    /// path MTU; RFC 7011 §10.3.3).
    pub fn new(observation_domain: u32, max_len: usize) -> Self {
        MessageBuilder {
            observation_domain,
            max_len: max_len.max(512),
            sequence: 0,
            buf: Vec::with_capacity(max_len),
            set: None,
            records: 0,
        }
    }

    /// Records in the open message.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Whether the open message holds anything.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER_LEN
    }

    fn open(&mut self) {
        if self.buf.is_empty() {
            self.buf.resize(HEADER_LEN, 0);
        }
    }

    /// Puts the template set into the open message (at the start of a
    /// message, so collectors learn them before the records that follow).
    pub fn add_templates(&mut self) {
        self.close_set();
        self.open();
        encode_template_set(&mut self.buf);
    }

    /// Adds a record; returns false, adding nothing, when the message is
    /// full (finish it and add again).
    pub fn add(&mut self, r: &FlowRecord) -> bool {
        let kind = TemplateKind::of(r);
        let id = kind.id();
        let need = record_len(r, kind) + if self.set_of() == Some(id) { 0 } else { 4 };
        self.open();
        if self.buf.len() + need > self.max_len && self.records > 0 {
            return false;
        }
        if self.set_of() != Some(id) {
            self.close_set();
            self.set = Some((self.buf.len(), id));
            self.buf.extend_from_slice(&id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        encode_record(&mut self.buf, r, kind);
        self.records += 1;
        true
    }

    fn set_of(&self) -> Option<u16> {
        self.set.map(|(_, id)| id)
    }

    fn close_set(&mut self) {
        if let Some((start, _)) = self.set.take() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Finishes the open message with its header (`export_secs`: seconds
    /// since the Unix epoch) and returns it; the builder starts the next.
    /// Empty when nothing was added.
    pub fn finish(&mut self, export_secs: u32) -> &[u8] {
        self.close_set();
        if self.buf.is_empty() {
            return &[];
        }
        let len = self.buf.len() as u16;
        let h = &mut self.buf[..HEADER_LEN];
        h[0..2].copy_from_slice(&VERSION.to_be_bytes());
        h[2..4].copy_from_slice(&len.to_be_bytes());
        h[4..8].copy_from_slice(&export_secs.to_be_bytes());
        h[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        h[12..16].copy_from_slice(&self.observation_domain.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(self.records);
        self.records = 0;
        &self.buf
    }

    /// Clears the finished message (after it was sent).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.set = None;
        self.records = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{
        DirectionCounts, EndReason, FlowKey, FlowOrigin, FlowTunnel, OriginProtocol, TunnelType,
    };
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn record(v6: bool, dests: usize) -> FlowRecord {
        let (a, b) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            )
        };
        FlowRecord {
            key: FlowKey {
                initiator: a,
                responder: b,
                initiator_port: 1234,
                responder_port: 80,
                protocol: 6,
            },
            forward: DirectionCounts {
                packets: 5,
                bytes: 500,
                tcp_flags: 0x1b,
            },
            reverse: DirectionCounts {
                packets: 4,
                bytes: 4000,
                tcp_flags: 0x12,
            },
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_000_500,
            vlan: Some(100),
            input_port: Some(1),
            direction: None,
            rule_id: Some(3),
            destinations: (0..dests as u16).collect(),
            dedup_removed: 2,
            tunnel: Some(FlowTunnel {
                kind: TunnelType::Vxlan,
                id: Some(77),
            }),
            end_reason: EndReason::EndOfFlow,
            origin: None,
        }
    }

    /// Walks a message the way a collector does: header, sets, and the
    /// records of each data set by the template's field lengths.
    fn walk(msg: &[u8]) -> Vec<(u16, usize)> {
        assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), VERSION);
        assert_eq!(usize::from(u16::from_be_bytes([msg[2], msg[3]])), msg.len());
        let mut sets = Vec::new();
        let mut at = HEADER_LEN;
        while at < msg.len() {
            let id = u16::from_be_bytes([msg[at], msg[at + 1]]);
            let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
            assert!(
                len >= 4 && at + len <= msg.len(),
                "set length {len} at {at}"
            );
            sets.push((id, len));
            at += len;
        }
        assert_eq!(at, msg.len());
        sets
    }

    #[test]
    fn template_ids_are_distinct_and_fields_fixed_but_one() {
        let ids: Vec<u16> = TemplateKind::ALL.iter().map(|k| k.id()).collect();
        assert_eq!(ids, [256, 257, 258, 259, 260, 261]);
        for k in TemplateKind::ALL {
            let var = k.fields().iter().filter(|f| f.len == VARIABLE).count();
            assert_eq!(var, 1);
        }
    }

    #[test]
    fn record_length_matches_what_is_written() {
        for (v6, dests, origin) in [
            (false, 0, None),
            (true, 3, None),
            (false, 200, Some(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            (true, 1, Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
        ] {
            let mut r = record(v6, dests);
            r.origin = origin.map(|exporter| FlowOrigin {
                exporter,
                observation_domain: 9,
                sampling_rate: 100,
                protocol: OriginProtocol::Ipfix,
            });
            let kind = TemplateKind::of(&r);
            let mut out = Vec::new();
            encode_record(&mut out, &r, kind);
            assert_eq!(out.len(), record_len(&r, kind), "{v6} {dests} {origin:?}");
        }
    }

    #[test]
    fn messages_split_at_the_size_limit_and_count_the_sequence() {
        let mut b = MessageBuilder::new(7, 1400);
        b.add_templates();
        let r4 = record(false, 1);
        let r6 = record(true, 1);
        let mut added = 0;
        while b.add(if added % 3 == 0 { &r6 } else { &r4 }) {
            added += 1;
        }
        let msg = b.finish(1).to_vec();
        assert!(msg.len() <= 1400);
        let sets = walk(&msg);
        assert_eq!(sets[0].0, TEMPLATE_SET);
        assert!(sets[1..].iter().all(|(id, _)| *id == 256 || *id == 257));
        assert_eq!(u32::from_be_bytes(msg[8..12].try_into().unwrap()), 0);
        assert_eq!(u32::from_be_bytes(msg[12..16].try_into().unwrap()), 7);
        b.clear();
        assert!(b.add(&r4));
        let next = b.finish(2).to_vec();
        assert_eq!(
            u32::from_be_bytes(next[8..12].try_into().unwrap()),
            added as u32
        );
        walk(&next);
    }

    #[test]
    fn long_destination_lists_use_the_three_byte_length() {
        let r = record(false, 200);
        let mut out = Vec::new();
        encode_record(&mut out, &r, TemplateKind::of(&r));
        // Fields before the list: addresses 8, ports 4, proto 1, times 16,
        // counts 16+2, reverse 16+2, vlan 2, ingress 4, direction 1,
        // reason 1, rule 4.
        let at = 8 + 4 + 1 + 16 + 18 + 18 + 2 + 4 + 1 + 1 + 4;
        assert_eq!(out[at], 255);
        assert_eq!(u16::from_be_bytes([out[at + 1], out[at + 2]]), 400);
    }
}
