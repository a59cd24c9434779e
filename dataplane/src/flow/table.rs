//! A worker's flow table: bidirectional flows keyed by their canonical
//! 5-tuple, updated per packet from what the worker already parsed, expired
//! by an incremental scan at the drain tick (bounded work per tick).
//!
//! Set-associative, like dedup's table: a bucket of [`WAYS`] entries picked
//! by a symmetric hash, so both directions land in the same bucket. A
//! packet whose bucket is full is not metered (`misses`); it is forwarded
//! all the same. Memory is fixed at start: on DPDK hugepages under EAL, on
//! the heap otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::runtime::counters::Counter;
use crate::stage::parse::Layers;
use crate::stage::Direction;
use crate::wire::ip_proto;

use super::record::{
    DirectionCounts, EndReason, FlowDirection, FlowKey, FlowRecord, FlowTunnel, TunnelType,
};

/// Entries per bucket.
pub const WAYS: usize = 4;
/// Table sizes accepted (entries, a power of two).
pub const MIN_ENTRIES: usize = 1 << 10;
pub const MAX_ENTRIES: usize = 1 << 24;

/// What a worker's flow table is told at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterConfig {
    /// Entries (a power of two in [`MIN_ENTRIES`]..=[`MAX_ENTRIES`]).
    pub entries: usize,
    /// A flow open this long is exported and goes on in a new record.
    pub active_ns: u64,
    /// A flow without a packet this long is exported.
    pub idle_ns: u64,
    /// Entries the expiry scan looks at per drain tick.
    pub scan_per_tick: usize,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            entries: 1 << 16,
            active_ns: 60_000_000_000,
            idle_ns: 15_000_000_000,
            scan_per_tick: 256,
        }
    }
}

/// Why a table could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeterError {
    #[error("flow table entries must be a power of two in {min}..={max}, got {got}")]
    BadEntries { got: usize, min: usize, max: usize },
    #[error("no memory for a flow table of {bytes} bytes")]
    NoMemory { bytes: usize },
}

/// The table's counters, written by its worker, read by the main lcore.
#[derive(Debug, Default)]
pub struct MeterStats {
    /// Packets metered (counted into a flow).
    pub packets: Counter,
    /// Flows created.
    pub created: Counter,
    /// Packets not metered because their bucket was full.
    pub misses: Counter,
    /// Flows expired, by reason.
    pub expired_idle: Counter,
    pub expired_active: Counter,
    pub expired_end: Counter,
    pub expired_forced: Counter,
    /// Expired records the export ring had no room for (lost).
    pub ring_full: Counter,
    /// Flows in the table now.
    pub active: Counter,
}

impl MeterStats {
    /// Zeroes every counter but the occupancy (the owning worker only).
    pub fn zero(&self) {
        for c in [
            &self.packets,
            &self.created,
            &self.misses,
            &self.expired_idle,
            &self.expired_active,
            &self.expired_end,
            &self.expired_forced,
            &self.ring_full,
        ] {
            c.set(0);
        }
    }
}

/// A table entry: one flow in canonical order (end `a` is the lower of
/// the two (address, port) pairs), with the initiator remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct FlowEntry {
    /// The symmetric hash; 0 marks a free entry.
    hash: u64,
    a_addr: u128,
    b_addr: u128,
    a_port: u16,
    b_port: u16,
    proto: u8,
    /// 4 or 6.
    ip_version: u8,
    /// The first packet went a → b.
    a_initiated: bool,
    /// FIN or RST seen: the scan exports it.
    ended: bool,
    /// Outer VLAN of the first packet, `NO_VLAN` when untagged.
    vlan: u16,
    input_port: u16,
    direction: u8,
    tunnel_kind: u8,
    tunnel_id: u32,
    rule_id: u32,
    /// Counts a → b and b → a.
    ab: DirectionCounts,
    ba: DirectionCounts,
    first_ns: u64,
    last_ns: u64,
    dedup_removed: u64,
}

