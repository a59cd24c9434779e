//! Start-up failures: a clear message naming what is wrong, a non-zero exit,
//! and no hugepage or runtime file left behind.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// EAL arguments that would leave files behind without cleanup (no
/// --in-memory), so that "nothing left" means something.
fn eal_with_files(prefix: &str) -> Vec<String> {
    [
        "--no-pci",
        "--file-prefix",
        prefix,
        "-l",
        "0-1",
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn leftovers(prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    if let Ok(d) = std::fs::read_dir("/dev/hugepages") {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(prefix) {
                left.push(format!("/dev/hugepages/{n}"));
            }
        }
    }
    let run = Path::new("/var/run/dpdk").join(prefix);
    if run.exists() {
        left.push(run.display().to_string());
    }
    left
}

const GOOD: &str = r#"
[[port]]
name = "tap0"
device = "@INPUT@"
role = "input"

[[port]]
name = "uplink"
device = "net_null_up@N@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
"#;

/// Runs sluice with `config` and returns (exit code, stderr); checks that
/// nothing of its EAL prefix is left behind.
fn fails_with(config: &str, policy: Option<&str>) -> (i32, String) {
    let dir = tmpdir("startup");
    let prefix = unique("startup");
    std::fs::write(dir.join("a.toml"), config).expect("config");
    let cfg = dir.join("a.toml").display().to_string();
    let mut args = vec!["--config", cfg.as_str()];
    let pol;
    if let Some(p) = policy {
        std::fs::write(dir.join("p.toml"), p).expect("policy");
        pol = dir.join("p.toml").display().to_string();
        args.extend(["--policy", pol.as_str()]);
    }
    let out = sluice(&eal_with_files(&prefix), &args);
    let code = out.status.code().expect("exit, not a signal");
    assert_eq!(
        leftovers(&prefix),
        Vec::<String>::new(),
        "files left behind"
    );
    let _ = std::fs::remove_dir_all(dir);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn good(input: &str) -> String {
    GOOD.replace("@INPUT@", input)
        .replace("@N@", &std::process::id().to_string())
}

#[test]
fn unknown_config_key_is_named() {
    let (code, err) = fails_with(
        &good("net_null_in0").replace("port = \"uplink\"", "port = \"uplink\"\nmtuu = 1"),
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("mtuu"), "{err}");
}

#[test]
fn bad_values_are_named_with_their_keys() {
    let cfg =
        good("net_null_in0").replace("192.0.2.1/24", "192.0.2.1/99") + "\n[dedup]\nwindow_us = 0\n";
    let (code, err) = fails_with(&cfg, None);
    assert_eq!(code, 2);
    assert!(
        err.contains("uplink[0].address") && err.contains("dedup.window_us"),
        "{err}"
    );
}

#[test]
fn unknown_port_device_is_named() {
    let (code, err) = fails_with(&good("net_nosuchdriver0"), None);
    assert_eq!(code, 2);
    assert!(
        err.contains("port \"tap0\"") && err.contains("net_nosuchdriver0"),
        "{err}"
    );
}

#[test]
fn wrong_pci_address_is_named() {
    let (code, err) = fails_with(&good("0000:99:00.7"), None);
    assert_eq!(code, 2);
    assert!(err.contains("0000:99:00.7"), "{err}");
}

#[test]
fn bad_policy_lists_every_problem_with_its_path() {
    let policy = "[[destination]]\nname = \"d\"\ntunnel = \"vxlan\"\nremote = \"x\"\n\n[[rule]]\nname = \"r\"\nin_port = \"nope\"\nto = [\"d\"]\n";
    let (code, err) = fails_with(&good("net_null_in0"), Some(policy));
    assert_eq!(code, 2);
    for want in [
        "destination[0].remote",
        "destination[0].vni",
        "rule[0].in_port: no input port named \"nope\"",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
}

#[test]
fn missing_config_file_is_named() {
    let out = sluice(
        &eal_with_files(&unique("nofile")),
        &["--config", "/nonexistent/sluice.toml"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/sluice.toml"), "{err}");
}

#[test]
fn non_ethernet_capture_is_refused_by_link_type() {
    let captures = std::env::var("SLUICE_CAPTURES").unwrap_or_else(|_| {
        format!(
            "{}/../../shared/captures/tcpdump",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let raw = format!("{captures}/LINKTYPE_RAW_ipv6.pcap");
    assert!(Path::new(&raw).exists(), "capture {raw} missing");
    let (code, err) = fails_with(
        &good(&format!("net_pcap_raw{},rx_pcap={raw}", std::process::id())),
        None,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("has link type RAW (101), not Ethernet"),
        "{err}"
    );
}

/// A build for x86-64-v3 (.cargo/config.toml) on an older CPU says what
/// the CPU lacks and exits, instead of dying of SIGILL at its first AVX2
/// instruction; on a v3 CPU it runs. So for each program a package ships.
#[test]
fn an_older_cpu_is_named_not_crashed_on() {
    let controller = Path::new(SLUICE).with_file_name("sluice-controller");
    let programs = [
        ("sluice", Path::new(SLUICE)),
        ("sluice-cli", Path::new(env!("CARGO_BIN_EXE_sluice-cli"))),
        ("sluice-controller", controller.as_path()),
    ];
    for (name, bin) in programs {
        let old = version_on_cpu(bin, "Nehalem");
        let err = String::from_utf8_lossy(&old.stderr);
        if cfg!(target_feature = "avx2") {
            assert_eq!(old.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.starts_with(&format!("{name}: this build needs an x86-64-v3 CPU"))
                    && err.contains("this one has no AVX."),
                "{name}: {err}"
            );
        } else {
            assert!(old.status.success(), "{name}: {err}");
        }
        let new = version_on_cpu(bin, "Haswell");
        assert!(
            new.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&new.stderr)
        );
        let out = String::from_utf8_lossy(&new.stdout);
        assert!(out.starts_with(&format!("{name} ")), "{name}: {out}");
    }
}

/// Runs a program's `--version` on an emulated CPU (qemu-user, `-cpu MODEL`).
fn version_on_cpu(bin: &Path, model: &str) -> Output {
    Command::new("qemu-x86_64")
        .args(["-cpu", model])
        .arg(bin)
        .arg("--version")
        .output()
        .expect("qemu-x86_64 runs (scripts/setup.sh installs qemu-user)")
}
