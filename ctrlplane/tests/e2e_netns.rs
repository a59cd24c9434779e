//! A real receiver: Sluice's uplink is an AF_PACKET port on a veth into a
//! network namespace where a Linux VXLAN device takes the tunnels. Sluice
//! finds the receiver's MAC by ARP on its own; a capture on the VXLAN
//! device must see the original frames, byte for byte. Everything lives in
//! two namespaces made and removed here; the machine's own is untouched.

mod common;

use common::*;
use etherparse::PacketBuilder;
use sluice_testkit::netns::Namespaces;

const CONFIG: &str = r#"
[[port]]
name = "tap0"
device = "net_pcap_ns_in,rx_pcap=@IN@"
role = "input"

[[port]]
name = "uplink"
device = "net_af_packet_ns,iface=@VETH@"
role = "uplink"

# No [[neighbor]]: the receiver's MAC is found by ARP.
[[uplink]]
port = "uplink"
address = "192.0.2.1/24"

[dedup]
table_entries = 4096
"#;

const POLICY: &str = r#"
[[destination]]
name = "receiver"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
dedup = false

[[rule]]
name = "all"
to = ["receiver"]
"#;

#[test]
fn linux_vxlan_receiver_gets_the_original_frames() {
    let ns = Namespaces::new();
    let dir = tmpdir("netns");
    let frames: Vec<Vec<u8>> = (0..24u32)
        .map(|i| {
            let payload: Vec<u8> = (0..(30 + i * 37) as usize)
                .map(|b| (b as u32 * 7 + i) as u8)
                .collect();
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, i as u8], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, 0, 1], [10, 2, 0, (i % 5) as u8], 64)
                .udp(3000 + i as u16, 7)
                .write(&mut out, &payload)
                .expect("build");
            out
        })
        .collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    let path = |n: &str| dir.join(n).display().to_string();
    let cfg = CONFIG
        .replace("@IN@", &path("in.pcap"))
        .replace("@VETH@", &ns.veth_s);
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");

    // The receiver's capture; it ends by itself after the expected count.
    let mut tcpdump = capture_in(
        ns.receiver.name(),
        "vx100",
        &["-Q", "in"],
        &dir.join("rx.pcap"),
        frames.len(),
    );

    let mut s = Running::start_in(
        Some(ns.sluice.name()),
        &eal(&unique("netns"), "0-1"),
        &[
            "--config",
            &path("a.toml"),
            "--policy",
            &path("p.toml"),
            "--exit-when-idle",
            "500",
        ],
    );
    s.wait_for("running:", 60);
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "forwarded"), frames.len() as u64, "{report}");
    assert_eq!(
        total(&report, "dropped_no_nexthop"),
        0,
        "ARP resolved before traffic:\n{report}"
    );

    // tcpdump stops once it has every frame.
    wait_capture(
        &mut tcpdump,
        &format!("the receiver did not get {} frames", frames.len()),
    );
    let got = read_pcap(&dir.join("rx.pcap"));
    assert_eq!(got.len(), frames.len());
    for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
        assert!(
            g == f,
            "frame {i} differs at the receiver: {} bytes vs {} sent",
            g.len(),
            f.len()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
