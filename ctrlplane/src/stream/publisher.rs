//! The publisher thread: a current-thread tokio runtime running one task
//! that takes messages from the buffer, publishes them with their IDs and
//! waits for JetStream's acknowledgements. A message leaves the buffer's
//! window only once acknowledged; one without an acknowledgement (server
//! gone, timeout, stream missing) is sent again, with the same ID, until
//! it is.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{ConnectOptions, Event};
use tokio::sync::mpsc;

use super::{Outgoing, StreamCounters, EXIT_GRACE};
use crate::config::StreamConfig;
use crate::log::log;

/// Messages published before their acknowledgements are awaited: enough
/// to keep the link busy, few enough to retry cheaply.
const WINDOW: usize = 256;
/// How long an acknowledgement may take before the message is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed round, growing to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct Job {
    pub cfg: StreamConfig,
    /// The subjects the stream stores when this publisher creates it.
    pub subjects: String,
    pub rx: mpsc::Receiver<Outgoing>,
    pub counters: Arc<StreamCounters>,
    pub stop: Arc<AtomicBool>,
}

pub(super) fn run(job: Job) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(format!(
                "stream: cannot start its runtime: {e}: nothing is published"
            ));
            return;
        }
    };
    rt.block_on(publish(job));
}

fn servers(cfg: &StreamConfig) -> Vec<String> {
    cfg.servers
        .iter()
        .map(|s| {
            if s.contains("://") {
                s.clone()
            } else {
                format!("nats://{s}")
            }
        })
        .collect()
}

async fn connect(job: &Job) -> Option<async_nats::Client> {
    let counters = Arc::clone(&job.counters);
    let opts = ConnectOptions::new()
        .name("sluice")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 100).min(1000)))
        .event_callback(move |ev| {
            let c = Arc::clone(&counters);
            async move {
                match ev {
                    Event::Connected => {
                        c.connected.store(true, Ordering::Relaxed);
                        c.connects.fetch_add(1, Ordering::Relaxed);
                        log("stream: connected");
                    }
                    Event::Disconnected => {
                        c.connected.store(false, Ordering::Relaxed);
                        log("stream: disconnected: messages wait in the buffer");
                    }
                    _ => {}
                }
            }
        });
    let addrs: Vec<async_nats::ServerAddr> = servers(&job.cfg)
        .iter()
        .filter_map(|s| match s.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                log(format!("stream: server {s:?}: {e}"));
                None
            }
        })
        .collect();
    match opts.connect(addrs).await {
        Ok(c) => Some(c),
        Err(e) => {
            log(format!(
                "stream: cannot set up the client: {e}: nothing is published"
            ));
            None
        }
    }
}

/// The stream as this appliance creates it when the server has none.
fn stream_config(job: &Job) -> stream::Config {
    stream::Config {
        name: job.cfg.stream.clone(),
        subjects: vec![job.subjects.clone()],
        num_replicas: usize::from(job.cfg.replicas),
        duplicate_window: Duration::from_secs(u64::from(job.cfg.dedup_window_s)),
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

async fn publish(mut job: Job) {
    let Some(client) = connect(&job).await else {
        return;
    };
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    let mut window: VecDeque<Outgoing> = VecDeque::with_capacity(WINDOW);
    let mut ensured = false;
    let mut backoff = MIN_BACKOFF;
    let mut stopping: Option<Instant> = None;
    let mut said_missing = false;
    loop {
        if stopping.is_none() && job.stop.load(Ordering::Acquire) {
            stopping = Some(Instant::now());
        }
        if let Some(t) = stopping {
            let drained = window.is_empty() && job.rx.is_empty();
            if drained || t.elapsed() >= EXIT_GRACE {
                let left = window.len() + job.rx.len();
                job.counters
                    .unsent_at_exit
                    .fetch_add(left as u64, Ordering::Relaxed);
                if left > 0 {
                    log(format!(
                        "stream: {left} message(s) still buffered at exit: not published"
                    ));
                }
                return;
            }
        }
        if !ensured {
            match js.get_or_create_stream(stream_config(&job)).await {
                Ok(_) => {
                    ensured = true;
                    said_missing = false;
                }
                Err(e) => {
                    if !said_missing {
                        log(format!(
                            "stream: stream {:?} not reachable yet: {e}",
                            job.cfg.stream
                        ));
                        said_missing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        while window.len() < WINDOW {
            match job.rx.try_recv() {
                Ok(m) => window.push_back(m),
                Err(_) => break,
            }
        }
        if window.is_empty() {
            if let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(50), job.rx.recv()).await
            {
                window.push_back(m);
            }
            continue;
        }
        let failed = round(&js, &mut window, &job.counters).await;
        if failed == 0 {
            backoff = MIN_BACKOFF;
            continue;
        }
        job.counters
            .retries
            .fetch_add(failed as u64, Ordering::Relaxed);
        // The stream may be what is missing (a server that lost its store):
        // make sure of it again before the retry.
        ensured = false;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Publishes every message of the window and awaits the acknowledgements;
/// acknowledged ones leave it. Returns how many are left to retry.
async fn round(
    js: &jetstream::Context,
    window: &mut VecDeque<Outgoing>,
    counters: &StreamCounters,
) -> usize {
    let mut acks = Vec::with_capacity(window.len());
    for m in window.iter() {
        let msg = PublishMessage::build()
            .message_id(&m.id)
            .payload(m.body.clone().into());
        acks.push(js.send_publish(m.subject.clone(), msg).await.ok());
    }
    let mut left = VecDeque::new();
    for (m, ack) in window.drain(..).zip(acks) {
        let stored = match ack {
            Some(f) => f.await.ok(),
            None => None,
        };
        match stored {
            Some(a) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
                if a.duplicate {
                    counters.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => left.push_back(m),
        }
    }
    let n = left.len();
    *window = left;
    n
}
