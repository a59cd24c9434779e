//! A capture input's replay thread: reads the file, converts each frame to
//! Ethernet, paces it, and sends it into its `net_ring` port, where a
//! worker (or the distributor) receives it like a NIC's packet.
//!
//! The thread is neither a worker nor the main lcore: it may sleep to pace
//! and wait when the ring or the pool is full, which a worker must never
//! do. A full ring slows the replay down (nothing is dropped); at capture
//! timing the schedule then moves on from where it was held, so frames
//! keep their spacing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::dpdk::{Batch, Mbuf, Mempool, TxQueue};
use dataplane::runtime::worker::run_state;

use super::file::CaptureReader;
use super::link::{carried, to_ethernet};
use super::Timing;

/// Largest frame handed over: an IP packet's length field bounds it. BIG
/// TCP captures (GSO super-packets over 64 KiB) are skipped and counted,
/// as `net_pcap` drops them on receipt.
pub const MAX_FRAME: usize = 65_535;
/// Between two repetitions of a file, in capture time (and in real time
/// at capture timing): a dedup window shorter than this never merges a
/// packet with its next repetition.
pub const LOOP_GAP_NS: u64 = 1_000_000_000;

/// What to replay, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub file: PathBuf,
    pub timing: Timing,
    /// Capture timing divided by this (2.0: twice as fast).
    pub speed: f64,
    /// Times the file is played (at least 1).
    pub loops: u32,
}

// `speed` is checked finite and positive when the config loads.
impl Eq for Replay {}

/// A replay's counters, shared with the main lcore. Every frame read ends
/// in exactly one of `fed`, `too_big`, `not_carried`, `not_ip` (but those
/// still batched when the appliance stops).
#[derive(Debug, Default)]
pub struct ReplayStats {
    pub read: AtomicU64,
    /// Sent into the port (the workers count them as `rx`).
    pub fed: AtomicU64,
    pub too_big: AtomicU64,
    /// Of an interface whose link type Sluice does not carry.
    pub not_carried: AtomicU64,
    /// A cooked or loopback frame that is not IP (netlink, CAN…), or
    /// whose link header is cut short.
    pub not_ip: AtomicU64,
    pub loops_done: AtomicU64,
    /// The file ended in the middle of a record (reading stopped there).
    pub truncated: AtomicBool,
    /// The thread has finished (every loop, an error, or shutdown).
    pub finished: AtomicBool,
    pub error: Mutex<Option<String>>,
}

impl ReplayStats {
    /// One line for the report and `show port stats`.
    pub fn describe(&self, replay: &Replay) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let state = if let Some(e) = self.error.lock().ok().and_then(|e| e.clone()) {
            format!("stopped: {e}")
        } else if self.finished.load(Ordering::Acquire) {
            "done".to_owned()
        } else {
            "replaying".to_owned()
        };
        format!(
            "file {} (timing {}{}, loop {}): read {} fed {} too-big {} link-type-not-carried {} not-ip {} loops-done {}{}; {state}",
            replay.file.display(),
            replay.timing.name(),
            if replay.timing == Timing::Capture {
                format!(" x{}", replay.speed)
            } else {
                String::new()
            },
            replay.loops,
            get(&self.read),
            get(&self.fed),
            get(&self.too_big),
            get(&self.not_carried),
            get(&self.not_ip),
            get(&self.loops_done),
            if self.truncated.load(Ordering::Relaxed) {
                " (the file ends inside a record)"
            } else {
                ""
            },
        )
    }
}

/// Everything a replay thread needs.
pub struct Replayer {
    pub replay: Replay,
    /// The port the frames count as received on.
    pub port: u16,
    /// The `net_ring` port's TX queue: what is sent there, its RX queue gives.
    pub txq: TxQueue,
    pub pool: Arc<Mempool>,
    /// Free mbufs the replay leaves to the workers: below this it waits.
    pub reserve: u32,
    /// The workers' run state: the replay waits while they are paused and
    /// ends when they exit.
    pub run: Arc<AtomicU8>,
    pub stats: Arc<ReplayStats>,
}

/// Why a replay ended early.
enum Stop {
    Exit,
    Failed(String),
}

/// The real-time schedule of capture timing: a frame captured at `t` is
/// due `(t - t0) / speed` after the first one was sent, plus every hold.
struct Pace {
    speed: f64,
    origin: Option<(Instant, u64)>,
}

impl Pace {
    fn due(&mut self, t: u64) -> Instant {
        let (at, t0) = *self.origin.get_or_insert((Instant::now(), t));
        let ns = t.saturating_sub(t0) as f64 / self.speed;
        at + Duration::from_nanos(ns.min(u64::MAX as f64) as u64)
    }

    /// The replay was held (ring full, paused) for `d`: shift the schedule.
    fn hold(&mut self, d: Duration) {
        if let Some((at, _)) = &mut self.origin {
            *at += d;
        }
    }
}

