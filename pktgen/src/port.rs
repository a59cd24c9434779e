//! Sending and receiving through a DPDK port, with the safe
//! `dataplane::dpdk` layer.

use std::time::{Duration, Instant};

use dataplane::dpdk::{
    monotonic_ns, tsc_hz, tsc_now, Batch, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue,
};
use dataplane::frame::Frame;
use serde::Serialize;

use crate::check::{Checker, Report};
use crate::gen::Cycle;
use crate::latency::{Latency, LatencyReport};
use crate::pcap::payload_offset;
use crate::stamp;

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
    open_with_pool(spec, "pktgen_pool")
}

/// As [`open`], with a pool of its own named `pool` (a second port).
pub fn open_with_pool(spec: &str, pool: &str) -> Result<Opened, String> {
    let pool = Mempool::new(pool, POOL_MBUFS, 256, DATA_ROOM, -1).map_err(|e| e.to_string())?;
    let mut port = Port::open(spec).map_err(|e| e.to_string())?;
    port.configure(&PortConfig::default(), &pool)
        .map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    let rx = port.rx_queue(0).map_err(|e| e.to_string())?;
    let tx = port.tx_queue(0).map_err(|e| e.to_string())?;
    Ok(Opened { port, rx, tx, pool })
}

/// Waits until every port's link is up (a memif or vhost peer connects
/// after the port starts), for at most `limit`.
pub fn wait_for_links(ports: &[(&str, &Port)], limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    for (spec, port) in ports {
        while !port.link().map_err(|e| e.to_string())?.up {
            if start.elapsed() >= limit {
                return Err(format!("{spec}: link still down after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
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
/// Frames with a send-time field carry the time their burst was built.
pub fn send(
    cycle: &mut Cycle,
    tx: &mut TxQueue,
    pool: &Mempool,
    opts: &SendOptions,
    progress: impl FnMut(&SendReport),
) -> SendReport {
    send_between(cycle, tx, pool, opts, progress, None)
}

/// [`send`], calling `between` instead of napping while it waits for the
/// next burst's time (a receiver that must not sleep).
fn send_between(
    cycle: &mut Cycle,
    tx: &mut TxQueue,
    pool: &Mempool,
    opts: &SendOptions,
    mut progress: impl FnMut(&SendReport),
    mut between: Option<&mut dyn FnMut()>,
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
            match between.as_mut() {
                Some(f) => {
                    while tsc_now() < next_burst {
                        f();
                    }
                }
                None => wait_until(next_burst, hz),
            }
            next_burst = next_burst.wrapping_add(step);
        }
        let want = (total - r.packets).min(burst as u64) as usize;
        let mut bytes = 0u64;
        let now_ns = monotonic_ns();
        while batch.len() < want {
            cycle.set_send_time(idx, now_ns);
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
    /// Receive time − send time of frames that carried one.
    pub latency: Option<LatencyReport>,
}

impl std::fmt::Display for RecvReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {} packets ({} bytes) in {:.3} s: {:.3} Mpps\ncheck: {}",
            self.packets, self.bytes, self.seconds, self.mpps, self.check
        )?;
        if let Some(l) = &self.latency {
            write!(f, "\nlatency: {l}")?;
        }
        Ok(())
    }
}

/// A receive side: counts, checks sequence numbers and, for frames with a
/// send time, records receive time − send time.
pub struct Receiver {
    checker: Checker,
    latency: Latency,
    r: RecvReport,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
    batch: Batch<BURST>,
}

impl Default for Receiver {
    fn default() -> Receiver {
        Receiver::new()
    }
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver {
            checker: Checker::new(),
            latency: Latency::new(),
            r: RecvReport::default(),
            first_rx: None,
            last_rx: None,
            batch: Batch::new(),
        }
    }

    /// One receive burst; returns the frames it brought.
    pub fn poll(&mut self, rx: &mut RxQueue) -> usize {
        let n = rx.rx(&mut self.batch);
        if n == 0 {
            return 0;
        }
        // One receive time for the burst: taken before any frame is read.
        let now_ns = monotonic_ns();
        let now = Instant::now();
        self.first_rx.get_or_insert(now);
        self.last_rx = Some(now);
        for m in self.batch.drain() {
            self.r.packets += 1;
            self.r.bytes += m.pkt_len() as u64;
            let owned;
            let data = if m.nb_segs() == 1 {
                m.data()
            } else {
                owned = m.to_vec();
                &owned
            };
            let at = self.checker.frame(data, payload_offset(data));
            if let Some(sent) = at
                .and_then(|at| data.get(at + stamp::LEN..))
                .and_then(stamp::read_time)
            {
                self.latency.record(now_ns.saturating_sub(sent));
            }
        }
        n
    }

    /// When the last frame came, if one did.
    pub fn last_rx(&self) -> Option<Instant> {
        self.last_rx
    }

    /// Frames received so far.
    pub fn packets(&self) -> u64 {
        self.r.packets
    }

    /// The report. The rate is over the time from the first frame to the last.
    pub fn report(&self) -> RecvReport {
        let mut r = self.r;
        if let (Some(a), Some(b)) = (self.first_rx, self.last_rx) {
            r.seconds = (b - a).as_secs_f64();
        }
        if r.seconds > 0.0 {
            r.mpps = r.packets as f64 / r.seconds / 1e6;
        }
        r.check = self.checker.report();
        r.latency = self.latency.report();
        r
    }
}

/// Receives and checks sequence numbers until an option says stop.
pub fn receive(rx: &mut RxQueue, opts: &RecvOptions) -> RecvReport {
    let start = Instant::now();
    let mut recv = Receiver::new();
    let mut empty = 0;
    loop {
        if opts.duration.is_some_and(|d| start.elapsed() >= d)
            || opts.count.is_some_and(|c| recv.packets() >= c)
        {
            break;
        }
        if recv.poll(rx) == 0 {
            if let (Some(idle), Some(t)) = (opts.idle, recv.last_rx()) {
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
    }
    recv.report()
}

/// What a latency run sent and received.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LoopReport {
    pub sent: SendReport,
    pub received: RecvReport,
}

/// Sends through `tx` as [`send`] does and receives on `rx` in the same
/// loop, one thread, one clock: between bursts it polls `rx` without ever
/// sleeping, so a frame's delay is not the receiver's nap. After the last
/// burst it receives until nothing came for `drain`.
pub fn send_and_receive(
    cycle: &mut Cycle,
    tx: &mut TxQueue,
    pool: &Mempool,
    rx: &mut RxQueue,
    opts: &SendOptions,
    drain: Duration,
    progress: impl FnMut(&SendReport),
) -> LoopReport {
    let mut recv = Receiver::new();
    let sent = {
        let mut poll = || {
            recv.poll(rx);
        };
        send_between(cycle, tx, pool, opts, progress, Some(&mut poll))
    };
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < drain {
        if recv.poll(rx) > 0 {
            quiet_since = Instant::now();
        }
    }
    LoopReport {
        sent,
        received: recv.report(),
    }
}
