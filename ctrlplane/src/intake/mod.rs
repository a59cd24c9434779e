//! Flow telemetry from the fabric (`[intake]`): sFlow v5 and NetFlow
//! v5/v9/IPFIX datagrams sent to the uplink's address. The workers put
//! them on a ring (`dataplane::runtime::worker::IntakeTap`); the intake
//! thread here decodes them ([`sflow`], [`netflow`]) into the same flow
//! records the workers meter, and hands those to every flow sink (the
//! IPFIX exporter, the data-service stream).
//!
//! Counters are kept per exporter and per kind: datagrams, records,
//! malformed datagrams (counted and dropped, never a crash), data before
//! its template, sFlow counter samples, skipped samples.

pub mod netflow;
pub mod sflow;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dataplane::dpdk::{Mbuf, Ring};
use dataplane::flow::{FlowRecord, OriginProtocol};
use dataplane::frame::Frame;
use dataplane::stage::parse::parse;
use dataplane::wire::udp;
use serde::Serialize;

use crate::config::IntakeConfig;
use crate::log::log;

/// The kind of datagram, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeKind {
    Sflow,
    NetflowV5,
    NetflowV9,
    Ipfix,
    /// On the NetFlow port, but no version this intake reads.
    Unknown,
}

impl IntakeKind {
    pub fn name(self) -> &'static str {
        match self {
            IntakeKind::Sflow => "sflow",
            IntakeKind::NetflowV5 => "netflow_v5",
            IntakeKind::NetflowV9 => "netflow_v9",
            IntakeKind::Ipfix => "ipfix",
            IntakeKind::Unknown => "unknown",
        }
    }

    fn of(p: Option<OriginProtocol>) -> Self {
        match p {
            Some(OriginProtocol::NetflowV5) => IntakeKind::NetflowV5,
            Some(OriginProtocol::NetflowV9) => IntakeKind::NetflowV9,
            Some(OriginProtocol::Ipfix) => IntakeKind::Ipfix,
            Some(OriginProtocol::Sflow) => IntakeKind::Sflow,
            None => IntakeKind::Unknown,
        }
    }
}

/// Counters of one exporter's datagrams of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExporterCounters {
    pub datagrams: u64,
    pub records: u64,
    /// Datagrams that could not be read whole: dropped (what they held
    /// before the damage is kept).
    pub malformed: u64,
    /// v9/IPFIX data sets that arrived before their template.
    pub no_template: u64,
    /// sFlow counter samples.
    pub counter_samples: u64,
    /// sFlow samples and records of formats not read.
    pub skipped: u64,
}

/// Per exporter (the datagram's source address) and kind.
pub type IntakeCounters = BTreeMap<(IpAddr, IntakeKind), ExporterCounters>;

/// Where decoded records go: every flow sink.
pub type RecordSink = Box<dyn FnMut(FlowRecord) + Send>;

/// The running intake thread.
pub struct Intake {
    counters: Arc<Mutex<IntakeCounters>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ports: [u16; 2],
}

/// Decodes datagrams and counts them: the thread's state, without the ring.
pub struct Decoder {
    cfg: IntakeConfig,
    netflow: netflow::NetflowDecoder,
    counters: Arc<Mutex<IntakeCounters>>,
    sink: RecordSink,
}

impl Decoder {
    pub fn new(cfg: IntakeConfig, sink: RecordSink) -> Decoder {
        Decoder {
            cfg,
            netflow: netflow::NetflowDecoder::new(),
            counters: Arc::default(),
            sink,
        }
    }

    pub fn counters(&self) -> Arc<Mutex<IntakeCounters>> {
        Arc::clone(&self.counters)
    }

    /// One frame the workers handed over: Ethernet, IP, UDP to an intake
    /// port (the worker checked).
    pub fn frame(&mut self, frame: &[u8], now_ms: u64) {
        let l = parse(frame);
        let Some(src) = l.src_ip() else { return };
        let udp = udp::Packet::new_unchecked(frame.get(usize::from(l.l4_offset)..).unwrap_or(&[]));
        let payload = udp.payload();
        let from = SocketAddr::new(src, l.src_port);
        if l.dst_port == self.cfg.sflow_port {
            self.sflow(from, payload, now_ms);
        } else if l.dst_port == self.cfg.netflow_port {
            self.netflow(from, payload);
        }
    }

