//! `sluice-controller`, the reference controller: serves policies from a
//! directory of TOML files to many appliances over the protocol of
//! `docs/protocol.md`, tracks each appliance's state, pushes a changed
//! policy to every appliance it concerns, and answers the operator on a
//! Unix socket. It is the "remote controller" of DESIGN.md §6 and runs
//! off the appliance: it depends on `sluice-protocol` and tokio, never on
//! the dataplane or DPDK.
//!
//! One tokio runtime (this file: [`Options`], [`serve`]): a task accepting
//! connections up to [`Options::max_sessions`], a task per session, a task
//! polling the policy directory, a task serving the admin socket.
//!
//! - `session`: one appliance connection. TLS 1.3 with a client
//!   certificate from the CA (tokio-rustls), a hello whose name the
//!   certificate carries, then frames both ways until either side ends it;
//!   every end is logged with its reason.
//! - [`registry`]: what the controller knows about every appliance (its
//!   session's send queue, assigned, pushed, acked and nacked policy, last
//!   heartbeat, commands) behind one mutex whose critical sections do no
//!   I/O, and the views the admin socket answers with.
//! - [`store`]: the policy directory. Parses every policy file
//!   (`sluice_protocol::policy`) before serving it, versions it by a hash
//!   of the file, resolves `assign.toml` to the policy each appliance gets.
//! - [`admin`]: the operator's Unix socket, one JSON request and answer
//!   per line, and the client side the binary's subcommands use.
//!
//! The binary (`main.rs`) is `serve` plus those subcommands
//! (`list`, `show`, `policies`, `summary`, `push`, `command`).

pub mod admin;
pub mod registry;
mod session;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use registry::Shared;
use sluice_protocol::tls;
use store::Store;

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
    /// The policy directory ([`store`]).
    pub policies: PathBuf,
    /// The admin Unix socket.
    pub admin: PathBuf,
    /// How often the policy directory is read again.
    pub poll: Duration,
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
    /// Defaults for everything but the files.
    pub fn new(
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        policies: PathBuf,
        admin: PathBuf,
    ) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            ca,
            cert,
            key,
            policies,
            admin,
            poll: Duration::from_secs(1),
            keepalive: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            max_sessions: 16_384,
        }
    }
}

/// Runs the controller until SIGINT or SIGTERM. Errors are start-up
/// failures (certificates, sockets).
pub fn serve(opts: Options) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-controller")
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(run(opts))
}

async fn run(opts: Options) -> Result<(), String> {
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
    let shared = Arc::new(Shared::new(opts.clone(), Store::new(&opts.policies)));
    let first = shared.rescan();
    log(format!(
        "{} policy file(s) in {}, {} problem(s)",
        shared.policies().len(),
        opts.policies.display(),
        first.scan.problems.len()
    ));
    log(format!("admin socket {}", admin_path.display()));
    log(format!("listening on {local}"));

    tokio::spawn(admin::serve(admin, shared.clone()));
    let watcher = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(watcher.opts.poll.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sh = watcher.clone();
            // Reading files blocks: off the async workers.
            let _ = tokio::task::spawn_blocking(move || sh.rescan()).await;
        }
    });

    tokio::select! {
        () = accept_loop(listener, acceptor, shared.clone()) => {}
        () = shutdown_signal() => log("stopping"),
    }
    let _ = std::fs::remove_file(&admin_path);
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
