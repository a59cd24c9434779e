//! The Environment Abstraction Layer: initialised once per process from an
//! argument list, cleaned up (with its runtime files) on drop.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{rte_errno, strerror, DpdkError, Result};

/// DPDK allows one `rte_eal_init` per process, even after cleanup.
static INITIALISED: AtomicBool = AtomicBool::new(false);
/// Between a successful `rte_eal_init` and `rte_eal_cleanup`: DPDK's
/// allocator and named objects (rte_malloc, rte_acl) work only then.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether EAL is up in this process (DPDK memory can be allocated).
pub fn running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// An initialised EAL. Dropping it calls `rte_eal_cleanup` and removes the
/// hugepage and runtime files of its `--file-prefix`.
#[derive(Debug)]
pub struct Eal {
    files: RuntimeFiles,
    /// Arguments EAL consumed; the rest (after `--`) belong to the application.
    consumed: usize,
}

impl Eal {
    /// Initialises EAL from `args` (with `args[0]` the program name, as
    /// testpmd's argv). Fails with a message saying what to do when the
    /// arguments are wrong or no hugepages are reserved.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let shown = args.join(" ");
        let mut owned = Vec::with_capacity(args.len());
        for a in &args {
            owned.push(CString::new(*a).map_err(|_| DpdkError::Invalid {
                what: format!("EAL argument {a:?}"),
                reason: "contains a NUL byte".into(),
            })?);
        }
        let files = RuntimeFiles::from_args(&args);
        if needs_hugepages(&args) {
            check_hugepages()?;
        }
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        // EAL may keep pointers into argv (and permutes it), so the strings
        // live for the rest of the process: one small allocation, once.
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = argv.len() as i32;
        // SAFETY: argv holds argc valid NUL-terminated strings that are never
        // freed; EAL initialisation happens at most once (INITIALISED above).
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let reason = strerror(rte_errno());
            files.remove();
            return Err(DpdkError::EalInit {
                reason,
                args: shown,
            });
        }
        RUNNING.store(true, Ordering::Release);
        Ok(Eal {
            files,
            consumed: ret as usize,
        })
    }

    /// How many arguments EAL consumed (not counting the program name).
    pub fn consumed_args(&self) -> usize {
        self.consumed
    }

    /// Removes the hugepage and runtime files of this EAL's prefix now, for
    /// a process that will exit without dropping its EAL.
    pub(crate) fn remove_runtime_files(&self) {
        self.files.remove();
    }

    /// The `--file-prefix` in force.
    pub fn file_prefix(&self) -> &str {
        &self.files.prefix
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // A secondary whose primary is gone must not clean up: the drivers'
        // teardown would touch devices and memory only the primary ran
        // (net_pcap crashes there). Exiting releases what is ours.
        if super::pdump::is_secondary() && !super::pdump::primary_alive() {
            return;
        }
        RUNNING.store(false, Ordering::Release);
        // SAFETY: EAL was initialised by this value and every lcore has been
        // waited for by its LcoreHandle; cleanup is the last DPDK call.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
        self.files.remove();
    }
}

/// DPDK's version string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe {
        let p = dpdk_sys::rte_version();
        if p.is_null() {
            return "DPDK (unknown version)".into();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The files a primary process leaves in hugetlbfs and /var/run/dpdk.
#[derive(Debug, Clone)]
struct RuntimeFiles {
    prefix: String,
    huge_dir: Option<PathBuf>,
    secondary: bool,
}

impl RuntimeFiles {
    fn from_args(args: &[&str]) -> Self {
        let prefix = option_value(args, "--file-prefix")
            .unwrap_or("rte")
            .to_owned();
        let huge_dir = option_value(args, "--huge-dir").map(PathBuf::from);
        let secondary =
            option_value(args, "--proc-type").is_some_and(|t| t == "secondary" || t == "auto");
        Self {
            prefix,
            huge_dir,
            secondary,
        }
    }

    /// Removes `<huge-dir>/<prefix>map_*` and `/var/run/dpdk/<prefix>`.
    /// A secondary process shares the primary's files and removes nothing.
    fn remove(&self) {
        if self.secondary {
            return;
        }
        let dirs: Vec<PathBuf> = match &self.huge_dir {
            Some(d) => vec![d.clone()],
            None => hugetlbfs_mounts(),
        };
        let stem = format!("{}map_", self.prefix);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stem) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
    }
}

/// Value of `--name value` or `--name=value` in `args`.
fn option_value<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--" {
            break;
        }
        if *a == name {
            return it.next().copied();
        }
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

fn has_flag(args: &[&str], name: &str) -> bool {
    args.iter().take_while(|a| **a != "--").any(|a| *a == name)
}

/// A primary process needs hugepages unless told `--no-huge`.
fn needs_hugepages(args: &[&str]) -> bool {
    !has_flag(args, "--no-huge") && option_value(args, "--proc-type") != Some("secondary")
}

/// Fails early, with a message that says what to do, when no hugepage of any
/// size is free: EAL's own message for this is cryptic.
fn check_hugepages() -> Result<()> {
    let mut free = 0u64;
    let mut seen = Vec::new();
    if let Ok(sizes) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for size in sizes.flatten() {
            let path = size.path().join("free_hugepages");
            let n = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            seen.push(format!("{}: {n} free", size.file_name().to_string_lossy()));
            free += n;
        }
    }
    if free == 0 {
        return Err(DpdkError::NoHugepages {
            detail: if seen.is_empty() {
                "/sys/kernel/mm/hugepages is missing".into()
            } else {
                seen.join(", ")
            },
        });
    }
    if hugetlbfs_mounts().is_empty() {
        return Err(DpdkError::NoHugepages {
            detail: "no hugetlbfs is mounted".into(),
        });
    }
    Ok(())
}

/// Mount points of hugetlbfs, from /proc/mounts.
fn hugetlbfs_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "hugetlbfs").then(|| PathBuf::from(dir))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_in_both_spellings_and_only_before_double_dash() {
        let args = [
            "x",
            "--file-prefix",
            "a",
            "--huge-dir=/h",
            "--",
            "--no-huge",
        ];
        assert_eq!(option_value(&args, "--file-prefix"), Some("a"));
        assert_eq!(option_value(&args, "--huge-dir"), Some("/h"));
        assert!(!has_flag(&args, "--no-huge"));
        assert!(needs_hugepages(&args));
        assert!(!needs_hugepages(&["x", "--no-huge"]));
        let f = RuntimeFiles::from_args(&["x"]);
        assert_eq!(f.prefix, "rte");
    }
}
