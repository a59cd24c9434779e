//! The tunnel-decap front-end: tunnels in on a decap input, inner frames
//! out on the tool port. Real captures (ERSPAN, VXLAN, Geneve, GRE) come
//! out on a `net_tap` tool port in a network namespace exactly as the
//! decap stage (judged against tshark in dataplane's decap_captures test)
//! says; Sluice's own tunnels decap back to the original frames.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{Decap, DecapConfig, DecapOutcome};
use etherparse::PacketBuilder;

fn captures() -> PathBuf {
    std::env::var("SLUICE_CAPTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/tcpdump")
        })
}

/// Ethernet frames of the tunnel captures that fit one mbuf.
fn tunnel_frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(captures())
        .expect("captures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (n.contains("erspan")
                || n.contains("vxlan")
                || n.contains("geneve")
                || n.contains("gre"))
                && n.ends_with(".pcap")
        })
        .collect();
    names.sort();
    for path in names {
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let Ok(mut r) = pcap_file::pcap::PcapReader::new(f) else {
            continue;
        };
        if r.header().datalink != pcap_file::DataLink::ETHERNET {
            continue;
        }
        while let Some(Ok(p)) = r.next_packet() {
            if p.data.len() <= 2000 && p.data.len() as u32 == p.orig_len {
                out.push(p.data.into_owned());
            }
        }
    }
    assert!(
        out.len() > 100,
        "too few tunnel frames found in {}",
        captures().display()
    );
    out
}

