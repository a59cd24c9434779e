//! Fleet state in etcd: the one store every controller shares.
//!
//! Keys, under a prefix (`/sluice/` by default):
//!
//! ```text
//! policy/<name>            the policy's source (TOML), as imported
//! assign                   assign.toml
//! workload/<name>          inventory: {"name","addresses","labels"} (JSON)
//! appliance/<name>         the registry: the appliance as its controller last saw it (JSON)
//! session/<name>           the controller holding its session; under that controller's lease
//! controller/<id>          a live controller ({"listen"}); under its lease
//! command/<name>/<id>      a command waiting for the controller that holds <name>
//! history/<ms>-<ctl>-<seq> one event (`history`)
//! election/jobs            etcd's election: who runs the run-once jobs (`jobs`)
//! ```
//!
//! Every controller loads it all at start and then follows a watch on the
//! prefix, so a change written by any controller (or by an import) reaches
//! all of them; each pushes to the appliances whose sessions it holds.
//! Writes made on behalf of sessions (registry, ownership, history) go
//! through one queue and one task (`writer`), in order, batched into
//! transactions, retried while etcd is unreachable, so no session ever
//! waits on etcd. Ownership keys live under the controller's lease: when
//! a controller dies its lease expires within its TTL and every other
//! controller sees its appliances as disconnected at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, KeyValue, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::history::{self, Event, What};
use crate::inventory::Workload;
use crate::log;
use crate::registry::Shared;
use crate::store;

/// How to reach etcd. TLS with a client certificate, always.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// PEM: the CA that issued etcd's certificates.
    pub ca: PathBuf,
    /// PEM: this client's certificate chain and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Every key lives under it (several fleets can share one etcd).
    pub prefix: String,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("etcd {what} {}: {e}", path.display()))
}

fn err(what: &str) -> impl Fn(etcd_client::Error) -> String + '_ {
    move |e| format!("etcd: {what}: {e}")
}

fn connect_options(o: &EtcdOptions, timeout: Duration) -> Result<ConnectOptions, String> {
    for e in &o.endpoints {
        if !e.starts_with("https://") {
            return Err(format!(
                "etcd endpoint {e:?}: must be https://host:port (etcd is reached over TLS only)"
            ));
        }
    }
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&o.ca, "CA")?))
        .identity(Identity::from_pem(
            read(&o.cert, "certificate")?,
            read(&o.key, "key")?,
        ));
    Ok(ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(timeout)
        .with_timeout(timeout.max(Duration::from_secs(5)))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2)))
}

