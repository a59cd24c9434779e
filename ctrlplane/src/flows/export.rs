//! The export thread: flow records from any source (the workers' rings,
//! intake, a channel) to every sink (IPFIX collectors, the data-service
//! stream). Neither the main lcore nor a worker ever waits on a collector.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use dataplane::flow::FlowRecord;

use super::ipfix::MessageBuilder;

/// How often the thread polls its sources and ticks its sinks.
pub const TICK: Duration = Duration::from_millis(20);
/// Records the channel holds for the thread (intake, tests).
const CHANNEL: usize = 65_536;

/// Where records come from besides the channel: polled every tick.
pub trait FlowSource: Send {
    /// Hands every waiting record to `out`; returns how many.
    fn drain(&mut self, out: &mut dyn FnMut(FlowRecord)) -> usize;
}

/// Where records go.
pub trait FlowSink: Send {
    fn record(&mut self, r: &FlowRecord);
    /// Called every [`TICK`]: send what waits, refresh what is due.
    fn tick(&mut self, now: Instant);
    /// Sends everything buffered (at shutdown).
    fn flush(&mut self);
}

/// Counters of an IPFIX exporter.
#[derive(Debug, Default)]
pub struct IpfixStats {
    /// Data records sent (once per record, whatever the collector count).
    pub records: AtomicU64,
    /// Messages sent, per collector.
    pub messages: AtomicU64,
    /// Template sets sent, per collector.
    pub templates: AtomicU64,
    /// Datagrams a collector's send refused.
    pub send_errors: AtomicU64,
}

/// IPFIX export settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfixConfig {
    pub collectors: Vec<SocketAddr>,
    /// Templates go out again this often (RFC 7011 §8.4 for UDP).
    pub template_refresh: Duration,
    /// The observation domain ID in every message (the appliance ID).
    pub observation_domain: u32,
    /// Largest message (UDP payload) in bytes.
    pub max_message: usize,
}

/// Sends records as IPFIX over UDP to one or more collectors.
#[derive(Debug)]
pub struct IpfixExporter {
    cfg: IpfixConfig,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    builder: MessageBuilder,
    next_templates: Option<Instant>,
    stats: Arc<IpfixStats>,
}

impl IpfixExporter {
    /// Binds the sending sockets (an ephemeral port per address family).
    pub fn new(cfg: IpfixConfig) -> std::io::Result<Self> {
        let bind = |want_v6: bool| -> std::io::Result<Option<UdpSocket>> {
            if !cfg.collectors.iter().any(|c| c.is_ipv6() == want_v6) {
                return Ok(None);
            }
            let any: SocketAddr = if want_v6 {
                "[::]:0".parse().expect("literal")
            } else {
                "0.0.0.0:0".parse().expect("literal")
            };
            UdpSocket::bind(any).map(Some)
        };
        Ok(IpfixExporter {
            v4: bind(false)?,
            v6: bind(true)?,
            builder: MessageBuilder::new(cfg.observation_domain, cfg.max_message),
            next_templates: None,
            stats: Arc::default(),
            cfg,
        })
    }

    pub fn stats(&self) -> Arc<IpfixStats> {
        Arc::clone(&self.stats)
    }

    fn templates_due(&mut self, now: Instant) -> bool {
        match self.next_templates {
            Some(t) if now < t => false,
            _ => {
                self.next_templates = Some(now + self.cfg.template_refresh);
                true
            }
        }
    }

