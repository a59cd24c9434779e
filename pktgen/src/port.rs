//! Sending and receiving through a DPDK port, with the safe
//! `dataplane::dpdk` layer.

use std::time::{Duration, Instant};

use dataplane::dpdk::{tsc_hz, tsc_now, Batch, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use dataplane::frame::Frame;
use serde::Serialize;

use crate::check::{Checker, Report};
use crate::gen::Cycle;
use crate::pcap::payload_offset;

/// Mbufs in pktgen's pool.
const POOL_MBUFS: u32 = 16383;
/// Data room of each mbuf (DPDK's default: 2048 bytes after the headroom).
const DATA_ROOM: u16 = 2176;
/// Largest burst, and the default.
pub const BURST: usize = 32;
/// Empty polls or refused bursts in a row before pktgen naps: the machines
/// it runs on are shared, and a paused peer should not cost a whole core.
const SPINS_BEFORE_NAP: u32 = 64;
const NAP: Duration = Duration::from_micros(50);

/// A started port with one RX and one TX queue.
pub struct Opened {
    pub port: Port,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub pool: Mempool,
}

/// Opens (hot-plugs if needed) and starts `spec` with one queue each way.
pub fn open(spec: &str) -> Result<Opened, String> {
    let pool =
        Mempool::new("pktgen_pool", POOL_MBUFS, 256, DATA_ROOM, -1).map_err(|e| e.to_string())?;
    let mut port = Port::open(spec).map_err(|e| e.to_string())?;
    port.configure(&PortConfig::default(), &pool)
        .map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    let rx = port.rx_queue(0).map_err(|e| e.to_string())?;
    let tx = port.tx_queue(0).map_err(|e| e.to_string())?;
    Ok(Opened { port, rx, tx, pool })
}

/// How much and how fast to send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Packets per second; `None` sends as fast as the port takes them.
    pub rate_pps: Option<u64>,
    /// Stop after this many packets (default: one cycle).
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Packets per burst, 1..=[`BURST`] (`None`: [`BURST`]). Bursts of one
    /// at a low rate reach the receiver one packet at a time.
    pub burst: Option<usize>,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct SendReport {
    pub packets: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mpps: f64,
    /// Line rate in Gbit/s, counting FCS, preamble and gap (24 bytes a frame).
    pub gbps: f64,
    /// Bursts the port did not take at once (back-pressure).
    pub retries: u64,
    /// Packets that could not get an mbuf.
    pub no_mbuf: u64,
}

impl SendReport {
    fn finish(mut self, secs: f64) -> SendReport {
        self.seconds = secs;
        if secs > 0.0 {
            self.mpps = self.packets as f64 / secs / 1e6;
            self.gbps = (self.bytes + 24 * self.packets) as f64 * 8.0 / secs / 1e9;
        }
        self
    }
}

impl std::fmt::Display for SendReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} packets ({} bytes) in {:.3} s: {:.3} Mpps, {:.3} Gbit/s on the wire (retries {}, no mbuf {})",
            self.packets, self.bytes, self.seconds, self.mpps, self.gbps, self.retries, self.no_mbuf
        )
    }
}

