//! Zero-copy header views and emitters, in the style of smoltcp's `wire`:
//! a `Packet<T: AsRef<[u8]>>` view whose accessors never panic and never
//! read past the buffer, a `Repr` with `parse`/`emit`, unknown values kept
//! as `Unknown(n)`.
//!
//! Conventions shared by every header module:
//! - `Packet::new_unchecked(buf)` wraps any buffer; `Packet::new_checked(buf)`
//!   also checks that the buffer holds the whole header (and, where the
//!   header has a length field, that the field is consistent).
//! - Accessors read missing bytes as zero and setters ignore bytes past the
//!   buffer, so a view over a short buffer is wrong but never panics. Use
//!   `new_checked` (or `Repr::parse`) before trusting what you read.
//! - `Repr::parse(&Packet)` validates and lifts the header into a plain value;
//!   `Repr::emit(&self, &mut Packet)` writes it back; `Repr::header_len()`
//!   says how many bytes `emit` writes. `Repr::emit_to(&self, &mut [u8])`
//!   checks the length, emits at the front of a slice and returns the header
//!   length: what tunnel encap uses to build its outer headers.
//! - Checksums are never verified by `parse`: mirrored traffic is often
//!   captured before the sender's NIC filled them in, and a broker forwards
//!   such packets as they were. Verify explicitly with `verify_checksum`.

use thiserror::Error;

pub mod arp;
pub mod checksum;
pub mod erspan;
pub mod ethernet;
pub mod geneve;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

/// Why a header could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    #[error("truncated header")]
    Truncated,
    /// A field holds a value the header cannot have (bad version, a length
    /// shorter than the minimum, a value out of range for a `Repr`).
    #[error("malformed header")]
    Malformed,
}

/// Result of header parsing and emitting.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IPv4 protocol, IPv6 next header), from IANA's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    HopByHop,
    Icmp,
    Igmp,
    /// IPv4 in IP.
    IpIp,
    Tcp,
    Udp,
    /// IPv6 in IP.
    Ipv6,
    Ipv6Route,
    Ipv6Frag,
    Gre,
    Esp,
    Ah,
    Icmpv6,
    Ipv6NoNxt,
    Ipv6Opts,
    Sctp,
    /// IPv6 mobility header (RFC 6275).
    Mobility,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(n: u8) -> Self {
        match n {
            0 => Self::HopByHop,
            1 => Self::Icmp,
            2 => Self::Igmp,
            4 => Self::IpIp,
            6 => Self::Tcp,
            17 => Self::Udp,
            41 => Self::Ipv6,
            43 => Self::Ipv6Route,
            44 => Self::Ipv6Frag,
            47 => Self::Gre,
            50 => Self::Esp,
            51 => Self::Ah,
            58 => Self::Icmpv6,
            59 => Self::Ipv6NoNxt,
            60 => Self::Ipv6Opts,
            132 => Self::Sctp,
            135 => Self::Mobility,
            n => Self::Unknown(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Gre => 47,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Sctp => 132,
            IpProtocol::Mobility => 135,
            IpProtocol::Unknown(n) => n,
        }
    }
}

/// Bounds-checked big-endian field access shared by the header views.
///
/// Reads past the end give zero and writes past the end are dropped, which is
/// what lets every accessor be total without `unwrap`.
pub(crate) mod field {
    #[inline(always)]
    pub fn u8_at(b: &[u8], at: usize) -> u8 {
        b.get(at).copied().unwrap_or(0)
    }

    #[inline(always)]
    pub fn u16_at(b: &[u8], at: usize) -> u16 {
        match b.get(at..).and_then(|s| s.get(..2)) {
            Some(&[x, y]) => u16::from_be_bytes([x, y]),
            _ => 0,
        }
    }

    #[inline(always)]
    pub fn u32_at(b: &[u8], at: usize) -> u32 {
        match b.get(at..).and_then(|s| s.get(..4)) {
            Some(&[x, y, z, w]) => u32::from_be_bytes([x, y, z, w]),
            _ => 0,
        }
    }

    /// `N` bytes at `at`, zero-filled where the buffer ends first.
    #[inline(always)]
    pub fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = b.get(at..) {
            let n = src.len().min(N);
            out[..n].copy_from_slice(&src[..n]);
        }
        out
    }

    /// `b[from..to]` clamped to the buffer: empty rather than a panic.
    #[inline(always)]
    pub fn range(b: &[u8], from: usize, to: usize) -> &[u8] {
        let to = to.min(b.len());
        b.get(from..to).unwrap_or(&[])
    }

    /// Mutable twin of [`range`].
    #[inline(always)]
    pub fn range_mut(b: &mut [u8], from: usize, to: usize) -> &mut [u8] {
        let to = to.min(b.len());
        if from > to {
            return &mut [];
        }
        &mut b[from..to]
    }

    #[inline(always)]
    pub fn set_u8(b: &mut [u8], at: usize, v: u8) {
        if let Some(x) = b.get_mut(at) {
            *x = v;
        }
    }

    #[inline(always)]
    pub fn set_u16(b: &mut [u8], at: usize, v: u16) {
        set_bytes(b, at, &v.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_u32(b: &mut [u8], at: usize, v: u32) {
        set_bytes(b, at, &v.to_be_bytes());
    }

    /// Writes `v` at `at` only if all of it fits: a half-written field would
    /// be worse than none.
    #[inline(always)]
    pub fn set_bytes(b: &mut [u8], at: usize, v: &[u8]) {
        if let Some(dst) = b.get_mut(at..).and_then(|s| s.get_mut(..v.len())) {
            dst.copy_from_slice(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field::*;
    use super::*;

    #[test]
    fn ip_protocol_round_trips_every_number() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }

    #[test]
    fn field_access_past_the_end_is_zero_and_writes_are_dropped() {
        let mut b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), 0x0203);
        assert_eq!(u16_at(&b, 2), 0);
        assert_eq!(u32_at(&b, 0), 0);
        assert_eq!(u8_at(&b, 3), 0);
        assert_eq!(u16_at(&b, usize::MAX), 0);
        assert_eq!(bytes_at::<4>(&b, 1), [2, 3, 0, 0]);
        assert_eq!(range(&b, 2, 10), &[3]);
        assert_eq!(range(&b, 5, 10), &[] as &[u8]);
        set_u16(&mut b, 2, 0xffff);
        assert_eq!(b, [1, 2, 3]);
        set_u16(&mut b, 0, 0xabcd);
        assert_eq!(b, [0xab, 0xcd, 3]);
        assert!(range_mut(&mut b, 3, 1).is_empty());
    }
}
