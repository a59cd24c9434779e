//! The control socket: the command language over a Unix socket (mode
//! 0600), for `sluice-cli` while the appliance runs as a daemon.
//!
//! Wire format, one request at a time per connection: the client sends a
//! line, `C <command line>` to run a command or `? <partial line>` for
//! completions; the server answers with a 4-byte big-endian length and
//! that many bytes of UTF-8 text.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use super::{Answer, Envelope, Request};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 4096;
/// Longest answer a client accepts.
pub const MAX_REPLY: usize = 16 << 20;

/// Binds `path` (refusing one another live sluice holds), restricts it to
/// its owner, and serves connections from a thread.
pub fn serve(path: &Path, console: Sender<Envelope>) -> Result<(), String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {} is in use by another sluice",
                path.display()
            ));
        }
        // Left behind by a sluice that did not exit cleanly.
        std::fs::remove_file(path)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let owned: PathBuf = path.to_owned();
    std::thread::Builder::new()
        .name("sluice-console".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let console = console.clone();
                let _ = std::thread::Builder::new()
                    .name("sluice-console-conn".into())
                    .spawn(move || session(conn, console));
            }
            let _ = std::fs::remove_file(owned);
        })
        .map_err(|e| format!("console thread: {e}"))?;
    Ok(())
}

/// One client: requests until it hangs up or misbehaves.
fn session(conn: UnixStream, console: Sender<Envelope>) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = Vec::new();
        let n = match reader
            .by_ref()
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return; // the client hung up
        }
        if line.len() > MAX_REQUEST {
            let _ = send(
                &mut writer,
                &format!("request longer than {MAX_REQUEST} bytes: closing\n"),
            );
            return;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        let request = match text.split_at_checked(1) {
            Some(("C", rest)) => Request::Command(rest.trim_start().to_owned()),
            Some(("?", rest)) => {
                Request::Complete(rest.strip_prefix(' ').unwrap_or(rest).to_owned())
            }
            _ => {
                let _ = send(
                    &mut writer,
                    "bad request: send \"C <command>\" or \"? <partial command>\"\n",
                );
                continue;
            }
        };
        let (tx, rx) = mpsc::channel();
        if console.send(Envelope { request, reply: tx }).is_err() {
            let _ = send(&mut writer, "the appliance is stopping\n");
            return;
        }
        let answer = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| Answer::new("the appliance did not answer in 30 s\n".to_owned()));
        let written = send(&mut writer, &answer.text);
        // Delivered (or undeliverable): a main lcore waiting to exit may go.
        drop(answer);
        if written.is_err() {
            return; // gone mid-command: the appliance carries on
        }
    }
}

fn send(w: &mut UnixStream, text: &str) -> std::io::Result<()> {
    w.write_all(&(text.len() as u32).to_be_bytes())?;
    w.write_all(text.as_bytes())
}

/// A connection to a running appliance's control socket.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, String> {
        UnixStream::connect(path)
            .map(|stream| Client { stream })
            .map_err(|e| format!("cannot reach sluice at {}: {e}", path.display()))
    }

    fn ask(&mut self, kind: char, line: &str) -> Result<String, String> {
        let line = line.replace('\n', " ");
        self.stream
            .write_all(format!("{kind} {line}\n").as_bytes())
            .map_err(|e| format!("control socket: {e}"))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("control socket: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_REPLY {
            return Err(format!("control socket: answer of {len} bytes is too long"));
        }
        let mut buf = vec![0u8; len];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| format!("control socket: {e}"))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Runs a command; returns its output.
    pub fn command(&mut self, line: &str) -> Result<String, String> {
        self.ask('C', line)
    }

    /// The words that may follow `partial`.
    pub fn complete(&mut self, partial: &str) -> Result<Vec<String>, String> {
        Ok(self.ask('?', partial)?.lines().map(str::to_owned).collect())
    }
}
