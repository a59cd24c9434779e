//! The interactive `sluice>` prompt: line editing, history and tab
//! completion (rustyline), each line run by the main lcore.

use std::sync::mpsc::{self, Sender};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use super::{Answer, Envelope, Request};

/// Completion asks the main lcore, which knows the ports.
#[derive(Helper, Hinter, Highlighter, Validator)]
struct Console {
    main: Sender<Envelope>,
}

fn ask(main: &Sender<Envelope>, request: Request) -> Option<Answer> {
    let (tx, rx) = mpsc::channel();
    main.send(Envelope { request, reply: tx }).ok()?;
    rx.recv().ok()
}

impl Completer for Console {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map_or(0, |i| i + 1);
        let words = ask(&self.main, Request::Complete(head.to_owned()))
            .map(|a| a.text)
            .unwrap_or_default();
        let pairs = words
            .lines()
            .map(|w| Pair {
                display: w.to_owned(),
                replacement: format!("{w} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

/// Runs the prompt on its own thread until `quit` or end of input.
pub fn spawn(main: Sender<Envelope>) {
    let _ = std::thread::Builder::new()
        .name("sluice-prompt".into())
        .spawn(move || {
            let mut ed = match Editor::new() {
                Ok(e) => e,
                Err(e) => {
                    crate::log::warn(format!("no prompt: {e}"));
                    return;
                }
            };
            ed.set_helper(Some(Console { main: main.clone() }));
            loop {
                let line = match ed.readline("sluice> ") {
                    Ok(l) => l,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => "quit".to_owned(),
                };
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                let quit = line.trim() == "quit";
                match ask(&main, Request::Command(line)) {
                    // Printed, then dropped: the main lcore may exit.
                    Some(out) => print!("{}", out.text),
                    None => return,
                }
                if quit {
                    return;
                }
            }
        });
}