/// Sends the cycle again and again (sequence numbers continuing) until the
/// count or duration is reached. `progress` is called about once a second.
pub fn send(
    cycle: &mut Cycle,
    tx: &mut TxQueue,
    pool: &Mempool,
    opts: &SendOptions,
    mut progress: impl FnMut(&SendReport),
) -> SendReport {
    let total = opts.count.unwrap_or(cycle.packets.len() as u64);
    let burst = opts.burst.unwrap_or(BURST).clamp(1, BURST);
    let start = Instant::now();
    let hz = tsc_hz().max(1);
    // TSC ticks per burst at the wanted rate.
    let per_burst = opts
        .rate_pps
        .map(|pps| (u128::from(hz) * burst as u128 / u128::from(pps.max(1))) as u64);
    let mut next_burst = tsc_now();
    let mut r = SendReport::default();
    let mut last_progress = start;
    let mut idx = 0usize;
    let mut round = 0u32;
    let n = cycle.packets.len();
    let mut batch: Batch<BURST> = Batch::new();
    'outer: while r.packets < total {
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if let Some(step) = per_burst {
            wait_until(next_burst, hz);
            next_burst = next_burst.wrapping_add(step);
        }
        let want = (total - r.packets).min(burst as u64) as usize;
        let mut bytes = 0u64;
        while batch.len() < want {
            let p = &cycle.packets[idx];
            match Mbuf::from_bytes(pool, &p.frame) {
                Ok(m) => {
                    bytes += p.frame.len() as u64;
                    if batch.push(m).is_err() {
                        break;
                    }
                }
                Err(_) => {
                    r.no_mbuf += 1;
                    break;
                }
            }
            idx += 1;
            if idx == n {
                idx = 0;
                round = round.wrapping_add(1);
                cycle.set_round(round);
            }
        }
        let mut first = true;
        let mut refused = 0;
        while !batch.is_empty() {
            let sent = tx.tx(&mut batch);
            r.packets += sent as u64;
            if !first || sent == 0 {
                r.retries += 1;
            }
            first = false;
            refused = if sent == 0 { refused + 1 } else { 0 };
            if refused >= SPINS_BEFORE_NAP {
                std::thread::sleep(NAP);
            }
            if opts.duration.is_some_and(|d| start.elapsed() >= d) {
                // The rest is freed with the batch.
                r.bytes += bytes;
                break 'outer;
            }
        }
        r.bytes += bytes;
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(&r.finish(start.elapsed().as_secs_f64()));
        }
    }
    cycle.set_round(0);
    r.finish(start.elapsed().as_secs_f64())
}

/// Waits for TSC tick `until`: sleeps while it is more than a nap away,
/// spins for the rest, so a low rate does not burn a core.
fn wait_until(until: u64, hz: u64) {
    loop {
        let now = tsc_now();
        if now >= until {
            return;
        }
        let left_ns = u128::from(until - now) * 1_000_000_000 / u128::from(hz);
        if left_ns > 2 * NAP.as_nanos() {
            std::thread::sleep(NAP);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// When to stop receiving.
#[derive(Debug, Clone, Default)]
pub struct RecvOptions {
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Stop once nothing arrived for this long after the first packet.
    pub idle: Option<Duration>,
}

/// What was received.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct RecvReport {
    pub packets: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mpps: f64,
    pub check: Report,
}

impl std::fmt::Display for RecvReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {} packets ({} bytes) in {:.3} s: {:.3} Mpps\ncheck: {}",
            self.packets, self.bytes, self.seconds, self.mpps, self.check
        )
    }
}

/// Receives and checks sequence numbers until an option says stop. The
/// rate is over the time from the first packet to the last.
pub fn receive(rx: &mut RxQueue, opts: &RecvOptions) -> RecvReport {
    let start = Instant::now();
    let mut checker = Checker::new();
    let mut r = RecvReport::default();
    let mut first_rx: Option<Instant> = None;
    let mut last_rx: Option<Instant> = None;
    let mut batch: Batch<BURST> = Batch::new();
    let mut empty = 0;
    loop {
        if opts.duration.is_some_and(|d| start.elapsed() >= d)
            || opts.count.is_some_and(|c| r.packets >= c)
        {
            break;
        }
        if rx.rx(&mut batch) == 0 {
            if let (Some(idle), Some(t)) = (opts.idle, last_rx) {
                if t.elapsed() >= idle {
                    break;
                }
            }
            empty += 1;
            if empty >= SPINS_BEFORE_NAP {
                std::thread::sleep(NAP);
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        empty = 0;
        let now = Instant::now();
        first_rx.get_or_insert(now);
        last_rx = Some(now);
        for m in batch.drain() {
            r.packets += 1;
            r.bytes += m.pkt_len() as u64;
            if m.nb_segs() == 1 {
                checker.frame(m.data(), payload_offset(m.data()));
            } else {
                let data = m.to_vec();
                checker.frame(&data, payload_offset(&data));
            }
        }
    }
    if let (Some(a), Some(b)) = (first_rx, last_rx) {
        r.seconds = (b - a).as_secs_f64();
    }
    if r.seconds > 0.0 {
        r.mpps = r.packets as f64 / r.seconds / 1e6;
    }
    r.check = checker.report();
    r
}
