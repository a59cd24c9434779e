//! The metrics an operator's stack reads: a real Prometheus server (the
//! Debian package) scrapes a running Sluice, and PromQL returns exactly
//! what the console's `show fwd stats all` says — received packets, every
//! terminal counter, every destination's counters. The Grafana dashboard
//! in `docs/grafana/sluice.json` uses only metric names Sluice exposes.
//! Sluice runs with `--log-format json`: its log lines are JSON objects,
//! and the metrics address is read from one.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;

const CONFIG: &str = r#"
[[port]]
name = "tap0"
file = "@IN@"
role = "input"

[[port]]
name = "uplink"
device = "net_null_prom_up"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[[neighbor]]
ip = "192.0.2.20"
mac = "02:00:00:00:00:14"
"#;

/// Web to the NOC over VXLAN and to the IDS, the rest but SSH to the IDS
/// over ERSPAN III: packets end forwarded or filtered, the destinations'
/// counters differ, and web packets have two copies each.
const POLICY: &str = r#"
version = "prom-1"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
dedup = false

[[destination]]
name = "ids"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 7
slice = 128
dedup = false

[[rule]]
name = "no-ssh"
proto = "tcp"
dst_port = 22
action = "drop"

[[rule]]
name = "web"
proto = "tcp"
dst_port = 80
to = ["noc", "ids"]

[[rule]]
name = "rest"
to = ["ids"]
"#;

const WAIT_S: u64 = 60;

/// Web, SSH and DNS frames of several sizes: 300 in all.
fn frames() -> Vec<Vec<u8>> {
    (0..300u32)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2]).ipv4(
                [10, 1, 0, (i % 50) as u8],
                [10, 2, 0, 1],
                64,
            );
            let payload = vec![0x5a; 20 + (i as usize % 7) * 100];
            let mut out = Vec::new();
            match i % 3 {
                0 => b
                    .tcp(40000 + i as u16, 80, i, 1000)
                    .write(&mut out, &payload),
                1 => b
                    .tcp(40000 + i as u16, 22, i, 1000)
                    .write(&mut out, &payload),
                _ => b.udp(40000 + i as u16, 53).write(&mut out, &payload),
            }
            .expect("build frame");
            out
        })
        .collect()
}

/// A Prometheus server of its own, stopped by PID when dropped.
struct Prometheus {
    child: Child,
    base: String,
}

