//! `sluice [EAL options] -- [sluice options]`, like testpmd.
//!
//! With no `--config`, Sluice runs its built-in default on virtual devices:
//! sample TAP traffic in through `net_pcap`, VXLAN and ERSPAN III tunnels out
//! into `<out-dir>/uplink.pcap`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Parser;
use ctrlplane::appliance::{Appliance, Options, PolicySource, StartError};
use ctrlplane::args::{LogLevel, SluiceArgs as Args};
use ctrlplane::config::{lcores_in, Config, Footprint};
use ctrlplane::log::{error, event, log, warn};
use ctrlplane::{cli, default, metrics, policy, sample};

/// EAL arguments when none are given: virtual devices only, memory that
/// leaves no hugepage file behind, the main lcore and one worker. A pdump
/// secondary shares the primary's memory instead (its file prefix and
/// process type come from `[pdump]`).
fn default_eal_args(program: &str, secondary: bool) -> Vec<String> {
    let own_memory = [
        "--in-memory".to_owned(),
        "--file-prefix".to_owned(),
        format!("sluice-{}", std::process::id()),
    ];
    let mut args: Vec<String> = [program, "-l", "0-1", "--no-pci", "--log-level", "*:notice"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if !secondary {
        args.splice(4..4, own_memory);
    }
    args
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv.first().cloned().unwrap_or_else(|| "sluice".into());
    let (eal_args, app_args) = match argv.iter().position(|a| a == "--") {
        Some(i) => (argv[..i].to_vec(), argv[i + 1..].to_vec()),
        None => (vec![program.clone()], argv[1..].to_vec()),
    };
    let args = match Args::try_parse_from(std::iter::once(program.clone()).chain(app_args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ctrlplane::log::init(args.log_format, args.log_level);
    if let Some(path) = &args.check_config {
        return check_config(path, args.policy.as_deref(), &eal_args);
    }

    let (cfg, policy) = match start_inputs(&args) {
        Ok(x) => x,
        Err(e) => {
            error(e.to_string());
            return ExitCode::from(2);
        }
    };
    let eal_args = if eal_args.len() > 1 {
        eal_args
    } else if !cfg.eal.args.is_empty() {
        std::iter::once(program.clone())
            .chain(cfg.eal.args.iter().cloned())
            .collect()
    } else {
        default_eal_args(&program, cfg.pdump.is_some())
    };
    let (policy, controller_version) = controller_policy(&cfg, &args, policy);
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag)) {
            error(format!("cannot handle signal {sig}: {e}"));
            return ExitCode::from(2);
        }
    }
    let opts = Options {
        policy,
        exit_when_idle: args.exit_when_idle.map(Duration::from_millis),
        resolve_timeout: Duration::from_millis(args.resolve_timeout),
        auto_start: !args.stopped && (!args.interactive || args.auto_start),
        controller_version,
    };
    let mut app = match Appliance::start(&eal_args, cfg, opts) {
        Ok(a) => a,
        Err(e) => {
            error(format!("cannot start: {e}"));
            return ExitCode::from(2);
        }
    };
    let (console_tx, console_rx) = mpsc::channel();
    let socket = args.socket.clone().unwrap_or_else(|| {
        PathBuf::from("/var/run/dpdk")
            .join(app.file_prefix())
            .join("sluice.sock")
    });
    match cli::socket::serve(&socket, console_tx.clone()) {
        Ok(()) => {
            let path = socket.display().to_string();
            event(
                LogLevel::Info,
                &format!("control socket {path}"),
                &[("socket", &path)],
            );
        }
        Err(e) => warn(format!("no control socket: {e}")),
    }
    match metrics::serve(&args.metrics, console_tx.clone()) {
        Ok(addr) => {
            let url = format!("http://{addr}/metrics");
            event(
                LogLevel::Info,
                &format!("metrics on {url}"),
                &[("url", &url)],
            );
        }
        Err(e) => warn(format!("no metrics endpoint: {e}")),
    }
    let mut quit = false;
    if let Some(file) = &args.cmdline_file {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                for line in text.lines() {
                    let (out, q) = app.serve(cli::Request::Command(line.to_owned()));
                    print!("{out}");
                    if q {
                        quit = true;
                        break;
                    }
                }
            }
            Err(e) => error(format!("--cmdline-file {}: {e}", file.display())),
        }
    }
    if args.interactive && !quit {
        cli::prompt::spawn(console_tx.clone());
    }
    if !quit {
        app.run(&stop, &reload, &console_rx);
    }
    let _ = std::fs::remove_file(&socket);
    match app.shutdown() {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(report) => {
            println!("{report}");
            ExitCode::from(1)
        }
    }
}

