//! MPLS label stack entries (RFC 3032).
//!
//! Each entry is Label(20) TC(3) S(1) TTL(8); S marks the bottom of the
//! stack. Nothing on the wire says what follows the stack: readers guess by
//! the first nibble (4 or 6), as Linux and Wireshark do.

use super::bytes::{range, set_u32, u32_at};
use super::{Error, Result};

/// Bytes in one label stack entry.
/// Where each field starts (smoltcp's `mod field`).
pub mod field {
    /// Label (20 bits), TC (3), bottom of stack (1) and TTL (8): one word.
    pub const ENTRY: usize = 0;
}

pub const HEADER_LEN: usize = 4;

/// IPv4 explicit null (RFC 3032).
pub const LABEL_IPV4_EXPLICIT_NULL: u32 = 0;
/// Router alert.
pub const LABEL_ROUTER_ALERT: u32 = 1;
/// IPv6 explicit null.
pub const LABEL_IPV6_EXPLICIT_NULL: u32 = 2;
/// Entropy label indicator (RFC 6790).
pub const LABEL_ELI: u32 = 7;
/// Largest label.
pub const MAX_LABEL: u32 = 0x000f_ffff;

/// A view of one label stack entry.
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

    fn word(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::ENTRY)
    }

    pub fn label(&self) -> u32 {
        self.word() >> 12
    }

    /// Traffic class (formerly EXP), 0..=7.
    pub fn tc(&self) -> u8 {
        ((self.word() >> 9) & 7) as u8
    }

    /// Bottom of stack.
    pub fn bottom(&self) -> bool {
        self.word() & 0x100 != 0
    }

    pub fn ttl(&self) -> u8 {
        (self.word() & 0xff) as u8
    }

    /// What follows this entry: the next entry, or the payload at bottom.
    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), HEADER_LEN, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word(&mut self, mask: u32, bits: u32) {
        let w = (self.word() & !mask) | (bits & mask);
        set_u32(self.buffer.as_mut(), field::ENTRY, w);
    }

    /// Sets the label (its low 20 bits).
    pub fn set_label(&mut self, label: u32) {
        self.set_word(0xffff_f000, label << 12);
    }

    pub fn set_tc(&mut self, tc: u8) {
        self.set_word(0xe00, u32::from(tc) << 9);
    }

    pub fn set_bottom(&mut self, s: bool) {
        self.set_word(0x100, if s { 0x100 } else { 0 });
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.set_word(0xff, u32::from(ttl));
    }
}

/// One label stack entry as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// 20 bits.
    pub label: u32,
    /// 3 bits.
    pub tc: u8,
    pub bottom: bool,
    pub ttl: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            label: p.label(),
            tc: p.tc(),
            bottom: p.bottom(),
            ttl: p.ttl(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_label(self.label);
        p.set_tc(self.tc);
        p.set_bottom(self.bottom);
        p.set_ttl(self.ttl);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let Some(h) = buf.get_mut(..HEADER_LEN) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut Packet::new_unchecked(h));
        Ok(HEADER_LEN)
    }
}

/// Counts the entries of the stack at the front of `buf`, up to and
/// including the bottom one; at most `max`. `Err(Truncated)` when the buffer
/// ends first, `Err(Malformed)` when `max` entries pass without a bottom.
pub fn stack_len(buf: &[u8], max: usize) -> Result<usize> {
    for i in 0..max {
        let Some(entry) = buf.get(i * HEADER_LEN..).and_then(|s| s.get(..HEADER_LEN)) else {
            return Err(Error::Truncated);
        };
        if Packet::new_unchecked(entry).bottom() {
            return Ok(i + 1);
        }
    }
    Err(Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_an_entry() {
        // Label 16, TC 5, bottom, TTL 64.
        let b = [0x00, 0x01, 0x0b, 0x40];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.label(), p.tc(), p.bottom(), p.ttl()), (16, 5, true, 64));
    }

    #[test]
    fn setters_keep_the_other_fields() {
        let mut b = [0xffu8; 4];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_label(0);
        assert_eq!(b, [0x00, 0x00, 0x0f, 0xff]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_bottom(false);
        p.set_ttl(1);
        assert_eq!(b, [0x00, 0x00, 0x0e, 0x01]);
    }

    #[test]
    fn stack_lengths() {
        let two = [0, 0, 0x10, 64, 0, 0, 0x21, 64, 0x45];
        assert_eq!(stack_len(&two, 8), Ok(2));
        assert_eq!(stack_len(&two[..7], 8), Err(Error::Truncated));
        assert_eq!(stack_len(&two, 1), Err(Error::Malformed));
        assert_eq!(stack_len(&[], 8), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&two[..3]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(label in 0u32..=MAX_LABEL, tc in 0u8..8, bottom: bool, ttl: u8) {
            let r = Repr { label, tc, bottom, ttl };
            let mut buf = [0u8; HEADER_LEN];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }
    }
}