    fn send(&mut self) {
        let records = self.builder.records();
        if self.builder.is_empty() {
            self.builder.clear();
            return;
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let msg = self.builder.finish(secs);
        for c in &self.cfg.collectors {
            let sock = if c.is_ipv6() { &self.v6 } else { &self.v4 };
            let sent = sock.as_ref().map(|s| s.send_to(msg, c));
            match sent {
                Some(Ok(n)) if n == msg.len() => {
                    self.stats.messages.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.stats
            .records
            .fetch_add(u64::from(records), Ordering::Relaxed);
        self.builder.clear();
    }

    fn start_message(&mut self, now: Instant) {
        if self.builder.is_empty() && self.templates_due(now) {
            self.builder.add_templates();
            let n = self.cfg.collectors.len() as u64;
            self.stats.templates.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl FlowSink for IpfixExporter {
    fn record(&mut self, r: &FlowRecord) {
        let now = Instant::now();
        self.start_message(now);
        if !self.builder.add(r) {
            self.send();
            self.start_message(now);
            self.builder.add(r);
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.builder.records() > 0 {
            self.send();
        } else if self.next_templates.is_some_and(|t| now >= t) {
            // Idle collectors still get their templates refreshed.
            self.start_message(now);
            self.send();
        }
    }

    fn flush(&mut self) {
        if self.builder.records() > 0 {
            self.send();
        }
    }
}

/// Counters of the export thread.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Records the thread took from sources and the channel.
    pub records: AtomicU64,
    /// Records the channel refused because it was full.
    pub channel_full: AtomicU64,
}

/// The exporter's counters, for the console, Prometheus and telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounters {
    /// Records the export thread took (from the workers and intake).
    pub records: u64,
    /// Records the intake channel refused (full).
    pub channel_full: u64,
    pub ipfix_records: u64,
    pub ipfix_messages: u64,
    pub ipfix_templates: u64,
    pub ipfix_send_errors: u64,
}

/// The running export thread.
pub struct FlowExport {
    tx: Sender<FlowRecord>,
    stop: Arc<AtomicBool>,
    stats: Arc<ExportStats>,
    thread: Option<JoinHandle<()>>,
}

impl FlowExport {
    /// Starts the thread over `sources` and `sinks`.
    pub fn start(
        sources: Vec<Box<dyn FlowSource>>,
        sinks: Vec<Box<dyn FlowSink>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = bounded(CHANNEL);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ExportStats::default());
        let thread = std::thread::Builder::new()
            .name("flow-export".into())
            .spawn({
                let stop = Arc::clone(&stop);
                let stats = Arc::clone(&stats);
                move || run(rx, sources, sinks, &stop, &stats)
            })?;
        Ok(FlowExport {
            tx,
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// Hands a record to the thread; counted and dropped when it lags.
    pub fn send(&self, r: FlowRecord) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(r) {
            self.stats.channel_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A sender for other threads (intake).
    pub fn sender(&self) -> Sender<FlowRecord> {
        self.tx.clone()
    }

    pub fn stats(&self) -> Arc<ExportStats> {
        Arc::clone(&self.stats)
    }

    /// Drains every source and the channel once more, flushes every sink
    /// and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FlowExport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    rx: Receiver<FlowRecord>,
    mut sources: Vec<Box<dyn FlowSource>>,
    mut sinks: Vec<Box<dyn FlowSink>>,
    stop: &AtomicBool,
    stats: &ExportStats,
) {
    fn deliver(sinks: &mut [Box<dyn FlowSink>], r: &FlowRecord) {
        for s in sinks.iter_mut() {
            s.record(r);
        }
    }
    let mut next_tick = Instant::now() + TICK;
    loop {
        // Read before draining: a stop seen here still gets one full round.
        let stopping = stop.load(Ordering::Acquire);
        let mut n = 0;
        for s in sources.iter_mut() {
            n += s.drain(&mut |r| deliver(&mut sinks, &r));
        }
        while let Ok(r) = rx.try_recv() {
            deliver(&mut sinks, &r);
            n += 1;
        }
        stats.records.fetch_add(n as u64, Ordering::Relaxed);
        let now = Instant::now();
        if now >= next_tick || stopping {
            for s in sinks.iter_mut() {
                s.tick(now);
            }
            next_tick = now + TICK;
        }
        if stopping {
            break;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(r) => {
                deliver(&mut sinks, &r);
                stats.records.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }
    for s in sinks.iter_mut() {
        s.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::flow::{DirectionCounts, FlowKey};
    use std::net::{IpAddr, Ipv4Addr};

    fn record(port: u16) -> FlowRecord {
        let mut r = FlowRecord::new(FlowKey {
            initiator: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            responder: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            initiator_port: port,
            responder_port: 53,
            protocol: 17,
        });
        r.forward = DirectionCounts {
            packets: 1,
            bytes: 80,
            tcp_flags: 0,
        };
        r
    }

    #[test]
    fn every_record_reaches_every_collector_after_the_templates() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let exporter = IpfixExporter::new(IpfixConfig {
            collectors: vec![a.local_addr().unwrap(), b.local_addr().unwrap()],
            template_refresh: Duration::from_secs(600),
            observation_domain: 5,
            max_message: 1400,
        })
        .unwrap();
        let ipfix = exporter.stats();
        let export = FlowExport::start(Vec::new(), vec![Box::new(exporter)]).unwrap();
        let stats = export.stats();
        for port in 0..500 {
            export.send(record(port));
        }
        export.stop();
        assert_eq!(stats.records.load(Ordering::Relaxed), 500);
        assert_eq!(ipfix.records.load(Ordering::Relaxed), 500);
        assert_eq!(ipfix.send_errors.load(Ordering::Relaxed), 0);
        let messages = ipfix.messages.load(Ordering::Relaxed);
        assert!(messages >= 2 && messages.is_multiple_of(2));
        let r = record(0);
        let rec_len =
            super::super::ipfix::record_len(&r, super::super::ipfix::TemplateKind::of(&r));
        for sock in [a, b] {
            sock.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 2048];
            let mut first = true;
            let mut got = 0u32;
            while let Ok(n) = sock.recv(&mut buf) {
                let msg = &buf[..n];
                assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), 10);
                assert_eq!(u32::from_be_bytes(msg[8..12].try_into().unwrap()), got);
                let set = u16::from_be_bytes([msg[16], msg[17]]);
                assert_eq!(set == 2, first, "templates open the first message only");
                first = false;
                let mut at = 16;
                while at < n {
                    let id = u16::from_be_bytes([msg[at], msg[at + 1]]);
                    let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
                    if id == 256 {
                        got += ((len - 4) / rec_len) as u32;
                    }
                    at += len;
                }
            }
            assert_eq!(got, 500);
        }
    }
}
