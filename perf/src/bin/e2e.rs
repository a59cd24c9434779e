//! `e2e`: Sluice measured against DPDK's own forwarding.
//!
//! For each capture, on identical virtual devices (`net_pcap` with
//! `infinite_rx=1` on a pktgen-made capture in, `net_null` out, one worker
//! lcore), it runs `dpdk-testpmd` in io mode, OVS-DPDK doing a broker's
//! job (the peer, see `perf::ovs`) and Sluice in each scenario on that
//! capture, one after the other, each started once and measured over
//! several consecutive intervals, takes the medians, and prints Mpps and
//! the ratios Sluice / testpmd and Sluice / OVS. Results go to `e2e.json`,
//! `e2e.md` and `e2e.png` in `--out-dir`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use perf::collector::Collector;
use perf::ovs::{self, PeerWork};
use perf::phases::Phases;
use perf::report::{self, Machine, Results, ScenarioResult, Settings};
use perf::run::{self, Overhead, Timing};
use perf::scenario::{self, Capture, Scenario, Workers};

#[derive(Debug, Parser)]
#[command(
    name = "e2e",
    about = "Sluice vs dpdk-testpmd io and OVS-DPDK on the same capture, end to end"
)]
struct Args {
    /// The sluice binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// DPDK's testpmd.
    #[arg(long, default_value = "/usr/bin/dpdk-testpmd")]
    testpmd: PathBuf,
    /// Measured intervals of each program per scenario, one after the
    /// other in one run (one start: EAL, pools, capture, rules).
    #[arg(long, default_value_t = 3)]
    intervals: usize,
    /// Seconds of forwarding before the first measured interval.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Seconds of each measured interval.
    #[arg(long, default_value_t = 2)]
    measure: u64,
    /// Mbufs in each program's packet pool beyond the capture, which
    /// `net_pcap`'s infinite_rx holds in the pool (8,192 + 57,343 = 65,535
    /// for the captures of 1,024 flows).
    #[arg(long, default_value_t = 57_343)]
    mbufs: u32,
    /// EAL lcores: the main lcore, then the one worker.
    #[arg(long, default_value = "0-1")]
    lcores: String,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the captures, configs and logs go.
    #[arg(long, default_value = "target/perf-e2e")]
    work_dir: PathBuf,
    /// Where e2e.json, e2e.md and e2e.png go; the work dir unless given
    /// (`make bench` gives perf/results: only the bench's run is the
    /// repository's record).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also record a `perf` profile of Sluice during one extra run per
    /// scenario; the reports go to <out-dir>/profiles/.
    #[arg(long)]
    profile: bool,
    /// Leave the OVS-DPDK peer out.
    #[arg(long)]
    no_ovs: bool,
    /// Also write the table into this document's marked results section
    /// (`make bench`: docs/PERFORMANCE.md).
    #[arg(long)]
    doc: Option<PathBuf>,
}

impl Args {
    fn out_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| self.work_dir.clone())
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_owned();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: sh("uname", &["-sr"]),
        dpdk: format!("DPDK {}", sh("pkg-config", &["--modversion", "libdpdk"])),
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

/// Writes a capture once: `<dir>/<name>.pcap`, with the profile beside it
/// (`<name>.toml`); a capture whose profile is unchanged is reused (the
/// 1 Mi-flow ones take seconds to make).
fn capture_file(c: &Capture, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pcap = dir.join(format!("{}.pcap", c.name));
    let toml = dir.join(format!("{}.toml", c.name));
    let same = std::fs::read_to_string(&toml).is_ok_and(|t| t == c.profile);
    if !(same && pcap.exists()) {
        let profile =
            pktgen::Profile::parse(&c.profile).map_err(|e| format!("capture {}: {e}", c.name))?;
        let mut cycle = pktgen::generate(&profile);
        let n = pktgen::pcap::write(&pcap, &mut cycle, 1)?;
        if n != c.len() {
            return Err(format!(
                "capture {}: {n} frames written, {} expected",
                c.name,
                c.len()
            ));
        }
        std::fs::write(&toml, &c.profile).map_err(|e| format!("{}: {e}", toml.display()))?;
    }
    pcap.canonicalize()
        .map_err(|e| format!("{}: {e}", pcap.display()))
}