/// Bytes of one table entry (for the memory a config needs).
pub const ENTRY_BYTES: usize = std::mem::size_of::<FlowEntry>();
/// Bytes of one record in a worker's export ring.
pub const EXPIRED_BYTES: usize = std::mem::size_of::<Expired>();

const NO_VLAN: u16 = u16::MAX;
const TUNNEL_NONE: u8 = 0;
const TUNNEL_NO_ID: u32 = u32::MAX;

impl FlowEntry {
    const FREE: FlowEntry = FlowEntry {
        hash: 0,
        a_addr: 0,
        b_addr: 0,
        a_port: 0,
        b_port: 0,
        proto: 0,
        ip_version: 0,
        a_initiated: false,
        ended: false,
        vlan: NO_VLAN,
        input_port: 0,
        direction: 0,
        tunnel_kind: TUNNEL_NONE,
        tunnel_id: TUNNEL_NO_ID,
        rule_id: u32::MAX,
        ab: DirectionCounts {
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
        },
        ba: DirectionCounts {
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
        },
        first_ns: 0,
        last_ns: 0,
        dedup_removed: 0,
    };

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.hash == 0
    }

    /// The rule that matched the flow's first packet (`u32::MAX`: default).
    pub fn rule_id(&self) -> u32 {
        self.rule_id
    }

    fn addr(&self, a: u128) -> IpAddr {
        if self.ip_version == 6 {
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::from(a as u32))
        }
    }

    /// The record of this entry, with the rule's destinations.
    pub fn record(&self, reason: EndReason, destinations: Vec<u16>) -> FlowRecord {
        let (ia, ip, ra, rp, fwd, rev) = if self.a_initiated {
            (
                self.a_addr,
                self.a_port,
                self.b_addr,
                self.b_port,
                self.ab,
                self.ba,
            )
        } else {
            (
                self.b_addr,
                self.b_port,
                self.a_addr,
                self.a_port,
                self.ba,
                self.ab,
            )
        };
        FlowRecord {
            key: FlowKey {
                initiator: self.addr(ia),
                responder: self.addr(ra),
                initiator_port: ip,
                responder_port: rp,
                protocol: self.proto,
            },
            forward: fwd,
            reverse: rev,
            start_ms: self.first_ns / 1_000_000,
            end_ms: self.last_ns / 1_000_000,
            vlan: (self.vlan != NO_VLAN).then_some(self.vlan),
            input_port: Some(self.input_port),
            direction: Some(if self.direction == 1 {
                FlowDirection::Egress
            } else {
                FlowDirection::Ingress
            }),
            rule_id: (self.rule_id != u32::MAX).then_some(self.rule_id),
            destinations,
            dedup_removed: self.dedup_removed,
            tunnel: tunnel_type(self.tunnel_kind).map(|kind| FlowTunnel {
                kind,
                id: (self.tunnel_id != TUNNEL_NO_ID).then_some(self.tunnel_id),
            }),
            end_reason: reason,
            origin: None,
        }
    }
}

fn tunnel_type(code: u8) -> Option<TunnelType> {
    [
        TunnelType::Vxlan,
        TunnelType::Geneve,
        TunnelType::L2Gre,
        TunnelType::ErspanI,
        TunnelType::ErspanII,
        TunnelType::ErspanIII,
        TunnelType::Gre,
    ]
    .into_iter()
    .find(|t| t.code() == code)
}

/// An expired flow on its way to the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub entry: FlowEntry,
    pub reason: EndReason,
}

/// What the worker knows of one packet besides its layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketMeta {
    /// Frame length.
    pub len: u32,
    pub port: u16,
    pub direction: Direction,
    /// The matched rule's id (`u32::MAX` for the default action).
    pub rule_id: u32,
    /// Dedup found it a copy.
    pub duplicate: bool,
    /// The tunnel it was decapsulated from.
    pub tunnel: Option<FlowTunnel>,
}

enum Storage {
    Heap(Vec<FlowEntry>),
    #[cfg(feature = "dpdk")]
    Huge(crate::dpdk::HugeSlice<FlowEntry>),
}

impl Storage {
    #[inline(always)]
    fn entries(&mut self) -> &mut [FlowEntry] {
        match self {
            Storage::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Storage::Huge(h) => h,
        }
    }
}

