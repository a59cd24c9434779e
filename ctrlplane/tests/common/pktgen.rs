//! pktgen, Sluice's traffic generator, as tests run it: spawned (in a
//! namespace or not) with its output kept, signalled, asked for its JSON
//! report, and killed by its PID when dropped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_testkit::names::unique;

/// How long a report may take to come: generous, the machine is shared.
const REPORT_WAIT_S: u64 = 30;

/// `pktgen`, built next to `sluice` (`cargo test --workspace` builds both).
pub fn pktgen_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_sluice")).with_file_name("pktgen");
    assert!(
        p.exists(),
        "{} is not built: run cargo build -p pktgen (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// A pktgen process, its output kept; killed by its PID if still running
/// when dropped.
pub struct Pktgen {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Pktgen {
    /// `pktgen <EAL> -- <args>`, inside `netns` when given.
    pub fn spawn(netns: Option<&str>, args: &[&str]) -> Pktgen {
        let bin = pktgen_bin();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let prefix = unique("pg");
        let mut child = cmd
            .args([
                "-l",
                "0",
                "--no-pci",
                "--in-memory",
                "--file-prefix",
                &prefix,
            ])
            .args(["--log-level", "*:warning", "--"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pktgen");
        // Read as it comes: a lingering sender's report is there before it exits.
        let keep = |r: Option<Box<dyn Read + Send>>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = Arc::clone(&buf);
            if let Some(mut r) = r {
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = r.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut b) = b.lock() {
                            b.push_str(&String::from_utf8_lossy(&chunk[..n]));
                        }
                    }
                });
            }
            buf
        };
        let stdout = keep(
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        let stderr = keep(
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        Pktgen {
            child,
            stdout,
            stderr,
        }
    }

    /// `pktgen send` through `port` with `profile` (its text, written to
    /// `dir/profile.toml`).
    pub fn send(
        dir: &Path,
        netns: Option<&str>,
        profile: &str,
        port: &str,
        extra: &[&str],
    ) -> Pktgen {
        let path = dir.join("profile.toml");
        std::fs::write(&path, profile).expect("profile");
        let profile = path;
        let p = profile.display().to_string();
        let mut args = vec!["send", "--profile", &p, "--port", port, "--json"];
        args.extend_from_slice(extra);
        Pktgen::spawn(netns, &args)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} pktgen failed");
    }

    /// Waits (bounded) for its JSON report: at exit, or before a sender's
    /// linger. Panics if it fails first.
    pub fn report(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(REPORT_WAIT_S);
        loop {
            let out = self.stdout.lock().map(|s| s.clone()).unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(out.trim()) {
                return v;
            }
            let err = || self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
            if let Some(st) = self.child.try_wait().expect("pktgen") {
                // Exited: what it printed is all there will be, once read.
                assert!(st.success(), "pktgen failed: {}\n{out}", err());
            }
            assert!(
                Instant::now() < deadline,
                "no report from pktgen: {out}\n{}",
                err()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL by its PID, unless it has exited already.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Pktgen {
    fn drop(&mut self) {
        // Not reaped yet, so the PID is still this process's (a zombie at
        // worst): continued first if stopped, then killed.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
            self.kill();
        }
    }
}
