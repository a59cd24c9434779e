//! The appliance on the main lcore, composed of owned parts: the ports
//! and lcores planned (`plan`) and launched (`lcores`), the policy
//! publisher (`publisher`), the guard (`protect`), the controller link
//! (`controller`), pdump taps, ARP/ND answerers and the console's
//! renderers. This module starts them in order, runs the control loop
//! (signals, console, slow path) and shuts down with the final counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::dpdk::{events, Eal, Mbuf, Mempool, Port};
use dataplane::frame::Frame;
use dataplane::runtime::counters::Totals;
use dataplane::runtime::snapshot::Snapshot;
use dataplane::runtime::worker::{run_state, CLONE_DATA_ROOM};

use crate::agent::{AgentEvent, AgentReply, CommandKind};
use crate::capture::CaptureInputs;
use crate::cli::grammar::{self, Command};
use crate::cli::{Answer, Envelope, Request};
use crate::config::{Config, Role};
use crate::log::log;
use crate::policy::Context;
use crate::{metrics, stats, telemetry};

mod answer;
mod console;
mod controller;
mod dataservice;
mod error;
mod flows;
mod lcores;
mod links;
mod pdump;
mod plan;
mod protect;
mod publisher;
mod tools;
mod vhost;

pub use crate::state::State;
pub use error::StartError;
pub use plan::PlanError;
pub use publisher::PolicySource;

use controller::ControllerLink;
use lcores::{LaunchInputs, Lcores, Shared};
use links::Ports;
use plan::Planner;
use protect::Protector;
use publisher::{NextHops, Publisher};

/// How the appliance should run.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: PolicySource,
    /// Stop once inputs have been quiet this long while forwarding (also
    /// when nothing ever arrived) and no capture input is still replaying;
    /// `None` runs until a signal.
    pub exit_when_idle: Option<Duration>,
    /// How long start-up waits for next hops before forwarding anyway.
    pub resolve_timeout: Duration,
    /// Start forwarding after start-up (else wait for `start`, as testpmd
    /// does in interactive mode).
    pub auto_start: bool,
    /// The controller's version of the starting policy (a persisted one).
    pub controller_version: Option<String>,
}

/// A running appliance. Fields drop in order: workers are joined first
/// (by `shutdown`), ports close (flushing pcap writers) before the pool,
/// and EAL goes last.
pub struct Appliance {
    lcores: Lcores,
    /// Flow export (`[flows]`): stopped after the workers flushed.
    flows: Option<flows::Flows>,
    shared: Shared,
    publisher: Publisher,
    hops: NextHops,
    protector: Protector,
    controller: Option<ControllerLink>,
    /// Replays of capture inputs: joined (on drop) before their ports close.
    captures: CaptureInputs,
    ports: Ports,
    /// ARP/ND answerers of decap inputs with an address.
    answerers: Vec<answer::Answerer>,
    /// pdump taps on a primary's ports (secondary mode).
    taps: Option<pdump::Taps>,
    /// Intake, flow export and the stream: stopped before the pool goes.
    data: dataservice::DataService,
    cfg: Config,
    exit_when_idle: Option<Duration>,
    started: Instant,
    /// What the console and heartbeats report.
    state: State,
    /// Why the appliance had to stop (the primary went away).
    failure: Option<String>,
    pool: Arc<Mempool>,
    /// Small mbufs for the workers' indirect clones. Held here, not by the
    /// workers alone, so that it goes before EAL does.
    _clone_pool: Option<Arc<Mempool>>,
    /// Dropped last: cleans EAL up.
    eal: Eal,
}

