//! Running `dpdk-testpmd` and `sluice` on the same virtual devices and
//! reading their packet rate from counters over a fixed interval.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long to let a program settle and how long to measure.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Seconds of forwarding before the first measured interval.
    pub warmup: u64,
    /// Seconds of each measured interval.
    pub measure: u64,
    /// Measured intervals, one after the other, in one run of a program:
    /// one start (EAL, pools, the capture loaded, rules compiled) for
    /// all of them.
    pub intervals: usize,
    /// Mbufs in the packet pool, for both programs.
    pub mbufs: u32,
}

/// EAL options both programs get: the main lcore and one worker lcore,
/// no PCI, memory that leaves no file behind, a unique prefix.
pub fn eal(lcores: &str, prefix: &str) -> Vec<String> {
    [
        "-l",
        lcores,
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        prefix,
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Lines of a child's stream, read by a thread.
fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops a child with `sig`, then SIGKILL if it has not gone in 20 s. One
/// already reaped is not signalled: its PID may be another process's now.
pub fn stop(child: &mut Child, sig: &str) -> Option<i32> {
    if let Ok(Some(s)) = child.try_wait() {
        return s.code();
    }
    signal(child, sig);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A rate over an interval: by the wall clock, and per second of CPU time
/// the worker thread actually got (the machine is shared: a preempted
/// worker forwards nothing, and the second figure discounts that).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub mpps: f64,
    /// Mpps per CPU-second of the worker thread (`None` if unreadable).
    pub cpu_mpps: Option<f64>,
}

/// How long a run spent starting (spawn until forwarding, or until the
/// control socket answers) and stopping (signal until exit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overhead {
    pub startup: Duration,
    pub stop: Duration,
}

/// What a testpmd run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestpmdRun {
    /// The rate over each measured interval.
    pub rates: Vec<Rate>,
    pub overhead: Overhead,
}

/// One reading: when, how many packets so far, and the worker thread's
/// CPU time so far (ns).
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub at: Instant,
    pub packets: u64,
    pub cpu_ns: Option<u64>,
}

/// The rate between two readings.
pub fn rate(a: &Reading, b: &Reading) -> Rate {
    let n = b.packets.saturating_sub(a.packets) as f64;
    let secs = (b.at - a.at).as_secs_f64().max(1e-9);
    let cpu_mpps = match (a.cpu_ns, b.cpu_ns) {
        (Some(x), Some(y)) if y > x => Some(n / (y - x) as f64 * 1e3),
        _ => None,
    };
    Rate {
        mpps: n / secs / 1e6,
        cpu_mpps,
    }
}

/// CPU time (ns) of the DPDK worker lcore thread of `pid`: the thread EAL
/// names `rte-worker-N` (`lcore-worker-N` in other releases), or, when
/// there is none (Sluice in one-lcore mode), the main thread, which then
/// runs the worker.
pub fn worker_cpu_ns(pid: u32) -> Option<u64> {
    thread_cpu_ns(pid, &["rte-worker", "lcore-worker"]).or_else(|| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).ok()?;
        stat.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time (ns) of the first thread of `pid` whose name starts with one
/// of `names` (OVS names its PMD threads `pmd-c01/id:N`).
pub fn thread_cpu_ns(pid: u32, names: &[&str]) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if names.iter().any(|n| comm.starts_with(n)) {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// testpmd in io mode: port 0 (the capture) forwards to port 1 (net_null);
/// port 1 receives nothing. testpmd prints port 0's cumulative
/// `RX-packets` every second (`--stats-period 1`); each reading is taken
/// as it arrives, and the rates are over the readings after `warmup` s.
pub fn testpmd(
    bin: &Path,
    lcores: &str,
    prefix: &str,
    capture: &Path,
    t: &Timing,
    log: &Path,
) -> Result<TestpmdRun, String> {
    let spawned = Instant::now();
    let mut overhead = Overhead::default();
    let mut args = eal(lcores, prefix);
    args.extend([
        "--vdev".into(),
        format!("net_pcap0,rx_pcap={},infinite_rx=1", capture.display()),
        "--vdev".into(),
        "net_null0,no-rx=1".into(),
        "--".into(),
        "--forward-mode=io".into(),
        "--auto-start".into(),
        "--stats-period=1".into(),
        "--nb-cores=1".into(),
        "--rxq=1".into(),
        "--txq=1".into(),
        "--rxd=1024".into(),
        "--txd=1024".into(),
        "--burst=32".into(),
        format!("--total-num-mbufs={}", t.mbufs),
    ]);
    let mut child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let out = lines(child.stdout.take().ok_or("no stdout")?);
    let err = lines(child.stderr.take().ok_or("no stderr")?);
    let mut readings: Vec<Reading> = Vec::new();
    // Index of the first reading that counts packets.
    let mut first: Option<usize> = None;
    let mut in_port0 = false;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30 + 2 * (t.warmup + t.measure));
    let done =
        |r: &[Reading], first: Option<usize>| first.is_some_and(|f| intervals(r, f, t).is_some());
    while !done(&readings, first) {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                if line.contains("NIC statistics for port") {
                    in_port0 = line.contains("port 0 ");
                } else if in_port0 && line.trim_start().starts_with("RX-packets:") {
                    let at = Instant::now();
                    let cpu_ns = worker_cpu_ns(pid);
                    if let Some(v) = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
                        // The first reading marks the start; forwarding
                        // has begun when packets are counted.
                        if v > 0 && first.is_none() {
                            first = Some(readings.len());
                            overhead.startup = spawned.elapsed();
                        }
                        readings.push(Reading {
                            at,
                            packets: v,
                            cpu_ns,
                        });
                    }
                }
                seen.push(line);
            }
            Err(_) => {
                if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
                    break;
                }
            }
        }
    }
    let stopping = Instant::now();
    stop(&mut child, "INT");
    overhead.stop = stopping.elapsed();
    seen.extend(err.try_iter());
    let _ = std::fs::write(log, seen.join("\n"));
    let Some(f) = first.filter(|_| done(&readings, first)) else {
        return Err(format!(
            "testpmd gave too few statistics ({} readings; log {})",
            readings.len(),
            log.display()
        ));
    };
    let spans = intervals(&readings, f, t).ok_or_else(|| {
        format!(
            "testpmd's readings span no measured interval (log {})",
            log.display()
        )
    })?;
    Ok(TestpmdRun {
        rates: spans.iter().map(|(a, b)| rate(a, b)).collect(),
        overhead,
    })
}

