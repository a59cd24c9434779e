//! GRE header (RFC 2784 with the key and sequence extensions of RFC 2890).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (optional)                    |
//! ```
//!
//! The optional words appear in that order when their bit is set. The
//! routing bit R (RFC 1701 source routes) is refused like Linux does: its
//! variable-length SRE list cannot be skipped safely and nothing we receive
//! uses it. Version 1 (PPTP's enhanced GRE) is readable here so a capture can
//! be classified, but only version 0 carries Ethernet.

use super::bytes::{range, range_mut, set_u16, set_u32, u16_at, u32_at, u8_at};
use super::ethernet::EtherType;
use super::{Error, Result};

/// Where each field starts (smoltcp's `mod field`). The optional words
/// (checksum and reserved1, key, sequence, ack) follow `OPTIONAL` in that
/// order, each present or not by its flag.
pub mod field {
    /// Flags and version.
    pub const FLAGS_VER: usize = 0;
    pub const PROTOCOL: usize = 2;
    pub const OPTIONAL: usize = 4;
    /// Reserved1, from the start of the checksum word.
    pub const RESERVED1_IN_WORD: usize = 2;
}

/// Bytes of one optional word.
const WORD: usize = 4;

/// Bytes of the fixed part: flags, version and protocol.
pub const BASE_LEN: usize = field::OPTIONAL;
/// Longest header this module emits or accepts: base + checksum + key + sequence
/// (version 1 swaps the checksum word for an acknowledgment number).
pub const MAX_LEN: usize = 16;

/// Flag bits of the first 16-bit word.
pub mod flags {
    pub const CHECKSUM: u16 = 0x8000;
    pub const ROUTING: u16 = 0x4000;
    pub const KEY: u16 = 0x2000;
    pub const SEQUENCE: u16 = 0x1000;
    /// Strict source route, recursion control, the reserved flags: bits this
    /// module neither interprets nor clears, so a parse/emit round trip keeps them.
    pub const OTHER: u16 = 0x0ff8 & !ACK;
    /// Acknowledgment present (version 1 only; an unknown bit otherwise).
    pub const ACK: u16 = 0x0080;

    /// The bits [`super::Repr::other_flags`] keeps for `version`: the A bit
    /// is a field in version 1 and an uninterpreted bit in any other.
    pub const fn kept(version: u8) -> u16 {
        if version == 1 {
            OTHER
        } else {
            OTHER | ACK
        }
    }
    pub const VERSION: u16 = 0x0007;
}

