//! The appliance on the main lcore: start-up (EAL, pool, ports, rings,
//! workers), the control loop (signals, policy reload, ARP/ND, next-hop
//! changes) and an orderly shutdown with the final counters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dataplane::dpdk::{
    events, launch, rss_capable, telemetry, worker_lcores, Eal, LcoreHandle, Mbuf, Mempool, Port,
    PortConfig as DpdkPortConfig, Ring, RssMode,
};
use dataplane::frame::Frame;
use dataplane::runtime::clock::Clock;
use dataplane::runtime::counters::{DestDrop, Totals, WorkerStats, MAX_DEST_SLOTS};
use dataplane::runtime::distributor::{self, DistributorSetup};
use dataplane::runtime::policy::CompiledPolicy;
use dataplane::runtime::tables::{DestTable, Tables};
use dataplane::runtime::trace::Trace;
use dataplane::runtime::worker::{self, run_state, DecapSetup, Source, WorkerSetup};
use dataplane::stage::decap::{DecapConfig, Retag, VidMap};
use dataplane::stage::dedup::DedupConfig;
use dataplane::stage::encap::{EncapConfig, EncapTemplate, OuterConfig};
use dataplane::stage::Direction;
use dataplane::wire::ethernet::Address;

use std::sync::mpsc::Receiver;

use crate::agent::protocol::{CommandKind, Counters, DestinationCounters};
use crate::agent::{self, AgentConfig, AgentEvent, AgentHandle, AgentReply, HeartbeatData};
use crate::cli::{Answer, Envelope};
use crate::config::{
    parse_cidr, parse_mac, Config, NonTunnel, PortConfig, PortDirection, PortMode, RetagMode, Role,
};
use crate::log::log;
use crate::guard::{Guard, Sample as GuardSample, Transition};
use crate::neighbor::{Neighbors, Uplink};
use crate::policy::{self, Context, Policy, PolicyError};
use crate::stats::{fwd_stats, Named};

mod answer;
mod console;
mod controller;
mod links;
mod pdump;
mod vhost;

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    File(PathBuf),
    /// Text built into the program (the default run).
    BuiltIn(&'static str),
    /// Text from the controller, or persisted from it; `origin` names it.
    Text {
        origin: String,
        text: String,
    },
}

/// How the appliance should run.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: PolicySource,
    /// Stop once inputs have been quiet this long after traffic (replaying
    /// a capture file); `None` runs until a signal.
    pub exit_when_idle: Option<Duration>,
    /// How long start-up waits for next hops before forwarding anyway.
    pub resolve_timeout: Duration,
    /// Start forwarding after start-up (else wait for `start`, as testpmd
    /// does in interactive mode).
    pub auto_start: bool,
    /// The controller's version of the starting policy (a persisted one).
    pub controller_version: Option<String>,
}

/// The appliance's state (DESIGN §6), as the console and heartbeats report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Starting: ports up, next hops resolving.
    Selfcheck,
    Running,
    /// Shedding load on purpose to protect itself.
    Protect,
    /// Not forwarding (console `stop`).
    Stopped,
    /// A worker failed.
    Exception,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Selfcheck => "selfcheck",
            State::Running => "running",
            State::Protect => "protect",
            State::Stopped => "stopped",
            State::Exception => "exception",
        }
    }
}

struct WorkerSlot {
    lcore: u32,
    stats: Arc<WorkerStats>,
    handle: Option<LcoreHandle<Result<(), String>>>,
}

struct DistributorSlot {
    lcore: u32,
    stats: Arc<WorkerStats>,
    handle: Option<LcoreHandle<()>>,
}

/// A running appliance. Fields drop in order: workers are joined first
/// (by `shutdown`), ports close (flushing pcap writers) before the pool,
/// and EAL goes last.
pub struct Appliance {
    workers: Vec<WorkerSlot>,
    distributor: Option<DistributorSlot>,
    run: Arc<AtomicU8>,
    tables: Arc<ArcSwap<Tables>>,
    policy: Arc<CompiledPolicy>,
    /// The running policy as written, for `show policy`.
    policy_model: Policy,
    generation: u64,
    slots: HashMap<String, u16>,
    seqs: HashMap<String, Arc<AtomicU32>>,
    neighbors: Neighbors,
    exceptions: Arc<Ring<Mbuf>>,
    control_tx: Arc<Ring<Mbuf>>,
    ctx: Context,
    cfg: Config,
    opts: Options,
    uplink_ip: IpAddr,
    uplink_mac: [u8; 6],
    /// False on a decap-only appliance.
    has_uplink: bool,
    started: Instant,
    /// What the console and heartbeats report.
    state: State,
    trace: Arc<Trace>,
    dedup_window_us: Arc<AtomicU32>,
    guard: Guard,
    /// The workers' shed word (0: not protecting); see `worker::shed`.
    protect: Arc<std::sync::atomic::AtomicU64>,
    last_guard_ms: u64,
    /// Why the guard last entered protect.
    protect_reason: String,
    dist_rings: Vec<Arc<Ring<Mbuf>>>,
    /// The controller session, when `[controller]` is configured.
    agent: Option<AgentHandle>,
    heartbeat_every: Duration,
    last_heartbeat: Instant,
    /// The controller's version of the running policy.
    controller_version: Option<String>,
    /// The session as the agent's events tell it, for the console.
    controller_session: controller::Session,
    /// Destination names and counter slots, for telemetry's thread.
    dest_names: Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    /// Bumped by `clear fwd stats all`; workers zero their own counters.
    clear_epoch: Arc<std::sync::atomic::AtomicU64>,
    lcore_roles: Vec<(u32, String)>,
    ports: Vec<(PortConfig, Port)>,
    /// Each port's events at the last look, to log what changed.
    link_events: Vec<events::PortEvents>,
    /// ARP/ND answerers of decap inputs with an address.
    answerers: Vec<answer::Answerer>,
    /// pdump taps on a primary's ports (secondary mode).
    taps: Option<pdump::Taps>,
    /// Why the appliance had to stop (the primary went away).
    failure: Option<String>,
    last_primary_check_ms: u64,
    pool: Arc<Mempool>,
    /// Dropped last: cleans EAL up.
    eal: Eal,
}

