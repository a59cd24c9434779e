//! The lcores that move packets: each worker's sources and queues from the
//! plan, the distributor when one is needed, their launch, start-up wait,
//! health and join. The main lcore shares a few words with them
//! ([`Shared`]); everything else a worker owns.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use dataplane::dpdk::{launch, LcoreHandle, Mbuf, Mempool, Port, Ring, RssMode, RxQueue, TxQueue};
use dataplane::flow::table::{Expired, MeterConfig};
use dataplane::runtime::clock::Clock;
use dataplane::runtime::counters::WorkerStats;
use dataplane::runtime::distributor::{self, DistributorSetup};
use dataplane::runtime::idle::{IdleConfig, IdleMode};
use dataplane::runtime::snapshot::{CounterBlocks, LcoreKind};
use dataplane::runtime::tables::Tables;
use dataplane::runtime::trace::Trace;
use dataplane::runtime::worker::{
    self, run_state, DecapSetup, InlineWorker, IntakeTap, MeterSetup, Source, WorkerSetup,
};
use dataplane::stage::decap::{DecapConfig, Retag, VidMap};
use dataplane::stage::dedup::DedupConfig;
use dataplane::stage::Direction;

use super::error::StartError;
use super::pdump::{self, TappedPort};
use super::plan::Plan;
use crate::config::{
    self, Config, NonTunnel, PortConfig, PortDirection, PortMode, RetagMode, Role,
};

/// What the main lcore shares with every worker: the run word, the
/// published tables, the console's knobs and the exception path.
pub struct Shared {
    /// `worker::run_state`: paused, running or exit.
    pub run: Arc<AtomicU8>,
    pub tables: Arc<ArcSwap<Tables>>,
    pub trace: Arc<Trace>,
    pub dedup_window_us: Arc<AtomicU32>,
    /// Bumped by `clear fwd stats all`; workers zero their own counters.
    pub clear_epoch: Arc<AtomicU64>,
    /// The workers' shed word (0: not protecting); see `worker::shed`.
    pub protect: Arc<AtomicU64>,
    /// Frames for the main lcore (ARP/ND), and frames it sends on the
    /// uplinks (each with its uplink's port id).
    pub exceptions: Arc<Ring<Mbuf>>,
    pub control_tx: Arc<Ring<Mbuf>>,
    /// Flow telemetry datagrams for the intake thread (with `[intake]`).
    pub intake: Option<Arc<Ring<Mbuf>>>,
}

impl Shared {
    /// The words for a paused start, the published `tables`, the guard's
    /// shed word, and the exception path's rings.
    pub fn new(
        cfg: &Config,
        tables: &Arc<ArcSwap<Tables>>,
        protect: Arc<AtomicU64>,
    ) -> Result<Shared, StartError> {
        let ring = |name: &str, size| Ring::new(&pdump::shared_name(name), size).map(Arc::new);
        Ok(Shared {
            run: Arc::new(AtomicU8::new(run_state::PAUSED)),
            tables: Arc::clone(tables),
            trace: Arc::new(Trace::default()),
            dedup_window_us: Arc::new(AtomicU32::new(
                u32::try_from(cfg.dedup.window.as_micros()).unwrap_or(u32::MAX),
            )),
            clear_epoch: Arc::new(AtomicU64::new(0)),
            protect,
            exceptions: ring("sluice_exc", 1024).map_err(StartError::dpdk("exception ring"))?,
            control_tx: ring("sluice_ctl_tx", 256).map_err(StartError::dpdk("control ring"))?,
            intake: match &cfg.intake {
                Some(i) => {
                    Some(ring("sluice_intake", i.queue).map_err(StartError::dpdk("intake ring"))?)
                }
                None => None,
            },
        })
    }
}

struct Slot<T> {
    lcore: u32,
    handle: Option<LcoreHandle<T>>,
}

impl<T> Slot<T> {
    fn finished(&self) -> bool {
        self.handle.as_ref().is_some_and(LcoreHandle::is_finished)
    }
}

