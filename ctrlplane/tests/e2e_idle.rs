//! Idle modes and one-lcore mode.
//!
//! - An `adaptive` worker (a `net_memif` input) and an `interrupt` worker
//!   (a `net_tap` input) sleep while nothing arrives: over a window the
//!   console bounds (until the worker has waited a given number of times),
//!   the worker thread's CPU time is well below the wall time, and its
//!   voluntary context switches (a thread that gives its core up) follow
//!   its waits; a busy-polling thread makes none of either.
//! - They wake on a burst from `pktgen`, and every packet of it is
//!   accounted: `rx` is what was sent and the sum of the terminals, and the
//!   uplink's capture holds each one.
//! - A one-lcore Sluice (EAL `-l 0`: the main lcore runs the worker
//!   between its control rounds) forwards a capture with exact accounting.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ctrlplane::cli::socket::Client;
use dataplane::runtime::counters::Terminal;
use etherparse::PacketBuilder;
use sluice_testkit::netns::ifname;

/// How long any one wait may take: generous, the machine is shared.
const WAIT_S: u64 = 60;
/// Packets in the burst that wakes a worker.
const BURST: u64 = 1000;
/// Waits the sleeping window spans.
const WAITS: u64 = 200;

const POLICY: &str = r#"
version = "idle-1"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 9
dedup = false

[[rule]]
name = "web"
proto = "udp"
dst_port = 80
to = ["noc"]
"#;

const PROFILE: &str = r#"
size = 128
sequence = true

[[flow]]
name = "web"
src = "10.1.0.1-10.1.0.4"
dst = "10.2.0.1"
proto = "udp"
src_port = "1000-1003"
dst_port = 80
"#;

/// Input `input`, a pcap uplink writing `out`, and `[workers]` keys.
fn config(input: &str, out: &Path, workers: &str) -> String {
    format!(
        "[[port]]\nname = \"in\"\ndevice = \"{input}\"\nrole = \"input\"\n\n\
         [[port]]\nname = \"uplink\"\ndevice = \"net_pcap_idup{},tx_pcap={}\"\nrole = \"uplink\"\n\n\
         [[uplink]]\nport = \"uplink\"\naddress = \"192.0.2.1/24\"\nmac = \"02:00:00:00:00:01\"\n\n\
         [[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0a\"\n\n\
         [dedup]\ntable_entries = 4096\n\n[workers]\n{workers}\n",
        seq(),
        out.display()
    )
}

/// Sends `BURST` packets of the profile through `port` at 20,000 pps,
/// inside `netns` when given; the port stays open a while after (a memif
/// peer loses what is still in its ring when the sender goes).
fn pktgen_send(dir: &Path, netns: Option<&str>, port: &str) -> Pktgen {
    let count = BURST.to_string();
    Pktgen::send(
        dir,
        netns,
        PROFILE,
        port,
        &[
            "--rate-pps",
            "20000",
            "--linger-ms",
            "60000",
            "--count",
            &count,
        ],
    )
}

/// The console, once its socket is there.
fn console(s: &mut Running, sock: &Path) -> Client {
    s.wait_for("control socket", WAIT_S);
    Client::connect(sock).expect("console")
}

fn ask(c: &mut Client, cmd: &str) -> String {
    c.command(cmd)
        .unwrap_or_else(|e| panic!("console {cmd:?}: {e}"))
}

/// Worker 0's idle waits and the RX interrupts among them (`show lcores`).
fn idle_waits(c: &mut Client) -> (u64, u64) {
    let text = ask(c, "show lcores");
    let field = |name: &str| -> u64 {
        text.split(name)
            .nth(1)
            .and_then(|r| {
                r.split(|ch: char| !ch.is_ascii_digit())
                    .find(|x| !x.is_empty())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in:\n{text}"))
    };
    (field("idle waits "), field("woken by RX interrupt "))
}

/// The thread called `name` of process `pid`.
fn thread(pid: u32, name: &str) -> PathBuf {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("threads")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == name))
        .unwrap_or_else(|| panic!("process {pid} has no thread {name}"))
}

/// A thread's CPU time (ns, schedstat) and voluntary context switches.
fn cpu_and_switches(task: &Path) -> (u64, u64) {
    let sched = std::fs::read_to_string(task.join("schedstat")).expect("schedstat");
    let cpu = sched
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat's CPU time");
    let status = std::fs::read_to_string(task.join("status")).expect("status");
    let switches = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches");
    (cpu, switches)
}

