//! `soak`: Sluice under steady traffic for a set time, then checked.
//!
//! ```text
//!  pktgen send ──memif──▶ sluice ──memif──▶ soak (receiver: decap, check)
//!   (web flows + copies    dedup, drops SSH,   per destination: every
//!    from a second tap,    noc: VXLAN,         packet once, in order,
//!    SSH flows)            ids: ERSPAN III     per flow
//!                          sliced to 128 B
//! ```
//!
//! It samples Sluice's resident memory and the mempool's in-use count
//! every second, and in the end checks: `rx` is what pktgen sent and is the
//! sum of the terminal counters exactly; nothing was dropped; each
//! destination's receiver got exactly its `tx_packets`, every web flow's
//! sequence without loss, reordering or duplicate (so dedup took every
//! copy and nothing else); no growth in memory after the warm-up, and the
//! mempool back where it started. It prints the figures and exits non-zero
//! on any failure. `make soak` (SOAK_SECONDS, default 60) runs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dataplane::dpdk::{Batch, Eal};
use dataplane::frame::Frame;
use dataplane::stage::decap::{Decap, DecapConfig, DecapOutcome};
use perf::run::{command, eal, stop, totals};
use pktgen::pcap::payload_offset;
use pktgen::{Checker, Report};

#[derive(Debug, Parser)]
#[command(name = "soak", about = "Sluice under steady traffic, then checked")]
struct Args {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Packets per second pktgen offers (copies included).
    #[arg(long, default_value_t = 20_000)]
    pps: u64,
    /// Share of the run, at the start, that is warm-up (percent).
    #[arg(long, default_value_t = 20)]
    warmup_pct: u64,
    /// Resident memory may vary this much after the warm-up (KiB):
    /// allocator noise, not a leak (a byte a packet is megabytes here).
    #[arg(long, default_value_t = 512)]
    rss_slack_kib: u64,
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    #[arg(long, default_value = "target/release/pktgen")]
    pktgen: PathBuf,
    #[arg(long, default_value = "target/soak")]
    work_dir: PathBuf,
}

const PROFILE: &str = r#"
packets = 10000
size = "imix"
sequence = true

[[flow]]
name = "web"
src = "10.1.0.1-10.1.0.8"
dst = "10.2.0.1-10.2.0.2"
proto = "udp"
src_port = "1024-1027"
dst_port = 443
weight = 8

[[flow]]
name = "ssh"
src = "10.1.0.9"
dst = "10.2.0.3"
proto = "tcp"
src_port = 40000
dst_port = 22
weight = 1

[duplicates]
ratio = 0.25
delay_us = 20
ttl_delta = -1
vlan = 101
"#;

const POLICY: &str = r#"
version = "soak-1"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100

[[destination]]
name = "ids"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 7
slice = 128

[[rule]]
name = "no-ssh"
dst_port = 22
action = "drop"

[[rule]]
name = "all"
to = ["noc", "ids"]
"#;

/// The destinations by their tunnels' outer IPv4 destination.
const DESTS: [(&str, [u8; 4]); 2] = [("noc", [192, 0, 2, 10]), ("ids", [192, 0, 2, 20])];

