//! KVM-DPDK vhost tap: Sluice serves a vhost-user socket with two queues;
//! a second DPDK process (`dpdk-testpmd` with `net_virtio_user`, the role
//! a VM's virtio-net or a vswitch's mirror port plays) sends a known set of
//! frames into it on both queues. The peer is then killed by its PID and a
//! new one connects to the same socket: traffic flows again, the port's
//! counters carry on from the first run, and every frame comes out of the
//! VXLAN tunnel byte for byte.

mod common;
mod testpmd;

use std::path::{Path, PathBuf};

use common::*;
use ctrlplane::cli::socket::Client;
use etherparse::PacketBuilder;
use testpmd::Testpmd;

/// Distinct UDP frames: `run` and `queue` in the addresses, `i` in the
/// ports and payload, so every frame of the test is unique.
fn frames(run: u8, queue: u8, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, run, queue, 1], [2, 0, 0, run, queue, 2])
                .ipv4([10, run, queue, 1], [10, 2, 0, 1 + (i % 7) as u8], 64)
                .udp(4000 + i as u16, 53)
                .write(&mut out, &vec![i as u8; 18 + i * 11])
                .expect("build");
            out
        })
        .collect()
}

const CONFIG: &str = r#"
[[port]]
name = "vm0"
device = "net_vhost_t@N@,iface=@SOCK@,queues=2@CLIENT@"
role = "input"

[[port]]
name = "uplink"
device = "net_pcap_vup@N@,tx_pcap=@UP@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[dedup]
table_entries = 4096
"#;

const POLICY: &str = r#"
version = "vhost-1"
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 77
dedup = false
[[rule]]
name = "all"
to = ["noc"]
"#;

