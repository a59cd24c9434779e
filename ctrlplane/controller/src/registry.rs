//! What the controller knows about every appliance: its session, its
//! policy (assigned, pushed, acked, nacked), its last heartbeat and the
//! commands sent to it. One mutex; every critical section is short and
//! does no I/O (frames go to sessions through their queues).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::store::{ScanReport, Store};
use super::{log, Options};
use sluice_protocol::{
    encode, ApplianceMsg, CommandKind, ControllerMsg, Heartbeat, Hello, PortInfo, PROTOCOL_VERSION,
};

/// Frames queued for one session; a session that lets this many pile up
/// is not reading and is closed (it resyncs when it comes back).
pub const SEND_QUEUE: usize = 64;
/// Commands remembered per appliance.
const COMMAND_HISTORY: usize = 16;

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

struct Live {
    id: u64,
    tx: mpsc::Sender<Arc<Vec<u8>>>,
    kill: Option<oneshot::Sender<String>>,
}

impl Live {
    /// Queues a frame; a full queue closes the session.
    fn send(&mut self, frame: Arc<Vec<u8>>) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close("send queue full: the appliance is not reading".into());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn close(&mut self, reason: String) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(reason);
        }
    }
}

struct Record {
    hello: Hello,
    address: String,
    session: Option<Live>,
    connected_since: Option<SystemTime>,
    last_seen: SystemTime,
    disconnect_reason: Option<String>,
    heartbeat: Option<(Instant, Heartbeat)>,
    assigned: Option<String>,
    desired: Option<String>,
    pushed: Option<String>,
    acked: Option<String>,
    nack: Option<NackView>,
    commands: VecDeque<CommandView>,
}

/// A refused policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackView {
    pub version: String,
    pub errors: Vec<String>,
    pub at_unix_s: u64,
}

/// A command sent to an appliance and, once it answered, how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandView {
    pub id: u64,
    pub command: CommandKind,
    pub sent_unix_s: u64,
    pub ok: Option<bool>,
    pub message: Option<String>,
}

/// One appliance as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub address: String,
    pub sluice_version: String,
    pub capabilities: Vec<String>,
    pub ports: Vec<PortInfo>,
    pub connected: bool,
    /// The state from the last heartbeat, or `connected` before one,
    /// or `disconnected`.
    pub state: String,
    /// Connected, but no heartbeat for three heartbeat intervals.
    pub stale: bool,
    pub heartbeat_age_ms: Option<u64>,
    pub heartbeat: Option<Heartbeat>,
    pub connected_since_unix_s: Option<u64>,
    pub last_seen_unix_s: u64,
    pub disconnect_reason: Option<String>,
    /// The policy name assigned to it.
    pub policy: Option<String>,
    /// The version it should run (what is served of that policy).
    pub desired: Option<String>,
    pub pushed: Option<String>,
    pub acked: Option<String>,
    /// It runs the version it should.
    pub in_sync: bool,
    pub nack: Option<NackView>,
    pub commands: Vec<CommandView>,
}

/// One policy file as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub name: String,
    pub file: String,
    /// The version served, if the file ever parsed.
    pub version: Option<String>,
    /// Why the file as it is now is not served.
    pub error: Option<String>,
    /// Appliances it is assigned to (connected or not).
    pub appliances: usize,
}

/// The fleet in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub appliances: usize,
    pub connected: usize,
    pub in_sync: usize,
    pub stale: usize,
    pub nacked: usize,
    /// Connected appliances per acked version.
    pub acked: BTreeMap<String, usize>,
    pub policies: usize,
    pub policy_errors: usize,
}

/// What a `push` (rescan) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    #[serde(flatten)]
    pub scan: ScanReport,
    /// Sessions a policy frame was queued for.
    pub pushed: usize,
}

