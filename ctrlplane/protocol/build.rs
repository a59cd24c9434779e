//! Compiles the CPU check (csrc/cpu_check.c) for the x86-64 baseline and
//! links it whole into every program that uses this crate: nothing calls
//! it, it is a constructor, so a plain static library would be dropped.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=csrc/cpu_check.c");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        return;
    }
    let mut build = cc::Build::new();
    build.file("csrc/cpu_check.c").cargo_metadata(false);
    // The features the Rust code is compiled for (.cargo/config.toml).
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    for f in features.split(',') {
        let name = match f {
            "avx" => "AVX",
            "avx2" => "AVX2",
            "bmi1" => "BMI1",
            "bmi2" => "BMI2",
            "fma" => "FMA",
            "f16c" => "F16C",
            "lzcnt" => "LZCNT",
            "movbe" => "MOVBE",
            _ => continue,
        };
        build.define(&format!("SLUICE_CPU_NEEDS_{name}"), None);
    }
    build.compile("sluice_cpu_check");
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static:+whole-archive=sluice_cpu_check");
}