/// TCP FIN and RST.
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// One worker's flow table.
pub struct FlowTable {
    table: Storage,
    /// Buckets - 1.
    mask: usize,
    seed: u64,
    cfg: MeterConfig,
    /// Next entry the expiry scan looks at.
    cursor: usize,
    active: u64,
}

impl FlowTable {
    /// A table on the heap (tests, benches, no EAL).
    pub fn new(cfg: MeterConfig, seed: u64) -> Result<Self, MeterError> {
        check(&cfg)?;
        let mut v = Vec::new();
        v.try_reserve_exact(cfg.entries)
            .map_err(|_| MeterError::NoMemory {
                bytes: cfg.entries * std::mem::size_of::<FlowEntry>(),
            })?;
        v.resize(cfg.entries, FlowEntry::FREE);
        Ok(Self::with(Storage::Heap(v), cfg, seed))
    }

    /// A table on DPDK hugepages when EAL has them, else on the heap.
    #[cfg(feature = "dpdk")]
    pub fn new_on_hugepages(cfg: MeterConfig, seed: u64) -> Result<Self, MeterError> {
        check(&cfg)?;
        let socket = crate::dpdk::SOCKET_ID_ANY;
        match crate::dpdk::HugeSlice::new(cfg.entries, FlowEntry::FREE, socket) {
            Some(h) => Ok(Self::with(Storage::Huge(h), cfg, seed)),
            None => Self::new(cfg, seed),
        }
    }

    fn with(table: Storage, cfg: MeterConfig, seed: u64) -> Self {
        FlowTable {
            table,
            mask: cfg.entries / WAYS - 1,
            seed: seed | 1,
            cfg,
            cursor: 0,
            active: 0,
        }
    }

    pub fn config(&self) -> &MeterConfig {
        &self.cfg
    }

    /// Flows in the table.
    pub fn active(&self) -> u64 {
        self.active
    }

