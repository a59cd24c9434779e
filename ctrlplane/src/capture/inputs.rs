//! The appliance's capture inputs: one replay thread per input, started
//! once the workers poll, watched for idleness, described in the report,
//! and joined before the ports close.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use dataplane::dpdk::{register_capture_time, Mempool, Port};

use super::replay::{Replay, ReplayStats, Replayer};
use super::Timing;

struct Input {
    name: String,
    replay: Replay,
    stats: Arc<ReplayStats>,
    thread: Option<JoinHandle<()>>,
}

/// The running replays. Dropping it joins them (the workers' run word must
/// say `EXIT` by then, which `Appliance`'s own drop sees to).
#[derive(Default)]
pub struct CaptureInputs {
    inputs: Vec<Input>,
}

impl CaptureInputs {
    /// Starts a replay into each `(port name, replay, its net_ring port)`.
    /// Each leaves `reserve` mbufs of `pool` to the workers, and follows
    /// the workers' run word (waits while paused, ends on exit).
    pub fn start<'a>(
        inputs: impl IntoIterator<Item = (&'a str, Replay, &'a Port)>,
        pool: &Arc<Mempool>,
        reserve: u32,
        run: &Arc<AtomicU8>,
    ) -> Result<CaptureInputs, String> {
        let mut out = CaptureInputs::default();
        for (name, replay, port) in inputs {
            if replay.timing == Timing::Capture {
                register_capture_time().map_err(|e| format!("port {name:?}: {e}"))?;
            }
            let txq = port
                .tx_queue(0)
                .map_err(|e| format!("port {name:?}: {e}"))?;
            let stats = Arc::new(ReplayStats::default());
            let thread = Replayer {
                replay: replay.clone(),
                port: port.id(),
                txq,
                pool: Arc::clone(pool),
                reserve,
                run: Arc::clone(run),
                stats: Arc::clone(&stats),
            }
            .spawn(name)
            .map_err(|e| format!("port {name:?}: cannot start its replay thread: {e}"))?;
            out.inputs.push(Input {
                name: name.to_owned(),
                replay,
                stats,
                thread: Some(thread),
            });
        }
        Ok(out)
    }

    /// Whether a replay is still going (an input that is still reading is
    /// not idle, however long its capture's silence).
    pub fn busy(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| !i.stats.finished.load(Ordering::Acquire))
    }

    /// One line per capture input, for the report and `show port stats`.
    pub fn describe(&self) -> String {
        self.inputs
            .iter()
            .map(|i| {
                format!(
                    "  capture input {:?}: {}\n",
                    i.name,
                    i.stats.describe(&i.replay)
                )
            })
            .collect()
    }

    /// Waits for every replay thread to end.
    pub fn join(&mut self) {
        for i in &mut self.inputs {
            if let Some(t) = i.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for CaptureInputs {
    fn drop(&mut self) {
        self.join();
    }
}
