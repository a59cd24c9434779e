//! Packaging: `make deb` builds a Debian package whose contents are the
//! binaries, man pages, systemd units and example configs;
//! `make install DESTDIR=…` lays out exactly the same tree; the package
//! depends on runtime libraries, not -dev ones; and `systemd-analyze
//! verify` accepts the units of an install whose binaries exist.
//!
//! Both package the debug binaries `cargo test --workspace` has just built
//! (`PROFILE=dev NO_BUILD=1`): a release build would double the suite's
//! time. The Makefile targets are otherwise the ones users run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARIES: [&str; 3] = ["sluice", "sluice-cli", "sluice-controller"];
const UNITS: [&str; 2] = ["sluice@.service", "sluice-controller.service"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Where this build's binaries are (this crate's own, sluice-mangen, is
/// next to the appliance's).
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_sluice-mangen"))
        .parent()
        .expect("binary directory")
        .to_owned();
    for b in BINARIES {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build the workspace first (cargo build --workspace, or cargo test --workspace)",
            dir.join(b).display()
        );
    }
    dir
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `make TARGET` with the debug binaries, and `vars`.
fn make(target: &str, vars: &[String]) {
    let bins = bin_dir();
    // Under `make test`, the outer make's flags and variables (MAKEFLAGS)
    // would reach this make too: it starts clean.
    run(Command::new("make")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .arg("-s")
        .arg("-C")
        .arg(repo())
        .arg(target)
        .args(["PROFILE=dev", "NO_BUILD=1"])
        .arg(format!("BIN_DIR={}", bins.display()))
        .args(vars));
}

/// Every file under `root`, as `usr/bin/sluice`.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-pkg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

#[test]
fn deb_and_install_lay_out_the_same_tree_and_the_units_verify() {
    // make deb: the package and its contents.
    make("deb", &["DEB_FLAGS=--fast".into()]);
    let stage = repo().join("target/pkg");
    let deb = std::fs::read_dir(&stage)
        .expect("target/pkg")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("make deb wrote a .deb in target/pkg");
    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(&deb)).stdout;
    let in_deb: BTreeSet<String> = String::from_utf8_lossy(&listing)
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches("./").to_owned())
        // dpkg's own: the copyright file every package carries.
        .filter(|p| !p.starts_with("usr/share/doc/"))
        .collect();
    let mut want: Vec<String> = BINARIES.iter().map(|b| format!("usr/bin/{b}")).collect();
    want.extend(
        BINARIES
            .iter()
            .map(|b| format!("usr/share/man/man1/{b}.1.gz")),
    );
    want.extend(UNITS.iter().map(|u| format!("usr/lib/systemd/system/{u}")));
    for example in std::fs::read_dir(repo().join("examples"))
        .expect("examples")
        .flatten()
    {
        let name = example.file_name().to_string_lossy().into_owned();
        want.push(format!("etc/sluice/{name}"));
    }
    for w in &want {
        assert!(in_deb.contains(w), "the package lacks {w}: {in_deb:#?}");
    }
    assert!(in_deb.contains("etc/sluice/sidecar-small.toml"));

    // Runtime libraries, not the -dev packages.
    let depends = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends"))
    .stdout;
    let depends = String::from_utf8_lossy(&depends).into_owned();
    for lib in [
        "librte-eal23",
        "librte-ethdev23",
        "libpcap0.8",
        "librte-net-vhost23",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    assert!(
        !depends.contains("-dev"),
        "Depends names a -dev package: {depends}"
    );

    // make install DESTDIR=…: the same files.
    let dest = tmpdir("destdir");
    make(
        "install",
        &[format!("DESTDIR={}", dest.display()), "PREFIX=/usr".into()],
    );
    assert_eq!(files(&dest), in_deb, "make install and make deb differ");
    // The package's unit runs the packaged binary.
    let unit = |root: &Path, u: &str| {
        std::fs::read_to_string(root.join("usr/lib/systemd/system").join(u)).expect("unit")
    };
    assert!(unit(&dest, "sluice@.service")
        .contains("ExecStart=/usr/bin/sluice -- --config /etc/sluice/%i.toml"));

    // The installed appliance checks an installed example and says what
    // it needs (the sidecar: 128 MiB of hugepages, its -m, on one lcore);
    // a bad key is named, with exit status 2.
    let sluice = dest.join("usr/bin/sluice");
    let sidecar = dest.join("etc/sluice/sidecar-small.toml");
    let out = run(Command::new(&sluice)
        .arg("--")
        .arg("--check-config")
        .arg(&sidecar));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "valid",
        "hugepages: 64 x 2 MiB",
        "lcores: 1 (one-lcore mode",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let bad = dest.join("bad.toml");
    let sidecar_text = std::fs::read_to_string(&sidecar).expect("sidecar");
    std::fs::write(
        &bad,
        sidecar_text.replace("entries = 32768", "entries = 1000"),
    )
    .expect("bad");
    let out = Command::new(&sluice)
        .arg("--")
        .arg("--check-config")
        .arg(&bad)
        .output()
        .expect("sluice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("flow_cache.entries: 1000"), "{err}");
    std::fs::remove_file(&bad).expect("rm");

    // systemd-analyze verify checks that ExecStart's binary exists (and
    // the Documentation= man pages, through MANPATH): an install whose
    // PREFIX is a directory of the test's own has both where its units say.
    let prefix = tmpdir("prefix");
    make(
        "install",
        &[
            format!("PREFIX={}/usr", prefix.display()),
            format!("SYSCONFDIR={}/etc", prefix.display()),
        ],
    );
    let units: Vec<PathBuf> = UNITS
        .iter()
        .map(|u| prefix.join("usr/lib/systemd/system").join(u))
        .collect();
    let verify = || {
        Command::new("systemd-analyze")
            .arg("verify")
            .args(&units)
            .env("MANPATH", prefix.join("usr/share/man"))
            .output()
            .expect("systemd-analyze (package systemd; scripts/setup.sh installs it)")
    };
    let out = verify();
    assert!(
        out.status.success(),
        "systemd-analyze verify refused the units:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The same units as the package's, but for where they were installed.
    let p = prefix.display().to_string();
    for u in UNITS {
        assert_eq!(
            unit(&prefix, u).replace(&p, ""),
            unit(&dest, u),
            "{u} differs between installs beyond its paths"
        );
    }
    // And verify does look: without the binary it refuses.
    std::fs::remove_file(prefix.join("usr/bin/sluice-controller")).expect("rm");
    assert!(
        !verify().status.success(),
        "verify passed a unit whose binary is missing"
    );

    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::remove_dir_all(&prefix);
}
