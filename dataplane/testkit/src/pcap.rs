//! pcap files: what tests feed `net_pcap` and read back from it.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
pub use pcap_file::DataLink;

/// Writes Ethernet frames to a pcap file, 1 µs apart from 1 µs on. The
/// snap length covers 64 KiB+ (GSO) frames.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = BufWriter::new(File::create(path).expect("create pcap"));
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(f, header).expect("pcap header");
    for (i, fr) in frames.iter().enumerate() {
        let ts = Duration::from_micros(1 + i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .expect("write packet");
    }
}

/// The frames of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    read_pcap_link(path).1
}

/// The link type and frames of a pcap file. Raw packets: fuzzed captures
/// carry headers (orig_len < snaplen and the like) that the validating
/// reader refuses but tshark reads.
pub fn read_pcap_link(path: &Path) -> (DataLink, Vec<Vec<u8>>) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = PcapReader::new(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The link type is the low 16 bits; the high bits of the field carry
    // FCS information (pcap-savefile(5)), which one fuzzed capture sets.
    let link = DataLink::from(u32::from(r.header().datalink) & 0xffff);
    let mut out = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        out.push(
            p.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .data
                .into_owned(),
        );
    }
    (link, out)
}
