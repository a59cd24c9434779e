//! The receive-side check: per-flow sequence numbers say what was lost,
//! what came out of order and what came twice.
//!
//! For each flow the checker expects sequence 0 first, then each next
//! number. A number above the expected one opens a gap (its missing
//! numbers count as lost); a missing number arriving later is *reordered*
//! (and no longer lost); a number seen before is a *duplicate* — which
//! includes the copies a profile's `[duplicates]` makes on purpose (they
//! carry their original's stamp, byte for byte). A loss after a flow's
//! last received packet cannot be seen from the sequence alone.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::stamp::Stamp;

/// Gaps remembered per flow; a number missing beyond that is lost for good.
const MAX_MISSING: usize = 1 << 16;

#[derive(Debug, Default)]
struct FlowState {
    next: u32,
    missing: BTreeSet<u32>,
    /// Numbers that fell out of `missing` (too many gaps): lost for good.
    forgotten: u64,
}

/// What the checker saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Frames given to the checker.
    pub received: u64,
    /// Frames without a stamp.
    pub unstamped: u64,
    /// Distinct flows seen.
    pub flows: u64,
    /// Originals that came in order.
    pub in_order: u64,
    /// Numbers never seen (gaps still open).
    pub lost: u64,
    /// Originals that arrived after a later number of their flow.
    pub reordered: u64,
    /// Sequence numbers seen again (copies included).
    pub duplicates: u64,
}

/// Per-flow sequence tracking.
#[derive(Debug, Default)]
pub struct Checker {
    flows: HashMap<u32, FlowState>,
    r: Report,
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Looks for a stamp in `frame` (at `hint` first) and counts it;
    /// returns where the stamp was.
    pub fn frame(&mut self, frame: &[u8], hint: Option<usize>) -> Option<usize> {
        self.r.received += 1;
        match Stamp::locate(frame, hint) {
            Some((at, s)) => {
                self.stamp(s);
                Some(at)
            }
            None => {
                self.r.unstamped += 1;
                None
            }
        }
    }

    /// Counts one stamp.
    pub fn stamp(&mut self, s: Stamp) {
        let f = self.flows.entry(s.flow).or_default();
        if s.seq == f.next {
            f.next = f.next.wrapping_add(1);
            self.r.in_order += 1;
        } else if s.seq > f.next {
            let mut k = f.next;
            while k != s.seq {
                if f.missing.len() < MAX_MISSING {
                    f.missing.insert(k);
                } else {
                    f.forgotten += 1;
                }
                k = k.wrapping_add(1);
            }
            f.next = s.seq.wrapping_add(1);
            self.r.in_order += 1;
        } else if f.missing.remove(&s.seq) {
            self.r.reordered += 1;
        } else {
            self.r.duplicates += 1;
        }
    }

    /// The counts so far.
    pub fn report(&self) -> Report {
        let mut r = self.r;
        r.flows = self.flows.len() as u64;
        r.lost = self
            .flows
            .values()
            .map(|f| f.missing.len() as u64 + f.forgotten)
            .sum();
        r
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {} (unstamped {}), flows {}, in order {}, lost {}, reordered {}, duplicates {}",
            self.received,
            self.unstamped,
            self.flows,
            self.in_order,
            self.lost,
            self.reordered,
            self.duplicates
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[(u32, u32)]) -> Report {
        let mut c = Checker::new();
        for &(flow, seq) in seqs {
            c.stamp(Stamp { flow, seq });
        }
        c.report()
    }

    #[test]
    fn in_order_gap_reorder_duplicate() {
        let r = run(&[(0, 0), (0, 1), (1, 0), (0, 2)]);
        assert_eq!((r.in_order, r.lost, r.reordered, r.flows), (4, 0, 0, 2));
        // 3 missing: a gap.
        let r = run(&[(0, 0), (0, 1), (0, 2), (0, 4), (0, 5)]);
        assert_eq!((r.lost, r.reordered, r.duplicates), (1, 0, 0));
        // 2 and 3 swapped: one reordering, nothing lost.
        let r = run(&[(0, 0), (0, 1), (0, 3), (0, 2), (0, 4)]);
        assert_eq!((r.lost, r.reordered, r.duplicates), (0, 1, 0));
        // 1 twice.
        let r = run(&[(0, 0), (0, 1), (0, 1), (0, 2)]);
        assert_eq!((r.lost, r.reordered, r.duplicates), (0, 0, 1));
        // A late first packet.
        let r = run(&[(0, 1), (0, 0)]);
        assert_eq!((r.lost, r.reordered), (0, 1));
    }
}
