//! The data-service stream: flow records and appliance events published
//! to NATS JetStream as JSON (docs/STREAM.md; schema in
//! docs/stream.schema.json), on `<prefix>.<appliance>.flows` and
//! `<prefix>.<appliance>.events`.
//!
//! Anyone may publish through a cloned [`StreamSender`]: the intake
//! thread, the flow exporter, the main loop. A message gets its ID when it
//! is queued and keeps it across retries: JetStream stores a message ID
//! once within the stream's duplicate window (the `Nats-Msg-Id` header),
//! so a retry after a lost ack is not stored twice — at-least-once
//! delivery without duplicates. The queue is bounded (`[stream] buffer`):
//! while the server is unreachable messages wait there, and one that
//! finds it full is counted in `overflow`, never dropped silently.
//!
//! The client is the official `async-nats`, on a current-thread tokio
//! runtime in a thread of its own (`publisher`), off the main lcore.

mod publisher;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::config::StreamConfig;
use crate::log::log;

/// What a message is about: one subject per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Flows,
    Events,
}

impl Kind {
    pub fn token(self) -> &'static str {
        match self {
            Kind::Flows => "flows",
            Kind::Events => "events",
        }
    }
}

/// One message on its way: its subject, its ID and its JSON body.
#[derive(Debug, Clone)]
struct Outgoing {
    subject: String,
    id: String,
    body: Vec<u8>,
}

/// The stream's counters: written by senders and the publisher thread,
/// read by the console and Prometheus.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Messages accepted into the buffer.
    pub queued: AtomicU64,
    /// Messages the server acknowledged as stored.
    pub acked: AtomicU64,
    /// Of those, acknowledgements that said "duplicate": a retry of a
    /// message already stored (not stored again).
    pub duplicates: AtomicU64,
    /// Messages that found the buffer full: not published.
    pub overflow: AtomicU64,
    /// Publish attempts that got no acknowledgement and were sent again.
    pub retries: AtomicU64,
    /// Messages still buffered when the appliance stopped: not published.
    pub unsent_at_exit: AtomicU64,
    /// Whether the client holds a connection to a server now.
    pub connected: AtomicBool,
    /// Connections made (the first and every reconnect).
    pub connects: AtomicU64,
}

/// A plain copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    pub queued: u64,
    pub acked: u64,
    pub duplicates: u64,
    pub overflow: u64,
    pub retries: u64,
    pub unsent_at_exit: u64,
    pub connected: bool,
    pub connects: u64,
}

impl StreamCounters {
    pub fn totals(&self) -> StreamTotals {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamTotals {
            queued: g(&self.queued),
            acked: g(&self.acked),
            duplicates: g(&self.duplicates),
            overflow: g(&self.overflow),
            retries: g(&self.retries),
            unsent_at_exit: g(&self.unsent_at_exit),
            connected: self.connected.load(Ordering::Relaxed),
            connects: g(&self.connects),
        }
    }
}

/// Queues messages for the stream; cheap to clone, one per producer.
#[derive(Clone)]
pub struct StreamSender {
    tx: mpsc::Sender<Outgoing>,
    counters: Arc<StreamCounters>,
    appliance: Arc<str>,
    /// `<prefix>.<appliance>.`
    subject_base: Arc<str>,
    /// Unique to this run of the appliance: IDs never repeat across
    /// restarts within the duplicate window.
    run_id: Arc<str>,
    next: Arc<AtomicU64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl StreamSender {
    /// Queues `fields` as a message of `kind`: the envelope (`id`,
    /// `appliance`, `time_ms`) is added here. False when the buffer was
    /// full (counted in `overflow`).
    pub fn send(&self, kind: Kind, fields: Map<String, Value>) -> bool {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}-{seq}", self.appliance, self.run_id);
        let mut body = Map::with_capacity(fields.len() + 3);
        body.insert("id".into(), json!(id));
        body.insert("appliance".into(), json!(&*self.appliance));
        body.insert("time_ms".into(), json!(now_ms()));
        body.extend(fields);
        let msg = Outgoing {
            subject: format!("{}{}", self.subject_base, kind.token()),
            id,
            body: Value::Object(body).to_string().into_bytes(),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.counters.overflow.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// An appliance event: `event` names it, `fields` say the rest.
    pub fn event(&self, event: &str, mut fields: Map<String, Value>) -> bool {
        fields.insert("event".into(), json!(event));
        self.send(Kind::Events, fields)
    }

    pub fn counters(&self) -> &Arc<StreamCounters> {
        &self.counters
    }
}

/// The publisher thread and a sender for the main loop.
pub struct Stream {
    sender: StreamSender,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    servers: Vec<String>,
    stream: String,
}

/// How long a stopping appliance waits for the buffer to drain.
const EXIT_GRACE: Duration = Duration::from_secs(3);

impl Stream {
    /// Starts the publisher for `cfg`, as appliance `appliance`. It
    /// connects in the background: an unreachable server is not an error
    /// here (messages wait in the buffer).
    pub fn start(cfg: &StreamConfig, appliance: &str) -> Result<Stream, String> {
        let (tx, rx) = mpsc::channel(cfg.buffer as usize);
        let counters = Arc::new(StreamCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let run_id = format!("{:x}", now_ms() ^ u64::from(std::process::id()) << 40);
        let sender = StreamSender {
            tx,
            counters: Arc::clone(&counters),
            appliance: appliance.into(),
            subject_base: format!("{}.{appliance}.", cfg.subject_prefix).into(),
            run_id: run_id.into(),
            next: Arc::new(AtomicU64::new(1)),
        };
        let job = publisher::Job {
            cfg: cfg.clone(),
            subjects: format!("{}.>", cfg.subject_prefix),
            rx,
            counters,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("sluice-stream".into())
            .spawn(move || publisher::run(job))
            .map_err(|e| format!("stream: cannot start its thread: {e}"))?;
        log(format!(
            "stream: publishing to {} (stream {:?}, subjects {}.{appliance}.*)",
            cfg.servers.join(", "),
            cfg.stream,
            cfg.subject_prefix
        ));
        Ok(Stream {
            sender,
            stop,
            thread: Some(thread),
            servers: cfg.servers.clone(),
            stream: cfg.stream.clone(),
        })
    }

    pub fn sender(&self) -> &StreamSender {
        &self.sender
    }

    pub fn totals(&self) -> StreamTotals {
        self.sender.counters.totals()
    }

    /// `show stream`.
    pub fn describe(&self) -> String {
        let t = self.totals();
        let mut out = format!(
            "stream {:?} on {}: {}\n",
            self.stream,
            self.servers.join(", "),
            if t.connected {
                "connected"
            } else {
                "not connected"
            }
        );
        for (k, v) in [
            ("queued", t.queued),
            ("acked", t.acked),
            ("duplicates", t.duplicates),
            ("overflow", t.overflow),
            ("retries", t.retries),
            ("buffered", t.queued.saturating_sub(t.acked)),
            ("connects", t.connects),
        ] {
            out.push_str(&format!("  {k:<20}{v:>16}\n"));
        }
        out
    }

    /// Publishes what is buffered (for a few seconds at most), then stops
    /// the thread; what is left is counted in `unsent_at_exit`.
    pub fn stop(mut self) -> StreamTotals {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + EXIT_GRACE + Duration::from_secs(1);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.totals()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
