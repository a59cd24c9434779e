//! pdump tap mode: `dpdk-testpmd` is the primary, io-forwarding a known
//! pcap from one vdev to another; Sluice attaches as a secondary process,
//! taps the first port's RX and the second's TX, and tunnels what it saw.
//! Every packet is copied twice (once per tap), so the second copy must be
//! deduplicated: the tunnel carries each frame exactly once, in order, and
//! the counters of the primary's taps, Sluice's pipeline and the primary's
//! own ports all agree.

mod common;
mod testpmd;

use std::path::{Path, PathBuf};

use common::*;
use ctrlplane::cli::socket::Client;
use etherparse::PacketBuilder;
use testpmd::Testpmd;

const FRAMES: usize = 90;

fn frames() -> Vec<Vec<u8>> {
    (0..FRAMES)
        .map(|i| {
            let mut out = Vec::new();
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 7, 1], [2, 0, 0, 0, 7, 2]);
            let payload = vec![i as u8; 10 + i * 13];
            if i % 3 == 0 {
                b.ipv6(
                    [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    64,
                )
                .udp(5000 + i as u16, 53)
                .write(&mut out, &payload)
            } else {
                b.ipv4([10, 7, 0, 1], [10, 7, 1, (i % 5) as u8 + 1], 64)
                    .tcp(40_000 + i as u16, 443, i as u32, 1000)
                    .write(&mut out, &payload)
            }
            .expect("build");
            out
        })
        .collect()
}

/// The mempool driver Debian's dpdk-testpmd links directly (through
/// librte_net_dpaa): Sluice loads it first so both processes number their
/// mempool handlers alike (Sluice refuses to tap otherwise, see below).
fn mempool_dpaa() -> String {
    let out = std::process::Command::new("pkg-config")
        .args(["--variable=libdir", "libdpdk"])
        .output()
        .expect("pkg-config");
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let pmds = std::fs::read_dir(libdir.join("dpdk"))
        .expect("DPDK's plugin directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pmds-"))
        })
        .expect("a pmds-* directory");
    std::fs::read_dir(&pmds)
        .expect("plugins")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("librte_mempool_dpaa.so."))
        })
        .min()
        .expect("librte_mempool_dpaa")
        .display()
        .to_string()
}

