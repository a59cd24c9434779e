//! Sluice's performance measurements.
//!
//! - `benches/`: criterion micro benchmarks, ns per packet per stage.
//! - [`scenario`], [`run`], [`report`]: the end-to-end harness behind the
//!   `e2e` binary — Sluice against `dpdk-testpmd` in io mode on the same
//!   virtual devices, alternating runs, medians, JSON, Markdown and a chart.

pub mod collector;
pub mod ovs;
pub mod phases;
pub mod report;
pub mod run;
pub mod scenario;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `make bench` runs the criterion benches through `benches/stages.rs`
    /// alone: every bench file must be a module there with each group of
    /// its `criterion_main!` called, or its figures silently go missing.
    #[test]
    fn every_bench_group_runs_in_the_stages_binary() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
        let stages = std::fs::read_to_string(dir.join("stages.rs")).unwrap();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_owned();
            let Some(module) = file.strip_suffix(".rs") else {
                continue;
            };
            if module == "stages" {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let groups = text
                .split("criterion_main!(")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .unwrap_or_else(|| panic!("{file}: no criterion_main!"));
            assert!(
                stages.contains(&format!("#[path = \"{file}\"]\nmod {module};")),
                "benches/stages.rs does not include {file} as `mod {module}`"
            );
            for group in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                assert!(
                    stages.contains(&format!("{module}::{group}();")),
                    "benches/stages.rs does not run {module}::{group}"
                );
            }
        }
        assert!(
            files >= 7,
            "only {files} bench files found in {}",
            dir.display()
        );
    }
}