/// The dedup window is 1 s, not the default 50 ms: on a shared machine a
/// sender or Sluice can stall for longer than 50 ms between a packet and
/// its copy, and a copy that late is rightly forwarded; the check wants
/// every copy caught. The table holds more than twice a window at the
/// default rate.
fn config(dir: &Path) -> String {
    // 16,384 slots a ring (rsize is its log2): a receiver that pauses for
    // half a second on a shared machine still finds room (8,192 slots
    // filled once in a 10-minute run).
    let memif = |tag: &str, sock: &str| {
        format!(
            "net_memif_soak{tag},role=server,socket={},socket-abstract=no,rsize=14",
            dir.join(sock).display()
        )
    };
    format!(
        "[appliance]\nname = \"soak\"\nid = 5\n\n\
         [[port]]\nname = \"in\"\ndevice = \"{}\"\nrole = \"input\"\n\n\
         [[port]]\nname = \"uplink\"\ndevice = \"{}\"\nrole = \"uplink\"\n\n\
         [[uplink]]\nport = \"uplink\"\naddress = \"192.0.2.1/24\"\nmac = \"02:00:00:00:00:01\"\nmtu = 9000\n\n\
         [[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0a\"\n\n\
         [[neighbor]]\nip = \"192.0.2.20\"\nmac = \"02:00:00:00:00:14\"\n\n\
         [dedup]\ntable_entries = 262144\nwindow_us = 1000000\n",
        memif("in", "in.sock"),
        memif("up", "up.sock")
    )
}

/// One look at Sluice.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: u64,
    rss_kib: u64,
    mbufs_in_use: u64,
    rx: u64,
    /// `dropped_tx_full` so far: the receiver fell behind.
    tx_full: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// In-use mbufs from `show guard` ("free mbufs F/T").
fn mbufs_in_use(sock: &Path) -> Result<u64, String> {
    let g = command(sock, "show guard")?;
    let (free, all) = g
        .split("free mbufs ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| format!("no free mbufs in show guard:\n{g}"))?;
    let n = |v: &str| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
    Ok(n(all)? - n(free)?)
}

fn counter(text: &str, name: &str) -> u64 {
    totals(text)
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v))
        .unwrap_or(0)
}

/// `column` of destination `dest` in `show fwd stats all`'s table.
fn dest_counter(text: &str, dest: &str, column: &str) -> u64 {
    let Some(table) = text.split("---------------------- Destinations").nth(1) else {
        return 0;
    };
    let mut lines = table.lines().skip(1);
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let Some(i) = header.iter().position(|h| *h == column) else {
        return 0;
    };
    lines
        .find(|l| l.split_whitespace().next() == Some(dest))
        .and_then(|l| l.split_whitespace().nth(i))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `ok` every 50 ms for up to `secs`.
fn wait(what: &str, secs: u64, mut ok: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if ok()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What came out of the uplink, per destination.
#[derive(Default)]
struct Received {
    checkers: BTreeMap<&'static str, Checker>,
    other: u64,
    not_decapsulated: u64,
}

/// Receives from the uplink's memif until `done`, decapsulating every
/// tunnel and checking the inner frame's sequence stamp per destination.
fn receive(spec: &str, done: &AtomicBool, count: &AtomicU64) -> Result<Received, String> {
    let mut port = pktgen::port::open(spec)?;
    let mut decap = Decap::new(DecapConfig::default()).map_err(|e| e.to_string())?;
    let mut r = Received::default();
    for (d, _) in DESTS {
        r.checkers.insert(d, Checker::new());
    }
    let mut batch: Batch<32> = Batch::new();
    let mut empty = 0u32;
    while !done.load(Ordering::Acquire) {
        if port.rx.rx(&mut batch) == 0 {
            empty += 1;
            if empty > 64 {
                std::thread::sleep(Duration::from_micros(50));
            }
            continue;
        }
        empty = 0;
        for mut m in batch.drain() {
            count.fetch_add(1, Ordering::Relaxed);
            let dst = m.data().get(30..34).map(|b| [b[0], b[1], b[2], b[3]]);
            let Some((dest, _)) = DESTS.iter().find(|(_, ip)| Some(*ip) == dst) else {
                r.other += 1;
                continue;
            };
            if !matches!(decap.decap(&mut m), Ok(DecapOutcome::Decapsulated(_))) {
                r.not_decapsulated += 1;
                continue;
            }
            if let Some(c) = r.checkers.get_mut(dest) {
                if m.nb_segs() == 1 {
                    c.frame(m.data(), payload_offset(m.data()));
                } else {
                    let inner = m.to_vec();
                    c.frame(&inner, payload_offset(&inner));
                }
            }
        }
    }
    drop(port);
    Ok(r)
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))
}

