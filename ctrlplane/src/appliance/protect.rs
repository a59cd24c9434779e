//! The guard on the main lcore: samples the pressure (input misses, ring
//! fill, free mbufs, memory) at its interval, feeds `crate::guard`, and
//! raises or lowers the workers' shed word on its decisions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dataplane::dpdk::{Mbuf, Mempool, Port, Ring};

use crate::config::{PortConfig, Role};
use crate::guard::{Guard, GuardConfig, Sample, Transition};
use crate::log::log;

/// What pressure is made of, now.
pub fn sample(
    at_ms: u64,
    ports: &[(PortConfig, Port)],
    rings: &[Arc<Ring<Mbuf>>],
    pool: &Mempool,
    total_mbufs: u32,
) -> Sample {
    let missed = ports
        .iter()
        .filter(|(pc, _)| pc.role == Role::Input)
        .filter_map(|(_, p)| p.stats().ok())
        .map(|s| s.imissed)
        .sum();
    let ring_fill_pct = rings
        .iter()
        .map(|r| {
            let cap = r.len() + r.free();
            (r.len() * 100 / cap.max(1)) as u32
        })
        .max()
        .unwrap_or(0);
    Sample {
        at_ms,
        missed,
        free_mbufs: u64::from(pool.available()),
        total_mbufs: u64::from(total_mbufs),
        ring_fill_pct,
        rss_bytes: crate::guard::rss_bytes(),
    }
}

/// The guard, the shed word it drives, and why it last protected.
pub struct Protector {
    guard: Guard,
    /// The workers' shed word (0: not protecting); see `worker::shed`.
    word: Arc<AtomicU64>,
    last_ms: u64,
    reason: String,
}

impl Protector {
    pub fn new(cfg: GuardConfig) -> Protector {
        Protector {
            guard: Guard::new(cfg),
            word: Arc::new(AtomicU64::new(0)),
            last_ms: 0,
            reason: String::new(),
        }
    }

    /// The shed word, for the workers.
    pub fn word(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.word)
    }

    pub fn protecting(&self) -> bool {
        self.guard.protecting()
    }

    /// Whether the guard's interval has passed since its last look.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_ms) >= self.guard.cfg.interval_ms
    }

    /// The guard's look at `s`: `Some(true)` when it enters protect,
    /// `Some(false)` when it leaves.
    pub fn look(&mut self, s: Sample) -> Option<bool> {
        self.last_ms = s.at_ms;
        match self.guard.observe(s)? {
            Transition::Enter(why) => {
                self.word
                    .store(self.guard.cfg.shed_word(), Ordering::Release);
                crate::log::warn(format!("entering protect: {why}"));
                self.reason = why;
                Some(true)
            }
            Transition::Leave => {
                self.word.store(0, Ordering::Release);
                log("leaving protect: pressure stayed low");
                Some(false)
            }
        }
    }

    /// `show guard`.
    pub fn show(&self, state: &str, now: &Sample, dropped_protect: u64) -> String {
        let c = &self.guard.cfg;
        format!(
            "  state: {}{}\n  limits: missed-pps {} free-mbufs-pct {} ring-fill-pct {} rss-mb {} calm-ms {}\n  \
             now: missed {} (counter) free mbufs {}/{} ring fill {}% rss {} MiB\n  shed: {:?} (sample 1 in {}, keep rules {})\n  dropped_protect: {}\n",
            state,
            if self.guard.protecting() { format!(" (protecting: {})", self.reason) } else { String::new() },
            c.max_missed_pps,
            c.min_free_mbufs_pct,
            c.max_ring_fill_pct,
            c.max_rss_mb,
            c.calm_ms,
            now.missed,
            now.free_mbufs,
            now.total_mbufs,
            now.ring_fill_pct,
            now.rss_bytes >> 20,
            c.shed,
            c.sample_keep_1_in,
            c.keep_rules,
            dropped_protect
        )
    }

    /// `set guard <limit> <v>`.
    pub fn set(&mut self, limit: &str, v: u64) -> String {
        let c = &mut self.guard.cfg;
        match limit {
            "missed-pps" => c.max_missed_pps = v,
            "free-mbufs-pct" if v <= 100 => c.min_free_mbufs_pct = v as u32,
            "ring-fill-pct" if (1..=100).contains(&v) => c.max_ring_fill_pct = v as u32,
            "rss-mb" => c.max_rss_mb = v,
            "calm-ms" => c.calm_ms = v,
            _ => {
                return format!(
                "guard {limit} {v} is out of range (percentages are 0..=100, ring fill 1..=100)\n"
            )
            }
        }
        format!("guard {limit} set to {v}\n")
    }
}
