//! `sluice-cli`: the console of a running sluice, over its control socket.
//!
//! `sluice-cli show port stats all` runs one command; with no command it
//! opens a `sluice>` prompt with the same history and completion.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use ctrlplane::args::CliArgs as Args;
use ctrlplane::cli::socket::Client;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

fn find_socket(args: &Args) -> Result<PathBuf, String> {
    if let Some(s) = &args.socket {
        return Ok(s.clone());
    }
    if let Some(p) = &args.file_prefix {
        return Ok(PathBuf::from("/var/run/dpdk").join(p).join("sluice.sock"));
    }
    let found: Vec<PathBuf> = std::fs::read_dir("/var/run/dpdk")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("sluice.sock"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    match found.len() {
        1 => Ok(found[0].clone()),
        0 => Err(
            "no running sluice found under /var/run/dpdk: give --socket or --file-prefix".into(),
        ),
        _ => Err(format!(
            "several sluices run ({}): give --socket or --file-prefix",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[derive(Helper, Hinter, Highlighter, Validator)]
struct Remote {
    client: Mutex<Client>,
}

impl Completer for Remote {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map_or(0, |i| i + 1);
        let words = match self.client.lock() {
            Ok(mut c) => c.complete(head).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: format!("{w} "),
                })
                .collect(),
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = match find_socket(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sluice-cli: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client = match Client::connect(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice-cli: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.command.is_empty() {
        return match client.command(&args.command.join(" ")) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluice-cli: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut ed = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sluice-cli: {e}");
            return ExitCode::from(1);
        }
    };
    ed.set_helper(Some(Remote {
        client: Mutex::new(client),
    }));
    loop {
        let line = match ed.readline("sluice> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => return ExitCode::SUCCESS,
        };
        let _ = ed.add_history_entry(line.as_str());
        // `quit` here leaves the console, not the appliance.
        if matches!(line.trim(), "quit" | "exit") {
            return ExitCode::SUCCESS;
        }
        let out = match ed.helper().map(|h| h.client.lock()) {
            Some(Ok(mut c)) => c.command(&line),
            _ => Err("console lost".into()),
        };
        match out {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("sluice-cli: {e}");
                return ExitCode::from(1);
            }
        }
    }
}