/// The primary: interactive testpmd, io forwarding port 0 (a pcap read
/// once) to port 1 (a null sink); nothing moves until `start`.
fn primary(prefix: &str, n: u32, input: &Path) -> Testpmd {
    let eal: Vec<String> = [
        "-l",
        "0-1",
        "--main-lcore",
        "1",
        "--log-level",
        "*:warning",
        "--vdev",
        &format!("net_pcap_src{n},rx_pcap={}", input.display()),
        "--vdev",
        &format!("net_null_dst{n},no-rx=1"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut t = Testpmd::spawn(
        prefix,
        &eal,
        &[
            "--forward-mode=io",
            "--nb-cores=1",
            "--total-num-mbufs=4096",
            "--no-flush-rx",
        ],
    );
    // Port set-up is over once the link check is: the secondary may attach.
    t.wait_for("Checking link statuses", 60);
    t.wait_for("Done", 60);
    t
}

fn config(prefix: &str, n: u32, up: &Path) -> String {
    config_with(prefix, n, up, "")
}

/// The config, with `extra` lines in `[pdump]`.
fn config_with(prefix: &str, n: u32, up: &Path, extra: &str) -> String {
    format!(
        r#"
[pdump]
file_prefix = "{prefix}"
ring_size = 4096
mbufs = 4095
{extra}

[[port]]
name = "wire"
role = "input"
pdump = "net_pcap_src{n}"
capture = "rx"

[[port]]
name = "vm"
role = "input"
pdump = "net_null_dst{n}"
capture = "tx"
queues = [0]

[[port]]
name = "uplink"
device = "net_pcap_pdup{n},tx_pcap={up}"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[mempool]
mbufs = 4095

[dedup]
table_entries = 4096
"#,
        up = up.display()
    )
}

const POLICY: &str = r#"
version = "pdump-1"
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 88
[[rule]]
name = "all"
to = ["noc"]
"#;

/// Sluice's EAL options as a secondary (`[pdump]` adds the rest).
fn secondary_eal(extra: &[&str]) -> Vec<String> {
    ["--no-pci", "-l", "0-1", "--log-level", "*:warning"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// `Copies: N` of the tap block of port `name` in `show port stats all`.
fn tap_copies(stats: &str, name: &str) -> u64 {
    let block = stats
        .split("pdump tap of port")
        .find(|b| b.contains(&format!("{name:?}")))
        .unwrap_or_else(|| panic!("no tap block for {name}:\n{stats}"));
    let field = |f: &str| -> u64 {
        block
            .split(&format!("{f}:"))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {f} in:\n{block}"))
    };
    assert_eq!(field("ring-full"), 0, "{block}");
    assert_eq!(field("no-mbuf"), 0, "{block}");
    field("Copies")
}

#[test]
fn sluice_taps_a_testpmd_primary_and_tunnels_exactly_its_traffic() {
    let dir = tmpdir("pdump");
    let input = dir.join("in.pcap");
    let up = dir.join("uplink.pcap");
    let sent = frames();
    write_pcap(&input, &sent);
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let n = seq();
    let prefix = unique("pdprim");
    let mut t = primary(&prefix, n, &input);

    std::fs::write(dir.join("a.toml"), config(&prefix, n, &up)).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let sock = dir.join("s.sock");
    let dpaa = mempool_dpaa();
    let mut s = Running::start(
        &secondary_eal(&["-d", &dpaa]),
        &strs(&sluice_args(&dir, "a.toml", "s.sock")),
    );
    s.wait_for("tapping tx of the primary's", 60);
    s.wait_for("control socket", 30);
    let mut c = Client::connect(&sock).expect("console");

    // The primary forwards the file once; Sluice sees every packet twice.
    t.send("start");
    wait_console(&mut c, "show fwd stats all", 60, |f| {
        total(f, "rx") == 2 * FRAMES as u64 && f.contains("(difference 0)")
    });
    let stats = c.command("show port stats all").expect("stats");
    assert_eq!(tap_copies(&stats, "wire"), FRAMES as u64, "{stats}");
    assert_eq!(tap_copies(&stats, "vm"), FRAMES as u64, "{stats}");
    // The primary's own switching is untouched.
    assert_eq!(t.port_stats(0).0, FRAMES as u64, "primary port 0 RX");
    assert_eq!(t.port_stats(1).2, FRAMES as u64, "primary port 1 TX");

    // SIGINT, not `quit`: the console's answer to quit races the exit.
    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "rx"), 2 * FRAMES as u64, "{report}");
    assert_eq!(total(&report, "rx_bytes"), 2 * bytes, "{report}");
    assert_eq!(total(&report, "deduplicated"), FRAMES as u64, "{report}");
    assert_eq!(total(&report, "forwarded"), FRAMES as u64, "{report}");
    assert_eq!(dest_tx(&report, "noc"), FRAMES as u64, "{report}");
    for (name, what) in [
        ("wire", format!("net_pcap_src{n}\": rx, every queue")),
        ("vm", format!("net_null_dst{n}\": tx, queue(s) 0")),
    ] {
        assert!(
            report.contains(&format!(
                "{name:?} (pdump of \"{what}): copies {FRAMES} ring-full 0 no-mbuf 0"
            )),
            "{report}"
        );
    }
    // Sluice's uplink was hot-plugged through the primary: it is gone
    // from there too.
    t.wait_for("is closed", 30);
    t.quit();

    let vnis = tshark_fields(&up, "", &["vxlan.vni"]);
    assert_eq!(vnis.len(), FRAMES);
    assert!(vnis.iter().all(|f| f[0] == "88"), "{vnis:?}");
    let inner: Vec<Vec<u8>> = read_pcap(&up)
        .into_iter()
        .map(|f| f[14 + 20 + 8 + 8..].to_vec())
        .collect();
    assert!(
        inner == sent,
        "the tunnel carries each frame the primary forwarded, once, in order"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// What a secondary cannot work with is refused with the reason, and the
/// primary going away stops Sluice (exit 1) instead of leaving it stranded.
#[test]
fn a_mismatched_or_vanishing_primary_is_reported() {
    let dir = tmpdir("pdump-bad");
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames());
    let n = seq();
    let prefix = unique("pdprim");
    let mut t = primary(&prefix, n, &input);
    std::fs::write(dir.join("a.toml"), config(&prefix, n, &dir.join("up.pcap"))).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let args = |sock: &str| sluice_args(&dir, "a.toml", sock);

    // Without the primary's mempool driver loaded first, the two processes
    // number their mempool handlers differently: refused, with the fix.
    let a = args("s1.sock");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = sluice(&secondary_eal(&[]), &a);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mempool handlers in another order") && err.contains("-d "),
        "{err}"
    );

    // Attached, then the primary is killed: Sluice stops by itself.
    let dpaa = mempool_dpaa();
    let a = args("s2.sock");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut s = Running::start(&secondary_eal(&["-d", &dpaa]), &a);
    s.wait_for("control socket", 60);
    t.kill();
    s.wait_for("is gone, and its taps with it", 30);
    let (code, report) = s.finish();
    assert_eq!(code, Some(1), "{report}");
    assert_accounting(&report);
    drop(t);
    let _ = std::fs::remove_dir_all(dir);
}

/// A Sluice killed outright leaves its taps and its hot-plugged uplink in
/// the primary: the next one removes the dead one's uplink by itself, and
/// takes the taps over when `replace_taps` says so (else it says why not).
#[test]
fn a_killed_sluice_leaves_taps_that_the_next_takes_over() {
    let dir = tmpdir("pdump-takeover");
    let input = dir.join("in.pcap");
    let up = dir.join("uplink.pcap");
    let sent = frames();
    write_pcap(&input, &sent);
    let n = seq();
    let prefix = unique("pdprim");
    let mut t = primary(&prefix, n, &input);
    std::fs::write(dir.join("a.toml"), config(&prefix, n, &up)).expect("config");
    let replace = config_with(&prefix, n, &up, "replace_taps = true");
    std::fs::write(dir.join("b.toml"), replace).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");
    let dpaa = mempool_dpaa();
    let eal = secondary_eal(&["-d", &dpaa]);
    let args = |cfg: &str, sock: &str| sluice_args(&dir, cfg, sock);

    let a = args("a.toml", "a.sock");
    let mut first = Running::start(&eal, &strs(&a));
    first.wait_for("control socket", 60);
    first.signal("KILL");
    let (code, _) = first.finish();
    assert_eq!(code, None, "killed by a signal");

    let b = args("a.toml", "b.sock");
    let out = sluice(&eal, &strs(&b));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("which is gone"),
        "the dead one's uplink is removed: {err}"
    );
    assert!(err.contains("replace_taps = true"), "{err}");

    let c = args("b.toml", "c.sock");
    let mut s = Running::start(&eal, &strs(&c));
    s.wait_for("control socket", 60);
    let mut console = Client::connect(&dir.join("c.sock")).expect("console");
    t.send("start");
    wait_console(&mut console, "show fwd stats all", 60, |f| {
        total(f, "rx") == 2 * FRAMES as u64 && f.contains("(difference 0)")
    });
    s.signal("INT");
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "forwarded"), FRAMES as u64, "{report}");
    t.quit();
    assert_eq!(read_pcap(&up).len(), FRAMES);
    let _ = std::fs::remove_dir_all(dir);
}
