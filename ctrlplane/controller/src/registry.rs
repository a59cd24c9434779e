//! What the controller knows about every appliance: for the sessions it
//! holds, the session, its policy (assigned, pushed, acked, nacked), its
//! last heartbeat and the commands sent to it; for the rest of the fleet,
//! what etcd says (who holds it, its record as that controller last wrote
//! it). One mutex; every critical section is short and does no I/O:
//! frames go to sessions through their queues, writes to etcd through the
//! fleet's queue (`fleet::Link`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ahash::{AHashMap, AHashSet};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::fleet::{Link, Op};
use super::history::{self, What};
use super::inventory::Workload;
use super::store::{self, Store};
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
    /// When its record was last written to etcd.
    recorded: Instant,
    address: String,
    session: Option<Live>,
    connected_since: Option<SystemTime>,
    last_seen: SystemTime,
    disconnect_reason: Option<String>,
    heartbeat: Option<(Instant, u64, Heartbeat)>,
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
    /// The controller holding its session, if one does.
    #[serde(default)]
    pub controller: Option<String>,
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
    /// When the last heartbeat arrived (ms since the epoch).
    #[serde(default)]
    pub heartbeat_unix_ms: Option<u64>,
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

/// One policy as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub name: String,
    /// The version served, if it ever compiled.
    pub version: Option<String>,
    /// Why it does not compile now (against the inventory).
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

/// A command waiting in etcd for the controller holding its appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommand {
    pub command: CommandKind,
    pub by: String,
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
    /// By name: those whose sessions this controller holds or held. Every
    /// message of every session looks its appliance up under the one
    /// mutex: a hash map keeps that short with thousands of appliances.
    /// What the operator reads is sorted by name.
    appliances: AHashMap<String, Record>,
    /// From etcd: who holds each session.
    owners: AHashMap<String, String>,
    /// From etcd: each appliance as its controller last recorded it.
    records: AHashMap<String, ApplianceView>,
    /// From etcd: commands waiting, by appliance and id.
    pending: AHashMap<String, BTreeMap<u64, PendingCommand>>,
    /// Commands sent here whose deletion etcd has not confirmed yet.
    delivered: AHashSet<u64>,
    next_session: u64,
    next_command: u64,
}

