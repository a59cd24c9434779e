//! Every checked-in seed (`corpus/<target>/`) and every crash once found
//! (`regressions/<target>/`) through its target's checks, with plain
//! `cargo test`: no nightly, no sanitizer, no libFuzzer. A regression that
//! comes back fails here with the file's name.

use std::path::Path;

#[test]
fn corpus_and_regressions_pass_their_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, run) in sluice_fuzz::targets() {
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).expect("read input");
                let r = std::panic::catch_unwind(|| run(&data));
                assert!(r.is_ok(), "{name}: {} fails its checks", f.display());
                ran += 1;
            }
        }
    }
    assert!(ran > 0, "no corpus found under {}", root.display());
}