/// A view of a GRE header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds every optional field the
    /// flags announce and that the header is one this module can size.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when the buffer ends inside the header, `Malformed` when the
    /// routing bit is set (its length is unknowable without walking SREs).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(Error::Truncated);
        }
        if self.flags_word() & flags::ROUTING != 0 {
            return Err(Error::Malformed);
        }
        if b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw first 16 bits: flags and version.
    pub fn flags_word(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::FLAGS_VER)
    }

    pub fn has_checksum(&self) -> bool {
        self.flags_word() & flags::CHECKSUM != 0
    }

    pub fn has_routing(&self) -> bool {
        self.flags_word() & flags::ROUTING != 0
    }

    pub fn has_key(&self) -> bool {
        self.flags_word() & flags::KEY != 0
    }

    pub fn has_sequence(&self) -> bool {
        self.flags_word() & flags::SEQUENCE != 0
    }

    /// Acknowledgment number present: only meaningful in version 1.
    pub fn has_ack(&self) -> bool {
        self.version() == 1 && self.flags_word() & flags::ACK != 0
    }

    pub fn version(&self) -> u8 {
        (self.flags_word() & flags::VERSION) as u8
    }

    pub fn protocol(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), field::PROTOCOL))
    }

    /// Length of the fixed fields the flags announce (routing SREs excluded).
    pub fn header_len(&self) -> usize {
        let f = self.flags_word();
        let mut len = BASE_LEN;
        // RFC 1701: the checksum/offset word is present if either C or R is set.
        if f & (flags::CHECKSUM | flags::ROUTING) != 0 {
            len += WORD;
        }
        if f & flags::KEY != 0 {
            len += WORD;
        }
        if f & flags::SEQUENCE != 0 {
            len += WORD;
        }
        if self.has_ack() {
            len += WORD;
        }
        len
    }

    fn checksum_at(&self) -> Option<usize> {
        self.has_checksum().then_some(BASE_LEN)
    }

    fn key_at(&self) -> Option<usize> {
        let at = BASE_LEN + if self.has_checksum() { WORD } else { 0 };
        self.has_key().then_some(at)
    }

    fn sequence_at(&self) -> Option<usize> {
        let at = BASE_LEN
            + if self.has_checksum() { WORD } else { 0 }
            + if self.has_key() { WORD } else { 0 };
        self.has_sequence().then_some(at)
    }

    fn ack_at(&self) -> Option<usize> {
        let at = self.header_len() - WORD;
        self.has_ack().then_some(at)
    }

    /// The checksum field, when C is set.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_at()
            .map(|at| u16_at(self.buffer.as_ref(), at))
    }

    /// Reserved1, the 16 bits after the checksum, when C is set.
    pub fn reserved1(&self) -> Option<u16> {
        self.checksum_at()
            .map(|at| u16_at(self.buffer.as_ref(), at + field::RESERVED1_IN_WORD))
    }

    pub fn key(&self) -> Option<u32> {
        self.key_at().map(|at| u32_at(self.buffer.as_ref(), at))
    }

    pub fn sequence(&self) -> Option<u32> {
        self.sequence_at()
            .map(|at| u32_at(self.buffer.as_ref(), at))
    }

    pub fn ack(&self) -> Option<u32> {
        self.ack_at().map(|at| u32_at(self.buffer.as_ref(), at))
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }

    /// First byte of the header: what a caller checks before trusting `version`.
    pub fn first_byte(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS_VER)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_flags_word(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FLAGS_VER, v);
    }

    pub fn set_protocol(&mut self, p: EtherType) {
        set_u16(self.buffer.as_mut(), field::PROTOCOL, p.into());
    }

    /// Writes the checksum field; does nothing when C is clear.
    pub fn set_checksum(&mut self, v: u16) {
        if let Some(at) = self.checksum_at() {
            set_u16(self.buffer.as_mut(), at, v);
        }
    }

    pub fn set_reserved1(&mut self, v: u16) {
        if let Some(at) = self.checksum_at() {
            set_u16(self.buffer.as_mut(), at + field::RESERVED1_IN_WORD, v);
        }
    }

    /// Writes the key; does nothing when K is clear.
    pub fn set_key(&mut self, v: u32) {
        if let Some(at) = self.key_at() {
            set_u32(self.buffer.as_mut(), at, v);
        }
    }

    /// Writes the sequence number; does nothing when S is clear.
    pub fn set_sequence(&mut self, v: u32) {
        if let Some(at) = self.sequence_at() {
            set_u32(self.buffer.as_mut(), at, v);
        }
    }

    pub fn set_ack(&mut self, v: u32) {
        if let Some(at) = self.ack_at() {
            set_u32(self.buffer.as_mut(), at, v);
        }
    }

    /// Computes the RFC 2784 checksum over header and payload (with the
    /// field zeroed first) and stores it; does nothing when C is clear.
    pub fn fill_checksum(&mut self) {
        if self.checksum_at().is_none() {
            return;
        }
        self.set_checksum(0);
        let c = super::checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        range_mut(self.buffer.as_mut(), at, usize::MAX)
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Whether the checksum (when present) matches header and payload.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || super::checksum::verify(self.buffer.as_ref(), 0)
    }
}

/// A GRE header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub protocol: EtherType,
    /// Checksum field as read (parse) or to write (emit); `Some` sets C.
    /// Emit writes the value given: [`Packet::fill_checksum`] computes it.
    pub checksum: Option<u16>,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    /// Version 1 acknowledgment number; `Some` sets A.
    pub ack: Option<u32>,
    pub version: u8,
    /// Bits of the flags word this module does not interpret
    /// ([`flags::kept`]), kept so nothing is lost in a round trip.
    pub other_flags: u16,
    /// Reserved1 after the checksum (zero on emit unless kept from a parse).
    pub reserved1: u16,
}

