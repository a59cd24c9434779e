//! Policy: the model operators and the controller write, its validation,
//! and its compilation into the tables the workers run.

mod compile;
/// The policy document is shared with the controller, which checks it
/// parses before serving it.
pub use sluice_protocol::policy as model;

use std::path::Path;

pub use compile::{compile, Context, Problem};
use dataplane::runtime::policy::CompiledPolicy;
pub use model::Policy;

/// A policy that cannot be used, with every reason.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("policy {origin}: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("policy {origin}: {} problem(s): {}", .problems.len(), .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// Parses a TOML policy (without compiling it).
pub fn parse_toml(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    model::parse_toml(text, origin)
        .map_err(|model::SyntaxError { origin, reason }| PolicyError::Syntax { origin, reason })
}

/// Reads, validates and compiles a TOML policy file; returns the policy as
/// written and as compiled.
pub fn load(path: &Path, ctx: &Context) -> Result<(Policy, CompiledPolicy), PolicyError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
        path: origin.clone(),
        reason: e.to_string(),
    })?;
    load_text(&text, &origin, ctx)
}

/// Validates and compiles TOML policy text; `origin` names it in errors.
pub fn load_text(
    text: &str,
    origin: &str,
    ctx: &Context,
) -> Result<(Policy, CompiledPolicy), PolicyError> {
    let policy = parse_toml(text, origin)?;
    match compile(&policy, ctx) {
        Ok(c) => Ok((policy, c)),
        Err(problems) => Err(PolicyError::Invalid {
            origin: origin.to_owned(),
            problems,
        }),
    }
}

#[cfg(test)]
mod tests;
