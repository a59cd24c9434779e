//! Several uplinks: two `net_tap` uplinks on two subnets, inside a network
//! namespace made here (Sluice runs in it, so its tap interfaces appear
//! there only). The kernel side of each tap holds the receivers' and the
//! gateways' addresses and answers Sluice's ARP itself: real neighbours.
//! Four tunnels: one on each uplink's subnet, one by uplink B's static
//! route, one by uplink A's gateway (the default route). tcpdump on each
//! tap and tshark show each destination's tunnels on its uplink only, with
//! that uplink's source MAC and address and its next hop's MAC; arping
//! from each side shows Sluice answers for that uplink's address and not
//! for the other's.

mod common;

use std::path::Path;

use common::*;
use ctrlplane::cli::socket::Client;
use etherparse::PacketBuilder;
use sluice_testkit::netns::ifname;

/// Sluice's MACs and addresses on its two uplinks.
const MAC_A: &str = "02:00:00:00:a0:01";
const MAC_B: &str = "02:00:00:00:b0:01";
const SLUICE_A: &str = "192.0.2.1";
const SLUICE_B: &str = "198.51.100.1";

const CONFIG: &str = r#"
[[port]]
name = "tap0"
device = "net_pcap_upi@N@,rx_pcap=@IN@"
role = "input"

[[port]]
name = "up-a"
device = "net_tap_upa@N@,iface=@TAPA@"
role = "uplink"

[[port]]
name = "up-b"
device = "net_tap_upb@N@,iface=@TAPB@"
role = "uplink"

[[uplink]]
port = "up-a"
address = "192.0.2.1/24"
gateway = "192.0.2.254"
mac = "02:00:00:00:a0:01"

[[uplink]]
port = "up-b"
address = "198.51.100.1/24"
mac = "02:00:00:00:b0:01"
routes = ["203.0.113.0/24 via 198.51.100.254"]

[dedup]
table_entries = 4096
"#;

/// Destinations, the inner subnet their rule takes, their VNI, remote,
/// the uplink they must leave by and the next hop whose MAC they carry.
const DESTS: [(&str, &str, u32, &str, char, &str); 4] = [
    (
        "near-a",
        "10.1.0.0/16",
        101,
        "192.0.2.10",
        'a',
        "192.0.2.10",
    ),
    (
        "near-b",
        "10.2.0.0/16",
        102,
        "198.51.100.10",
        'b',
        "198.51.100.10",
    ),
    (
        "routed",
        "10.3.0.0/16",
        103,
        "203.0.113.5",
        'b',
        "198.51.100.254",
    ),
    (
        "default",
        "10.4.0.0/16",
        104,
        "100.64.0.9",
        'a',
        "192.0.2.254",
    ),
];

/// Frames per destination.
const EACH: usize = 10;

fn policy() -> String {
    let mut p = String::new();
    for (name, _, vni, remote, _, _) in DESTS {
        p.push_str(&format!(
            "[[destination]]\nname = \"{name}\"\ntunnel = \"vxlan\"\nremote = \"{remote}\"\nvni = {vni}\ndedup = false\n\n"
        ));
    }
    for (name, dst, ..) in DESTS {
        p.push_str(&format!(
            "[[rule]]\nname = \"to-{name}\"\ndst = \"{dst}\"\nto = [\"{name}\"]\n\n"
        ));
    }
    p
}

/// `EACH` UDP frames into each destination's inner subnet, interleaved.
fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..EACH {
        for d in 1..=DESTS.len() as u8 {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, d], [2, 0, 0, 0, 2, d])
                .ipv4([10, 9, 0, 1], [10, d, 0, i as u8], 64)
                .udp(4000 + i as u16, 7)
                .write(&mut f, &[d; 40])
                .expect("build");
            out.push(f);
        }
    }
    out
}

/// The kernel's MAC on `tap` (also the DPDK port's: net_tap gives both
/// ends one; Sluice's tunnels and ARP use `[[uplink]] mac`).
fn link_mac(ns: &Netns, tap: &str) -> String {
    let link = ns.ip_output(&["link", "show", tap]);
    link.split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no MAC for {tap}: {link}"))
        .to_owned()
}

/// Whether `arping` on `tap` for `ip` gets an answer, and from which MAC.
fn arping(ns: &Netns, tap: &str, ip: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "arping", "-c", "2", "-w", "2"])
        .args(["-I", tap, ip])
        .output()
        .expect("arping (package iputils-arping: run `make setup`)");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    // "Unicast reply from 192.0.2.1 [02:00:00:00:A0:01]  0.6ms"
    text.lines()
        .find(|l| l.contains("reply from"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|r| r.split(']').next())
        .map(str::to_owned)
}