/// The running workers and distributor.
pub struct Lcores {
    /// One-lcore mode: the single worker, run by the main lcore between
    /// its control rounds.
    inline: Option<InlineWorker>,
    workers: Vec<Slot<Result<(), String>>>,
    distributor: Option<Slot<()>>,
    /// Each lcore and what it does, for `show lcores`.
    pub roles: Vec<(u32, String)>,
    /// The distributor's rings (to the workers, and of the taps): the
    /// guard watches their fill, the taps' shutdown their emptying.
    pub rings: Vec<Arc<Ring<Mbuf>>>,
    /// Every lcore's counters.
    pub counters: CounterBlocks,
    /// How the workers wait when nothing arrives.
    pub idle: IdleConfig,
    /// Each worker's ring of expired flows (`[flows]`), for the exporter.
    pub flow_rings: Vec<Arc<ArrayQueue<Expired>>>,
}

/// What launching needs besides the plan.
pub struct LaunchInputs<'a> {
    pub cfg: &'a Config,
    pub shared: &'a Shared,
    pub pool: &'a Arc<Mempool>,
    /// Small mbufs for indirect clones; none when an uplink cannot send them.
    pub clone_pool: Option<&'a Arc<Mempool>>,
    pub tapped: Vec<&'a TappedPort>,
    /// Inputs whose ARP/ND the main lcore answers.
    pub answering: Vec<u16>,
}

/// Per-port facts every worker gets, indexed by port id.
#[derive(Clone)]
struct PortFacts {
    direction: Vec<Direction>,
    decap: Vec<bool>,
    answers: Vec<bool>,
}

impl PortFacts {
    fn of(ports: &[(PortConfig, Port)], inp: &LaunchInputs<'_>) -> PortFacts {
        let max_port = ports
            .iter()
            .map(|(_, p)| p.id())
            .chain(inp.tapped.iter().map(|tp| tp.port))
            .max()
            .unwrap_or(0);
        let n = usize::from(max_port) + 1;
        let mut f = PortFacts {
            direction: vec![Direction::Ingress; n],
            decap: vec![false; n],
            answers: vec![false; n],
        };
        for (pc, p) in ports {
            let i = usize::from(p.id());
            f.direction[i] = match pc.direction {
                PortDirection::Ingress => Direction::Ingress,
                PortDirection::Egress => Direction::Egress,
            };
            f.decap[i] = pc.role == Role::Input && pc.mode == PortMode::Decap;
        }
        for &id in &inp.answering {
            f.answers[usize::from(id)] = true;
        }
        for tp in &inp.tapped {
            f.decap[usize::from(tp.port)] = tp.decap();
        }
        f
    }
}

/// `count` rings of the distributor's size, ring `i` named `name(i)`.
fn rings(
    cfg: &Config,
    count: usize,
    name: impl Fn(usize) -> String,
) -> Result<Vec<Arc<Ring<Mbuf>>>, StartError> {
    (0..count)
        .map(|i| {
            Ring::new(&pdump::shared_name(&name(i)), cfg.queues.distributor_ring).map(Arc::new)
        })
        .collect::<Result<_, _>>()
        .map_err(StartError::dpdk("distributor ring"))
}

/// Which tunnels `[decap]` recognises, and how decap re-tags (strip and
/// the tool groups' inner hash classify tunnels with it too).
pub(super) fn decap_config(cfg: &Config) -> DecapConfig {
    let d = &cfg.decap;
    DecapConfig {
        vxlan_ports: d.vxlan_ports.clone(),
        geneve_ports: d.geneve_ports.clone(),
        max_layers: d.max_layers,
        retag: match d.retag {
            RetagMode::None => None,
            RetagMode::Low12 => Some(Retag {
                map: VidMap::Low12,
                pcp: d.retag_pcp,
            }),
        },
    }
}

fn decap_setup(cfg: &Config) -> DecapSetup {
    let d = &cfg.decap;
    DecapSetup {
        config: decap_config(cfg),
        pass_non_tunnel: d.non_tunnel == NonTunnel::Pass,
        dedup: d.dedup,
        // Its index among the tool ports: the workers' lane and queue there.
        tool: cfg.decap_tool_port().and_then(|t| {
            cfg.tool_ports()
                .position(|p| p.name == t.name)
                .and_then(|i| u16::try_from(i).ok())
        }),
    }
}