/// Writes the scenario's config and policy and links its capture as
/// `in.pcap` (what `perf/callgrind.sh` replays); returns config and policy.
fn prepare(
    s: &Scenario,
    dir: &Path,
    capture: &Path,
    mbufs: u32,
    collector: Option<std::net::SocketAddr>,
) -> Result<(PathBuf, PathBuf), String> {
    let held = s.capture.len();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let link = dir.join("in.pcap");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(capture, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    let config = dir.join("appliance.toml");
    let tag = std::process::id() % 10_000;
    std::fs::write(
        &config,
        scenario::config(
            &s.work,
            s.workers,
            &capture.display().to_string(),
            &tag.to_string(),
            mbufs,
            held,
            collector,
        ),
    )
    .map_err(|e| e.to_string())?;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, scenario::policy(&s.work)).map_err(|e| e.to_string())?;
    Ok((config, policy))
}

/// What a metering scenario exported: Sluice's own count (the last run's
/// exit line) and what its collector received over every run.
fn export_note(dir: &Path, c: Collector) -> String {
    let addr = c.addr();
    let got = c.finish();
    let exit = (0..2)
        .rev()
        .filter_map(|attempt| {
            std::fs::read_to_string(dir.join(format!("sluice-{attempt}.log"))).ok()
        })
        .find_map(|log| {
            log.lines()
                .find_map(|l| l.strip_prefix("sluice: flows: ").map(str::to_owned))
        })
        .unwrap_or_else(|| "no export line in its log".to_owned());
    format!(
        "IPFIX to a collector on {addr}: it received {} messages ({} bytes); Sluice at exit: {exit}",
        got.messages, got.bytes
    )
}

/// One program run of a round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    Testpmd,
    Ovs(PeerWork),
    /// Index into the group's scenarios.
    Sluice(usize),
}

/// Figures of one program over its measured intervals.
#[derive(Debug, Default)]
struct Series {
    mpps: Vec<f64>,
    cpu_mpps: Vec<f64>,
    notes: Vec<String>,
}

impl Series {
    fn add(&mut self, rates: &[run::Rate]) {
        for r in rates {
            self.mpps.push(r.mpps);
            self.cpu_mpps.extend(r.cpu_mpps);
        }
    }
}

const SEP: &str = "—";

