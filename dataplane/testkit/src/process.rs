//! A child process a test waits on by what it says, never by sleeping.

use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running binary whose stderr is read line by line, so a test can wait
/// for what it says (with a deadline) instead of sleeping. Killed on drop
/// if it is still running: a test that fails half-way leaves nothing behind.
pub struct Running {
    pub child: Child,
    name: String,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `program <eal> -- <args>`, as the last argument of `wrapper`
    /// when it is not empty (a command that execs it, such as
    /// `ip netns exec ns`, so that the PID is the program's).
    pub fn spawn(program: &str, wrapper: &[&str], eal: &[String], args: &[&str]) -> Running {
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = cmd
            .args(eal)
            .arg("--")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let name = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
        Running {
            child,
            name,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a stderr line contains `text`; panics (after killing
    /// the process) if it does not come within `secs` or the process exits
    /// first.
    pub fn wait_for(&mut self, text: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{} never said {text:?}; it said:\n{}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Sends signal `sig` (`INT`, `TERM`, `HUP`...) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit and returns (exit code, everything on stdout).
    pub fn finish(mut self) -> (Option<i32>, String) {
        let mut report = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut report);
        }
        let status = self.child.wait().expect("wait");
        (status.code(), report)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
