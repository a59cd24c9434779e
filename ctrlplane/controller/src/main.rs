//! `sluice-controller`: the reference controller, and the operator's
//! commands to it and to the fleet's store.
//!
//! ```text
//! sluice-controller serve --ca ca.pem --cert ctl.pem --key ctl.key --id ID [--listen ADDR] [--admin SOCK]
//! sluice-controller list [--json]            appliances, state, policy, controller, last heartbeat
//! sluice-controller show NAME                one appliance in full (JSON)
//! sluice-controller policies [--json]        policies, versions, errors
//! sluice-controller summary                  counts (JSON)
//! sluice-controller command (NAME | --all) start|stop|reload
//! sluice-controller import DIR               the fleet's policies become those of DIR
//! sluice-controller export DIR               the fleet's policies as files
//! sluice-controller inventory FILE [--replace]   load workloads
//! sluice-controller history [--appliance NAME] [--since T] [--json]
//! ```
//!
//! Every command but the admin socket's (`list`, `show`, `policies`,
//! `summary`, `command`) talks to etcd: `--etcd`, `--etcd-ca`,
//! `--etcd-cert`, `--etcd-key` (or `SLUICE_ETCD*` in the environment).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluice_controller::admin::{request, request_as, AdminRequest};
use sluice_controller::fleet::{self, Keys};
use sluice_controller::history;
use sluice_controller::inventory;
use sluice_controller::registry::{ApplianceView, PolicyView};
use sluice_controller::{serve, EtcdOptions, JobOptions, Options};
use sluice_protocol::CommandKind;

const DEFAULT_ADMIN: &str = "/run/sluice-controller.sock";

#[derive(Parser)]
#[command(
    name = "sluice-controller",
    version,
    about = "The Sluice reference controller"
)]
struct Cli {
    /// The controller's admin socket.
    #[arg(long, global = true, default_value = DEFAULT_ADMIN)]
    admin: PathBuf,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the fleet's store is.
#[derive(Args)]
struct EtcdArgs {
    /// etcd members, comma-separated: https://host:port,...
    #[arg(
        long,
        global = true,
        env = "SLUICE_ETCD",
        default_value = "https://127.0.0.1:2379",
        value_delimiter = ','
    )]
    etcd: Vec<String>,
    /// PEM: the CA that issued etcd's certificates.
    #[arg(long, global = true, env = "SLUICE_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// PEM: the client certificate etcd accepts.
    #[arg(long, global = true, env = "SLUICE_ETCD_CERT")]
    etcd_cert: Option<PathBuf>,
    /// PEM: its private key.
    #[arg(long, global = true, env = "SLUICE_ETCD_KEY")]
    etcd_key: Option<PathBuf>,
    /// Every key of the fleet lives under this prefix.
    #[arg(
        long,
        global = true,
        env = "SLUICE_ETCD_PREFIX",
        default_value = "/sluice/"
    )]
    etcd_prefix: String,
}

