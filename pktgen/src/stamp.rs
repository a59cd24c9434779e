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
//!
//! A profile with `send_time = true` reserves a second field right after
//! the stamp, which the sender fills just before it transmits (a receiver
//! takes receive time − send time as the frame's one-way delay):
//!
//! ```text
//! 16  magic "ST"       18  send time (u64, CLOCK_MONOTONIC ns; 0: not sent yet)
//! 26  fix (u16): makes the field's one's-complement sum 0xffff
//! ```
//!
//! Its sum is as constant as the stamp's, so writing it needs no checksum
//! either. A copy a profile makes on purpose is sent with its own send
//! time: a send-time profile is for measuring delay, not deduplication.

/// Stamp length in bytes.
pub const LEN: usize = 16;
/// The magic that starts a stamp.
pub const MAGIC: [u8; 4] = *b"SLPG";

/// Length of the send-time field that may follow a stamp.
pub const TIME_LEN: usize = 12;
/// The magic that starts a send-time field.
pub const TIME_MAGIC: [u8; 2] = *b"ST";

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

fn words(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// Writes a send-time field (`ns`, 0 for "not sent yet") into
/// `out[..TIME_LEN]`. `out` must be at least `TIME_LEN` long.
pub fn write_time(ns: u64, out: &mut [u8]) {
    let out = &mut out[..TIME_LEN];
    out[0..2].copy_from_slice(&TIME_MAGIC);
    out[2..10].copy_from_slice(&ns.to_be_bytes());
    let partial = sum16(words(&out[..10]));
    out[10..12].copy_from_slice(&(!partial).to_be_bytes());
}

/// Reads the send time at the start of `b`: `None` when no consistent
/// field is there or the sender has not written one (time 0).
pub fn read_time(b: &[u8]) -> Option<u64> {
    let b = b.get(..TIME_LEN)?;
    if b[..2] != TIME_MAGIC || sum16(words(b)) != 0xffff {
        return None;
    }
    let ns = u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]);
    (ns != 0).then_some(ns)
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
        Stamp::locate(frame, hint).map(|(_, s)| s)
    }

    /// As [`Stamp::find`], with where the stamp starts in the frame.
    pub fn locate(frame: &[u8], hint: Option<usize>) -> Option<(usize, Stamp)> {
        if let Some(h) = hint {
            if let Some(s) = frame.get(h..).and_then(Stamp::read) {
                return Some((h, s));
            }
        }
        let mut i = 0;
        while i + LEN <= frame.len() {
            if frame[i] == MAGIC[0] {
                if let Some(s) = Stamp::read(&frame[i..]) {
                    return Some((i, s));
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
        assert_eq!(Stamp::locate(&frame, None).map(|(at, _)| at), Some(37));
    }

    #[test]
    fn send_time_round_trip_and_constant_sum() {
        let mut sums = std::collections::HashSet::new();
        for ns in [1, 7_000_123_456_789, u64::MAX, 0x0001_0000_ffff_0000] {
            let mut b = [0u8; TIME_LEN];
            write_time(ns, &mut b);
            assert_eq!(read_time(&b), Some(ns));
            sums.insert(sum16(words(&b)));
        }
        // "Not sent yet" has the same sum, and reads as no time.
        let mut b = [0u8; TIME_LEN];
        write_time(0, &mut b);
        assert_eq!(read_time(&b), None);
        sums.insert(sum16(words(&b)));
        assert_eq!(sums.into_iter().collect::<Vec<_>>(), [0xffff]);
    }

    #[test]
    fn rewriting_the_send_time_keeps_a_udp_checksum_valid() {
        // A UDP datagram (pseudo-header left out: it does not change) whose
        // payload is a stamp and a send-time field, checksummed once with
        // time 0, then given a send time without touching the checksum.
        let mut d = vec![0x12, 0x34, 0x00, 0x50, 0x00, 0x2c, 0, 0];
        d.resize(8 + LEN + TIME_LEN + 8, 0x55);
        Stamp { flow: 5, seq: 77 }.write(&mut d[8..]);
        write_time(0, &mut d[8 + LEN..]);
        let check = !sum16(words(&d));
        d[6..8].copy_from_slice(&check.to_be_bytes());
        for ns in [1, 123_456_789_012, u64::MAX] {
            write_time(ns, &mut d[8 + LEN..]);
            assert_eq!(sum16(words(&d)), 0xffff, "checksum still valid");
        }
        assert_eq!(read_time(&d[8 + LEN..]), Some(u64::MAX));
        // A damaged field is no time at all.
        d[8 + LEN + 5] ^= 0x10;
        assert_eq!(read_time(&d[8 + LEN..]), None);
    }
}