/// Runs every program of one capture's scenarios once, each measured over
/// `intervals` intervals, and fills the scenarios' results.
fn run_group(
    a: &Args,
    t_base: &Timing,
    cap: &Capture,
    group: &[&Scenario],
    ovs_ok: bool,
    phases: &mut Phases,
    by_capture: &mut Phases,
) -> Vec<ScenarioResult> {
    let mbufs = cap.mbufs(a.mbufs);
    let t = Timing {
        mbufs,
        ..t_base.clone()
    };
    let mut out: Vec<ScenarioResult> = group
        .iter()
        .map(|s| ScenarioResult {
            name: s.name.clone(),
            title: s.title.clone(),
            capture: cap.name.to_owned(),
            flows: cap.flows,
            frames: cap.frames.to_owned(),
            capture_frames: cap.len(),
            mbufs,
            peer: s.peer.map(|p| p.title()),
            target_ratio: s.target_ratio,
            target_ovs: s.target_ovs,
            target_mpps: s.target_mpps,
            load_before: run::load(),
            ..Default::default()
        })
        .collect();
    let capture = match phases.time("captures: write or reuse", || {
        capture_file(cap, &a.work_dir.join("captures"))
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("e2e: {e}");
            for r in &mut out {
                r.notes.push(e.clone());
            }
            return out;
        }
    };
    // A metering scenario's records go to a collector of its own.
    let mut collectors: Vec<Option<Collector>> = Vec::new();
    for (i, s) in group.iter().enumerate() {
        let c = match s.work {
            scenario::Work::Tap { meter: true, .. } => match Collector::start() {
                Ok(c) => Some(c),
                Err(e) => {
                    out[i].notes.push(format!("no IPFIX collector: {e}"));
                    None
                }
            },
            _ => None,
        };
        collectors.push(c);
    }
    let mut prepared = Vec::new();
    for (s, c) in group.iter().zip(&collectors) {
        let dir = a.work_dir.join(&s.name);
        prepared.push(prepare(
            s,
            &dir,
            &capture,
            mbufs,
            c.as_ref().map(Collector::addr),
        ));
    }
    // The programs of a round: testpmd once for the capture (io
    // forwarding does not depend on Sluice's work), each OVS peer once,
    // each Sluice scenario.
    let mut jobs = vec![Job::Testpmd];
    let mut peer_note = None;
    for s in group {
        if let Some(p) = s.peer {
            if !jobs.contains(&Job::Ovs(p)) {
                jobs.push(Job::Ovs(p));
            }
        }
    }
    if !ovs_ok || a.no_ovs {
        jobs.retain(|j| !matches!(j, Job::Ovs(_)));
        peer_note = Some("OVS-DPDK not run (--no-ovs, or ovs-vswitchd-dpdk missing)".to_owned());
    } else if cap.len() + ovs::OVS_POOL_SPARE > ovs::OVS_POOL_MBUFS {
        jobs.retain(|j| !matches!(j, Job::Ovs(_)));
        peer_note = Some(format!(
            "OVS-DPDK cannot replay this capture: net_pcap's infinite_rx keeps its {} frames in the port's mempool, and OVS gives a port {} mbufs at MTU 1500",
            cap.len(),
            ovs::OVS_POOL_MBUFS
        ));
    }
    for (i, s) in group.iter().enumerate() {
        if prepared[i].is_ok() {
            jobs.push(Job::Sluice(i));
        } else if let Err(e) = &prepared[i] {
            eprintln!("e2e: {}: {e}", s.name);
            out[i].notes.push(e.clone());
        }
    }
    let mut testpmd = Series::default();
    let mut peers: Vec<(PeerWork, Series)> = Vec::new();
    let mut sluice: Vec<Series> = group.iter().map(|_| Series::default()).collect();
    // One run of each program, measured over `t.intervals` intervals; a
    // failed run is tried once more (the machine is shared), a second
    // failure is reported.
    for job in jobs {
        for attempt in 0..2 {
            let began = Instant::now();
            let (program, result) = match job {
                Job::Testpmd => (
                    "testpmd",
                    run_testpmd(a, &t, cap, &capture, attempt, &mut testpmd),
                ),
                Job::Ovs(p) => {
                    let idx = match peers.iter().position(|(q, _)| *q == p) {
                        Some(i) => i,
                        None => {
                            peers.push((p, Series::default()));
                            peers.len() - 1
                        }
                    };
                    (
                        "ovs",
                        run_ovs(a, &t, cap, &capture, p, attempt, &mut peers[idx].1),
                    )
                }
                Job::Sluice(i) => {
                    let Ok((config, policy)) = &prepared[i] else {
                        continue;
                    };
                    let files = (config.as_path(), policy.as_path());
                    let r =
                        run_sluice(a, &t, group[i], files, attempt, &mut sluice[i], &mut out[i]);
                    ("sluice", r)
                }
            };
            let wall = began.elapsed();
            account(phases, program, wall, result.as_ref().ok().copied());
            by_capture.add(&format!("{}: {program}", cap.name), wall);
            if result.is_ok() {
                break;
            }
        }
    }
    for (i, s) in group.iter().enumerate() {
        let r = &mut out[i];
        r.testpmd_mpps = testpmd.mpps.clone();
        r.testpmd_cpu_mpps = testpmd.cpu_mpps.clone();
        r.notes.extend(testpmd.notes.iter().cloned());
        r.sluice_mpps = std::mem::take(&mut sluice[i].mpps);
        r.sluice_cpu_mpps = std::mem::take(&mut sluice[i].cpu_mpps);
        if let Some(p) = s.peer {
            if let Some((_, x)) = peers.iter().find(|(q, _)| *q == p) {
                r.ovs_mpps = x.mpps.clone();
                r.ovs_cpu_mpps = x.cpu_mpps.clone();
                r.notes.extend(x.notes.iter().cloned());
            } else if let Some(n) = &peer_note {
                // Left out on purpose (and said so): no peer to miss.
                r.peer = None;
                r.notes.push(n.clone());
            }
        }
        if a.profile && !r.sluice_mpps.is_empty() {
            if let Ok((config, policy)) = &prepared[i] {
                profile(a, &t, s, config, policy, r);
            }
        }
        r.load_after = run::load();
        r.finish();
        if let Some(c) = collectors[i].take() {
            r.notes.push(export_note(&a.work_dir.join(&s.name), c));
        }
        if let scenario::Work::Tap { dedup: true, .. } = s.work {
            let get = |n: &str| {
                r.sluice_counters
                    .iter()
                    .find_map(|(k, v)| (k == n).then_some(*v as f64))
                    .unwrap_or(0.0)
            };
            let rx = get("rx");
            if rx > 0.0 {
                let copies = cap.len() as f64 - (cap.len() as f64 / (1.0 + cap.copies)).round();
                r.notes.push(format!(
                    "dedup dropped {:.1} % of received packets as copies; the capture holds {:.1} % copies",
                    100.0 * get("deduplicated") / rx,
                    100.0 * copies / cap.len() as f64
                ));
            }
        }
        let f = |v: Option<f64>, d: usize| v.map_or(SEP.into(), |v| format!("{v:.d$}"));
        println!(
            "e2e: {:<22} testpmd {:>6}  ovs {:>6}  sluice {:>6} Mpps  ratio {:>5} / ovs {:>5}  per CPU-s {:>6}/{:>6}/{:>6}  (intervals: sluice {:?}; load {} -> {})",
            s.name,
            f(r.testpmd_median, 2),
            f(r.ovs_median, 2),
            f(r.sluice_median, 2),
            f(r.ratio, 3),
            f(r.ratio_ovs, 2),
            f(r.testpmd_cpu_median, 2),
            f(r.ovs_cpu_median, 2),
            f(r.sluice_cpu_median, 2),
            r.sluice_mpps.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>(),
            r.load_before,
            r.load_after
        );
    }
    out
}