/// A session's registration.
pub(crate) struct Registered {
    pub id: u64,
    pub rx: mpsc::Receiver<Arc<Vec<u8>>>,
    pub kill: oneshot::Receiver<String>,
    /// HelloAck and, when needed, the policy: the first frames to send.
    pub first: Vec<Arc<Vec<u8>>>,
}

struct State {
    store: Store,
    /// By name. Every message of every session looks its appliance up
    /// under the one mutex: a hash map keeps that short with thousands of
    /// appliances. What the operator reads is sorted by name.
    appliances: AHashMap<String, Record>,
    next_session: u64,
    next_command: u64,
}

/// The controller's shared state.
pub(crate) struct Shared {
    pub opts: Options,
    state: Mutex<State>,
    /// TCP connections open (handshaking or in session).
    pub open: AtomicUsize,
}

/// Points `rec` at what it should run; the frame to push if that is not
/// what was last pushed to it.
fn sync(rec: &mut Record, store: &Store) -> Option<(String, Arc<Vec<u8>>)> {
    let (policy, served) = store.policy_for(&rec.hello.name, &rec.hello.labels);
    rec.assigned = policy;
    rec.desired = served.map(|s| s.version.clone());
    let s = served?;
    if rec.pushed.as_deref() == Some(s.version.as_str()) {
        return None;
    }
    rec.pushed = Some(s.version.clone());
    Some((s.version.clone(), s.frame.clone()))
}

