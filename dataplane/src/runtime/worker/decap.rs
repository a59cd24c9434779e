//! The tunnel-decap front-end's path through a worker: tunnels arriving on
//! a decap input are stripped and their inner frames handed to the tool
//! port, optionally deduplicated and re-tagged. Every received frame still
//! ends in exactly one terminal counter.

use std::sync::Arc;

use crate::dpdk::Batch;
use crate::flow::FlowTunnel;
use crate::frame::Frame;
use crate::runtime::counters::Terminal;
use crate::stage::decap::{Decap, DecapConfig, DecapOutcome, DecapStats};
use crate::stage::dedup::Verdict as DedupVerdict;
use crate::stage::parse::parse_frame;
use crate::stage::BURST;
use crate::wire::ethernet::ethertype;

use super::tx::no_dest;
use super::{is_exception, Worker};

/// A cheap look before `is_exception`'s parse: ARP or IPv6, untagged or
/// behind up to two VLAN tags.
fn may_be_exception(frame: &[u8]) -> bool {
    let ethertype = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    [12, 16, 20]
        .iter()
        .any(|&at| matches!(ethertype(at), Some(ethertype::ARP | ethertype::IPV6)))
}

/// What the appliance configures for decap inputs.
#[derive(Debug, Clone, Default)]
pub struct DecapSetup {
    pub config: DecapConfig,
    /// Hand frames that are not tunnels to the tool as they are (else drop).
    pub pass_non_tunnel: bool,
    /// Drop copies of inner frames seen within the dedup window.
    pub dedup: bool,
    /// The tool port decap inputs send to, by tool port index: its frames
    /// go through the worker's lane on that port, as tool destinations'.
    pub tool: Option<u16>,
}

/// A worker's decap stage and where its frames go.
pub(super) struct DecapState {
    stage: Decap,
    pass_non_tunnel: bool,
    dedup: bool,
    tool: Option<u16>,
}

impl DecapState {
    pub(super) fn new(s: &DecapSetup, stats: Arc<DecapStats>) -> Result<DecapState, String> {
        Ok(DecapState {
            stage: Decap::new(s.config.clone())
                .map_err(|e| e.to_string())?
                .with_stats(stats),
            pass_non_tunnel: s.pass_non_tunnel,
            dedup: s.dedup,
            tool: s.tool,
        })
    }

    /// Publishes the stage's counts (per drain tick, not per burst: the
    /// console reads them 100 µs late at most, and a burst pays nothing
    /// for them).
    pub(super) fn publish(&mut self) {
        self.stage.publish();
    }
}

impl Worker {
    /// Moves the frames of decap ports out of a mixed burst (a distributor
    /// ring) and runs them through the decap path.
    pub(super) fn split_decap(&mut self, rx: &mut Batch<BURST>) {
        if !self.s.port_decap.iter().any(|d| *d) {
            return;
        }
        let mut tap: Batch<BURST> = Batch::new();
        let mut dec: Batch<BURST> = Batch::new();
        for m in rx.drain() {
            let is_decap = self
                .s
                .port_decap
                .get(usize::from(m.port()))
                .copied()
                .unwrap_or(false);
            // Both batches hold a whole burst: a push cannot fail.
            let _ = if is_decap { dec.push(m) } else { tap.push(m) };
        }
        for m in tap.drain() {
            let _ = rx.push(m);
        }
        if !dec.is_empty() {
            self.process_decap(&mut dec);
        }
    }

    /// ARP and ND on a decap input with an address are for the main lcore
    /// (it answers for that address), counted as exceptions, not as `rx`.
    fn divert_exceptions(&mut self, rx: &mut Batch<BURST>) {
        if !self.s.port_answers.iter().any(|a| *a) {
            return;
        }
        let c = &self.s.stats.counters;
        let mut keep: Batch<BURST> = Batch::new();
        for m in rx.drain() {
            let answers = self
                .s
                .port_answers
                .get(usize::from(m.port()))
                .copied()
                .unwrap_or(false);
            if answers && may_be_exception(m.data()) && is_exception(m.data()) {
                c.exceptions.add(1);
                if self.s.exceptions.enqueue(m).is_err() {
                    c.exceptions_dropped.add(1);
                }
            } else {
                // The batch holds a whole burst: a push cannot fail.
                let _ = keep.push(m);
            }
        }
        for m in keep.drain() {
            let _ = rx.push(m);
        }
    }

    /// Strips the tunnels of a burst from a decap input.
    #[inline(never)]
    pub(super) fn process_decap(&mut self, rx: &mut Batch<BURST>) {
        self.divert_exceptions(rx);
        if rx.is_empty() {
            return;
        }
        let c = &self.s.stats.counters;
        c.rx.add(rx.len() as u64);
        c.rx_bytes
            .add(rx.as_slice().iter().map(|m| m.pkt_len() as u64).sum());
        c.bursts.add(1);
        let now_ns = self.s.clock.now_ns();
        let stats = &*self.s.stats;
        // The tool port's lane, looked up once for the burst.
        let mut tool = self.decap.tool.and_then(|port| {
            self.tx
                .tool(usize::from(port), &mut self.s.tool_ports, stats)
        });
        rx.drain_each(|mut m| {
            let deliver = match self.decap.stage.decap(&mut m) {
                Ok(DecapOutcome::Decapsulated(d)) => {
                    if let Some(meter) = &mut self.meter {
                        let t = d.outer();
                        let tunnel = FlowTunnel {
                            kind: t.kind.into(),
                            id: t.id,
                        };
                        meter.observe_decapped(&m, &parse_frame(&m), tunnel, now_ns);
                    }
                    true
                }
                Ok(DecapOutcome::NotTunnel) => self.decap.pass_non_tunnel,
                // Counted by the stage (not_ethernet, and each error kind).
                Ok(DecapOutcome::NotEthernet(_)) => false,
                Err(_) => {
                    self.s
                        .stats
                        .counters
                        .terminal(Terminal::DroppedError)
                        .add(1);
                    return;
                }
            };
            if !deliver {
                self.s.stats.counters.terminal(Terminal::Filtered).add(1);
                return;
            }
            if self.decap.dedup {
                let layers = parse_frame(&m);
                if self
                    .dedup
                    .check(&m, &layers, m.capture_time_ns().unwrap_or(now_ns))
                    == DedupVerdict::Duplicate
                {
                    self.s
                        .stats
                        .counters
                        .terminal(Terminal::Deduplicated)
                        .add(1);
                    return;
                }
            }
            match tool.as_mut() {
                Some(lane) => {
                    let meta = no_dest(m.pkt_len() as u32);
                    lane.push(m, meta);
                }
                // No tool port (or no queue on it): nowhere to go.
                None => {
                    drop(m);
                    stats.counters.terminal(Terminal::DroppedError).add(1);
                }
            }
        });
    }
}