struct Figures {
    failures: Vec<String>,
}

impl Figures {
    fn check(&mut self, ok: bool, what: String) {
        println!("  [{}] {what}", if ok { " ok " } else { "FAIL" });
        if !ok {
            self.failures.push(what);
        }
    }
}

fn run(a: &Args) -> Result<Vec<String>, String> {
    for (what, p) in [("sluice", &a.sluice), ("pktgen", &a.pktgen)] {
        if !p.exists() {
            return Err(format!(
                "{what} not found at {} (cargo build --release -p ctrlplane -p pktgen)",
                p.display()
            ));
        }
    }
    let dir = a.work_dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    let path = |n: &str| dir.join(n).display().to_string();
    std::fs::write(dir.join("a.toml"), config(&dir)).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("p.toml"), POLICY).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("profile.toml"), PROFILE).map_err(|e| e.to_string())?;
    let sock = dir.join("s.sock");

    // Sluice, and this process as its uplink's receiver.
    let mut args = eal("0-1", &format!("soak-{}-s", std::process::id()));
    args.extend(
        [
            "--",
            "--config",
            &path("a.toml"),
            "--policy",
            &path("p.toml"),
        ]
        .map(String::from),
    );
    args.extend(["--socket", &path("s.sock"), "--metrics", "127.0.0.1:0"].map(String::from));
    let mut sluice = spawn(&a.sluice, &args, &dir.join("sluice.log"))?;
    let pid = sluice.id();
    let result = (|| {
        wait("sluice's console", 120, || {
            Ok(command(&sock, "show state").is_ok_and(|s| s.contains("running")))
        })?;
        // The receiver is not pinned (lcore 0 may run on either CPU): a
        // receiver starved behind pktgen would fill the uplink's ring and
        // make Sluice drop, which is not what the soak measures.
        let prefix = format!("soak-{}-r", std::process::id());
        let _eal = Eal::init(&[
            "soak",
            "--lcores",
            "0@(0-1)",
            "--no-pci",
            "--in-memory",
            "--file-prefix",
            &prefix,
            "--log-level",
            "*:warning",
        ])
        .map_err(|e| e.to_string())?;
        let done = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicU64::new(0));
        let spec = format!(
            "net_memif_soakrx,role=client,socket={},socket-abstract=no",
            path("up.sock")
        );
        let receiver = {
            let (done, got) = (Arc::clone(&done), Arc::clone(&got));
            std::thread::spawn(move || receive(&spec, &done, &got))
        };
        let stop_receiver = |rx: std::thread::JoinHandle<Result<Received, String>>| {
            done.store(true, Ordering::Release);
            rx.join().map_err(|_| "the receiver panicked".to_owned())?
        };
        if let Err(e) = wait("the uplink's receiver connected", 60, || {
            Ok(command(&sock, "show port info 1")?.contains("Link status: up"))
        }) {
            let _ = stop_receiver(receiver);
            return Err(e);
        }
        let start_rss = rss_kib(pid).unwrap_or(0);
        let start_in_use = mbufs_in_use(&sock)?;

        // Traffic for the set time; pktgen stays connected a while after
        // it, so that Sluice drains the memif ring.
        let secs = a.seconds.to_string();
        let pps = a.pps.to_string();
        let pg_args: Vec<String> = [
            "--",
            "send",
            "--profile",
            &path("profile.toml"),
            "--port",
            &format!(
                "net_memif_soaktx,role=client,socket={},socket-abstract=no",
                path("in.sock")
            ),
            "--rate-pps",
            &pps,
            "--duration",
            &secs,
            "--linger-ms",
            "5000",
            "--json",
        ]
        .map(String::from)
        .to_vec();
        let pg_out = dir.join("pktgen.json");
        // pktgen yields to the others: when it is late, Sluice's input
        // simply waits; when the receiver is late, Sluice's uplink drops.
        let mut nice = vec![
            "-n".to_owned(),
            "10".to_owned(),
            a.pktgen.display().to_string(),
        ];
        nice.extend(pg_args);
        let mut pg = spawn(Path::new("nice"), &nice, &pg_out)?;
        let t0 = Instant::now();
        let mut samples = Vec::new();
        let sent = loop {
            std::thread::sleep(Duration::from_secs(1));
            let text = command(&sock, "show fwd stats all")?;
            let s = Sample {
                at_s: t0.elapsed().as_secs(),
                rss_kib: rss_kib(pid).unwrap_or(0),
                mbufs_in_use: mbufs_in_use(&sock)?,
                rx: counter(&text, "rx"),
                tx_full: counter(&text, "dropped_tx_full"),
            };
            if s.at_s.is_multiple_of(10) || samples.is_empty() {
                println!(
                    "  t={:>4} s  rx {:>10}  rss {} KiB  mbufs in use {}",
                    s.at_s, s.rx, s.rss_kib, s.mbufs_in_use
                );
            }
            samples.push(s);
            let report = std::fs::read_to_string(&pg_out).unwrap_or_default();
            if let Some(v) = report
                .lines()
                .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            {
                break v["packets"].as_u64().unwrap_or(0);
            }
            if let Ok(Some(st)) = pg.try_wait() {
                let _ = stop_receiver(receiver);
                return Err(format!("pktgen exited ({st}) without a report: {report}"));
            }
            if t0.elapsed() > Duration::from_secs(a.seconds + 120) {
                let _ = stop_receiver(receiver);
                return Err("pktgen did not finish".into());
            }
        };
        // Everything sent is received, nothing in flight, everything out.
        let settled = wait("sluice receiving all pktgen sent", 60, || {
            let t = command(&sock, "show fwd stats all")?;
            Ok(counter(&t, "rx") >= sent && t.contains("(difference 0)"))
        })
        .and_then(|()| {
            let t = command(&sock, "show fwd stats all")?;
            let out = DESTS
                .iter()
                .map(|(d, _)| dest_counter(&t, d, "tx_packets"))
                .sum();
            wait("the receiver getting all sluice sent", 60, || {
                Ok(got.load(Ordering::Relaxed) >= out)
            })
        });
        let _ = stop(&mut pg, "TERM");
        let received = stop_receiver(receiver)?;
        settled?;
        let end_in_use = mbufs_in_use(&sock)?;
        let fwd = command(&sock, "show fwd stats all")?;
        Ok((
            sent,
            samples,
            start_rss,
            start_in_use,
            end_in_use,
            fwd,
            received,
        ))
    })();
    let code = stop(&mut sluice, "TERM");
    let log = std::fs::read_to_string(dir.join("sluice.log")).unwrap_or_default();
    let (sent, samples, start_rss, start_in_use, end_in_use, fwd, received) = result?;
    let report = log
        .split("Accumulated forward statistics")
        .nth(1)
        .map(|r| format!("Accumulated forward statistics{r}"))
        .unwrap_or_default();

    let mut f = Figures {
        failures: Vec::new(),
    };
    println!(
        "soak: {} s at {} pps offered, work dir {}",
        a.seconds,
        a.pps,
        dir.display()
    );
    let rx = counter(&report, "rx");
    f.check(code == Some(0), format!("sluice exited with {code:?}"));
    f.check(
        rx == sent,
        format!("packets processed (rx) {rx} = packets pktgen sent {sent}"),
    );
    let terminals = [
        "forwarded",
        "filtered",
        "deduplicated",
        "dropped_protect",
        "dropped_no_mbuf",
        "dropped_tx_full",
        "dropped_rate_limit",
        "dropped_no_nexthop",
        "dropped_too_big",
        "dropped_error",
    ];
    let sum: u64 = terminals.iter().map(|t| counter(&report, t)).sum();
    f.check(
        rx == sum,
        format!(
            "accounting: rx {rx} = sum of terminals {sum} (difference {})",
            rx as i128 - sum as i128
        ),
    );
    let dropped: u64 = terminals[3..].iter().map(|t| counter(&report, t)).sum();
    f.check(dropped == 0, format!("dropped (every reason) {dropped}"));
    let fwd_n = counter(&report, "forwarded");
    // Every web 5-tuple, and no SSH one, comes out of each tunnel.
    let web = pktgen::Profile::parse(PROFILE)
        .map_err(|e| e.to_string())?
        .flows
        .iter()
        .filter(|f| f.name == "web")
        .map(pktgen::profile::Flow::tuples)
        .sum::<u64>();
    println!(
        "  forwarded {fwd_n}  deduplicated {}  filtered (SSH) {}  parse_errors {}",
        counter(&report, "deduplicated"),
        counter(&report, "filtered"),
        counter(&report, "parse_errors")
    );
    for (d, _) in DESTS {
        let tx = dest_counter(&fwd, d, "tx_packets");
        let r: Report = received
            .checkers
            .get(d)
            .map(Checker::report)
            .unwrap_or_default();
        f.check(
            tx == fwd_n && r.received == tx,
            format!(
                "{d}: tx_packets {tx} = forwarded {fwd_n} = received {}",
                r.received
            ),
        );
        // Whatever the uplink refused is exactly what the receiver misses.
        let refused = dest_counter(&fwd, d, "dropped_tx_full");
        f.check(
            r.lost == refused,
            format!(
                "{d}: lost at the receiver {} = dropped_tx_full {refused}",
                r.lost
            ),
        );
        f.check(
            r.flows == web
                && r.in_order == r.received
                && r.lost == 0
                && r.reordered == 0
                && r.duplicates == 0
                && r.unstamped == 0,
            format!(
                "{d}: {} flows (of {web} web flows), in order {}, lost {}, reordered {}, duplicates {}, unstamped {}",
                r.flows, r.in_order, r.lost, r.reordered, r.duplicates, r.unstamped
            ),
        );
    }
    f.check(
        received.other == 0 && received.not_decapsulated == 0,
        format!(
            "frames on the uplink that are not our tunnels {}, tunnels that did not decapsulate {}",
            received.other, received.not_decapsulated
        ),
    );
    let warm_s = (a.seconds * a.warmup_pct / 100).max(1);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warm_s).collect();
    let warm = after.first().map_or(start_rss, |s| s.rss_kib);
    let max_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or(warm);
    let end_rss = samples.last().map_or(start_rss, |s| s.rss_kib);
    let max_in_use = samples.iter().map(|s| s.mbufs_in_use).max().unwrap_or(0);
    let late: Vec<String> = samples
        .windows(2)
        .filter(|w| w[1].tx_full > w[0].tx_full)
        .map(|w| format!("{} at t={} s", w[1].tx_full - w[0].tx_full, w[1].at_s))
        .collect();
    if !late.is_empty() {
        println!(
            "  the receiver fell behind (uplink refused): {}",
            late.join(", ")
        );
    }
    println!(
        "  memory: rss {start_rss} KiB at start, {warm} KiB after the {warm_s} s warm-up, {max_rss} KiB at most after it, {end_rss} KiB at the end"
    );
    f.check(
        max_rss <= warm + a.rss_slack_kib,
        format!(
            "no growth after warm-up: {} KiB (slack {} KiB)",
            max_rss as i64 - warm as i64,
            a.rss_slack_kib
        ),
    );
    f.check(
        end_in_use == start_in_use,
        format!("mbufs in use: {start_in_use} before traffic, at most {max_in_use} during it, {end_in_use} after it"),
    );
    Ok(f.failures)
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(failures) if failures.is_empty() => {
            println!("soak: passed");
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            println!("soak: FAILED: {}", failures.join("; "));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
