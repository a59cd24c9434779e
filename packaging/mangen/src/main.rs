//! `sluice-mangen DIR`: writes `sluice.1`, `sluice-cli.1` and
//! `sluice-controller.1` (and one page per controller subcommand) into
//! DIR, from the very clap definitions the binaries parse with. The files
//! holding them import nothing but clap and std, so they are included
//! here as they are, without linking DPDK or tokio.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

#[allow(dead_code)]
#[path = "../../../ctrlplane/src/args.rs"]
mod sluice;

#[allow(dead_code)]
#[path = "../../../ctrlplane/controller/src/args.rs"]
mod controller;

/// Writes `cmd`'s page, then one page per subcommand (`name-sub.1`).
fn write_pages(dir: &Path, cmd: clap::Command) -> std::io::Result<()> {
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let name = cmd.get_name().to_owned();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)?;
    for sub in cmd.get_subcommands() {
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().name(&sub_name);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        std::fs::write(dir.join(format!("{sub_name}.1")), page)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: sluice-mangen DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| write_pages(&dir, sluice::SluiceArgs::command()))
        .and_then(|()| write_pages(&dir, sluice::CliArgs::command()))
        .and_then(|()| write_pages(&dir, controller::Cli::command()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-mangen: {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}
