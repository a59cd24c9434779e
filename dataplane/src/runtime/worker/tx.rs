//! The worker's TX buffers (one lane per uplink, one per tool port) and
//! the accounting of what leaves them.
//!
//! A copy waits here until its buffer fills or the drain tick comes
//! (l2fwd's scheme). Its packet is counted when the copy is sent or dropped: a copy
//! that is its packet's only one (`SOLO`) settles the packet by itself; a
//! packet with several copies has a *fate* slot, resolved when its last copy
//! is sent or dropped — forwarded if any went out, else the first drop
//! reason. Control frames (`NO_FATE`) count nowhere.
//!
//! A packet whose copies all wait in one lane and leave in one TX burst
//! needs no fate slot: a TX burst sends a prefix of the lane, so the
//! packet went out if and only if its first queued copy did. That copy is
//! its *lead* (see [`lead`]) and settles the packet; the others
//! (`FOLLOW`) count on their destination only.

use crossbeam_utils::CachePadded;

use crate::dpdk::{Batch, Mbuf, TxQueue};
use crate::runtime::counters::{DestDrop, Terminal, ToolPortCounters, WorkerStats};

/// Copies the buffer holds before it is sent.
const TX_BUF: usize = 64;
/// Enough for every packet with a copy in the TX buffer, and then some.
const FATES: usize = 256;

/// What the buffer knows of one queued copy.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TxMeta {
    /// Fate slot of the original packet, or [`SOLO`], or [`NO_FATE`].
    pub fate: u16,
    /// The destination's counter slot.
    pub slot: u16,
    pub bytes: u32,
}

/// A control frame: counted nowhere.
pub(super) const NO_FATE: u16 = u16::MAX;
/// The copy is its packet's only one: it settles the packet's fate itself.
pub(super) const SOLO: u16 = u16::MAX - 1;
/// A copy queued behind its packet's lead in the same lane, within the
/// same TX burst: counted on its destination only.
pub(super) const FOLLOW: u16 = SOLO - 1 - DestDrop::ALL.len() as u16;

/// The fate of a packet's lead: its first queued copy, every other copy
/// queued after it in the same lane with no flush in between (see
/// [`LaneTx::make_room`]). Sent, the packet is forwarded; dropped, its
/// terminal is `first_drop`, the first reason another copy was dropped
/// before it was queued, else `dropped_tx_full`. A lead with no such
/// reason is a [`SOLO`] copy.
#[inline(always)]
pub(super) fn lead(first_drop: Option<DestDrop>) -> u16 {
    match first_drop {
        None | Some(DestDrop::TxFull) => SOLO,
        Some(why) => SOLO - 1 - why as u16,
    }
}

/// The terminal of a packet whose lead (or `SOLO` copy) was dropped.
fn lead_dropped(fate: u16) -> Terminal {
    let why = usize::from(SOLO - fate)
        .checked_sub(1)
        .and_then(|i| DestDrop::ALL.get(i))
        .copied()
        .unwrap_or(DestDrop::TxFull);
    why.terminal()
}

/// Whether `fate` is a lead's or a follower's (or `SOLO`): a packet with
/// no fate slot.
#[inline(always)]
fn no_slot(fate: u16) -> bool {
    (FOLLOW..=SOLO).contains(&fate)
}

/// The counter slot of a copy that belongs to no destination (a decap
/// input's frame to its tool port): counted on the port and in its
/// packet's terminal only.
pub(super) const NO_DEST: u16 = u16::MAX;

/// The outcome so far of a packet with several copies.
#[derive(Debug, Clone, Copy, Default)]
struct Fate {
    /// Copies in a TX buffer, plus one while the packet's copies are still
    /// being made: a buffer that fills and is sent half-way through must
    /// not settle the packet before its last copy is queued.
    pending: u16,
    forwarded: bool,
    first_drop: Option<DestDrop>,
}

/// The TX lanes with their per-copy bookkeeping, and the fate slots they
/// share.
pub(super) struct TxBuffer {
    fates: [Fate; FATES],
    next_fate: usize,
    /// One lane per uplink (tunnel destinations), by uplink index.
    uplinks: Vec<Lane>,
    /// One lane per tool port (tool destinations), by tool port index.
    tools: Vec<Lane>,
}

/// One port's TX buffer: its copies are counted on their destination and
/// on the port.
struct Lane {
    tx: Batch<TX_BUF>,
    meta: [TxMeta; TX_BUF],
}

impl Lane {
    fn new() -> Lane {
        Lane {
            tx: Batch::new(),
            meta: [TxMeta::default(); TX_BUF],
        }
    }