/// A tap ring the distributor reads, and its rings to each worker.
type DistributedTap = (Arc<Ring<Mbuf>>, Vec<Arc<Ring<Mbuf>>>);

/// Where the taps' copies go: a single worker reads the tap rings itself;
/// several get them through the distributor, one ring per worker and
/// direction. Returns each worker's tap sources and the distributor's
/// (tap ring, per-worker rings) pairs.
fn tap_sources(
    inp: &LaunchInputs<'_>,
    workers: usize,
    distributed: bool,
    dist_rings: &mut Vec<Arc<Ring<Mbuf>>>,
) -> Result<(Vec<Vec<Source>>, Vec<DistributedTap>), StartError> {
    let mut sources: Vec<Vec<Source>> = (0..workers).map(|_| Vec::new()).collect();
    let mut dist_taps = Vec::new();
    if !distributed || inp.tapped.is_empty() {
        for tp in &inp.tapped {
            for (c, ring) in &tp.rings {
                sources[0].push(Source::Tap {
                    ring: Arc::clone(ring),
                    direction: pdump::direction(*c),
                });
            }
        }
        return Ok((sources, dist_taps));
    }
    for dir in [Direction::Ingress, Direction::Egress] {
        let outs = rings(inp.cfg, workers, |i| {
            format!("sluice_d{i}{}", pdump::dir_name(dir))
        })?;
        for tp in &inp.tapped {
            for (c, ring) in &tp.rings {
                if pdump::direction(*c) == dir {
                    dist_taps.push((Arc::clone(ring), outs.clone()));
                }
            }
        }
        for (i, r) in outs.iter().enumerate() {
            sources[i].push(Source::Tap {
                ring: Arc::clone(r),
                direction: dir,
            });
        }
        dist_rings.extend(outs);
    }
    Ok((sources, dist_taps))
}

/// The input queues worker `i` of `workers` polls; with a distributor,
/// worker 0 hands every input queue to it instead (`dist_inputs`).
fn input_sources(
    ports: &[(PortConfig, Port)],
    facts: &PortFacts,
    i: usize,
    workers: usize,
    dist_inputs: &mut Vec<RxQueue>,
) -> Result<Vec<Source>, StartError> {
    let mut sources = Vec::new();
    for (pc, p) in ports.iter().filter(|(pc, _)| pc.role == Role::Input) {
        let direction = facts.direction[usize::from(p.id())];
        let decap = pc.mode == PortMode::Decap;
        let queue = |q: u16| p.rx_queue(q).map_err(StartError::dpdk(&pc.name));
        if p.rss() == RssMode::Symmetric {
            sources.push(Source::Queue {
                rxq: queue(i as u16)?,
                direction,
                decap,
            });
        } else if workers == 1 {
            // Every queue the peer may fill (a vhost-user port has several).
            for q in 0..p.rx_queues() {
                sources.push(Source::Queue {
                    rxq: queue(q)?,
                    direction,
                    decap,
                });
            }
        } else if i == 0 {
            for q in 0..p.rx_queues() {
                dist_inputs.push(queue(q)?);
            }
        }
    }
    Ok(sources)
}

/// What every worker's setup shares.
struct Common<'a> {
    inp: &'a LaunchInputs<'a>,
    facts: PortFacts,
    decap: DecapSetup,
    clock: Clock,
    workers: usize,
}

