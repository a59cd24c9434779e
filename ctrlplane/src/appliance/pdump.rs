//! pdump tap mode: Sluice as a DPDK secondary process of a primary that
//! initialised packet capture (`rte_pdump_init`; dpdk-testpmd does), with
//! copies of the primary's chosen ports and queues fed through the normal
//! pipeline. The primary's switching is not touched; each tapped packet
//! costs its lcore a copy into Sluice's tap pool.
//!
//! What a secondary can and cannot do shapes this module:
//! - it attaches to the primary's memory, so EAL must run with the same
//!   `--file-prefix`, `--proc-type=secondary` and not `--in-memory`, and
//!   Sluice must be built on the same DPDK as the primary;
//! - names of pools and rings are shared with the primary and every other
//!   secondary, so ours carry our process id;
//! - its own ports (the uplink) are hot-plugged through the primary, which
//!   probes the device too; they are detached from both on exit;
//! - when the primary exits, its taps go with it: Sluice stops.

use std::path::Path;
use std::sync::Arc;

use dataplane::dpdk::pdump::{self, Capture, Tap, TapStats, TAP_POOL_CACHE};
use dataplane::dpdk::{detach, port_id, port_names, port_owner, Mbuf, Mempool, Ring};
use dataplane::stage::Direction;

use std::fmt::Write;
use std::time::{Duration, Instant};

use dataplane::dpdk::stats_of;
use dataplane::runtime::snapshot::TapCounts;

use crate::config::{CaptureConfig, Config, PdumpSection, PortConfig, PortMode};
use crate::log::log;

/// A name unique among every process of the primary's shared memory.
pub fn shared_name(base: &str) -> String {
    format!("{base}_{}", std::process::id())
}

/// Value of `--name value` or `--name=value` among EAL arguments.
fn eal_option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            return it.next().map(String::as_str);
        }
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

/// The EAL arguments of a secondary attaching to `[pdump]`'s primary:
/// `--proc-type=secondary` and `--file-prefix` are added when missing;
/// arguments that contradict them are refused, naming the key.
pub fn eal_args(cfg: &PdumpSection, args: &[String]) -> Result<Vec<String>, String> {
    let prefix = cfg.file_prefix.trim();
    for flag in ["--in-memory", "--no-shconf"] {
        if args.iter().any(|a| a == flag) {
            return Err(format!(
                "EAL {flag}: a process without shared files cannot attach to the primary of pdump.file_prefix {prefix:?}; drop it"
            ));
        }
    }
    let mut out: Vec<String> = args.to_vec();
    let mut added = Vec::new();
    match eal_option(args, "--proc-type") {
        None => added.push("--proc-type=secondary".to_owned()),
        Some("secondary") => {}
        Some(other) => {
            return Err(format!(
            "EAL --proc-type {other}: [pdump] attaches Sluice to a primary as a secondary process"
        ))
        }
    }
    match eal_option(args, "--file-prefix") {
        None => added.push(format!("--file-prefix={prefix}")),
        Some(p) if p == prefix => {}
        Some(p) => {
            return Err(format!(
                "EAL --file-prefix {p} differs from pdump.file_prefix {prefix:?}: the secondary needs the primary's"
            ))
        }
    }
    // After the program name, before anything else.
    let at = usize::from(!out.is_empty());
    out.splice(at..at, added);
    Ok(out)
}

/// How Sluice names itself as the ethdev owner of its hot-plugged ports.
pub fn owner_name() -> String {
    format!("sluice {}", std::process::id())
}