/// EAL (as a pdump secondary when `[pdump]` says so) and the packet pool.
fn eal_and_pool(eal_args: &[String], cfg: &Config) -> Result<(Eal, Arc<Mempool>), StartError> {
    let eal = match &cfg.pdump {
        None => Eal::init(eal_args).map_err(StartError::Eal)?,
        Some(p) => Eal::init(&pdump::eal_args(p, eal_args).map_err(StartError::Pdump)?).map_err(
            |source| StartError::AttachPrimary {
                prefix: p.file_prefix.trim().to_owned(),
                source,
            },
        )?,
    };
    let pool = Mempool::new(
        &pdump::shared_name("sluice_pkts"),
        cfg.mempool.mbufs,
        cfg.mempool.cache,
        2176,
        -1,
    )
    .map_err(|source| StartError::Mempool {
        mbufs: cfg.mempool.mbufs,
        source,
    })?;
    Ok((eal, Arc::new(pool)))
}

/// Small mbufs for the workers' indirect clones, when every uplink sends
/// chained mbufs (see `Worker::extra_copy`); none otherwise. A clone takes
/// two (its header segment and the indirect one) and points at a packet of
/// the packet pool, which bounds how many can be in flight: as many as
/// that pool has mbufs is ample, at an eighth of its memory.
fn clone_pool(cfg: &Config, uplinks: &[&Port]) -> Result<Option<Arc<Mempool>>, StartError> {
    if uplinks.is_empty() || !uplinks.iter().all(|p| p.sends_chains()) {
        return Ok(None);
    }
    let pool = Mempool::new(
        &pdump::shared_name("sluice_clones"),
        cfg.mempool.mbufs,
        cfg.mempool.cache,
        CLONE_DATA_ROOM,
        -1,
    )
    .map_err(|source| StartError::Mempool {
        mbufs: cfg.mempool.mbufs,
        source,
    })?;
    Ok(Some(Arc::new(pool)))
}

/// What a policy may name: the opened inputs and the taps, the tool
/// ports and groups.
fn policy_context(cfg: &Config, plan: &plan::Plan, taps: Option<&pdump::Taps>) -> Context {
    Context {
        tools: cfg.tool_names(),
        routes: cfg.tunnel_routes(),
        ports: plan
            .ports
            .iter()
            .filter(|(pc, _)| pc.role == Role::Input)
            .map(|(pc, p)| (pc.name.clone(), p.id()))
            .chain(
                taps.iter()
                    .flat_map(|t| t.ports.iter())
                    .map(|tp| (tp.cfg.name.clone(), tp.port)),
            )
            .collect(),
    }
}

