//! A worker's flow table: bidirectional flows, updated per packet from what
//! the worker already parsed, expired by an incremental scan at the drain
//! tick (bounded work per tick).
//!
//! Set-associative, like dedup's table: a bucket of [`WAYS`] entries picked
//! by a hash both directions share ([`FlowTable::hash`]), so one bucket
//! holds both. A packet whose bucket is full is not metered (`misses`); it
//! is forwarded all the same. The per-packet work is the hash, the probe
//! and a few adds, in one pass over the burst: no record is built, the
//! shared counters are added once per burst ([`Tally`]), and the fields
//! only a flow's first packet sets are asked for only then. Memory is
//! fixed at start: on DPDK hugepages under EAL, on the heap otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::runtime::counters::Counter;
use crate::stage::encap::{flow_end, mix_ends};
use crate::stage::parse::Layers;
use crate::stage::Direction;

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
    /// The expiry scan goes over the whole table once per this long: each
    /// drain tick looks at the share of the entries the time since the
    /// last one is due (at least one), so a large table is not read from
    /// memory every few milliseconds for timeouts of seconds.
    pub sweep_ns: u64,
    /// Most entries the expiry scan looks at per drain tick.
    pub scan_per_tick: usize,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            entries: 1 << 16,
            active_ns: 60_000_000_000,
            idle_ns: 15_000_000_000,
            sweep_ns: 1_000_000_000,
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

/// A table entry: one flow. A packet finds it by the flow's keyed hash
/// (`tag`, the same both ways) and the end it came from: the initiator's
/// (the first packet's source) counts forward, the other end reverse. The
/// full key is kept for the record only.
///
/// Two cache lines: the first holds everything a packet reads and writes,
/// a copy's count included, so a packet dirties one line; the second what
/// only the flow's first packet writes and its export reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct FlowEntry {
    /// [`FlowTable::hash`] with bit 0 set; 0 marks a free entry.
    tag: u64,
    /// The initiator's (address, port) folded as the hash folds them.
    initiator_end: u64,
    /// Packets and bytes initiator → responder (`[0]`) and back (`[1]`).
    packets: [u64; 2],
    bytes: [u64; 2],
    last_ns: u64,
    /// Copies dedup removed (saturating: 2^32 copies in one record take
    /// hours at line rate, longer than any active timeout).
    dedup_removed: u32,
    /// Union of the TCP flags per direction.
    tcp_flags: [u8; 2],
    direction: u8,
    tunnel_kind: u8,
    // Second line.
    first_ns: u64,
    /// Initiator port, responder port, protocol and IP version ([`key_of`]).
    key: u64,
    /// Initiator and responder addresses (IPv4 in the low 32 bits).
    src: u128,
    dst: u128,
    rule_id: u32,
    tunnel_id: u32,
    /// Outer VLAN of the first packet, `NO_VLAN` when untagged.
    vlan: u16,
    input_port: u16,
}

// A packet's writes stay in the entry's first line.
const _: () = assert!(std::mem::offset_of!(FlowEntry, first_ns) == 64);
const _: () = assert!(std::mem::size_of::<FlowEntry>() == 128);

/// Bytes of one table entry (for the memory a config needs).
pub const ENTRY_BYTES: usize = std::mem::size_of::<FlowEntry>();
/// Bytes of one record in a worker's export ring.
pub const EXPIRED_BYTES: usize = std::mem::size_of::<Expired>();

const NO_VLAN: u16 = u16::MAX;
const TUNNEL_NONE: u8 = 0;
const TUNNEL_NO_ID: u32 = u32::MAX;

/// A packet's flow key in its own orientation: source port, destination
/// port, protocol and IP version (never 0 for IP).
#[inline(always)]
fn key_of(l: &Layers) -> u64 {
    u64::from(l.src_port) << 48
        | u64::from(l.dst_port) << 32
        | u64::from(l.l4_proto) << 8
        | u64::from(l.ip_version)
}