impl Repr {
    /// A version-0 header with only the protocol set.
    pub const fn new(protocol: EtherType) -> Repr {
        Repr {
            protocol,
            checksum: None,
            key: None,
            sequence: None,
            ack: None,
            version: 0,
            other_flags: 0,
            reserved1: 0,
        }
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            protocol: p.protocol(),
            checksum: p.checksum(),
            key: p.key(),
            sequence: p.sequence(),
            ack: p.ack(),
            version: p.version(),
            other_flags: p.flags_word() & flags::kept(p.version()),
            reserved1: p.reserved1().unwrap_or(0),
        })
    }

    /// The flags word `emit` writes.
    pub fn flags_word(&self) -> u16 {
        let mut f = (self.other_flags & flags::kept(self.version)) | u16::from(self.version & 0x7);
        if self.checksum.is_some() {
            f |= flags::CHECKSUM;
        }
        if self.key.is_some() {
            f |= flags::KEY;
        }
        if self.sequence.is_some() {
            f |= flags::SEQUENCE;
        }
        if self.ack.is_some() && self.version == 1 {
            f |= flags::ACK;
        }
        f
    }

    pub fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * usize::from(self.checksum.is_some())
            + 4 * usize::from(self.key.is_some())
            + 4 * usize::from(self.sequence.is_some())
            + 4 * usize::from(self.ack.is_some() && self.version == 1)
    }

    /// Writes the header; fields past a short buffer's end are dropped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        // The flags go first: every optional field's offset depends on them.
        p.set_flags_word(self.flags_word());
        p.set_protocol(self.protocol);
        if let Some(c) = self.checksum {
            p.set_checksum(c);
            p.set_reserved1(self.reserved1);
        }
        if let Some(k) = self.key {
            p.set_key(k);
        }
        if let Some(s) = self.sequence {
            p.set_sequence(s);
        }
        if let Some(a) = self.ack {
            p.set_ack(a);
        }
    }

    /// Writes the header at the front of `buf` and returns its length.
    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        self.emit(&mut Packet::new_unchecked(buf));
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ERSPAN II capture (erspan-type-ii-1.pcap): S=1, proto 0x88be, seq 171.
    const ERSPAN_GRE: [u8; 8] = [0x10, 0x00, 0x88, 0xbe, 0x00, 0x00, 0x00, 0xab];

    #[test]
    fn reads_sequence_only_header() {
        let p = Packet::new_checked(&ERSPAN_GRE[..]).unwrap();
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.protocol(), EtherType::ErspanII);
        assert_eq!(p.sequence(), Some(171));
        assert_eq!(p.key(), None);
        assert_eq!(p.checksum(), None);
        assert_eq!(p.version(), 0);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn optional_fields_follow_in_order() {
        let r = Repr {
            checksum: Some(0),
            key: Some(0x0102_0304),
            sequence: Some(0x0a0b_0c0d),
            ..Repr::new(EtherType::Teb)
        };
        let mut buf = [0u8; 20];
        assert_eq!(r.emit_to(&mut buf), Ok(16));
        assert_eq!(&buf[..4], &[0xb0, 0x00, 0x65, 0x58]);
        assert_eq!(&buf[8..16], &[1, 2, 3, 4, 0xa, 0xb, 0xc, 0xd]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.payload_mut()[0] = 0x55;
        assert!(!p.verify_checksum());
        assert_ne!(c, Some(0));
    }

    #[test]
    fn routing_is_refused_and_short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&[0x40u8, 0, 0x08, 0, 0, 0, 0, 0][..]),
            Err(Error::Malformed)
        );
        for n in 0..ERSPAN_GRE.len() {
            assert_eq!(Packet::new_checked(&ERSPAN_GRE[..n]), Err(Error::Truncated));
            let p = Packet::new_unchecked(&ERSPAN_GRE[..n]);
            let _ = (p.sequence(), p.key(), p.payload(), p.protocol());
        }
    }

    #[test]
    fn version_1_has_ack_after_sequence() {
        // PPTP enhanced GRE: K, S, A, version 1.
        let b = [
            0x30, 0x81, 0x88, 0x0b, 0, 4, 0, 7, 0, 0, 0, 9, 0, 0, 0, 8, 0xff,
        ];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.key(), Some(0x0004_0007));
        assert_eq!(p.sequence(), Some(9));
        assert_eq!(p.ack(), Some(8));
        assert_eq!(p.payload(), &[0xff]);
        let r = Repr::parse(&p).unwrap();
        let mut out = [0u8; 16];
        r.emit_to(&mut out).unwrap();
        assert_eq!(&out[..], &b[..16]);
    }

    fn repr() -> impl Strategy<Value = Repr> {
        (
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            0u8..8,
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(proto, c, k, s, a, v, other, r1)| Repr {
                protocol: EtherType::from(proto),
                checksum: c,
                key: k,
                sequence: s,
                ack: if v == 1 { a } else { None },
                version: v,
                other_flags: other & flags::kept(v),
                reserved1: if c.is_some() { r1 } else { 0 },
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let len = r.header_len();
            let mut buf = vec![0u8; len + tail.len()];
            buf[len..].copy_from_slice(&tail);
            prop_assert_eq!(r.emit_to(&mut buf), Ok(len));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.header_len(), len);
            prop_assert_eq!(Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload(), &tail[..]);
        }

        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..24)) {
            let p = Packet::new_unchecked(&b[..]);
            let _ = (p.header_len(), p.key(), p.sequence(), p.ack(), p.checksum(), p.payload());
            if let Ok(r) = Repr::parse(&p) {
                let mut out = vec![0u8; r.header_len()];
                prop_assert!(r.emit_to(&mut out).is_ok());
                prop_assert_eq!(&out[..], &b[..r.header_len()]);
            }
        }
    }
}