/// Over the window in which worker 0 (thread `rte-worker-1`) waits
/// [`WAITS`] more times, its CPU time stays under half the wall time and
/// it gives its core up at least once per two waits.
fn assert_sleeps(s: &Running, c: &mut Client) {
    let task = thread(s.child.id(), "rte-worker-1");
    let (w0, _) = idle_waits(c);
    let (cpu0, sw0) = cpu_and_switches(&task);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(WAIT_S);
    while idle_waits(c).0 < w0 + WAITS {
        assert!(Instant::now() < deadline, "the worker does not wait");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (cpu1, sw1) = cpu_and_switches(&task);
    let wall = t0.elapsed().as_nanos() as u64;
    let (cpu, switches) = (cpu1 - cpu0, sw1 - sw0);
    assert!(
        cpu < wall / 2,
        "the idle worker ran {cpu} ns of CPU in {wall} ns of wall time"
    );
    assert!(
        switches >= WAITS / 2,
        "the idle worker gave its core up {switches} times in {WAITS} waits"
    );
}

/// Waits until the console's totals count `n` forwarded packets.
fn until_forwarded(c: &mut Client, n: u64) {
    wait_console(c, "show fwd stats all", WAIT_S, |t| {
        total(t, "forwarded") >= n
    });
}

/// `rx = Σ terminals` from the report's totals, each terminal read by name.
fn assert_identity(report: &str) {
    assert_accounting(report);
    let sum: u64 = Terminal::ALL.iter().map(|t| total(report, t.name())).sum();
    assert_eq!(total(report, "rx"), sum, "{report}");
}

/// Stops sluice; checks the burst's accounting and the uplink capture.
fn finish_burst(s: Running, out: &Path) {
    s.signal("TERM");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_identity(&report);
    assert_eq!(total(&report, "rx"), BURST, "{report}");
    assert_eq!(total(&report, "forwarded"), BURST, "{report}");
    assert_eq!(read_pcap(out).len() as u64, BURST, "tunnels on the uplink");
}

#[test]
fn adaptive_worker_sleeps_while_idle_and_wakes_for_a_burst() {
    let dir = tmpdir("idle-ad");
    let sock = dir.join("in.sock");
    let out = dir.join("uplink.pcap");
    let input = format!(
        "net_memif_idin{},role=server,socket={},socket-abstract=no",
        seq(),
        sock.display()
    );
    std::fs::write(
        dir.join("a.toml"),
        config(&input, &out, "idle = \"adaptive\"\nidle_max_us = 1000"),
    )
    .expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let args = sluice_args(&dir, "a.toml", "s.sock");
    let mut s = Running::start(&eal(&unique("idad"), "0-1"), &strs(&args));
    let mut c = console(&mut s, &dir.join("s.sock"));

    assert_sleeps(&s, &mut c);

    let mut tx = pktgen_send(
        &dir,
        None,
        &format!(
            "net_memif_idpg{},role=client,socket={},socket-abstract=no",
            seq(),
            sock.display()
        ),
    );
    until_forwarded(&mut c, BURST);
    // A memif peer that leaves while its rings are polled can crash
    // DPDK 22.11's net_memif: the sender goes with forwarding stopped.
    assert_eq!(ask(&mut c, "stop"), "forwarding stopped\n");
    tx.kill();
    finish_burst(s, &out);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn interrupt_worker_sleeps_while_idle_and_wakes_for_a_burst() {
    let ns = Netns::quiet("ns-idint");
    let dir = tmpdir("idle-int");
    let out = dir.join("uplink.pcap");
    let iface = ifname("idt");
    let input = format!("net_tap_idin{},iface={iface}", seq());
    std::fs::write(
        dir.join("a.toml"),
        config(&input, &out, "idle = \"interrupt\"\nidle_max_us = 10000"),
    )
    .expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let args = sluice_args(&dir, "a.toml", "s.sock");
    // Inside the namespace: the tap interface is made there.
    let mut s = Running::start_in(Some(ns.name()), &eal(&unique("idin"), "0-1"), &strs(&args));
    let mut c = console(&mut s, &dir.join("s.sock"));
    ns.ip(&["link", "set", &iface, "up"]);

    assert_sleeps(&s, &mut c);
    let (_, woken0) = idle_waits(&mut c);

    // AF_PACKET on the tap's kernel side: what pktgen sends, Sluice receives.
    let mut tx = pktgen_send(
        &dir,
        Some(ns.name()),
        &format!("net_af_packet_idpg{},iface={iface}", seq()),
    );
    until_forwarded(&mut c, BURST);
    tx.kill();
    let (_, woken) = idle_waits(&mut c);
    assert!(woken > woken0, "no RX interrupt woke the worker");
    finish_burst(s, &out);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn interrupt_mode_names_an_input_that_cannot_interrupt() {
    let dir = tmpdir("idle-noint");
    let out = dir.join("uplink.pcap");
    let input = format!(
        "net_memif_idno{},role=server,socket={},socket-abstract=no",
        seq(),
        dir.join("in.sock").display()
    );
    std::fs::write(
        dir.join("a.toml"),
        config(&input, &out, "idle = \"interrupt\""),
    )
    .expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let args = sluice_args(&dir, "a.toml", "s.sock");
    let o = sluice(&eal(&unique("idno"), "0-1"), &strs(&args));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("port \"in\"") && err.contains("has no RX interrupts"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_lcore_sluice_forwards_a_capture_exactly() {
    let dir = tmpdir("idle-one");
    let out = dir.join("uplink.pcap");
    // Web frames (forwarded), and as many to port 22 (filtered).
    let mut frames = Vec::new();
    for i in 0..300u16 {
        for dport in [80u16, 22] {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, (i % 7) as u8 + 1], [10, 2, 0, 1], 64)
                .udp(1000 + i % 13, dport)
                .write(&mut f, &i.to_be_bytes())
                .expect("build");
            frames.push(f);
        }
    }
    write_pcap(&dir.join("in.pcap"), &frames);
    let cfg = config("", &out, "idle = \"adaptive\"").replace(
        "device = \"\"\nrole = \"input\"",
        &format!(
            "file = \"{}\"\nrole = \"input\"",
            dir.join("in.pcap").display()
        ),
    );
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let mut args = sluice_args(&dir, "a.toml", "s.sock");
    args.extend(["--exit-when-idle".to_owned(), "300".to_owned()]);
    let mut s = Running::start(&eal(&unique("idone"), "0"), &strs(&args));
    let running = s.wait_for("running:", WAIT_S);
    assert!(running.contains("one-lcore mode"), "{running}");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_identity(&report);
    assert_eq!(total(&report, "rx"), 600, "{report}");
    assert_eq!(total(&report, "forwarded"), 300, "{report}");
    assert_eq!(total(&report, "filtered"), 300, "{report}");
    assert_eq!(read_pcap(&out).len(), 300, "tunnels on the uplink");
    let _ = std::fs::remove_dir_all(dir);
}
