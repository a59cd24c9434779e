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
pub mod sflow;
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

/// IP protocol numbers (IPv4 protocol, IPv6 next header), from IANA's list,
/// as plain numbers: what the per-packet code matches on, and what
/// [`IpProtocol`] converts through. The one place these numbers are written.
pub mod ip_proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NO_NXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const MOBILITY: u8 = 135;
    /// Host Identity Protocol (an IPv6 extension header, RFC 7401).
    pub const HIP: u8 = 139;
    /// Shim6 (an IPv6 extension header, RFC 5533).
    pub const SHIM6: u8 = 140;
}

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
            ip_proto::HOP_BY_HOP => Self::HopByHop,
            ip_proto::ICMP => Self::Icmp,
            ip_proto::IGMP => Self::Igmp,
            ip_proto::IPIP => Self::IpIp,
            ip_proto::TCP => Self::Tcp,
            ip_proto::UDP => Self::Udp,
            ip_proto::IPV6 => Self::Ipv6,
            ip_proto::IPV6_ROUTE => Self::Ipv6Route,
            ip_proto::IPV6_FRAG => Self::Ipv6Frag,
            ip_proto::GRE => Self::Gre,
            ip_proto::ESP => Self::Esp,
            ip_proto::AH => Self::Ah,
            ip_proto::ICMPV6 => Self::Icmpv6,
            ip_proto::IPV6_NO_NXT => Self::Ipv6NoNxt,
            ip_proto::IPV6_OPTS => Self::Ipv6Opts,
            ip_proto::SCTP => Self::Sctp,
            ip_proto::MOBILITY => Self::Mobility,
            n => Self::Unknown(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => ip_proto::HOP_BY_HOP,
            IpProtocol::Icmp => ip_proto::ICMP,
            IpProtocol::Igmp => ip_proto::IGMP,
            IpProtocol::IpIp => ip_proto::IPIP,
            IpProtocol::Tcp => ip_proto::TCP,
            IpProtocol::Udp => ip_proto::UDP,
            IpProtocol::Ipv6 => ip_proto::IPV6,
            IpProtocol::Ipv6Route => ip_proto::IPV6_ROUTE,
            IpProtocol::Ipv6Frag => ip_proto::IPV6_FRAG,
            IpProtocol::Gre => ip_proto::GRE,
            IpProtocol::Esp => ip_proto::ESP,
            IpProtocol::Ah => ip_proto::AH,
            IpProtocol::Icmpv6 => ip_proto::ICMPV6,
            IpProtocol::Ipv6NoNxt => ip_proto::IPV6_NO_NXT,
            IpProtocol::Ipv6Opts => ip_proto::IPV6_OPTS,
            IpProtocol::Sctp => ip_proto::SCTP,
            IpProtocol::Mobility => ip_proto::MOBILITY,
            IpProtocol::Unknown(n) => n,
        }
    }
}

/// Bounds-checked big-endian reads and writes shared by the header views and
/// the stages. (Where each field *is* lives in each header's `field` module.)
///
/// Reads past the end give zero and writes past the end are dropped, which is
/// what lets every accessor be total without `unwrap`. The `try_` and
/// `array_at` forms say `None` instead, for callers to whom a missing byte
/// is an error.
pub(crate) mod bytes {
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

    /// The `N` bytes at `at`, or `None` when the buffer ends first.
    #[inline(always)]
    pub fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
        b.get(at..).and_then(|s| s.first_chunk::<N>())
    }

    /// The big-endian `u16` at `at`, or `None` when the buffer ends first.
    #[inline(always)]
    pub fn try_u16_at(b: &[u8], at: usize) -> Option<u16> {
        array_at::<2>(b, at).map(|x| u16::from_be_bytes(*x))
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
    use super::bytes::*;
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
        assert_eq!(try_u16_at(&b, 1), Some(0x0203));
        assert_eq!(try_u16_at(&b, 2), None);
        assert_eq!(array_at::<3>(&b, 0), Some(&[1, 2, 3]));
        assert_eq!(array_at::<3>(&b, 1), None);
        assert_eq!(range(&b, 2, 10), &[3]);
        assert_eq!(range(&b, 5, 10), &[] as &[u8]);
        set_u16(&mut b, 2, 0xffff);
        assert_eq!(b, [1, 2, 3]);
        set_u16(&mut b, 0, 0xabcd);
        assert_eq!(b, [0xab, 0xcd, 3]);
        assert!(range_mut(&mut b, 3, 1).is_empty());
    }
}