impl Common<'_> {
    /// Worker `i`'s setup, given what it polls and where it sends.
    fn setup(
        &self,
        i: usize,
        sources: Vec<Source>,
        uplink_rx: Vec<RxQueue>,
        uplink_tx: Vec<TxQueue>,
        tool_ports: Vec<TxQueue>,
    ) -> WorkerSetup {
        let inp = self.inp;
        let s = inp.shared;
        let dedup = &inp.cfg.dedup;
        let clock = self.clock;
        let stats = Arc::new(WorkerStats::default());
        let flows = inp.cfg.flows.as_ref().map(|f| MeterSetup {
            config: MeterConfig {
                entries: f.table_entries,
                active_ns: f.active_timeout.as_nanos() as u64,
                idle_ns: f.idle_timeout.as_nanos() as u64,
                ..MeterConfig::default()
            },
            ring: Arc::new(ArrayQueue::new(f.ring_entries)),
            stats: Arc::clone(&stats.flows),
            seed: clock.now_ns() ^ (i as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        });
        WorkerSetup {
            index: i,
            workers: self.workers,
            appliance_id: inp.cfg.appliance.id,
            sources,
            port_direction: self.facts.direction.clone(),
            uplink_rx,
            uplink_tx,
            tool_ports,
            decap: self.decap.clone(),
            port_decap: self.facts.decap.clone(),
            port_answers: self.facts.answers.clone(),
            exceptions: Arc::clone(&s.exceptions),
            // Telemetry is sent to any uplink's address.
            intake: match (&s.intake, &inp.cfg.intake) {
                (Some(ring), Some(i)) if !inp.cfg.uplinks.is_empty() => Some(IntakeTap {
                    addrs: inp.cfg.uplinks.iter().map(|u| u.address.addr).collect(),
                    ports: i.ports(),
                    ring: Arc::clone(ring),
                }),
                _ => None,
            },
            control_tx: (i == 0).then(|| Arc::clone(&s.control_tx)),
            pool: Arc::clone(inp.pool),
            clone_pool: inp.clone_pool.map(Arc::clone),
            dedup: DedupConfig {
                entries: dedup.table_entries as usize,
                window_us: u32::try_from(dedup.window.as_micros()).unwrap_or(u32::MAX),
                ignore_dscp_ecn: dedup.ignore_dscp,
                include_l2: dedup.include_l2,
                seed: clock.now_ns() ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            },
            tables: Arc::clone(&s.tables),
            stats,
            state: Arc::clone(&s.run),
            clock,
            // `[flow_cache] entries` (default 1 Mi flows, 64 MiB a worker:
            // config/eal.rs says why).
            flow_cache_entries: inp.cfg.flow_cache.entries as usize,
            trace: Arc::clone(&s.trace),
            dedup_window_us: Arc::clone(&s.dedup_window_us),
            clear_epoch: Arc::clone(&s.clear_epoch),
            protect: Arc::clone(&s.protect),
            idle: idle_config(inp.cfg),
            flows,
        }
    }
}

/// `[workers] idle` and `idle_max_us` for every worker.
pub(super) fn idle_config(cfg: &Config) -> IdleConfig {
    IdleConfig {
        mode: match cfg.workers.idle {
            config::IdleMode::Poll => IdleMode::Poll,
            config::IdleMode::Adaptive => IdleMode::Adaptive,
            config::IdleMode::Interrupt => IdleMode::Interrupt,
        },
        max_sleep_us: cfg.workers.idle_max_us,
    }
}

/// `show lcores`' line for a worker.
fn role_of(i: usize, setup: &WorkerSetup) -> String {
    let polls: Vec<String> = setup
        .sources
        .iter()
        .map(|s| match s {
            Source::Queue { rxq, .. } => format!("port {} queue {}", rxq.port(), rxq.queue()),
            Source::Ring(_) => "its distributor ring".to_owned(),
            Source::Tap { direction, .. } => {
                format!("pdump copies ({})", pdump::dir_name(*direction))
            }
        })
        .chain(
            setup
                .uplink_rx
                .iter()
                .map(|q| format!("uplink port {} queue {} (ARP/ND)", q.port(), q.queue())),
        )
        .collect();
    let mut sends: Vec<(u16, u16)> = setup
        .uplink_tx
        .iter()
        .chain(setup.tool_ports.iter())
        .map(|q| (q.port(), q.queue()))
        .collect();
    // The decap inputs' tool port is one of the tool ports too.
    sends.sort_unstable();
    sends.dedup();
    format!(
        "worker {i}: polls {}; sends on {}",
        polls.join(", "),
        sends
            .iter()
            .map(|(p, q)| format!("port {p} queue {q}"))
            .collect::<Vec<_>>()
            .join(" and ")
    )
}