impl Shared {
    pub fn new(opts: Options, store: Store) -> Self {
        Self {
            opts,
            state: Mutex::new(State {
                store,
                appliances: AHashMap::new(),
                next_session: 0,
                next_command: 0,
            }),
            open: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session said hello: it replaces any older session of that name.
    pub fn register(&self, hello: Hello, peer: SocketAddr) -> Result<Registered, String> {
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let (kill_tx, kill) = oneshot::channel();
        let mut logs = Vec::new();
        let reg = {
            let mut st = self.lock();
            st.next_session += 1;
            let id = st.next_session;
            let name = hello.name.clone();
            let now = SystemTime::now();
            let State {
                store, appliances, ..
            } = &mut *st;
            let rec = appliances.entry(name.clone()).or_insert_with(|| Record {
                hello: hello.clone(),
                address: String::new(),
                session: None,
                connected_since: None,
                last_seen: now,
                disconnect_reason: None,
                heartbeat: None,
                assigned: None,
                desired: None,
                pushed: None,
                acked: None,
                nack: None,
                commands: VecDeque::new(),
            });
            if let Some(mut old) = rec.session.take() {
                old.close(format!("replaced by a new session from {peer}"));
                logs.push(format!(
                    "appliance {name}: a new session from {peer} replaces the old one"
                ));
            }
            rec.pushed = hello.policy_version.clone();
            rec.acked = hello.policy_version.clone();
            rec.hello = hello;
            rec.address = peer.to_string();
            rec.session = Some(Live {
                id,
                tx,
                kill: Some(kill_tx),
            });
            rec.connected_since = Some(now);
            rec.last_seen = now;
            rec.disconnect_reason = None;
            rec.heartbeat = None;
            let push = sync(rec, store);
            let ack = encode(&ControllerMsg::HelloAck {
                controller_version: env!("CARGO_PKG_VERSION").into(),
                protocol_version: PROTOCOL_VERSION,
                keepalive_ms: self.opts.keepalive.as_millis() as u64,
                heartbeat_ms: self.opts.heartbeat.as_millis() as u64,
                policy: rec.assigned.clone(),
            })
            .map_err(|e| e.to_string())?;
            let mut first = vec![Arc::new(ack)];
            let running = rec.acked.as_deref().unwrap_or("none");
            match push {
                Some((v, f)) => {
                    logs.push(format!(
                        "appliance {name} connected from {peer}, runs {running}: pushing {v}"
                    ));
                    first.push(f);
                }
                None => logs.push(format!(
                    "appliance {name} connected from {peer}, runs {running}: {}",
                    match (&rec.assigned, &rec.desired) {
                        (None, _) => "no policy assigned".to_owned(),
                        (Some(p), None) => format!("policy {p} has no servable version"),
                        (Some(_), Some(_)) => "in sync".to_owned(),
                    }
                )),
            }
            Registered {
                id,
                rx,
                kill,
                first,
            }
        };
        for l in logs {
            log(l);
        }
        Ok(reg)
    }

    /// The session `id` of `name` ended.
    pub fn unregister(&self, name: &str, id: u64, reason: &str) {
        let mut st = self.lock();
        if let Some(rec) = st.appliances.get_mut(name) {
            if rec.session.as_ref().map(|s| s.id) == Some(id) {
                rec.session = None;
                rec.connected_since = None;
                rec.last_seen = SystemTime::now();
                rec.disconnect_reason = Some(reason.to_owned());
            }
        }
    }

    /// A message from session `id` of `name`.
    pub fn on_message(&self, name: &str, id: u64, msg: ApplianceMsg) -> Result<(), String> {
        let line = {
            let mut st = self.lock();
            let Some(rec) = st.appliances.get_mut(name) else {
                return Err("session no longer registered".into());
            };
            if rec.session.as_ref().map(|s| s.id) != Some(id) {
                return Err("session replaced".into());
            }
            rec.last_seen = SystemTime::now();
            match msg {
                ApplianceMsg::Hello(_) => return Err("protocol error: a second hello".into()),
                ApplianceMsg::Ack { version } => {
                    let line = format!("appliance {name} acked policy {version}");
                    rec.acked = Some(version);
                    rec.nack = None;
                    Some(line)
                }
                ApplianceMsg::Nack { version, errors } => {
                    let line = format!(
                        "appliance {name} nacked policy {version}: {} error(s): {}",
                        errors.len(),
                        errors.join("; ")
                    );
                    rec.nack = Some(NackView {
                        version,
                        errors,
                        at_unix_s: unix_s(SystemTime::now()),
                    });
                    Some(line)
                }
                ApplianceMsg::Heartbeat(h) => {
                    // The first of a session is worth a line; the rest are not.
                    let line = rec.heartbeat.is_none().then(|| {
                        format!(
                            "appliance {name}: heartbeats flowing, state {}, policy {}",
                            h.state,
                            h.policy_version.as_deref().unwrap_or("none")
                        )
                    });
                    rec.heartbeat = Some((Instant::now(), h));
                    line
                }
                ApplianceMsg::CommandResult(r) => {
                    let line = format!(
                        "appliance {name} command {} {}: {}{}",
                        r.id,
                        r.command.name(),
                        if r.ok { "done" } else { "failed" },
                        if r.message.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", r.message)
                        }
                    );
                    if let Some(c) = rec.commands.iter_mut().find(|c| c.id == r.id) {
                        c.ok = Some(r.ok);
                        c.message = Some(r.message);
                    }
                    Some(line)
                }
            }
        };
        if let Some(l) = line {
            log(l);
        }
        Ok(())
    }

    /// Reads the policy directory again and pushes what changed to every
    /// affected appliance.
    pub fn rescan(&self) -> PushReport {
        let mut pushes = Vec::new();
        let report = {
            let mut st = self.lock();
            let State {
                store, appliances, ..
            } = &mut *st;
            let scan = store.scan();
            let mut pushed = 0;
            if !scan.changed.is_empty() || scan.assignments_changed {
                for rec in appliances.values_mut() {
                    if rec.session.is_none() {
                        continue;
                    }
                    let Some((v, frame)) = sync(rec, store) else {
                        continue;
                    };
                    let name = rec.hello.name.clone();
                    let Some(live) = rec.session.as_mut() else {
                        continue;
                    };
                    if live.send(frame) {
                        pushed += 1;
                        pushes.push((name, v));
                    }
                }
            }
            PushReport { scan, pushed }
        };
        pushes.sort_unstable();
        for p in &report.scan.problems {
            log(format!("policy problem: {p}"));
        }
        for c in &report.scan.changed {
            log(format!("policy {c} changed"));
        }
        if report.scan.assignments_changed {
            log("assignments changed");
        }
        if report.pushed > 0 {
            log(format!(
                "pushed to {} appliance(s){}",
                report.pushed,
                if pushes.len() <= 8 {
                    format!(
                        ": {}",
                        pushes
                            .iter()
                            .map(|(n, v)| format!("{n} ← {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            ));
        }
        report
    }

    /// Sends a command to one appliance or (`None`) every connected one;
    /// returns who got which command id.
    pub fn command(
        &self,
        target: Option<&str>,
        command: CommandKind,
    ) -> Result<Vec<(String, u64)>, String> {
        let sent = {
            let mut st = self.lock();
            let State {
                appliances,
                next_command,
                ..
            } = &mut *st;
            let mut sent = Vec::new();
            let mut send = |rec: &mut Record| -> Result<(), String> {
                let Some(live) = rec.session.as_mut() else {
                    return Err(format!("appliance {} is not connected", rec.hello.name));
                };
                *next_command += 1;
                let id = *next_command;
                let frame =
                    encode(&ControllerMsg::Command { id, command }).map_err(|e| e.to_string())?;
                if !live.send(Arc::new(frame)) {
                    return Err(format!("appliance {}: session closing", rec.hello.name));
                }
                if rec.commands.len() >= COMMAND_HISTORY {
                    rec.commands.pop_front();
                }
                rec.commands.push_back(CommandView {
                    id,
                    command,
                    sent_unix_s: unix_s(SystemTime::now()),
                    ok: None,
                    message: None,
                });
                sent.push((rec.hello.name.clone(), id));
                Ok(())
            };
            match target {
                Some(name) => {
                    let rec = appliances
                        .get_mut(name)
                        .ok_or_else(|| format!("no appliance {name:?}"))?;
                    send(rec)?;
                }
                None => {
                    // In name order, as the operator reads the answer.
                    let mut names: Vec<String> = appliances
                        .iter()
                        .filter(|(_, r)| r.session.is_some())
                        .map(|(n, _)| n.clone())
                        .collect();
                    names.sort_unstable();
                    for n in &names {
                        if let Some(rec) = appliances.get_mut(n) {
                            // One closing session does not stop the others.
                            let _ = send(rec);
                        }
                    }
                }
            }
            sent
        };
        for (n, id) in &sent {
            log(format!("command {id} {} sent to {n}", command.name()));
        }
        Ok(sent)
    }

    /// Connected, and no heartbeat for three intervals.
    fn stale(&self, rec: &Record) -> bool {
        let stale_after = self.opts.heartbeat * 3;
        rec.session.is_some()
            && match (&rec.heartbeat, rec.connected_since) {
                (Some((t, _)), _) => t.elapsed() > stale_after,
                (None, Some(since)) => since.elapsed().unwrap_or_default() > stale_after,
                (None, None) => false,
            }
    }

    fn view(&self, rec: &Record) -> ApplianceView {
        let hb_age = rec.heartbeat.as_ref().map(|(t, _)| t.elapsed());
        let connected = rec.session.is_some();
        let stale = self.stale(rec);
        let state = if !connected {
            "disconnected".to_owned()
        } else {
            rec.heartbeat
                .as_ref()
                .map_or_else(|| "connected".to_owned(), |(_, h)| h.state.clone())
        };
        ApplianceView {
            name: rec.hello.name.clone(),
            labels: rec.hello.labels.clone(),
            address: rec.address.clone(),
            sluice_version: rec.hello.sluice_version.clone(),
            capabilities: rec.hello.capabilities.clone(),
            ports: rec.hello.ports.clone(),
            connected,
            state,
            stale,
            heartbeat_age_ms: hb_age.map(|a| a.as_millis() as u64),
            heartbeat: rec.heartbeat.as_ref().map(|(_, h)| h.clone()),
            connected_since_unix_s: rec.connected_since.map(unix_s),
            last_seen_unix_s: unix_s(rec.last_seen),
            disconnect_reason: rec.disconnect_reason.clone(),
            policy: rec.assigned.clone(),
            desired: rec.desired.clone(),
            pushed: rec.pushed.clone(),
            acked: rec.acked.clone(),
            in_sync: rec.desired == rec.acked,
            nack: rec.nack.clone(),
            commands: rec.commands.iter().cloned().collect(),
        }
    }

    pub fn list(&self) -> Vec<ApplianceView> {
        let st = self.lock();
        let mut list: Vec<ApplianceView> = st.appliances.values().map(|r| self.view(r)).collect();
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        list
    }

    pub fn show(&self, name: &str) -> Option<ApplianceView> {
        let st = self.lock();
        st.appliances.get(name).map(|r| self.view(r))
    }

    pub fn policies(&self) -> Vec<PolicyView> {
        let st = self.lock();
        let mut list: Vec<PolicyView> = st
            .store
            .policies()
            .map(|p| PolicyView {
                name: p.name.clone(),
                file: p.file.display().to_string(),
                version: p.served.as_ref().map(|s| s.version.clone()),
                error: p.error.clone(),
                appliances: st
                    .appliances
                    .values()
                    .filter(|r| r.assigned.as_deref() == Some(p.name.as_str()))
                    .count(),
            })
            .collect();
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        list
    }

    pub fn summary(&self) -> Summary {
        let st = self.lock();
        let mut s = Summary {
            appliances: st.appliances.len(),
            policies: st.store.policies().count(),
            policy_errors: st.store.policies().filter(|p| p.error.is_some()).count()
                + usize::from(st.store.assign_error().is_some()),
            ..Summary::default()
        };
        for r in st.appliances.values() {
            if r.session.is_none() {
                continue;
            }
            s.connected += 1;
            s.in_sync += usize::from(r.desired == r.acked);
            s.stale += usize::from(self.stale(r));
            s.nacked += usize::from(r.nack.is_some());
            if let Some(a) = &r.acked {
                *s.acked.entry(a.clone()).or_default() += 1;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str) -> Hello {
        Hello {
            name: name.into(),
            labels: BTreeMap::new(),
            sluice_version: "test".into(),
            protocol_version: PROTOCOL_VERSION,
            capabilities: Vec::new(),
            ports: Vec::new(),
            policy_version: None,
        }
    }

    #[test]
    fn the_operator_reads_appliances_policies_and_commands_in_name_order() {
        let dir = std::env::temp_dir().join(format!("sluice-registry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for p in ["web", "base", "paris", "core"] {
            std::fs::write(
                dir.join(format!("{p}.toml")),
                format!("version = \"{p}\"\n"),
            )
            .unwrap();
        }
        let opts = Options::new(
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.clone(),
            dir.join("admin.sock"),
        );
        let shared = Shared::new(opts, Store::new(&dir));
        shared.rescan();
        // Registered in an order that is neither sorted nor reversed.
        let names: Vec<String> = (0..32)
            .map(|i| format!("tap-{:02}", (i * 7) % 32))
            .collect();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // The sessions' queues stay open while the test holds them.
        let _sessions: Vec<Registered> = names
            .iter()
            .map(|n| shared.register(hello(n), peer).unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();

        let listed: Vec<String> = shared.list().into_iter().map(|a| a.name).collect();
        assert_eq!(listed, sorted);
        let policies: Vec<String> = shared.policies().into_iter().map(|p| p.name).collect();
        assert_eq!(policies, ["base", "core", "paris", "web"]);
        let sent = shared.command(None, CommandKind::Stop).unwrap();
        let to: Vec<String> = sent.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(to, sorted);
        assert!(
            sent.windows(2).all(|w| w[0].1 < w[1].1),
            "ids rise in name order"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
