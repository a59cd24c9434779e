//! `sluice-controller`, the reference controller: serves the fleet's
//! policies to many appliances over the protocol of `docs/protocol.md`,
//! tracks each appliance's state, pushes a changed policy to every
//! appliance it concerns, and answers the operator on a Unix socket. It is
//! the "remote controller" of DESIGN.md §6 and runs off the appliance: it
//! depends on `sluice-protocol`, tokio and etcd, never on the dataplane or
//! DPDK.
//!
//! Several controllers run at once, all active, sharing one etcd: any of
//! them can hold any appliance's session; what one writes (a policy, a
//! command, an inventory change) reaches the others through etcd's watch.
//!
//! One tokio runtime (this file: [`Options`], [`serve`]): a task accepting
//! connections up to [`Options::max_sessions`], a task per session, and
//! the fleet's tasks: the watch, the queue of writes to etcd, the lease,
//! the run-once jobs, the admin socket.
//!
//! - `session`: one appliance connection. TLS 1.3 with a client
//!   certificate from the CA (tokio-rustls), a hello whose name the
//!   certificate carries, then frames both ways until either side ends it;
//!   every end is logged with its reason.
//! - [`registry`]: what the controller knows about every appliance behind
//!   one mutex whose critical sections do no I/O, and the views the admin
//!   socket answers with.
//! - [`store`]: the policies, assignments and inventory held in memory,
//!   what is served of each policy, and the policy directory format.
//! - [`fleet`]: etcd: its keys, the load and the watch, the writes, the
//!   lease, import and export.
//! - [`inventory`]: workloads, and policies compiled against them.
//! - `writer`: the sessions' writes to etcd, in order, many to a
//!   transaction.
//! - [`history`]: the fleet's events, kept in etcd.
//! - [`top`]: the fleet's top talkers, read off the data-service stream
//!   (NATS) the appliances publish their flow records to.
//! - `jobs`: what one controller of the fleet runs, chosen by election.
//! - [`admin`]: the operator's Unix socket, one JSON request and answer
//!   per line, and the client side the binary's subcommands use.

pub mod admin;
pub mod fleet;
pub mod history;
pub mod inventory;
mod jobs;
pub mod registry;
mod session;
pub mod store;
pub mod top;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use fleet::EtcdOptions;
pub use jobs::JobOptions;
use registry::Shared;
use sluice_protocol::tls;

pub(crate) fn log(msg: impl AsRef<str>) {
    eprintln!("sluice-controller: {}", msg.as_ref());
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where appliances connect (`127.0.0.1:0` picks a port; the log says which).
    pub listen: SocketAddr,
    /// The CA that issues appliance certificates (PEM).
    pub ca: PathBuf,
    /// The controller's certificate chain and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The admin Unix socket.
    pub admin: PathBuf,
    /// This controller's id among the fleet's controllers.
    pub id: String,
    /// The fleet's store.
    pub etcd: EtcdOptions,
    /// The controller's lease: how long after its death its appliances
    /// still show as held by it, at most.
    pub lease_ttl: Duration,
    /// A connected appliance's record in etcd is written on every change
    /// of state and at least this often.
    pub record_every: Duration,
    pub jobs: JobOptions,
    /// The controller writes to each session at least this often.
    pub keepalive: Duration,
    /// The heartbeat interval appliances are told; three missed make an
    /// appliance stale.
    pub heartbeat: Duration,
    /// Bound on the TLS handshake and on the hello, each.
    pub handshake_timeout: Duration,
    /// Open connections beyond this are refused.
    pub max_sessions: usize,
}

impl Options {
    /// Defaults for everything but the files; etcd on localhost.
    pub fn new(ca: PathBuf, cert: PathBuf, key: PathBuf, admin: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            etcd: EtcdOptions {
                endpoints: vec!["https://127.0.0.1:2379".into()],
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
                prefix: "/sluice/".into(),
            },
            ca,
            cert,
            key,
            admin,
            id: default_id(),
            lease_ttl: Duration::from_secs(5),
            record_every: Duration::from_secs(30),
            jobs: JobOptions {
                every: Duration::from_secs(60),
                retention: Duration::from_secs(30 * 86_400),
                expire_after: Duration::from_secs(7 * 86_400),
            },
            keepalive: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            max_sessions: 16_384,
        }
    }
}

/// The host name: one controller per host is the usual deployment.
pub fn default_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| store::valid_name(h))
        .unwrap_or_else(|| "controller".into())
}

/// Runs the controller until SIGINT or SIGTERM. Errors are start-up
/// failures (certificates, sockets, etcd).
pub fn serve(opts: Options) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-controller")
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(run(opts))
}

async fn run(opts: Options) -> Result<(), String> {
    if !store::valid_name(&opts.id) {
        return Err(format!("--id {:?}: 1 to 64 of A-Z a-z 0-9 - _ .", opts.id));
    }
    let tls = tls::server_config(&opts.ca, &opts.cert, &opts.key)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", opts.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listen on {}: {e}", opts.listen))?;
    let admin_path = opts.admin.clone();
    let admin = admin::bind(&admin_path)?;

    let keys = fleet::Keys(opts.etcd.prefix.clone());
    let mut client = fleet::connect(&opts.etcd).await?;
    let lease_id = fleet::grant(
        &mut client,
        &keys,
        &opts.id,
        &local.to_string(),
        opts.lease_ttl,
    )
    .await?;
    let lease = Arc::new(fleet::Lease::default());
    lease.set(lease_id);
    let (link, ops) = fleet::Link::new(opts.id.clone());
    let link = Arc::new(link);
    let shared = Arc::new(Shared::new(opts.clone(), link.clone()));
    let rev = fleet::load(&mut client, &keys, &shared).await?;
    log(format!(
        "controller {} in the fleet at {} ({}), {} policies, revision {rev}",
        opts.id,
        opts.etcd.endpoints.join(","),
        keys.0,
        shared.policies().len(),
    ));
    tokio::spawn(fleet::follow_members(client.clone(), opts.etcd.clone()));
    tokio::spawn(writer::run(
        client.clone(),
        keys.clone(),
        link,
        lease.clone(),
        ops,
    ));
    tokio::spawn(fleet::follow(
        client.clone(),
        keys.clone(),
        shared.clone(),
        rev,
    ));
    tokio::spawn(fleet::keep_lease(
        client.clone(),
        keys.clone(),
        shared.clone(),
        lease.clone(),
        local.to_string(),
        opts.lease_ttl,
    ));
    tokio::spawn(jobs::run(
        client.clone(),
        keys.clone(),
        shared.clone(),
        lease.clone(),
        opts.jobs.clone(),
    ));
    log(format!("admin socket {}", admin_path.display()));
    log(format!("listening on {local}"));
    tokio::spawn(admin::serve(admin, shared.clone()));

    tokio::select! {
        () = accept_loop(listener, acceptor, shared.clone()) => {}
        () = shutdown_signal() => log("stopping"),
    }
    let _ = std::fs::remove_file(&admin_path);
    // Our appliances show at once as disconnected, not after the lease's TTL.
    let _ = client.lease_revoke(lease.get()).await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or similar: say so, and do not spin.
                log(format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open > shared.opts.max_sessions {
            shared.open.fetch_sub(1, Ordering::Relaxed);
            log(format!(
                "refused {peer}: {} connections open, the limit is {}",
                open - 1,
                shared.opts.max_sessions
            ));
            continue;
        }
        tokio::spawn(session::handle(shared.clone(), acceptor.clone(), tcp, peer));
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log("cannot handle SIGINT/SIGTERM; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
