//! The example configs and policy in `examples/` stay valid, and each
//! example runs: started with its devices replaced by virtual ones, fed a
//! sample capture, it exits cleanly with every packet accounted for.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ctrlplane::config::Config;
use ctrlplane::policy::{self, Context};
use etherparse::PacketBuilder;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn example_configs_and_policy_are_valid() {
    let tap = Config::load(&example("tap-aggregation.toml")).expect("tap-aggregation.toml");
    let decap = Config::load(&example("decap-frontend.toml")).expect("decap-frontend.toml");
    assert!(decap.uplinks.is_empty() && decap.decap_tool_port().is_some());
    assert!(decap.input_ports().all(|p| p.address.is_some()));
    let pdump = Config::load(&example("pdump-tap.toml")).expect("pdump-tap.toml");
    assert_eq!(pdump.pdump_inputs().count(), 2);
    assert_eq!(pdump.pdump.map(|p| p.file_prefix), Some("vswitch".into()));
    let idle = Config::load(&example("idle.toml")).expect("idle.toml");
    assert_eq!(idle.workers.idle, ctrlplane::config::IdleMode::Adaptive);
    let flows = Config::load(&example("flow-telemetry.toml")).expect("flow-telemetry.toml");
    assert_eq!(flows.flows.map(|f| f.collectors.len()), Some(2));
    assert_eq!(flows.intake.map(|i| i.ports()), Some([6343, 2055]));
    assert_eq!(flows.stream.map(|s| s.replicas), Some(3));
    let vhost = Config::load(&example("vhost-tap.toml")).expect("vhost-tap.toml");
    assert!(vhost
        .input_ports()
        .all(|p| p.device.driver() == Some("net_vhost")));
    let ctx = Context {
        ports: tap
            .input_ports()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect(),
        tools: tap.tool_names(),
        routes: Some(tap.routes()),
    };
    let text = std::fs::read_to_string(example("policy.toml")).expect("policy.toml");
    let (model, compiled) = policy::load_text(&text, "policy.toml", &ctx).expect("valid policy");
    assert_eq!(compiled.rule_names, ["no-ssh", "no-backups", "web", "rest"]);
    assert_eq!(model.destinations.len(), 2);

    // The packet broker: four tool ports and a group of three weighted
    // members; its policy sends one rule to the group, a tool and a tunnel.
    let broker = Config::load(&example("tool-ports.toml")).expect("tool-ports.toml");
    assert_eq!(broker.tool_ports().count(), 4);
    assert_eq!(broker.tool_groups.len(), 1);
    let weights: Vec<u32> = broker.tool_groups[0]
        .members
        .iter()
        .map(|m| m.weight)
        .collect();
    assert_eq!(weights, [1, 1, 2]);
    let ctx = Context {
        ports: broker
            .input_ports()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect(),
        tools: broker.tool_names(),
        routes: Some(broker.routes()),
    };
    let text = std::fs::read_to_string(example("tool-ports-policy.toml")).expect("policy");
    let (_, compiled) =
        policy::load_text(&text, "tool-ports-policy.toml", &ctx).expect("valid policy");
    assert_eq!(
        compiled.rule_names,
        ["no-backups", "web", "web-replies", "rest"]
    );
    let tools = compiled
        .destinations
        .iter()
        .filter(|d| d.tunnel().is_none())
        .count();
    assert_eq!((compiled.destinations.len(), tools), (3, 2));
}

/// Every example config, as shipped except for its devices.
const EXAMPLES: [&str; 7] = [
    "tap-aggregation.toml",
    "decap-frontend.toml",
    "pdump-tap.toml",
    "vhost-tap.toml",
    "tool-ports.toml",
    "sidecar-small.toml",
    "idle.toml",
];

/// The policy an example runs with: its own (`<name>-policy.toml`) where
/// it has one, `policy.toml` otherwise.
fn policy_of(name: &str) -> PathBuf {
    let own = example(&name.replace(".toml", "-policy.toml"));
    if own.exists() {
        own
    } else {
        example("policy.toml")
    }
}

