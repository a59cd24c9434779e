//! `e2e`: Sluice measured against DPDK's own forwarding.
//!
//! For each scenario, on identical virtual devices (`net_pcap` with
//! `infinite_rx=1` on a pktgen-made capture in, `net_null` out, one worker
//! lcore), it alternates runs of `dpdk-testpmd` in io mode and of Sluice,
//! takes the medians, and prints Mpps and the ratio Sluice / testpmd.
//! Results go to `e2e.json`, `e2e.md` and `e2e.png` in `--out-dir`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use perf::report::{self, Machine, Results, ScenarioResult, Settings};
use perf::run::{self, Timing};
use perf::scenario::{self, Scenario};

#[derive(Debug, Parser)]
#[command(name = "e2e", about = "Sluice vs dpdk-testpmd io, end to end")]
struct Args {
    /// The sluice binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// DPDK's testpmd.
    #[arg(long, default_value = "/usr/bin/dpdk-testpmd")]
    testpmd: PathBuf,
    /// Runs of each program per scenario (alternating).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of forwarding before each measured interval.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 2)]
    measure: u64,
    /// Mbufs in the packet pool of both programs.
    #[arg(long, default_value_t = 65535)]
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
    /// Where e2e.json, e2e.md and e2e.png go.
    #[arg(long, default_value = "perf/results")]
    out_dir: PathBuf,
    /// Also record a `perf` profile of Sluice during one extra run per
    /// scenario; the reports go to <out-dir>/profiles/.
    #[arg(long)]
    profile: bool,
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

/// Writes the scenario's capture, config and policy; returns their paths
/// and the share of the capture that are duplicate copies.
fn prepare(
    s: &Scenario,
    dir: &Path,
    mbufs: u32,
) -> Result<(PathBuf, PathBuf, PathBuf, f64), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let profile = pktgen::Profile::parse(&s.profile).map_err(|e| format!("{}: {e}", s.name))?;
    let mut cycle = pktgen::generate(&profile);
    let copies =
        cycle.packets.iter().filter(|p| p.copy).count() as f64 / cycle.packets.len().max(1) as f64;
    let capture = dir.join("in.pcap");
    pktgen::pcap::write(&capture, &mut cycle, 1)?;
    let capture = capture
        .canonicalize()
        .map_err(|e| format!("{}: {e}", capture.display()))?;
    let config = dir.join("appliance.toml");
    let tag = std::process::id() % 10_000;
    std::fs::write(
        &config,
        scenario::config(
            &s.work,
            &capture.display().to_string(),
            &tag.to_string(),
            mbufs,
        ),
    )
    .map_err(|e| e.to_string())?;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, scenario::policy(&s.work)).map_err(|e| e.to_string())?;
    Ok((capture, config, policy, copies))
}

