//! The console: one command language for the interactive prompt, command
//! files and the control socket that `sluice-cli` talks to.

pub mod grammar;
pub mod prompt;
pub mod socket;

use std::sync::mpsc::Sender;

/// What a console front-end (prompt, socket client, metrics scrape) asks
/// of the main lcore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A command line of the command language.
    Command(String),
    /// Completions for a partial command line, one per line.
    Complete(String),
    /// The Prometheus exposition text.
    Metrics,
}

/// A request and where its answer goes. The main lcore serves requests
/// between slow-path rounds: the appliance's state has one owner.
#[derive(Debug)]
pub struct Envelope {
    pub request: Request,
    pub reply: Sender<String>,
}
