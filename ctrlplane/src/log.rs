//! The appliance's log: one line on stderr per event, prefixed `sluice:`.
//! Every module of the main lcore may log; this module imports nothing of
//! the crate, so no arrow runs back up to the appliance.

use std::io::Write;

/// One line on stderr. A closed stderr (the reader went away) must not
/// panic the main lcore: that would leave the workers running forever.
pub fn log(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "sluice: {}", msg.as_ref());
}
