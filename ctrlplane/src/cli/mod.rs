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
    pub reply: Sender<Answer>,
}

/// The main lcore's answer to a request. A front-end drops it once the
/// text is out (written to the socket, printed): the main lcore, about to
/// exit after `quit`, waits for that drop, so the answer to `quit` is never
/// lost to the process exiting first.
#[derive(Debug)]
pub struct Answer {
    pub text: String,
    /// Held until the answer is delivered; the main lcore waits on its receiver.
    pub delivered: Option<Sender<()>>,
}

impl Answer {
    /// An answer nobody waits on.
    pub fn new(text: String) -> Answer {
        Answer {
            text,
            delivered: None,
        }
    }
}
