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
use crate::stage::parse::parse;
use crate::stage::BURST;

/// What the distributor polls and feeds.
pub struct DistributorSetup {
    pub inputs: Vec<RxQueue>,
    pub rings: Vec<Arc<Ring<Mbuf>>>,
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
        if s.state.load(Ordering::Acquire) != run_state::RUNNING {
            std::hint::spin_loop();
            continue;
        }
        for rxq in &mut s.inputs {
            if rxq.rx(&mut rx) == 0 {
                continue;
            }
            for m in rx.drain() {
                let l = parse(m.data());
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
                s.rings[w].enqueue_batch(b);
                let left = b.len() as u64;
                if left > 0 {
                    let c = &s.stats.counters;
                    c.rx.add(left);
                    c.terminal(Terminal::DroppedTxFull).add(left);
                    b.drain().for_each(drop);
                }
            }
        }
    }
}