/// One testpmd run on the capture; its rates go into `series`.
fn run_testpmd(
    a: &Args,
    t: &Timing,
    cap: &Capture,
    capture: &Path,
    attempt: usize,
    series: &mut Series,
) -> Result<Overhead, String> {
    let prefix = format!("perf-{}-{}-{attempt}-testpmd", std::process::id(), cap.name);
    let log = a
        .work_dir
        .join("captures")
        .join(format!("{}-testpmd-{attempt}.log", cap.name));
    match run::testpmd(&a.testpmd, &a.lcores, &prefix, capture, t, &log) {
        Ok(m) => {
            series.add(&m.rates);
            Ok(m.overhead)
        }
        Err(e) => {
            eprintln!("e2e: {}: testpmd (attempt {}): {e}", cap.name, attempt + 1);
            series
                .notes
                .push(format!("testpmd attempt {}: {e}", attempt + 1));
            Err(e)
        }
    }
}

/// One run of the OVS peer doing `work` on the capture; its rates go into
/// `series`.
fn run_ovs(
    a: &Args,
    t: &Timing,
    cap: &Capture,
    capture: &Path,
    work: PeerWork,
    attempt: usize,
    series: &mut Series,
) -> Result<Overhead, String> {
    let pid = std::process::id();
    let name = work.name();
    let l = ovs::Layout {
        dir: a
            .work_dir
            .join("ovs")
            .join(format!("{}-{name}-{attempt}", cap.name)),
        netns: format!("sluice-perf-{pid}"),
        prefix: format!("perf-{pid}-{}-{attempt}-{name}", cap.name),
        tag: format!("{}", pid % 10_000),
    };
    match ovs::run(&l, capture, work, &a.lcores, t) {
        Ok(m) => {
            series.add(&m.rates);
            if (m.tx as f64) < 0.999 * m.rx as f64 {
                series.notes.push(format!(
                    "OVS: out0 sent {:.1} % of what in0 received",
                    100.0 * m.tx as f64 / m.rx.max(1) as f64
                ));
            }
            if m.flows_after > m.flows_before {
                series.notes.push(format!(
                    "OVS: datapath flows {} → {} during the measured intervals (upcalls)",
                    m.flows_before, m.flows_after
                ));
            }
            Ok(m.overhead)
        }
        Err(e) => {
            eprintln!("e2e: {}: {name} (attempt {}): {e}", cap.name, attempt + 1);
            series
                .notes
                .push(format!("OVS attempt {}: {e}", attempt + 1));
            Err(e)
        }
    }
}

/// The EAL lcores Sluice gets in scenario `s`: the harness's main and
/// worker lcores, or in one-lcore mode the worker's core alone, so the
/// pipeline runs on the same core as in every other scenario.
fn sluice_lcores(a: &Args, s: &Scenario) -> Result<String, String> {
    match s.workers {
        Workers::OneLcore => Ok(ovs::cores(&a.lcores)?.1.to_string()),
        Workers::Poll | Workers::Adaptive => Ok(a.lcores.clone()),
    }
}