impl Lcores {
    /// Sets up every worker (and the distributor) from `plan` and launches
    /// them; they wait paused on `shared.run`. Returns the ports too, now
    /// that the workers hold their queues.
    pub fn launch(
        plan: Plan,
        inp: &LaunchInputs<'_>,
    ) -> Result<(Lcores, Vec<(PortConfig, Port)>), StartError> {
        let Plan {
            ports,
            worker_lcores,
            distributor_lcore,
            uplink_rx_queues,
            inline,
            ..
        } = plan;
        let workers = worker_lcores.len();
        let common = Common {
            inp,
            facts: PortFacts::of(&ports, inp),
            decap: decap_setup(inp.cfg),
            clock: Clock::new(),
            workers,
        };
        let to_workers = if distributor_lcore.is_some() {
            rings(inp.cfg, workers, |i| format!("sluice_dist{i}"))?
        } else {
            Vec::new()
        };
        let mut dist_rings = Vec::new();
        let (mut taps, dist_taps) =
            tap_sources(inp, workers, distributor_lcore.is_some(), &mut dist_rings)?;
        dist_rings.extend(to_workers.iter().cloned());
        // Uplinks by uplink index (`[[uplink]]` order), with their RX queues.
        let uplinks: Vec<(&Port, u16)> = inp
            .cfg
            .uplinks
            .iter()
            .filter_map(|u| {
                let port = ports.iter().find(|(pc, _)| pc.name == u.port)?;
                let rxq = uplink_rx_queues
                    .iter()
                    .find(|(n, _)| n == &u.port)
                    .map_or(0, |(_, q)| *q);
                Some((&port.1, rxq))
            })
            .collect();
        // Tool ports in config order: a worker's queue on each, indexed by
        // tool port index (tool destinations and the decap inputs' tool port).
        let tools: Vec<&Port> = ports
            .iter()
            .filter(|(pc, _)| pc.role == Role::Tool)
            .map(|(_, p)| p)
            .collect();
        let mut dist_inputs = Vec::new();
        let mut setups = Vec::new();
        for (i, &lcore) in worker_lcores.iter().enumerate() {
            let q = i as u16;
            let mut sources = input_sources(&ports, &common.facts, i, workers, &mut dist_inputs)?;
            if let Some(r) = to_workers.get(i) {
                sources.push(Source::Ring(Arc::clone(r)));
            }
            sources.append(&mut taps[i]);
            let uplink_rx = uplinks
                .iter()
                .filter(|(_, rxqs)| q < *rxqs)
                .map(|(u, _)| u.rx_queue(q).map_err(StartError::dpdk("uplink")))
                .collect::<Result<Vec<_>, _>>()?;
            let uplink_tx = uplinks
                .iter()
                .map(|(u, _)| u.tx_queue(q).map_err(StartError::dpdk("uplink")))
                .collect::<Result<Vec<_>, _>>()?;
            let tool_ports = tools
                .iter()
                .map(|t| t.tx_queue(q).map_err(StartError::dpdk("tool port")))
                .collect::<Result<Vec<_>, _>>()?;
            setups.push((
                lcore,
                common.setup(i, sources, uplink_rx, uplink_tx, tool_ports),
            ));
        }
        let main_role = if inline {
            "main: control plane, console, ARP/ND, and worker 0 between its rounds (one-lcore mode)"
        } else {
            "main: control plane, console, ARP/ND"
        };
        let mut lc = Lcores {
            inline: None,
            workers: Vec::new(),
            distributor: None,
            roles: vec![(dataplane::dpdk::main_lcore(), main_role.to_owned())],
            rings: dist_rings,
            counters: CounterBlocks::default(),
            idle: idle_config(inp.cfg),
            flow_rings: setups
                .iter()
                .filter_map(|(_, s)| s.flows.as_ref().map(|f| Arc::clone(&f.ring)))
                .collect(),
        };
        for (i, (lcore, setup)) in setups.iter().enumerate() {
            lc.roles.push((*lcore, role_of(i, setup)));
        }
        for (i, (lcore, setup)) in setups.into_iter().enumerate() {
            lc.counters.push(
                format!("worker {i} (lcore {lcore})"),
                LcoreKind::Worker,
                Arc::clone(&setup.stats),
            );
            if inline {
                // On this thread: its epoll set (interrupt mode) is the
                // main lcore's, which runs it.
                lc.inline = Some(InlineWorker::new(setup).map_err(StartError::Inline)?);
                continue;
            }
            let handle = launch(lcore, move || worker::run(setup))
                .map_err(StartError::dpdk("launch worker"))?;
            lc.workers.push(Slot {
                lcore,
                handle: Some(handle),
            });
        }
        if let Some(lcore) = distributor_lcore {
            let stats = Arc::new(WorkerStats::default());
            lc.counters.push(
                format!("distributor (lcore {lcore})"),
                LcoreKind::Distributor,
                Arc::clone(&stats),
            );
            let setup = DistributorSetup {
                inputs: dist_inputs,
                rings: to_workers,
                taps: dist_taps,
                stats,
                state: Arc::clone(&inp.shared.run),
                clear_epoch: Arc::clone(&inp.shared.clear_epoch),
            };
            let handle = launch(lcore, move || distributor::run(setup))
                .map_err(StartError::dpdk("launch distributor"))?;
            lc.distributor = Some(Slot {
                lcore,
                handle: Some(handle),
            });
        }
        Ok((lc, ports))
    }

