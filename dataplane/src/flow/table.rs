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
//!
//! Most packets skip the hash and the probe: the classifier's flow cache
//! keeps, in the slot of each key, the [`Hint`] of the key's flow (its
//! entry, direction and the entry's generation), and a packet whose hint
//! is still its entry's counts there ([`FlowTable::count_hinted`]).

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

/// A table entry: one flow. A packet finds it by its flow cache slot's
/// [`Hint`] while that holds (the entry's generation), else by the
/// flow's keyed hash (`tag`, the same both ways) and the end it came
/// from: the initiator's (the first packet's source) counts forward, the
/// other end reverse. The full key is kept for the record only.
///
/// Two cache lines: the first holds everything a hinted packet reads and
/// writes, a copy's count included, so it touches one line; the second
/// what only the flow's first packet writes, the probe's end (read only
/// for a way whose tag matched) and what the export reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct FlowEntry {
    /// [`FlowTable::hash`] with bit 0 set; 0 marks a free entry.
    tag: u64,
    /// Packets and bytes initiator → responder (`[0]`) and back (`[1]`).
    packets: [u64; 2],
    bytes: [u64; 2],
    last_ns: u64,
    /// Copies dedup removed (saturating: 2^32 copies in one record take
    /// ~5 minutes of 64-byte frames at 10 GbE line rate, ~29 s at
    /// 100 GbE; the default 60 s active timeout ends a record first at
    /// 10 GbE, and a longer one stops counting at `u32::MAX`).
    dedup_removed: u32,
    /// Bumped whenever the entry is freed, so that a [`Hint`] made while
    /// it held an earlier flow no longer matches it. Starts at 1 (a hint
    /// of generation 0 is [`NO_HINT`]); an entry that reaches
    /// [`RETIRED`] is never used again, so a generation never repeats.
    generation: u32,
    /// Union of the TCP flags per direction.
    tcp_flags: [u8; 2],
    direction: u8,
    tunnel_kind: u8,
    /// Outer VLAN of the first packet, `NO_VLAN` when untagged.
    vlan: u16,
    input_port: u16,
    // Second line.
    first_ns: u64,
    /// Initiator port, responder port, protocol and IP version ([`key_of`]).
    key: u64,
    /// Initiator and responder addresses (IPv4 in the low 32 bits).
    src: u128,
    dst: u128,
    /// The initiator's (address, port) folded as the hash folds them.
    initiator_end: u64,
    rule_id: u32,
    tunnel_id: u32,
}

// A hinted packet's reads and writes stay in the entry's first line.
const _: () = assert!(std::mem::offset_of!(FlowEntry, first_ns) == 64);
const _: () = assert!(std::mem::size_of::<FlowEntry>() == 128);

/// Bytes of one table entry (for the memory a config needs).
pub const ENTRY_BYTES: usize = std::mem::size_of::<FlowEntry>();
/// Bytes of one record in a worker's export ring.
pub const EXPIRED_BYTES: usize = std::mem::size_of::<Expired>();

/// Where a packet's flow is in its worker's table, as the flow cache keeps
/// it for the packet's classifier key: the entry's index (bits 0-30), the
/// direction the key counts in (bit 31) and the entry's generation when
/// the hint was made (bits 32-63). Only made for a classifier whose key
/// holds the whole five-tuple, so that a key the cache matched is one
/// flow in one direction: a hint whose generation is still the entry's
/// is that flow's, and the packet counts there without hash or probe.
pub type Hint = u64;
/// No hint: never an entry's (generations start at 1).
pub const NO_HINT: Hint = 0;
/// An entry's generation after this many frees: never used again.
const RETIRED: u32 = u32::MAX;

