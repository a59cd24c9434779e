//! sFlow v5 datagrams into flow records: each flow sample's raw packet
//! header, parsed by the pipeline's own parser, becomes one record of one
//! packet of the sampled frame's length, with the sample's sampling rate
//! (collectors multiply). Counter samples are counted, not turned into
//! records.

use std::net::IpAddr;

use dataplane::flow::{
    DirectionCounts, EndReason, FlowKey, FlowOrigin, FlowRecord, OriginProtocol,
};
use dataplane::stage::parse::{parse_to, Layers};
use dataplane::wire::sflow::{
    CountersSample, Datagram, FlowSample, RawPacketHeader, Record, HEADER_PROTOCOL_ETHERNET,
};
use dataplane::wire::Error;

/// What one datagram gave.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<FlowRecord>,
    pub counter_samples: u64,
    /// Samples and records of formats this decoder does not read (other
    /// enterprises', non-Ethernet headers, headers without IP): skipped.
    pub skipped: u64,
    /// Why the datagram, or its rest, could not be read.
    pub error: Option<Error>,
}

/// The records of one sFlow datagram received from `from` at `now_ms`.
pub fn decode(from: IpAddr, payload: &[u8], now_ms: u64) -> Decoded {
    let mut out = Decoded::default();
    let d = match Datagram::new_checked(payload) {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let origin = FlowOrigin {
        exporter: d.agent_address().unwrap_or(from),
        observation_domain: d.sub_agent_id(),
        sampling_rate: 1,
        protocol: OriginProtocol::Sflow,
    };
    for s in d.samples() {
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        };
        if let Ok(f) = FlowSample::parse(&s) {
            flow_sample(f, origin, now_ms, &mut out);
        } else if CountersSample::parse(&s).is_ok() {
            out.counter_samples += 1;
        } else if is_ours(&s) {
            // A flow or counters sample too short for its own fields.
            out.error = Some(Error::Truncated);
            break;
        } else {
            out.skipped += 1;
        }
    }
    out
}

/// Whether a sample is one of the four standard formats.
fn is_ours(s: &Record<'_>) -> bool {
    s.enterprise == 0 && (1..=4).contains(&s.format)
}

fn flow_sample(f: FlowSample<'_>, origin: FlowOrigin, now_ms: u64, out: &mut Decoded) {
    let origin = FlowOrigin {
        sampling_rate: f.sampling_rate.max(1),
        ..origin
    };
    let mut found = false;
    for r in f.records.clone() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        };
        let Ok(h) = RawPacketHeader::parse(&r) else {
            continue;
        };
        if h.protocol != HEADER_PROTOCOL_ETHERNET {
            continue;
        }
        // The header is the frame's first bytes: parse them as the head of
        // a frame of the sampled length, as a chained mbuf's first segment.
        let frame_len = h.frame_length.saturating_sub(h.stripped);
        let mut l = Layers::default();
        parse_to(h.header, frame_len as usize, &mut l);
        let (Some(src), Some(dst)) = (l.src_ip(), l.dst_ip()) else {
            continue;
        };
        found = true;
        out.records.push(FlowRecord {
            key: FlowKey {
                initiator: src,
                responder: dst,
                initiator_port: l.src_port,
                responder_port: l.dst_port,
                protocol: l.l4_proto,
            },
            forward: DirectionCounts {
                packets: 1,
                bytes: u64::from(frame_len),
                tcp_flags: l.tcp_flags,
            },
            reverse: DirectionCounts::default(),
            start_ms: now_ms,
            end_ms: now_ms,
            vlan: l.outer_vlan,
            input_port: u16::try_from(f.input).ok(),
            direction: None,
            rule_id: None,
            destinations: Vec::new(),
            dedup_removed: 0,
            tunnel: None,
            end_reason: EndReason::default(),
            origin: Some(origin),
        });
    }
    if !found {
        out.skipped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::sflow::build;
    use etherparse::PacketBuilder;

    fn tcp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1, 1000)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[0u8; 100]).unwrap();
        out
    }

    #[test]
    fn a_flow_sample_becomes_one_sampled_packet() {
        let frame = tcp_frame();
        let agent: IpAddr = "192.0.2.50".parse().unwrap();
        let b = build::datagram(
            agent,
            1,
            1000,
            &[
                build::flow_sample(1, 100, 3, &frame),
                build::counters_sample(2, 3, 1, 1),
            ],
        );
        let out = decode("192.0.2.9".parse().unwrap(), &b, 42);
        assert_eq!(out.error, None);
        assert_eq!(out.counter_samples, 1);
        assert_eq!(out.records.len(), 1);
        let r = &out.records[0];
        assert_eq!(r.key.initiator, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (r.key.initiator_port, r.key.responder_port, r.key.protocol),
            (40000, 443, 6)
        );
        assert_eq!(
            (r.forward.packets, r.forward.bytes),
            (1, frame.len() as u64)
        );
        assert_eq!(r.forward.tcp_flags, 0x02);
        let o = r.origin.unwrap();
        assert_eq!(
            (o.exporter, o.sampling_rate, o.protocol),
            (agent, 100, OriginProtocol::Sflow)
        );
        assert_eq!(r.input_port, Some(3));
    }

    #[test]
    fn a_header_cut_short_still_gives_the_flow_key() {
        let frame = tcp_frame();
        let mut b = build::flow_sample(1, 1, 1, &frame[..64]);
        // The record's frame length: the whole frame, not the 64 bytes sampled.
        let at = b.len() - 64 - 12;
        b[at..at + 4].copy_from_slice(&(frame.len() as u32).to_be_bytes());
        let d = build::datagram("192.0.2.9".parse().unwrap(), 1, 1, &[b]);
        let out = decode("192.0.2.9".parse().unwrap(), &d, 0);
        assert_eq!(out.error, None);
        let r = &out.records[0];
        assert_eq!(
            (r.key.initiator_port, r.key.responder_port, r.key.protocol),
            (40000, 443, 6)
        );
        assert_eq!(r.forward.bytes, frame.len() as u64);
    }

    #[test]
    fn garbage_is_an_error() {
        let from: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(decode(from, &[1, 2, 3], 0).error, Some(Error::Truncated));
        let mut b = build::datagram(from, 1, 1, &[build::flow_sample(1, 1, 1, &tcp_frame())]);
        b[3] = 4;
        assert_eq!(decode(from, &b, 0).error, Some(Error::Malformed));
        b[3] = 5;
        let n = b.len();
        assert_eq!(decode(from, &b[..n - 20], 0).error, Some(Error::Truncated));
    }
}
