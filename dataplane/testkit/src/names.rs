//! Names unique to this process and call.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process.
pub fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A unique name for this process and call: `sluice-<name>-<pid>-<seq>`.
pub fn unique(name: &str) -> String {
    format!("sluice-{name}-{}-{}", std::process::id(), seq())
}

/// A fresh directory under the system temp dir; removed by the caller.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
