//! The command lines of `sluice` and `sluice-cli` (clap). Nothing here
//! imports the crate: the man pages are generated from these very
//! definitions (`packaging/mangen`, which includes this file).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Sluice: a DPDK packet broker.
///
/// EAL options come before `--`, like testpmd; without any, Sluice takes
/// them from the config's `[eal] args`, else `-l 0-1 --no-pci --in-memory`.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a DPDK packet broker appliance",
    override_usage = "sluice [EAL options] -- [OPTIONS]"
)]
pub struct SluiceArgs {
    /// Appliance config (TOML). Without it, the built-in default runs.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Check the config FILE (and --policy, if given), print the
    /// hugepages, heap and lcores it needs, and exit (0: valid, 2: not).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Policy (TOML); reloaded on SIGHUP. Without it, the built-in policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Stop once the inputs have been quiet this many milliseconds after
    /// traffic (for replaying capture files).
    #[arg(long, value_name = "MS")]
    pub exit_when_idle: Option<u64>,
    /// How long start-up waits for next hops to resolve, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub resolve_timeout: u64,
    /// Where the built-in default writes its sample input and uplink capture.
    #[arg(long, value_name = "DIR", default_value = "sluice-default")]
    pub out_dir: PathBuf,
    /// Interactive `sluice>` prompt (forwarding waits for `start` unless -a).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Start forwarding at once, also with -i.
    #[arg(short = 'a', long)]
    pub auto_start: bool,
    /// Come up stopped: forwarding waits for `start` on the console (to
    /// check a deployment, or to let a capture begin first).
    #[arg(long)]
    pub stopped: bool,
    /// Run the commands in FILE after start-up.
    #[arg(long, value_name = "FILE")]
    pub cmdline_file: Option<PathBuf>,
    /// Control socket for sluice-cli [default: sluice.sock in EAL's runtime
    /// directory, /var/run/dpdk/<file-prefix>/].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Prometheus endpoint address (port 0 picks one; the log says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    pub metrics: String,
    /// Log lines on stderr: `text` (`sluice: message`, warnings and
    /// errors marked) or `json` (one object a line: time, level, target,
    /// message, fields), for journald and log shippers.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The least severe level logged.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A log line's severity, most severe last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Talk to a running sluice.
#[derive(Debug, Parser)]
#[command(
    name = "sluice-cli",
    version,
    about = "The console of a running sluice, over its control socket"
)]
pub struct CliArgs {
    /// The control socket [default: the only /var/run/dpdk/*/sluice.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// EAL file prefix of the sluice to reach (its runtime directory).
    #[arg(long, value_name = "PREFIX", conflicts_with = "socket")]
    pub file_prefix: Option<String>,
    /// A command to run, e.g. `show port stats all`; none opens a prompt.
    pub command: Vec<String>,
}
