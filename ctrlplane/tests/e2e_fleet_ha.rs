//! The fleet in high availability: a three-member etcd cluster started by
//! the test on loopback, two `sluice-controller`s sharing it, and two real
//! `sluice` appliances on virtual devices, each listing both controllers.
//!
//! - Workloads: a policy group selects workloads by label; moving the
//!   workload's address in the inventory makes the appliance running that
//!   policy forward the new address to the rule's destination, and the
//!   other appliance gets no push.
//! - Failover: the controller holding an appliance's session is killed;
//!   the appliance moves to the other one and keeps forwarding, and a
//!   policy imported meanwhile is applied exactly once.
//! - Store fault: one etcd member of three is killed; a policy change
//!   still goes through (and a policy an appliance cannot run is nacked).
//! - The accounting is exact across all of it, and the history lists the
//!   pushes, acks, nacks and state changes in the order they happened.
//! - `export` writes the fleet's policies back as the directory imported.

mod common;
mod controller_support;

use std::path::PathBuf;

use common::*;
use controller_support::{Controller, Fixture};
use etherparse::PacketBuilder;
use serde_json::Value;
use sluice_controller::admin::{request_as, AdminRequest};
use sluice_controller::registry::ApplianceView;

/// Rules: traffic to the `web` workloads goes to the NOC over VXLAN, all
/// of it to the recorder tool port.
fn web_policy(tag: &str) -> String {
    format!(
        "version = \"{tag}\"\n\n[[group]]\nname = \"web\"\nworkloads = {{ service = \"web\" }}\n\n\
         [[destination]]\nname = \"noc\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = 7\ndedup = false\n\n\
         [[destination]]\nname = \"recorder\"\nport = \"rec\"\ndedup = false\n\n\
         [[rule]]\nname = \"web\"\ndst_group = \"web\"\nto = [\"noc\", \"recorder\"]\n\n\
         [[rule]]\nname = \"rest\"\nto = [\"recorder\"]\n"
    )
}

fn base_policy(tag: &str, in_port: &str) -> String {
    format!(
        "version = \"{tag}\"\n\n[[destination]]\nname = \"recorder\"\nport = \"rec\"\ndedup = false\n\n\
         [[rule]]\nname = \"all\"\nin_port = \"{in_port}\"\nto = [\"recorder\"]\n"
    )
}

fn inventory(web_1: &str) -> String {
    format!(
        "[[workload]]\nname = \"web-1\"\naddresses = [\"{web_1}\"]\nlabels = {{ service = \"web\", host = \"hv-1\" }}\n\n\
         [[workload]]\nname = \"db-1\"\naddresses = [\"10.3.0.1\"]\nlabels = {{ service = \"db\" }}\n"
    )
}

/// A controller's view of `name`, once it has one.
fn view(ctl: &Controller, name: &str) -> Option<ApplianceView> {
    let req = AdminRequest::Show {
        name: name.to_owned(),
    };
    request_as(ctl.admin_path(), &req, "appliance").ok()
}

