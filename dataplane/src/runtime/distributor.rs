//! The distributor lcore, for inputs that cannot hash in hardware: it reads
//! their single RX queue and spreads packets over the workers' rings by the
//! same symmetric flow hash, so both mirrored copies of a packet (and both
//! directions of a flow) meet in one worker's dedup table, in order.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::dpdk::{Batch, Mbuf, Ring, RxQueue};
use crate::frame::Frame;
use crate::runtime::counters::{Terminal, WorkerStats};
use crate::runtime::worker::run_state;
use crate::stage::encap::flow_hash;
use crate::stage::parse::parse_frame;
use crate::stage::BURST;

/// A pdump tap ring and the workers' rings its copies are spread over.
pub type TapInput = (Arc<Ring<Mbuf>>, Vec<Arc<Ring<Mbuf>>>);

/// What the distributor polls and feeds.
pub struct DistributorSetup {
    pub inputs: Vec<RxQueue>,
    pub rings: Vec<Arc<Ring<Mbuf>>>,
    /// pdump tap rings, each with the per-worker rings of its direction
    /// (a worker tells the directions apart by the ring it reads).
    pub taps: Vec<TapInput>,
    /// Its own counters: packets it could not hand to a worker end here
    /// (`rx` and `dropped_tx_full`: the worker's ring stayed full).
    pub stats: Arc<WorkerStats>,
    pub state: Arc<AtomicU8>,
    /// Bumped by `clear fwd stats all`.
    pub clear_epoch: Arc<AtomicU64>,
}

/// Runs until the state says `EXIT`.
pub fn run(mut s: DistributorSetup) {
    let n = s.rings.len().max(1);
    let mut rx: Batch<BURST> = Batch::new();
    let mut out: Vec<Batch<BURST>> = (0..n).map(|_| Batch::new()).collect();
    s.stats.counters.started.add(1);
    let mut epoch = 0;
    while s.state.load(Ordering::Acquire) != run_state::EXIT {
        let e = s.clear_epoch.load(Ordering::Relaxed);
        if e != epoch {
            s.stats.zero();
            epoch = e;
            s.stats.counters.cleared_epoch.set(e);
        }
        let polls = s
            .stats
            .counters
            .polling
            .begin_round(s.state.load(Ordering::Acquire), &s.state);
        if !polls {
            std::hint::spin_loop();
            continue;
        }
        for rxq in &mut s.inputs {
            if rxq.rx(&mut rx) > 0 {
                spread(&mut rx, &mut out, &s.rings, &s.stats);
            }
        }
        for (tap, rings) in &s.taps {
            if tap.dequeue_batch(&mut rx) > 0 {
                spread(&mut rx, &mut out, rings, &s.stats);
            }
        }
    }
}

/// Hands a burst to the workers' `rings` by flow hash. What a full ring
/// refuses ends here, counted (`rx` and `dropped_tx_full`).
fn spread(
    rx: &mut Batch<BURST>,
    out: &mut [Batch<BURST>],
    rings: &[Arc<Ring<Mbuf>>],
    stats: &WorkerStats,
) {
    let n = out.len().min(rings.len()).max(1);
    for m in rx.drain() {
        let l = parse_frame(&m);
        let w = flow_hash(Some(&l), m.data()) as usize % n;
        // Each per-worker batch has room for a whole burst.
        if let Err(m) = out[w].push(m) {
            drop(m);
        }
    }
    for (w, b) in out.iter_mut().enumerate() {
        if b.is_empty() {
            continue;
        }
        if let Some(r) = rings.get(w) {
            r.enqueue_batch(b);
        }
        let left = b.len() as u64;
        if left > 0 {
            let c = &stats.counters;
            c.rx.add(left);
            c.terminal(Terminal::DroppedTxFull).add(left);
            b.drain().for_each(drop);
        }
    }
}
