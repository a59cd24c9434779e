//! The data-service stream against a real `nats-server` with JetStream
//! (Debian's), started here inside a network namespace of the test, with
//! Sluice there too: its uplink is a `net_tap` whose kernel side is a
//! router sending NetFlow v5 to Sluice's intake. Flow records and events
//! must arrive, valid against docs/stream.schema.json; a server killed
//! and restarted under traffic must lose nothing acknowledged and store
//! nothing twice; in a three-node JetStream cluster, one node killed, the
//! stream (three replicas) stays writable. What the stream stored is read
//! by a reader of the test's own that speaks the NATS protocol on a
//! socket (tests/nats/js_dump.py), not by Sluice's client.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;
use ctrlplane::cli::socket::Client;
use serde_json::Value;

const SLUICE_IP: &str = "192.0.2.50";
const ROUTER_IP: &str = "192.0.2.1";

const CONFIG: &str = r#"
[appliance]
name = "edge-1"

[[port]]
name = "span"
device = "net_pcap_ni@N@,rx_pcap=@EMPTY@"
role = "input"

[[port]]
name = "uplink"
device = "net_tap_nu@N@,iface=@TAP@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.50/24"

[dedup]
table_entries = 4096

[intake]
netflow_port = 2055

[stream]
servers = [@SERVERS@]
stream = "FLOWS"
replicas = @REPLICAS@
"#;

const POLICY: &str = r#"
version = "drop-all"

[[rule]]
name = "all"
action = "drop"
"#;