    /// Sends the lane: one retry, then what is left is dropped and counted
    /// `dropped_tx_full` (on the destination and the port).
    fn flush(
        &mut self,
        fates: &mut [Fate; FATES],
        q: &mut TxQueue,
        pc: &ToolPortCounters,
        stats: &WorkerStats,
    ) {
        for _attempt in 0..2 {
            if self.tx.is_empty() {
                break;
            }
            let queued = self.tx.len();
            let n = q.tx(&mut self.tx);
            let (packets, bytes) = sent(&self.meta[..n], fates, stats);
            pc.tx_packets.add(packets);
            pc.tx_bytes.add(bytes);
            self.meta.copy_within(n..queued, 0);
        }
        let left = self.tx.len();
        if left == 0 {
            return;
        }
        self.tx.drain().for_each(drop);
        for k in 0..left {
            let meta = self.meta[k];
            if meta.fate != NO_FATE {
                pc.dropped_tx_full.add(1);
            }
            done(fates, meta, false, stats);
        }
    }
}

/// One port's lane with its queue and counters, borrowed for a run of
/// pushes: a hoisted loop looks the lane up once, not once per copy.
pub(super) struct LaneTx<'a> {
    lane: &'a mut Lane,
    fates: &'a mut [Fate; FATES],
    q: &'a mut TxQueue,
    pc: &'a ToolPortCounters,
    stats: &'a WorkerStats,
}

impl LaneTx<'_> {
    /// Sends the lane first unless `n` more copies fit (`n` at most
    /// `TX_BUF`): a packet's copies queued next then leave in one TX burst,
    /// as its lead and followers must.
    #[inline(always)]
    pub fn make_room(&mut self, n: usize) {
        if self.lane.tx.len() + n > TX_BUF {
            self.flush();
        }
    }

    /// Where the next copy queued goes in the lane.
    #[inline(always)]
    pub fn next_at(&self) -> usize {
        self.lane.tx.len()
    }

    /// Sets the fate of the copy queued at `at` since the last
    /// [`LaneTx::make_room`] (a lead whose packet lost a copy after it).
    #[inline]
    pub fn set_fate(&mut self, at: usize, fate: u16) {
        if let Some(m) = self.lane.meta.get_mut(at) {
            m.fate = fate;
        }
    }

    /// Queues a copy, sending the lane first when it is full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf, meta: TxMeta) {
        if self.lane.tx.is_full() {
            self.flush();
        }
        let at = self.lane.tx.len();
        match self.lane.tx.push(m) {
            Ok(()) => self.lane.meta[at] = meta,
            Err(m) => {
                // Still full after a flush (cannot happen: flush empties it).
                drop(m);
                done(self.fates, meta, false, self.stats);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn flush(&mut self) {
        self.lane.flush(self.fates, self.q, self.pc, self.stats);
    }
}

/// The tool ports' lanes with their queues, borrowed for a run of pushes:
/// a tool group's copies go to several lanes in one burst, each found by
/// index, without building a [`LaneTx`] per copy.
pub(super) struct ToolLanes<'a> {
    lanes: &'a mut [Lane],
    fates: &'a mut [Fate; FATES],
    queues: &'a mut [TxQueue],
    stats: &'a WorkerStats,
}

impl ToolLanes<'_> {
    /// The worker's counters the lanes count on.
    #[inline(always)]
    pub fn stats(&self) -> &WorkerStats {
        self.stats
    }

    /// Queues a copy for tool port `port`, sending that port's lane first
    /// when it is full.
    #[inline(always)]
    pub fn push(&mut self, port: usize, m: Mbuf, meta: TxMeta) {
        match self.lanes.get_mut(port) {
            Some(lane) if !lane.tx.is_full() => {
                let at = lane.tx.len();
                match lane.tx.push(m) {
                    Ok(()) => lane.meta[at] = meta,
                    // Not full, checked above.
                    Err(m) => self.unsent(m, meta),
                }
            }
            _ => self.push_after_flush(port, m, meta),
        }
    }

    /// A full lane: sent, then the copy queued. A port the worker has no
    /// queue on: the copy is dropped, counted as its queue refusing it.
    #[cold]
    #[inline(never)]
    fn push_after_flush(&mut self, port: usize, m: Mbuf, meta: TxMeta) {
        let (Some(lane), Some(q), Some(pc)) = (
            self.lanes.get_mut(port),
            self.queues.get_mut(port),
            self.stats.tool_ports.get(port),
        ) else {
            return self.unsent(m, meta);
        };
        LaneTx {
            lane,
            fates: self.fates,
            q,
            pc,
            stats: self.stats,
        }
        .push(m, meta);
    }

    #[cold]
    fn unsent(&mut self, m: Mbuf, meta: TxMeta) {
        drop(m);
        done(self.fates, meta, false, self.stats);
    }
}

