//! VPP-style packet trace: `trace add N` arms a budget; workers record the
//! next N packets' path through every stage; the console prints them. The
//! fast path pays one relaxed load per burst while no trace is armed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// At most this many records are kept; older ones are dropped first.
pub const MAX_RECORDS: usize = 1024;

/// What happened to one copy of a traced packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestTrace {
    pub destination: String,
    /// The slice the rule asked for, and the frame length after it.
    pub slice: String,
    pub len_after_slice: usize,
    /// `sent: <outer header summary>` or the drop reason.
    pub outcome: String,
}

/// One packet's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    pub worker: usize,
    pub port: u16,
    pub len: usize,
    /// What parse found.
    pub parsed: String,
    /// The matching rule's name, or the default action.
    pub rule: String,
    /// `unique`, `duplicate` or `not checked`.
    pub dedup: String,
    /// The terminal verdict for the packet when it has no copy pending.
    pub verdict: String,
    pub dests: Vec<DestTrace>,
}

/// Shared between the console and the workers.
#[derive(Debug, Default)]
pub struct Trace {
    budget: AtomicU32,
    records: Mutex<Vec<TraceRecord>>,
}

impl Trace {
    /// Arms the trace for `n` more packets.
    pub fn add(&self, n: u32) {
        self.budget.fetch_add(n, Ordering::AcqRel);
    }

    /// Whether any packet is still to be traced (one relaxed load).
    #[inline]
    pub fn armed(&self) -> bool {
        self.budget.load(Ordering::Relaxed) > 0
    }

    /// Takes one packet from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        self.budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
            .is_ok()
    }

    pub fn record(&self, r: TraceRecord) {
        if let Ok(mut v) = self.records.lock() {
            if v.len() >= MAX_RECORDS {
                v.remove(0);
            }
            v.push(r);
        }
    }

    /// The records so far, oldest first.
    pub fn records(&self) -> Vec<TraceRecord> {
        self.records.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Forgets records and disarms.
    pub fn clear(&self) {
        self.budget.store(0, Ordering::Release);
        if let Ok(mut v) = self.records.lock() {
            v.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_taken_once_per_packet_and_records_are_bounded() {
        let t = Trace::default();
        assert!(!t.armed());
        t.add(2);
        assert!(t.armed() && t.take() && t.take());
        assert!(!t.take() && !t.armed());
        for i in 0..MAX_RECORDS + 3 {
            t.record(TraceRecord {
                worker: i,
                port: 0,
                len: 0,
                parsed: String::new(),
                rule: String::new(),
                dedup: String::new(),
                verdict: String::new(),
                dests: Vec::new(),
            });
        }
        let r = t.records();
        assert_eq!(r.len(), MAX_RECORDS);
        assert_eq!(r[0].worker, 3, "the oldest went first");
        t.clear();
        assert!(t.records().is_empty());
    }
}
