//! VXLAN header (RFC 7348), and Sluice's opt-in extended use of its
//! reserved bits (DESIGN §5).
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved (24) / extended: sequence     |
//! |        VXLAN Network Identifier (VNI)         | Reserved / ext: D |
//! ```
//!
//! Standard mode: flags `0x08` (I), every reserved bit zero — Linux drops
//! VXLAN whose reserved bits are set unless configured otherwise. Extended
//! mode (only toward receivers that opted in): a 24-bit per-destination
//! sequence number in bytes 1–3 and the direction in bit 0 of byte 7. The
//! view reads all of them as raw fields; what they mean is decided in
//! `stage::tag`.

use super::bytes::{range, range_mut, set_u32, set_u8, u32_at, u8_at};
use super::{Error, Result};

/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    /// Flags, then 24 reserved bits (the sequence number in extended mode).
    pub const FLAGS: usize = 0;
    /// The 24-bit VNI, then the last reserved byte.
    pub const VNI: usize = 4;
    /// The last reserved byte (the direction bit in extended mode).
    pub const RESERVED2: usize = 7;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;
/// IANA port.
pub const PORT: u16 = 4789;
/// Port of pre-standard Linux VXLAN (still the kernel's default for `ip link add type vxlan` without `dstport`).
pub const LINUX_PORT: u16 = 8472;
/// The I flag: the VNI is valid. The only flag RFC 7348 defines.
pub const FLAG_I: u8 = 0x08;
/// Extended mode: bit of byte 7 set for egress, clear for ingress.
pub const EXT_EGRESS: u8 = 0x01;

/// A view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS)
    }

    /// I flag set: the VNI field is valid (RFC 7348 requires it).
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// Bytes 1–3 (reserved; the sequence number in extended mode).
    pub fn reserved1(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::FLAGS) & 0x00ff_ffff
    }

    pub fn vni(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// Byte 7 (reserved; the direction bit in extended mode).
    pub fn reserved2(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::RESERVED2)
    }

    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), HEADER_LEN, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Flags byte and bytes 1–3 together.
    pub fn set_flags_reserved1(&mut self, flags: u8, reserved1: u32) {
        set_u32(
            self.buffer.as_mut(),
            field::FLAGS,
            (u32::from(flags) << 24) | (reserved1 & 0x00ff_ffff),
        );
    }

    /// VNI and byte 7 together.
    pub fn set_vni_reserved2(&mut self, vni: u32, reserved2: u8) {
        set_u32(
            self.buffer.as_mut(),
            field::VNI,
            (vni << 8) | u32::from(reserved2),
        );
    }

    pub fn set_reserved2(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::RESERVED2, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        range_mut(self.buffer.as_mut(), HEADER_LEN, usize::MAX)
    }
}

/// A VXLAN header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub flags: u8,
    /// 24 bits.
    pub reserved1: u32,
    /// 24 bits.
    pub vni: u32,
    pub reserved2: u8,
}

impl Repr {
    /// A standard RFC 7348 header: I flag, reserved bits zero.
    pub const fn new(vni: u32) -> Repr {
        Repr {
            flags: FLAG_I,
            reserved1: 0,
            vni: vni & 0x00ff_ffff,
            reserved2: 0,
        }
    }

    /// Does not insist on the I flag: what to do without it is the caller's
    /// policy (decap refuses it, a capture viewer would not).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            flags: p.flags(),
            reserved1: p.reserved1(),
            vni: p.vni(),
            reserved2: p.reserved2(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flags_reserved1(self.flags, self.reserved1);
        p.set_vni_reserved2(self.vni & 0x00ff_ffff, self.reserved2);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        self.emit(&mut Packet::new_unchecked(buf));
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_standard_header() {
        // vxlan.pcap: VNI 123.
        let b = [0x08, 0, 0, 0, 0x00, 0x00, 0x7b, 0x00, 0xee];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.has_vni());
        assert_eq!(p.vni(), 123);
        assert_eq!(p.reserved1(), 0);
        assert_eq!(p.payload(), &[0xee]);
        assert_eq!(Repr::parse(&p), Ok(Repr::new(123)));
    }

    #[test]
    fn extended_fields_land_in_the_reserved_bytes() {
        let r = Repr {
            flags: 0x0c,
            reserved1: 0xabcdef,
            vni: 0x123456,
            reserved2: EXT_EGRESS,
        };
        let mut b = [0u8; 8];
        r.emit_to(&mut b).unwrap();
        assert_eq!(b, [0x0c, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x01]);
    }

    #[test]
    fn short_is_truncated() {
        for n in 0..HEADER_LEN {
            let b = vec![0x08u8; n];
            assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
            let p = Packet::new_unchecked(&b[..]);
            let _ = (p.vni(), p.reserved1(), p.reserved2(), p.payload());
        }
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            flags in any::<u8>(), r1 in 0u32..(1 << 24), vni in 0u32..(1 << 24), r2 in any::<u8>(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let r = Repr { flags, reserved1: r1, vni, reserved2: r2 };
            let mut buf = vec![0u8; HEADER_LEN + tail.len()];
            buf[HEADER_LEN..].copy_from_slice(&tail);
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload(), &tail[..]);
        }
    }
}
