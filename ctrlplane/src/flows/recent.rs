//! The most recent exported records, for the console's `show flows`: a
//! sink of the export thread that keeps the last [`RECENT`] records, and
//! their top N by bytes. Flows still open in the workers' tables show once
//! they expire (at the latest after the active timeout).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dataplane::flow::FlowRecord;

use super::FlowSink;

/// Records kept.
pub const RECENT: usize = 4096;

/// The shared window of recent records.
#[derive(Debug, Clone, Default)]
pub struct RecentFlows(Arc<Mutex<VecDeque<FlowRecord>>>);

impl RecentFlows {
    /// The sink the export thread feeds.
    pub fn sink(&self) -> Box<dyn FlowSink> {
        Box::new(self.clone())
    }

    /// The `n` records with the most bytes (both directions), of those
    /// with an end at `host` when given.
    pub fn top(&self, n: usize, host: Option<IpAddr>) -> Vec<FlowRecord> {
        let recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<FlowRecord> = recent
            .iter()
            .filter(|r| host.is_none_or(|h| r.key.initiator == h || r.key.responder == h))
            .cloned()
            .collect();
        drop(recent);
        v.sort_by_key(|r| std::cmp::Reverse(r.bytes()));
        v.truncate(n);
        v
    }
}

impl FlowSink for RecentFlows {
    fn record(&mut self, r: &FlowRecord) {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(r.clone());
    }

    fn tick(&mut self, _now: Instant) {}

    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::flow::{DirectionCounts, FlowKey};
    use std::net::Ipv4Addr;

    fn rec(host: u8, bytes: u64) -> FlowRecord {
        let mut r = FlowRecord::new(FlowKey {
            initiator: IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
            responder: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
            initiator_port: 1,
            responder_port: 2,
            protocol: 17,
        });
        r.forward = DirectionCounts {
            packets: 1,
            bytes,
            tcp_flags: 0,
        };
        r
    }

    #[test]
    fn keeps_the_last_records_and_ranks_them_by_bytes() {
        let recent = RecentFlows::default();
        let mut sink = recent.sink();
        for i in 0..RECENT + 10 {
            sink.record(&rec((i % 7) as u8, i as u64));
        }
        let top = recent.top(3, None);
        assert_eq!(
            top.iter().map(FlowRecord::bytes).collect::<Vec<_>>(),
            [RECENT as u64 + 9, RECENT as u64 + 8, RECENT as u64 + 7]
        );
        let host = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert!(recent
            .top(10, Some(host))
            .iter()
            .all(|r| r.key.initiator == host));
        assert_eq!(recent.0.lock().unwrap().len(), RECENT);
    }
}