/// What the decap stage makes of each frame: the inner frame, or nothing.
fn expected(frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, usize) {
    let mut d = Decap::new(DecapConfig {
        vxlan_ports: vec![4789, 8472],
        ..DecapConfig::default()
    })
    .expect("decap");
    let mut inner = Vec::new();
    let mut errors = 0;
    for f in frames {
        let mut v = VecFrame::new(f);
        match d.decap(&mut v) {
            Ok(DecapOutcome::Decapsulated(_)) => inner.push(v.data().to_vec()),
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    (inner, errors)
}

const CONFIG: &str = r#"
[[port]]
name = "span"
device = "net_pcap_dc_in@N@,rx_pcap=@IN@"
role = "input"
mode = "decap"

[[port]]
name = "tool"
device = "@TOOL@"
role = "tool"

[dedup]
table_entries = 4096
"#;

#[test]
fn real_tunnels_come_out_on_a_tap_tool_port_as_their_inner_frames() {
    let frames = tunnel_frames();
    // Malformed tunnels too: a VXLAN header cut short, GRE with a bad version.
    let mut hostile = frames.clone();
    let mut short = frames
        .iter()
        .find(|f| f.len() > 60 && f[23] == 17)
        .cloned()
        .expect("a UDP tunnel");
    short.truncate(14 + 20 + 8 + 3);
    hostile.push(short);
    let (want, errors) = expected(&hostile);
    assert!(
        errors > 0 && want.len() > 50,
        "{} inner, {errors} errors",
        want.len()
    );

    let ns = Netns::quiet("ns-dc");
    let dir = tmpdir("decap");
    write_pcap(&dir.join("in.pcap"), &hostile);
    let tap = format!("sltool{}", seq() + std::process::id() % 10_000 * 10);
    let cfg = CONFIG
        .replace("@IN@", &dir.join("in.pcap").display().to_string())
        .replace("@TOOL@", &format!("net_tap_dc{},iface={tap}", seq()))
        .replace("@N@", &seq().to_string());
    std::fs::write(dir.join("a.toml"), cfg).expect("config");

    // Sluice runs in the namespace: its tap interface appears there, never
    // in the machine's own. It comes up stopped; forwarding starts once the
    // capture listens, via the control socket.
    let sock = dir.join("s.sock").display().to_string();
    let mut s = Running::start_in(
        Some(&ns.0),
        &eal(&unique("decap"), "0-1"),
        &[
            "--config",
            &dir.join("a.toml").display().to_string(),
            "--socket",
            &sock,
            "--metrics",
            "127.0.0.1:0",
            "--stopped",
        ],
    );
    s.wait_for("control socket", 60);
    ns.ip(&["link", "set", &tap, "up"]);
    let mut tcpdump = capture_in(&ns.0, &tap, &[], &dir.join("tool.pcap"), want.len());
    let mut c = ctrlplane::cli::socket::Client::connect(Path::new(&sock)).expect("console");
    assert!(c
        .command("start")
        .expect("start")
        .contains("forwarding started"));
    // tcpdump stops once it has every frame (30 s bound); only then may the
    // tap interface go away with sluice.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tcpdump.try_wait().expect("tcpdump").is_none() {
        if Instant::now() > deadline {
            let _ = tcpdump.kill();
            let stats = c.command("show port stats 1").unwrap_or_default();
            let xstats = c.command("show port xstats 1").unwrap_or_default();
            let _ = c.command("quit");
            let got = read_pcap(&dir.join("tool.pcap")).len();
            panic!(
                "the tool port did not deliver {} frames, only {got}:\n{stats}\n{xstats}",
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The decap stage publishes its counts at the drain tick: the console
    // shows them once every frame is accounted for.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let s = c.command("show fwd stats all").expect("stats");
        let settled = s.contains("(difference 0)")
            && s.contains("decap_errors")
            && total(&s, "rx") == hostile.len() as u64
            && total(&s, "decap_errors") == errors as u64;
        if settled || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_accounting(&seen);
    assert_eq!(total(&seen, "rx"), hostile.len() as u64, "{seen}");
    assert_eq!(total(&seen, "forwarded"), want.len() as u64, "{seen}");
    assert_eq!(total(&seen, "decap_errors"), errors as u64, "{seen}");
    assert_eq!(total(&seen, "decapsulated"), want.len() as u64, "{seen}");
    // Every frame has one decap outcome.
    let outcomes: u64 = ["decapsulated", "decap_not_tunnel", "decap_not_ethernet"]
        .iter()
        .map(|k| total(&seen, k))
        .sum();
    assert_eq!(outcomes + errors as u64, hostile.len() as u64, "{seen}");
    // A clear zeroes the stage's counts with the worker's own.
    let _ = c.command("clear fwd stats all").expect("clear");
    let cleared = c.command("show fwd stats all").expect("stats");
    assert_eq!(total(&cleared, "rx"), 0, "{cleared}");
    assert!(!cleared.contains("decapsulated"), "{cleared}");
    assert!(c.command("quit").expect("quit").contains("bye"));
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "rx"), 0, "{report}");

    let got = read_pcap(&dir.join("tool.pcap"));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "inner frame {i} differs on the tool port ({} vs {} bytes)",
            g.len(),
            w.len()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sluice_tunnels_decap_back_to_the_original_frames() {
    let dir = tmpdir("roundtrip");
    let originals: Vec<Vec<u8>> = (0..30u32)
        .map(|i| {
            let mut out = Vec::new();
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, i as u8], [2, 0, 0, 0, 2, 2]);
            let payload = vec![i as u8; 20 + i as usize * 13];
            if i % 2 == 0 {
                b.ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
                    .udp(1000 + i as u16, 7)
                    .write(&mut out, &payload)
            } else {
                b.ipv6(
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    64,
                )
                .tcp(2000, 80, i, 100)
                .write(&mut out, &payload)
            }
            .expect("build");
            out
        })
        .collect();
    write_pcap(&dir.join("orig.pcap"), &originals);
    let p = |n: &str| dir.join(n).display().to_string();
    // Encap: VXLAN, ERSPAN II, ERSPAN III and L2GRE copies of every frame.
    let tap_cfg = format!(
        "[[port]]\nname = \"tap0\"\ndevice = \"net_pcap_rt_in{n},rx_pcap={}\"\nrole = \"input\"\n\n[[port]]\nname = \"up\"\ndevice = \"net_pcap_rt_up{n},tx_pcap={}\"\nrole = \"uplink\"\n\n[[uplink]]\nport = \"up\"\naddress = \"192.0.2.1/24\"\nmac = \"02:00:00:00:00:01\"\n\n[[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0a\"\n\n[dedup]\ntable_entries = 4096\n",
        p("orig.pcap"),
        p("tunnels.pcap"),
        n = seq()
    );
    let policy = "[[destination]]\nname = \"a\"\ntunnel = \"vxlan\"\nremote = \"192.0.2.10\"\nvni = 5\ndedup = false\n\
                  [[destination]]\nname = \"b\"\ntunnel = \"erspan2\"\nremote = \"192.0.2.10\"\nsession = 6\ndedup = false\n\
                  [[destination]]\nname = \"c\"\ntunnel = \"erspan3\"\nremote = \"192.0.2.10\"\nsession = 7\ndedup = false\n\
                  [[destination]]\nname = \"d\"\ntunnel = \"l2gre\"\nremote = \"192.0.2.10\"\nkey = 8\ndedup = false\n\
                  [[rule]]\nname = \"all\"\nto = [\"a\", \"b\", \"c\", \"d\"]\n";
    std::fs::write(dir.join("tap.toml"), tap_cfg).expect("config");
    std::fs::write(dir.join("p.toml"), policy).expect("policy");
    let out = sluice(
        &eal(&unique("rt1"), "0-1"),
        &[
            "--config",
            &p("tap.toml"),
            "--policy",
            &p("p.toml"),
            "--socket",
            &p("s1.sock"),
            "--metrics",
            "127.0.0.1:0",
            "--exit-when-idle",
            "300",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_pcap(&dir.join("tunnels.pcap")).len(),
        originals.len() * 4
    );

    // Decap: the tunnels back into plain frames on a pcap tool port.
    let decap_cfg = CONFIG
        .replace("@IN@", &p("tunnels.pcap"))
        .replace(
            "@TOOL@",
            &format!("net_pcap_rt_tool{},tx_pcap={}", seq(), p("tool.pcap")),
        )
        .replace("@N@", &seq().to_string());
    std::fs::write(dir.join("decap.toml"), decap_cfg).expect("config");
    let out = sluice(
        &eal(&unique("rt2"), "0-1"),
        &[
            "--config",
            &p("decap.toml"),
            "--socket",
            &p("s2.sock"),
            "--metrics",
            "127.0.0.1:0",
            "--exit-when-idle",
            "300",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert_accounting(&report);
    assert_eq!(
        total(&report, "decapsulated"),
        originals.len() as u64 * 4,
        "{report}"
    );
    let got = read_pcap(&dir.join("tool.pcap"));
    let want: Vec<Vec<u8>> = originals
        .iter()
        .flat_map(|f| std::iter::repeat_n(f.clone(), 4))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "decap(encap(x)) is x for every tunnel type");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_tap_input_and_a_decap_input_share_one_tool_port() {
    let dir = tmpdir("shared-tool");
    let frames = |first: u8| -> Vec<Vec<u8>> {
        (0..40u16)
            .map(|i| {
                let mut out = Vec::new();
                PacketBuilder::ethernet2([2, 0, 0, 0, 1, first], [2, 0, 0, 0, 2, 2])
                    .ipv4([10, first, 0, 1], [10, 2, 0, 1], 64)
                    .udp(1000 + i, 7)
                    .write(&mut out, &[first; 40])
                    .expect("build");
                out
            })
            .collect()
    };
    let (tapped, passed) = (frames(1), frames(2));
    write_pcap(&dir.join("tap.pcap"), &tapped);
    write_pcap(&dir.join("span.pcap"), &passed);
    let p = |n: &str| dir.join(n).display().to_string();
    // The decap input passes non-tunnels to the tool port; the tap input's
    // rule sends there too: both through each worker's one lane on it.
    let cfg = format!(
        "[[port]]\nname = \"tap0\"\ndevice = \"net_pcap_st_tap{n},rx_pcap={}\"\nrole = \"input\"\n\n\
         [[port]]\nname = \"span\"\ndevice = \"net_pcap_st_span{n},rx_pcap={}\"\nrole = \"input\"\nmode = \"decap\"\n\n\
         [[port]]\nname = \"tool\"\ndevice = \"net_pcap_st_tool{n},tx_pcap={}\"\nrole = \"tool\"\n\n\
         [decap]\nnon_tunnel = \"pass\"\n\n[dedup]\ntable_entries = 4096\n",
        p("tap.pcap"),
        p("span.pcap"),
        p("tool.pcap"),
        n = seq()
    );
    let policy = "[[destination]]\nname = \"tool\"\nport = \"tool\"\ndedup = false\n\
                  [[rule]]\nname = \"all\"\nto = [\"tool\"]\n";
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), policy).expect("policy");
    let out = sluice(
        &eal(&unique("shared-tool"), "0-1"),
        &[
            "--config",
            &p("a.toml"),
            "--policy",
            &p("p.toml"),
            "--socket",
            &p("s.sock"),
            "--metrics",
            "127.0.0.1:0",
            "--exit-when-idle",
            "300",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_accounting(&report);
    let all = (tapped.len() + passed.len()) as u64;
    assert_eq!(total(&report, "rx"), all, "{report}");
    assert_eq!(total(&report, "forwarded"), all, "{report}");
    let mut got = read_pcap(&dir.join("tool.pcap"));
    let mut want: Vec<Vec<u8>> = tapped.into_iter().chain(passed).collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "every frame of both inputs on the tool port, as it came"
    );
    let _ = std::fs::remove_dir_all(dir);
}