impl Replayer {
    /// Starts the thread.
    pub fn spawn(self, name: &str) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("replay-{name}"))
            .spawn(move || self.run())
    }

    fn run(mut self) {
        match self.replay_all() {
            Ok(()) | Err(Stop::Exit) => {}
            Err(Stop::Failed(e)) => {
                if let Ok(mut slot) = self.stats.error.lock() {
                    *slot = Some(e);
                }
            }
        }
        self.stats.finished.store(true, Ordering::Release);
    }

    fn state(&self) -> u8 {
        self.run.load(Ordering::Acquire)
    }

    fn replay_all(&mut self) -> Result<(), Stop> {
        let mut batch: Batch<32> = Batch::new();
        let mut frame = Vec::with_capacity(MAX_FRAME);
        let mut pace = Pace {
            speed: if self.replay.speed > 0.0 {
                self.replay.speed
            } else {
                1.0
            },
            origin: None,
        };
        let capture = self.replay.timing == Timing::Capture;
        let mut shift = 0u64;
        for _ in 0..self.replay.loops.max(1) {
            let mut reader = CaptureReader::open(&self.replay.file)
                .map_err(|e| Stop::Failed(format!("{}: {e}", self.replay.file.display())))?;
            let (mut first, mut last) = (None::<u64>, 0u64);
            loop {
                let rec = match reader.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        self.send(&mut batch, &mut pace)?;
                        return Err(Stop::Failed(format!("{}: {e}", self.replay.file.display())));
                    }
                };
                self.stats.read.fetch_add(1, Ordering::Relaxed);
                let t0 = *first.get_or_insert(rec.time_ns);
                last = last.max(rec.time_ns).max(t0);
                if !carried(rec.link.link_type) {
                    self.stats.not_carried.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                frame.clear();
                if to_ethernet(rec.link.link_type, rec.without_fcs(), &mut frame).is_err() {
                    self.stats.not_ip.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if frame.len() > MAX_FRAME {
                    self.stats.too_big.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let time = rec.time_ns.saturating_add(shift);
                if capture {
                    self.wait_until(pace.due(time), &mut batch, &mut pace)?;
                }
                let mut m = self.alloc(&frame, &mut batch, &mut pace)?;
                m.set_port(self.port);
                if capture {
                    m.set_capture_time_ns(time);
                }
                if let Err(m) = batch.push(m) {
                    // Unreachable: a full batch is sent below before the next push.
                    drop(m);
                }
                if batch.is_full() {
                    self.send(&mut batch, &mut pace)?;
                }
            }
            if reader.truncated() {
                self.stats.truncated.store(true, Ordering::Relaxed);
            }
            self.send(&mut batch, &mut pace)?;
            self.stats.loops_done.fetch_add(1, Ordering::Relaxed);
            shift = shift.saturating_add(last - first.unwrap_or(last) + LOOP_GAP_NS);
        }
        Ok(())
    }

    /// Sleeps until `due` (sending what is batched first), in short steps
    /// so that shutdown is not held up by a long gap in the capture.
    fn wait_until(
        &mut self,
        due: Instant,
        batch: &mut Batch<32>,
        pace: &mut Pace,
    ) -> Result<(), Stop> {
        if Instant::now() >= due {
            return Ok(());
        }
        self.send(batch, pace)?;
        loop {
            if self.state() == run_state::EXIT {
                return Err(Stop::Exit);
            }
            let now = Instant::now();
            if now >= due {
                return Ok(());
            }
            std::thread::sleep((due - now).min(Duration::from_millis(10)));
        }
    }

    /// An mbuf holding `frame`, once the pool has more than the reserve
    /// free (what is batched is sent first, so the workers can free some).
    fn alloc(
        &mut self,
        frame: &[u8],
        batch: &mut Batch<32>,
        pace: &mut Pace,
    ) -> Result<Mbuf, Stop> {
        loop {
            if self.pool.available() > self.reserve {
                if let Ok(m) = Mbuf::from_bytes(&self.pool, frame) {
                    return Ok(m);
                }
            }
            self.send(batch, pace)?;
            self.nap(pace)?;
        }
    }

    /// Sends the whole batch into the port, waiting while the ring is full
    /// or the workers are paused.
    fn send(&mut self, batch: &mut Batch<32>, pace: &mut Pace) -> Result<(), Stop> {
        while !batch.is_empty() {
            if self.state() == run_state::RUNNING {
                let n = self.txq.tx(batch);
                self.stats.fed.fetch_add(n as u64, Ordering::Relaxed);
                if batch.is_empty() {
                    break;
                }
            }
            self.nap(pace)?;
        }
        Ok(())
    }

    /// Waits a moment for room (or for `start`), holding the schedule.
    fn nap(&mut self, pace: &mut Pace) -> Result<(), Stop> {
        if self.state() == run_state::EXIT {
            return Err(Stop::Exit);
        }
        let d = if self.state() == run_state::PAUSED {
            Duration::from_millis(1)
        } else {
            Duration::from_micros(50)
        };
        let start = Instant::now();
        std::thread::sleep(d);
        pace.hold(start.elapsed());
        Ok(())
    }
}