#[test]
fn each_tunnel_leaves_by_the_uplink_its_route_chooses() {
    let ns = Netns::quiet("ns-up");
    let dir = tmpdir("uplinks");
    write_pcap(&dir.join("in.pcap"), &frames());
    let n = seq();
    let tap_a = ifname("ula");
    let tap_b = ifname("ulb");
    let p = |x: &Path| x.display().to_string();
    let cfg = CONFIG
        .replace("@N@", &n.to_string())
        .replace("@IN@", &p(&dir.join("in.pcap")))
        .replace("@TAPA@", &tap_a)
        .replace("@TAPB@", &tap_b);
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), policy()).expect("policy");
    let sock = dir.join("s.sock");
    // Stopped until the kernel side is up and every next hop resolved.
    let mut s = Running::start_in(
        Some(ns.name()),
        &eal(&unique("uplinks"), "0-1"),
        &[
            "--config",
            &p(&dir.join("a.toml")),
            "--policy",
            &p(&dir.join("p.toml")),
            "--socket",
            &p(&sock),
            "--metrics",
            "127.0.0.1:0",
            "--resolve-timeout",
            "0",
            "--stopped",
            "--exit-when-idle",
            "300",
        ],
    );
    s.wait_for("control socket", 60);
    let mut c = Client::connect(&sock).expect("console");

    // The kernel side: each tap holds its subnet's receiver and next hop.
    let x = |args: &[&str]| ns.ip(args);
    for (tap, addrs) in [
        (&tap_a, ["192.0.2.10/24", "192.0.2.254/24"]),
        (&tap_b, ["198.51.100.10/24", "198.51.100.254/24"]),
    ] {
        for a in addrs {
            x(&["addr", "add", a, "dev", tap]);
        }
        x(&["link", "set", tap, "up"]);
    }
    let kernel_a = link_mac(&ns, &tap_a);
    let kernel_b = link_mac(&ns, &tap_b);
    assert_ne!(kernel_a, kernel_b);

    // Each next hop is resolved on its own uplink, by the kernel's answer.
    let arp = wait_console(&mut c, "show arp", 30, |t| {
        t.matches("reachable").count() == DESTS.len()
    });
    for (_, _, _, _, up, hop) in DESTS {
        let (tap_mac, name) = if up == 'a' {
            (&kernel_a, "up-a")
        } else {
            (&kernel_b, "up-b")
        };
        let row = arp
            .lines()
            .find(|l| l.split_whitespace().next() == Some(hop))
            .unwrap_or_else(|| panic!("no {hop} in:\n{arp}"));
        assert!(
            row.contains(tap_mac.as_str()) && row.trim_end().ends_with(name),
            "{hop} on {name} with {tap_mac}: {row}"
        );
    }
    for (name, ip, mac) in [("up-a", SLUICE_A, MAC_A), ("up-b", SLUICE_B, MAC_B)] {
        assert!(
            arp.contains(&format!("uplink {name:?} (port"))
                && arp.contains(&format!("answers for {ip} with {mac}")),
            "{arp}"
        );
    }
    let tunnels = c.command("show tunnel").expect("tunnel");
    for (name, _, _, _, up, hop) in DESTS {
        let block = tunnels
            .split("  destination ")
            .find(|b| b.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{tunnels}"));
        assert!(
            block.contains(&format!("uplink: up-{up}  next hop: {hop}"))
                && block.contains("template: ready"),
            "{block}"
        );
    }

    // Sluice answers ARP for each uplink's own address on that uplink only.
    assert_eq!(arping(&ns, &tap_a, SLUICE_A).as_deref(), Some(MAC_A));
    assert_eq!(arping(&ns, &tap_b, SLUICE_B).as_deref(), Some(MAC_B));
    assert_eq!(
        arping(&ns, &tap_a, SLUICE_B),
        None,
        "B's address asked on A"
    );
    assert_eq!(
        arping(&ns, &tap_b, SLUICE_A),
        None,
        "A's address asked on B"
    );

    // The tunnels, captured where the kernel receives them.
    let per_uplink = |u: char| DESTS.iter().filter(|d| d.4 == u).count() * EACH;
    let (pcap_a, pcap_b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    let vxlan = ["-Q", "in", "udp", "port", "4789"];
    let mut cap_a = capture_in(ns.name(), &tap_a, &vxlan, &pcap_a, per_uplink('a'));
    let mut cap_b = capture_in(ns.name(), &tap_b, &vxlan, &pcap_b, per_uplink('b'));
    assert!(c.command("start").expect("start").contains("forwarding"));
    wait_capture(&mut cap_a, "uplink A's tunnels never all arrived");
    wait_capture(&mut cap_b, "uplink B's tunnels never all arrived");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");

    // Every frame on an uplink is one of its destinations', from the
    // uplink's MAC and address to the next hop's MAC and the remote.
    for (pcap, up, ours, ip, kernel) in [
        (&pcap_a, 'a', MAC_A, SLUICE_A, &kernel_a),
        (&pcap_b, 'b', MAC_B, SLUICE_B, &kernel_b),
    ] {
        let rows = tshark_fields(
            pcap,
            "vxlan",
            &["eth.src", "eth.dst", "ip.src", "ip.dst", "vxlan.vni"],
        );
        assert_eq!(rows.len(), per_uplink(up), "uplink {up}");
        for (_, _, vni, remote, want, _) in DESTS {
            let here: Vec<&Vec<String>> = rows.iter().filter(|r| r[4] == vni.to_string()).collect();
            let expected = if want == up { EACH } else { 0 };
            assert_eq!(here.len(), expected, "VNI {vni} on uplink {up}");
            for r in here {
                // The outer header's (tshark lists the inner frame's after it).
                let outer: Vec<&str> = r[..4]
                    .iter()
                    .map(|f| f.split(',').next().unwrap_or_default())
                    .collect();
                assert_eq!(outer, [ours, kernel.as_str(), ip, remote], "VNI {vni}");
            }
        }
    }

    // Every packet counted once; each uplink sent its destinations' copies.
    assert_accounting(&report);
    let all = (DESTS.len() * EACH) as u64;
    assert_eq!(total(&report, "forwarded"), all, "{report}");
    for (name, ..) in DESTS {
        assert_eq!(dest_tx(&report, name), EACH as u64, "{name}: {report}");
    }
    for (name, up) in [("up-a", 'a'), ("up-b", 'b')] {
        let row = report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no uplink {name}:\n{report}"));
        let v: Vec<u64> = row
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().expect("count"))
            .collect();
        assert_eq!(v[0], per_uplink(up) as u64, "{name} tx_packets: {report}");
        assert_eq!(v[2], 0, "{name} dropped_tx_full: {report}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