/// Ports opened and configured, and who polls what.
struct Plan {
    ports: Vec<(PortConfig, Port)>,
    worker_lcores: Vec<u32>,
    distributor_lcore: Option<u32>,
    uplink_rx_queues: u16,
}

fn dpdk_err(what: &str) -> impl Fn(dataplane::dpdk::DpdkError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn plan_ports(cfg: &Config, pool: &Mempool) -> Result<Plan, String> {
    let mut lcores = match &cfg.workers.lcores {
        Some(l) => {
            let eal = worker_lcores();
            if let Some(bad) = l.iter().find(|c| !eal.contains(c)) {
                return Err(format!(
                    "workers.lcores: lcore {bad} is not an EAL worker lcore (EAL has {eal:?}; give -l)"
                ));
            }
            l.clone()
        }
        None => worker_lcores(),
    };
    if lcores.is_empty() {
        return Err("no worker lcore: give EAL at least two lcores, e.g. -l 0-1 (lcore 0 is the main lcore)".into());
    }
    let mut opened = Vec::new();
    // pdump inputs are the primary's ports: tapped, never opened here.
    for pc in cfg.ports.iter().filter(|pc| pc.pdump.is_none()) {
        check_pcap_inputs(pc)?;
        vhost::prepare_socket(pc)?;
        if cfg.pdump.is_some() {
            pdump::free_device(pc)?;
        }
        let mut port = Port::open(&pc.device).map_err(|e| format!("port {:?}: {e}", pc.name))?;
        if cfg.pdump.is_some() {
            // Hot-plugged through the primary, which now sees it too.
            port.claim(&pdump::owner_name())
                .map_err(|e| format!("port {:?}: {e}", pc.name))?;
        }
        // Before configure: a vhost-user peer may connect as soon as the
        // socket exists.
        events::watch(port.id()).map_err(|e| format!("port {:?}: {e}", pc.name))?;
        opened.push((pc.clone(), port));
    }
    // Inputs that cannot hash need the distributor when there are several
    // workers; so do pdump taps (one ring per tapped direction).
    let mut need_distributor = lcores.len() > 1 && cfg.pdump_inputs().next().is_some();
    if lcores.len() > 1 {
        for (pc, port) in opened.iter().filter(|(pc, _)| pc.role == Role::Input) {
            let info = port.info().map_err(dpdk_err(&pc.name))?;
            if !rss_capable(&info) || usize::from(info.max_rx_queues) < lcores.len() {
                need_distributor = true;
            }
        }
    }
    let distributor_lcore = if need_distributor {
        if lcores.len() < 3 {
            // One distributor and a single worker would gain nothing.
            lcores.truncate(1);
            None
        } else {
            lcores.pop()
        }
    } else {
        None
    };
    let workers = lcores.len() as u16;
    let mut uplink_rx_queues = 0;
    for (pc, port) in &mut opened {
        let info = port.info().map_err(dpdk_err(&pc.name))?;
        let mut pcfg = DpdkPortConfig {
            rx_desc: cfg.queues.rx_desc,
            tx_desc: cfg.queues.tx_desc,
            mtu: pc.mtu,
            ..DpdkPortConfig::default()
        };
        // Whether the device spreads this input over one queue per worker.
        let mut per_worker = false;
        match pc.role {
            Role::Input => {
                per_worker = rss_capable(&info) && info.max_rx_queues >= workers && workers > 1;
                pcfg.rx_queues = if per_worker {
                    workers
                } else {
                    vhost::rx_queues(&info)
                };
                // net_vhost delivers nothing unless the port also has TX
                // queues (its queuing switch stays off without them), so an
                // input gets one whenever the device has any. Only the main
                // lcore sends there: ARP/ND replies for a decap address.
                pcfg.tx_queues = u16::from(info.max_tx_queues > 0);
            }
            Role::Uplink | Role::Tool => {
                if info.max_tx_queues < workers {
                    return Err(format!(
                        "port {:?} ({}): has {} TX queue(s) but {workers} worker(s) need one each: run fewer workers (EAL -l) or give the device more queues",
                        pc.name, pc.device, info.max_tx_queues
                    ));
                }
                pcfg.tx_queues = workers;
                // A tool port only sends; the uplink receives ARP/ND.
                pcfg.rx_queues = match pc.role {
                    Role::Uplink => workers.min(info.max_rx_queues),
                    _ => u16::from(info.max_rx_queues > 0 && pc.device.starts_with("net_tap")),
                };
                if pc.role == Role::Uplink {
                    uplink_rx_queues = pcfg.rx_queues;
                }
            }
        }
        let mode = port
            .configure(&pcfg, pool)
            .map_err(|e| format!("port {:?} ({}): {e}", pc.name, pc.device))?;
        if per_worker && mode != RssMode::Symmetric {
            return Err(format!(
                "port {:?}: symmetric RSS could not be set up",
                pc.name
            ));
        }
        port.start()
            .map_err(|e| format!("port {:?}: {e}", pc.name))?;
    }
    Ok(Plan {
        ports: opened,
        worker_lcores: lcores,
        distributor_lcore,
        uplink_rx_queues,
    })
}

/// A `net_pcap` port reads its `rx_pcap` files as Ethernet whatever their
/// link type says: refuse files of another link type (raw IP, Linux cooked
/// capture…) instead of misparsing them.
fn check_pcap_inputs(pc: &PortConfig) -> Result<(), String> {
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use pcap_file::DataLink;
    if !pc.device.starts_with("net_pcap") {
        return Ok(());
    }
    for file in pc
        .device
        .split(',')
        .filter_map(|kv| kv.strip_prefix("rx_pcap="))
    {
        let open = || {
            std::fs::File::open(file)
                .map_err(|e| format!("port {:?}: rx_pcap {file}: {e}", pc.name))
        };
        let link = match PcapReader::new(open()?) {
            Ok(r) => r.header().datalink,
            Err(_) => {
                let mut r = PcapNgReader::new(open()?).map_err(|e| {
                    format!(
                        "port {:?}: rx_pcap {file}: neither pcap nor pcapng: {e}",
                        pc.name
                    )
                })?;
                let mut link = None;
                while let Some(Ok(b)) = r.next_block() {
                    if let Block::InterfaceDescription(idb) = b {
                        link = Some(idb.linktype);
                        break;
                    }
                }
                link.ok_or_else(|| {
                    format!(
                        "port {:?}: rx_pcap {file}: pcapng without an interface",
                        pc.name
                    )
                })?
            }
        };
        if link != DataLink::ETHERNET {
            return Err(format!(
                "port {:?}: rx_pcap {file} has link type {link:?}, not Ethernet: Sluice reads Ethernet frames only",
                pc.name
            ));
        }
    }
    Ok(())
}

impl Appliance {
    /// Starts EAL and everything on it, launches the workers (paused),
    /// resolves next hops, then lets traffic through.
    pub fn start(eal_args: &[String], cfg: Config, opts: Options) -> Result<Appliance, String> {
        let eal = match &cfg.pdump {
            None => Eal::init(eal_args).map_err(|e| e.to_string())?,
            Some(p) => Eal::init(&pdump::eal_args(p, eal_args)?).map_err(|e| {
                format!(
                    "cannot attach to the primary of pdump.file_prefix {:?} (is it running, without --in-memory, on the same DPDK build as Sluice?): {e}",
                    p.file_prefix.trim()
                )
            })?,
        };
        let pool = Arc::new(
            Mempool::new(
                &pdump::shared_name("sluice_pkts"),
                cfg.mempool.mbufs,
                cfg.mempool.cache,
                2176,
                -1,
            )
            .map_err(|e| format!("mempool.mbufs = {}: {e}", cfg.mempool.mbufs))?,
        );
        let taps = pdump::Taps::prepare(&cfg)?;
        let plan = plan_ports(&cfg, &pool)?;

        // Decap-only appliances have no uplink: no tunnels out, no neighbours.
        let uplink_port = plan
            .ports
            .iter()
            .find(|(pc, _)| pc.role == Role::Uplink)
            .map(|(_, p)| p);
        let (uplink_mac, uplink_ip, prefix_len, gateway, refresh_s) =
            match (&cfg.uplink, uplink_port) {
                (Some(u), Some(port)) => {
                    let mac = match u.mac.as_deref().and_then(parse_mac) {
                        Some(m) => m,
                        None => port.mac().map_err(dpdk_err("uplink"))?,
                    };
                    let (ip, len) = parse_cidr(&u.address)
                        .ok_or_else(|| format!("uplink.address {:?}", u.address))?;
                    (mac, ip, len, u.gateway, u.arp_refresh_s)
                }
                _ => (
                    [0; 6],
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    32,
                    None,
                    30,
                ),
            };
        let has_uplink = uplink_port.is_some();
        let statics: Vec<(IpAddr, [u8; 6])> = cfg
            .neighbors
            .iter()
            .filter_map(|n| parse_mac(&n.mac).map(|m| (n.ip, m)))
            .collect();
        let neighbors = Neighbors::new(
            Uplink {
                mac: uplink_mac,
                addr: uplink_ip,
                prefix_len,
                gateway,
                refresh_s,
            },
            &statics,
        );

        let ctx = Context {
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
        };
        let (policy_model, policy) = load_policy(&opts.policy, &ctx).map_err(|e| e.to_string())?;
        if policy.destinations.len() > MAX_DEST_SLOTS {
            return Err(format!(
                "policy has {} destinations; the appliance holds {MAX_DEST_SLOTS}",
                policy.destinations.len()
            ));
        }

        let exceptions = Arc::new(
            Ring::new(&pdump::shared_name("sluice_exc"), 1024)
                .map_err(dpdk_err("exception ring"))?,
        );
        let control_tx = Arc::new(
            Ring::new(&pdump::shared_name("sluice_ctl_tx"), 256)
                .map_err(dpdk_err("control ring"))?,
        );
        let run = Arc::new(AtomicU8::new(run_state::PAUSED));
        let placeholder = Tables {
            generation: 0,
            policy: Arc::new(policy.clone()),
            dests: Vec::new(),
        };
        let guard = Guard::new(cfg.guard.clone());
        let mut app = Appliance {
            workers: Vec::new(),
            distributor: None,
            run,
            tables: Arc::new(ArcSwap::from_pointee(placeholder)),
            policy: Arc::new(policy),
            policy_model,
            generation: 0,
            slots: HashMap::new(),
            seqs: HashMap::new(),
            neighbors,
            exceptions,
            control_tx,
            ctx,
            cfg,
            opts,
            uplink_ip,
            uplink_mac,
            has_uplink,
            started: Instant::now(),
            state: State::Selfcheck,
            trace: Arc::new(Trace::default()),
            dedup_window_us: Arc::new(AtomicU32::new(0)),
            clear_epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            dest_names: Arc::default(),
            guard,
            protect: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            last_guard_ms: 0,
            protect_reason: String::new(),
            dist_rings: Vec::new(),
            agent: None,
            heartbeat_every: Duration::from_secs(1),
            last_heartbeat: Instant::now(),
            controller_version: None,
            controller_session: controller::Session::default(),
            lcore_roles: Vec::new(),
            ports: Vec::new(),
            link_events: Vec::new(),
            answerers: Vec::new(),
            taps: None,
            failure: None,
            last_primary_check_ms: 0,
            pool,
            eal,
        };
        app.dedup_window_us.store(
            app.cfg.dedup.window_us.min(u64::from(u32::MAX)) as u32,
            Ordering::Relaxed,
        );
        app.publish()?;
        app.taps = taps;
        app.launch(plan)?;
        app.wait_started()?;
        app.register_telemetry();
        app.selfcheck();
        if app.opts.auto_start {
            app.set_forwarding(true);
        } else {
            app.state = State::Stopped;
        }
        // Taps last: the primary copies from now on, and the workers read.
        let replace = app.cfg.pdump.as_ref().is_some_and(|p| p.replace_taps);
        if let Some(t) = &mut app.taps {
            t.enable(replace)?;
        }
        app.controller_version = app.opts.controller_version.clone();
        if let Some(mut ac) = AgentConfig::from_config(&app.cfg) {
            ac.policy_version = app.controller_version.clone();
            app.heartbeat_every = ac.heartbeat;
            log(format!("controller session to {}", ac.address));
            app.agent = Some(agent::spawn(ac));
        }
        log(format!(
            "running: {} worker(s){}, policy {:?} with {} rule(s) and {} destination(s)",
            app.workers.len(),
            app.distributor.as_ref().map_or(String::new(), |d| format!(
                " and a distributor on lcore {}",
                d.lcore
            )),
            app.policy.version,
            app.policy.rule_names.len(),
            app.policy.destinations.len()
        ));
        Ok(app)
    }

    fn launch(&mut self, plan: Plan) -> Result<(), String> {
        let Plan {
            ports,
            worker_lcores,
            distributor_lcore,
            uplink_rx_queues,
        } = plan;
        let workers = worker_lcores.len();
        let clock = Clock::new();
        let tapped: Vec<&pdump::TappedPort> =
            self.taps.iter().flat_map(|t| t.ports.iter()).collect();
        let max_port = ports
            .iter()
            .map(|(_, p)| p.id())
            .chain(tapped.iter().map(|tp| tp.port))
            .max()
            .unwrap_or(0);
        let mut port_direction = vec![Direction::Ingress; usize::from(max_port) + 1];
        for (pc, p) in &ports {
            port_direction[usize::from(p.id())] = match pc.direction() {
                PortDirection::Ingress => Direction::Ingress,
                PortDirection::Egress => Direction::Egress,
            };
        }
        let rings: Vec<Arc<Ring<Mbuf>>> = if distributor_lcore.is_some() {
            (0..workers)
                .map(|i| {
                    Ring::new(
                        &pdump::shared_name(&format!("sluice_dist{i}")),
                        self.cfg.queues.distributor_ring,
                    )
                    .map(Arc::new)
                })
                .collect::<Result<_, _>>()
                .map_err(dpdk_err("distributor ring"))?
        } else {
            Vec::new()
        };
        let uplink = ports
            .iter()
            .find(|(pc, _)| pc.role == Role::Uplink)
            .map(|(_, p)| p);
        let tool = ports
            .iter()
            .find(|(pc, _)| pc.role == Role::Tool)
            .map(|(_, p)| p);
        let mut port_decap = vec![false; usize::from(max_port) + 1];
        let mut port_answers = vec![false; usize::from(max_port) + 1];
        for (pc, p) in &ports {
            port_decap[usize::from(p.id())] = pc.role == Role::Input && pc.mode == PortMode::Decap;
            if let Some(a) = answer::Answerer::for_port(pc, p)? {
                log(format!(
                    "port {} {:?}: answers ARP/ND for {}",
                    a.port, a.name, a.addr
                ));
                port_answers[usize::from(p.id())] = true;
                self.answerers.push(a);
            }
        }
        for tp in &tapped {
            port_decap[usize::from(tp.port)] = tp.decap();
        }
        // Tap rings: a single worker reads them itself; several get them
        // through the distributor, one ring per worker and direction.
        let mut tap_sources: Vec<Vec<Source>> = (0..workers).map(|_| Vec::new()).collect();
        let mut dist_taps = Vec::new();
        if distributor_lcore.is_some() && !tapped.is_empty() {
            for dir in [Direction::Ingress, Direction::Egress] {
                let outs: Vec<Arc<Ring<Mbuf>>> = (0..workers)
                    .map(|i| {
                        Ring::new(
                            &pdump::shared_name(&format!("sluice_d{i}{}", pdump::dir_name(dir))),
                            self.cfg.queues.distributor_ring,
                        )
                        .map(Arc::new)
                    })
                    .collect::<Result<_, _>>()
                    .map_err(dpdk_err("distributor ring"))?;
                for tp in &tapped {
                    for (c, ring) in &tp.rings {
                        if pdump::direction(*c) == dir {
                            dist_taps.push((Arc::clone(ring), outs.clone()));
                        }
                    }
                }
                for (i, r) in outs.iter().enumerate() {
                    tap_sources[i].push(Source::Tap {
                        ring: Arc::clone(r),
                        direction: dir,
                    });
                }
                self.dist_rings.extend(outs);
            }
        } else {
            for tp in &tapped {
                for (c, ring) in &tp.rings {
                    tap_sources[0].push(Source::Tap {
                        ring: Arc::clone(ring),
                        direction: pdump::direction(*c),
                    });
                }
            }
        }
        let d = &self.cfg.decap;
        let decap = DecapSetup {
            config: DecapConfig {
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
            },
            pass_non_tunnel: d.non_tunnel == NonTunnel::Pass,
            dedup: d.dedup,
        };
        self.dist_rings.extend(rings.iter().cloned());
        let mut dist_inputs = Vec::new();
        let mut setups = Vec::new();
        for (i, &lcore) in worker_lcores.iter().enumerate() {
            let mut sources = Vec::new();
            for (pc, p) in ports.iter().filter(|(pc, _)| pc.role == Role::Input) {
                let dir = port_direction[usize::from(p.id())];
                let decap = pc.mode == PortMode::Decap;
                if p.rss() == RssMode::Symmetric {
                    let rxq = p.rx_queue(i as u16).map_err(dpdk_err(&pc.name))?;
                    sources.push(Source::Queue {
                        rxq,
                        direction: dir,
                        decap,
                    });
                } else if workers == 1 {
                    // Every queue the peer may fill (a vhost-user port has several).
                    for q in 0..p.rx_queues() {
                        let rxq = p.rx_queue(q).map_err(dpdk_err(&pc.name))?;
                        sources.push(Source::Queue {
                            rxq,
                            direction: dir,
                            decap,
                        });
                    }
                } else if i == 0 {
                    for q in 0..p.rx_queues() {
                        dist_inputs.push(p.rx_queue(q).map_err(dpdk_err(&pc.name))?);
                    }
                }
            }
            if let Some(r) = rings.get(i) {
                sources.push(Source::Ring(Arc::clone(r)));
            }
            sources.append(&mut tap_sources[i]);
            let uplink_rx = match uplink {
                Some(u) if (i as u16) < uplink_rx_queues => {
                    Some(u.rx_queue(i as u16).map_err(dpdk_err("uplink"))?)
                }
                _ => None,
            };
            let uplink_tx = match uplink {
                Some(u) => Some(u.tx_queue(i as u16).map_err(dpdk_err("uplink"))?),
                None => None,
            };
            let tool_tx = match tool {
                Some(t) => Some(t.tx_queue(i as u16).map_err(dpdk_err("tool port"))?),
                None => None,
            };
            let stats = Arc::new(WorkerStats::default());
            setups.push((
                lcore,
                Arc::clone(&stats),
                WorkerSetup {
                    index: i,
                    workers,
                    appliance_id: self.cfg.appliance.id,
                    sources,
                    port_direction: port_direction.clone(),
                    uplink_rx,
                    uplink_tx,
                    tool_tx,
                    decap: decap.clone(),
                    port_decap: port_decap.clone(),
                    port_answers: port_answers.clone(),
                    exceptions: Arc::clone(&self.exceptions),
                    control_tx: (i == 0).then(|| Arc::clone(&self.control_tx)),
                    pool: Arc::clone(&self.pool),
                    dedup: DedupConfig {
                        entries: self.cfg.dedup.table_entries as usize,
                        window_us: self.cfg.dedup.window_us.min(u64::from(u32::MAX)) as u32,
                        ignore_dscp_ecn: self.cfg.dedup.ignore_dscp,
                        include_l2: self.cfg.dedup.include_l2,
                        seed: clock.now_ns() ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    },
                    tables: Arc::clone(&self.tables),
                    stats,
                    state: Arc::clone(&self.run),
                    clock,
                    flow_cache_entries: 4096,
                    trace: Arc::clone(&self.trace),
                    dedup_window_us: Arc::clone(&self.dedup_window_us),
                    clear_epoch: Arc::clone(&self.clear_epoch),
                    protect: Arc::clone(&self.protect),
                },
            ));
        }
        self.link_events = ports.iter().map(|(_, p)| events::of(p.id())).collect();
        self.ports = ports;
        self.lcore_roles = vec![(
            dataplane::dpdk::main_lcore(),
            "main: control plane, console, ARP/ND".to_owned(),
        )];
        for (i, (lcore, _, setup)) in setups.iter().enumerate() {
            let polls: Vec<String> = setup
                .sources
                .iter()
                .map(|s| match s {
                    Source::Queue { rxq, .. } => {
                        format!("port {} queue {}", rxq.port(), rxq.queue())
                    }
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
            self.lcore_roles.push((
                *lcore,
                format!(
                    "worker {i}: polls {}; sends on {}",
                    polls.join(", "),
                    setup
                        .uplink_tx
                        .iter()
                        .chain(setup.tool_tx.iter())
                        .map(|q| format!("port {} queue {}", q.port(), q.queue()))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ));
        }
        for (lcore, stats, setup) in setups {
            let handle =
                launch(lcore, move || worker::run(setup)).map_err(dpdk_err("launch worker"))?;
            self.workers.push(WorkerSlot {
                lcore,
                stats,
                handle: Some(handle),
            });
        }
        if let Some(lcore) = distributor_lcore {
            let stats = Arc::new(WorkerStats::default());
            let setup = DistributorSetup {
                inputs: dist_inputs,
                rings,
                taps: dist_taps,
                stats: Arc::clone(&stats),
                state: Arc::clone(&self.run),
                clear_epoch: Arc::clone(&self.clear_epoch),
            };
            let handle = launch(lcore, move || distributor::run(setup))
                .map_err(dpdk_err("launch distributor"))?;
            self.distributor = Some(DistributorSlot {
                lcore,
                stats,
                handle: Some(handle),
            });
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Builds the workers' tables from the policy and the neighbour table,
    /// and publishes them.
    fn publish(&mut self) -> Result<(), String> {
        let mut dests = Vec::with_capacity(self.policy.destinations.len());
        for d in &self.policy.destinations {
            let next = self.slots.len();
            let slot = *self.slots.entry(d.name.clone()).or_insert(next as u16);
            if usize::from(slot) >= MAX_DEST_SLOTS {
                return Err(format!(
                    "more than {MAX_DEST_SLOTS} destinations over the appliance's life"
                ));
            }
            let seq = Arc::clone(self.seqs.entry(d.name.clone()).or_default());
            let hop = if self.has_uplink {
                self.neighbors.next_hop(d.remote)
            } else {
                None
            };
            let template = match hop {
                None => None,
                Some(hop) => {
                    self.neighbors.want(hop);
                    self.neighbors.lookup(hop).and_then(|mac| {
                        let cfg = EncapConfig {
                            tunnel: d.tunnel,
                            outer: OuterConfig {
                                src_mac: Address(self.uplink_mac),
                                dst_mac: Address(mac),
                                vlan: d.vlan,
                                src_ip: self.uplink_ip,
                                dst_ip: d.remote,
                                dscp: d.dscp,
                                ttl: d.ttl,
                            },
                            mtu: self.cfg.uplink.as_ref().map_or(1500, |u| u.mtu),
                            oversize: d.oversize,
                        };
                        match EncapTemplate::new(&cfg) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                log(format!("destination {:?}: {e}", d.name));
                                None
                            }
                        }
                    })
                }
            };
            dests.push(DestTable {
                slot,
                template,
                seq,
            });
        }
        if let Ok(mut n) = self.dest_names.lock() {
            *n = self
                .policy
                .destinations
                .iter()
                .zip(&dests)
                .map(|(d, t)| (d.name.clone(), t.slot))
                .collect();
        }
        self.generation += 1;
        self.tables.store(Arc::new(Tables {
            generation: self.generation,
            policy: Arc::clone(&self.policy),
            dests,
        }));
        Ok(())
    }

    /// Waits until every worker and the distributor poll (a worker first
    /// builds its dedup table, which takes a while for a big one).
    fn wait_started(&self) -> Result<(), String> {
        loop {
            let parts = self.stat_parts();
            if parts.iter().all(|p| p.stats.counters.started.get() > 0) {
                return Ok(());
            }
            if self.worker_died() {
                return Err("a worker failed while starting (see its message above)".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `/sluice/stats` and `/sluice/destinations` for dpdk-telemetry.py.
    fn register_telemetry(&self) {
        let stats: Vec<Arc<WorkerStats>> = self
            .workers
            .iter()
            .map(|w| Arc::clone(&w.stats))
            .chain(self.distributor.iter().map(|d| Arc::clone(&d.stats)))
            .collect();
        let for_stats = stats.clone();
        let totals = Box::new(move || {
            let t = Totals::of(for_stats.iter().map(|s| &**s));
            let mut v = vec![
                ("rx".to_owned(), t.rx),
                ("rx_bytes".to_owned(), t.rx_bytes),
                ("parse_errors".to_owned(), t.parse_errors),
            ];
            v.extend(t.terminals.iter().map(|(k, n)| (k.name().to_owned(), *n)));
            v
        });
        let names = Arc::clone(&self.dest_names);
        let dests = Box::new(move || {
            let names = names.lock().map(|n| n.clone()).unwrap_or_default();
            let mut v = Vec::new();
            for (name, slot) in names {
                let s = usize::from(slot);
                let sum = |f: &dyn Fn(&WorkerStats) -> u64| stats.iter().map(|w| f(w)).sum::<u64>();
                let key = telemetry_key(&name);
                v.push((
                    format!("{key}/tx_packets"),
                    sum(&|w| w.dests[s].tx_packets.get()),
                ));
                v.push((
                    format!("{key}/tx_bytes"),
                    sum(&|w| w.dests[s].tx_bytes.get()),
                ));
            }
            v
        });
        let ports: Vec<(u16, String)> = self
            .ports
            .iter()
            .map(|(pc, p)| (p.id(), telemetry_key(&pc.name)))
            .collect();
        let links = Box::new(move || {
            let mut v = Vec::new();
            for (id, key) in &ports {
                let e = events::of(*id);
                v.push((format!("{key}/link_up"), u64::from(e.link_up)));
                v.push((format!("{key}/link_up_events"), e.link_ups));
                v.push((format!("{key}/link_down_events"), e.link_downs));
                v.push((format!("{key}/queue_state_events"), e.queue_changes));
            }
            v
        });
        let tapped: Vec<(u16, String)> = self
            .tapped_ports()
            .map(|tp| (tp.port, telemetry_key(&tp.cfg.name)))
            .collect();
        let pdump_counts = Box::new(move || {
            let mut v = Vec::new();
            for (id, key) in &tapped {
                let st = dataplane::dpdk::pdump::stats(*id).unwrap_or_default();
                v.push((format!("{key}/copies"), st.accepted));
                v.push((format!("{key}/ring_full"), st.ring_full));
                v.push((format!("{key}/no_mbuf"), st.no_mbuf));
            }
            v
        });
        for (cmd, help, src) in [
            (
                "/sluice/pdump",
                "Sluice pdump taps: copies the primary queued for Sluice, and those it dropped (ring full, no mbuf).",
                pdump_counts as telemetry::Source,
            ),
            (
                "/sluice/ports",
                "Sluice per-port link state and link/queue event counts (packet counts: /ethdev/stats).",
                links,
            ),
            (
                "/sluice/stats",
                "Sluice packet counters: rx and every terminal counter.",
                totals,
            ),
            (
                "/sluice/destinations",
                "Sluice per-destination tx_packets and tx_bytes.",
                dests,
            ),
        ] {
            if let Err(e) = telemetry::register(cmd, help, src) {
                log(format!("telemetry: {e}"));
            }
        }
    }

    /// Destinations whose next hop has no MAC yet.
    fn unresolved(&self) -> Vec<String> {
        if !self.has_uplink {
            return Vec::new();
        }
        self.policy
            .destinations
            .iter()
            .filter(|d| {
                self.neighbors
                    .next_hop(d.remote)
                    .is_none_or(|h| self.neighbors.lookup(h).is_none())
            })
            .map(|d| d.name.clone())
            .collect()
    }

    /// Start-up: wait (bounded) until every destination's next hop resolves.
    fn selfcheck(&mut self) {
        let deadline = Instant::now() + self.opts.resolve_timeout;
        while !self.unresolved().is_empty() && Instant::now() < deadline {
            self.service();
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.unresolved();
        if !left.is_empty() {
            log(format!(
                "next hop not resolved for {}: their copies count as dropped_no_nexthop until it is",
                left.join(", ")
            ));
        }
    }

    /// What the guard looks at, now.
    fn guard_sample(&self, at_ms: u64) -> GuardSample {
        let missed = self
            .ports
            .iter()
            .filter(|(pc, _)| pc.role == Role::Input)
            .filter_map(|(_, p)| p.stats().ok())
            .map(|s| s.imissed)
            .sum();
        let ring_fill_pct = self
            .dist_rings
            .iter()
            .map(|r| {
                let cap = r.len() + r.free();
                (r.len() * 100 / cap.max(1)) as u32
            })
            .max()
            .unwrap_or(0);
        GuardSample {
            at_ms,
            missed,
            free_mbufs: u64::from(self.pool.available()),
            total_mbufs: u64::from(self.cfg.mempool.mbufs),
            ring_fill_pct,
            rss_bytes: crate::guard::rss_bytes(),
        }
    }

    /// The guard's look: enter or leave `protect`.
    fn run_guard(&mut self, now: u64) {
        if now.saturating_sub(self.last_guard_ms) < self.guard.cfg.interval_ms {
            return;
        }
        self.last_guard_ms = now;
        match self.guard.observe(self.guard_sample(now)) {
            Some(Transition::Enter(why)) => {
                self.protect
                    .store(self.guard.cfg.shed_word(), Ordering::Release);
                if self.state == State::Running {
                    self.state = State::Protect;
                }
                log(format!("entering protect: {why}"));
                self.protect_reason = why;
            }
            Some(Transition::Leave) => {
                self.protect.store(0, Ordering::Release);
                if self.state == State::Protect {
                    self.state = State::Running;
                }
                log("leaving protect: pressure stayed low");
            }
            None => {}
        }
    }

    /// The controller session's events: policies to apply (ack or nack),
    /// operator commands; and our heartbeat.
    fn serve_agent(&mut self) {
        let Some(agent) = &self.agent else { return };
        let events: Vec<AgentEvent> = agent.events.try_iter().collect();
        for ev in events {
            let reply = match ev {
                AgentEvent::Connected {
                    controller,
                    assigned,
                } => {
                    log(format!(
                        "controller {controller} connected (policy {assigned:?})"
                    ));
                    self.controller_session.up(controller);
                    None
                }
                AgentEvent::Disconnected { reason, retry_in } => {
                    log(format!("controller session down: {reason}; retry in {retry_in:?}; forwarding goes on"));
                    self.controller_session.down(reason, retry_in);
                    None
                }
                AgentEvent::Policy {
                    version,
                    name,
                    text,
                } => {
                    let src = PolicySource::Text {
                        origin: format!("controller policy {name:?} version {version}"),
                        text,
                    };
                    match self.try_apply(src) {
                        Ok(m) => {
                            log(format!("{m} (controller version {version})"));
                            self.controller_version = Some(version.clone());
                            Some(AgentReply::Ack { version })
                        }
                        Err((m, errors)) => {
                            log(m);
                            Some(AgentReply::Nack { version, errors })
                        }
                    }
                }
                AgentEvent::Command(c) => {
                    let (ok, message) = match c.kind {
                        CommandKind::Start => {
                            self.set_forwarding(true);
                            (true, "forwarding started".to_owned())
                        }
                        CommandKind::Stop => {
                            self.set_forwarding(false);
                            (true, "forwarding stopped".to_owned())
                        }
                        CommandKind::Reload => match self.apply_policy(self.opts.policy.clone()) {
                            Ok(m) => (true, m),
                            Err(m) => (false, m),
                        },
                    };
                    log(format!("controller command {:?}: {message}", c.kind));
                    Some(AgentReply::CommandDone {
                        id: c.id,
                        ok,
                        message,
                    })
                }
            };
            if let (Some(r), Some(agent)) = (reply, &self.agent) {
                // The agent thread lives as long as its handle.
                let _ = agent.replies.send(r);
            }
        }
        if self.last_heartbeat.elapsed() >= self.heartbeat_every {
            self.last_heartbeat = Instant::now();
            let hb = AgentReply::Heartbeat(self.heartbeat());
            if let Some(agent) = &self.agent {
                let _ = agent.replies.send(hb);
            }
        }
    }

    fn heartbeat(&self) -> HeartbeatData {
        let t = self.totals();
        let parts = self.stat_parts();
        let destinations = self
            .destination_slots()
            .into_iter()
            .map(|(name, slot)| {
                let sum =
                    |f: &dyn Fn(&WorkerStats) -> u64| parts.iter().map(|p| f(p.stats)).sum::<u64>();
                let drops = DestDrop::ALL
                    .iter()
                    .map(|d| (d.name().to_owned(), sum(&|w| w.dests[slot].drop(*d).get())))
                    .collect();
                (
                    name,
                    DestinationCounters {
                        tx_packets: sum(&|w| w.dests[slot].tx_packets.get()),
                        tx_bytes: sum(&|w| w.dests[slot].tx_bytes.get()),
                        drops,
                    },
                )
            })
            .collect();
        HeartbeatData {
            state: self.state.name().to_owned(),
            policy_version: self.controller_version.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            counters: Counters {
                rx: t.rx,
                rx_bytes: t.rx_bytes,
                forwarded: t.terminal(dataplane::runtime::counters::Terminal::Forwarded),
                parse_errors: t.parse_errors,
                terminals: t
                    .terminals
                    .iter()
                    .map(|(k, v)| (k.name().to_owned(), *v))
                    .collect(),
                destinations,
            },
        }
    }

    /// One round of the slow path: ARP/ND in and out, republish on change,
    /// the guard and the controller session.
    fn service(&mut self) {
        let now = self.now_ms();
        self.run_guard(now);
        self.serve_agent();
        self.watch_links();
        let mut changed = false;
        while let Some(m) = self.exceptions.dequeue() {
            if let Some(a) = answer::find(&mut self.answerers, &m) {
                a.handle(m.data(), now, &self.pool);
                continue;
            }
            let (reply, c) = self.neighbors.handle(m.data(), now);
            changed |= c;
            if let Some(f) = reply {
                self.send_control(&f);
            }
        }
        let (requests, lost) = self.neighbors.poll(now);
        for f in requests {
            self.send_control(&f);
        }
        if changed || lost {
            if let Err(e) = self.publish() {
                log(e);
            }
        }
    }

    fn send_control(&self, frame: &[u8]) {
        match Mbuf::from_bytes(&self.pool, frame) {
            Ok(m) => {
                if self.control_tx.enqueue(m).is_err() {
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
        self.try_apply(src).map_err(|(text, _)| text)
    }

    /// As [`Appliance::apply_policy`]; a refusal also lists every problem
    /// on its own, with its path (for a controller's nack).
    fn try_apply(&mut self, src: PolicySource) -> Result<String, (String, Vec<String>)> {
        match load_policy(&src, &self.ctx) {
            Ok((model, p)) => {
                if p.destinations.len() > MAX_DEST_SLOTS {
                    let e = format!("policy has more than {MAX_DEST_SLOTS} destinations");
                    return Err((e.clone(), vec![e]));
                }
                let old = (
                    Arc::clone(&self.policy),
                    std::mem::replace(&mut self.policy_model, model),
                );
                self.policy = Arc::new(p);
                if let Err(e) = self.publish() {
                    (self.policy, self.policy_model) = old;
                    return Err((e.clone(), vec![e]));
                }
                self.opts.policy = src;
                Ok(format!(
                    "policy {:?} loaded: {} rule(s), {} destination(s)",
                    self.policy.version,
                    self.policy.rule_names.len(),
                    self.policy.destinations.len()
                ))
            }
            Err(e) => Err((
                format!("{e}; keeping policy {:?}", self.policy.version),
                crate::agent::policy_errors(&e),
            )),
        }
    }

    /// SIGHUP: reload the policy from its source.
    pub fn reload_policy(&mut self) {
        match self.apply_policy(self.opts.policy.clone()) {
            Ok(m) | Err(m) => log(m),
        }
    }

    /// Counters summed over workers and distributor.
    pub fn totals(&self) -> Totals {
        Totals::of(self.stat_parts().iter().map(|n| n.stats))
    }

    fn stat_parts(&self) -> Vec<Named<'_>> {
        let mut v: Vec<Named<'_>> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| Named {
                name: format!("worker {i} (lcore {})", w.lcore),
                stats: &w.stats,
            })
            .collect();
        if let Some(d) = &self.distributor {
            v.push(Named {
                name: format!("distributor (lcore {})", d.lcore),
                stats: &d.stats,
            });
        }
        v
    }

    /// `show fwd stats all`. Destinations of earlier policies keep their
    /// counters (their slot stays theirs) and are listed after the current ones.
    pub fn fwd_stats(&self) -> String {
        let mut dests: Vec<(String, u16)> =
            self.slots.iter().map(|(n, s)| (n.clone(), *s)).collect();
        dests.sort_by_key(|(_, s)| *s);
        for (name, _) in &mut dests {
            if !self.policy.destinations.iter().any(|d| &d.name == name) {
                name.push_str(" (removed)");
            }
        }
        fwd_stats(&self.stat_parts(), &dests)
    }

    /// Port counters, testpmd's `show port stats all`.
    pub fn port_stats(&self) -> String {
        let mut out = String::new();
        for (pc, p) in &self.ports {
            if let Ok(s) = p.stats() {
                let e = events::of(p.id());
                out.push_str(&format!(
                    "  port {} {:?} ({:?}): RX-packets {} RX-bytes {} RX-missed {} RX-errors {} RX-nombuf {} TX-packets {} TX-bytes {} TX-errors {} link-ups {} link-downs {}\n",
                    p.id(), pc.name, pc.role, s.ipackets, s.ibytes, s.imissed, s.ierrors, s.rx_nombuf, s.opackets, s.obytes, s.oerrors, e.link_ups, e.link_downs
                ));
            }
        }
        for tp in self.tapped_ports() {
            let st = tp.stats();
            out.push_str(&format!(
                "  tapped port {} {:?} (pdump of {:?}: {}): copies {} ring-full {} no-mbuf {}\n",
                tp.port,
                tp.cfg.name,
                tp.device,
                tp.what(),
                st.accepted,
                st.ring_full,
                st.no_mbuf
            ));
        }
        out
    }

    fn worker_died(&self) -> bool {
        self.workers
            .iter()
            .any(|w| w.handle.as_ref().is_some_and(LcoreHandle::is_finished))
            || self
                .distributor
                .as_ref()
                .is_some_and(|d| d.handle.as_ref().is_some_and(LcoreHandle::is_finished))
    }

    /// EAL's `--file-prefix` (the runtime directory's name).
    pub fn file_prefix(&self) -> &str {
        self.eal.file_prefix()
    }

    /// Starts or stops polling the inputs.
    pub fn set_forwarding(&mut self, on: bool) {
        let (run, state) = if on {
            let s = if self.guard.protecting() {
                State::Protect
            } else {
                State::Running
            };
            (run_state::RUNNING, s)
        } else {
            (run_state::PAUSED, State::Stopped)
        };
        self.run.store(run, Ordering::Release);
        self.state = state;
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
            if self.worker_died() {
                self.state = State::Exception;
                log("a worker stopped unexpectedly");
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
            if let Some(idle) = self.opts.exit_when_idle {
                let t = self.totals();
                if t.rx != last_rx || t.in_flight() != 0 {
                    last_rx = t.rx;
                    quiet_since = Instant::now();
                } else if t.rx > 0 && quiet_since.elapsed() >= idle {
                    log("inputs idle: stopping");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the workers, prints the final counters, closes the ports.
    /// Returns an error if a worker failed.
    pub fn shutdown(mut self) -> Result<String, String> {
        // Taps off first, and their copies through the pipeline: each one
        // the primary made is counted.
        self.stop_taps();
        self.run.store(run_state::EXIT, Ordering::Release);
        let mut failures: Vec<String> = self.failure.iter().cloned().collect();
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                match h.wait() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(p) => failures.push(p.to_string()),
                }
            }
        }
        if let Some(d) = &mut self.distributor {
            if let Some(h) = d.handle.take() {
                if let Err(p) = h.wait() {
                    failures.push(p.to_string());
                }
            }
        }
        let report = format!("{}{}", self.fwd_stats(), self.port_stats());
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(format!("{report}\n{}", failures.join("\n")))
        }
    }
}

/// A name as a telemetry key: letters, digits and '_' only.
fn telemetry_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Drop for Appliance {
    /// Whatever ends the appliance (`shutdown`, or a panic unwinding the
    /// main lcore), the workers are told to leave before their lcores are
    /// joined as the fields drop.
    fn drop(&mut self) {
        self.run.store(run_state::EXIT, Ordering::Release);
    }
}

fn load_policy(src: &PolicySource, ctx: &Context) -> Result<(Policy, CompiledPolicy), PolicyError> {
    match src {
        PolicySource::File(p) => policy::load(p, ctx),
        PolicySource::BuiltIn(text) => policy::load_text(text, "built-in policy", ctx),
        PolicySource::Text { origin, text } => policy::load_text(text, origin, ctx),
    }
}