/// The readings that bound each measured interval, counted in testpmd's
/// once-a-second reports from `first` (the first that counts packets):
/// the first interval starts `warmup` reports later, and each lasts
/// `measure` reports. Counting reports, not clock time, keeps one report
/// that comes early or late (the machine is shared) from making an
/// interval empty. `None` until the last interval's end has come.
fn intervals<'a>(
    readings: &'a [Reading],
    first: usize,
    t: &Timing,
) -> Option<Vec<(&'a Reading, &'a Reading)>> {
    (0..t.intervals.max(1))
        .map(|k| {
            let start = first + t.warmup as usize + k * t.measure as usize;
            let a = readings.get(start)?;
            let b = readings.get(start + t.measure as usize)?;
            (b.at > a.at).then_some((a, b))
        })
        .collect()
}

/// What a Sluice run measured.
#[derive(Debug, Clone, Default)]
pub struct SluiceRun {
    /// The rate over each measured interval.
    pub rates: Vec<Rate>,
    /// Total counters at the end of the measured interval (`show fwd stats all`).
    pub counters: Vec<(String, u64)>,
    /// The exit report's accounting line.
    pub accounting: String,
    /// `perf report` of the worker lcore over the measured interval.
    pub profile: Option<String>,
    pub overhead: Overhead,
}

