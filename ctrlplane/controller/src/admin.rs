//! The operator's interface: a Unix socket (mode 0600: the controller's
//! user only) speaking one JSON request per line, one JSON answer
//! per line. `sluice-controller list|show|policies|summary|command` are
//! its clients. What it answers is the whole fleet as this controller
//! sees it through etcd; a command is queued in etcd for whichever
//! controller holds the appliance.
//!
//! ```text
//! → {"op":"list"}
//! ← {"ok":true,"appliances":[{...}, ...]}
//! → {"op":"command","target":"tap-01","command":"stop"}
//! ← {"ok":true,"sent":[["tap-01",7]]}
//! → {"op":"show","name":"nope"}
//! ← {"ok":false,"error":"no appliance \"nope\""}
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::UnixListener;

use super::log;
use super::registry::Shared;
use sluice_protocol::CommandKind;

/// The longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// An operator request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Every appliance the controller has seen, with its state.
    List,
    /// One appliance.
    Show { name: String },
    /// Every policy: version served, error.
    Policies,
    /// Counts: connected, in sync, stale, nacked, per acked version.
    Summary,
    /// Send a command to one appliance, or every connected one (`target`
    /// absent).
    Command {
        #[serde(default)]
        target: Option<String>,
        command: CommandKind,
        /// Who asks, for the history.
        #[serde(default)]
        by: String,
    },
}

/// Binds the admin socket, replacing a stale one left by a dead controller
/// (but not a live one).
pub(crate) fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "admin socket {}: another controller is listening there",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
        }
    }
    let l =
        UnixListener::bind(path).map_err(|e| format!("admin socket {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
    Ok(l)
}

fn answer(shared: &Shared, line: &str) -> Value {
    let req: AdminRequest = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    match req {
        AdminRequest::List => json!({"ok": true, "appliances": shared.list()}),
        AdminRequest::Show { name } => match shared.show(&name) {
            Some(v) => json!({"ok": true, "appliance": v}),
            None => json!({"ok": false, "error": format!("no appliance {name:?}")}),
        },
        AdminRequest::Policies => json!({"ok": true, "policies": shared.policies()}),
        AdminRequest::Summary => json!({"ok": true, "summary": shared.summary()}),
        AdminRequest::Command {
            target,
            command,
            by,
        } => {
            let by = if by.is_empty() { "admin socket" } else { &by };
            match shared.command(target.as_deref(), command, by) {
                Ok(sent) => json!({"ok": true, "sent": sent}),
                Err(e) => json!({"ok": false, "error": e}),
            }
        }
    }
}

/// Serves the admin socket until the runtime stops.
pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log(format!("admin socket: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = TokioBufReader::new(rd);
            let mut line = String::new();
            loop {
                line.clear();
                let mut limited = (&mut rd).take(MAX_REQUEST as u64);
                match limited.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if !line.ends_with('\n') && line.len() >= MAX_REQUEST {
                    let _ = wr
                        .write_all(b"{\"ok\":false,\"error\":\"request too long\"}\n")
                        .await;
                    return;
                }
                // The registry's mutex: off the async workers.
                let sh = shared.clone();
                let req = line.trim().to_owned();
                let reply = tokio::task::spawn_blocking(move || answer(&sh, &req))
                    .await
                    .unwrap_or_else(|e| json!({"ok": false, "error": format!("internal: {e}")}));
                let mut out = reply.to_string();
                out.push('\n');
                if wr.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Sends one request to the controller at `socket`; the answer's payload,
/// or the controller's error.
pub fn request(socket: &Path, req: &AdminRequest) -> Result<Value, String> {
    let what = socket.display();
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("admin socket {what}: {e} (is sluice-controller serving?)"))?;
    let t = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(t)
        .and_then(|()| stream.set_write_timeout(t))
        .map_err(|e| format!("admin socket {what}: {e}"))?;
    let mut body = serde_json::to_string(req).map_err(|e| e.to_string())?;
    body.push('\n');
    (&stream)
        .write_all(body.as_bytes())
        .map_err(|e| format!("admin socket {what}: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("admin socket {what}: {e}"))?;
    let v: Value =
        serde_json::from_str(&line).map_err(|e| format!("admin socket {what}: bad answer: {e}"))?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v)
    } else {
        Err(v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the controller gave no reason")
            .to_owned())
    }
}

/// Sends `req` and decodes the field `key` of the answer.
pub fn request_as<T: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &AdminRequest,
    key: &str,
) -> Result<T, String> {
    let mut v = request(socket, req)?;
    let field = v
        .get_mut(key)
        .map(Value::take)
        .ok_or_else(|| format!("answer without {key:?}"))?;
    serde_json::from_value(field).map_err(|e| format!("answer's {key:?}: {e}"))
}
