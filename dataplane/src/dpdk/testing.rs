//! Helpers for tests that run DPDK on this machine: EAL arguments that never
//! touch a PCI device and never collide with another test's files.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::Eal;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A `--file-prefix` unique to this process and call.
pub fn unique_prefix(name: &str) -> String {
    format!(
        "sluice-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// EAL arguments for a test: no PCI, virtual devices only, a unique file
/// prefix, memory in memfd (no hugepage files left behind even on a crash),
/// lcores 0 (main) and 1 (worker), quiet logs.
pub fn eal_args(name: &str) -> Vec<String> {
    [
        "sluice-test",
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        &unique_prefix(name),
        "-l",
        "0-1",
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

static SHARED: OnceLock<Eal> = OnceLock::new();

extern "C" {
    fn atexit(cb: extern "C" fn()) -> c_int;
}

extern "C" fn remove_shared_files() {
    if let Some(eal) = SHARED.get() {
        eal.remove_runtime_files();
    }
}

/// The EAL shared by every test of this process (DPDK allows one per
/// process), started on first use with [`eal_args`]. It is never dropped,
/// so its runtime files are removed when the process exits.
///
/// Panics with EAL's reason (which says to run `make setup` when hugepages
/// are missing) if EAL cannot start.
pub fn shared_eal(name: &str) -> &'static Eal {
    SHARED.get_or_init(|| match Eal::init(&eal_args(name)) {
        Ok(eal) => {
            // SAFETY: registers a plain function with the C runtime; it only
            // removes files and touches no DPDK state.
            unsafe { atexit(remove_shared_files) };
            eal
        }
        Err(e) => panic!("{e}"),
    })
}