impl FlowEntry {
    const FREE: FlowEntry = FlowEntry {
        tag: 0,
        initiator_end: 0,
        packets: [0; 2],
        bytes: [0; 2],
        last_ns: 0,
        tcp_flags: [0; 2],
        direction: 0,
        tunnel_kind: TUNNEL_NONE,
        vlan: NO_VLAN,
        input_port: 0,
        dedup_removed: 0,
        first_ns: 0,
        src: 0,
        dst: 0,
        key: 0,
        rule_id: u32::MAX,
        tunnel_id: TUNNEL_NO_ID,
    };

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.tag == 0
    }

    /// The rule that matched the flow's first packet (`u32::MAX`: default).
    pub fn rule_id(&self) -> u32 {
        self.rule_id
    }

    /// FIN or RST seen in either direction: the scan exports it.
    fn ended(&self) -> bool {
        (self.tcp_flags[0] | self.tcp_flags[1]) & (TCP_FIN | TCP_RST) != 0
    }

    fn addr(&self, a: u128) -> IpAddr {
        if self.key & 0xff == 6 {
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::from(a as u32))
        }
    }

    fn counts(&self, dir: usize) -> DirectionCounts {
        DirectionCounts {
            packets: self.packets[dir],
            bytes: self.bytes[dir],
            tcp_flags: self.tcp_flags[dir],
        }
    }

    /// The record of this entry, with the rule's destinations.
    pub fn record(&self, reason: EndReason, destinations: Vec<u16>) -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                initiator: self.addr(self.src),
                responder: self.addr(self.dst),
                initiator_port: (self.key >> 48) as u16,
                responder_port: (self.key >> 32) as u16,
                protocol: (self.key >> 8) as u8,
            },
            forward: self.counts(0),
            reverse: self.counts(1),
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
            dedup_removed: u64::from(self.dedup_removed),
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
    /// Dedup found it a copy.
    pub duplicate: bool,
    /// What only a flow's first packet records.
    pub first: FirstPacket,
}

/// What a flow's first packet records besides its key and counts; looked
/// at only when the flow is created.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstPacket {
    pub port: u16,
    pub direction: Direction,
    /// The matched rule's id (`u32::MAX` for the default action).
    pub rule_id: u32,
    /// The tunnel it was decapsulated from.
    pub tunnel: Option<FlowTunnel>,
}

/// One packet as the table counts it: its layers, frame length and
/// whether dedup found it a copy.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub layers: &'a Layers,
    pub len: u32,
    pub duplicate: bool,
}

/// What a burst did to the table, added to the shared counters once per
/// burst rather than once per packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Packets counted into a flow.
    pub packets: u64,
    pub created: u64,
    /// Packets not metered: their bucket was full.
    pub misses: u64,
}

/// The ways of one hash.
type Bucket = [FlowEntry; WAYS];

enum Storage {
    Heap(Vec<Bucket>),
    #[cfg(feature = "dpdk")]
    Huge(crate::dpdk::HugeSlice<Bucket>),
}

