//! Capture files: write a generated cycle, read frames back.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

use crate::gen::Cycle;

/// Writes `rounds` cycles (sequence numbers continuing, timestamps from the
/// profile's rate) to `path`. Returns frames written.
pub fn write(path: &Path, cycle: &mut Cycle, rounds: u32) -> Result<u64, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let f = File::create(path).map_err(|e| err(&e))?;
    let mut w = PcapWriter::new(BufWriter::new(f)).map_err(|e| err(&e))?;
    let span = cycle
        .packets
        .iter()
        .map(|p| p.ts_ns)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let mut n = 0;
    for round in 0..rounds {
        cycle.set_round(round);
        for p in &cycle.packets {
            let ts = Duration::from_nanos(p.ts_ns + span * u64::from(round));
            w.write_packet(&PcapPacket::new(ts, p.frame.len() as u32, &p.frame))
                .map_err(|e| err(&e))?;
            n += 1;
        }
    }
    cycle.set_round(0);
    Ok(n)
}

/// Every frame of a capture, in order.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let f = File::open(path).map_err(|e| err(&e))?;
    let mut r = PcapReader::new(BufReader::new(f)).map_err(|e| err(&e))?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.map_err(|e| err(&e))?.data.into_owned());
    }
    Ok(out)
}

/// Where a plain (untunnelled) frame's L4 payload starts, for the
/// checker's first look: Ethernet, up to two VLAN tags, IPv4 (with
/// options) or IPv6 (no extension headers), TCP/UDP/ICMP.
pub fn payload_offset(f: &[u8]) -> Option<usize> {
    let mut at = 12;
    let mut et = u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]);
    at += 2;
    let mut tags = 0;
    while (et == 0x8100 || et == 0x88a8) && tags < 2 {
        et = u16::from_be_bytes([*f.get(at + 2)?, *f.get(at + 3)?]);
        at += 4;
        tags += 1;
    }
    let proto = match et {
        0x0800 => {
            let ihl = usize::from(f.get(at)? & 0x0f) * 4;
            let p = *f.get(at + 9)?;
            at += ihl;
            p
        }
        0x86dd => {
            let p = *f.get(at + 6)?;
            at += 40;
            p
        }
        _ => return None,
    };
    match proto {
        6 => Some(at + usize::from(f.get(at + 12)? >> 4) * 4),
        17 | 1 | 58 => Some(at + 8),
        _ => None,
    }
}
