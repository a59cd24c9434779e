//! Port and lcore planning: which lcores work, whether a distributor is
//! needed, and every port opened, configured and started to match. A
//! builder in three steps (lcores, ports opened, ports configured), each
//! failing with a [`PlanError`] that names the port or key at fault.

use dataplane::dpdk::{
    events, main_lcore, pause_rx_queue, rss_capable, rx_interrupts_supported, worker_lcores,
    DpdkError, Mempool, Port, PortConfig as DpdkPortConfig, PortInfo, RssMode,
};

use super::{pdump, vhost};
use crate::config::{Config, IdleMode, PortConfig, Role};
use crate::log::log;

/// Why the ports or lcores could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("workers.lcores: lcore {lcore} is not an EAL worker lcore (EAL has {eal:?}; give -l)")]
    NotAWorkerLcore { lcore: u32, eal: Vec<u32> },
    /// A capture file an input cannot read or carry (`file`, or a
    /// `net_pcap` device's `rx_pcap`).
    #[error("{0}")]
    Capture(String),
    /// A device that cannot be opened as configured (vhost-user socket,
    /// a pdump primary's device of the same name).
    #[error("{0}")]
    Device(String),
    #[error("port {port:?}: {source}")]
    Open { port: String, source: DpdkError },
    #[error("{port}: {source}")]
    Info { port: String, source: DpdkError },
    #[error("port {port:?} ({device}): has {has} TX queue(s) but needs {need} for {workers} worker(s) (one each): run fewer workers (EAL -l) or give the device more queues")]
    TooFewTxQueues {
        port: String,
        device: String,
        has: u16,
        need: u16,
        workers: u16,
    },
    #[error("port {port:?} ({device}): {source}")]
    Configure {
        port: String,
        device: String,
        source: DpdkError,
    },
    #[error("port {port:?}: symmetric RSS could not be set up")]
    NoSymmetricRss { port: String },
    #[error("port {port:?}: {source}")]
    Start { port: String, source: DpdkError },
    #[error("workers.idle = \"interrupt\": port {port:?} ({device}): its driver has no RX interrupts (net_tap, net_vhost and NICs have them; net_memif, net_ring, net_pcap and net_null do not, nor capture inputs): use idle = \"adaptive\"")]
    NoRxInterrupts { port: String, device: String },
    #[error("workers.idle = \"interrupt\": {0} cannot interrupt: use idle = \"adaptive\"")]
    RingCannotInterrupt(&'static str),
    #[error("one-lcore mode (EAL gave only the main lcore): {0}")]
    OneLcore(&'static str),
}

/// Ports opened and configured, and who polls what.
pub struct Plan {
    pub ports: Vec<(PortConfig, Port)>,
    pub worker_lcores: Vec<u32>,
    pub distributor_lcore: Option<u32>,
    /// RX queues of each uplink port, by name: workers past that many do
    /// not poll it.
    pub uplink_rx_queues: Vec<(String, u16)>,
    /// One-lcore mode: the single worker runs on the main lcore.
    pub inline: bool,
}

/// Plans the ports and lcores of `cfg`:
/// `Planner::new(cfg)?.open()?.configure(&pool)`.
pub struct Planner<'a> {
    cfg: &'a Config,
    lcores: Vec<u32>,
    opened: Vec<(PortConfig, Port)>,
    inline: bool,
}

