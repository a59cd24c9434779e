//! Criterion benchmarks of flow telemetry: the IPFIX encoding rate of the
//! exporter (records per second into 1,400-byte messages), the export
//! thread's whole work per record from a worker's expired entry to a UDP
//! datagram on loopback, and a worker's flow table update per packet
//! (`FlowTable::observe`) over 1 Ki and 256 Ki flows in a 1 Mi-entry
//! table, both directions, and the same packets counted through their
//! flow cache slots' hints (`FlowTable::count_hinted`, what the worker
//! does for a packet whose classifier key is its flow's).
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::ipfix::MessageBuilder;
use dataplane::flow::table::{
    Expired, FirstPacket, FlowTable, Hint, MeterConfig, MeterStats, Packet, PacketMeta, Tally,
};
use dataplane::flow::{DirectionCounts, EndReason, FlowKey, FlowRecord};
use dataplane::stage::parse::{parse, Layers};

/// A metered TCP flow's record: two destinations, as a tap rule has.
fn record(i: u32) -> FlowRecord {
    FlowRecord {
        key: FlowKey {
            initiator: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
            responder: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80)),
            initiator_port: 1024 + (i % 60_000) as u16,
            responder_port: 443,
            protocol: 6,
        },
        forward: DirectionCounts {
            packets: 12,
            bytes: 1_800,
            tcp_flags: 0x1b,
        },
        reverse: DirectionCounts {
            packets: 10,
            bytes: 14_000,
            tcp_flags: 0x1b,
        },
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_000_250,
        vlan: Some(100),
        input_port: Some(0),
        direction: None,
        rule_id: Some(1),
        destinations: vec![0, 1],
        dedup_removed: 0,
        tunnel: None,
        end_reason: EndReason::EndOfFlow,
        origin: None,
    }
}

fn ipfix_encode(c: &mut Criterion) {
    let records: Vec<FlowRecord> = (0..4096).map(record).collect();
    let mut g = c.benchmark_group("ipfix_encode");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("4096_records_1400B_messages", |b| {
        let mut m = MessageBuilder::new(1, 1400);
        b.iter(|| {
            let mut bytes = 0;
            for r in &records {
                if !m.add(r) {
                    bytes += m.finish(0).len();
                    m.clear();
                    m.add(r);
                }
            }
            bytes += m.finish(0).len();
            m.clear();
            black_box(bytes)
        });
    });
    g.finish();
}

/// TCP frames of `flows` flows, both directions interleaved.
fn frames(flows: u32) -> Vec<(Vec<u8>, Layers)> {
    let mut out = Vec::new();
    for i in 0..flows.min(4096) * 2 {
        let flow = (i / 2).wrapping_mul(2_654_435_761) % flows;
        let (a, b) = (
            [10, (flow >> 16) as u8, (flow >> 8) as u8, flow as u8],
            [192, 0, 2, 80],
        );
        let (src, dst, sp, dp) = if i % 2 == 0 {
            (a, b, 40_000u16, 443u16)
        } else {
            (b, a, 443, 40_000)
        };
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, 1, 1000)
            .ack(1)
            .write(&mut f, &[0; 64])
            .expect("frame");
        let l = parse(&f);
        out.push((f, l));
    }
    out
}

/// What the export thread does per record of a worker's ring: the
/// expired entry made a record (its rule's destinations looked up and
/// cloned, as `WorkerFlows` does), encoded into 1,400-byte messages, each
/// full message sent over UDP to a collector socket on loopback. 4,096
/// expired TCP flows with packets both ways.
fn export_path(c: &mut Criterion) {
    let cfg = MeterConfig {
        entries: 1 << 16,
        ..MeterConfig::default()
    };
    let mut t = FlowTable::new(cfg, 7).expect("table");
    let stats = MeterStats::default();
    for (f, l) in frames(4096) {
        let meta = PacketMeta {
            len: f.len() as u32,
            duplicate: false,
            first: FirstPacket {
                rule_id: 1,
                ..FirstPacket::default()
            },
        };
        t.observe(&l, &meta, 1_000_000, &stats);
    }
    let mut expired: Vec<Expired> = Vec::new();
    t.flush(&stats, &mut |e| {
        expired.push(e);
        true
    });
    let dests: HashMap<u32, Vec<u16>> = [(1, vec![0, 1])].into_iter().collect();
    let collector = UdpSocket::bind("127.0.0.1:0").expect("collector");
    let to = collector.local_addr().expect("address");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let mut g = c.benchmark_group("ipfix_export");
    g.throughput(Throughput::Elements(expired.len() as u64));
    g.bench_function("4096_expired_entries_to_udp", |b| {
        let mut m = MessageBuilder::new(1, 1400);
        let send = |m: &mut MessageBuilder| {
            let sent = sender.send_to(m.finish(0), to).is_ok();
            m.clear();
            sent
        };
        b.iter(|| {
            let mut sent = 0;
            for e in &expired {
                let d = dests.get(&e.entry.rule_id()).cloned().unwrap_or_default();
                let r = e.entry.record(e.reason, d);
                if !m.add(&r) {
                    sent += u32::from(send(&mut m));
                    m.add(&r);
                }
            }
            sent += u32::from(send(&mut m));
            black_box(sent)
        });
    });
    g.finish();
}

fn table_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table_observe");
    for flows in [1u32 << 10, 1 << 18] {
        let pkts = frames(flows);
        let cfg = MeterConfig {
            entries: 1 << 20,
            ..MeterConfig::default()
        };
        let mut t = FlowTable::new(cfg, 7).expect("table");
        let stats = MeterStats::default();
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &pkts, |b, pkts| {
            let mut now = 0u64;
            b.iter(|| {
                for (f, l) in pkts {
                    let meta = PacketMeta {
                        len: f.len() as u32,
                        ..PacketMeta::default()
                    };
                    now += 1;
                    black_box(t.observe(l, &meta, now, &stats));
                }
            });
        });
    }
    g.finish();
}

/// One frame as the table counts it.
fn packet<'a>(f: &[u8], l: &'a Layers) -> Packet<'a> {
    Packet {
        layers: l,
        len: f.len() as u32,
        duplicate: false,
    }
}

/// The packets of `table_observe` counted by their hints: each flow made
/// by its first packet, the other direction's hint from its probe, then
/// every packet counted at the entry its hint names (no hash, no probe).
fn table_hinted(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table_hinted");
    for flows in [1u32 << 10, 1 << 18] {
        let pkts = frames(flows);
        let cfg = MeterConfig {
            entries: 1 << 20,
            ..MeterConfig::default()
        };
        let mut t = FlowTable::new(cfg, 7).expect("table");
        let mut tally = Tally::default();
        let hints: Vec<Hint> = pkts
            .iter()
            .map(|(f, l)| match t.count(packet(f, l), 0, &mut tally) {
                Some(hint) => hint,
                None => t.create(packet(f, l), 0, FirstPacket::default(), &mut tally),
            })
            .collect();
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &pkts, |b, pkts| {
            let mut now = 0u64;
            b.iter(|| {
                for ((f, l), &hint) in pkts.iter().zip(&hints) {
                    now += 1;
                    black_box(t.count_hinted(packet(f, l), hint, now));
                }
            });
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    ipfix_encode,
    export_path,
    table_observe,
    table_hinted
);
criterion_main!(benches);
