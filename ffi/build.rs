//! Finds the system DPDK with pkg-config, generates bindings with bindgen and
//! compiles the C shims for static-inline functions with the same cflags.

use std::env;
use std::path::PathBuf;

const MIN_DPDK: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let _dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            // One line that says what to do; the pkg-config detail follows for the curious.
            eprintln!(
                "dpdk-sys: DPDK >= {MIN_DPDK} not found by pkg-config (libdpdk): install the Debian package libdpdk-dev (run `make setup`). Detail: {}",
                e.to_string().lines().next().unwrap_or("")
            );
            std::process::exit(1);
        }
    };

    // pkg-config's cflags carry `-include rte_config.h` and `-march=...`: the
    // shims and bindgen must both see the configuration DPDK was built with.
    let cflags = dpdk_cflags();
    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("sluice_shim");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-I.")
        .allowlist_function("rte_.*|sluice_rte_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*")
        // Types that are both packed and aligned: Rust cannot express them,
        // so they stay opaque byte blobs (Sluice parses these headers itself).
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_gtp_psc_.*")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_ipv6_hdr_.*")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| {
            eprintln!("dpdk-sys: bindgen failed over the DPDK headers: {e}");
            std::process::exit(1);
        });

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs into OUT_DIR");
}

/// The compiler flags for libdpdk exactly as pkg-config prints them.
fn dpdk_cflags() -> Vec<String> {
    let out = std::process::Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| {
            eprintln!("dpdk-sys: cannot run pkg-config: {e}: install the Debian package pkg-config (run `make setup`)");
            std::process::exit(1);
        });
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