    fn count(&self, from: IpAddr, kind: IntakeKind, f: impl FnOnce(&mut ExporterCounters)) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(c.entry((from, kind)).or_default());
    }

    fn sflow(&mut self, from: SocketAddr, payload: &[u8], now_ms: u64) {
        let out = sflow::decode(from.ip(), payload, now_ms);
        let n = out.records.len() as u64;
        self.count(from.ip(), IntakeKind::Sflow, |c| {
            c.datagrams += 1;
            c.records += n;
            c.counter_samples += out.counter_samples;
            c.skipped += out.skipped;
            c.malformed += u64::from(out.error.is_some());
        });
        for r in out.records {
            (self.sink)(r);
        }
    }

    fn netflow(&mut self, from: SocketAddr, payload: &[u8]) {
        let out = self.netflow.decode(from, payload);
        let n = out.records.len() as u64;
        self.count(from.ip(), IntakeKind::of(out.protocol), |c| {
            c.datagrams += 1;
            c.records += n;
            c.no_template += out.no_template;
            c.malformed += u64::from(out.error.is_some());
        });
        for r in out.records {
            (self.sink)(r);
        }
    }
}

impl Intake {
    /// Starts the thread that decodes what the workers put on `ring`.
    pub fn start(
        cfg: &IntakeConfig,
        ring: Arc<Ring<Mbuf>>,
        sink: RecordSink,
    ) -> Result<Intake, String> {
        let mut decoder = Decoder::new(cfg.clone(), sink);
        let counters = decoder.counters();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sluice-intake".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || {
                    let started = std::time::Instant::now();
                    let epoch = crate::stream::now_ms();
                    loop {
                        let stopping = stop.load(Ordering::Acquire);
                        let mut n = 0;
                        while let Some(m) = ring.dequeue() {
                            let now = epoch + started.elapsed().as_millis() as u64;
                            decoder.frame(m.data(), now);
                            n += 1;
                        }
                        if stopping {
                            return;
                        }
                        if n == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            })
            .map_err(|e| format!("intake: cannot start its thread: {e}"))?;
        log(format!(
            "intake: sFlow on UDP {}, NetFlow/IPFIX on UDP {}",
            port_name(cfg.sflow_port),
            port_name(cfg.netflow_port)
        ));
        Ok(Intake {
            counters,
            stop,
            thread: Some(thread),
            ports: cfg.ports(),
        })
    }

    pub fn counters(&self) -> IntakeCounters {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `show intake`: one line per exporter and kind.
    pub fn describe(&self) -> String {
        let c = self.counters();
        let mut out = format!(
            "intake: sFlow on UDP {}, NetFlow/IPFIX on UDP {}; {} exporter(s)\n",
            port_name(self.ports[0]),
            port_name(self.ports[1]),
            c.keys()
                .map(|(a, _)| a)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        let _ = writeln!(
            out,
            "  {:<40}{:<12}{:>10}{:>10}{:>10}{:>12}{:>10}{:>8}",
            "exporter",
            "kind",
            "datagrams",
            "records",
            "malformed",
            "no_template",
            "counters",
            "skipped"
        );
        for ((addr, kind), x) in &c {
            let _ = writeln!(
                out,
                "  {:<40}{:<12}{:>10}{:>10}{:>10}{:>12}{:>10}{:>8}",
                addr.to_string(),
                kind.name(),
                x.datagrams,
                x.records,
                x.malformed,
                x.no_template,
                x.counter_samples,
                x.skipped
            );
        }
        out
    }

    /// Decodes what is still on the ring, then stops the thread.
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

impl Drop for Intake {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn port_name(p: u16) -> String {
    if p == 0 {
        "off".into()
    } else {
        p.to_string()
    }
}
