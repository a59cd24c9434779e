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

use clap::Parser;
use sluice_controller::admin::{request, request_as, AdminRequest};
use sluice_controller::fleet::{self, Keys};
use sluice_controller::history;
use sluice_controller::inventory;
use sluice_controller::registry::{ApplianceView, PolicyView};
use sluice_controller::{serve, EtcdOptions, JobOptions, Options};
use sluice_protocol::CommandKind;

mod args;
use args::{Cli, Cmd, EtcdArgs};

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
        Cmd::Top {
            nats,
            subject,
            seconds,
            records,
            top,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let t = rt.block_on(sluice_controller::top::collect(
                &nats,
                &subject,
                Duration::from_secs(seconds),
                records,
            ))?;
            print!("{}", t.render(top));
            Ok(())
        }
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