#[inline(always)]
fn hint_of(index: usize, dir: usize, generation: u32) -> Hint {
    u64::from(generation) << 32 | (dir as u64) << 31 | index as u64
}

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
        generation: 1,
    };

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.tag == 0
    }

    /// Free for a new flow: free and not retired.
    #[inline(always)]
    fn is_usable(&self) -> bool {
        self.is_free() && self.generation != RETIRED
    }

    /// Counts a packet in direction `dir` (0: from the initiator). All in
    /// the entry's first line.
    #[inline(always)]
    fn add(&mut self, p: Packet<'_>, dir: usize, now_ns: u64) {
        self.packets[dir] += 1;
        self.bytes[dir] += u64::from(p.len);
        self.tcp_flags[dir] |= p.layers.tcp_flags;
        self.last_ns = now_ns;
        // Without a branch: copies come unpredictably.
        self.dedup_removed = self.dedup_removed.saturating_add(u32::from(p.duplicate));
    }

    /// Frees the entry: every hint made while it held its flow goes stale.
    fn release(&mut self) {
        let generation = self.generation.saturating_add(1);
        *self = FlowEntry::FREE;
        self.generation = generation;
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
                if self.count(p, now_ns, &mut t).is_none() {
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
    /// bucket's ways probed by tag and end, a few adds; returns the flow's
    /// [`Hint`] for the packet. None when its flow is new: the caller
    /// creates it ([`FlowTable::create`]) once its burst's pass is over,
    /// so the pass makes no call and keeps its registers. A frame without
    /// IP is not metered (`Some(NO_HINT)`, not counted).
    #[inline(always)]
    pub fn count(&mut self, p: Packet<'_>, now_ns: u64, t: &mut Tally) -> Option<Hint> {
        let l = p.layers;
        if l.ip_version == 0 {
            return Some(NO_HINT);
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
    ) -> Option<Hint> {
        let tag = hash | 1;
        let b = self.bucket_of(hash);
        let ways = self.table.buckets().get_mut(b)?;
        for (w, e) in ways.iter_mut().enumerate() {
            if e.tag != tag {
                continue;
            }
            let (forward, reverse) = (e.initiator_end == ea, e.initiator_end == eb);
            if !(forward | reverse) {
                continue;
            }
            let dir = usize::from(!forward);
            e.add(p, dir, now_ns);
            t.packets += 1;
            return Some(hint_of(b * WAYS + w, dir, e.generation));
        }
        None
    }

    /// Starts loading the first line of every entry `hints` name, for a
    /// burst whose hints come well before its pass: their misses overlap
    /// the work in between instead of stalling the pass.
    #[cfg(feature = "dpdk")]
    #[inline]
    pub fn prefetch_hinted(&mut self, hints: &[Hint]) {
        let entries = self.table.buckets().as_flattened();
        for &hint in hints {
            if let Some(e) = entries.get((hint & 0x7fff_ffff) as usize) {
                crate::dpdk::prefetch(e);
            }
        }
    }

    /// Counts a packet into the entry its flow cache slot's `hint` names,
    /// if the hint still holds (the entry has not been freed since);
    /// returns the flow's hash folded as encap takes it ([`fold32`] of
    /// the tag, whose high half is the hash's). The caller makes sure the
    /// hint is for the packet's flow: the flow cache matched its key, and
    /// the key holds the whole five-tuple.
    ///
    /// [`fold32`]: crate::stage::encap::fold32
    #[inline(always)]
    pub fn count_hinted(&mut self, p: Packet<'_>, hint: Hint, now_ns: u64) -> Option<u32> {
        let entries = self.table.buckets().as_flattened_mut();
        let e = entries.get_mut((hint & 0x7fff_ffff) as usize)?;
        if e.generation != (hint >> 32) as u32 {
            return None;
        }
        e.add(p, (hint >> 31) as usize & 1, now_ns);
        Some((e.tag >> 32) as u32)
    }

    /// Counts a packet [`FlowTable::count`] did not find into a new flow
    /// in a free way of its bucket, or as a miss when there is none (an
    /// earlier packet of the burst may have made its flow meanwhile).
    /// Returns the flow's hint for the packet ([`NO_HINT`] for a miss).
    #[cold]
    #[inline(never)]
    pub fn create(&mut self, p: Packet<'_>, now_ns: u64, f: FirstPacket, t: &mut Tally) -> Hint {
        if let Some(hint) = self.count(p, now_ns, t) {
            return hint;
        }
        let l = p.layers;
        let (ea, eb) = ends(l);
        let hash = mix_ends(ea, eb, l.l4_proto);
        let b = self.bucket_of(hash);
        let Some((w, e)) = self
            .table
            .buckets()
            .get_mut(b)
            .and_then(|ways| ways.iter_mut().enumerate().find(|(_, e)| e.is_usable()))
        else {
            t.misses += 1;
            return NO_HINT;
        };
        let generation = e.generation;
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
            generation,
        };
        self.active += 1;
        t.packets += 1;
        t.created += 1;
        hint_of(b * WAYS + w, 0, generation)
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
            e.release();
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
            e.release();
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

    /// Every flow of `t`, flushed out.
    fn flushed(t: &mut FlowTable, stats: &MeterStats) -> Vec<Expired> {
        let mut v = Vec::new();
        t.flush(stats, &mut |e| {
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
        let out = flushed(&mut t, &stats);
        assert!(out.iter().all(|e| e.reason == EndReason::ForcedEnd));
        assert_eq!(out.len() as u64 + missed, 4 * MIN_ENTRIES as u64);
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
        let v = flushed(&mut t, &stats);
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
        let v = flushed(&mut t, &stats);
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

    fn packet(l: &Layers) -> Packet<'_> {
        Packet {
            layers: l,
            len: 60,
            duplicate: false,
        }
    }

    /// Creates `l`'s flow and returns its hint for `l`'s direction.
    fn make(t: &mut FlowTable, l: &Layers, now: u64) -> Hint {
        let mut tally = Tally::default();
        let hint = t.create(packet(l), now, FirstPacket::default(), &mut tally);
        assert_ne!(hint, NO_HINT);
        hint
    }

    #[test]
    fn a_hint_counts_into_its_flow_in_its_direction_and_gives_encaps_hash() {
        let mut t = FlowTable::new(small(), 11).unwrap();
        let c2s = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x02);
        let s2c = tcp([10, 0, 0, 1], 80, [10, 0, 0, 9], 5000, 0x10);
        let (lc, ls) = (parse(&c2s), parse(&s2c));
        let fwd = make(&mut t, &lc, 1);
        let mut tally = Tally::default();
        // The other direction's key finds the flow by its probe; its hint
        // then counts there too.
        let rev = t.count(packet(&ls), 2, &mut tally).unwrap();
        assert_ne!(rev, fwd);
        for (hint, now) in [(fwd, 3), (rev, 4), (rev, 5)] {
            let hash = t.count_hinted(packet(&lc), hint, now);
            assert_eq!(
                hash,
                Some(crate::stage::encap::flow_hash(Some(&lc), &c2s)),
                "encap's hash"
            );
        }
        let stats = MeterStats::default();
        let v = flushed(&mut t, &stats);
        let r = v[0].entry.record(v[0].reason, vec![]);
        assert_eq!((r.forward.packets, r.reverse.packets), (2, 3));
        assert_eq!(r.end_ms, 0);
        assert_eq!(v[0].entry.last_ns, 5);
    }

    #[test]
    fn a_hint_goes_stale_when_its_entry_expires_or_is_flushed() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 12).unwrap();
        let f = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x10);
        let l = parse(&f);
        // Idle expiry.
        let hint = make(&mut t, &l, 0);
        assert_eq!(drain(&mut t, 1_000_000, &stats).len(), 1);
        assert_eq!(t.count_hinted(packet(&l), hint, 1_000_001), None);
        // The same flow again, in the same entry: the old hint stays stale.
        let again = make(&mut t, &l, 1_000_002);
        assert_eq!(again & 0x7fff_ffff, hint & 0x7fff_ffff, "same entry");
        assert_ne!(again, hint);
        assert_eq!(t.count_hinted(packet(&l), hint, 1_000_003), None);
        assert!(t.count_hinted(packet(&l), again, 1_000_004).is_some());
        // Flushed.
        t.flush(&stats, &mut |_| true);
        assert_eq!(t.count_hinted(packet(&l), again, 1_000_005), None);
        assert_eq!(t.count_hinted(packet(&l), NO_HINT, 0), None);
    }

    #[test]
    fn a_stale_hint_never_counts_into_the_flow_that_reused_its_entry() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 13).unwrap();
        let a = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x01);
        let la = parse(&a);
        let bucket = t.bucket_of(t.hash(&la));
        // Another flow in the same bucket: it takes the freed entry.
        let b = (1..u16::MAX)
            .map(|p| tcp([10, 0, 0, 7], p, [10, 0, 0, 1], 80, 0x10))
            .find(|f| t.bucket_of(t.hash(&parse(f))) == bucket)
            .unwrap();
        let lb = parse(&b);
        let old = make(&mut t, &la, 0);
        assert_eq!(drain(&mut t, 1, &stats).len(), 1, "FIN: ended");
        let new = make(&mut t, &lb, 2);
        assert_eq!(new & 0x7fff_ffff, old & 0x7fff_ffff, "same entry");
        assert_eq!(t.count_hinted(packet(&la), old, 3), None);
        let v = flushed(&mut t, &stats);
        let r = v[0].entry.record(v[0].reason, vec![]);
        assert_eq!(r.key.initiator.to_string(), "10.0.0.7");
        assert_eq!((r.forward.packets, r.reverse.packets), (1, 0));
    }

    #[test]
    fn an_entry_freed_at_its_last_generation_is_never_used_again() {
        let stats = MeterStats::default();
        let mut t = FlowTable::new(small(), 14).unwrap();
        let f = tcp([10, 0, 0, 9], 5000, [10, 0, 0, 1], 80, 0x10);
        let l = parse(&f);
        let hint = make(&mut t, &l, 0);
        let at = (hint & 0x7fff_ffff) as usize;
        t.table.buckets().as_flattened_mut()[at].generation = RETIRED - 1;
        t.flush(&stats, &mut |_| true);
        assert_eq!(t.table.buckets().as_flattened_mut()[at].generation, RETIRED);
        let next = make(&mut t, &l, 1);
        assert_ne!(next & 0x7fff_ffff, hint & 0x7fff_ffff, "another way");
        t.flush(&stats, &mut |_| true);
        assert_eq!(t.table.buckets().as_flattened_mut()[at].generation, RETIRED);
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