fn here(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// A `nats-server` in the namespace, killed by PID on drop.
struct Nats {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Nats {
    /// Starts `nats-server -c conf` inside `ns` and waits until it is ready.
    fn start(ns: &Netns, conf: &Path) -> Nats {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "nats-server", "-c"])
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server (package nats-server: run `make setup`)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut n = Nats {
            child,
            lines: rx,
            seen: Vec::new(),
        };
        n.wait_for("Server is ready", 30);
        n
    }

    fn wait_for(&mut self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(text);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("nats-server never said {text:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// SIGKILL: no goodbye to its clients, no flush.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JetStream server's config: client port, store, and optionally a
/// cluster (name, route port, the other nodes' route ports).
fn nats_conf(dir: &Path, name: &str, port: u16, cluster: Option<(u16, &[u16])>) -> PathBuf {
    let store = dir.join(format!("{name}-store"));
    let mut c = format!(
        "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n",
        store.display()
    );
    if let Some((route, others)) = cluster {
        let routes: Vec<String> = others
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        c.push_str(&format!(
            "cluster {{ name: sluice-test, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
            routes.join(", ")
        ));
    }
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, c).expect("nats config");
    path
}

/// What the stream holds: every message (seq, subject, msg id, body) and
/// the schema errors found, read in the namespace by the test's reader.
struct Stored {
    messages: Vec<(String, String, Value)>,
    stream_messages: u64,
    replicas: u64,
    /// The stream's leader (a server name), in a cluster.
    leader: Option<String>,
    schema_errors: Vec<String>,
}

fn dump(ns: &Netns, port: u16) -> Stored {
    let out = ns.exec(
        "python3",
        &[
            &here("tests/nats/js_dump.py"),
            &port.to_string(),
            "FLOWS",
            &here("../docs/stream.schema.json"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut messages = Vec::new();
    let mut last = Value::Null;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        if v.get("messages").is_some() {
            last = v;
        } else {
            messages.push((
                v["subject"].as_str().unwrap_or_default().to_owned(),
                v["msg_id"].as_str().unwrap_or_default().to_owned(),
                v["data"].clone(),
            ));
        }
    }
    Stored {
        messages,
        stream_messages: last["stream_messages"].as_u64().expect("summary line"),
        replicas: last["replicas"].as_u64().unwrap_or(0),
        leader: last["leader"].as_str().map(str::to_owned),
        schema_errors: last["schema_errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// A counter from `show stream`.
fn stream_counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().and_then(|v| v.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Sluice in `ns` with intake and the stream to `servers`; the tap's
/// kernel side gets the router's address.
struct Setup {
    s: Running,
    c: Client,
    dir: PathBuf,
}

fn start_sluice(ns: &Netns, dir: &Path, servers: &[u16], replicas: u8) -> Setup {
    let n = seq();
    let tap = format!("slnt{}x{n}", std::process::id() % 100_000);
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, &[]);
    let list: Vec<String> = servers
        .iter()
        .map(|p| format!("\"nats://127.0.0.1:{p}\""))
        .collect();
    let cfg = CONFIG
        .replace("@N@", &n.to_string())
        .replace("@TAP@", &tap)
        .replace("@EMPTY@", &empty.display().to_string())
        .replace("@SERVERS@", &list.join(", "))
        .replace("@REPLICAS@", &replicas.to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let sock = dir.join("s.sock");
    let p = |x: &Path| x.display().to_string();
    let mut s = Running::start_in(
        Some(ns.name()),
        &eal(&unique("nats"), "0-1"),
        &[
            "--config",
            &p(&dir.join("a.toml")),
            "--policy",
            &p(&dir.join("p.toml")),
            "--socket",
            &p(&sock),
        ],
    );
    s.wait_for("control socket", 60);
    ns.ip(&["addr", "add", &format!("{ROUTER_IP}/24"), "dev", &tap]);
    ns.ip(&["link", "set", &tap, "up"]);
    let c = Client::connect(&sock).expect("console");
    Setup {
        s,
        c,
        dir: dir.to_path_buf(),
    }
}

/// Starts the router's NetFlow v5 sender (in the namespace): `count`
/// datagrams of `per` flows, `pause_ms` apart.
fn sender(ns: &Netns, count: u32, per: u32, pause_ms: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3"])
        .arg(here("tests/nats/send_v5.py"))
        .args([
            SLUICE_IP,
            "2055",
            &count.to_string(),
            &per.to_string(),
            &pause_ms.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3")
}

fn finish(mut child: Child) {
    let st = child.wait().expect("sender");
    assert!(st.success(), "the sender failed");
}

/// `sluice-controller top` in the namespace, subscribed (it said so) and
/// listening until it has `records` flow records.
fn top_talkers(ns: &Netns, records: u64) -> Child {
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice")).with_file_name("sluice-controller");
    assert!(
        bin.exists(),
        "{} missing: cargo build -p sluice-controller",
        bin.display()
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(&bin)
        .args([
            "top",
            "--nats",
            "nats://127.0.0.1:4222",
            "--seconds",
            "60",
            "--top",
            "10",
        ])
        .args(["--records", &records.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice-controller");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("subscribed")),
        "sluice-controller top did not subscribe"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Every stored message has its own ID, in the header and in the body.
fn assert_unique(stored: &Stored) -> BTreeSet<String> {
    let ids: BTreeSet<String> = stored
        .messages
        .iter()
        .map(|(_, id, _)| id.clone())
        .collect();
    assert_eq!(
        ids.len(),
        stored.messages.len(),
        "a message ID is stored twice"
    );
    for (_, id, body) in &stored.messages {
        assert_eq!(
            body["id"].as_str(),
            Some(id.as_str()),
            "header and body IDs differ"
        );
    }
    ids
}

fn flows(stored: &Stored) -> Vec<&Value> {
    stored
        .messages
        .iter()
        .filter(|(s, _, _)| s == "sluice.edge-1.flows")
        .map(|(_, _, b)| b)
        .collect()
}

fn events(stored: &Stored) -> Vec<&Value> {
    stored
        .messages
        .iter()
        .filter(|(s, _, _)| s == "sluice.edge-1.events")
        .map(|(_, _, b)| b)
        .collect()
}

#[test]
fn records_and_events_arrive_and_a_restarted_server_loses_and_doubles_nothing() {
    const PER: u32 = 3;
    let ns = Netns::quiet("ns-nats");
    let dir = tmpdir("nats");
    let conf = nats_conf(&dir, "n1", 4222, None);
    let mut nats = Nats::start(&ns, &conf);
    let Setup { s, mut c, dir } = start_sluice(&ns, &dir, &[4222], 1);

    // Part 1: a few datagrams, every record and the start-up events; the
    // controller's `top` reads the records live off the server.
    let top = top_talkers(&ns, 10 * u64::from(PER));
    finish(sender(&ns, 10, PER, 0));
    wait_console(&mut c, "show stream", 30, |t| {
        stream_counter(t, "acked") >= 10 * PER as u64 + 2
    });
    // A policy with an error is refused: an event says so.
    std::fs::write(
        dir.join("p.toml"),
        "[[rule]]\nname = \"x\"\nto = [\"nowhere\"]\n",
    )
    .expect("policy");
    s.signal("HUP");
    wait_console(&mut c, "show stream", 30, |t| {
        stream_counter(t, "acked") >= 10 * PER as u64 + 3
    });
    let first = dump(&ns, 4222);
    assert!(first.schema_errors.is_empty(), "{:?}", first.schema_errors);
    let f = flows(&first);
    assert_eq!(f.len(), 10 * PER as usize, "one record per flow sent");
    for r in &f {
        let j = r["key"]["initiator_port"].as_u64().expect("port") - 1000;
        assert_eq!(r["key"]["responder_port"], 80);
        assert_eq!(r["key"]["protocol"], 6);
        assert_eq!(r["forward"]["packets"].as_u64(), Some(j + 1));
        assert_eq!(r["forward"]["bytes"].as_u64(), Some(100 * (j + 1)));
        assert_eq!(r["origin"]["exporter"], ROUTER_IP);
        assert_eq!(r["origin"]["sampling_rate"], 10);
        assert_eq!(r["origin"]["protocol"], "netflow_v5");
        assert_eq!(r["appliance"], "edge-1");
    }
    let ev = events(&first);
    let names: Vec<&str> = ev.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        ev.iter()
            .any(|e| e["event"] == "state_changed" && e["to"] == "running"),
        "{names:?}"
    );
    assert!(names.contains(&"policy_refused"), "{names:?}");
    assert!(names.contains(&"policy_applied"), "{names:?}");
    // The fleet's top talkers: every pair once, sampled 1 in 10; the
    // largest flows (j = 2: 3 packets, 300 bytes) first, ties by address.
    let out = top.wait_with_output().expect("top");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Vec<&str> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        first,
        ["10.1.0.0", "10.2.0.2", "3000", "30", "1", "edge-1"],
        "{text}"
    );
    assert_eq!(text.lines().count(), 11, "a header and the top 10: {text}");

    // Part 2: the server killed (SIGKILL) and restarted on the same store
    // while the router keeps sending.
    const COUNT: u32 = 600;
    let before = stream_counter(&c.command("show stream").expect("stream"), "acked");
    let traffic = sender(&ns, COUNT, PER, 3);
    wait_console(&mut c, "show stream", 30, |t| {
        stream_counter(t, "acked") >= before + 60
    });
    nats.kill();
    // Records go on arriving and wait in the buffer.
    wait_console(&mut c, "show stream", 30, |t| {
        t.contains("not connected") && stream_counter(t, "queued") > stream_counter(t, "acked") + 30
    });
    let nats = Nats::start(&ns, &conf);
    finish(traffic);
    let expected = before + u64::from(COUNT * PER);
    // Each message is acknowledged once: a retry whose first attempt was
    // stored before the kill (its acknowledgement lost) is acknowledged as
    // a duplicate, and `duplicates` counts those among `acked`. The dump
    // below checks that every message is stored, once.
    wait_console(&mut c, "show stream", 60, |t| {
        stream_counter(t, "acked") >= expected && stream_counter(t, "buffered") == 0
    });
    let shown = c.command("show stream").expect("stream");
    assert_eq!(stream_counter(&shown, "overflow"), 0, "{shown}");
    assert!(stream_counter(&shown, "connects") >= 2, "{shown}");
    let stored = dump(&ns, 4222);
    assert!(
        stored.schema_errors.is_empty(),
        "{:?}",
        stored.schema_errors
    );
    let ids = assert_unique(&stored);
    assert_eq!(stored.stream_messages, stored.messages.len() as u64);
    // Nothing acknowledged is missing: every ID Sluice queued up to now
    // (IDs count up from 1) is stored, once.
    let queued = stream_counter(&shown, "queued");
    assert_eq!(stored.messages.len() as u64, queued, "{shown}");
    let (run, _) = ids
        .iter()
        .next()
        .and_then(|id| id.rsplit_once('-'))
        .expect("an ID <appliance>-<run>-<n>");
    for n in 1..=queued {
        assert!(
            ids.contains(&format!("{run}-{n}")),
            "message {n} is missing"
        );
    }
    assert_eq!(flows(&stored).len() as u64, u64::from((10 + COUNT) * PER));

    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("0 unsent at exit"), "{report}");
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_three_node_cluster_stays_writable_with_one_node_killed() {
    const PER: u32 = 2;
    let ns = Netns::quiet("ns-natc");
    let dir = tmpdir("natc");
    let ports = [4231u16, 4232, 4233];
    let routes = [6231u16, 6232, 6233];
    let mut nodes: Vec<Nats> = (0..3)
        .map(|i| {
            let others: Vec<u16> = routes.iter().copied().filter(|r| *r != routes[i]).collect();
            let conf = nats_conf(&dir, &format!("c{i}"), ports[i], Some((routes[i], &others)));
            Nats::start(&ns, &conf)
        })
        .collect();
    let Setup { s, mut c, dir } = start_sluice(&ns, &dir, &ports, 3);
    // The stream exists (three replicas) once the cluster elected its
    // leaders and a first record is acknowledged.
    finish(sender(&ns, 5, PER, 0));
    wait_console(&mut c, "show stream", 60, |t| {
        stream_counter(t, "acked") >= 5 * PER as u64
    });

    // The stream's leader goes: the two others elect a new one.
    let first = dump(&ns, ports[0]);
    assert_eq!(first.replicas, 3);
    let leader = first.leader.expect("a stream leader");
    let gone = (0..3)
        .find(|i| leader == format!("c{i}"))
        .expect("leader is a node");
    nodes[gone].kill();
    let before = stream_counter(&c.command("show stream").expect("stream"), "acked");
    finish(sender(&ns, 50, PER, 2));
    wait_console(&mut c, "show stream", 60, |t| {
        stream_counter(t, "acked") >= before + 50 * PER as u64 && stream_counter(t, "buffered") == 0
    });
    let stored = dump(&ns, ports[(gone + 1) % 3]);
    assert_ne!(
        stored.leader.as_deref(),
        Some(leader.as_str()),
        "a new leader"
    );
    assert!(
        stored.schema_errors.is_empty(),
        "{:?}",
        stored.schema_errors
    );
    assert_unique(&stored);
    assert_eq!(flows(&stored).len() as u64, u64::from(55 * PER));

    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    drop(nodes);
    let _ = std::fs::remove_dir_all(dir);
}