/// With a controller and no --policy, the appliance starts on the last
/// policy the controller had it ack (persisted), or on an empty policy
/// (everything filtered) until the controller sends one — never on the
/// built-in demo policy.
fn controller_policy(
    cfg: &Config,
    args: &Args,
    local: PolicySource,
) -> (PolicySource, Option<String>) {
    let Some(c) = &cfg.controller else {
        return (local, None);
    };
    if args.policy.is_some() {
        return (local, None);
    }
    match ctrlplane::agent::load_persisted(&c.persist) {
        Some((version, text)) => {
            log(format!(
                "starting on the persisted controller policy version {version} ({})",
                c.persist.display()
            ));
            (
                PolicySource::Text {
                    origin: format!("persisted controller policy {}", c.persist.display()),
                    text,
                },
                Some(version),
            )
        }
        None => (
            PolicySource::Text {
                origin: "empty policy (waiting for the controller)".into(),
                text: "version = \"\"\n".into(),
            },
            None,
        ),
    }
}

/// The config and policy to run: from files, or the built-in default (which
/// writes its sample traffic first).
fn start_inputs(args: &Args) -> Result<(Config, PolicySource), StartError> {
    let policy = match &args.policy {
        Some(p) => PolicySource::File(p.clone()),
        None => PolicySource::BuiltIn(default::POLICY),
    };
    if let Some(path) = &args.config {
        return Ok((Config::load(path)?, policy));
    }
    let dir = &args.out_dir;
    let failed = |e: &dyn std::fmt::Display| StartError::DefaultFiles {
        path: dir.clone(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    let dir = dir.canonicalize().map_err(|e| failed(&e))?;
    let input = dir.join("tap-sample.pcap");
    let output = dir.join("uplink.pcap");
    write_pcap(&input, &sample::tap_sample())?;
    log(format!(
        "built-in default: sample traffic {} -> tunnels in {}",
        input.display(),
        output.display()
    ));
    Ok((default::parsed(&input, &output)?, policy))
}

fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) -> Result<(), StartError> {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let failed = |e: &dyn std::fmt::Display| StartError::DefaultFiles {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let f = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut w = PcapWriter::new(f).map_err(|e| failed(&e))?;
    for (i, fr) in frames.iter().enumerate() {
        let ts = Duration::from_micros(1_000 + i as u64 * 20);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// `--check-config FILE`: the config checked as a start would check it
/// (and the policy against it, when given), then what it needs: hugepages,
/// heap and lcores (`config::Footprint`). The lcores come from the EAL
/// options on the command line, else the config's `[eal] args`.
fn check_config(
    path: &std::path::Path,
    policy: Option<&std::path::Path>,
    eal: &[String],
) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error(e.to_string());
            return ExitCode::from(2);
        }
    };
    let eal = eal.get(1..).filter(|a| !a.is_empty());
    if let Some(Err(e)) = eal.map(lcores_in) {
        error(format!("EAL options: {e}"));
        return ExitCode::from(2);
    }
    if let Some(p) = policy {
        let ctx = policy::Context {
            ports: cfg
                .input_ports()
                .enumerate()
                .map(|(i, p)| (p.name.clone(), i as u16))
                .collect(),
            tools: cfg.tool_names(),
            routes: cfg.tunnel_routes(),
        };
        if let Err(e) = policy::load(p, &ctx) {
            error(e.to_string());
            return ExitCode::from(2);
        }
    }
    println!("config {}: valid", path.display());
    if let Some(p) = policy {
        println!("policy {}: valid", p.display());
    }
    println!("{}", Footprint::of(&cfg, eal));
    ExitCode::SUCCESS
}