/// Polls a controller's view of `name` until `ok` holds (bounded).
fn until(ctl: &Controller, name: &str, what: &str, ok: impl Fn(&ApplianceView) -> bool) {
    for _ in 0..12_000 {
        if view(ctl, name).is_some_and(|v| ok(&v)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("never saw {name} {what}: {:?}", view(ctl, name));
}

fn rule_hits(v: &ApplianceView, rule: &str) -> u64 {
    v.heartbeat
        .as_ref()
        .and_then(|h| h.counters.rules.get(rule))
        .map_or(0, |r| r.packets)
}

/// One appliance: a pcap input replaying UDP to 10.2.0.2 forever, a null
/// uplink, a null tool port, and both controllers in its config.
fn appliance(fx: &Fixture, name: &str, controllers: [&str; 2]) -> (Running, PathBuf) {
    let dir = fx.dir.path();
    let id = fx.ca.client(dir, name);
    let frames: Vec<Vec<u8>> = (0..16u16)
        .map(|i| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, 1], [10, 2, 0, 2], 64)
                .udp(1000 + i, 7)
                .write(&mut out, &[1u8; 30])
                .expect("build");
            out
        })
        .collect();
    let pcap = dir.join(format!("{name}.pcap"));
    write_pcap(&pcap, &frames);
    let n = seq();
    let cfg = format!(
        "[appliance]\nname = \"{name}\"\n\n[[port]]\nname = \"tap0\"\ndevice = \"net_pcap_ha_in{n},infinite_rx=1,rx_pcap={}\"\nrole = \"input\"\n\n\
         [[port]]\nname = \"uplink\"\ndevice = \"net_null_ha_up{n}\"\nrole = \"uplink\"\n\n\
         [[port]]\nname = \"rec\"\ndevice = \"net_null_ha_rec{n},no-rx=1\"\nrole = \"tool\"\n\n\
         [[uplink]]\nport = \"uplink\"\naddress = \"192.0.2.1/24\"\nmac = \"02:00:00:00:00:01\"\n\n[[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0a\"\n\n\
         [controller]\naddresses = [\"{}\", \"{}\"]\nserver_name = \"localhost\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\npersist = \"{}\"\n\
         heartbeat_ms = 100\nbackoff_initial_ms = 50\nbackoff_max_ms = 400\n",
        pcap.display(),
        controllers[0],
        controllers[1],
        fx.ca.pem.display(),
        id.cert.display(),
        id.key.display(),
        dir.join(format!("{name}.persist.json")).display(),
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, cfg).expect("config");
    let sock = dir.join(format!("{name}.sock"));
    let s = Running::start(
        &eal(&unique(name), "0-1"),
        &[
            "--config",
            &file.display().to_string(),
            "--socket",
            &sock.display().to_string(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    (s, sock)
}

fn load_inventory(fx: &Fixture, text: &str) {
    let file = fx.dir.path().join("inventory.toml");
    std::fs::write(&file, text).expect("inventory");
    let out = fx.fleet_cli(&["inventory", file.to_str().unwrap(), "--by", "cmdb"]);
    assert!(
        out.status.success(),
        "inventory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fleet's history, as the operator's command prints it (JSON lines).
fn history(fx: &Fixture, appliance: &str) -> Vec<Value> {
    let out = fx.fleet_cli(&["history", "--appliance", appliance, "--json"]);
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect()
}

/// `kind` plus its version or state, for comparing orders.
fn step(e: &Value) -> String {
    let kind = e["kind"].as_str().unwrap_or("?");
    match kind {
        "push" | "ack" | "nack" => format!("{kind} {}", e["version"].as_str().unwrap_or("?")),
        "state" => format!("state {}", e["to"].as_str().unwrap_or("?")),
        "connected" => format!("connected to {}", e["controller"].as_str().unwrap_or("?")),
        other => other.to_owned(),
    }
}

/// `want` appears in `steps` in this order (other steps may come between).
fn in_order(steps: &[String], want: &[String]) -> bool {
    let mut it = steps.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

/// The history of `appliance` once it holds `want` in order (controllers
/// write it through a queue: the last events may still be on their way).
fn history_with(fx: &Fixture, appliance: &str, want: &[String]) -> Vec<String> {
    for _ in 0..600 {
        let steps: Vec<String> = history(fx, appliance).iter().map(step).collect();
        if in_order(&steps, want) {
            return steps;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let steps: Vec<String> = history(fx, appliance).iter().map(step).collect();
    panic!("{appliance}: the history never held {want:#?} in order; it holds {steps:#?}");
}

fn applies(s: &Running, tag: &str) -> usize {
    let pat = format!("policy \"{tag}\" loaded");
    s.seen.iter().filter(|l| l.contains(&pat)).count()
}

#[test]
fn the_fleet_survives_a_controller_and_an_etcd_member_and_follows_its_workloads() {
    let mut fx = Fixture::with_etcd("fleet-ha", 3);
    load_inventory(&fx, &inventory("10.2.0.1"));
    fx.write_policy("web", &web_policy("one"));
    fx.write_policy("base", &base_policy("base-one", "tap0"));
    fx.write_assign("[appliance]\ntap-a = \"web\"\ntap-b = \"base\"\n");
    let dir = fx.dir.path().to_path_buf();
    let ctl_a = Controller::spawn_as(&fx, "ctl-a", &dir.join("a.sock"), "127.0.0.1:0", &[], true);
    let ctl_b = Controller::spawn_as(&fx, "ctl-b", &dir.join("b.sock"), "127.0.0.1:0", &[], true);
    let (a_addr, b_addr) = (ctl_a.addr.clone(), ctl_b.addr.clone());

    // The lists name the controllers in opposite orders; each appliance
    // takes them in its own order (a hash of its name and the addresses,
    // whose ports the OS picks), so which controller holds which
    // appliance is found out, not assumed.
    let (mut app_a, sock_a) = appliance(&fx, "tap-a", [&a_addr, &b_addr]);
    let (mut app_b, _sock_b) = appliance(&fx, "tap-b", [&b_addr, &a_addr]);
    app_a.wait_for("policy \"one\" loaded", 60);
    app_b.wait_for("policy \"base-one\" loaded", 60);
    for name in ["tap-a", "tap-b"] {
        until(&ctl_a, name, "held, in sync, running", |v| {
            v.controller.is_some() && v.in_sync && v.state == "running"
        });
    }
    // The one holding tap-a is killed later: `holder`; `other` survives.
    let holder_id = ctl_a.show("tap-a").controller.unwrap();
    let (mut holder, other) = if holder_id == "ctl-a" {
        (ctl_a, ctl_b)
    } else {
        (ctl_b, ctl_a)
    };
    let other_id = if holder_id == "ctl-a" {
        "ctl-b"
    } else {
        "ctl-a"
    };
    // Each controller sees the whole fleet, and who holds what.
    until(
        &holder,
        "tap-a",
        "held by its holder, seen by itself",
        |v| v.controller.as_deref() == Some(holder_id.as_str()),
    );
    until(
        &other,
        "tap-a",
        "held by the holder, seen by the other",
        |v| v.connected && v.controller.as_deref() == Some(holder_id.as_str()),
    );

    // Workloads. web-1 is at 10.2.0.1 and the traffic goes to 10.2.0.2:
    // the web rule matches nothing yet.
    until(&holder, "tap-a", "counting traffic on rule rest", |v| {
        rule_hits(v, "rest") > 0
    });
    assert_eq!(rule_hits(&holder.show("tap-a"), "web"), 0);
    let web_v1 = holder.show("tap-a").acked.unwrap();
    // web-1 moves to 10.2.0.2: tap-a's policy is recompiled and pushed,
    // and the NOC gets the traffic.
    load_inventory(&fx, &inventory("10.2.0.2"));
    wait_sent(&sock_a, "noc");
    until(&holder, "tap-a", "acking the recompiled policy", |v| {
        v.in_sync && v.acked.as_deref() != Some(web_v1.as_str()) && rule_hits(v, "web") > 0
    });
    let web_v2 = holder.show("tap-a").acked.unwrap();
    // The other controller compiled the same version.
    for _ in 0..12_000 {
        if other.cli(&["policies"]).contains(&web_v2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(other.cli(&["policies"]).contains(&web_v2));
    // tap-b's policy does not select web-1: it was pushed nothing.
    let b_pushes = history(&fx, "tap-b")
        .iter()
        .filter(|e| e["kind"] == "push")
        .count();
    assert_eq!(b_pushes, 1, "tap-b was pushed only its first policy");

    // Failover: the holder of tap-a dies; a policy is imported while
    // tap-a moves to the other controller.
    holder.kill();
    fx.write_policy("web", &web_policy("two"));
    fx.import();
    app_a.wait_for("policy \"two\" loaded", 60);
    until(
        &other,
        "tap-a",
        "held by the other controller and in sync",
        |v| v.controller.as_deref() == Some(other_id) && v.in_sync,
    );
    let web_v3 = other.show("tap-a").acked.unwrap();

    // Store fault: one etcd member of three dies. A change still goes
    // through: tap-a gets "three", and tap-b a policy it cannot run.
    fx.etcd.kill(0);
    fx.write_policy("web", &web_policy("three"));
    fx.write_policy("base", &base_policy("base-two", "tap9"));
    fx.import();
    app_a.wait_for("policy \"three\" loaded", 60);
    app_b.wait_for("keeping policy \"base-one\"", 60);
    until(&other, "tap-a", "acking three", |v| {
        v.in_sync && v.acked.as_deref() != Some(web_v3.as_str())
    });
    let web_v4 = other.show("tap-a").acked.unwrap();
    until(&other, "tap-b", "recording the nack", |v| v.nack.is_some());
    let base_bad = other.show("tap-b").nack.unwrap().version;

    // The policy imported during the failover was applied exactly once,
    // and tap-b applied its first policy once and nothing since.
    assert_eq!(applies(&app_a, "two"), 1, "{}", app_a.seen.join("\n"));
    assert_eq!(applies(&app_a, "three"), 1);
    assert_eq!(applies(&app_b, "base-one"), 1, "{}", app_b.seen.join("\n"));

    // Forwarding never stopped and nothing was lost.
    app_a.signal("TERM");
    let (code, report) = app_a.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    let (rx, fwd) = (total(&report, "rx"), total(&report, "forwarded"));
    // Before the first policy arrives the appliance runs an empty one:
    // those packets are filtered; every other one was forwarded.
    assert_eq!(rx, fwd + total(&report, "filtered"), "{report}");
    assert!(fwd > 0 && dest_tx(&report, "noc") > 0, "{report}");
    assert_eq!(dest_tx(&report, "recorder"), fwd, "{report}");
    app_b.signal("TERM");
    let (code, report) = app_b.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);

    // The history, in order.
    let want: Vec<String> = [
        format!("connected to {holder_id}"),
        format!("push {web_v1}"),
        format!("ack {web_v1}"),
        format!("push {web_v2}"),
        format!("ack {web_v2}"),
        format!("connected to {other_id}"),
        format!("push {web_v3}"),
        format!("ack {web_v3}"),
        format!("push {web_v4}"),
        format!("ack {web_v4}"),
    ]
    .into();
    let a_steps = history_with(&fx, "tap-a", &want);
    // Its heartbeats said "running" to each controller that held it.
    let running = [
        format!("connected to {holder_id}"),
        "state running".to_owned(),
        format!("connected to {other_id}"),
        "state running".to_owned(),
    ];
    assert!(in_order(&a_steps, &running), "tap-a: {a_steps:#?}");
    // Exactly one push of the version imported during the failover.
    let n = a_steps
        .iter()
        .filter(|s| **s == format!("push {web_v3}"))
        .count();
    assert_eq!(n, 1, "{a_steps:#?}");
    // tap-b was held by the other controller all along, or moved to it.
    let want: Vec<String> = [
        format!("connected to {other_id}"),
        "state running".to_owned(),
        format!("push {base_bad}"),
        format!("nack {base_bad}"),
    ]
    .into();
    history_with(&fx, "tap-b", &want);
    // The operator's view of it.
    let out = fx.fleet_cli(&["history", "--appliance", "tap-b", "--since", "1h"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("tap-b: nacked {base_bad}: rule[0].in_port")),
        "{text}"
    );

    // Every imported version of web, with who imported it and when.
    let out = fx.fleet_cli(&["history", "--json"]);
    let imports: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "policy" && e["policy"] == "web")
        .collect();
    assert_eq!(imports.len(), 3, "{imports:#?}");
    assert!(
        imports
            .iter()
            .all(|e| e["by"] == "test" && e["at_ms"].as_u64().is_some_and(|t| t > 0)),
        "{imports:#?}"
    );

    // The fleet's policies as a directory again: what was imported last.
    let exported = dir.join("exported");
    let out = fx.fleet_cli(&["export", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["web.toml", "base.toml", "assign.toml"] {
        let read = |d: &std::path::Path| std::fs::read_to_string(d.join(file)).unwrap();
        assert_eq!(read(&exported), read(&fx.policies), "{file}");
    }
}