impl Prometheus {
    /// Starts `prometheus` on a loopback port it is free to take, scraping
    /// `target` (host:port) every second, its data in `dir`.
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sluice\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        // A port nobody listens on: the kernel's pick, released for
        // Prometheus to bind (it says so if another process took it first).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/setup.sh installs it)");
        Prometheus {
            child,
            base: format!("http://{listen}"),
        }
    }

    /// GET `path` from the API; `None` while the server is not up yet.
    fn get(&self, path: &str) -> Option<Value> {
        let body = http_get(&self.base, path)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then_some(v)
    }

    /// Polls until `f` returns something, for at most `WAIT_S`.
    fn until<T>(&mut self, what: &str, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(WAIT_S);
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}) while waiting for {what}");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: no {what} in {WAIT_S} s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let v = self.get(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        v["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET (the body), or `None` when nothing answers.
fn http_get(base: &str, path: &str) -> Option<String> {
    let host = base.strip_prefix("http://")?;
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.")
        .then(|| head.contains(" 200 "))
        .filter(|ok| *ok)
        .map(|_| body.to_owned())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query's single value as an integer.
fn scalar(r: &[Value]) -> Option<u64> {
    let v = r.first()?["value"][1].as_str()?;
    v.parse::<f64>().ok().map(|f| f as u64)
}

/// Every metric name the dashboard's expressions use.
fn dashboard_metrics(dash: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    let mut names: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("sluice_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn prometheus_scrapes_what_the_console_shows() {
    let dir = tmpdir("prometheus");
    let frames = frames();
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames);
    let cfg = dir.join("a.toml");
    std::fs::write(&cfg, CONFIG.replace("@IN@", &input.display().to_string())).expect("cfg");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let mut args = sluice_args(&dir, "a.toml", "s.sock");
    args.extend(["--log-format".into(), "json".into()]);
    let mut s = Running::start(&eal(&unique("prom"), "0-1"), &strs(&args));

    // The JSON log line that says where the metrics are.
    let line = s.wait_for("metrics on http://", WAIT_S);
    let entry: Value = serde_json::from_str(&line).expect("a JSON log line");
    for key in ["time", "level", "target", "message", "fields"] {
        assert!(entry.get(key).is_some(), "no {key} in {line}");
    }
    assert_eq!(entry["level"], "info", "{line}");
    let url = entry["fields"]["url"]
        .as_str()
        .expect("fields.url")
        .to_owned();
    // Every line Sluice wrote so far is a JSON object (DPDK's own lines,
    // `EAL: ...`, keep DPDK's format).
    for l in &s.seen {
        let dpdk = l.split_once(": ").is_some_and(|(p, _)| {
            p.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        if !dpdk {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        }
    }
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();

    // The traffic has finished when the console counts every frame; the
    // counters are stable from then on.
    let mut console =
        ctrlplane::cli::socket::Client::connect(&dir.join("s.sock")).expect("console");
    let want = frames.len() as u64;
    let shown = wait_console(&mut console, "show fwd stats all", WAIT_S, |out| {
        out.contains("Accumulated") && total(out, "rx") == want && out.contains("(difference 0)")
    });
    let done = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    let mut prom = Prometheus::start(&dir, &target);
    // The target is up, and a scrape after the traffic finished is in.
    prom.until("healthy target", |p| {
        let t = p.get("/api/v1/targets")?;
        let active = t["data"]["activeTargets"].as_array()?;
        active
            .iter()
            .any(|a| a["scrapeUrl"] == url.as_str() && a["health"] == "up")
            .then_some(())
    });
    prom.until("scrape after the traffic", |p| {
        let r = p.query("max(timestamp(sluice_rx_packets_total))")?;
        let ts: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        (ts > done).then_some(())
    });

    let q = |promql: &str| {
        prom.query(promql)
            .and_then(|r| scalar(&r))
            .unwrap_or_else(|| panic!("no value for {promql}"))
    };
    assert_eq!(q("sum(sluice_rx_packets_total)"), want);
    let mut terminals = 0;
    for t in [
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
        "sampled",
        "dropped_no_tool",
    ] {
        let v = q(&format!("sum(sluice_packets_total{{terminal=\"{t}\"}})"));
        assert_eq!(v, total(&shown, t), "terminal {t}:\n{shown}");
        terminals += v;
    }
    assert_eq!(terminals, want, "rx = Σ terminals in Prometheus too");
    assert!(total(&shown, "forwarded") > 0 && total(&shown, "filtered") > 0);

    for dest in ["noc", "ids"] {
        let row: BTreeMap<String, u64> = dest_row(&shown, dest).into_iter().collect();
        assert!(row["tx_packets"] > 0, "{dest}:\n{shown}");
        for (column, value) in &row {
            let promql = match column.as_str() {
                "tx_packets" | "tx_bytes" => {
                    format!("sluice_destination_{column}_total{{destination=\"{dest}\"}}")
                }
                c if c.starts_with("dropped_") || c == "sampled" => format!(
                    "sluice_destination_dropped_total{{destination=\"{dest}\",reason=\"{c}\"}}"
                ),
                _ => continue,
            };
            assert_eq!(q(&promql), *value, "{dest} {column}:\n{shown}");
        }
    }

    // The dashboard reads only metrics Sluice exposes.
    let exposition = http_get(&format!("http://{target}"), "/metrics").expect("exposition");
    let dash_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/sluice.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&dash_path).expect("dashboard"))
            .expect("dashboard JSON");
    let names = dashboard_metrics(&dash);
    assert!(names.len() >= 10, "{names:?}");
    for n in &names {
        assert!(
            exposition.contains(&format!("# TYPE {n} ")),
            "the dashboard uses {n}, which Sluice does not expose"
        );
    }
    assert!(names.contains(&"sluice_destination_tx_packets_total".to_owned()));

    drop(prom);
    assert!(console.command("quit").expect("quit").contains("bye"));
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    let _ = std::fs::remove_dir_all(&dir);
}
