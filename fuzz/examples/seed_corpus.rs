//! Writes the frame targets' seed corpus from the reference captures:
//! every Ethernet frame of every capture, one file per distinct frame
//! (named by a hash of its bytes, so re-running is idempotent), behind the
//! three knob bytes each target reads first. Frames are capped in length
//! and in number per capture so the corpus stays a few MB.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus -- \
//!     ../shared/captures/tcpdump fuzz/corpus
//! ```

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;

/// Longest frame kept whole; longer ones are cut (the parser only reads
/// headers, and a cut frame is a hostile input in its own right).
const MAX_FRAME: usize = 2048;
/// Frames taken from one capture at most (the first ones: captures repeat).
const PER_CAPTURE: usize = 24;

fn hash(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut r) = PcapReader::new(file) else {
        eprintln!("skip {}: not a pcap file", path.display());
        return Vec::new();
    };
    // The link type is the low 16 bits (the high ones may carry FCS info).
    let link = DataLink::from(u32::from(r.header().datalink) & 0xffff);
    if link != DataLink::ETHERNET {
        eprintln!("skip {}: link type {link:?}", path.display());
        return Vec::new();
    }
    let mut out = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        let Ok(p) = p else { break };
        let mut f = p.data.into_owned();
        f.truncate(MAX_FRAME);
        out.push(f);
        if out.len() == PER_CAPTURE {
            break;
        }
    }
    out
}

fn write(dir: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    let p = dir.join(format!("{:016x}", hash(bytes)));
    std::fs::write(p, bytes).expect("write seed");
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [captures, corpus] = &args[..] else {
        eprintln!("usage: seed_corpus CAPTURES_DIR CORPUS_DIR");
        std::process::exit(2);
    };
    let mut caps: Vec<PathBuf> = std::fs::read_dir(captures)
        .expect("captures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    caps.sort();
    let mut seen = BTreeSet::new();
    let mut n = 0usize;
    for (i, cap) in caps.iter().enumerate() {
        for f in frames(cap) {
            if !seen.insert(hash(&f)) {
                continue;
            }
            // Vary the knobs from seed to seed so every tunnel kind, MTU and
            // decap setting starts with some coverage.
            let k = (n as u8).wrapping_mul(37) ^ (i as u8);
            let mut stages = vec![k, k.rotate_left(3), 64];
            stages.extend_from_slice(&f);
            write(&corpus.join("stages"), &stages);
            // decap_nested: no wrapping for most, one to three for some.
            let wrap = if n.is_multiple_of(4) { (n as u8 >> 2) & 0x30 } else { 0 };
            let mut decap = vec![(k & 0x0f) | wrap, k, k.rotate_left(5)];
            decap.extend_from_slice(&f);
            write(&corpus.join("decap_nested"), &decap);
            n += 1;
        }
    }
    println!("{n} distinct frames from {} captures", caps.len());
}