impl Storage {
    #[inline(always)]
    fn buckets(&mut self) -> &mut [Bucket] {
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

/// Each end of a packet, (address, port) folded into 64 bits
/// ([`flow_end`]), ports included even in a first fragment: the flow is
/// its five-tuple.
#[inline(always)]
pub fn ends(l: &Layers) -> (u64, u64) {
    (
        flow_end(l.src_addr, l.src_port),
        flow_end(l.dst_addr, l.dst_port),
    )
}

/// One worker's flow table.
pub struct FlowTable {
    table: Storage,
    /// Buckets - 1.
    mask: usize,
    seed: u64,
    cfg: MeterConfig,
    /// Next entry the expiry scan looks at, and when it last looked.
    cursor: usize,
    last_scan_ns: u64,
    active: u64,
}

impl FlowTable {
    /// A table on the heap (tests, benches, no EAL).
    pub fn new(cfg: MeterConfig, seed: u64) -> Result<Self, MeterError> {
        check(&cfg)?;
        let mut v = Vec::new();
        let buckets = cfg.entries / WAYS;
        v.try_reserve_exact(buckets)
            .map_err(|_| MeterError::NoMemory {
                bytes: cfg.entries * ENTRY_BYTES,
            })?;
        v.resize(buckets, [FlowEntry::FREE; WAYS]);
        Ok(Self::with(Storage::Heap(v), cfg, seed))
    }

    /// A table on DPDK hugepages when EAL has them, else on the heap.
    #[cfg(feature = "dpdk")]
    pub fn new_on_hugepages(cfg: MeterConfig, seed: u64) -> Result<Self, MeterError> {
        check(&cfg)?;
        let socket = crate::dpdk::SOCKET_ID_ANY;
        let free = [FlowEntry::FREE; WAYS];
        match crate::dpdk::HugeSlice::new(cfg.entries / WAYS, free, socket) {
            Some(h) => Ok(Self::with(Storage::Huge(h), cfg, seed)),
            None => Self::new(cfg, seed),
        }
    }

    fn with(table: Storage, cfg: MeterConfig, seed: u64) -> Self {
        FlowTable {
            table,
            mask: cfg.entries / WAYS - 1,
            seed,
            cfg,
            cursor: 0,
            last_scan_ns: 0,
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

    /// The packet's flow hash, the same for both directions: the data
    /// plane's one flow hash ([`mix_ends`], which encap's UDP source port
    /// also comes from) of its two ends ([`ends`]), so the worker computes
    /// it once for both.
    #[inline(always)]
    pub fn hash(&self, l: &Layers) -> u64 {
        let (ea, eb) = ends(l);
        mix_ends(ea, eb, l.l4_proto)
    }

    /// The bucket of a hash: its bits, keyed by the table's seed,
    /// multiplied once more and the middle of the product taken. The hash
    /// alone is linear in an end that varies in few bits (a client's
    /// successive ports: its product's halves move by multiples of the
    /// other end), which would crowd such flows into a few buckets; the
    /// seed keeps which flows share a bucket unknown outside the worker.
    #[inline(always)]
    fn bucket_of(&self, hash: u64) -> usize {
        ((hash ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    /// Counts one packet into its flow. Frames without IP are not metered.
    /// Returns false when the flow's bucket was full (a miss).
    pub fn observe(&mut self, l: &Layers, p: &PacketMeta, now_ns: u64, stats: &MeterStats) -> bool {
        let one = Packet {
            layers: l,
            len: p.len,
            duplicate: p.duplicate,
        };
        let t = self.observe_burst(1, |_| Some(one), |_| p.first, now_ns);
        self.publish(&t, stats);
        t.misses == 0
    }

    /// Adds a burst's tally to the shared counters.
    #[inline]
    pub fn publish(&self, t: &Tally, stats: &MeterStats) {
        stats.packets.add(t.packets);
        if t.created != 0 {
            stats.created.add(t.created);
            stats.active.set(self.active);
        }
        if t.misses != 0 {
            stats.misses.add(t.misses);
        }
    }

    /// Counts the packets `packet(i)` gives for `i` in `0..n` (none: not
    /// metered) into their flows: [`FlowTable::count`] each, then
    /// [`FlowTable::create`] for those whose flow is new, with `first(i)`.
    /// The worker's hook does the same over its burst's arrays.
    pub fn observe_burst<'a>(
        &mut self,
        n: usize,
        packet: impl Fn(usize) -> Option<Packet<'a>>,
        first: impl Fn(usize) -> FirstPacket,
        now_ns: u64,
    ) -> Tally {
        let mut t = Tally::default();
        let mut new = Vec::new();
        for i in 0..n {
            if let Some(p) = packet(i) {
                if !self.count(p, now_ns, &mut t) {
                    new.push(i);
                }
            }
        }
        for i in new {
            if let Some(p) = packet(i) {
                self.create(p, now_ns, first(i), &mut t);
            }
        }
        t
    }

    /// Counts a packet into its flow if the table has it: the hash, one
    /// bucket's ways probed by tag and end, a few adds. False when its
    /// flow is new: the caller creates it ([`FlowTable::create`]) once its
    /// burst's pass is over, so the pass makes no call and keeps its
    /// registers. A frame without IP is not metered (true, not counted).
    #[inline(always)]
    pub fn count(&mut self, p: Packet<'_>, now_ns: u64, t: &mut Tally) -> bool {
        let l = p.layers;
        if l.ip_version == 0 {
            return true;
        }
        let (ea, eb) = ends(l);
        self.count_hashed(p, (ea, eb), mix_ends(ea, eb, l.l4_proto), now_ns, t)
    }

    /// [`FlowTable::count`] of an IP packet whose [`ends`] and
    /// [`FlowTable::hash`] the caller has computed already.
    #[inline(always)]
    pub fn count_hashed(
        &mut self,
        p: Packet<'_>,
        (ea, eb): (u64, u64),
        hash: u64,
        now_ns: u64,
        t: &mut Tally,
    ) -> bool {
        let l = p.layers;
        let tag = hash | 1;
        let b = self.bucket_of(hash);
        let Some(ways) = self.table.buckets().get_mut(b) else {
            return true;
        };
        for e in ways {
            if e.tag != tag {
                continue;
            }
            let (forward, reverse) = (e.initiator_end == ea, e.initiator_end == eb);
            if !(forward | reverse) {
                continue;
            }
            let dir = usize::from(!forward);
            e.packets[dir] += 1;
            e.bytes[dir] += u64::from(p.len);
            e.tcp_flags[dir] |= l.tcp_flags;
            e.last_ns = now_ns;
            // Without a branch: copies come unpredictably.
            e.dedup_removed = e.dedup_removed.saturating_add(u32::from(p.duplicate));
            t.packets += 1;
            return true;
        }
        false
    }

    /// Counts a packet [`FlowTable::count`] did not find into a new flow
    /// in a free way of its bucket, or as a miss when there is none (an
    /// earlier packet of the burst may have made its flow meanwhile).
    #[cold]
    #[inline(never)]
    pub fn create(&mut self, p: Packet<'_>, now_ns: u64, f: FirstPacket, t: &mut Tally) {
        if self.count(p, now_ns, t) {
            return;
        }
        let l = p.layers;
        let (ea, eb) = ends(l);
        let hash = mix_ends(ea, eb, l.l4_proto);
        let b = self.bucket_of(hash);
        let Some(e) = self
            .table
            .buckets()
            .get_mut(b)
            .and_then(|ways| ways.iter_mut().find(|e| e.is_free()))
        else {
            t.misses += 1;
            return;
        };
        *e = FlowEntry {
            tag: hash | 1,
            initiator_end: ea,
            packets: [1, 0],
            bytes: [u64::from(p.len), 0],
            last_ns: now_ns,
            tcp_flags: [l.tcp_flags, 0],
            direction: u8::from(f.direction == Direction::Egress),
            tunnel_kind: f.tunnel.map_or(TUNNEL_NONE, |t| t.kind.code()),
            vlan: l.outer_vlan.unwrap_or(NO_VLAN),
            input_port: f.port,
            dedup_removed: u32::from(p.duplicate),
            first_ns: now_ns,
            src: l.src_addr,
            dst: l.dst_addr,
            key: key_of(l),
            rule_id: f.rule_id,
            tunnel_id: f.tunnel.and_then(|t| t.id).unwrap_or(TUNNEL_NO_ID),
        };
        self.active += 1;
        t.packets += 1;
        t.created += 1;
    }

    /// Looks at the next entries (the share of `sweep_ns` since the last
    /// call, at most `scan_per_tick`) and hands every one that is due to
    /// `out` (FIN/RST seen, idle or active timeout), freeing it.
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
        let elapsed = now_ns.saturating_sub(self.last_scan_ns);
        self.last_scan_ns = now_ns;
        let due = u128::from(elapsed) * n as u128 / u128::from(self.cfg.sweep_ns.max(1));
        let count = usize::try_from(due)
            .unwrap_or(usize::MAX)
            .clamp(1, self.cfg.scan_per_tick.max(1))
            .min(n);
        self.cursor = (start + count) % n;
        let entries = self.table.buckets().as_flattened_mut();
        let mut freed = 0;
        for k in 0..count {
            let e = &mut entries[(start + k) % n];
            if e.is_free() {
                continue;
            }
            let reason = if e.ended() {
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
        for e in self.table.buckets().as_flattened_mut() {
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
            duplicate: false,
            first: FirstPacket {
                rule_id: 3,
                ..FirstPacket::default()
            },
        }
    }

    fn small() -> MeterConfig {
        MeterConfig {
            entries: MIN_ENTRIES,
            active_ns: 1_000,
            idle_ns: 100,
            sweep_ns: 1,
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
    fn an_ipv6_flow_keeps_its_first_packets_fields_and_counts_copies() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 3).unwrap();
        let (a, b) = ([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
            b[15] = 2;
            b
        });
        let udp = |src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16| {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
                .single_vlan(7.try_into().unwrap())
                .ipv6(src, dst, 64)
                .udp(sp, dp)
                .write(&mut f, &[0; 20])
                .unwrap();
            f
        };
        let (out, back) = (udp(a, 53, b, 9000), udp(b, 9000, a, 53));
        let (lo, lb) = (parse(&out), parse(&back));
        assert_eq!(t.hash(&lo), t.hash(&lb));
        // The table's hash is encap's: the worker computes it once for both.
        let encap_hash = crate::stage::encap::flow_hash(Some(&lo), &out);
        assert_eq!(crate::stage::encap::fold32(t.hash(&lo)), encap_hash);
        let first = PacketMeta {
            len: out.len() as u32,
            duplicate: false,
            first: FirstPacket {
                port: 2,
                direction: Direction::Egress,
                rule_id: 9,
                tunnel: Some(FlowTunnel {
                    kind: TunnelType::Vxlan,
                    id: Some(100),
                }),
            },
        };
        assert!(t.observe(&lo, &first, 5, &stats));
        // Later packets' own fields do not change the record.
        let copy = PacketMeta {
            len: back.len() as u32,
            duplicate: true,
            first: FirstPacket::default(),
        };
        assert!(t.observe(&lb, &copy, 6, &stats));
        assert!(t.observe(&lb, &copy, 7, &stats));
        assert_eq!(
            (t.active(), stats.packets.get(), stats.created.get()),
            (1, 3, 1)
        );
        let mut v = Vec::new();
        t.flush(&stats, &mut |e| {
            v.push(e);
            true
        });
        let r = v[0].entry.record(v[0].reason, vec![]);
        assert_eq!(r.key.initiator.to_string(), "2001:db8::1");
        assert_eq!(
            (r.key.initiator_port, r.key.responder_port, r.key.protocol),
            (53, 9000, 17)
        );
        assert_eq!((r.forward.packets, r.reverse.packets), (1, 2));
        assert_eq!(r.reverse.bytes, 2 * back.len() as u64);
        assert_eq!((r.start_ms, r.end_ms), (0, 0));
        assert_eq!(r.vlan, Some(7));
        assert_eq!(r.input_port, Some(2));
        assert_eq!(r.direction, Some(FlowDirection::Egress));
        assert_eq!(r.rule_id, Some(9));
        assert_eq!(r.dedup_removed, 2);
        assert_eq!(
            r.tunnel,
            Some(FlowTunnel {
                kind: TunnelType::Vxlan,
                id: Some(100)
            })
        );
        assert_eq!(r.end_reason, EndReason::ForcedEnd);
    }

    #[test]
    fn a_new_flow_seen_several_times_in_one_burst_is_one_flow_from_its_first_packet() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 5).unwrap();
        let s2c = tcp([10, 0, 0, 1], 80, [10, 0, 0, 9], 5000, 0x02);
        let c2s = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x10);
        let burst = [parse(&s2c), parse(&c2s), parse(&c2s)];
        let packet = |i: usize| {
            Some(Packet {
                layers: &burst[i],
                len: 60,
                duplicate: i == 2,
            })
        };
        let tally = t.observe_burst(
            3,
            packet,
            |i| FirstPacket {
                rule_id: i as u32,
                ..FirstPacket::default()
            },
            1,
        );
        assert_eq!(
            tally,
            Tally {
                packets: 3,
                created: 1,
                misses: 0
            }
        );
        let mut v = Vec::new();
        t.flush(&stats, &mut |e| {
            v.push(e);
            true
        });
        assert_eq!(v.len(), 1);
        let r = v[0].entry.record(v[0].reason, vec![]);
        assert_eq!(
            (r.key.initiator_port, r.forward.packets, r.reverse.packets),
            (80, 1, 2)
        );
        assert_eq!((r.forward.tcp_flags, r.reverse.tcp_flags), (0x02, 0x10));
        assert_eq!((r.rule_id, r.dedup_removed), (Some(0), 1));
    }

    #[test]
    fn each_scan_looks_at_the_share_of_the_sweep_that_is_due() {
        let stats = MeterStats::default();
        let cfg = MeterConfig {
            sweep_ns: 1_000_000,
            ..small()
        };
        let mut t = FlowTable::new(cfg, 9).unwrap();
        t.expire(1_000_000, &stats, &mut |_| true);
        for port in 0..64 {
            let f = tcp([10, 0, 0, 1], port, [10, 0, 0, 2], 80, 0x01);
            assert!(t.observe(&parse(&f), &meta(f.len()), 0, &stats));
        }
        // A tenth of the sweep: about a tenth of the entries looked at.
        t.expire(1_100_000, &stats, &mut |_| true);
        let first = stats.expired_end.get();
        assert!(first > 0 && first < 40, "{first}");
        // The rest of the sweep: every entry looked at once.
        t.expire(2_100_000, &stats, &mut |_| true);
        assert_eq!(stats.expired_end.get(), 64);
        assert_eq!(t.active(), 0);
    }

    #[test]
    fn a_clients_successive_ports_spread_over_the_buckets() {
        // 64 flows from one client's successive ports to one server, in
        // 256 buckets: with a hash that spreads them, no bucket fills.
        for seed in 0..32 {
            let stats = MeterStats::default();
            let mut t = FlowTable::new(small(), seed).unwrap();
            for port in 40_000..40_064 {
                let f = tcp([10, 0, 0, 1], port, [10, 0, 0, 2], 443, 0x10);
                assert!(
                    t.observe(&parse(&f), &meta(f.len()), 0, &stats),
                    "seed {seed}"
                );
            }
        }
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