/// Each example starts with its devices replaced by virtual ones, takes a
/// sample capture on every input port, and exits on its own when idle with
/// status 0 and `rx = Σ terminals`; rx and what went to the main lcore are
/// every frame of the capture on every input port. With an uplink, the
/// example's policy is loaded too (see [`policy_of`]).
///
/// What is replaced, and why:
/// - every `device` (PCI addresses, `net_tap`, `net_vhost`, `net_pcap` on a
///   live interface) becomes a `net_pcap` on files: no NIC, no namespace,
///   no virtio peer on a test machine. Inputs read the capture; uplink and
///   tool ports write a file.
/// - pdump inputs (`pdump = ...`, and their `capture` and `queues`) become
///   such device inputs, and the `[pdump]` section goes: pdump attaches to
///   a running primary process (the vswitch), which a test does not have.
/// - a port's `mtu` goes: net_pcap cannot set one. The `[[uplink]]` MTU,
///   which encap works to, stays.
/// - nothing else: names, roles, modes, addresses, pool and table sizes
///   stay as shipped, so a key an example uses that the appliance stops
///   accepting fails here.
#[test]
fn every_example_runs_on_virtual_devices() {
    let dir = tmpdir("examples");
    let capture = dir.join("in.pcap");
    let frames = sample_capture();
    write_pcap(&capture, &frames);
    for name in EXAMPLES {
        let text = std::fs::read_to_string(example(name)).expect("example");
        let (config, inputs, uplink) = virtualize(&text, name, &capture, &dir);
        let cfg = dir.join(name);
        std::fs::write(&cfg, config).expect("write config");
        let cfg = cfg.display().to_string();
        let policy = policy_of(name).display().to_string();
        let mut args = vec!["--config", &cfg, "--exit-when-idle", "300"];
        if uplink {
            args.extend(["--policy", &policy]);
        }
        let out = sluice(&eal(&unique("example"), "0-1"), &args);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} did not exit cleanly ({}):\n{report}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_accounting(&report);
        // What goes to the main lcore (the ARP request on a port with an
        // address of its own) is counted apart from `rx`, and only shown
        // when there is some.
        let apart: u64 = ["exceptions", "exceptions_dropped", "uplink_ignored"]
            .into_iter()
            .map(|c| {
                if report.contains(c) {
                    total(&report, c)
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(
            total(&report, "rx") + apart,
            (inputs * frames.len()) as u64,
            "{name}: every frame on every input port:\n{report}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example's config with its devices replaced (see
/// [`every_example_runs_on_virtual_devices`]), its number of input ports,
/// and whether it has an uplink.
fn virtualize(text: &str, name: &str, capture: &Path, dir: &Path) -> (String, usize, bool) {
    let mut doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    doc.remove("pdump");
    let stem = name.trim_end_matches(".toml").replace('-', "_");
    let mut inputs = 0;
    let mut uplink = false;
    let ports = doc
        .get_mut("port")
        .and_then(toml::Value::as_array_mut)
        .unwrap_or_else(|| panic!("{name}: no [[port]]"));
    for (i, port) in ports.iter_mut().enumerate() {
        let port = port.as_table_mut().expect("[[port]] is a table");
        let role = port
            .get("role")
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("{name}: port {i} has no role"))
            .to_string();
        for key in ["pdump", "capture", "queues", "mtu"] {
            port.remove(key);
        }
        let device = match role.as_str() {
            "input" => {
                inputs += 1;
                format!("net_pcap_{stem}{i},rx_pcap={}", capture.display())
            }
            other => {
                uplink |= other == "uplink";
                let out = dir.join(format!("{stem}-{other}.pcap"));
                format!("net_pcap_{stem}{i},tx_pcap={}", out.display())
            }
        };
        port.insert("device".into(), device.into());
    }
    (toml::to_string(&doc).expect("config"), inputs, uplink)
}

/// What a broker meets: TCP to the web farm, SSH and backups the policy
/// drops, DNS, ARP, and VXLAN to the decap front end's address (UDP 4789
/// and Linux's 8472) carrying such frames.
fn sample_capture() -> Vec<Vec<u8>> {
    let plain: Vec<Vec<u8>> = [
        (6, [10, 2, 0, 5], 80),
        (6, [10, 2, 0, 6], 443),
        (6, [10, 3, 0, 1], 22),
        (6, [10, 3, 0, 2], 9101),
        (17, [10, 9, 9, 9], 53),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (proto, dst, port))| ip_frame(proto, [10, 1, 0, 1], dst, 40000 + i as u16, port))
    .collect();
    let mut frames = plain.clone();
    frames.push(arp_request());
    for (i, inner) in plain.iter().enumerate() {
        let port = if i % 2 == 0 { 4789 } else { 8472 };
        frames.push(vxlan(inner, port, 100 + i as u32));
    }
    frames
}

fn ip_frame(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2]).ipv4(src, dst, 64);
    let payload = [0x5a; 64];
    let mut out = Vec::new();
    match proto {
        6 => b.tcp(sport, dport, 1, 1000).write(&mut out, &payload),
        _ => b.udp(sport, dport).write(&mut out, &payload),
    }
    .expect("build frame");
    out
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    let arp = dataplane::wire::arp::Repr {
        operation: dataplane::wire::arp::Operation::Request,
        sender_hw: dataplane::wire::ethernet::Address([2, 0, 0, 0, 1, 1]),
        sender_ip: [10, 1, 0, 1].into(),
        target_hw: dataplane::wire::ethernet::Address([0; 6]),
        target_ip: [10, 1, 0, 254].into(),
    };
    arp.emit(&mut f[14..]).expect("ARP fits");
    f
}

/// `inner` in VXLAN (VNI `vni`) to the decap example's address.
fn vxlan(inner: &[u8], port: u16, vni: u32) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 3, 3], [2, 0, 0, 0, 4, 4])
        .ipv4([203, 0, 113, 9], [198, 51, 100, 7], 64)
        .udp(50000, port)
        .write(&mut out, &payload)
        .expect("build VXLAN");
    out
}