impl Appliance {
    /// Starts EAL and everything on it, launches the workers (paused),
    /// resolves next hops, then lets traffic through.
    pub fn start(eal_args: &[String], cfg: Config, opts: Options) -> Result<Appliance, StartError> {
        let (eal, pool) = eal_and_pool(eal_args, &cfg)?;
        let taps = pdump::Taps::prepare(&cfg).map_err(StartError::Pdump)?;
        let plan = Planner::new(&cfg)?.open()?.configure(&pool)?;
        let uplinks: Vec<&Port> = plan
            .ports
            .iter()
            .filter(|(pc, _)| pc.role == Role::Uplink)
            .map(|(_, p)| p)
            .collect();
        let clones = clone_pool(&cfg, &uplinks)?;
        let mut hops = NextHops::new(&cfg, &plan.ports)?;
        let ctx = policy_context(&cfg, &plan, taps.as_ref());
        let tools = tools::Tools::new(&cfg, &plan.ports, &lcores::decap_config(&cfg))
            .map_err(StartError::Publish)?;
        let mut publisher = Publisher::new(opts.policy.clone(), ctx, tools)?;
        let protector = Protector::new(cfg.guard.clone());
        let shared = Shared::new(&cfg, publisher.tables(), protector.word())?;
        publisher.publish(&mut hops).map_err(StartError::Publish)?;
        let answerers = answer::for_ports(&plan.ports).map_err(StartError::Answerer)?;
        let mut data = dataservice::DataService::start(&cfg)?;
        let (lcores, ports) = Lcores::launch(
            plan,
            &LaunchInputs {
                cfg: &cfg,
                shared: &shared,
                pool: &pool,
                clone_pool: clones.as_ref(),
                tapped: taps.iter().flat_map(|t| t.ports.iter()).collect(),
                answering: answerers.iter().map(|a| a.port).collect(),
            },
        )?;
        // One export thread for every flow source and sink: the workers'
        // rings and intake in, IPFIX and the stream out.
        let flows = if cfg.flows.is_some() || data.wants_export(&cfg) {
            Some(
                flows::Flows::start(
                    cfg.flows.as_ref(),
                    u32::from(cfg.appliance.id),
                    lcores.flow_rings.clone(),
                    Arc::clone(publisher.tables()),
                    data.flow_sinks(),
                )
                .map_err(StartError::FlowExport)?,
            )
        } else {
            None
        };
        let sink = flows
            .as_ref()
            .map(|f| Box::new(f.sender()) as crate::intake::RecordSink);
        data.start_intake(&cfg, shared.intake.as_ref(), sink)?;
        let mut app = Appliance {
            lcores,
            flows,
            shared,
            publisher,
            hops,
            protector,
            controller: None,
            captures: CaptureInputs::default(),
            ports: Ports::new(ports),
            answerers,
            taps,
            data,
            cfg,
            exit_when_idle: opts.exit_when_idle,
            started: Instant::now(),
            state: State::Selfcheck,
            failure: None,
            pool,
            _clone_pool: clones,
            eal,
        };
        app.lcores.wait_started()?;
        let replays: Vec<_> = app
            .ports
            .list()
            .iter()
            .filter_map(|(pc, p)| pc.replay.clone().map(|r| (pc.name.as_str(), r, p)))
            .collect();
        // A quarter of the pool stays for the workers' copies.
        app.captures = CaptureInputs::start(
            replays,
            &app.pool,
            app.cfg.mempool.mbufs / 4,
            &app.shared.run,
        )
        .map_err(StartError::Capture)?;
        app.register_telemetry();
        let origin = match app.publisher.source() {
            PolicySource::Text { .. } => "controller",
            _ => "local",
        };
        app.policy_event(origin, &Ok("the policy the appliance started with".into()));
        app.selfcheck(opts.resolve_timeout);
        if opts.auto_start {
            app.start_forwarding();
        } else {
            app.state = State::Stopped;
        }
        // Taps last: the primary copies from now on, and the workers read.
        let replace = app.cfg.pdump.as_ref().is_some_and(|p| p.replace_taps);
        if let Some(t) = &mut app.taps {
            t.enable(replace).map_err(StartError::Pdump)?;
        }
        app.controller = ControllerLink::connect(&app.cfg, opts.controller_version);
        let policy = app.publisher.policy();
        log(format!(
            "running: {} worker(s){}{}, policy {:?} with {} rule(s) and {} destination(s)",
            app.lcores.workers(),
            if app.lcores.one_lcore() {
                " on the main lcore (one-lcore mode)"
            } else {
                ""
            },
            app.lcores.distributor().map_or(String::new(), |l| format!(
                " and a distributor on lcore {l}"
            )),
            policy.version,
            policy.rule_names.len(),
            policy.destinations.len()
        ));
        Ok(app)
    }