    pub fn workers(&self) -> usize {
        self.workers.len() + usize::from(self.inline.is_some())
    }

    /// `show lcores`' idle lines: each worker's mode and its waits.
    pub fn idle_report(&self) -> String {
        let i = self.idle;
        let mut out = match i.mode {
            IdleMode::Poll => "  idle: poll (busy polling)\n".to_owned(),
            m => format!(
                "  idle: {} (wakes within {} µs{})\n",
                m.name(),
                i.max_sleep_us,
                if m == IdleMode::Interrupt {
                    " of a missed interrupt"
                } else {
                    ""
                }
            ),
        };
        for (name, s) in self.counters.workers() {
            let c = &s.counters;
            out.push_str(&format!(
                "  {name}: idle waits {}, woken by RX interrupt {}\n",
                c.idle_waits.get(),
                c.idle_interrupts.get()
            ));
        }
        out
    }

    /// Whether the main lcore runs the single worker (one-lcore mode).
    pub fn one_lcore(&self) -> bool {
        self.inline.is_some()
    }

    /// Lets `d` pass on the main lcore: the inline worker runs for it in
    /// one-lcore mode; otherwise the main lcore sleeps.
    pub fn pass(&mut self, d: Duration) {
        match &mut self.inline {
            Some(w) => {
                w.run_for(d);
            }
            None => std::thread::sleep(d),
        }
    }

    /// The distributor's lcore, if there is one.
    pub fn distributor(&self) -> Option<u32> {
        self.distributor.as_ref().map(|d| d.lcore)
    }

    /// Whether a worker or the distributor has stopped.
    pub fn died(&self) -> bool {
        self.workers.iter().any(Slot::finished)
            || self.distributor.as_ref().is_some_and(Slot::finished)
    }

    /// Waits until every worker and the distributor poll (a worker first
    /// builds its dedup table, which takes a while for a big one).
    pub fn wait_started(&mut self) -> Result<(), StartError> {
        loop {
            if self.counters.stats().all(|s| s.counters.started.get() > 0) {
                return Ok(());
            }
            if self.died() {
                return Err(StartError::WorkerFailed(self.join().join("; ")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits, after the run word says pause, until no lcore is in a round
    /// that polls the inputs; after `limit`, says how many still are.
    pub fn wait_paused(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let polling = self
                .counters
                .stats()
                .filter(|s| s.counters.polling.is_up())
                .count();
            if polling == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{polling} lcore(s) still in a round that polls the inputs after {} ms",
                    limit.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Joins every lcore (after the run word says exit): what each failure was.
    pub fn join(&mut self) -> Vec<String> {
        if let Some(mut w) = self.inline.take() {
            // The run word says exit: its last round drains the TX buffers.
            w.run_for(Duration::ZERO);
        }
        let mut failures = Vec::new();
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                match h.wait() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(p) => failures.push(p.to_string()),
                }
            }
        }
        if let Some(h) = self.distributor.as_mut().and_then(|d| d.handle.take()) {
            if let Err(p) = h.wait() {
                failures.push(p.to_string());
            }
        }
        failures
    }
}
