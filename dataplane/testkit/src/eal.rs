//! EAL arguments for a test run of a DPDK binary.

/// No PCI, in memory (so no hugepage files are left to clean up), file
/// prefix `prefix` (make it with [`crate::names::unique`]), lcores
/// `lcores` ("0" for the main lcore alone, "0-1" for main and a worker),
/// warnings and worse only.
pub fn eal(prefix: &str, lcores: &str) -> Vec<String> {
    [
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        prefix,
        "--lcores",
        lcores,
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` as the `&str`s `Command::args` and the test runners take.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