/// One Sluice run of scenario `s` with its (config, policy); its rates go
/// into `series`, its counters and exit report into `r`.
fn run_sluice(
    a: &Args,
    t: &Timing,
    s: &Scenario,
    (config, policy): (&Path, &Path),
    attempt: usize,
    series: &mut Series,
    r: &mut ScenarioResult,
) -> Result<Overhead, String> {
    let dir = a.work_dir.join(&s.name);
    let log = dir.join(format!("sluice-{attempt}.log"));
    let x = match sluice_lcores(a, s).and_then(|lcores| {
        run::sluice(
            &a.sluice,
            &lcores,
            &format!("perf-{}-{}-{attempt}-sluice", std::process::id(), s.name),
            config,
            policy,
            t,
            &log,
            None,
        )
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("e2e: {}: sluice (attempt {}): {e}", s.name, attempt + 1);
            r.notes
                .push(format!("attempt {}: not measurable: {e}", attempt + 1));
            return Err(e);
        }
    };
    let shed = x
        .counters
        .iter()
        .find_map(|(n, v)| (n == "dropped_protect").then_some(*v))
        .unwrap_or(0);
    if shed > 0 {
        r.notes.push(format!(
            "the guard shed {shed} packets (protect): this run's rate is not the pipeline's"
        ));
    }
    series.add(&x.rates);
    r.sluice_counters = x.counters;
    // A run whose exit report never came counts as not balanced: nothing
    // shows it did.
    let balanced = report::balances(&x.accounting).unwrap_or(false);
    if !balanced {
        eprintln!(
            "e2e: {}: exit report does not balance: {:?} (log {})",
            s.name,
            x.accounting,
            log.display()
        );
        r.notes.push(format!(
            "exit report does not balance or is missing: {:?}",
            x.accounting
        ));
    }
    r.balanced = Some(r.balanced.unwrap_or(true) && balanced);
    r.accounting = x.accounting;
    Ok(x.overhead)
}

/// Adds one program run's wall time to the phases: its start-up, its
/// forwarding (warm-up, measured interval, readings) and its stop. A
/// failed run counts whole as start-up.
fn account(phases: &mut Phases, program: &str, wall: Duration, overhead: Option<Overhead>) {
    let o = overhead.unwrap_or(Overhead {
        startup: wall,
        stop: Duration::ZERO,
    });
    let forwarding = wall.saturating_sub(o.startup + o.stop);
    phases.add(&format!("{program}: start-up"), o.startup);
    phases.add(&format!("{program}: forwarding"), forwarding);
    phases.add(&format!("{program}: stop"), o.stop);
}