/// A command over Sluice's control socket (`C <line>` → length-prefixed text).
pub fn command(sock: &Path, line: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("C {line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Counters of the "Accumulated" block of `show fwd stats all`.
pub fn totals(text: &str) -> Vec<(String, u64)> {
    let Some(block) = text.split("Accumulated forward statistics").nth(1) else {
        return Vec::new();
    };
    block
        .lines()
        .skip(1)
        .take_while(|l| !l.contains("accounting"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_owned();
            let v = f.next()?.parse().ok()?;
            Some((name, v))
        })
        .collect()
}

fn rx_of(text: &str) -> Option<u64> {
    totals(text)
        .into_iter()
        .find_map(|(n, v)| (n == "rx").then_some(v))
}

/// Reads the total `rx` counter, at the middle of the round trip, and the
/// worker thread's CPU time.
fn sample(sock: &Path, pid: u32) -> Result<(Reading, String), String> {
    let t0 = Instant::now();
    let text = command(sock, "show fwd stats all")?;
    let t1 = Instant::now();
    let cpu_ns = worker_cpu_ns(pid);
    let rx = rx_of(&text).ok_or_else(|| format!("no rx counter in:\n{text}"))?;
    Ok((
        Reading {
            at: t0 + (t1 - t0) / 2,
            packets: rx,
            cpu_ns,
        },
        text,
    ))
}

/// Sluice with `config` and `policy`: waits until it runs, lets it warm
/// up, then reads `rx` over the control socket at the start and at the
/// end of each measured interval. With `perf_record`, `perf record`
/// samples the sluice process (its worker lcore does nearly all the work)
/// during the first interval into the given file.
#[allow(clippy::too_many_arguments)]
pub fn sluice(
    bin: &Path,
    lcores: &str,
    prefix: &str,
    config: &Path,
    policy: &Path,
    t: &Timing,
    log: &Path,
    perf_record: Option<PathBuf>,
) -> Result<SluiceRun, String> {
    let sock = log.with_extension("sock");
    let _ = std::fs::remove_file(&sock);
    let mut args = eal(lcores, prefix);
    args.push("--".into());
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
        "--socket".into(),
        sock.display().to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
    ]);
    let spawned = Instant::now();
    let mut overhead = Overhead::default();
    let mut child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let out = lines(child.stdout.take().ok_or("no stdout")?);
    let err = lines(child.stderr.take().ok_or("no stderr")?);
    let mut seen = Vec::new();
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match err.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(line) => {
                    let running = line.contains("running:");
                    let control = line.contains("control socket");
                    seen.push(line);
                    if control && seen.iter().any(|l| l.contains("running:")) {
                        break;
                    }
                    if running && seen.iter().any(|l| l.contains("control socket")) {
                        break;
                    }
                }
                Err(_) => {
                    if let Ok(Some(s)) = child.try_wait() {
                        return Err(format!(
                            "sluice exited ({s}) before running: {}",
                            seen.iter()
                                .filter(|l| l.contains("sluice:"))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(" | ")
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err("sluice did not start within 120 s".into());
                    }
                }
            }
        }
        overhead.startup = spawned.elapsed();
        std::thread::sleep(Duration::from_secs(t.warmup));
        let (mut r0, mut text) = sample(&sock, pid)?;
        let mut profile = None;
        let mut rates = Vec::new();
        for k in 0..t.intervals.max(1) {
            match &perf_record {
                Some(data) if k == 0 => {
                    let st = Command::new("perf")
                        .args(["record", "-q", "-p", &pid.to_string(), "-o"])
                        .arg(data)
                        .args(["--", "sleep", &t.measure.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    if st.map(|s| s.success()).unwrap_or(false) {
                        profile = Some(data.clone());
                    }
                }
                _ => std::thread::sleep(Duration::from_secs(t.measure)),
            }
            let (r1, now) = sample(&sock, pid)?;
            rates.push(rate(&r0, &r1));
            (r0, text) = (r1, now);
        }
        Ok((rates, totals(&text), profile))
    })();
    let stopping = Instant::now();
    stop(&mut child, "TERM");
    overhead.stop = stopping.elapsed();
    let report: Vec<String> = out.try_iter().collect();
    seen.extend(err.try_iter());
    let _ = std::fs::write(log, format!("{}\n{}", seen.join("\n"), report.join("\n")));
    let (rates, counters, profile) = result?;
    let accounting = report
        .iter()
        .find(|l| l.contains("accounting: rx"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    let profile = profile.and_then(|data| {
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "dso,symbol",
                "--percent-limit",
                "0.5",
                "-i",
            ])
            .arg(&data)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    Ok(SluiceRun {
        rates,
        counters,
        accounting,
        profile,
        overhead,
    })
}

/// `/proc/loadavg`'s three figures.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testpmd_interval_counts_reports_not_seconds() {
        let f = Instant::now();
        let at = |ms: u64, packets: u64| Reading {
            at: f + Duration::from_millis(ms),
            packets,
            cpu_ns: None,
        };
        let t = Timing {
            warmup: 1,
            measure: 1,
            intervals: 2,
            mbufs: 0,
        };
        // Reports early, then late: the first interval is still the
        // second report after the first that counts packets to the third,
        // the next one the third to the fourth.
        let r = [
            at(0, 0),
            at(1000, 10),
            at(1999, 1000),
            at(3600, 2000),
            at(4600, 3500),
        ];
        let v = intervals(&r, 1, &t).unwrap();
        let (a, b) = v[0];
        assert_eq!((a.packets, b.packets), (1000, 2000));
        assert_eq!(rate(a, b).mpps, 1000.0 / 1.601 / 1e6);
        assert_eq!((v[1].0.packets, v[1].1.packets), (2000, 3500));
        // Until the last interval's report has come there are none.
        assert!(intervals(&r[..4], 1, &t).is_none());
    }

    #[test]
    fn totals_reads_the_accumulated_block() {
        let text = "  ---- Forward statistics for worker 0 ----\n  rx 5\n  ---- Accumulated forward statistics for all workers ----\n  rx                 12\n  forwarded          10\n  filtered 2\n  accounting: rx 12 = ...\n";
        assert_eq!(
            totals(text),
            vec![
                ("rx".to_owned(), 12),
                ("forwarded".to_owned(), 10),
                ("filtered".to_owned(), 2)
            ]
        );
        assert_eq!(rx_of(text), Some(12));
    }
}
