//! `dpdk-testpmd` as the other DPDK process of a test: the peer of a
//! vhost-user port, or the primary a pdump tap attaches to. Interactive
//! mode, driven through its stdin; everything it prints is kept for the
//! failure message. Killed by its PID if still running when dropped, and
//! its runtime and hugepage files removed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub struct Testpmd {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    prefix: String,
}

impl Testpmd {
    /// Starts `dpdk-testpmd <eal> -- -i <app>`; EAL gets `--no-pci` and
    /// `--file-prefix prefix` from here.
    pub fn spawn(prefix: &str, eal: &[String], app: &[&str]) -> Testpmd {
        // Line-buffered stdout (stdbuf execs testpmd: the PID stays its):
        // a test waits for what it prints.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd", "--no-pci", "--file-prefix", prefix])
            .args(eal)
            .args(["--", "-i"])
            .args(app)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dpdk-testpmd (package dpdk; run `make setup`)");
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                // testpmd's prompt has no newline: split on it too, so the
                // line that follows a prompt is seen at once.
                let mut r = BufReader::new(out);
                let mut buf = Vec::new();
                while let Ok(n) = r.read_until(b'\n', &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    for part in text.split("testpmd> ") {
                        let part = part.trim_end();
                        if !part.is_empty() && tx.send(part.to_owned()).is_err() {
                            return;
                        }
                    }
                    buf.clear();
                }
            });
        }
        Testpmd {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
            prefix: prefix.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types a command at the prompt.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("testpmd stdin");
        writeln!(stdin, "{line}").expect("write to testpmd");
        stdin.flush().expect("flush testpmd stdin");
    }

    /// Waits (at most `secs`) for a line containing `text`; returns every
    /// line since the call, that one included.
    pub fn wait_for(&mut self, text: &str, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let hit = line.contains(text);
                    got.push(line);
                    if hit {
                        return got;
                    }
                }
                Err(_) => panic!(
                    "testpmd never said {text:?}; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// `show port stats <port>`: (RX-packets, RX-bytes, TX-packets, TX-bytes).
    pub fn port_stats(&mut self, port: u16) -> (u64, u64, u64, u64) {
        self.send(&format!("show port stats {port}"));
        let lines = self.wait_for("TX-packets:", 10);
        let text = lines.join("\n");
        let field = |name: &str| -> u64 {
            text.rsplit(name)
                .next()
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in testpmd's answer:\n{text}"))
        };
        (
            field("RX-packets:"),
            field("RX-bytes:"),
            field("TX-packets:"),
            field("TX-bytes:"),
        )
    }

    /// SIGKILL by PID: the peer vanishes without a goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `quit`, and waits (bounded) for the exit.
    pub fn quit(&mut self) {
        self.send("quit");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                self.kill();
                panic!("testpmd did not quit:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
        remove_runtime_files(&self.prefix);
    }
}

/// Removes what a DPDK process of `prefix` leaves: its runtime directory
/// and its hugepage files.
pub fn remove_runtime_files(prefix: &str) {
    let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(prefix));
    let stem = format!("{prefix}map_");
    if let Ok(entries) = std::fs::read_dir("/dev/hugepages") {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