impl<'a> Planner<'a> {
    /// The worker lcores: `workers.lcores`, or every EAL worker lcore;
    /// when EAL has only the main lcore (`-l 0`), the main lcore runs the
    /// single worker itself (one-lcore mode).
    pub fn new(cfg: &'a Config) -> Result<Planner<'a>, PlanError> {
        let eal = worker_lcores();
        if eal.is_empty() && cfg.workers.lcores.is_none() {
            if cfg.pdump.is_some() {
                return Err(PlanError::OneLcore(
                    "pdump taps need a worker lcore besides the main one (give -l 0-1)",
                ));
            }
            return Ok(Planner {
                cfg,
                lcores: vec![main_lcore()],
                opened: Vec::new(),
                inline: true,
            });
        }
        let lcores = match &cfg.workers.lcores {
            Some(l) => {
                if let Some(&lcore) = l.iter().find(|c| !eal.contains(c)) {
                    return Err(PlanError::NotAWorkerLcore { lcore, eal });
                }
                l.clone()
            }
            None => eal,
        };
        Ok(Planner {
            cfg,
            lcores,
            opened: Vec::new(),
            inline: false,
        })
    }

    /// Opens every port of the config (pdump inputs are the primary's
    /// ports: tapped, never opened here).
    pub fn open(mut self) -> Result<Planner<'a>, PlanError> {
        let secondary = self.cfg.pdump.is_some();
        for pc in self.cfg.ports.iter().filter(|pc| pc.pdump.is_none()) {
            check_capture(pc)?;
            vhost::prepare_socket(pc).map_err(PlanError::Device)?;
            if secondary {
                pdump::free_device(pc).map_err(PlanError::Device)?;
            }
            let open = |source| PlanError::Open {
                port: pc.name.clone(),
                source,
            };
            let mut port = Port::open(pc.device.devargs()).map_err(open)?;
            if secondary {
                // Hot-plugged through the primary, which now sees it too.
                port.claim(&pdump::owner_name()).map_err(open)?;
            }
            // Before configure: a vhost-user peer may connect as soon as the
            // socket exists.
            events::watch(port.id()).map_err(open)?;
            self.opened.push((pc.clone(), port));
        }
        Ok(self)
    }

    /// Takes a distributor lcore if needed, then configures and starts
    /// every port for the workers that remain.
    pub fn configure(mut self, pool: &Mempool) -> Result<Plan, PlanError> {
        let distributor_lcore = self.place_distributor()?;
        let interrupts = self.cfg.workers.idle == IdleMode::Interrupt;
        if interrupts && (distributor_lcore.is_some() || self.cfg.pdump.is_some()) {
            return Err(PlanError::RingCannotInterrupt(
                if self.cfg.pdump.is_some() {
                    "a pdump tap's ring"
                } else {
                    "the distributor's ring to each worker"
                },
            ));
        }
        let workers = self.lcores.len() as u16;
        let mut uplink_rx_queues = Vec::new();
        for (pc, port) in &mut self.opened {
            let info = port.info().map_err(info_err(pc))?;
            let (pcfg, per_worker) = queues(self.cfg, pc, &info, workers)?;
            if pc.role == Role::Uplink {
                uplink_rx_queues.push((pc.name.clone(), pcfg.rx_queues));
            }
            let mode = port
                .configure(&pcfg, pool)
                .map_err(|source| PlanError::Configure {
                    port: pc.name.clone(),
                    device: pc.device.to_string(),
                    source,
                })?;
            if per_worker && mode != RssMode::Symmetric {
                return Err(PlanError::NoSymmetricRss {
                    port: pc.name.clone(),
                });
            }
            let input = pc.role == Role::Input;
            if input && self.cfg.workers.idle == IdleMode::Adaptive {
                pause_queues(&self.lcores, pc, port, per_worker, pcfg.rx_queues);
            }
            port.start().map_err(|source| PlanError::Start {
                port: pc.name.clone(),
                source,
            })?;
            if input && interrupts {
                if let Some(q) =
                    (0..pcfg.rx_queues).find(|&q| !rx_interrupts_supported(port.id(), q))
                {
                    log(format!("port {:?}: RX queue {q} cannot interrupt", pc.name));
                    return Err(PlanError::NoRxInterrupts {
                        port: pc.name.clone(),
                        device: pc.device.to_string(),
                    });
                }
            }
        }
        Ok(Plan {
            ports: self.opened,
            worker_lcores: self.lcores,
            distributor_lcore,
            uplink_rx_queues,
            inline: self.inline,
        })
    }

    /// Inputs that cannot hash need the distributor when there are several
    /// workers; so do pdump taps (one ring per tapped direction). It takes
    /// the last lcore; with fewer than three, one worker does it all.
    fn place_distributor(&mut self) -> Result<Option<u32>, PlanError> {
        let several = self.lcores.len() > 1;
        let mut needed = several && self.cfg.pdump_inputs().next().is_some();
        if several {
            for (pc, port) in self.opened.iter().filter(|(pc, _)| pc.role == Role::Input) {
                let info = port.info().map_err(info_err(pc))?;
                if !rss_capable(&info) || usize::from(info.max_rx_queues) < self.lcores.len() {
                    needed = true;
                }
            }
        }
        if !needed {
            return Ok(None);
        }
        if self.lcores.len() < 3 {
            // One distributor and a single worker would gain nothing.
            self.lcores.truncate(1);
            return Ok(None);
        }
        Ok(self.lcores.pop())
    }
}