impl TxBuffer {
    pub fn new(uplinks: usize, tool_ports: usize) -> Self {
        TxBuffer {
            fates: [Fate::default(); FATES],
            next_fate: 0,
            uplinks: (0..uplinks).map(|_| Lane::new()).collect(),
            tools: (0..tool_ports).map(|_| Lane::new()).collect(),
        }
    }

    /// Every tool port's lane (their queues are `queues`, by tool port
    /// index), borrowed for a run of pushes to any of them.
    #[inline]
    pub fn tools<'a>(
        &'a mut self,
        queues: &'a mut [TxQueue],
        stats: &'a WorkerStats,
    ) -> ToolLanes<'a> {
        ToolLanes {
            lanes: &mut self.tools,
            fates: &mut self.fates,
            queues,
            stats,
        }
    }

    /// A copy with no lane to go to (the worker has no queue on that
    /// port): dropped, and counted as its queue refusing it.
    #[cold]
    fn unsent(&mut self, m: Mbuf, meta: TxMeta, stats: &WorkerStats) {
        drop(m);
        done(&mut self.fates, meta, false, stats);
    }

    /// Sends tool port `port`'s buffer.
    pub fn flush_tool(&mut self, port: usize, q: &mut TxQueue, stats: &WorkerStats) {
        if let (Some(pc), Some(lane)) = (stats.tool_ports.get(port), self.tools.get_mut(port)) {
            lane.flush(&mut self.fates, q, pc, stats);
        }
    }

    /// Sends every tool port's buffer.
    pub fn flush_tools(&mut self, queues: &mut [TxQueue], stats: &WorkerStats) {
        for (port, q) in queues.iter_mut().enumerate() {
            if self.tools.get(port).is_some_and(|l| !l.tx.is_empty()) {
                self.flush_tool(port, q, stats);
            }
        }
    }

    /// Tool port `port`'s lane (its queue among `queues`, by tool port
    /// index), if the worker has one.
    #[inline]
    pub fn tool<'a>(
        &'a mut self,
        port: usize,
        queues: &'a mut [TxQueue],
        stats: &'a WorkerStats,
    ) -> Option<LaneTx<'a>> {
        lane_tx(
            &mut self.tools,
            &mut self.fates,
            port,
            queues,
            &stats.tool_ports,
            stats,
        )
    }

    /// Uplink `uplink`'s lane (its queue among `queues`, by uplink index),
    /// if the worker has one.
    #[inline]
    pub fn uplink<'a>(
        &'a mut self,
        uplink: usize,
        queues: &'a mut [TxQueue],
        stats: &'a WorkerStats,
    ) -> Option<LaneTx<'a>> {
        lane_tx(
            &mut self.uplinks,
            &mut self.fates,
            uplink,
            queues,
            &stats.uplinks,
            stats,
        )
    }

    /// Queues a copy for uplink `uplink` (its queue among `queues`, by
    /// uplink index), sending that uplink's buffer first when it is full.
    #[inline]
    pub fn push(
        &mut self,
        uplink: usize,
        m: Mbuf,
        meta: TxMeta,
        queues: &mut [TxQueue],
        stats: &WorkerStats,
    ) {
        match self.uplink(uplink, queues, stats) {
            Some(mut lane) => lane.push(m, meta),
            None => self.unsent(m, meta, stats),
        }
    }

    /// Sends every uplink's buffer.
    pub fn flush(&mut self, queues: &mut [TxQueue], stats: &WorkerStats) {
        for ((lane, q), pc) in self
            .uplinks
            .iter_mut()
            .zip(queues.iter_mut())
            .zip(stats.uplinks.iter())
        {
            if !lane.tx.is_empty() {
                lane.flush(&mut self.fates, q, pc, stats);
            }
        }
    }

    /// A free fate slot for a packet with several copies. The buffer holds
    /// at most `TX_BUF` copies, so a slot `FATES` packets back is resolved
    /// unless the buffer was never flushed; flush then to be sure.
    pub fn new_fate(
        &mut self,
        uplinks: &mut [TxQueue],
        tools: &mut [TxQueue],
        stats: &WorkerStats,
    ) -> u16 {
        let i = self.next_fate;
        self.next_fate = (i + 1) % FATES;
        if self.fates[i].pending != 0 {
            self.flush(uplinks, stats);
            self.flush_tools(tools, stats);
        }
        // Held open until `settle`.
        self.fates[i] = Fate {
            pending: 1,
            ..Fate::default()
        };
        // FATES < SOLO: always fits, never a marker.
        i as u16
    }

    /// A copy of packet `fate` was queued.
    #[inline]
    pub fn copy_queued(&mut self, fate: u16) {
        self.fates[usize::from(fate)].pending += 1;
    }

    /// A copy of packet `fate` was dropped before it was queued.
    #[inline]
    pub fn copy_dropped(&mut self, fate: u16, why: DestDrop) {
        note_drop(&mut self.fates[usize::from(fate)], why);
    }

    /// Once every copy of `fate` was queued or dropped: lets the packet
    /// go (see [`Fate::pending`]); its terminal, counted now, when none of
    /// its copies is waiting in a buffer.
    pub fn settle(&mut self, fate: u16, stats: &WorkerStats) -> Option<Terminal> {
        let fate = usize::from(fate);
        let f = &mut self.fates[fate];
        f.pending = f.pending.saturating_sub(1);
        (f.pending == 0).then(|| resolve(&self.fates, fate, stats))
    }
}

