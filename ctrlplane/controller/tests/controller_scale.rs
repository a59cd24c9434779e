//! Scale benchmark (ignored by default: it is a measurement, not a test):
//! one real `sluice-controller` on a real etcd, N simulated appliance
//! sessions on loopback
//! (default 2,000; `SLUICE_SCALE_N` to change), each with its own client
//! certificate, speaking the real protocol over TLS 1.3 and sending a
//! heartbeat every second. Reports, for a policy change imported into
//! etcd, the median and p99 time to each appliance's ack and the time to
//! all of them, and the controller's memory.
//!
//! ```sh
//! cargo test --release -p sluice-controller --test controller_scale -- --ignored --nocapture
//! ```
//!
//! Figures are printed, never asserted.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use sluice_controller::admin::{request_as, AdminRequest};
use sluice_controller::registry::Summary;
use sluice_protocol::failover::controller_order;
use sluice_protocol::tls;
use sluice_protocol::{
    decode, encode, ApplianceMsg, ControllerMsg, Counters, FrameDecoder, Heartbeat, Hello,
    PROTOCOL_VERSION,
};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::{rustls, TlsConnector};

/// Bound on every phase of the benchmark.
const PHASE: Duration = Duration::from_secs(300);

/// A policy of realistic size: 16 destinations, 64 rules.
fn fleet_policy(tag: &str) -> String {
    let mut p = format!("version = \"{tag}\"\n");
    for d in 0..16 {
        p += &format!(
            "\n[[destination]]\nname = \"d{d}\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.{}\"\nvni = {}\nslice = 256\n",
            d + 10,
            100 + d
        );
    }
    for r in 0..64 {
        p += &format!(
            "\n[[rule]]\nname = \"r{r}\"\ndst = \"10.{}.{}.0/24\"\nproto = \"tcp\"\ndst_port = {}\nto = [\"d{}\"]\n",
            r / 8,
            r % 8,
            1000 + r,
            r % 16
        );
    }
    p
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

enum SimEvent {
    Connected,
    /// Back in session after its controller died (hello-ack received).
    Reconnected(Instant),
    Acked(String, Instant),
    Failed(String),
}

/// The first reconnect step of the appliance's agent (`backoff_initial_ms`'s
/// default).
const FIRST_STEP_MS: u64 = 500;

/// A draw from `0..span` for appliance `name`'s attempt `n`: what the
/// agent's full jitter draws from its random source.
fn jitter(name: &str, n: u32, span: u64) -> u64 {
    let mut h = name
        .bytes()
        .fold(u64::from(n) ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) % span.max(1)
}

/// One simulated appliance: hello, ack every policy at once, heartbeat
/// every second, until the runtime stops. With several addresses it fails
/// over as the real agent does: its controllers in its own order
/// (`failover::controller_order`), after a session ends a delay drawn
/// from the agent's first backoff step (full jitter), saying in its hello
/// which version it runs. Its first session waits for the `gate` (a fleet
/// coming up paces itself); a failover does not.
async fn sim(
    name: String,
    cfg: Arc<rustls::ClientConfig>,
    addrs: Vec<String>,
    gate: Arc<Semaphore>,
    events: mpsc::UnboundedSender<SimEvent>,
) {
    let order = controller_order(&name, &addrs);
    let mut running = None;
    let mut sessions = 0u32;
    let mut failures = 0u32;
    for i in order.iter().cycle() {
        let gate = (sessions == 0).then_some(&*gate);
        let e = session(
            &name,
            &cfg,
            &addrs[*i],
            gate,
            &events,
            &mut running,
            &mut sessions,
        )
        .await;
        failures += 1;
        if addrs.len() == 1 || failures as usize > 10 * addrs.len() {
            let _ = events.send(SimEvent::Failed(format!("{name}: {e}")));
            return;
        }
        let ms = jitter(&name, failures, FIRST_STEP_MS);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// One session to the end; why it ended.
async fn session(
    name: &str,
    cfg: &Arc<rustls::ClientConfig>,
    addr: &str,
    gate: Option<&Semaphore>,
    events: &mpsc::UnboundedSender<SimEvent>,
    running: &mut Option<String>,
    sessions: &mut u32,
) -> String {
    let r: Result<(), String> = async {
        let permit = match gate {
            Some(g) => Some(g.acquire().await.map_err(|e| e.to_string())?),
            None => None,
        };
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let server = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(cfg.clone())
            .connect(server, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut rd, mut wr) = tokio::io::split(tls);
        let hello = encode(&ApplianceMsg::Hello(Hello {
            name: name.to_owned(),
            labels: [("role".to_string(), "sim".to_string())].into(),
            sluice_version: "sim".into(),
            protocol_version: PROTOCOL_VERSION,
            capabilities: vec!["policy-toml".into()],
            ports: vec![],
            policy_version: running.clone(),
        }))
        .map_err(|e| e.to_string())?;
        wr.write_all(&hello).await.map_err(|e| e.to_string())?;
        wr.flush().await.map_err(|e| e.to_string())?;
        let mut permit = permit;
        let mut acked_hello = false;
        let mut dec = FrameDecoder::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut rx = 0u64;
        loop {
            tokio::select! {
                n = rd.read(&mut buf) => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("closed by the controller".to_string());
                    }
                    dec.push(&buf[..n]).map_err(|e| e.to_string())?;
                    while let Some(body) = dec.next_frame().map_err(|e| e.to_string())? {
                        match decode::<ControllerMsg>(&body).map_err(|e| e.to_string())? {
                            ControllerMsg::HelloAck { .. } => {
                                permit.take();
                                acked_hello = true;
                                *sessions += 1;
                                let _ = events.send(if *sessions == 1 {
                                    SimEvent::Connected
                                } else {
                                    SimEvent::Reconnected(Instant::now())
                                });
                            }
                            ControllerMsg::Policy { version, .. } => {
                                let ack = encode(&ApplianceMsg::Ack { version: version.clone() })
                                    .map_err(|e| e.to_string())?;
                                wr.write_all(&ack).await.map_err(|e| e.to_string())?;
                                wr.flush().await.map_err(|e| e.to_string())?;
                                *running = Some(version.clone());
                                let _ = events.send(SimEvent::Acked(version, Instant::now()));
                            }
                            ControllerMsg::Error { reason } => return Err(reason),
                            _ => {}
                        }
                    }
                }
                _ = tick.tick() => {
                    if !acked_hello {
                        continue;
                    }
                    rx += 1000;
                    let hb = encode(&ApplianceMsg::Heartbeat(Heartbeat {
                        state: "running".into(),
                        policy_version: running.clone(),
                        uptime_s: rx / 1000,
                        counters: Counters {
                            rx,
                            forwarded: rx,
                            terminals: [("forwarded".to_string(), rx)].into(),
                            ..Default::default()
                        },
                        agent: Default::default(),
                    }))
                    .map_err(|e| e.to_string())?;
                    wr.write_all(&hb).await.map_err(|e| e.to_string())?;
                    wr.flush().await.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    .await;
    r.err().unwrap_or_default()
}

fn summary(ctl: &Controller) -> Summary {
    request_as(ctl.admin_path(), &AdminRequest::Summary, "summary").unwrap()
}

/// Polls the controller until `n` appliances acked `version`; when.
fn controller_saw_all(ctl: &Controller, version: &str, n: usize) -> Instant {
    let until = Instant::now() + PHASE;
    loop {
        if summary(ctl).acked.get(version).copied() == Some(n) {
            return Instant::now();
        }
        assert!(
            Instant::now() < until,
            "controller never recorded {n} acks of {version}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `n` acks of one new version (not `old`); returns it and the last ack's time.
fn wait_acks(
    rt: &tokio::runtime::Runtime,
    events: &mut mpsc::UnboundedReceiver<SimEvent>,
    old: Option<&str>,
    n: usize,
) -> (String, Vec<Instant>) {
    rt.block_on(async {
        let mut per: HashMap<String, Vec<Instant>> = HashMap::new();
        let deadline = tokio::time::Instant::now() + PHASE;
        loop {
            let ev = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("acks in time")
                .expect("sims alive");
            match ev {
                SimEvent::Acked(v, t) if Some(v.as_str()) != old => {
                    let e = per.entry(v.clone()).or_default();
                    e.push(t);
                    if e.len() == n {
                        let mut all = std::mem::take(e);
                        all.sort_unstable();
                        return (v, all);
                    }
                }
                SimEvent::Failed(e) => panic!("a simulated appliance failed: {e}"),
                _ => {}
            }
        }
    })
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn scale_one_controller_many_appliances() {
    let n: usize = std::env::var("SLUICE_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let fx = Fixture::new("scale");
    fx.write_policy("fleet", &fleet_policy("v0"));
    fx.write_assign("default = \"fleet\"\n");
    let mut ctl = Controller::spawn_with(&fx, "127.0.0.1:0", &[], false);
    let pid = ctl.pid();
    let rss_idle = proc_status(pid, "VmRSS:");

    let t = Instant::now();
    let configs: Vec<(String, Arc<rustls::ClientConfig>)> = (0..n)
        .map(|i| {
            let name = format!("sim-{i:05}");
            let id = fx.ca.client(fx.dir.path(), &name);
            let cfg = tls::client_config(&fx.ca.pem, &id.cert, &id.key).unwrap();
            (name, Arc::new(cfg))
        })
        .collect();
    println!(
        "{n} client certificates made in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    // At most 64 handshakes in flight, as a fleet coming up would pace itself.
    let gate = Arc::new(Semaphore::new(64));
    let cpu0 = cpu_s(pid);
    let t0 = Instant::now();
    for (name, cfg) in configs {
        rt.spawn(sim(
            name,
            cfg,
            vec![ctl.addr.clone()],
            gate.clone(),
            tx.clone(),
        ));
    }
    // The policy goes out with each hello-ack: count both as they come.
    let (v0, connect_s, connect_cpu) = rt.block_on(async {
        let (mut up, mut acked) = (0, 0);
        let mut v0 = None;
        let mut connected_at = None;
        let deadline = tokio::time::Instant::now() + PHASE;
        while up < n || acked < n {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(SimEvent::Connected)) => {
                    up += 1;
                    if up == n {
                        connected_at = Some((t0.elapsed().as_secs_f64(), cpu_s(pid) - cpu0));
                    }
                }
                Ok(Some(SimEvent::Acked(v, _))) => {
                    acked += 1;
                    assert!(v0.get_or_insert(v.clone()) == &v, "two initial versions");
                }
                Ok(Some(SimEvent::Failed(e))) => panic!("a simulated appliance failed: {e}"),
                _ => panic!("{up} of {n} connected, {acked} acked, in time"),
            }
        }
        let (s, cpu) = connected_at.unwrap_or_default();
        (v0.unwrap_or_default(), s, cpu)
    });
    controller_saw_all(&ctl, &v0, n);
    let initial_s = t0.elapsed().as_secs_f64();
    let rss_connected = proc_status(pid, "VmRSS:");
    println!(
        "{n} sessions up in {connect_s:.2} s (controller CPU {connect_cpu:.2} s), all synced to {v0} in {initial_s:.2} s"
    );

    let mut rounds = Vec::new();
    let (mut medians, mut p99s) = (Vec::new(), Vec::new());
    let mut old = v0;
    for round in 1..=5 {
        fx.write_policy("fleet", &fleet_policy(&format!("v{round}")));
        let cpu0 = cpu_s(pid);
        let t0 = Instant::now();
        fx.import();
        let imported_s = t0.elapsed().as_secs_f64();
        let (v, acks) = wait_acks(&rt, &mut events, Some(&old), n);
        let recorded = controller_saw_all(&ctl, &v, n);
        let at = |q: usize| (acks[(acks.len() - 1) * q / 100] - t0).as_secs_f64() * 1e3;
        let recorded_s = (recorded - t0).as_secs_f64();
        let cpu = cpu_s(pid) - cpu0;
        println!(
            "round {round}: {v}: imported into etcd in {:.1} ms; acks sent: median {:.1} ms, p99 {:.1} ms, last {:.1} ms; all {n} recorded at the controller after {:.1} ms (controller CPU {cpu:.2} s)",
            imported_s * 1e3,
            at(50),
            at(99),
            at(100),
            recorded_s * 1e3
        );
        medians.push(at(50));
        p99s.push(at(99));
        rounds.push(recorded_s);
        old = v;
    }
    let rss_after = proc_status(pid, "VmRSS:");
    let hwm = proc_status(pid, "VmHWM:");
    let s = summary(&ctl);
    rounds.sort_by(|a, b| a.total_cmp(b));
    medians.sort_by(|a, b| a.total_cmp(b));
    p99s.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ack after a policy change (import into etcd → appliance's ack), median of rounds: median {:.1} ms, p99 {:.1} ms",
        medians[medians.len() / 2],
        p99s[p99s.len() / 2]
    );
    println!(
        "policy change acked by all {n} (recorded at the controller): median {:.1} ms, min {:.1} ms, max {:.1} ms over {} rounds",
        rounds[rounds.len() / 2] * 1e3,
        rounds[0] * 1e3,
        rounds[rounds.len() - 1] * 1e3,
        rounds.len()
    );
    println!(
        "controller RSS: idle {:.1} MiB, {n} sessions {:.1} MiB ({:.1} KiB per session), after pushes {:.1} MiB, peak {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        (rss_connected.saturating_sub(rss_idle)) as f64 / n as f64,
        rss_after as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "summary: connected {}, in sync {}, stale {}, nacked {}",
        s.connected, s.in_sync, s.stale, s.nacked
    );
    assert!(ctl.is_running());
    drop(rt);
}

/// Three controllers on one etcd, the simulated fleet spread across them
/// (each appliance lists all three and takes them in its own order, as
/// the agent does); controller 0 is killed: its share moves to the other
/// two. Reports how
/// long until every one of them is back in session, and until the fleet
/// as the survivors see it is whole and in sync again — without a push,
/// since every appliance says in its hello which version it runs.
#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn scale_three_controllers_one_dies() {
    let n: usize = std::env::var("SLUICE_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let fx = Fixture::new("scale-ha");
    fx.write_policy("fleet", &fleet_policy("v0"));
    fx.write_assign("default = \"fleet\"\n");
    let dir = fx.dir.path().to_path_buf();
    let mut ctls: Vec<Controller> = (0..3)
        .map(|i| {
            let id = format!("ctl-{i}");
            let sock = dir.join(format!("{id}.sock"));
            Controller::spawn_as(&fx, &id, &sock, "127.0.0.1:0", &[], false)
        })
        .collect();
    let addrs: Vec<String> = ctls.iter().map(|c| c.addr.clone()).collect();
    let configs: Vec<(String, Arc<rustls::ClientConfig>)> = (0..n)
        .map(|i| {
            let name = format!("sim-{i:05}");
            let id = fx.ca.client(fx.dir.path(), &name);
            let cfg = tls::client_config(&fx.ca.pem, &id.cert, &id.key).unwrap();
            (name, Arc::new(cfg))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(64));
    for (name, cfg) in configs {
        rt.spawn(sim(name, cfg, addrs.clone(), gate.clone(), tx.clone()));
    }
    let v0 = rt.block_on(async {
        let (mut up, mut acked, mut v0) = (0, 0, None);
        let deadline = tokio::time::Instant::now() + PHASE;
        while up < n || acked < n {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(SimEvent::Connected)) => up += 1,
                Ok(Some(SimEvent::Acked(v, _))) => {
                    acked += 1;
                    v0 = Some(v);
                }
                Ok(Some(SimEvent::Failed(e))) => panic!("a simulated appliance failed: {e}"),
                _ => panic!("{up} of {n} connected, {acked} acked, in time"),
            }
        }
        v0.unwrap_or_default()
    });
    controller_saw_all(&ctls[1], &v0, n);
    let shares: Vec<usize> = ctls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = format!("ctl-{i}");
            c.list()
                .iter()
                .filter(|a| a.controller.as_deref() == Some(id.as_str()))
                .count()
        })
        .collect();
    println!("{n} sessions over 3 controllers: {shares:?}, all synced to {v0}");

    // CPU is the figure a loaded machine moves least: the survivors' and
    // the simulated fleet's (this process), over the takeover.
    let cpu = |c: &[Controller]| -> [f64; 3] {
        [
            cpu_s(c[1].pid()),
            cpu_s(c[2].pid()),
            cpu_s(std::process::id()),
        ]
    };
    let cpu0 = cpu(&ctls);
    let t0 = Instant::now();
    ctls[0].kill();
    let moved = shares[0];
    let (back, pushes) = rt.block_on(async {
        let mut back = Vec::new();
        let mut pushes = 0;
        let deadline = tokio::time::Instant::now() + PHASE;
        while back.len() < moved {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(SimEvent::Reconnected(t))) => back.push(t - t0),
                Ok(Some(SimEvent::Acked(..))) => pushes += 1,
                Ok(Some(SimEvent::Failed(e))) => panic!("a simulated appliance failed: {e}"),
                Ok(Some(SimEvent::Connected)) => {}
                _ => panic!("{} of {moved} back in time", back.len()),
            }
        }
        back.sort_unstable();
        (back, pushes)
    });
    let whole = loop {
        let s = summary(&ctls[1]);
        if s.connected == n && s.in_sync == n {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < PHASE,
            "the survivors never saw the whole fleet: {s:?}"
        );
        // A summary walks all 10,000 records under the registry's lock:
        // asked too often, it slows what it measures.
        std::thread::sleep(Duration::from_millis(50));
    };
    let cpu1 = cpu(&ctls);
    let at = |q: usize| back[(back.len() - 1) * q / 100].as_secs_f64() * 1e3;
    println!(
        "CPU over the takeover (until the survivors see the whole fleet): ctl-1 {:.2} s, ctl-2 {:.2} s \
         ({:.2} ms per session taken over, heartbeats of all {n} included), simulated fleet {:.2} s",
        cpu1[0] - cpu0[0],
        cpu1[1] - cpu0[1],
        (cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]) * 1e3 / moved as f64,
        cpu1[2] - cpu0[2]
    );
    println!(
        "controller ctl-0 killed: its {moved} appliances back in session: median {:.1} ms, p99 {:.1} ms, last {:.1} ms; \
         the survivors see all {n} connected and in sync after {:.1} ms; policies pushed meanwhile: {pushes}",
        at(50),
        at(99),
        at(100),
        whole.as_secs_f64() * 1e3
    );
    for (i, c) in ctls.iter().enumerate().skip(1) {
        let id = format!("ctl-{i}");
        let held = c
            .list()
            .iter()
            .filter(|a| a.controller.as_deref() == Some(id.as_str()))
            .count();
        println!("{id} holds {held}");
    }
    drop(rt);
}