/// Before a secondary hot-plugs `pc`'s device through the primary: a
/// device of that name left there by a Sluice that died is removed (its
/// owner names the process); one a live Sluice or the primary itself
/// runs is refused.
pub fn free_device(pc: &PortConfig) -> Result<(), String> {
    let name = pc.device.name();
    let Some(id) = port_id(name) else {
        return Ok(());
    };
    let pid = port_owner(id).and_then(|o| {
        o.strip_prefix("sluice ")
            .and_then(|p| p.parse::<u32>().ok())
    });
    match pid {
        Some(pid) if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() => {
            detach(id).map_err(|e| format!("port {:?}: {e}", pc.name))?;
            log(format!(
                "port {:?}: removed {name}, left in the primary by Sluice process {pid}, which is gone",
                pc.name
            ));
            Ok(())
        }
        Some(pid) => Err(format!(
            "port {:?}: the primary's device {name} belongs to Sluice process {pid}, which still runs",
            pc.name
        )),
        None => Err(format!(
            "port {:?}: the primary already has a device named {name}: give this port's device another name",
            pc.name
        )),
    }
}

/// The directions an input captures.
fn captures(pc: &PortConfig) -> &'static [Capture] {
    let Some(tap) = &pc.pdump else {
        return &[];
    };
    match tap.capture {
        CaptureConfig::Rx => &[Capture::Rx],
        CaptureConfig::Tx => &[Capture::Tx],
        CaptureConfig::Both => &[Capture::Rx, Capture::Tx],
    }
}

/// The pipeline direction of a tapped direction.
pub fn direction(c: Capture) -> Direction {
    match c {
        Capture::Rx => Direction::Ingress,
        Capture::Tx => Direction::Egress,
    }
}

/// `ingress` or `egress`.
pub fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

/// One tapped port of the primary.
pub struct TappedPort {
    pub cfg: PortConfig,
    /// The primary's device name and port id.
    pub device: String,
    pub port: u16,
    /// One ring per captured direction; the primary's copies land there.
    pub rings: Vec<(Capture, Arc<Ring<Mbuf>>)>,
    taps: Vec<Tap>,
}

impl TappedPort {
    pub fn decap(&self) -> bool {
        self.cfg.mode == PortMode::Decap
    }

    /// The primary's tap counters for this port.
    pub fn stats(&self) -> TapStats {
        pdump::stats(self.port).unwrap_or_default()
    }

