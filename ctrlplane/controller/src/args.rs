//! The command line of `sluice-controller` (clap). It imports nothing but
//! clap and std: the man pages are generated from these very definitions
//! (`packaging/mangen` includes this file).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const DEFAULT_ADMIN: &str = "/run/sluice-controller.sock";

#[derive(Parser)]
#[command(
    name = "sluice-controller",
    version,
    about = "The Sluice reference controller"
)]
pub struct Cli {
    /// The controller's admin socket.
    #[arg(long, global = true, default_value = DEFAULT_ADMIN)]
    pub admin: PathBuf,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Where the fleet's store is.
#[derive(Args)]
pub struct EtcdArgs {
    /// etcd members, comma-separated: https://host:port,...
    #[arg(
        long,
        global = true,
        env = "SLUICE_ETCD",
        default_value = "https://127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub etcd: Vec<String>,
    /// PEM: the CA that issued etcd's certificates.
    #[arg(long, global = true, env = "SLUICE_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// PEM: the client certificate etcd accepts.
    #[arg(long, global = true, env = "SLUICE_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// PEM: its private key.
    #[arg(long, global = true, env = "SLUICE_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// Every key of the fleet lives under this prefix.
    #[arg(
        long,
        global = true,
        env = "SLUICE_ETCD_PREFIX",
        default_value = "/sluice/"
    )]
    pub etcd_prefix: String,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Serve policies to appliances until SIGINT/SIGTERM.
    Serve {
        /// Address appliances connect to (port 0: any; the log says which).
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: std::net::SocketAddr,
        /// PEM: the CA that issues appliance certificates.
        #[arg(long)]
        ca: PathBuf,
        /// PEM: the controller's certificate chain.
        #[arg(long)]
        cert: PathBuf,
        /// PEM: the controller's private key.
        #[arg(long)]
        key: PathBuf,
        /// This controller's id in the fleet (default: the host name).
        #[arg(long)]
        id: Option<String>,
        /// The controller's etcd lease (ms): its appliances show as
        /// disconnected at most this long after it dies.
        #[arg(long, default_value_t = 5000)]
        lease_ttl_ms: u64,
        /// A connected appliance's record in etcd is rewritten at least
        /// this often (ms); state changes are written at once.
        #[arg(long, default_value_t = 30_000)]
        record_every_ms: u64,
        /// How often the fleet's run-once jobs run (ms).
        #[arg(long, default_value_t = 60_000)]
        jobs_every_ms: u64,
        /// History older than this is deleted (seconds).
        #[arg(long, default_value_t = 30 * 86_400)]
        history_retention_s: u64,
        /// Appliances not seen for this long are forgotten (seconds).
        #[arg(long, default_value_t = 7 * 86_400)]
        expire_after_s: u64,
        /// The controller writes to every session at least this often (ms).
        #[arg(long, default_value_t = 10_000)]
        keepalive_ms: u64,
        /// Heartbeat interval told to appliances (ms); 3 missed: stale.
        #[arg(long, default_value_t = 1000)]
        heartbeat_ms: u64,
        /// Bound on TLS handshake and hello, each (ms).
        #[arg(long, default_value_t = 10_000)]
        handshake_timeout_ms: u64,
        /// Connections beyond this many are refused.
        #[arg(long, default_value_t = 16_384)]
        max_sessions: usize,
    },
    /// Every appliance of the fleet: connection, state, policy, heartbeat.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One appliance in full, as JSON.
    Show { name: String },
    /// Policies: the version served, or why not.
    Policies {
        #[arg(long)]
        json: bool,
    },
    /// Counts: connected, in sync, stale, nacked, per acked version (JSON).
    Summary,
    /// Send start, stop or reload to an appliance (NAME) or all connected (--all).
    Command {
        /// Every connected appliance.
        #[arg(long)]
        all: bool,
        /// NAME COMMAND, or COMMAND with --all.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Make the fleet's policies those of a directory (NAME.toml, assign.toml).
    Import {
        dir: PathBuf,
        /// Who imports, for the history (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Write the fleet's policies to a directory.
    Export { dir: PathBuf },
    /// Load workloads ([[workload]] name, addresses, labels) into the inventory.
    Inventory {
        file: PathBuf,
        /// Remove the workloads the file does not list.
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        by: Option<String>,
    },
    /// The fleet's top talkers, from the flow records appliances publish
    /// on the data-service stream (NATS): host pairs by bytes.
    Top {
        /// A NATS server the appliances' `[stream]` publishes to.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Subjects to read: every appliance's flows by default.
        #[arg(long, default_value = "sluice.*.flows")]
        subject: String,
        /// How long to listen.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Stop earlier, after this many records (0: no limit).
        #[arg(long, default_value_t = 0)]
        records: u64,
        /// Pairs to show.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The fleet's history, oldest first.
    History {
        /// Only events about this appliance.
        #[arg(long)]
        appliance: Option<String>,
        /// From this time on: seconds since the epoch, or an age (90s, 15m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
