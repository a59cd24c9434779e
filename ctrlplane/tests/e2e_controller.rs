//! The appliance under a real `sluice-controller` over real mutual TLS:
//! it connects, gets its policy, applies and acks it; a new policy pushed
//! under traffic switches the dataplane without losing a packet; a policy
//! it cannot run is nacked with its errors while the old one keeps
//! forwarding; restarted with no controller, it comes up on the policy it
//! last acked.

mod common;
mod controller_support;

use std::path::Path;

use common::*;
use controller_support::{Controller, Fixture};
use etherparse::PacketBuilder;

fn policy(version_note: &str, dest: &str, vni: u32) -> String {
    format!(
        "version = \"{version_note}\"\n[[destination]]\nname = \"{dest}\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = {vni}\ndedup = false\n\n\
         [[destination]]\nname = \"recorder\"\nport = \"rec\"\ndedup = false\n\n[[rule]]\nname = \"all\"\nto = [\"{dest}\", \"recorder\"]\n"
    )
}

/// Polls the controller's view of `name` until `ok` holds (bounded).
fn until(
    ctl: &Controller,
    name: &str,
    what: &str,
    ok: impl Fn(&sluice_controller::registry::ApplianceView) -> bool,
) {
    for _ in 0..20_000 {
        if ok(&ctl.show(name)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("controller never saw {name} {what}: {:?}", ctl.show(name));
}

#[test]
fn appliance_follows_its_controller() {
    let fx = Fixture::new("e2e-ctl");
    fx.write_policy("default", &policy("one", "noc-a", 1));
    let mut ctl = fx.controller();
    let dir = fx.dir.path();
    let id = fx.ca.client(dir, "sluice-e2e");
    let frames: Vec<Vec<u8>> = (0..32u32)
        .map(|i| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
                .udp(1000 + i as u16, 7)
                .write(&mut out, &[1u8; 30])
                .expect("build");
            out
        })
        .collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    let persist = dir.join("persist.json");
    let cfg = format!(
        "[appliance]\nname = \"sluice-e2e\"\n\n[[port]]\nname = \"tap0\"\ndevice = \"net_pcap_ctl_in{n},rx_pcap={}\"\nrole = \"input\"\n\n\
         [[port]]\nname = \"uplink\"\ndevice = \"net_null_ctl_up{n}\"\nrole = \"uplink\"\n\n\
         [[port]]\nname = \"rec\"\ndevice = \"net_null_ctl_rec{n},no-rx=1\"\nrole = \"tool\"\n\n\
         [[uplink]]\nport = \"uplink\"\naddress = \"192.0.2.1/24\"\nmac = \"02:00:00:00:00:01\"\n\n[[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0a\"\n\n\
         [dedup]\ntable_entries = 4096\n\n\
         [controller]\naddresses = [\"{}\"]\nserver_name = \"localhost\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\npersist = \"{}\"\nheartbeat_ms = 100\nbackoff_initial_ms = 50\nbackoff_max_ms = 400\n",
        dir.join("in.pcap").display(),
        ctl.addr,
        fx.ca.pem.display(),
        id.cert.display(),
        id.key.display(),
        persist.display(),
        n = seq()
    )
    .replace("rx_pcap=", "infinite_rx=1,rx_pcap=");
    std::fs::write(dir.join("a.toml"), &cfg).expect("config");
    let a = dir.join("a.toml").display().to_string();
    let sock = dir.join("s.sock").display().to_string();

    let mut s = Running::start(
        &eal(&unique("ctl"), "0-1"),
        &[
            "--config",
            &a,
            "--socket",
            &sock,
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    s.wait_for("connected", 60);
    s.wait_for("policy \"one\" loaded", 60);
    wait_sent(Path::new(&sock), "noc-a");
    until(&ctl, "sluice-e2e", "in sync", |v| {
        v.in_sync && v.acked.is_some()
    });
    until(&ctl, "sluice-e2e", "running in a heartbeat", |v| {
        v.state == "running"
    });
    // The heartbeat carries what `show policy` and `show port stats` count
    // per rule and per tool port.
    until(&ctl, "sluice-e2e", "rule hits and tool port sends", |v| {
        v.heartbeat.as_ref().is_some_and(|h| {
            let c = &h.counters;
            c.rules
                .get("all")
                .is_some_and(|r| r.packets > 0 && r.bytes > 0)
                && c.tool_ports.get("rec").is_some_and(|t| t.tx_packets > 0)
        })
    });

    // A new policy under traffic.
    let first = ctl.show("sluice-e2e").acked;
    fx.write_policy("default", &policy("two", "noc-b", 2));
    // The operator's push (the directory poll is only a backstop).
    fx.import();
    s.wait_for("policy \"two\" loaded", 60);
    wait_sent(Path::new(&sock), "noc-b");
    until(&ctl, "sluice-e2e", "acking the new version", |v| {
        v.in_sync && v.acked != first
    });

    // A policy this appliance cannot run: nacked with its errors, the old
    // one keeps forwarding.
    fx.write_policy(
        "default",
        "version = \"three\"\n[[destination]]\nname = \"x\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = 3\n\n[[rule]]\nname = \"r\"\nin_port = \"tap9\"\nto = [\"x\"]\n",
    );
    fx.import();
    s.wait_for("keeping policy \"two\"", 60);
    until(&ctl, "sluice-e2e", "recording the nack", |v| {
        v.nack.is_some()
    });
    let nack = format!("{:?}", ctl.show("sluice-e2e").nack);
    assert!(
        nack.contains("rule[0].in_port: no input port named \\\"tap9\\\""),
        "{nack}"
    );

    s.signal("TERM");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    let fwd = total(&report, "forwarded");
    let (a_tx, b_tx) = (dest_tx(&report, "noc-a"), dest_tx(&report, "noc-b"));
    assert!(
        a_tx > 0 && b_tx > 0,
        "both versions carried traffic: {a_tx} {b_tx}"
    );
    assert_eq!(
        a_tx + b_tx,
        fwd,
        "no packet lost across the switch:\n{report}"
    );
    // Before the controller's first policy the appliance runs an empty one:
    // those packets are filtered, none is lost.
    assert_eq!(
        total(&report, "rx"),
        fwd + total(&report, "filtered"),
        "{report}"
    );

    // No controller: the appliance starts on the policy it last acked.
    ctl.kill();
    let mut s = Running::start(
        &eal(&unique("ctl2"), "0-1"),
        &[
            "--config",
            &a,
            "--socket",
            &sock,
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    s.wait_for("starting on the persisted controller policy", 60);
    s.wait_for("running:", 60);
    s.wait_for("controller session down", 60);
    assert!(Path::new(&persist).exists());
    // The session can fail before the input's first packet is read.
    wait_sent(Path::new(&sock), "noc-b");
    s.signal("TERM");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert!(
        dest_tx(&report, "noc-b") > 0,
        "forwards on the persisted policy:\n{report}"
    );
}