/// Whether member `endpoint` answers now.
async fn alive(endpoint: &str, opts: &ConnectOptions) -> bool {
    let probe = async {
        let mut c = Client::connect([endpoint], Some(opts.clone())).await.ok()?;
        c.status().await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Connects to etcd over TLS with the client certificate, through the
/// members that answer now. etcd's client spreads requests over the
/// endpoints it was given and does not skip a dead one: a controller
/// keeps the set current with [`follow_members`].
pub async fn connect(o: &EtcdOptions) -> Result<Client, String> {
    if o.endpoints.is_empty() {
        return Err("etcd: no endpoint given".into());
    }
    let opts = connect_options(o, Duration::from_secs(1))?;
    let mut live = Vec::new();
    for e in &o.endpoints {
        if alive(e, &opts).await {
            live.push(e.clone());
        }
    }
    if live.is_empty() {
        return Err(format!(
            "etcd {}: no member answers (TLS, client certificate {})",
            o.endpoints.join(","),
            o.cert.display()
        ));
    }
    Client::connect(&live, Some(connect_options(o, Duration::from_secs(3))?))
        .await
        .map_err(|e| format!("etcd {}: {e}", live.join(",")))
}

/// Keeps the client's endpoints those of the members that answer: a
/// member that dies is taken out within a second, and put back when it
/// answers again. Every clone of the client shares the set.
pub(crate) async fn follow_members(client: Client, o: EtcdOptions) {
    let Ok(opts) = connect_options(&o, Duration::from_secs(1)) else {
        return;
    };
    let mut used: Vec<bool> = vec![false; o.endpoints.len()];
    // What `connect` chose.
    for (i, e) in o.endpoints.iter().enumerate() {
        used[i] = alive(e, &opts).await;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (i, e) in o.endpoints.iter().enumerate() {
            let up = alive(e, &opts).await;
            if up == used[i] {
                continue;
            }
            let done = if up {
                client.add_endpoint(e).await
            } else {
                client.remove_endpoint(e).await
            };
            match done {
                Ok(()) => {
                    used[i] = up;
                    log(format!(
                        "etcd member {e} {}",
                        if up {
                            "answers again"
                        } else {
                            "does not answer: requests go to the others"
                        }
                    ));
                }
                Err(err) => log(format!("etcd member {e}: {err}")),
            }
        }
    }
}

/// A write made on behalf of the sessions, in order.
#[derive(Debug)]
pub enum Op {
    /// Record the appliance as this controller sees it, if it still holds
    /// its session (another controller's view is never overwritten).
    View {
        name: String,
        json: String,
    },
    /// This controller holds `name`'s session (under its lease).
    Own {
        name: String,
    },
    /// It no longer does (only if it still did).
    Disown {
        name: String,
    },
    /// A command for the controller holding `name`.
    Queue {
        name: String,
        id: u64,
        json: String,
    },
    /// A command was delivered: it waits no more.
    Delivered {
        name: String,
        id: u64,
    },
    History(Event),
}

/// The sessions' side of the queue.
#[derive(Debug)]
pub struct Link {
    tx: mpsc::UnboundedSender<Op>,
    /// This controller's id: unique among live controllers.
    pub id: String,
    seq: AtomicU64,
}

impl Link {
    pub fn new(id: String) -> (Self, mpsc::UnboundedReceiver<Op>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Link {
                tx,
                id,
                seq: AtomicU64::new(0),
            },
            rx,
        )
    }

    pub fn send(&self, op: Op) {
        // Closed only when the controller stops.
        let _ = self.tx.send(op);
    }

    pub fn history(&self, what: What) {
        self.send(Op::History(Event {
            at_ms: history::now_ms(),
            controller: self.id.clone(),
            what,
        }));
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// Keys of one fleet.
#[derive(Debug, Clone)]
pub struct Keys(pub String);

impl Keys {
    pub fn k(&self, rest: &str) -> String {
        format!("{}{rest}", self.0)
    }
    pub fn session(&self, name: &str) -> String {
        self.k(&format!("session/{name}"))
    }
}

/// The lease ownership keys live under; replaced if it ever expires.
#[derive(Debug, Default)]
pub struct Lease(AtomicI64);

impl Lease {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self, id: i64) {
        self.0.store(id, Ordering::Relaxed);
    }
}

/// Grants the controller's lease and registers the controller under it.
pub(crate) async fn grant(
    client: &mut Client,
    keys: &Keys,
    id: &str,
    listen: &str,
    ttl: Duration,
) -> Result<i64, String> {
    let ttl_s = ttl.as_secs().max(1) as i64;
    let lease = client
        .lease_grant(ttl_s, None)
        .await
        .map_err(err("lease"))?
        .id();
    let txn = Txn::new()
        .when([Compare::create_revision(
            keys.k(&format!("controller/{id}")),
            CompareOp::Equal,
            0,
        )])
        .and_then([TxnOp::put(
            keys.k(&format!("controller/{id}")),
            serde_json::json!({ "listen": listen }).to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let r = client.txn(txn).await.map_err(err("register"))?;
    if !r.succeeded() {
        let _ = client.lease_revoke(lease).await;
        return Err(format!(
            "a live controller already has the id {id:?}: give each controller its own --id"
        ));
    }
    Ok(lease)
}

/// Keeps the lease alive; if it was lost (etcd unreachable longer than
/// its TTL), takes a new one and claims every held session again.
pub(crate) async fn keep_lease(
    mut client: Client,
    keys: Keys,
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    listen: String,
    ttl: Duration,
) {
    let every = (ttl / 3).max(Duration::from_millis(200));
    loop {
        let id = lease.get();
        let alive = match client.lease_keep_alive(id).await {
            Ok((mut keeper, mut stream)) => loop {
                if keeper.keep_alive().await.is_err() {
                    break true;
                }
                match stream.message().await {
                    Ok(Some(r)) if r.ttl() > 0 => {}
                    Ok(Some(_)) => break false,
                    _ => break true,
                }
                tokio::time::sleep(every).await;
            },
            Err(_) => true,
        };
        if alive {
            // The stream broke (a member went away): open another.
            tokio::time::sleep(every).await;
            continue;
        }
        log("etcd: the controller's lease expired; taking a new one");
        let _ = client
            .delete(keys.k(&format!("controller/{}", shared.link.id)), None)
            .await;
        match grant(&mut client, &keys, &shared.link.id, &listen, ttl).await {
            Ok(new) => {
                lease.set(new);
                for name in shared.held() {
                    shared.link.send(Op::Own { name });
                }
            }
            Err(e) => {
                log(e);
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// Loads everything but the history at one revision; returns it.
pub(crate) async fn load(client: &mut Client, keys: &Keys, shared: &Shared) -> Result<i64, String> {
    let ops: Vec<TxnOp> = [
        "policy/",
        "workload/",
        "assign",
        "session/",
        "appliance/",
        "command/",
    ]
    .iter()
    .map(|p| {
        let opts = if p.ends_with('/') {
            Some(GetOptions::new().with_prefix())
        } else {
            None
        };
        TxnOp::get(keys.k(p), opts)
    })
    .collect();
    let r = client
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(err("load"))?;
    let rev = r.header().map_or(0, |h| h.revision());
    let mut kvs: Vec<KeyValue> = Vec::new();
    for o in r.op_responses() {
        if let TxnOpResponse::Get(mut g) = o {
            kvs.extend(g.take_kvs());
        }
    }
    // Workloads before policies: a policy compiles against the inventory.
    kvs.sort_by_key(|kv| !kv.key().starts_with(keys.k("workload/").as_bytes()));
    for kv in &kvs {
        apply(shared, keys, kv.key(), Some(kv.value()));
    }
    shared.resync();
    Ok(rev)
}

/// Applies one key's new value (`None`: deleted); true when the policies,
/// assignments or inventory changed.
fn apply(shared: &Shared, keys: &Keys, key: &[u8], value: Option<&[u8]>) -> bool {
    let Some(rest) = std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix(keys.0.as_str()))
    else {
        return false;
    };
    let text = value.map(|v| String::from_utf8_lossy(v).into_owned());
    if let Some(name) = rest.strip_prefix("policy/") {
        shared.set_policy(name, text);
        return true;
    }
    if rest == "assign" {
        shared.set_assignments(text.as_deref());
        return true;
    }
    if let Some(name) = rest.strip_prefix("workload/") {
        let w = match text.as_deref().map(serde_json::from_str::<Workload>) {
            None => None,
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                log(format!("etcd: workload {name}: unreadable, ignored: {e}"));
                return false;
            }
        };
        shared.set_workload(name, w);
        return true;
    }
    if let Some(name) = rest.strip_prefix("session/") {
        shared.set_owner(name, text);
    } else if let Some(name) = rest.strip_prefix("appliance/") {
        shared.set_record(name, text.as_deref());
    } else if let Some(r) = rest.strip_prefix("command/") {
        if let Some((name, id)) = r.split_once('/') {
            if let Ok(id) = id.parse::<u64>() {
                shared.set_pending(name, id, text.as_deref());
            }
        }
    }
    false
}

/// Follows the fleet's changes from `rev` on, for as long as the
/// controller runs; a broken watch (a member died) is opened again where
/// it stopped.
pub(crate) async fn follow(mut client: Client, keys: Keys, shared: Arc<Shared>, mut rev: i64) {
    let history = keys.k("history/");
    loop {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(rev + 1);
        let (_watcher, mut stream) = match client.watch(keys.0.as_str(), Some(opts)).await {
            Ok(w) => w,
            Err(e) => {
                log(format!("etcd: watch: {e}; again in 500 ms"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let resp = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    log(format!("etcd: watch: {e}; watching again"));
                    break;
                }
            };
            if resp.canceled() {
                log(format!(
                    "etcd: watch canceled: {}; loading again",
                    resp.cancel_reason()
                ));
                // Compacted past what we saw: start over from a fresh load.
                if let Ok(r) = load(&mut client, &keys, &shared).await {
                    rev = r;
                }
                break;
            }
            let mut changed = false;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                rev = rev.max(kv.mod_revision());
                if kv.key().starts_with(history.as_bytes()) {
                    continue;
                }
                let value = (ev.event_type() == EventType::Put).then(|| kv.value());
                changed |= apply(&shared, &keys, kv.key(), value);
            }
            if changed {
                shared.resync();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Policies whose source changed, new ones included.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub assignments_changed: bool,
    /// Files not imported, each with why (the fleet keeps its version).
    pub problems: Vec<String>,
}

async fn get_prefix(client: &mut Client, key: String) -> Result<Vec<KeyValue>, String> {
    Ok(client
        .get(key, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(err("read"))?
        .take_kvs())
}

/// The inventory as etcd holds it.
pub async fn inventory(
    client: &mut Client,
    keys: &Keys,
) -> Result<BTreeMap<String, Workload>, String> {
    let mut out = BTreeMap::new();
    for kv in get_prefix(client, keys.k("workload/")).await? {
        if let Ok(w) = serde_json::from_slice::<Workload>(kv.value()) {
            out.insert(w.name.clone(), w);
        }
    }
    Ok(out)
}

/// Policies and assignments as etcd holds them.
pub async fn policies(
    client: &mut Client,
    keys: &Keys,
) -> Result<(BTreeMap<String, String>, Option<String>), String> {
    let p = keys.k("policy/");
    let mut out = BTreeMap::new();
    for kv in get_prefix(client, p.clone()).await? {
        let name = String::from_utf8_lossy(&kv.key()[p.len()..]).into_owned();
        out.insert(name, String::from_utf8_lossy(kv.value()).into_owned());
    }
    let assign = client
        .get(keys.k("assign"), None)
        .await
        .map_err(err("read"))?
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
    Ok((out, assign))
}

/// Makes the fleet's policies those of `dir` (one transaction): new and
/// changed ones written, those without a file removed, files that do not
/// compile reported and their fleet version kept.
pub async fn import(
    client: &mut Client,
    keys: &Keys,
    dir: &Path,
    by: &str,
) -> Result<ImportReport, String> {
    let inv = inventory(client, keys).await?;
    let read = store::read_dir(dir, &inv)?;
    let (current, assign) = policies(client, keys).await?;
    let mut report = ImportReport {
        problems: read.problems,
        ..ImportReport::default()
    };
    let mut ops = Vec::new();
    let mut events = Vec::new();
    for (name, text) in &read.policies {
        if current.get(name) != Some(text) {
            ops.push(TxnOp::put(
                keys.k(&format!("policy/{name}")),
                text.as_str(),
                None,
            ));
            report.changed.push(name.clone());
            let version = store::serve(name, text, name, &inv)
                .map(|s| s.version)
                .unwrap_or_default();
            events.push(What::Policy {
                policy: name.clone(),
                version,
                by: by.to_owned(),
            });
        }
    }
    for name in current.keys() {
        // A file that is there but broken keeps its policy.
        if !read.policies.contains_key(name) && !read.broken.contains(name) {
            ops.push(TxnOp::delete(keys.k(&format!("policy/{name}")), None));
            report.removed.push(name.clone());
            events.push(What::PolicyRemoved {
                policy: name.clone(),
                by: by.to_owned(),
            });
        }
    }
    if read.assign != assign && !read.assign_broken {
        match &read.assign {
            Some(a) => ops.push(TxnOp::put(keys.k("assign"), a.as_str(), None)),
            None => ops.push(TxnOp::delete(keys.k("assign"), None)),
        }
        report.assignments_changed = true;
        events.push(What::Assignments { by: by.to_owned() });
    }
    commit_with_history(client, keys, ops, events, "import").await?;
    Ok(report)
}

/// Writes the fleet's policies and assignments to `dir`.
pub async fn export(client: &mut Client, keys: &Keys, dir: &Path) -> Result<usize, String> {
    let (p, a) = policies(client, keys).await?;
    store::write_dir(dir, &p, a.as_deref())
}

/// What an inventory load did.
#[derive(Debug, Default, serde::Serialize)]
pub struct InventoryReport {
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Loads workloads; with `replace`, those not listed are removed.
pub async fn load_inventory(
    client: &mut Client,
    keys: &Keys,
    workloads: Vec<Workload>,
    replace: bool,
    by: &str,
) -> Result<InventoryReport, String> {
    let current = inventory(client, keys).await?;
    let mut report = InventoryReport::default();
    let mut ops = Vec::new();
    let mut events = Vec::new();
    for w in &workloads {
        if current.get(&w.name) == Some(w) {
            continue;
        }
        let json = serde_json::to_string(w).map_err(|e| e.to_string())?;
        ops.push(TxnOp::put(
            keys.k(&format!("workload/{}", w.name)),
            json,
            None,
        ));
        report.changed.push(w.name.clone());
        events.push(What::Workload {
            workload: w.name.clone(),
            addresses: w.addresses.iter().map(ToString::to_string).collect(),
            by: by.to_owned(),
        });
    }
    if replace {
        for name in current.keys() {
            if !workloads.iter().any(|w| &w.name == name) {
                ops.push(TxnOp::delete(keys.k(&format!("workload/{name}")), None));
                report.removed.push(name.clone());
                events.push(What::Workload {
                    workload: name.clone(),
                    addresses: Vec::new(),
                    by: by.to_owned(),
                });
            }
        }
    }
    commit_with_history(client, keys, ops, events, "inventory").await?;
    Ok(report)
}

/// Writes `ops` and one history event per entry of `events` (recorded as
/// by `who`: `import`, `inventory`) in one transaction, so a change and
/// its history are stored together or not at all.
async fn commit_with_history(
    client: &mut Client,
    keys: &Keys,
    mut ops: Vec<TxnOp>,
    events: Vec<What>,
    who: &str,
) -> Result<(), String> {
    let at = history::now_ms();
    let writer = format!("{who}-{}", std::process::id());
    for (i, what) in events.into_iter().enumerate() {
        let e = Event {
            at_ms: at,
            controller: who.into(),
            what,
        };
        let json = serde_json::to_string(&e).map_err(|e| e.to_string())?;
        ops.push(TxnOp::put(
            keys.k(&history::key(at, &writer, i as u64)),
            json,
            None,
        ));
    }
    if !ops.is_empty() {
        client
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(err(who))?;
    }
    Ok(())
}

/// History events from `since_ms` on, about `appliance` if given, in the
/// order they were written.
pub async fn history(
    client: &mut Client,
    keys: &Keys,
    appliance: Option<&str>,
    since_ms: u64,
) -> Result<Vec<Event>, String> {
    let start = keys.k(&history::key_from(since_ms));
    let end = keys.k("history0"); // '0' follows '/': the end of the range
    let mut kvs = client
        .get(start, Some(GetOptions::new().with_range(end)))
        .await
        .map_err(err("history"))?
        .take_kvs();
    kvs.sort_by_key(|kv| (kv.create_revision(), kv.key().to_vec()));
    Ok(kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Event>(kv.value()).ok())
        .filter(|e| appliance.is_none_or(|a| e.what.appliance() == Some(a)))
        .collect())
}

/// Deletes history older than `before_ms`; how many events went.
pub async fn trim_history(client: &mut Client, keys: &Keys, before_ms: u64) -> Result<i64, String> {
    let r = client
        .delete(
            keys.k("history/"),
            Some(DeleteOptions::new().with_range(keys.k(&history::key_from(before_ms)))),
        )
        .await
        .map_err(err("history retention"))?;
    Ok(r.deleted())
}
