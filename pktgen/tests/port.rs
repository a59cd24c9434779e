//! Sending and receiving through DPDK ports (virtual `net_pcap` devices,
//! one EAL per pktgen process): sequence numbers continue over cycles, and
//! the receive side finds an injected gap, a reordering and a duplicate.

mod common;

use std::path::Path;

use common::*;
use pktgen::stamp::Stamp;

const PROFILE: &str = r#"
packets = 100
size = [[96, 3], [300, 1]]

[[flow]]
src = "10.0.0.1"
dst = "10.0.0.2-10.0.0.3"
src_port = "2000-2001"
dst_port = 40000

[[flow]]
src = "2001:db8::1"
dst = "2001:db8::2"
proto = "udp"
src_port = 3000
dst_port = 40001
"#;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn with_eal(name: &str, rest: &[&str]) -> Vec<String> {
    let mut v = eal(name);
    v.push("--".into());
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn run(args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    pktgen(&a)
}

fn profile(dir: &Path) -> String {
    let p = dir.join("p.toml");
    std::fs::write(&p, PROFILE).unwrap();
    p.display().to_string()
}

#[test]
fn sent_cycles_continue_their_sequences_and_receive_clean() {
    let dir = tmpdir("send");
    let p = profile(&dir);
    let sent = dir.join("sent.pcap");
    // 250 packets: two and a half cycles, at a set rate.
    let out = run(&with_eal(
        "send",
        &[
            "send",
            "--profile",
            &p,
            "--port",
            &format!("net_pcap_tx0,tx_pcap={}", sent.display()),
            "--count",
            "250",
            "--rate-pps",
            "100000",
            "--json",
        ],
    ));
    let r = json(&out);
    assert_eq!(r["packets"], 250, "{r}");
    assert_eq!(r["no_mbuf"], 0, "{r}");

    let frames = pktgen::pcap::read(&sent).unwrap();
    assert_eq!(frames.len(), 250);
    // Per flow, sequence numbers run 0, 1, 2, ... across cycles.
    let mut next = std::collections::HashMap::new();
    for f in &frames {
        let s = Stamp::find(f, None).expect("stamped");
        let n = next.entry(s.flow).or_insert(0u32);
        assert_eq!(s.seq, *n, "flow {}", s.flow);
        *n += 1;
    }
    assert_eq!(next.len(), 5, "4 IPv4 tuples and 1 IPv6");

    // Receiving the capture back through a DPDK port: nothing lost or out of order.
    let out = run(&with_eal(
        "recv",
        &[
            "recv",
            "--port",
            &format!("net_pcap_rx0,rx_pcap={}", sent.display()),
            "--count",
            "250",
            "--duration",
            "60",
            "--json",
        ],
    ));
    let r = json(&out);
    assert_eq!(r["packets"], 250, "{r}");
    let c = &r["check"];
    assert_eq!(
        (
            &c["in_order"],
            &c["lost"],
            &c["reordered"],
            &c["duplicates"]
        ),
        (
            &serde_json::json!(250),
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn receive_detects_an_injected_gap_a_reordering_and_a_duplicate() {
    let dir = tmpdir("inject");
    let p = profile(&dir);
    let clean = dir.join("clean.pcap");
    pktgen(&["pcap", "--profile", &p, "--out", clean.to_str().unwrap()]);
    let mut frames = pktgen::pcap::read(&clean).unwrap();
    let stamp = |f: &Vec<u8>| Stamp::find(f, None).unwrap();
    // Frames of the IPv6 flow (the one whose dst port is 40001), in order.
    let v6: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i][12..14] == [0x86, 0xdd])
        .collect();
    assert!(v6.len() >= 10);
    // Reorder: swap the flow's 3rd and 4th packets.
    frames.swap(v6[2], v6[3]);
    // Duplicate: the flow's 6th packet again, right after itself.
    let dup = frames[v6[5]].clone();
    // Gap: drop the flow's 8th packet (not its last: a tail loss is invisible).
    let gone = stamp(&frames[v6[7]]);
    frames.remove(v6[7]);
    frames.insert(v6[5] + 1, dup);
    let bad = dir.join("bad.pcap");
    {
        let f = std::fs::File::create(&bad).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for (i, fr) in frames.iter().enumerate() {
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                std::time::Duration::from_micros(i as u64),
                fr.len() as u32,
                fr,
            ))
            .unwrap();
        }
    }
    let n = frames.len().to_string();
    let out = run(&with_eal(
        "recvbad",
        &[
            "recv",
            "--port",
            &format!("net_pcap_rx1,rx_pcap={}", bad.display()),
            "--count",
            &n,
            "--duration",
            "60",
            "--json",
        ],
    ));
    let r = json(&out);
    let c = &r["check"];
    assert_eq!(
        c["lost"], 1,
        "seq {} of flow {} is missing: {r}",
        gone.seq, gone.flow
    );
    assert_eq!(c["reordered"], 1, "{r}");
    assert_eq!(c["duplicates"], 1, "{r}");
    assert_eq!(c["received"], frames.len(), "{r}");

    // The same verdict offline, from the file.
    let off = json(&pktgen(&[
        "check",
        "--pcap",
        bad.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(&off, c);
    // And the clean file has none of it.
    let ok = json(&pktgen(&[
        "check",
        "--pcap",
        clean.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        (
            ok["lost"].as_u64(),
            ok["reordered"].as_u64(),
            ok["duplicates"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn send_times_keep_checksums_valid_and_give_each_frame_a_delay() {
    let dir = tmpdir("sendtime");
    // UDP over IPv4 and TCP over IPv6 (a checksum over the send time
    // each), with copies that gain a VLAN tag.
    let p = dir.join("p.toml");
    std::fs::write(
        &p,
        r#"
packets = 60
send_time = true
size = [[128, 2], [300, 1]]

[[flow]]
src = "10.0.0.1"
dst = "10.0.0.2"
proto = "udp"
src_port = "2000-2001"

[[flow]]
src = "2001:db8::1"
dst = "2001:db8::2"
proto = "tcp"

[duplicates]
ratio = 0.2
vlan = 7
"#,
    )
    .unwrap();
    let sent = dir.join("sent.pcap");
    let out = run(&with_eal(
        "sendtime",
        &[
            "send",
            "--profile",
            p.to_str().unwrap(),
            "--port",
            &format!("net_pcap_tx2,tx_pcap={}", sent.display()),
            "--count",
            "144",
            "--json",
        ],
    ));
    assert_eq!(json(&out)["packets"], 144);

    let frames = pktgen::pcap::read(&sent).unwrap();
    assert_eq!(frames.len(), 144);
    let mut last = 0;
    for f in &frames {
        let (at, _) = Stamp::locate(f, None).expect("stamped");
        let t = pktgen::stamp::read_time(&f[at + pktgen::stamp::LEN..]).expect("a send time");
        assert!(t >= last, "send times in sending order");
        last = t;
    }

    // tshark verifies every IP, TCP and UDP checksum over the rewritten payloads.
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let good = tshark_fields_with(
        &sent,
        &checks,
        "udp.checksum.status == \"Good\" || tcp.checksum.status == \"Good\"",
        &["frame.number"],
    );
    assert_eq!(good.len(), frames.len(), "every L4 checksum good");

    // Received back, each timed frame is one delay sample.
    let out = run(&with_eal(
        "recvtime",
        &[
            "recv",
            "--port",
            &format!("net_pcap_rx2,rx_pcap={}", sent.display()),
            "--count",
            "144",
            "--duration",
            "60",
            "--json",
        ],
    ));
    let r = json(&out);
    assert_eq!(r["latency"]["samples"], 144, "{r}");
    assert!(r["latency"]["min_ns"].as_u64() > Some(0), "{r}");
    assert_eq!(r["check"]["lost"], 0, "{r}");
    let _ = std::fs::remove_dir_all(dir);
}
