//! Policy reload under traffic: SIGHUP swaps the policy while packets flow,
//! without losing or miscounting one; a broken policy leaves the old one.

mod common;

use common::*;
use etherparse::PacketBuilder;

const CONFIG: &str = r#"
[[port]]
name = "tap0"
device = "net_pcap_reload_in,rx_pcap=@IN@,infinite_rx=1"
role = "input"

[[port]]
name = "uplink"
device = "net_null_reload_up"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"
"#;

fn policy(version: &str, vni: u32) -> String {
    format!(
        "version = \"{version}\"\n[[destination]]\nname = \"vni{vni}\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = {vni}\ndedup = false\n\n[[rule]]\nname = \"all\"\nto = [\"vni{vni}\"]\n"
    )
}

#[test]
fn sighup_swaps_the_policy_under_traffic_and_refuses_a_broken_one() {
    let dir = tmpdir("reload");
    let frames: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, (i % 8) as u8], [10, 2, 0, 1], 64)
                .udp(1000 + i as u16, 7)
                .write(&mut out, &i.to_be_bytes())
                .expect("build");
            out
        })
        .collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    let cfg = CONFIG.replace("@IN@", &dir.join("in.pcap").display().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    let pol = dir.join("p.toml");
    std::fs::write(&pol, policy("A", 1)).expect("policy");

    let sock = dir.join("s.sock");
    let mut s = Running::start(
        &eal(&unique("reload"), "0-1"),
        &[
            "--config",
            &dir.join("a.toml").display().to_string(),
            "--policy",
            &pol.display().to_string(),
            "--socket",
            &sock.display().to_string(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    s.wait_for("control socket", 30);
    // Each policy must carry traffic before the next swap.
    wait_sent(&sock, "vni1");

    std::fs::write(&pol, policy("B", 2)).expect("policy");
    s.signal("HUP");
    s.wait_for("policy \"B\" loaded", 30);
    wait_sent(&sock, "vni2");

    std::fs::write(&pol, "[[rule]]\nname = \"broken\"\nto = [\"nowhere\"]\n").expect("policy");
    s.signal("HUP");
    let refusal = s.wait_for("keeping policy \"B\"", 30);
    assert!(
        refusal.contains("rule[0].to[0]: no destination named \"nowhere\""),
        "{refusal}"
    );

    s.signal("TERM");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    let rx = total(&report, "rx");
    let fwd = total(&report, "forwarded");
    assert!(rx > 0, "{report}");
    assert_eq!(
        fwd, rx,
        "every packet forwarded across both swaps:\n{report}"
    );
    let (a, b) = (dest_tx(&report, "vni1"), dest_tx(&report, "vni2"));
    assert!(a > 0 && b > 0, "both policies carried traffic: {a} {b}");
    assert_eq!(a + b, fwd, "each packet went out under exactly one policy");
    let _ = std::fs::remove_dir_all(dir);
}
