//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers.
//!
//! Sums are kept unfolded in a `u64` so callers can chain pieces (pseudo
//! header, header, payload) and fold once: `finish(sum(b, pseudo_v4(..)))`.
//! Each piece must start at an even offset of the checksummed data, as the
//! headers and pseudo-headers do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Adds the big-endian 16-bit words of `data` to `acc` (an odd last byte is
/// padded with zero). Reads 8 bytes per step: two 32-bit words per add keeps
/// the carries in the upper half of the `u64`, so no per-word folding.
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        if let &[a, b, c, d, e, f, g, h] = c {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
            acc += u64::from(u32::from_be_bytes([e, f, g, h]));
        }
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for w in &mut rest {
        if let &[a, b] = w {
            acc += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    if let &[last] = rest.remainder() {
        acc += u64::from(u16::from_be_bytes([last, 0]));
    }
    acc
}

/// Folds an unfolded sum into 16 bits (one's complement addition).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for an unfolded sum: the complement of the fold.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `data` alone (IPv4 header, ICMPv4).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// Whether `data`, checksum field included, sums to all ones.
#[inline]
pub fn verify(data: &[u8], acc: u64) -> bool {
    fold(sum(data, acc)) == 0xffff
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 793/768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    let s = u32::from(src);
    let d = u32::from(dst);
    u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(len)
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1); `len` is the
/// upper-layer length, 32 bits for jumbograms.
#[inline]
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u64 {
    let acc = sum(&src.octets(), 0);
    let acc = sum(&dst.octets(), acc);
    acc + u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header)
}

/// The pseudo-header for either family. Mixed families are a caller bug; they
/// are summed as IPv6 with the IPv4 address mapped, which no receiver accepts
/// but which does not panic.
#[inline]
pub fn pseudo(src: &IpAddr, dst: &IpAddr, protocol: u8, len: u32) -> u64 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_v4(*s, *d, protocol, len as u16),
        _ => pseudo_v6(&v6(src), &v6(dst), protocol, len),
    }
}

fn v6(a: &IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => *a,
    }
}

/// Incremental update (RFC 1624 eqn. 3) of a checksum field when one 16-bit
/// word of the covered data changes from `old` to `new`: how encap patches
/// the outer IPv4 length and ID without re-summing the header.
#[inline]
pub fn adjust(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook word-at-a-time sum, to check the 8-byte fast path against.
    fn slow(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for w in data.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            let lo = w.get(1).map_or(0, |b| u32::from(*b));
            acc += hi | lo;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A header from Wikipedia's IPv4 checksum example: b861 is correct.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h, 0));
        h[3] ^= 1;
        assert!(!verify(&h, 0));
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn pseudo_headers_match_their_byte_layout() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(192, 168, 1, 200);
        let mut bytes = Vec::new();
        bytes.extend(s.octets());
        bytes.extend(d.octets());
        bytes.extend([0, 17, 0x01, 0x2c]);
        assert_eq!(fold(pseudo_v4(s, d, 17, 300)), fold(sum(&bytes, 0)));
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::abcd:1".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend(s6.octets());
        bytes.extend(d6.octets());
        bytes.extend(70_000u32.to_be_bytes());
        bytes.extend([0, 0, 0, 6]);
        assert_eq!(fold(pseudo_v6(&s6, &d6, 6, 70_000)), fold(sum(&bytes, 0)));
        assert_eq!(
            pseudo(&IpAddr::V4(s), &IpAddr::V4(d), 17, 300),
            pseudo_v4(s, d, 17, 300)
        );
    }

    proptest! {
        #[test]
        fn fast_sum_equals_word_sum(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), slow(&data));
        }

        #[test]
        fn adjust_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..64),
            word in 0usize..31,
            new in any::<u16>(),
        ) {
            let at = (word * 2) % (data.len() & !1);
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            // One's complement has two zeros; both are the same checksum.
            let a = adjust(before, old, new);
            let b = checksum(&data);
            prop_assert!(a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0));
        }
    }
}