impl EtcdArgs {
    fn options(&self) -> Result<EtcdOptions, String> {
        let need = |v: &Option<PathBuf>, flag: &str| {
            v.clone().ok_or_else(|| {
                format!("{flag} is required (etcd is reached over TLS with a client certificate)")
            })
        };
        let prefix = if self.etcd_prefix.ends_with('/') {
            self.etcd_prefix.clone()
        } else {
            format!("{}/", self.etcd_prefix)
        };
        Ok(EtcdOptions {
            endpoints: self.etcd.clone(),
            ca: need(&self.etcd_ca, "--etcd-ca")?,
            cert: need(&self.etcd_cert, "--etcd-cert")?,
            key: need(&self.etcd_key, "--etcd-key")?,
            prefix,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
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

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs one job against etcd. While the cluster elects a new leader (a
/// member died) etcd answers "unavailable" for a moment: the job runs
/// again, for up to 10 s. Every job is idempotent (an import or an
/// inventory load writes only what differs).
fn with_etcd<T>(
    args: &EtcdArgs,
    job: impl AsyncFn(&mut etcd_client::Client, &Keys) -> Result<T, String>,
) -> Result<T, String> {
    let o = args.options()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = async {
                let mut c = fleet::connect(&o).await?;
                job(&mut c, &Keys(o.prefix.clone())).await
            }
            .await;
            match r {
                Err(e) if e.contains("Unavailable") && tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                r => return r,
            }
        }
    })
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn age(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(m) if m < 10_000 => format!("{:.1}s", m as f64 / 1000.0),
        Some(m) => format!("{}s", m / 1000),
    }
}

fn print_list(list: &[ApplianceView]) {
    println!(
        "{:<24} {:<13} {:<24} {:<24} {:<5} {:>9}  {:<16} ADDRESS",
        "NAME", "STATE", "POLICY", "ACKED", "SYNC", "HEARTBEAT", "CONTROLLER"
    );
    for a in list {
        let state = if a.stale {
            format!("{} (stale)", a.state)
        } else {
            a.state.clone()
        };
        let sync = if a.nack.is_some() {
            "NACK"
        } else if a.in_sync {
            "yes"
        } else {
            "no"
        };
        println!(
            "{:<24} {:<13} {:<24} {:<24} {:<5} {:>9}  {:<16} {}",
            a.name,
            state,
            a.policy.as_deref().unwrap_or("-"),
            a.acked.as_deref().unwrap_or("-"),
            sync,
            age(a.heartbeat_age_ms),
            a.controller.as_deref().unwrap_or("-"),
            a.address
        );
        if let Some(n) = &a.nack {
            for e in &n.errors {
                println!("    nack {}: {e}", n.version);
            }
        }
    }
}

fn print_policies(list: &[PolicyView]) {
    println!(
        "{:<20} {:<28} {:>10}  ERROR",
        "NAME", "VERSION", "APPLIANCES"
    );
    for p in list {
        println!(
            "{:<20} {:<28} {:>10}  {}",
            p.name,
            p.version.as_deref().unwrap_or("-"),
            p.appliances,
            p.error.as_deref().unwrap_or("")
        );
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    let sock = cli.admin;
    match cli.cmd {
        Cmd::Serve {
            listen,
            ca,
            cert,
            key,
            id,
            lease_ttl_ms,
            record_every_ms,
            jobs_every_ms,
            history_retention_s,
            expire_after_s,
            keepalive_ms,
            heartbeat_ms,
            handshake_timeout_ms,
            max_sessions,
        } => {
            let mut o = Options::new(ca, cert, key, sock);
            o.etcd = cli.etcd.options()?;
            o.listen = listen;
            if let Some(id) = id {
                o.id = id;
            }
            o.lease_ttl = ms(lease_ttl_ms);
            o.record_every = ms(record_every_ms);
            o.jobs = JobOptions {
                every: ms(jobs_every_ms),
                retention: Duration::from_secs(history_retention_s),
                expire_after: Duration::from_secs(expire_after_s),
            };
            o.keepalive = ms(keepalive_ms);
            o.heartbeat = ms(heartbeat_ms);
            o.handshake_timeout = ms(handshake_timeout_ms);
            o.max_sessions = max_sessions;
            serve(o)
        }
        Cmd::List { json } => {
            let list: Vec<ApplianceView> = request_as(&sock, &AdminRequest::List, "appliances")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
            } else {
                print_list(&list);
            }
            Ok(())
        }
        Cmd::Show { name } => {
            let v = request(&sock, &AdminRequest::Show { name })?;
            println!("{}", pretty(&v["appliance"]));
            Ok(())
        }
        Cmd::Policies { json } => {
            let list: Vec<PolicyView> = request_as(&sock, &AdminRequest::Policies, "policies")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
            } else {
                print_policies(&list);
            }
            Ok(())
        }
        Cmd::Summary => {
            let v = request(&sock, &AdminRequest::Summary)?;
            println!("{}", pretty(&v["summary"]));
            Ok(())
        }
        Cmd::Command { all, args } => {
            let (target, cmd) = match (all, args.as_slice()) {
                (true, [c]) => (None, c),
                (false, [n, c]) => (Some(n.clone()), c),
                _ => return Err("usage: command NAME COMMAND, or command --all COMMAND".into()),
            };
            let command: CommandKind = cmd.parse()?;
            let v = request(
                &sock,
                &AdminRequest::Command {
                    target,
                    command,
                    by: who(None),
                },
            )?;
            let sent = v["sent"].as_array().map_or(0, Vec::len);
            println!("{} sent to {sent} appliance(s)", command.name());
            for s in v["sent"].as_array().into_iter().flatten() {
                println!("  {} (command {})", s[0].as_str().unwrap_or("?"), s[1]);
            }
            Ok(())
        }
        Cmd::Import { dir, by } => {
            let by = who(by);
            let r = with_etcd(&cli.etcd, async |c, k| fleet::import(c, k, &dir, &by).await)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
            );
            if r.problems.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} file(s) not imported (the fleet keeps their previous version): {}",
                    r.problems.len(),
                    r.problems.join("; ")
                ))
            }
        }
        Cmd::Export { dir } => {
            let n = with_etcd(&cli.etcd, async |c, k| fleet::export(c, k, &dir).await)?;
            println!("{n} policies written to {}", dir.display());
            Ok(())
        }
        Cmd::Inventory { file, replace, by } => {
            let origin = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{origin}: {e}"))?;
            let workloads = inventory::parse_file(&text, &origin)?;
            let by = who(by);
            let r = with_etcd(&cli.etcd, async |c, k| {
                fleet::load_inventory(c, k, workloads.clone(), replace, &by).await
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Cmd::History {
            appliance,
            since,
            json,
        } => {
            let since_ms = match since {
                Some(s) => history::parse_since(&s, history::now_ms())?,
                None => 0,
            };
            let events = with_etcd(&cli.etcd, async |c, k| {
                fleet::history(c, k, appliance.as_deref(), since_ms).await
            })?;
            for e in &events {
                if json {
                    println!("{}", serde_json::to_string(e).map_err(|e| e.to_string())?);
                } else {
                    println!(
                        "{}  {:<16} {}",
                        history::format_utc(e.at_ms),
                        e.controller,
                        e.what.describe()
                    );
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-controller: {e}");
            ExitCode::FAILURE
        }
    }
}
