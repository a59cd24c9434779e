//! The sequence stamp at the start of every generated payload.
//!
//! ```text
//!  0  magic "SLPG"      4  flow id (u32)      8  sequence (u32)
//! 12  check (u16): a hash of flow and sequence
//! 14  fix (u16): makes the stamp's 16-bit one's-complement sum 0xffff
//! ```
//!
//! A profile's duplicate copy carries its original's stamp unchanged: a
//! deduplicator keys on the payload, so the copies must be byte-identical
//! there (only TTL, VLAN and MACs differ, as between two mirror points).
//!
//! Because the stamp's one's-complement sum never changes, a sender can
//! rewrite the sequence number of a prebuilt frame without touching any
//! checksum (inner L4, outer UDP) that covers it. Big-endian throughout.

/// Stamp length in bytes.
pub const LEN: usize = 16;
/// The magic that starts a stamp.
pub const MAGIC: [u8; 4] = *b"SLPG";

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub flow: u32,
    pub seq: u32,
}

fn check_hash(flow: u32, seq: u32) -> u16 {
    let h = flow.wrapping_mul(0x9e37_79b1) ^ seq.wrapping_mul(0x85eb_ca6b);
    ((h >> 16) ^ h) as u16
}

fn sum16(words: impl Iterator<Item = u16>) -> u16 {
    let mut s: u32 = 0;
    for w in words {
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

impl Stamp {
    /// Writes the stamp into `out[..LEN]`. `out` must be at least `LEN` long.
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.flow.to_be_bytes());
        out[8..12].copy_from_slice(&self.seq.to_be_bytes());
        let check = check_hash(self.flow, self.seq);
        out[12..14].copy_from_slice(&check.to_be_bytes());
        let partial = sum16(
            out[..14]
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        );
        out[14..16].copy_from_slice(&(!partial).to_be_bytes());
    }

    /// Reads a stamp at the start of `b`, if one is there and consistent.
    pub fn read(b: &[u8]) -> Option<Stamp> {
        let b = b.get(..LEN)?;
        if b[..4] != MAGIC {
            return None;
        }
        let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let seq = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let check = u16::from_be_bytes([b[12], b[13]]);
        if check != check_hash(flow, seq) {
            return None;
        }
        Some(Stamp { flow, seq })
    }

    /// Finds a stamp anywhere in a frame: at `hint` first (where the
    /// payload starts), else by scanning (tunnelled, sliced or unknown
    /// framing).
    pub fn find(frame: &[u8], hint: Option<usize>) -> Option<Stamp> {
        if let Some(s) = hint.and_then(|h| frame.get(h..)).and_then(Stamp::read) {
            return Some(s);
        }
        let mut i = 0;
        while i + LEN <= frame.len() {
            if frame[i] == MAGIC[0] {
                if let Some(s) = Stamp::read(&frame[i..]) {
                    return Some(s);
                }
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_constant_sum() {
        let mut sums = std::collections::HashSet::new();
        for (flow, seq) in [(0, 0), (7, 1), (u32::MAX, 123_456)] {
            let s = Stamp { flow, seq };
            let mut b = [0u8; LEN];
            s.write(&mut b);
            assert_eq!(Stamp::read(&b), Some(s));
            sums.insert(sum16(
                b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])),
            ));
        }
        assert_eq!(sums.len(), 1, "one's-complement sum is invariant");
    }

    #[test]
    fn corrupt_stamps_are_refused_and_found_by_scan() {
        let mut b = [0u8; LEN];
        Stamp { flow: 3, seq: 9 }.write(&mut b);
        let mut bad = b;
        bad[11] ^= 1;
        assert_eq!(Stamp::read(&bad), None);
        let mut frame = vec![0x53u8; 37];
        frame.extend_from_slice(&b);
        frame.extend_from_slice(&[0; 5]);
        assert_eq!(Stamp::find(&frame, Some(0)).map(|s| s.seq), Some(9));
        assert_eq!(Stamp::find(&frame[..40], None), None);
    }
}