    fn register_telemetry(&self) {
        let ports: Vec<(u16, String)> = self
            .ports
            .list()
            .iter()
            .map(|(pc, p)| (p.id(), pc.name.clone()))
            .collect();
        let taps: Vec<(u16, String)> = self
            .tapped_ports()
            .map(|tp| (tp.port, tp.cfg.name.clone()))
            .collect();
        telemetry::register(
            self.lcores.counters.clone(),
            self.publisher.current(),
            Arc::clone(self.publisher.tables()),
            &ports,
            &taps,
            self.publisher.tools().port_names(),
        );
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn tapped_ports(&self) -> impl Iterator<Item = &pdump::TappedPort> {
        self.taps.iter().flat_map(|t| t.ports.iter())
    }

    /// Every counter, read once: lcores, destinations, ports and taps.
    fn snapshot(&self) -> Snapshot {
        self.view().snapshot()
    }

    /// Counters summed over workers and distributor.
    fn totals(&self) -> Totals {
        self.lcores.counters.totals()
    }

    /// Start-up: wait (bounded) until every destination's next hop resolves.
    fn selfcheck(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.unresolved().is_empty() && Instant::now() < deadline {
            self.service();
            self.lcores.pass(Duration::from_millis(5));
        }
        let left = self.unresolved();
        if !left.is_empty() {
            log(format!(
                "next hop not resolved for {}: their copies count as dropped_no_nexthop until it is",
                left.join(", ")
            ));
        }
    }

    fn unresolved(&self) -> Vec<String> {
        self.hops.unresolved(self.publisher.policy())
    }

    /// The guard's look: enter or leave `protect`.
    fn run_guard(&mut self, now: u64) {
        if !self.protector.due(now) {
            return;
        }
        let sample = self.guard_sample(now);
        match self.protector.look(sample) {
            Some(true) if self.state == State::Running => self.state = State::Protect,
            Some(false) if self.state == State::Protect => self.state = State::Running,
            _ => {}
        }
    }

    fn guard_sample(&self, now: u64) -> crate::guard::Sample {
        protect::sample(
            now,
            self.ports.list(),
            &self.lcores.rings,
            &self.pool,
            self.cfg.mempool.mbufs,
        )
    }

    /// The controller session's policies (ack or nack) and commands, and
    /// our heartbeat.
    fn serve_controller(&mut self) {
        let Some(link) = &mut self.controller else {
            return;
        };
        for ev in link.events() {
            let reply = match ev {
                AgentEvent::Policy {
                    version,
                    name,
                    text,
                } => {
                    let src = PolicySource::Text {
                        origin: format!("controller policy {name:?} version {version}"),
                        text,
                    };
                    let outcome = self.publisher.apply(src, &mut self.hops);
                    self.data.policy(
                        "controller",
                        &version,
                        outcome
                            .as_ref()
                            .map(String::as_str)
                            .map_err(|(m, e)| (m.as_str(), e.as_slice())),
                    );
                    match outcome {
                        Ok(m) => {
                            log(format!("{m} (controller version {version})"));
                            if let Some(l) = &mut self.controller {
                                l.running(version.clone());
                            }
                            AgentReply::Ack { version }
                        }
                        Err((m, errors)) => {
                            log(m);
                            AgentReply::Nack { version, errors }
                        }
                    }
                }
                AgentEvent::Command(c) => {
                    let (ok, message) = match c.kind {
                        CommandKind::Start => {
                            self.start_forwarding();
                            (true, "forwarding started".to_owned())
                        }
                        CommandKind::Stop => match self.stop_forwarding() {
                            Ok(()) => (true, "forwarding stopped".to_owned()),
                            Err(e) => (false, format!("forwarding stopped, but {e}")),
                        },
                        CommandKind::Reload => match self.reload() {
                            Ok(m) => (true, m),
                            Err(m) => (false, m),
                        },
                    };
                    log(format!("controller command {:?}: {message}", c.kind));
                    AgentReply::CommandDone {
                        id: c.id,
                        ok,
                        message,
                    }
                }
                // Session events stay with the link.
                AgentEvent::Connected { .. } | AgentEvent::Disconnected { .. } => continue,
            };
            if let Some(l) = &self.controller {
                l.reply(reply);
            }
        }
        if self.controller.as_mut().is_some_and(|l| l.heartbeat_due()) {
            // The whole snapshot, as the console shows it: rules and tool
            // ports are only in that one.
            let snap = self.snapshot();
            if let Some(l) = &self.controller {
                let uptime = self.started.elapsed().as_secs();
                l.reply(AgentReply::Heartbeat(l.heartbeat(
                    self.state.name(),
                    uptime,
                    &snap,
                )));
            }
        }
    }

    /// One round of the slow path: ARP/ND in and out, republish on change,
    /// the guard and the controller session.
    fn service(&mut self) {
        let now = self.now_ms();
        self.run_guard(now);
        self.serve_controller();
        for (port, name, up) in self.ports.watch() {
            self.data.link(port, &name, up);
        }
        self.data.state(self.state);
        // A tool port's link down or back: its groups fail over now.
        let mut changed = self
            .publisher
            .tools_mut()
            .refresh(|id| events::of(id).link_up);
        while let Some(m) = self.shared.exceptions.dequeue() {
            if let Some(a) = answer::find(&mut self.answerers, &m) {
                a.handle(m.data(), now, &self.pool);
                continue;
            }
            // Each uplink answers and learns on its own port only.
            let port = m.port();
            let Some(up) = self.hops.on_port(port) else {
                continue;
            };
            let (reply, c) = up.neighbors.handle(m.data(), now);
            changed |= c;
            if let Some(f) = reply {
                self.send_control(port, &f);
            }
        }
        let mut out = Vec::new();
        for up in &mut self.hops.uplinks {
            let (requests, lost) = up.neighbors.poll(now);
            changed |= lost;
            out.extend(requests.into_iter().map(|f| (up.port, f)));
        }
        for (port, f) in out {
            self.send_control(port, &f);
        }
        if changed {
            if let Err(e) = self.publisher.publish(&mut self.hops) {
                log(e);
            }
        }
    }

    /// Hands an ARP/ND frame to worker 0 to send on uplink port `port`.
    fn send_control(&self, port: u16, frame: &[u8]) {
        match Mbuf::from_bytes(&self.pool, frame) {
            Ok(mut m) => {
                m.set_port(port);
                if self.shared.control_tx.enqueue(m).is_err() {
                    log("control TX ring full: an ARP/ND frame was not sent");
                }
            }
            Err(e) => log(format!("no mbuf for an ARP/ND frame: {e}")),
        }
    }

    /// Loads a policy from `src` and swaps it in; a bad one is refused with
    /// every problem and the running one stays. On success `src` becomes
    /// the source SIGHUP reloads.
    pub fn apply_policy(&mut self, src: PolicySource) -> Result<String, String> {
        let outcome = self.publisher.apply(src, &mut self.hops);
        self.policy_event("local", &outcome);
        outcome.map_err(|(text, _)| text)
    }

    /// Loads the policy again from its source.
    fn reload(&mut self) -> Result<String, String> {
        let src = self.publisher.source().clone();
        self.apply_policy(src)
    }

    /// SIGHUP: reload the policy from its source.
    pub fn reload_policy(&mut self) {
        match self.reload() {
            Ok(m) | Err(m) => log(m),
        }
    }

    /// A policy applied or refused, on the stream.
    fn policy_event(&self, origin: &str, outcome: &Result<String, (String, Vec<String>)>) {
        let version = self.publisher.policy().version.clone();
        self.data.policy(
            origin,
            &version,
            outcome
                .as_ref()
                .map(String::as_str)
                .map_err(|(m, e)| (m.as_str(), e.as_slice())),
        );
    }

    /// `show fwd stats all`. Destinations of earlier policies keep their
    /// counters (their slot stays theirs) and are listed after the current ones.
    fn fwd_stats(&self) -> String {
        stats::fwd_stats(&self.view().fwd_snapshot())
    }

    /// Port counters, testpmd's `show port stats all`, one line a port.
    fn port_stats(&self) -> String {
        let mut out = stats::port_lines(&self.snapshot());
        out.push_str(&self.captures.describe());
        if let Some(t) = &self.taps {
            out.push_str(&t.report());
        }
        out
    }

    /// EAL's `--file-prefix` (the runtime directory's name).
    pub fn file_prefix(&self) -> &str {
        self.eal.file_prefix()
    }

    /// Starts polling the inputs.
    pub fn start_forwarding(&mut self) {
        self.state = if self.protector.protecting() {
            State::Protect
        } else {
            State::Running
        };
        self.shared.run.store(run_state::RUNNING, Ordering::SeqCst);
    }

    /// Stops polling the inputs. Returns once no lcore is in a round that
    /// polls them (`dataplane::runtime::polling`: after that an input's
    /// peer may leave), or says how many still were after a second.
    pub fn stop_forwarding(&mut self) -> Result<(), String> {
        self.state = State::Stopped;
        // Sequentially consistent, as the lcores' flags are: see `Polling`.
        self.shared.run.store(run_state::PAUSED, Ordering::SeqCst);
        self.lcores.wait_paused(Duration::from_secs(1))
    }

    /// Whether the pdump primary went away (its taps with it).
    fn primary_lost(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let now = self.now_ms();
        let Some(why) = self.taps.as_mut().and_then(|t| t.primary_lost(now)) else {
            return false;
        };
        self.state = State::Exception;
        self.failure = Some(why);
        true
    }

    /// The control loop, until a signal, `quit` (or idleness, when asked)
    /// ends it. Console requests are served here, between slow-path rounds.
    pub fn run(&mut self, stop: &AtomicBool, reload: &AtomicBool, console: &Receiver<Envelope>) {
        let mut last_rx = 0;
        let mut quiet_since = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                log("stopping on signal");
                return;
            }
            if reload.swap(false, Ordering::Relaxed) {
                self.reload_policy();
            }
            if self.lcores.died() {
                self.state = State::Exception;
                crate::log::error("a worker stopped unexpectedly");
                return;
            }
            if self.primary_lost() {
                return;
            }
            while let Ok(env) = console.try_recv() {
                let (reply, quit) = self.serve(env.request);
                if !quit {
                    // The asker may have gone; the appliance carries on regardless.
                    let _ = env.reply.send(Answer::new(reply));
                    continue;
                }
                // Exit only once the asker has its answer (or is gone).
                let (delivered, done) = std::sync::mpsc::channel();
                let answer = Answer {
                    text: reply,
                    delivered: Some(delivered),
                };
                if env.reply.send(answer).is_ok() {
                    let _ = done.recv_timeout(Duration::from_secs(1));
                }
                log("quit");
                return;
            }
            self.service();
            if let Some(idle) = self.exit_when_idle {
                let t = self.totals();
                // Idle: nothing (valid) arrived for `idle` while forwarding,
                // even if nothing ever did, and no capture input is still
                // replaying (a capture's silence is not its end).
                let stopped = self.state == State::Stopped;
                if t.rx != last_rx || t.in_flight() != 0 || stopped || self.captures.busy() {
                    last_rx = t.rx;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= idle {
                    log(if t.rx == 0 {
                        "inputs idle: stopping (nothing valid arrived)"
                    } else {
                        "inputs idle: stopping"
                    });
                    return;
                }
            }
            // One-lcore mode: the worker's share, then control work again.
            self.lcores.pass(Duration::from_millis(1));
        }
    }

