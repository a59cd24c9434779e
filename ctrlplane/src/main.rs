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
use ctrlplane::config::Config;
use ctrlplane::{cli, default, metrics, sample};

/// Sluice: a DPDK packet broker.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about,
    override_usage = "sluice [EAL options] -- [OPTIONS]"
)]
struct Args {
    /// Appliance config (TOML). Without it, the built-in default runs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Policy (TOML); reloaded on SIGHUP. Without it, the built-in policy.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Stop once the inputs have been quiet this many milliseconds after
    /// traffic (for replaying capture files).
    #[arg(long, value_name = "MS")]
    exit_when_idle: Option<u64>,
    /// How long start-up waits for next hops to resolve, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    resolve_timeout: u64,
    /// Where the built-in default writes its sample input and uplink capture.
    #[arg(long, value_name = "DIR", default_value = "sluice-default")]
    out_dir: PathBuf,
    /// Interactive `sluice>` prompt (forwarding waits for `start` unless -a).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Start forwarding at once, also with -i.
    #[arg(short = 'a', long)]
    auto_start: bool,
    /// Come up stopped: forwarding waits for `start` on the console (to
    /// check a deployment, or to let a capture begin first).
    #[arg(long)]
    stopped: bool,
    /// Run the commands in FILE after start-up.
    #[arg(long, value_name = "FILE")]
    cmdline_file: Option<PathBuf>,
    /// Control socket for sluice-cli [default: sluice.sock in EAL's runtime
    /// directory, /var/run/dpdk/<file-prefix>/].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Prometheus endpoint address (port 0 picks one; the log says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    metrics: String,
}

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

    let (cfg, policy) = match start_inputs(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    let eal_args = if eal_args.len() <= 1 {
        default_eal_args(&program, cfg.pdump.is_some())
    } else {
        eal_args
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
            eprintln!("sluice: cannot handle signal {sig}: {e}");
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
            eprintln!("sluice: cannot start: {e}");
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
        Ok(()) => eprintln!("sluice: control socket {}", socket.display()),
        Err(e) => eprintln!("sluice: no control socket: {e}"),
    }
    match metrics::serve(&args.metrics, console_tx.clone()) {
        Ok(addr) => eprintln!("sluice: metrics on http://{addr}/metrics"),
        Err(e) => eprintln!("sluice: no metrics endpoint: {e}"),
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
            Err(e) => eprintln!("sluice: --cmdline-file {}: {e}", file.display()),
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
            eprintln!(
                "sluice: starting on the persisted controller policy version {version} ({})",
                c.persist.display()
            );
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
    eprintln!(
        "sluice: built-in default: sample traffic {} -> tunnels in {}",
        input.display(),
        output.display()
    );
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
