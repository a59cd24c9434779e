//! The appliance's data services off the main lcore: the intake of the
//! fabric's flow telemetry (`[intake]`), whose records go through the
//! flow export thread (`flows`), and the data-service stream (`[stream]`):
//! a sink of that thread, and the appliance's events — state changes,
//! protect entered and left, policies applied and refused, link changes —
//! published as they happen.

use std::sync::Arc;

use dataplane::dpdk::{Mbuf, Ring};
use dataplane::flow::FlowRecord;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::flows::FlowSink;
use crate::intake::Intake;
use crate::log::log;
use crate::state::State;
use crate::stream::{Kind, Stream, StreamSender, StreamTotals};

use super::StartError;

/// Flow records onto the stream, one message each (the record's JSON,
/// docs/STREAM.md).
struct StreamSink(StreamSender);

impl FlowSink for StreamSink {
    fn record(&mut self, r: &FlowRecord) {
        if let Ok(Value::Object(m)) = serde_json::to_value(r) {
            self.0.send(Kind::Flows, m);
        }
    }
    fn tick(&mut self, _now: std::time::Instant) {}
    fn flush(&mut self) {}
}

/// Intake, export and stream, each there when configured.
pub struct DataService {
    stream: Option<Stream>,
    intake: Option<Intake>,
    /// The state last published.
    reported: Option<State>,
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl DataService {
    /// Starts the stream, when `cfg` asks for it.
    pub fn start(cfg: &Config) -> Result<DataService, StartError> {
        let stream = match &cfg.stream {
            Some(s) => {
                Some(Stream::start(s, &cfg.appliance.name).map_err(StartError::DataService)?)
            }
            None => None,
        };
        Ok(DataService {
            stream,
            intake: None,
            reported: None,
        })
    }

    /// Whether flow records have somewhere to go besides IPFIX, or come
    /// from somewhere besides the workers: the export thread must run.
    pub fn wants_export(&self, cfg: &Config) -> bool {
        self.stream.is_some() || cfg.intake.is_some()
    }

    /// The export thread's sinks of the data services: the stream.
    pub fn flow_sinks(&self) -> Vec<Box<dyn FlowSink>> {
        self.stream
            .iter()
            .map(|s| Box::new(StreamSink(s.sender().clone())) as Box<dyn FlowSink>)
            .collect()
    }

    /// Starts intake (with `[intake]`): datagrams from `ring`, records to
    /// the export thread through `sink`.
    pub fn start_intake(
        &mut self,
        cfg: &Config,
        ring: Option<&Arc<Ring<Mbuf>>>,
        sink: Option<crate::intake::RecordSink>,
    ) -> Result<(), StartError> {
        if let (Some(i), Some(ring), Some(sink)) = (&cfg.intake, ring, sink) {
            self.intake =
                Some(Intake::start(i, Arc::clone(ring), sink).map_err(StartError::DataService)?);
        }
        Ok(())
    }

    fn events(&self) -> Option<&StreamSender> {
        self.stream.as_ref().map(Stream::sender)
    }

    /// Publishes a change of the appliance's state: `protect_entered`,
    /// `protect_left`, or `state_changed`.
    pub fn state(&mut self, now: State) {
        let was = self.reported.replace(now);
        if was == Some(now) {
            return;
        }
        let Some(s) = self.events() else { return };
        let event = match (was, now) {
            (_, State::Protect) => "protect_entered",
            (Some(State::Protect), _) => "protect_left",
            _ => "state_changed",
        };
        s.event(
            event,
            fields(json!({"from": was.map(State::name), "to": now.name()})),
        );
    }

    /// Publishes a policy applied (`Ok` with what was said) or refused
    /// (`Err` with what was said and every problem).
    pub fn policy(&self, origin: &str, version: &str, outcome: Result<&str, (&str, &[String])>) {
        let Some(s) = self.events() else { return };
        match outcome {
            Ok(message) => s.event(
                "policy_applied",
                fields(json!({"origin": origin, "version": version, "message": message})),
            ),
            Err((message, errors)) => s.event(
                "policy_refused",
                fields(json!({"origin": origin, "version": version, "message": message, "errors": errors})),
            ),
        };
    }

    /// Publishes a port's link going up or down.
    pub fn link(&self, port: u16, name: &str, up: bool) {
        if let Some(s) = self.events() {
            s.event(
                "link_changed",
                fields(json!({"port": port, "name": name, "up": up})),
            );
        }
    }

    pub fn stream_totals(&self) -> Option<StreamTotals> {
        self.stream.as_ref().map(Stream::totals)
    }

    /// `show stream`.
    pub fn show_stream(&self) -> String {
        match &self.stream {
            Some(s) => s.describe(),
            None => "no stream: the config has no [stream] section\n".into(),
        }
    }

    /// `show intake`.
    pub fn show_intake(&self) -> String {
        match &self.intake {
            Some(i) => i.describe(),
            None => "no intake: the config has no [intake] section\n".into(),
        }
    }

    pub fn intake(&self) -> Option<&Intake> {
        self.intake.as_ref()
    }

    /// Stops intake (what is on its ring is decoded, and handed to the
    /// export thread, which stops next); its lines for the exit report.
    pub fn stop_intake(&mut self) -> String {
        let Some(i) = self.intake.take() else {
            return String::new();
        };
        let out = i.describe();
        i.stop();
        out
    }

    /// Stops intake, then the stream (what is buffered is published, for a
    /// few seconds at most): call it after the export thread stopped. The
    /// lines for the exit report.
    pub fn stop(&mut self) -> String {
        let mut out = self.stop_intake();
        if let Some(s) = self.stream.take() {
            let t = s.stop();
            out.push_str(&format!(
                "stream: {} queued, {} acked ({} duplicate), {} overflow, {} retries, {} unsent at exit\n",
                t.queued, t.acked, t.duplicates, t.overflow, t.retries, t.unsent_at_exit
            ));
            if t.unsent_at_exit > 0 || t.overflow > 0 {
                log(format!(
                    "stream: {} message(s) not published ({} overflow, {} unsent at exit)",
                    t.overflow + t.unsent_at_exit,
                    t.overflow,
                    t.unsent_at_exit
                ));
            }
        }
        out
    }
}

impl Drop for DataService {
    fn drop(&mut self) {
        self.stop();
    }
}