fn main() -> ExitCode {
    let a = Args::parse();
    let t = Timing {
        warmup: a.warmup,
        measure: a.measure,
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
    let mut results = Results {
        machine: machine(),
        settings: Settings {
            runs: a.runs,
            warmup_s: a.warmup,
            measure_s: a.measure,
            mbufs: a.mbufs,
            lcores: a.lcores.clone(),
            method: "net_pcap infinite_rx=1 in, net_null no-rx=1 out, one worker lcore; packets counted over the measured interval after a warm-up (testpmd: port 0 RX-packets from --stats-period 1; Sluice: total rx from `show fwd stats all` on the control socket), divided by the wall time between the readings and by the CPU time the worker thread got (/proc schedstat); runs alternate, medians".into(),
        },
        scenarios: Vec::new(),
    };
    let started = std::time::Instant::now();
    println!(
        "e2e: {} ({} cores), {}, {}",
        results.machine.cpu, results.machine.cores, results.machine.kernel, results.machine.dpdk
    );
    let mut scenarios = scenario::all();
    if !a.only.is_empty() {
        scenarios.retain(|s| a.only.iter().any(|o| o == s.name));
    }
    let pid = std::process::id();
    for s in &scenarios {
        let dir = a.work_dir.join(s.name);
        let mut r = ScenarioResult {
            name: s.name.into(),
            title: s.title.into(),
            target_ratio: s.target_ratio,
            target_mpps: s.target_mpps,
            load_before: run::load(),
            ..Default::default()
        };
        let (capture, config, policy, copies) = match prepare(s, &dir, a.mbufs) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("e2e: {}: {e}", s.name);
                r.notes.push(e);
                results.scenarios.push(r);
                continue;
            }
        };
        let mut sluice_broken = false;
        for k in 0..a.runs {
            // Alternate which program goes first.
            let order = if k % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let prefix = format!("perf-{pid}-{}-{k}-{which}", s.name);
                if which == 0 {
                    match run::testpmd(
                        &a.testpmd,
                        &a.lcores,
                        &prefix,
                        &capture,
                        &t,
                        &dir.join(format!("testpmd-{k}.log")),
                    ) {
                        Ok(m) => {
                            r.testpmd_mpps.push(m.mpps);
                            r.testpmd_cpu_mpps.extend(m.cpu_mpps);
                        }
                        Err(e) => {
                            eprintln!("e2e: {}: testpmd: {e}", s.name);
                            r.notes.push(format!("testpmd run {k}: {e}"));
                        }
                    }
                } else if !sluice_broken {
                    match run::sluice(
                        &a.sluice,
                        &a.lcores,
                        &prefix,
                        &config,
                        &policy,
                        &t,
                        &dir.join(format!("sluice-{k}.log")),
                        None,
                    ) {
                        Ok(x) => {
                            r.sluice_mpps.push(x.rate.mpps);
                            r.sluice_cpu_mpps.extend(x.rate.cpu_mpps);
                            r.sluice_counters = x.counters;
                            r.accounting = x.accounting;
                        }
                        Err(e) => {
                            eprintln!("e2e: {}: sluice: {e}", s.name);
                            r.notes.push(format!("not measurable: {e}"));
                            // A refused config is refused every time.
                            sluice_broken = true;
                        }
                    }
                }
            }
        }
        if a.profile && !sluice_broken {
            let profiles = a.out_dir.join("profiles");
            let _ = std::fs::create_dir_all(&profiles);
            let data = dir.join("perf.data");
            match run::sluice(
                &a.sluice,
                &a.lcores,
                &format!("perf-{pid}-{}-profile", s.name),
                &config,
                &policy,
                &t,
                &dir.join("sluice-profile.log"),
                Some(data),
            ) {
                Ok(x) => {
                    if let Some(p) = x.profile {
                        let f = profiles.join(format!("{}.txt", s.name));
                        let _ = std::fs::write(&f, p);
                        r.notes.push(format!(
                            "perf profile in {} ({:.2} Mpps during the profiled run)",
                            f.display(),
                            x.rate.mpps
                        ));
                    }
                }
                Err(e) => eprintln!("e2e: {}: profile run: {e}", s.name),
            }
        }
        r.load_after = run::load();
        r.finish();
        if let scenario::Work::Tap { dedup: true, .. } = s.work {
            let get = |n: &str| {
                r.sluice_counters
                    .iter()
                    .find_map(|(k, v)| (k == n).then_some(*v as f64))
                    .unwrap_or(0.0)
            };
            let rx = get("rx");
            if rx > 0.0 {
                r.notes.push(format!(
                    "dedup dropped {:.1} % of received packets as copies; the capture holds {:.1} % copies",
                    100.0 * get("deduplicated") / rx,
                    100.0 * copies
                ));
            }
        }
        let f = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.d$}"));
        println!(
            "e2e: {:<16} testpmd {:>7} Mpps  sluice {:>7} Mpps  ratio {:>6}  per CPU-s {:>7}/{:>7} ({:>6})  (runs: testpmd {:?}, sluice {:?}; load {} -> {})",
            s.name,
            f(r.testpmd_median, 2),
            f(r.sluice_median, 2),
            f(r.ratio, 3),
            f(r.testpmd_cpu_median, 2),
            f(r.sluice_cpu_median, 2),
            f(r.cpu_ratio, 3),
            r.testpmd_mpps.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>(),
            r.sluice_mpps.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>(),
            r.load_before,
            r.load_after
        );
        results.scenarios.push(r);
    }
    if let Err(e) = std::fs::create_dir_all(&a.out_dir) {
        eprintln!("e2e: {}: {e}", a.out_dir.display());
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
        if let Err(e) = std::fs::write(a.out_dir.join(name), body) {
            eprintln!("e2e: {name}: {e}");
            ok = false;
        }
    }
    if let Err(e) = report::chart(&results, &a.out_dir.join("e2e.png")) {
        eprintln!("e2e: chart: {e}");
        ok = false;
    }
    println!(
        "e2e: results in {} ({:.0} s)",
        a.out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