/// The controller's shared state.
pub(crate) struct Shared {
    pub opts: Options,
    pub link: Arc<Link>,
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

/// The record of `rec` as etcd keeps it.
fn record(link: &Link, rec: &Record, name: &str) -> Op {
    let view = view_of(rec, Some(link.id.clone()), Duration::MAX);
    Op::View {
        name: name.to_owned(),
        json: serde_json::to_string(&view).unwrap_or_default(),
    }
}

fn view_of(rec: &Record, controller: Option<String>, stale_after: Duration) -> ApplianceView {
    let hb_age = rec.heartbeat.as_ref().map(|(t, _, _)| t.elapsed());
    let connected = rec.session.is_some();
    let stale = connected
        && match (&rec.heartbeat, rec.connected_since) {
            (Some((t, _, _)), _) => t.elapsed() > stale_after,
            (None, Some(since)) => since.elapsed().unwrap_or_default() > stale_after,
            (None, None) => false,
        };
    let state = if !connected {
        "disconnected".to_owned()
    } else {
        rec.heartbeat
            .as_ref()
            .map_or_else(|| "connected".to_owned(), |(_, _, h)| h.state.clone())
    };
    ApplianceView {
        name: rec.hello.name.clone(),
        controller: if connected { controller } else { None },
        labels: rec.hello.labels.clone(),
        address: rec.address.clone(),
        sluice_version: rec.hello.sluice_version.clone(),
        capabilities: rec.hello.capabilities.clone(),
        ports: rec.hello.ports.clone(),
        connected,
        state,
        stale,
        heartbeat_age_ms: hb_age.map(|a| a.as_millis() as u64),
        heartbeat_unix_ms: rec.heartbeat.as_ref().map(|(_, ms, _)| *ms),
        heartbeat: rec.heartbeat.as_ref().map(|(_, _, h)| h.clone()),
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

/// Sends a command waiting in etcd to the session of `rec`; false when
/// the session is closing.
fn deliver(link: &Link, rec: &mut Record, id: u64, c: &PendingCommand) -> bool {
    let name = rec.hello.name.clone();
    let Ok(frame) = encode(&ControllerMsg::Command {
        id,
        command: c.command,
    }) else {
        return false;
    };
    let Some(live) = rec.session.as_mut() else {
        return false;
    };
    if !live.send(Arc::new(frame)) {
        return false;
    }
    if rec.commands.len() >= COMMAND_HISTORY {
        rec.commands.pop_front();
    }
    rec.commands.push_back(CommandView {
        id,
        command: c.command,
        sent_unix_s: unix_s(SystemTime::now()),
        ok: None,
        message: None,
    });
    log(format!("command {id} {} sent to {name}", c.command.name()));
    link.history(What::Command {
        appliance: name.clone(),
        id,
        command: c.command.name().to_owned(),
        by: c.by.clone(),
    });
    link.send(Op::Delivered { name, id });
    true
}

impl Shared {
    pub fn new(opts: Options, link: Arc<Link>) -> Self {
        Self {
            opts,
            link,
            state: Mutex::new(State {
                store: Store::default(),
                appliances: AHashMap::new(),
                owners: AHashMap::new(),
                records: AHashMap::new(),
                pending: AHashMap::new(),
                delivered: AHashSet::new(),
                next_session: 0,
                // Ids unique across controllers and restarts: they start
                // at the time in µs and count up.
                next_command: history::now_ms() * 1000,
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
        let link = &self.link;
        let reg = {
            let mut st = self.lock();
            st.next_session += 1;
            let id = st.next_session;
            let name = hello.name.clone();
            let now = SystemTime::now();
            let State {
                store,
                appliances,
                pending,
                delivered,
                ..
            } = &mut *st;
            let rec = appliances.entry(name.clone()).or_insert_with(|| Record {
                hello: hello.clone(),
                recorded: Instant::now(),
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
            rec.nack = None;
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
            let running = rec.acked.clone();
            link.send(Op::Own { name: name.clone() });
            link.history(What::Connected {
                appliance: name.clone(),
                address: peer.to_string(),
                running: running.clone(),
            });
            let running = running.as_deref().unwrap_or("none");
            match push {
                Some((v, f)) => {
                    logs.push(format!(
                        "appliance {name} connected from {peer}, runs {running}: pushing {v}"
                    ));
                    link.history(What::Push {
                        appliance: name.clone(),
                        version: v,
                    });
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
            rec.recorded = Instant::now();
            link.send(record(link, rec, &name));
            // Commands that waited for it (its old controller died with them).
            for (cid, c) in pending.get(&name).into_iter().flatten() {
                if delivered.insert(*cid) {
                    deliver(link, rec, *cid, c);
                }
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
                self.link.history(What::Disconnected {
                    appliance: name.to_owned(),
                    reason: reason.to_owned(),
                });
                self.link.send(record(&self.link, rec, name));
                self.link.send(Op::Disown {
                    name: name.to_owned(),
                });
            }
        }
    }

    /// A message from session `id` of `name`.
    pub fn on_message(&self, name: &str, id: u64, msg: ApplianceMsg) -> Result<(), String> {
        let link = &self.link;
        let line = {
            let mut st = self.lock();
            let Some(rec) = st.appliances.get_mut(name) else {
                return Err("session no longer registered".into());
            };
            if rec.session.as_ref().map(|s| s.id) != Some(id) {
                return Err("session replaced".into());
            }
            rec.last_seen = SystemTime::now();
            let mut write = true;
            let line = match msg {
                ApplianceMsg::Hello(_) => return Err("protocol error: a second hello".into()),
                ApplianceMsg::Ack { version } => {
                    let line = format!("appliance {name} acked policy {version}");
                    link.history(What::Ack {
                        appliance: name.to_owned(),
                        version: version.clone(),
                    });
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
                    link.history(What::Nack {
                        appliance: name.to_owned(),
                        version: version.clone(),
                        errors: errors.clone(),
                    });
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
                    let from = rec
                        .heartbeat
                        .as_ref()
                        .map_or("connected", |(_, _, p)| p.state.as_str());
                    let changed = from != h.state;
                    if changed {
                        link.history(What::State {
                            appliance: name.to_owned(),
                            from: from.to_owned(),
                            to: h.state.clone(),
                        });
                    }
                    // The registry in etcd follows state changes at once and
                    // heartbeats only now and then: thousands of appliances
                    // each second would be etcd's whole load.
                    write = changed || rec.recorded.elapsed() >= self.opts.record_every;
                    rec.heartbeat = Some((Instant::now(), history::now_ms(), h));
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
                    link.history(What::CommandResult {
                        appliance: name.to_owned(),
                        id: r.id,
                        ok: r.ok,
                        message: r.message.clone(),
                    });
                    if let Some(c) = rec.commands.iter_mut().find(|c| c.id == r.id) {
                        c.ok = Some(r.ok);
                        c.message = Some(r.message);
                    }
                    Some(line)
                }
            };
            if write {
                rec.recorded = Instant::now();
                link.send(record(link, rec, name));
            }
            line
        };
        if let Some(l) = line {
            log(l);
        }
        Ok(())
    }

    /// A policy's source as etcd now holds it (`None`: removed).
    pub fn set_policy(&self, name: &str, source: Option<String>) {
        let mut st = self.lock();
        let changed = match source {
            Some(s) => st.store.set_policy(name, s),
            None => st.store.remove_policy(name),
        };
        let error = st.store.policy(name).and_then(|p| p.error.clone());
        drop(st);
        if let Some(e) = error {
            log(format!("policy problem: {e}"));
        } else if changed {
            log(format!("policy {name} changed"));
        }
    }

    pub fn set_assignments(&self, text: Option<&str>) {
        let parsed = match text.map(|t| store::parse_assign(t, "assignments in etcd")) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                log(format!("{e} (the previous assignments stay)"));
                return;
            }
        };
        if self.lock().store.set_assignments(parsed) {
            log("assignments changed");
        }
    }

    pub fn set_workload(&self, name: &str, w: Option<Workload>) {
        let changed = self.lock().store.set_workload(name, w);
        for c in changed {
            log(format!("policy {c} recompiled: workload {name} changed"));
        }
    }

    /// Who holds `name`'s session, as etcd says; a session held here that
    /// another controller took over is closed.
    pub fn set_owner(&self, name: &str, owner: Option<String>) {
        let mut st = self.lock();
        match &owner {
            Some(o) if *o != self.link.id => {
                if let Some(live) = st.appliances.get_mut(name).and_then(|r| r.session.as_mut()) {
                    live.close(format!("the appliance's session moved to controller {o}"));
                }
            }
            _ => {}
        }
        match owner {
            Some(o) => st.owners.insert(name.to_owned(), o),
            None => st.owners.remove(name),
        };
    }

    /// An appliance's record as etcd now holds it (`None`: its
    /// registration expired: forgotten here too, unless it is back in a
    /// session here).
    pub fn set_record(&self, name: &str, json: Option<&str>) {
        let mut st = self.lock();
        match json.map(serde_json::from_str::<ApplianceView>) {
            Some(Ok(v)) => {
                st.records.insert(name.to_owned(), v);
            }
            Some(Err(_)) => {}
            None => {
                st.records.remove(name);
                if st.appliances.get(name).is_some_and(|r| r.session.is_none()) {
                    st.appliances.remove(name);
                }
            }
        }
    }

    /// A command waiting in etcd (`None`: no longer); sent at once when
    /// this controller holds the appliance.
    pub fn set_pending(&self, name: &str, id: u64, json: Option<&str>) {
        let mut st = self.lock();
        let State {
            appliances,
            pending,
            delivered,
            ..
        } = &mut *st;
        match json.map(serde_json::from_str::<PendingCommand>) {
            Some(Ok(c)) => {
                if let Some(rec) = appliances.get_mut(name) {
                    if rec.session.is_some() && delivered.insert(id) {
                        deliver(&self.link, rec, id, &c);
                    }
                }
                pending.entry(name.to_owned()).or_default().insert(id, c);
            }
            Some(Err(_)) => {}
            None => {
                delivered.remove(&id);
                if let Some(p) = pending.get_mut(name) {
                    p.remove(&id);
                    if p.is_empty() {
                        pending.remove(name);
                    }
                }
            }
        }
    }

    /// The appliances whose sessions this controller holds.
    pub fn held(&self) -> Vec<String> {
        let st = self.lock();
        st.appliances
            .values()
            .filter(|r| r.session.is_some())
            .map(|r| r.hello.name.clone())
            .collect()
    }

    /// Appliances no controller holds, not seen for longer than `after`.
    pub fn expired(&self, after: Duration) -> Vec<String> {
        let st = self.lock();
        let limit = unix_s(SystemTime::now()).saturating_sub(after.as_secs());
        let mut out: Vec<String> = st
            .records
            .values()
            .filter(|r| !st.owners.contains_key(&r.name) && r.last_seen_unix_s < limit)
            .map(|r| r.name.clone())
            .collect();
        out.sort_unstable();
        out
    }

    /// After a change of policies, assignments or inventory: pushes what
    /// changed to every session held here that it concerns; how many.
    pub fn resync(&self) -> usize {
        let mut pushes = Vec::new();
        {
            let mut st = self.lock();
            let State {
                store, appliances, ..
            } = &mut *st;
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
                    self.link.history(What::Push {
                        appliance: name.clone(),
                        version: v.clone(),
                    });
                    pushes.push((name, v));
                }
            }
        }
        pushes.sort_unstable();
        if !pushes.is_empty() {
            log(format!(
                "pushed to {} appliance(s){}",
                pushes.len(),
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
        pushes.len()
    }

    /// Queues a command in etcd for one appliance or (`None`) every
    /// connected one; whichever controller holds each sends it. Returns
    /// who gets which command id.
    pub fn command(
        &self,
        target: Option<&str>,
        command: CommandKind,
        by: &str,
    ) -> Result<Vec<(String, u64)>, String> {
        let mut st = self.lock();
        let names: Vec<String> = match target {
            Some(name) => {
                // Held here, or by another controller as etcd says (what
                // etcd says of this one lags behind its sessions).
                let here = st.appliances.get(name).is_some_and(|r| r.session.is_some());
                if !here && !self.elsewhere(&st, name) {
                    return Err(
                        if st.records.contains_key(name) || st.appliances.contains_key(name) {
                            format!("appliance {name} is not connected")
                        } else {
                            format!("no appliance {name:?}")
                        },
                    );
                }
                vec![name.to_owned()]
            }
            None => {
                // In name order, as the operator reads the answer.
                let mut n: Vec<String> = st
                    .appliances
                    .values()
                    .filter(|r| r.session.is_some())
                    .map(|r| r.hello.name.clone())
                    .chain(st.owners.keys().filter(|k| self.elsewhere(&st, k)).cloned())
                    .collect();
                n.sort_unstable();
                n.dedup();
                n
            }
        };
        let pending = PendingCommand {
            command,
            by: by.to_owned(),
        };
        let json = serde_json::to_string(&pending).map_err(|e| e.to_string())?;
        let mut sent = Vec::new();
        for name in names {
            st.next_command += 1;
            let id = st.next_command;
            self.link.send(Op::Queue {
                name: name.clone(),
                id,
                json: json.clone(),
            });
            sent.push((name, id));
        }
        Ok(sent)
    }

    /// Another controller holds `name`'s session, as etcd says.
    fn elsewhere(&self, st: &State, name: &str) -> bool {
        st.owners.get(name).is_some_and(|o| *o != self.link.id)
    }

    fn view(&self, st: &State, name: &str) -> Option<ApplianceView> {
        let stale_after = self.opts.heartbeat * 3;
        let local = st.appliances.get(name);
        if let Some(rec) = local.filter(|r| r.session.is_some()) {
            return Some(view_of(rec, Some(self.link.id.clone()), stale_after));
        }
        let owner = st.owners.get(name).filter(|o| **o != self.link.id).cloned();
        let mut v = match (st.records.get(name), local) {
            (Some(r), _) => r.clone(),
            (None, Some(rec)) => view_of(rec, None, stale_after),
            (None, None) => return None,
        };
        v.connected = owner.is_some();
        v.controller = owner;
        if v.connected {
            let age = v
                .heartbeat_unix_ms
                .map(|ms| history::now_ms().saturating_sub(ms));
            v.heartbeat_age_ms = age;
            // Another controller's record is as fresh as its last write.
            let limit = (stale_after + self.opts.record_every).as_millis() as u64;
            v.stale = age.is_some_and(|a| a > limit);
        } else {
            v.state = "disconnected".into();
            v.stale = false;
        }
        Some(v)
    }

    fn names(st: &State) -> Vec<String> {
        let mut names: Vec<String> = st
            .appliances
            .keys()
            .chain(st.records.keys())
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The whole fleet, in name order.
    pub fn list(&self) -> Vec<ApplianceView> {
        let st = self.lock();
        Self::names(&st)
            .iter()
            .filter_map(|n| self.view(&st, n))
            .collect()
    }

    pub fn show(&self, name: &str) -> Option<ApplianceView> {
        let st = self.lock();
        self.view(&st, name)
    }

    pub fn policies(&self) -> Vec<PolicyView> {
        let list = self.list();
        let st = self.lock();
        let mut out: Vec<PolicyView> = st
            .store
            .policies()
            .map(|p| PolicyView {
                name: p.name.clone(),
                version: p.served.as_ref().map(|s| s.version.clone()),
                error: p.error.clone(),
                appliances: list
                    .iter()
                    .filter(|a| a.policy.as_deref() == Some(p.name.as_str()))
                    .count(),
            })
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn summary(&self) -> Summary {
        let list = self.list();
        let st = self.lock();
        let mut s = Summary {
            appliances: list.len(),
            policies: st.store.policies().count(),
            policy_errors: st.store.policies().filter(|p| p.error.is_some()).count(),
            ..Summary::default()
        };
        drop(st);
        for a in list.iter().filter(|a| a.connected) {
            s.connected += 1;
            s.in_sync += usize::from(a.in_sync);
            s.stale += usize::from(a.stale);
            s.nacked += usize::from(a.nack.is_some());
            if let Some(v) = &a.acked {
                *s.acked.entry(v.clone()).or_default() += 1;
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
        let dir = std::env::temp_dir();
        let opts = Options::new(
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("admin.sock"),
        );
        let (link, mut ops) = Link::new("c1".into());
        let shared = Shared::new(opts, Arc::new(link));
        for p in ["web", "base", "paris", "core"] {
            shared.set_policy(p, Some(format!("version = \"{p}\"\n")));
        }
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
        // Each session claimed its ownership in etcd, in the order they came.
        let mut owned = Vec::new();
        while let Ok(op) = ops.try_recv() {
            if let Op::Own { name } = op {
                owned.push(name);
            }
        }
        assert_eq!(owned, names);
        // As etcd's watch would report it back.
        for n in &names {
            shared.set_owner(n, Some("c1".into()));
        }
        let sent = shared.command(None, CommandKind::Stop, "test").unwrap();
        let to: Vec<String> = sent.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(to, sorted);
        assert!(
            sent.windows(2).all(|w| w[0].1 < w[1].1),
            "ids rise in name order"
        );
        assert!(shared
            .command(Some("nope"), CommandKind::Stop, "test")
            .is_err());
    }
}