/// One more Sluice run under `perf record`; the report goes to
/// `<out-dir>/profiles/<scenario>.txt`.
fn profile(
    a: &Args,
    t: &Timing,
    s: &Scenario,
    config: &Path,
    policy: &Path,
    r: &mut ScenarioResult,
) {
    let profiles = a.out_dir().join("profiles");
    let _ = std::fs::create_dir_all(&profiles);
    let dir = a.work_dir.join(&s.name);
    let lcores = match sluice_lcores(a, s) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("e2e: {}: profile run: {e}", s.name);
            return;
        }
    };
    match run::sluice(
        &a.sluice,
        &lcores,
        &format!("perf-{}-{}-profile", std::process::id(), s.name),
        config,
        policy,
        &Timing {
            intervals: 1,
            ..t.clone()
        },
        &dir.join("sluice-profile.log"),
        Some(dir.join("perf.data")),
    ) {
        Ok(x) => {
            if let Some(p) = x.profile {
                let f = profiles.join(format!("{}.txt", s.name));
                let _ = std::fs::write(&f, p);
                r.notes.push(format!(
                    "perf profile in {} ({:.2} Mpps during the profiled interval)",
                    f.display(),
                    x.rates.first().map_or(0.0, |r| r.mpps)
                ));
            }
        }
        Err(e) => eprintln!("e2e: {}: profile run: {e}", s.name),
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    let t = Timing {
        warmup: a.warmup,
        measure: a.measure,
        intervals: a.intervals,
        mbufs: a.mbufs,
    };
    for (what, p) in [("sluice", &a.sluice), ("testpmd", &a.testpmd)] {
        if !p.exists() {
            eprintln!(
                "e2e: {what} not found at {} (build sluice with `cargo build --release -p ctrlplane`; testpmd comes with `make setup`)",
                p.display()
            );
            return ExitCode::from(2);
        }
    }
    let ovs_ok = Path::new(ovs::VSWITCHD).exists();
    if !ovs_ok && !a.no_ovs {
        eprintln!(
            "e2e: {} not found: the OVS-DPDK peer is left out (it comes with `make setup`)",
            ovs::VSWITCHD
        );
    }
    let mut results = Results {
        machine: machine(),
        settings: Settings {
            intervals: a.intervals,
            warmup_s: a.warmup,
            measure_s: a.measure,
            mbufs: a.mbufs,
            lcores: a.lcores.clone(),
            method: "net_pcap infinite_rx=1 in, net_null no-rx=1 out, one worker lcore (OVS: one PMD thread on the same core); packets counted over consecutive measured intervals after a warm-up (testpmd: port 0 RX-packets from --stats-period 1; OVS: in0 RX packets from `ovs-appctl dpctl/show -s`; Sluice: total rx from `show fwd stats all` on the control socket), divided by the wall time between the readings and by the CPU time the worker thread got (/proc schedstat); per capture testpmd, the OVS peers and the Sluice scenarios one after the other, each program started once for all its intervals; medians of the intervals".into(),
        },
        scenarios: Vec::new(),
    };
    let started = Instant::now();
    let mut phases = Phases::default();
    let mut by_capture = Phases::default();
    println!(
        "e2e: {} ({} cores), {}, {}",
        results.machine.cpu, results.machine.cores, results.machine.kernel, results.machine.dpdk
    );
    let mut scenarios = scenario::all();
    if !a.only.is_empty() {
        for o in &a.only {
            if !scenarios.iter().any(|s| &s.name == o) {
                eprintln!(
                    "e2e: --only {o}: no such scenario (there are: {})",
                    scenarios
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::from(2);
            }
        }
        scenarios.retain(|s| a.only.iter().any(|o| o == &s.name));
    }
    // Group by capture, in the order of first appearance.
    let mut caps: Vec<Capture> = Vec::new();
    for s in &scenarios {
        if !caps.iter().any(|c| c.name == s.capture.name) {
            caps.push(s.capture.clone());
        }
    }
    for cap in &caps {
        let group: Vec<&Scenario> = scenarios
            .iter()
            .filter(|s| s.capture.name == cap.name)
            .collect();
        results.scenarios.extend(run_group(
            &a,
            &t,
            cap,
            &group,
            ovs_ok,
            &mut phases,
            &mut by_capture,
        ));
    }
    let reporting = Instant::now();
    let out_dir = a.out_dir();
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("e2e: {}: {e}", out_dir.display());
        return ExitCode::from(1);
    }
    let md = report::markdown(&results);
    println!("\n{md}");
    let json = match serde_json::to_string_pretty(&results) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::from(1);
        }
    };
    let mut ok = true;
    for (name, body) in [("e2e.json", json), ("e2e.md", md)] {
        if let Err(e) = std::fs::write(out_dir.join(name), body) {
            eprintln!("e2e: {name}: {e}");
            ok = false;
        }
    }
    if let Some(doc) = &a.doc {
        let written = std::fs::read_to_string(doc)
            .map_err(|e| e.to_string())
            .and_then(|d| report::splice(&d, &report::doc_section(&results)))
            .and_then(|d| std::fs::write(doc, d).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("e2e: {}: {e}", doc.display());
            ok = false;
        }
    }
    if let Err(e) = report::chart(&results, &out_dir.join("e2e.png")) {
        eprintln!("e2e: chart: {e}");
        ok = false;
    }
    phases.add("report: json, markdown, doc, chart", reporting.elapsed());
    let whole = started.elapsed();
    println!(
        "e2e: results in {} ({:.0} s)\n\ne2e: where the time went\n{}\ne2e: by capture (all its program runs)\n{}",
        out_dir.display(),
        whole.as_secs_f64(),
        phases.summary(whole),
        by_capture.summary(whole)
    );
    let failures = report::failures(&results);
    if !failures.is_empty() {
        eprintln!(
            "\ne2e: FAILED: {} problem(s); the figures above are incomplete or wrong:",
            failures.len()
        );
        for f in &failures {
            eprintln!("e2e: FAILED: {f}");
        }
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