    /// Counts one packet into its flow. Frames without IP are not metered.
    /// Returns false when the flow's bucket was full (a miss).
    #[inline]
    pub fn observe(&mut self, l: &Layers, p: &PacketMeta, now_ns: u64, stats: &MeterStats) -> bool {
        if l.ip_version == 0 {
            return true;
        }
        let (src, dst) = (l.src_addr, l.dst_addr);
        let (sp, dp) = (l.src_port, l.dst_port);
        let src_is_a = (src, sp) <= (dst, dp);
        let (a, ap, b, bp) = if src_is_a {
            (src, sp, dst, dp)
        } else {
            (dst, dp, src, sp)
        };
        let proto = l.l4_proto;
        let mut h = (a as u64)
            ^ ((a >> 64) as u64).rotate_left(13)
            ^ (b as u64).rotate_left(29)
            ^ ((b >> 64) as u64).rotate_left(43)
            ^ (u64::from(ap) << 24 | u64::from(bp) << 40 | u64::from(proto));
        h = (h ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 32;
        h |= 1;
        let bucket = (h as usize & self.mask) * WAYS;
        let entries = self.table.entries();
        let Some(ways) = entries.get_mut(bucket..bucket + WAYS) else {
            return true;
        };
        let flags = if proto == ip_proto::TCP {
            l.tcp_flags
        } else {
            0
        };
        let len = u64::from(p.len);
        let mut free = None;
        for (i, e) in ways.iter_mut().enumerate() {
            if e.hash == h
                && e.a_addr == a
                && e.b_addr == b
                && e.a_port == ap
                && e.b_port == bp
                && e.proto == proto
            {
                if src_is_a {
                    e.ab.add(len, flags);
                } else {
                    e.ba.add(len, flags);
                }
                e.last_ns = now_ns;
                e.dedup_removed += u64::from(p.duplicate);
                e.ended |= flags & (TCP_FIN | TCP_RST) != 0;
                stats.packets.add(1);
                return true;
            }
            if free.is_none() && e.is_free() {
                free = Some(i);
            }
        }
        let Some(i) = free else {
            stats.misses.add(1);
            return false;
        };
        let mut e = FlowEntry {
            hash: h,
            a_addr: a,
            b_addr: b,
            a_port: ap,
            b_port: bp,
            proto,
            ip_version: l.ip_version,
            a_initiated: src_is_a,
            ended: flags & (TCP_FIN | TCP_RST) != 0,
            vlan: l.outer_vlan.unwrap_or(NO_VLAN),
            input_port: p.port,
            direction: u8::from(p.direction == Direction::Egress),
            tunnel_kind: p.tunnel.map_or(TUNNEL_NONE, |t| t.kind.code()),
            tunnel_id: p.tunnel.and_then(|t| t.id).unwrap_or(TUNNEL_NO_ID),
            rule_id: p.rule_id,
            first_ns: now_ns,
            last_ns: now_ns,
            dedup_removed: u64::from(p.duplicate),
            ..FlowEntry::FREE
        };
        if src_is_a {
            e.ab.add(len, flags);
        } else {
            e.ba.add(len, flags);
        }
        ways[i] = e;
        self.active += 1;
        stats.created.add(1);
        stats.packets.add(1);
        stats.active.set(self.active);
        true
    }

    /// Looks at the next `scan_per_tick` entries and hands every one that
    /// is due to `out` (FIN/RST seen, idle or active timeout), freeing it.
    /// `out` returns false when it could not take the record (a full
    /// ring): counted, and the entry is freed all the same.
    pub fn expire(
        &mut self,
        now_ns: u64,
        stats: &MeterStats,
        out: &mut impl FnMut(Expired) -> bool,
    ) {
        let n = self.cfg.entries;
        let (idle, active) = (self.cfg.idle_ns, self.cfg.active_ns);
        let start = self.cursor;
        let count = self.cfg.scan_per_tick.min(n);
        self.cursor = (start + count) % n;
        let entries = self.table.entries();
        let mut freed = 0;
        for k in 0..count {
            let e = &mut entries[(start + k) % n];
            if e.is_free() {
                continue;
            }
            let reason = if e.ended {
                EndReason::EndOfFlow
            } else if now_ns.saturating_sub(e.last_ns) >= idle {
                EndReason::IdleTimeout
            } else if now_ns.saturating_sub(e.first_ns) >= active {
                EndReason::ActiveTimeout
            } else {
                continue;
            };
            let counter = match reason {
                EndReason::EndOfFlow => &stats.expired_end,
                EndReason::IdleTimeout => &stats.expired_idle,
                _ => &stats.expired_active,
            };
            counter.add(1);
            if !out(Expired { entry: *e, reason }) {
                stats.ring_full.add(1);
            }
            *e = FlowEntry::FREE;
            freed += 1;
        }
        self.active -= freed;
        stats.active.set(self.active);
    }

    /// Hands every flow to `out` as a forced end and empties the table
    /// (shutdown, metering turned off).
    pub fn flush(&mut self, stats: &MeterStats, out: &mut impl FnMut(Expired) -> bool) {
        for e in self.table.entries().iter_mut() {
            if e.is_free() {
                continue;
            }
            stats.expired_forced.add(1);
            if !out(Expired {
                entry: *e,
                reason: EndReason::ForcedEnd,
            }) {
                stats.ring_full.add(1);
            }
            *e = FlowEntry::FREE;
        }
        self.active = 0;
        stats.active.set(0);
    }
}

fn check(cfg: &MeterConfig) -> Result<(), MeterError> {
    let n = cfg.entries;
    if !n.is_power_of_two() || !(MIN_ENTRIES..=MAX_ENTRIES).contains(&n) {
        return Err(MeterError::BadEntries {
            got: n,
            min: MIN_ENTRIES,
            max: MAX_ENTRIES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::parse::parse;

    fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8) -> Vec<u8> {
        let mut f = Vec::new();
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, 1, 1000);
        let b = match flags {
            0x02 => b.syn(),
            0x01 => b.fin(),
            0x04 => b.rst(),
            _ => b.ack(1),
        };
        b.write(&mut f, &[0; 10]).unwrap();
        f
    }

    fn meta(len: usize) -> PacketMeta {
        PacketMeta {
            len: len as u32,
            rule_id: 3,
            ..PacketMeta::default()
        }
    }

    fn small() -> MeterConfig {
        MeterConfig {
            entries: MIN_ENTRIES,
            active_ns: 1_000,
            idle_ns: 100,
            scan_per_tick: MIN_ENTRIES,
        }
    }

    fn drain(t: &mut FlowTable, now: u64, stats: &MeterStats) -> Vec<Expired> {
        let mut v = Vec::new();
        t.expire(now, stats, &mut |e| {
            v.push(e);
            true
        });
        v
    }

    #[test]
    fn both_directions_make_one_record_with_the_first_sender_as_initiator() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 7).unwrap();
        let c2s = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x02);
        let s2c = tcp([10, 0, 0, 1], 80, [10, 0, 0, 9], 5000, 0x10);
        for (i, f) in [&c2s, &s2c, &s2c].into_iter().enumerate() {
            assert!(t.observe(&parse(f), &meta(f.len()), 10 + i as u64, &stats));
        }
        assert_eq!(t.active(), 1);
        assert!(drain(&mut t, 50, &stats).is_empty());
        let out = drain(&mut t, 200, &stats);
        assert_eq!(out.len(), 1);
        let r = out[0].entry.record(out[0].reason, vec![1]);
        assert_eq!(r.key.initiator.to_string(), "10.0.0.9");
        assert_eq!((r.key.initiator_port, r.key.responder_port), (5000, 80));
        assert_eq!(r.forward.packets, 1);
        assert_eq!(r.forward.tcp_flags, 0x02);
        assert_eq!(r.reverse.packets, 2);
        assert_eq!(r.reverse.bytes, 2 * s2c.len() as u64);
        assert_eq!(r.end_reason, EndReason::IdleTimeout);
        assert_eq!(r.rule_id, Some(3));
        assert_eq!(stats.expired_idle.get(), 1);
        assert_eq!(t.active(), 0);
    }

    #[test]
    fn fin_or_rst_ends_a_flow_at_the_next_scan_and_active_timeout_splits() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 1).unwrap();
        let fin = tcp([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, 0x01);
        t.observe(&parse(&fin), &meta(fin.len()), 0, &stats);
        let out = drain(&mut t, 1, &stats);
        assert_eq!(out[0].reason, EndReason::EndOfFlow);
        let ack = tcp([10, 0, 0, 1], 3, [10, 0, 0, 2], 4, 0x10);
        for now in (0..1_100).step_by(50) {
            t.observe(&parse(&ack), &meta(ack.len()), now, &stats);
        }
        let out = drain(&mut t, 1_100, &stats);
        assert_eq!(out[0].reason, EndReason::ActiveTimeout);
        assert_eq!(
            out[0].entry.record(out[0].reason, vec![]).forward.packets,
            22
        );
    }

    #[test]
    fn a_full_bucket_is_a_miss_and_the_flush_empties_the_table() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 1).unwrap();
        let mut missed = 0;
        for port in 0..4 * MIN_ENTRIES as u16 {
            let f = tcp([10, 0, 0, 1], port, [10, 0, 0, 2], 80, 0x10);
            missed += u64::from(!t.observe(&parse(&f), &meta(f.len()), 0, &stats));
        }
        assert!(missed > 0);
        assert_eq!(stats.misses.get(), missed);
        assert_eq!(t.active() + missed, 4 * MIN_ENTRIES as u64);
        let mut flushed = 0;
        t.flush(&stats, &mut |e| {
            assert_eq!(e.reason, EndReason::ForcedEnd);
            flushed += 1;
            true
        });
        assert_eq!(flushed + missed, 4 * MIN_ENTRIES as u64);
        assert_eq!(t.active(), 0);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let cfg = MeterConfig {
            entries: 1000,
            ..MeterConfig::default()
        };
        assert!(matches!(
            FlowTable::new(cfg, 0),
            Err(MeterError::BadEntries { .. })
        ));
    }
}