    /// Stops the workers, prints the final counters, closes the ports.
    /// Returns an error if a worker failed.
    pub fn shutdown(mut self) -> Result<String, String> {
        // Taps off first, and their copies through the pipeline: each one
        // the primary made is counted.
        if let Some(t) = &mut self.taps {
            let running = self.shared.run.load(Ordering::Acquire) == run_state::RUNNING;
            let (rings, counters) = (&self.lcores.rings, &self.lcores.counters);
            t.stop(running, || {
                rings.iter().map(|r| r.len()).sum::<usize>() > 0
                    || counters.totals().in_flight() != 0
            });
        }
        self.shared.run.store(run_state::EXIT, Ordering::Release);
        // Replays stop at EXIT; joined first, their counters are final.
        self.captures.join();
        let mut failures: Vec<String> = self.failure.iter().cloned().collect();
        failures.extend(self.lcores.join());
        // Intake decodes what is left on its ring; the workers flushed
        // their tables into the rings: export the rest.
        let intake = self.data.stop_intake();
        if let Some(f) = self.flows.take() {
            let c = f.stop();
            log(format!(
                "flows: {} record(s) exported in {} IPFIX message(s), {} send error(s)",
                c.ipfix_records, c.ipfix_messages, c.ipfix_send_errors
            ));
        }
        self.data.state(State::Stopped);
        let data = self.data.stop();
        let report = format!("{}{}{intake}{data}", self.fwd_stats(), self.port_stats());
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(format!("{report}\n{}", failures.join("\n")))
        }
    }

    /// Serves one console request: the answer and whether to quit.
    pub fn serve(&mut self, req: Request) -> (String, bool) {
        match req {
            Request::Command(line) => match grammar::parse(&line) {
                Ok(None) => (String::new(), false),
                Ok(Some(cmd)) => self.execute(cmd),
                Err(e) => (format!("{e}\n"), false),
            },
            Request::Complete(line) => {
                let ports: Vec<u16> = self.ports.ids().chain(self.view().tap_ids()).collect();
                (grammar::complete(&line, &ports).join("\n"), false)
            }
            Request::Metrics => {
                let intake = self.data.intake().map(crate::intake::Intake::counters);
                let mut text = metrics::render(self.state, &self.snapshot());
                if let Some(f) = &self.flows {
                    text.push_str(&metrics::render_flow_export(&f.counters()));
                }
                text.push_str(&metrics::render_data(
                    self.data.stream_totals(),
                    intake.as_ref(),
                ));
                (text, false)
            }
        }
    }

    fn execute(&mut self, cmd: Command) -> (String, bool) {
        let out = match cmd {
            Command::Start => {
                self.start_forwarding();
                "forwarding started\n".into()
            }
            Command::Stop => match self.stop_forwarding() {
                Ok(()) => "forwarding stopped\n".into(),
                Err(e) => format!("forwarding stopped, but {e}\n"),
            },
            Command::Quit => return ("bye\n".into(), true),
            Command::PolicyLoad(file) => match self.apply_policy(PolicySource::File(file.into())) {
                Ok(m) | Err(m) => format!("{m}\n"),
            },
            Command::SetGuard(limit, v) => self.protector.set(&limit, v),
            Command::SetLink { port, up } => self.set_link(&port, up),
            other => self.view().execute(other),
        };
        (out, false)
    }

    /// `set link-up|link-down`: the device's answer; on a tool port its
    /// groups fail over (or take it back) at once. A device that cannot
    /// take its link down, or whose link does not show it, has the port
    /// held down in its groups all the same.
    fn set_link(&mut self, port: &grammar::PortRef, up: bool) -> String {
        let id = match self.ports.resolve(port) {
            Ok(id) => id,
            Err(answer) => return answer,
        };
        let mut said = self.ports.set_link(id, up);
        let tools = self.publisher.tools_mut();
        let Some(i) = tools.index_of_id(id) else {
            return said;
        };
        let mut changed = tools.refresh(|id| events::of(id).link_up);
        let hold = !up && tools.ports()[i].link_up;
        changed |= tools.hold(i, hold);
        if hold {
            said.push_str(&format!(
                "port {id}: its link still shows up: held down in its tool groups\n"
            ));
        }
        if changed {
            if let Err(e) = self.publisher.publish(&mut self.hops) {
                said.push_str(&format!("{e}\n"));
            }
        }
        said
    }

    /// The parts the console's other commands read (or nudge through
    /// their shared words).
    fn view(&self) -> console::View<'_> {
        console::View {
            state: self.state,
            up_s: self.started.elapsed().as_secs(),
            now_ms: self.now_ms(),
            lcores: &self.lcores,
            shared: &self.shared,
            publisher: &self.publisher,
            hops: &self.hops,
            ports: &self.ports,
            taps: self.taps.as_ref(),
            answerers: &self.answerers,
            data: &self.data,
            controller: self.controller.as_ref(),
            protector: &self.protector,
            cfg: &self.cfg,
            pool: &self.pool,
            flows: self.flows.as_ref(),
        }
    }
}

impl Drop for Appliance {
    /// Whatever ends the appliance (`shutdown`, or a panic unwinding the
    /// main lcore), the workers are told to leave before their lcores are
    /// joined as the fields drop.
    fn drop(&mut self) {
        self.shared.run.store(run_state::EXIT, Ordering::Release);
    }
}