fn info_err(pc: &PortConfig) -> impl Fn(DpdkError) -> PlanError + '_ {
    move |source| PlanError::Info {
        port: pc.name.clone(),
        source,
    }
}

/// The queues of one port for `workers` workers, and whether the device
/// spreads this input over one queue per worker.
fn queues(
    cfg: &Config,
    pc: &PortConfig,
    info: &PortInfo,
    workers: u16,
) -> Result<(DpdkPortConfig, bool), PlanError> {
    let mut pcfg = DpdkPortConfig {
        rx_desc: cfg.queues.rx_desc,
        tx_desc: cfg.queues.tx_desc,
        mtu: pc.mtu,
        rx_interrupts: pc.role == Role::Input && cfg.workers.idle == IdleMode::Interrupt,
        ..DpdkPortConfig::default()
    };
    let mut per_worker = false;
    match pc.role {
        Role::Input => {
            per_worker = rss_capable(info) && info.max_rx_queues >= workers && workers > 1;
            pcfg.rx_queues = if per_worker {
                workers
            } else {
                vhost::rx_queues(info)
            };
            // net_vhost delivers nothing unless the port also has TX
            // queues (its queuing switch stays off without them), so an
            // input gets one whenever the device has any. Only the main
            // lcore sends there: ARP/ND replies for a decap address.
            pcfg.tx_queues = u16::from(info.max_tx_queues > 0);
        }
        Role::Uplink | Role::Tool => {
            // A queue per worker, which its tool destinations and decap
            // inputs share (see `lcores`).
            let need = workers;
            if info.max_tx_queues < need {
                return Err(PlanError::TooFewTxQueues {
                    port: pc.name.clone(),
                    device: pc.device.to_string(),
                    has: info.max_tx_queues,
                    need,
                    workers,
                });
            }
            pcfg.tx_queues = need;
            // A tool port only sends; an uplink receives ARP/ND.
            pcfg.rx_queues = match pc.role {
                Role::Uplink => workers.min(info.max_rx_queues),
                _ => u16::from(info.max_rx_queues > 0 && pc.device.driver() == Some("net_tap")),
            };
        }
    }
    Ok((pcfg, per_worker))
}

/// A capture input's file must be one Sluice can read and carry (frames
/// of another link type in a several-interface pcapng are skipped, said
/// here); a `net_pcap` input's files must be Ethernet as they are.
fn check_capture(pc: &PortConfig) -> Result<(), PlanError> {
    let Some(r) = &pc.replay else {
        if pc.device.driver() != Some("net_pcap") {
            return Ok(());
        }
        return crate::capture::check_pcap_files(&pc.name, pc.device.args("rx_pcap"))
            .map_err(PlanError::Capture);
    };
    let skipped = crate::capture::check_file(&r.file).map_err(|e| {
        PlanError::Capture(format!(
            "port {:?}: file {}: {e}",
            pc.name,
            r.file.display()
        ))
    })?;
    for t in skipped {
        crate::log::log(format!(
            "port {:?}: file {}: frames of link type {} are skipped (not carried)",
            pc.name,
            r.file.display(),
            crate::capture::link::name(t)
        ));
    }
    Ok(())
}

/// Adaptive idle: DPDK's PMD power management (pause) on an input's RX
/// queues that a worker of `lcores` polls, before the port starts (DPDK
/// adds it to stopped queues only). Where DPDK refuses, the worker's own
/// backoff does all the waiting; the log says which.
fn pause_queues(lcores: &[u32], pc: &PortConfig, port: &Port, per_worker: bool, queues: u16) {
    let several = lcores.len() > 1;
    for q in 0..queues {
        // A worker polls queue q (RSS), or the single worker polls them
        // all; otherwise the distributor does, which stays polling.
        let lcore = match (per_worker, several) {
            (true, _) => lcores[usize::from(q)],
            (false, false) => lcores[0],
            (false, true) => return,
        };
        match pause_rx_queue(port.id(), q, lcore) {
            Ok(how) => log(format!(
                "port {:?} RX queue {q}: DPDK power management (pause, {how}) on lcore {lcore}",
                pc.name
            )),
            Err(e) => log(format!(
                "port {:?} RX queue {q}: no DPDK power management ({e}): the worker's sleeps alone",
                pc.name
            )),
        }
    }
}