/// Lane `i` of `lanes` with its queue and port counters, if all exist.
#[inline(always)]
fn lane_tx<'a>(
    lanes: &'a mut [Lane],
    fates: &'a mut [Fate; FATES],
    i: usize,
    queues: &'a mut [TxQueue],
    counters: &'a [CachePadded<ToolPortCounters>],
    stats: &'a WorkerStats,
) -> Option<LaneTx<'a>> {
    Some(LaneTx {
        lane: lanes.get_mut(i)?,
        fates,
        q: queues.get_mut(i)?,
        pc: counters.get(i)?,
        stats,
    })
}

/// A frame of no destination, alone: counted on its port and in its terminal.
#[inline(always)]
pub(super) fn no_dest(bytes: u32) -> TxMeta {
    TxMeta {
        fate: SOLO,
        slot: NO_DEST,
        bytes,
    }
}

/// The first drop reason is the packet's, except that one copy left out by
/// sampling does not hide another copy's loss.
fn note_drop(f: &mut Fate, why: DestDrop) {
    if matches!(f.first_drop, None | Some(DestDrop::Sampled)) {
        f.first_drop = Some(why);
    }
}

/// One copy sent or dropped: its destination's counters, and its
/// packet's terminal counter once the packet is settled.
fn done(fates: &mut [Fate; FATES], meta: TxMeta, sent: bool, stats: &WorkerStats) {
    if meta.fate == NO_FATE {
        return;
    }
    if let Some(dc) = stats.dests.get(usize::from(meta.slot)) {
        if sent {
            dc.tx_packets.add(1);
            dc.tx_bytes.add(u64::from(meta.bytes));
        } else {
            dc.drop(DestDrop::TxFull).add(1);
        }
    }
    if no_slot(meta.fate) {
        if meta.fate != FOLLOW {
            let term = if sent {
                Terminal::Forwarded
            } else {
                lead_dropped(meta.fate)
            };
            stats.counters.terminal(term).add(1);
        }
        return;
    }
    let fate = usize::from(meta.fate);
    let f = &mut fates[fate];
    if sent {
        f.forwarded = true;
    } else {
        note_drop(f, DestDrop::TxFull);
    }
    f.pending = f.pending.saturating_sub(1);
    if f.pending == 0 {
        resolve(fates, fate, stats);
    }
}

fn resolve(fates: &[Fate; FATES], fate: usize, stats: &WorkerStats) -> Terminal {
    let f = fates[fate];
    let term = if f.forwarded {
        Terminal::Forwarded
    } else {
        f.first_drop
            .map_or(Terminal::DroppedError, DestDrop::terminal)
    };
    stats.counters.terminal(term).add(1);
    term
}

