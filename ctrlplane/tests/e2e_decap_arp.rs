//! A decap input's own address: a Linux VXLAN device sends its tunnels to
//! Sluice's address on a `net_tap` decap input. The kernel has to resolve
//! that address by ARP before it sends anything, so the inner frames reach
//! the tool port only if Sluice answers. Everything lives in a network
//! namespace made and removed here.

mod common;

use std::path::Path;

use common::*;
use ctrlplane::cli::socket::Client;

const SLUICE_IP: &str = "192.0.2.50";

const CONFIG: &str = r#"
[[port]]
name = "span"
device = "net_tap_da@N@,iface=@TAP@"
role = "input"
mode = "decap"
address = "192.0.2.50/24"

[[port]]
name = "tool"
device = "net_pcap_dt@N@,tx_pcap=@TOOL@"
role = "tool"

[dedup]
table_entries = 4096
"#;

#[test]
fn a_vxlan_sender_resolves_the_decap_address_by_arp_and_its_frames_come_out() {
    const FRAMES: usize = 5;
    let ns = Netns::quiet("ns-da");

    let dir = tmpdir("decap-arp");
    let tool = dir.join("tool.pcap");
    let n = seq();
    let tap = format!("slda{}x{n}", std::process::id() % 100_000);
    let cfg = CONFIG
        .replace("@N@", &n.to_string())
        .replace("@TAP@", &tap)
        .replace("@TOOL@", &tool.display().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    let sock = dir.join("s.sock");
    let p = |x: &Path| x.display().to_string();
    // Sluice runs in the namespace: its tap interface appears there only.
    let mut s = Running::start_in(
        Some(&ns.0),
        &eal(&unique("decap-arp"), "0-1"),
        &[
            "--config",
            &p(&dir.join("a.toml")),
            "--socket",
            &p(&sock),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    s.wait_for("control socket", 60);
    let mut c = Client::connect(&sock).expect("console");
    let info = c.command("show port info 0").expect("info");
    let mac = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("MAC address: "))
        .unwrap_or_else(|| panic!("no MAC in:\n{info}"))
        .to_ascii_lowercase();

    // The kernel side of the tap is the switch: a VXLAN device whose
    // remote is Sluice's address, and a static neighbour inside the tunnel
    // so only the outer address needs resolving.
    let x = |args: &[&str]| ns.ip(args);
    x(&["addr", "add", "192.0.2.1/24", "dev", &tap]);
    x(&["link", "set", &tap, "up"]);
    let vx = format!("slvx{n}");
    x(&[
        "link",
        "add",
        &vx,
        "type",
        "vxlan",
        "id",
        "42",
        "remote",
        SLUICE_IP,
        "local",
        "192.0.2.1",
        "dstport",
        "4789",
        "dev",
        &tap,
    ]);
    x(&["addr", "add", "10.9.0.1/24", "dev", &vx]);
    x(&["link", "set", &vx, "up"]);
    x(&[
        "neigh",
        "add",
        "10.9.0.2",
        "lladdr",
        "02:00:00:00:09:02",
        "dev",
        &vx,
        "nud",
        "permanent",
    ]);
    let send = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for i in range({FRAMES}):\n    s.sendto(b'sluice-arp-%d' % i, ('10.9.0.2', 9))\n"
    );
    ns.exec("python3", &["-c", &send]);

    // The datagrams wait in the kernel until 192.0.2.50 resolves; then
    // they leave as VXLAN and Sluice strips it.
    // (decapsulated is only printed once it is not zero)
    wait_console(&mut c, "show fwd stats all", 30, |t| {
        t.contains("decapsulated") && total(t, "decapsulated") == FRAMES as u64
    });
    let arp = c.command("show arp").expect("arp");
    assert!(
        arp.contains(&format!("answers for {SLUICE_IP} with {mac}"))
            && !arp.contains("0 answer(s) sent"),
        "{arp}"
    );
    let neigh = ns.ip_output(&["neigh", "show", SLUICE_IP, "dev", &tap]);
    assert!(
        neigh.contains(&format!("lladdr {mac}")),
        "the kernel learnt Sluice's MAC by ARP: {neigh}"
    );

    // SIGINT, not `quit`: the console's answer to quit races the exit.
    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "forwarded"), FRAMES as u64, "{report}");
    assert_eq!(total(&report, "decap_errors"), 0, "{report}");
    assert!(total(&report, "exceptions") >= 1, "{report}");

    // The tool port got the inner frames: the datagrams, in order.
    let got = read_pcap(&tool);
    assert_eq!(got.len(), FRAMES);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 9, 2], "inner destination MAC");
        assert_eq!(&f[30..34], &[10, 9, 0, 2], "inner destination address");
        let payload = format!("sluice-arp-{i}");
        assert!(
            f.ends_with(payload.as_bytes()),
            "frame {i} carries {payload:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
