//! `sluice-controller`: the reference controller, and the operator's
//! commands to it.
//!
//! ```text
//! sluice-controller serve --ca ca.pem --cert ctl.pem --key ctl.key --policies DIR [--listen ADDR] [--admin SOCK]
//! sluice-controller list [--json]            appliances, state, policy, last heartbeat
//! sluice-controller show NAME                one appliance in full (JSON)
//! sluice-controller policies [--json]        policy files, versions, errors
//! sluice-controller summary                  counts (JSON)
//! sluice-controller push                     read the policy directory now, push changes
//! sluice-controller command (NAME | --all) start|stop|reload
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_controller::admin::{request, request_as, AdminRequest};
use sluice_controller::registry::{ApplianceView, PolicyView};
use sluice_controller::{serve, Options};
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
    #[command(subcommand)]
    cmd: Cmd,
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
        /// The policy directory: NAME.toml policies and assign.toml.
        #[arg(long)]
        policies: PathBuf,
        /// Milliseconds between reads of the policy directory.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
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
    /// Every appliance seen: connection, state, policy, heartbeat.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One appliance in full, as JSON.
    Show { name: String },
    /// Policy files: the version served, or why not.
    Policies {
        #[arg(long)]
        json: bool,
    },
    /// Counts: connected, in sync, stale, nacked, per acked version (JSON).
    Summary,
    /// Read the policy directory now and push what changed.
    Push,
    /// Send start, stop or reload to an appliance (NAME) or all connected (--all).
    Command {
        /// Every connected appliance.
        #[arg(long)]
        all: bool,
        /// NAME COMMAND, or COMMAND with --all.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
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
        "{:<24} {:<13} {:<24} {:<24} {:<5} {:>9}  ADDRESS",
        "NAME", "STATE", "POLICY", "ACKED", "SYNC", "HEARTBEAT"
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
            "{:<24} {:<13} {:<24} {:<24} {:<5} {:>9}  {}",
            a.name,
            state,
            a.policy.as_deref().unwrap_or("-"),
            a.acked.as_deref().unwrap_or("-"),
            sync,
            age(a.heartbeat_age_ms),
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
            policies,
            poll_ms,
            keepalive_ms,
            heartbeat_ms,
            handshake_timeout_ms,
            max_sessions,
        } => {
            let mut o = Options::new(ca, cert, key, policies, sock);
            o.listen = listen;
            o.poll = ms(poll_ms);
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
        Cmd::Push => {
            let v = request(&sock, &AdminRequest::Push)?;
            println!("{}", pretty(&v["push"]));
            Ok(())
        }
        Cmd::Command { all, args } => {
            let (target, cmd) = match (all, args.as_slice()) {
                (true, [c]) => (None, c),
                (false, [n, c]) => (Some(n.clone()), c),
                _ => return Err("usage: command NAME COMMAND, or command --all COMMAND".into()),
            };
            let command: CommandKind = cmd.parse()?;
            let v = request(&sock, &AdminRequest::Command { target, command })?;
            let sent = v["sent"].as_array().map_or(0, Vec::len);
            println!("{} sent to {sent} appliance(s)", command.name());
            for s in v["sent"].as_array().into_iter().flatten() {
                println!("  {} (command {})", s[0].as_str().unwrap_or("?"), s[1]);
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
