//! Hits per rule (packets and bytes), VPP style: tallied by the worker in
//! plain memory as it classifies, added to its shared [`RuleCounters`] at
//! the drain tick (only the rules hit since), read by the main lcore for
//! `show policy`, Prometheus, telemetry and the controller's heartbeat.

use std::sync::Arc;

use crate::runtime::counters::{RuleCounters, WorkerStats};
use crate::runtime::tables::Tables;

/// One worker's tally since the last drain tick.
#[derive(Debug, Default)]
pub(super) struct RuleTally {
    /// The classifier generation the tally is for.
    classifier: u64,
    /// Packets and bytes by rule id, the default's last.
    counts: Vec<(u64, u64)>,
    /// Rule ids with a count, each once.
    dirty: Vec<u32>,
}

impl RuleTally {
    /// Follows a new tables generation: for a new classifier, publishes
    /// what is left of the old one's tally and starts a counter block of
    /// the new one's size.
    pub fn adopt(&mut self, t: &Tables, stats: &WorkerStats) {
        let cls = t.policy.classifier.generation();
        if cls == self.classifier {
            return;
        }
        self.publish(stats);
        let rules = t.policy.rule_names.len();
        self.classifier = cls;
        self.counts = vec![(0, 0); rules + 1];
        self.dirty = Vec::with_capacity(rules + 1);
        stats.rules.store(Arc::new(RuleCounters::new(cls, rules)));
    }

    /// `packets` packets of `bytes` bytes in all matched rule `rule_id`
    /// (`u32::MAX`: the default action).
    #[inline]
    pub fn count(&mut self, rule_id: u32, packets: u64, bytes: u64) {
        let last = self.counts.len().saturating_sub(1);
        let id = (rule_id as usize).min(last);
        if let Some(c) = self.counts.get_mut(id) {
            if c.0 == 0 {
                self.dirty.push(id as u32);
            }
            c.0 += packets;
            c.1 += bytes;
        }
    }

    /// Adds the tally to the shared counters and starts it again.
    pub fn publish(&mut self, stats: &WorkerStats) {
        if self.dirty.is_empty() {
            return;
        }
        let shared = stats.rules.load();
        for id in self.dirty.drain(..) {
            if let Some(c) = self.counts.get_mut(id as usize) {
                if shared.classifier == self.classifier {
                    shared.add(id as usize, c.0, c.1);
                }
                *c = (0, 0);
            }
        }
    }
}