/// Counts copies `meta` as sent; returns how many and their bytes (not
/// counting control frames, which belong to no destination). Runs of
/// copies without a fate slot to the same destination (the common case:
/// often the whole burst) are counted with one add per counter, not one
/// per copy; the packets they settle with one add for the lane.
fn sent(meta: &[TxMeta], fates: &mut [Fate; FATES], stats: &WorkerStats) -> (u64, u64) {
    let (n, mut all_packets, mut all_bytes) = (meta.len(), 0u64, 0u64);
    let mut forwarded = 0u64;
    let mut k = 0;
    while k < n {
        let first = meta[k];
        if !no_slot(first.fate) {
            done(fates, first, true, stats);
            if first.fate != NO_FATE {
                all_packets += 1;
                all_bytes += u64::from(first.bytes);
            }
            k += 1;
            continue;
        }
        let (mut j, mut bytes) = (k, 0u64);
        while j < n && no_slot(meta[j].fate) && meta[j].slot == first.slot {
            bytes += u64::from(meta[j].bytes);
            forwarded += u64::from(meta[j].fate != FOLLOW);
            j += 1;
        }
        let packets = (j - k) as u64;
        if let Some(dc) = stats.dests.get(usize::from(first.slot)) {
            dc.tx_packets.add(packets);
            dc.tx_bytes.add(bytes);
        }
        all_packets += packets;
        all_bytes += bytes;
        k = j;
    }
    if forwarded != 0 {
        stats.counters.terminal(Terminal::Forwarded).add(forwarded);
    }
    (all_packets, all_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpdk::testing::shared_eal;
    use crate::dpdk::{Mempool, Port, PortConfig};

    /// A packet whose first copy fills the buffer: queuing its second copy
    /// sends the buffer first, the first copy with it. The packet is
    /// settled once, after its last copy.
    #[test]
    fn a_buffer_sent_between_two_copies_settles_their_packet_once() {
        shared_eal("tx-fates");
        let pool = Mempool::new("tx_fates", 511, 0, 256, -1).expect("mempool");
        let mut port = Port::open("net_null_tx_fates0").expect("net_null");
        port.configure(&PortConfig::default(), &pool)
            .expect("configure");
        port.start().expect("start");
        let mut uplinks = [port.tx_queue(0).expect("tx queue")];
        let stats = WorkerStats::default();
        let mut tx = TxBuffer::new(1, 0);
        let solo = TxMeta {
            fate: SOLO,
            slot: 0,
            bytes: 60,
        };
        for _ in 0..TX_BUF - 1 {
            let m = Mbuf::alloc(&pool).expect("mbuf");
            tx.push(0, m, solo, &mut uplinks, &stats);
        }
        let fate = tx.new_fate(&mut uplinks, &mut [], &stats);
        for _ in 0..2 {
            let meta = TxMeta { fate, ..solo };
            let m = Mbuf::alloc(&pool).expect("mbuf");
            tx.push(0, m, meta, &mut uplinks, &stats);
            tx.copy_queued(fate);
        }
        assert_eq!(tx.settle(fate, &stats), None, "a copy is still queued");
        tx.flush(&mut uplinks, &stats);
        let packets = TX_BUF as u64;
        assert_eq!(stats.counters.terminal_sum(), packets);
        assert_eq!(stats.counters.terminal(Terminal::Forwarded).get(), packets);
        assert_eq!(stats.dests[0].tx_packets.get(), packets + 1);
    }

    /// A packet's lead and its followers: sent, the packet is forwarded
    /// once and each copy counts on its destination; a lead dropped at TX
    /// gives the packet the reason another copy was dropped before it was
    /// queued, else `dropped_tx_full`; a follower never counts a packet.
    #[test]
    fn a_lead_settles_its_packet_and_followers_count_on_their_destination() {
        let stats = WorkerStats::default();
        let mut fates = [Fate::default(); FATES];
        let copy = |fate, slot| TxMeta {
            fate,
            slot,
            bytes: 100,
        };
        let lane = [
            copy(lead(None), 0),
            copy(FOLLOW, 1),
            copy(lead(Some(DestDrop::NoMbuf)), 0),
            copy(FOLLOW, 1),
            copy(SOLO, 1),
        ];
        assert_eq!(sent(&lane, &mut fates, &stats), (5, 500));
        assert_eq!(stats.counters.terminal(Terminal::Forwarded).get(), 3);
        assert_eq!(stats.counters.terminal_sum(), 3);
        assert_eq!(stats.dests[0].tx_packets.get(), 2);
        assert_eq!(stats.dests[1].tx_packets.get(), 3);
        assert_eq!(stats.dests[1].tx_bytes.get(), 300);

        let stats = WorkerStats::default();
        for why in DestDrop::ALL {
            done(&mut fates, copy(lead(Some(why)), 0), false, &stats);
            done(&mut fates, copy(FOLLOW, 1), false, &stats);
            assert_eq!(stats.counters.terminal(why.terminal()).get(), 1, "{why:?}");
            stats.counters.terminal(why.terminal()).set(0);
        }
        assert_eq!(stats.counters.terminal_sum(), 0);
        done(&mut fates, copy(lead(None), 0), false, &stats);
        assert_eq!(stats.counters.terminal(Terminal::DroppedTxFull).get(), 1);
        assert_eq!(stats.dests[1].drop(DestDrop::TxFull).get(), 8);
    }
}