    /// `rx`, `tx` or `rx+tx`, and the queues.
    pub fn what(&self) -> String {
        let dirs: Vec<&str> = self.rings.iter().map(|(c, _)| c.name()).collect();
        let queues = match self.cfg.pdump.as_ref().and_then(|t| t.queues.as_ref()) {
            None => "every queue".to_owned(),
            Some(q) => format!(
                "queue(s) {}",
                q.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        format!("{}, {queues}", dirs.join("+"))
    }
}

/// Every tap of the appliance, and the pool the primary copies into.
pub struct Taps {
    pub ports: Vec<TappedPort>,
    pool: Arc<Mempool>,
    /// The primary's file prefix, to name it when it goes.
    file_prefix: String,
    last_primary_check_ms: u64,
}

impl Taps {
    /// Finds the primary's tapped ports and makes their pool and rings;
    /// the taps themselves come on with [`Taps::enable`].
    pub fn prepare(cfg: &Config) -> Result<Option<Taps>, String> {
        let Some(section) = &cfg.pdump else {
            return Ok(None);
        };
        let suffix = shared_name("");
        pdump::check_primary()
            .and_then(|()| pdump::check_mempool_ops(&|name: &str| name.ends_with(&suffix)))
            .map_err(|e| format!("pdump.file_prefix {:?}: {e}", section.file_prefix.trim()))?;
        let pool = Arc::new(
            Mempool::new(
                &shared_name("sluice_tap"),
                section.mbufs,
                TAP_POOL_CACHE,
                2176,
                -1,
            )
            .map_err(|e| {
                format!(
                    "pdump.mbufs = {}: {e} (the pool lives in the primary's memory: give it more, or ask for fewer)",
                    section.mbufs
                )
            })?,
        );
        let mut ports = Vec::new();
        for (i, pc) in cfg.pdump_inputs().enumerate() {
            let device = pc.device.devargs().to_owned();
            let port = port_id(&device).ok_or_else(|| {
                let known: Vec<String> = port_names()
                    .into_iter()
                    .map(|(id, n)| format!("{id} {n}"))
                    .collect();
                format!(
                    "port {:?}: the primary has no port {device:?} that this process sees (ports: {}); a PCI port needs EAL options without --no-pci",
                    pc.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )
            })?;
            let mut rings = Vec::new();
            for &c in captures(pc) {
                let ring = Ring::new(
                    &shared_name(&format!("sluice_t{i}{}", c.name())),
                    section.ring_size,
                )
                .map_err(|e| format!("port {:?}: pdump.ring_size: {e}", pc.name))?;
                rings.push((c, Arc::new(ring)));
            }
            ports.push(TappedPort {
                cfg: pc.clone(),
                device,
                port,
                rings,
                taps: Vec::new(),
            });
        }
        Ok(Some(Taps {
            ports,
            pool,
            file_prefix: section.file_prefix.trim().to_owned(),
            last_primary_check_ms: 0,
        }))
    }

    /// Asks the primary to start copying.
    pub fn enable(&mut self, replace: bool) -> Result<(), String> {
        for tp in &mut self.ports {
            let queues: Vec<Option<u16>> =
                match tp.cfg.pdump.as_ref().and_then(|t| t.queues.as_ref()) {
                    None => vec![None],
                    Some(q) => q.iter().map(|q| Some(*q)).collect(),
                };
            for (c, ring) in &tp.rings {
                for q in &queues {
                    if replace {
                        Tap::remove_existing(&tp.device, *q, *c);
                    }
                    let tap = Tap::enable(&tp.device, *q, *c, ring, &self.pool).map_err(|e| {
                        let hint = if e.to_string().contains("exists") {
                            ": another pdump client taps it (dpdk-pdump, or a Sluice that was killed; pdump.replace_taps = true takes it over)"
                        } else {
                            ""
                        };
                        format!("port {:?}: {e}{hint}", tp.cfg.name)
                    })?;
                    tp.taps.push(tap);
                }
            }
            log(format!(
                "port {} {:?}: tapping {} of the primary's {:?} ({})",
                tp.port,
                tp.cfg.name,
                tp.rings
                    .iter()
                    .map(|(c, _)| c.name())
                    .collect::<Vec<_>>()
                    .join("+"),
                tp.device,
                tp.what()
            ));
        }
        Ok(())
    }

    /// Asks the primary to stop copying (each failure is logged).
    pub fn disable(&mut self) {
        for tp in &mut self.ports {
            for t in &mut tp.taps {
                if let Err(e) = t.disable() {
                    log(format!("port {:?}: {e}", tp.cfg.name));
                }
            }
        }
    }

    /// Copies waiting on the rings.
    pub fn queued(&self) -> usize {
        self.ports
            .iter()
            .flat_map(|tp| tp.rings.iter())
            .map(|(_, r)| r.len())
            .sum()
    }
}

impl Drop for Taps {
    fn drop(&mut self) {
        // Taps off before their rings and pool go (fields drop after this).
        self.disable();
    }
}

impl Taps {
    /// Whether the primary went away (checked twice a second): its taps
    /// and its memory's other users are gone with it, so Sluice stops.
    /// Returns why.
    pub fn primary_lost(&mut self, now_ms: u64) -> Option<String> {
        if now_ms.saturating_sub(self.last_primary_check_ms) < 500 {
            return None;
        }
        self.last_primary_check_ms = now_ms;
        if pdump::primary_alive() {
            return None;
        }
        let why = format!(
            "the primary process of pdump.file_prefix {:?} is gone, and its taps with it: stopping",
            self.file_prefix
        );
        log(&why);
        Some(why)
    }

    /// Removes the taps and, while the workers run (`running`), lets them
    /// finish the copies already made: the primary may be inside a
    /// callback that saw a tap a moment after it was removed, so the rings
    /// (and the pipeline: `busy`) must stay empty for a while before they
    /// and the pool may go. Paused workers do not read the rings: what is
    /// left is dropped with them, never counted as received.
    pub fn stop(&mut self, running: bool, busy: impl Fn() -> bool) {
        self.disable();
        if !running {
            return;
        }
        let quiet = Duration::from_millis(50);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut empty_since: Option<Instant> = None;
        while Instant::now() < deadline {
            let busy = self.queued() > 0 || busy();
            match (busy, empty_since) {
                (true, _) => empty_since = None,
                (false, None) => empty_since = Some(Instant::now()),
                (false, Some(t)) if t.elapsed() >= quiet => return,
                (false, Some(_)) => {}
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        log("pdump: copies still arriving 5 s after the taps were removed");
    }

    /// `show port stats` and `show port info` blocks of the tapped ports
    /// (`id`: just that one).
    pub fn blocks(&self, id: Option<u16>) -> String {
        let mut out = String::new();
        for tp in self
            .ports
            .iter()
            .filter(|tp| id.is_none_or(|i| i == tp.port))
        {
            let st = tp.stats();
            let _ = write!(
                out,
                "\n  ############## pdump tap of port {} {:?}: {:?} in the primary ##############\n  \
                 Taps: {}; direction {}\n  \
                 Copies: {:<10} ring-full: {:<10} no-mbuf: {}\n  \
                 Waiting: {}\n",
                tp.port,
                tp.cfg.name,
                tp.device,
                tp.what(),
                tp.rings
                    .iter()
                    .map(|(c, _)| dir_name(direction(*c)))
                    .collect::<Vec<_>>()
                    .join(" and "),
                st.accepted,
                st.ring_full,
                st.no_mbuf,
                tp.rings.iter().map(|(_, r)| r.len()).sum::<usize>()
            );
            if let Ok(p) = stats_of(tp.port) {
                let _ = writeln!(
                    out,
                    "  Primary's port: RX-packets {} RX-bytes {} TX-packets {} TX-bytes {}",
                    p.ipackets, p.ibytes, p.opackets, p.obytes
                );
            }
        }
        out
    }

    /// The exit report's line for each tapped port.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for tp in &self.ports {
            let st = tp.stats();
            let _ = writeln!(
                out,
                "  tapped port {} {:?} (pdump of {:?}: {}): copies {} ring-full {} no-mbuf {}",
                tp.port,
                tp.cfg.name,
                tp.device,
                tp.what(),
                st.accepted,
                st.ring_full,
                st.no_mbuf
            );
        }
        out
    }

    /// Each tapped port's counters, for a snapshot.
    pub fn counts(&self) -> Vec<TapCounts> {
        self.ports
            .iter()
            .map(|tp| TapCounts {
                id: tp.port,
                name: tp.cfg.name.clone(),
                stats: tp.stats(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(prefix: &str) -> PdumpSection {
        PdumpSection {
            file_prefix: prefix.into(),
            ring_size: 16384,
            mbufs: 32767,
            replace_taps: false,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn eal_arguments_of_a_secondary_are_completed_or_refused() {
        let s = section("vswitch");
        assert_eq!(
            eal_args(&s, &args(&["sluice", "-l", "0-1"])).expect("ok"),
            args(&[
                "sluice",
                "--proc-type=secondary",
                "--file-prefix=vswitch",
                "-l",
                "0-1"
            ])
        );
        let given = args(&[
            "sluice",
            "--proc-type",
            "secondary",
            "--file-prefix=vswitch",
        ]);
        assert_eq!(eal_args(&s, &given).expect("ok"), given);
        for (bad, key) in [
            (vec!["sluice", "--in-memory"], "--in-memory"),
            (vec!["sluice", "--proc-type=primary"], "--proc-type primary"),
            (
                vec!["sluice", "--file-prefix", "other"],
                "differs from pdump.file_prefix",
            ),
        ] {
            let e = eal_args(&s, &args(&bad)).expect_err(key);
            assert!(e.contains(key), "{e}");
        }
    }
}