/// A virtio-user peer on `sock` sending `q0` on queue 0 and `q1` on queue 1
/// (testpmd io-forwards each pcap queue to the same virtio queue); the
/// socket's server when Sluice is the vhost-user client.
fn peer(dir: &Path, sock: &Path, q0: &Path, q1: &Path, server: bool) -> Testpmd {
    let p = |x: &Path| x.display().to_string();
    let discard = |q: u8| p(&dir.join(format!("peer-rx{q}.pcap")));
    let eal: Vec<String> = [
        "-l",
        "0-1",
        "--main-lcore",
        "1",
        "--in-memory",
        "--single-file-segments",
        "--log-level",
        "*:warning",
        "--vdev",
        &format!(
            "net_pcap_src,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
            p(q0),
            p(q1),
            discard(0),
            discard(1)
        ),
        "--vdev",
        &format!(
            "net_virtio_user0,path={},queues=2,server={}",
            p(sock),
            u8::from(server)
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Testpmd::spawn(
        &unique("vhpeer"),
        &eal,
        &[
            "--forward-mode=io",
            "--nb-cores=1",
            "--rxq=2",
            "--txq=2",
            "--total-num-mbufs=4096",
            // Forward the pcap once: no RX flush at start (it would drain it).
            "--no-flush-rx",
        ],
    )
}

/// `name: value` in a console answer.
fn value(text: &str, name: &str) -> u64 {
    text.split(&format!("{name}:"))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn fwd_total(c: &mut Client, name: &str) -> u64 {
    total(&c.command("show fwd stats all").expect("fwd stats"), name)
}

#[test]
fn a_vhost_user_peer_sends_vanishes_and_comes_back() {
    peer_comes_back(false);
}

/// Sluice as the vhost-user client (`client=1`): the peer owns the socket,
/// and Sluice reconnects to whoever serves it next.
#[test]
fn sluice_as_vhost_user_client_reconnects_to_a_new_peer() {
    peer_comes_back(true);
}

fn peer_comes_back(client: bool) {
    let dir = tmpdir("vhost");
    let sock = dir.join("vm0.sock");
    let up = dir.join("uplink.pcap");
    let first = [frames(1, 0, 40), frames(1, 1, 30)];
    let second = [frames(2, 0, 25), frames(2, 1, 20)];
    let files: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("in{i}.pcap"))).collect();
    for (f, fr) in files.iter().zip(first.iter().chain(&second)) {
        write_pcap(f, fr);
    }
    let n1 = (first[0].len() + first[1].len()) as u64;
    let n2 = (second[0].len() + second[1].len()) as u64;
    let bytes =
        |set: &[Vec<Vec<u8>>; 2]| -> u64 { set.iter().flatten().map(|f| f.len() as u64).sum() };

    let n = seq();
    let cfg = CONFIG
        .replace("@N@", &n.to_string())
        .replace("@SOCK@", &sock.display().to_string())
        .replace("@CLIENT@", if client { ",client=1" } else { "" })
        .replace("@UP@", &up.display().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let console = dir.join("s.sock");
    let mut s = Running::start(
        &eal(&unique("vhost"), "0-1"),
        &strs(&sluice_args(&dir, "a.toml", "s.sock")),
    );
    s.wait_for("control socket", 60);
    let mut c = Client::connect(&console).expect("console");

    // First peer: connects, sends both files once.
    let mut a = peer(&dir, &sock, &files[0], &files[1], client);
    wait_console(&mut c, "show port info 0", 60, |t| {
        t.contains("Link status: up") && t.contains("link-up events: 1")
    });
    a.send("start");
    wait_console(&mut c, "show fwd stats all", 60, |t| total(t, "rx") == n1);
    let stats = c.command("show port stats 0").expect("stats");
    assert_eq!(value(&stats, "RX-packets"), n1, "{stats}");
    assert_eq!(value(&stats, "RX-bytes"), bytes(&first), "{stats}");

    // It vanishes: SIGKILL, no goodbye. Sluice sees the link go down and
    // keeps running.
    a.kill();
    let info = wait_console(&mut c, "show port info 0", 30, |t| {
        t.contains("Link status: down") && t.contains("link-down events: 1")
    });
    assert!(info.contains("link-up events: 1"), "{info}");
    drop(a);
    if client {
        // The killed server left its socket file; the next one binds anew
        // (a hypervisor does the same before it restarts a VM).
        std::fs::remove_file(&sock).expect("the dead peer's socket");
    }

    // A new peer on the same socket: traffic flows again, counters carry on.
    let mut b = peer(&dir, &sock, &files[2], &files[3], client);
    wait_console(&mut c, "show port info 0", 60, |t| {
        t.contains("Link status: up") && t.contains("link-up events: 2")
    });
    b.send("start");
    wait_console(&mut c, "show fwd stats all", 60, |t| {
        total(t, "rx") == n1 + n2
    });
    let stats = c.command("show port stats 0").expect("stats");
    assert_eq!(value(&stats, "RX-packets"), n1 + n2, "{stats}");
    assert_eq!(
        value(&stats, "RX-bytes"),
        bytes(&first) + bytes(&second),
        "{stats}"
    );
    assert!(stats.contains("link-up events: 2"), "{stats}");
    assert_eq!(fwd_total(&mut c, "forwarded"), n1 + n2);
    b.quit();
    wait_console(&mut c, "show port info 0", 30, |t| {
        t.contains("link-down events: 2")
    });
    drop(b);

    // SIGINT, not `quit`: the console's answer to quit races the exit.
    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "rx"), n1 + n2, "{report}");
    assert_eq!(total(&report, "forwarded"), n1 + n2, "{report}");
    assert_eq!(dest_tx(&report, "noc"), n1 + n2, "{report}");
    assert!(
        report.contains("link-ups 2 link-downs 2"),
        "the exit report counts both connects and disconnects:\n{report}"
    );

    // The judge: tshark sees VXLAN VNI 77 around every frame, and the inner
    // frames are exactly the ones sent (queues interleave, so as a set).
    let vnis = tshark_fields(&up, "", &["vxlan.vni"]);
    assert_eq!(vnis.len() as u64, n1 + n2);
    assert!(vnis.iter().all(|f| f[0] == "77"), "{vnis:?}");
    let mut got: Vec<Vec<u8>> = read_pcap(&up)
        .into_iter()
        .map(|t| t[14 + 20 + 8 + 8..].to_vec())
        .collect();
    let mut want: Vec<Vec<u8>> = first.iter().chain(&second).flatten().cloned().collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the tunnel carries exactly the frames the peers sent"
    );
    let _ = std::fs::remove_dir_all(dir);
}
