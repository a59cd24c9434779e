//! Geneve header (RFC 8926).
//!
//! ```text
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! ```
//!
//! Each option: `Class(16) | Type(8) | R R R Length(5)` then `Length` 4-byte
//! words of data. Options are kept as raw bytes in the [`Repr`] and walked
//! on demand by [`Options`], so unknown classes survive a round trip.

use super::bytes::{range, range_mut, set_bytes, set_u16, set_u32, u16_at, u32_at, u8_at};
use super::ethernet::EtherType;
use super::{Error, Result};

/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    /// Version (2 bits) and option length (6 bits, in 4-byte words).
    pub const VER_OPT_LEN: usize = 0;
    /// O, C and six reserved bits.
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: usize = 2;
    /// The 24-bit VNI, then a reserved byte.
    pub const VNI: usize = 4;
    pub const RESERVED: usize = 7;
    pub const OPTIONS: usize = 8;
}

/// Where each field of an option starts, from the option's first byte.
pub mod option_field {
    pub const CLASS: usize = 0;
    pub const TYPE: usize = 2;
    /// Three flag bits and the data length (5 bits, in 4-byte words).
    pub const FLAGS_LEN: usize = 3;
    pub const DATA: usize = 4;
}

/// Bytes of the fixed header.
pub const BASE_LEN: usize = field::OPTIONS;
/// Longest header: the 6-bit option length counts 4-byte words.
pub const MAX_LEN: usize = BASE_LEN + 63 * 4;
/// IANA port.
pub const PORT: u16 = 6081;
/// The only version RFC 8926 defines; others must be dropped.
pub const VERSION: u8 = 0;

/// A view of a Geneve header and the payload after it.
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

    /// `Truncated` when the buffer ends before the options do.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_LEN || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_OPT_LEN) >> 6
    }

    /// Option length in 4-byte words.
    pub fn opt_len_words(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_OPT_LEN) & 0x3f
    }

    pub fn header_len(&self) -> usize {
        BASE_LEN + 4 * usize::from(self.opt_len_words())
    }

    /// O: an OAM packet (control, not data).
    pub fn oam(&self) -> bool {
        u8_at(self.buffer.as_ref(), field::FLAGS) & 0x80 != 0
    }

    /// C: critical options present.
    pub fn critical(&self) -> bool {
        u8_at(self.buffer.as_ref(), field::FLAGS) & 0x40 != 0
    }

    /// The six reserved bits after O and C.
    pub fn reserved_flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS) & 0x3f
    }

    pub fn protocol(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), field::PROTOCOL))
    }

    pub fn vni(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VNI) >> 8
    }

    pub fn reserved(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::RESERVED)
    }

    /// The raw option bytes (clamped to the buffer).
    pub fn options(&self) -> &[u8] {
        range(self.buffer.as_ref(), BASE_LEN, self.header_len())
    }

    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Version, option length, O, C and the reserved flags.
    pub fn set_first_word(&mut self, version: u8, opt_words: u8, flags: u8, protocol: EtherType) {
        let b0 = ((version & 3) << 6) | (opt_words & 0x3f);
        set_u16(
            self.buffer.as_mut(),
            field::VER_OPT_LEN,
            u16::from_be_bytes([b0, flags]),
        );
        set_u16(self.buffer.as_mut(), field::PROTOCOL, protocol.into());
    }

    pub fn set_vni_reserved(&mut self, vni: u32, reserved: u8) {
        set_u32(
            self.buffer.as_mut(),
            field::VNI,
            ((vni & 0x00ff_ffff) << 8) | u32::from(reserved),
        );
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        range_mut(self.buffer.as_mut(), at, usize::MAX)
    }
}

/// One Geneve option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveOption<'a> {
    pub class: u16,
    /// The type byte; its high bit marks the option critical.
    pub kind: u8,
    /// The three reserved bits before the length.
    pub flags: u8,
    pub data: &'a [u8],
}

/// Iterator over the options of a header. Yields `Err(Malformed)` once and
/// stops if an option's length runs past the option area.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(options: &'a [u8]) -> Options<'a> {
        Options { rest: options }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        let len = option_field::DATA + 4 * usize::from(u8_at(r, option_field::FLAGS_LEN) & 0x1f);
        if r.len() < len {
            self.rest = &[];
            return Some(Err(Error::Malformed));
        }
        let (this, rest) = r.split_at(len);
        self.rest = rest;
        Some(Ok(GeneveOption {
            class: u16_at(this, option_field::CLASS),
            kind: u8_at(this, option_field::TYPE),
            flags: u8_at(this, option_field::FLAGS_LEN) >> 5,
            data: range(this, option_field::DATA, len),
        }))
    }
}

/// A Geneve header as plain values; options are borrowed raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    pub oam: bool,
    pub critical: bool,
    pub reserved_flags: u8,
    pub protocol: EtherType,
    pub vni: u32,
    pub reserved: u8,
    /// Whole options, a multiple of 4 bytes, at most 252.
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// An Ethernet-carrying header without options.
    pub const fn new(vni: u32) -> Repr<'static> {
        Repr {
            oam: false,
            critical: false,
            reserved_flags: 0,
            protocol: EtherType::Teb,
            vni: vni & 0x00ff_ffff,
            reserved: 0,
            options: &[],
        }
    }

    /// `Malformed` for a version other than 0 (RFC 8926 §3.4: drop it) and
    /// for options whose lengths do not tile the option area.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if p.version() != VERSION {
            return Err(Error::Malformed);
        }
        // Through the `&'a T` itself, so the options borrow the buffer, not `p`.
        let buf: &'a [u8] = <T as AsRef<[u8]>>::as_ref(p.buffer);
        let options = range(buf, BASE_LEN, p.header_len());
        for o in Options::new(options) {
            o?;
        }
        let flags = u8_at(p.buffer.as_ref(), field::FLAGS);
        Ok(Repr {
            oam: flags & 0x80 != 0,
            critical: flags & 0x40 != 0,
            reserved_flags: flags & 0x3f,
            protocol: p.protocol(),
            vni: p.vni(),
            reserved: p.reserved(),
            options,
        })
    }

    pub fn header_len(&self) -> usize {
        BASE_LEN + self.options.len()
    }

    /// Writes the header. Options longer than 252 bytes or not a multiple
    /// of 4 cannot be described by the length field: `emit_to` refuses them.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let flags = (if self.oam { 0x80 } else { 0 })
            | (if self.critical { 0x40 } else { 0 })
            | (self.reserved_flags & 0x3f);
        let words = (self.options.len() / 4).min(63) as u8;
        p.set_first_word(VERSION, words, flags, self.protocol);
        p.set_vni_reserved(self.vni, self.reserved);
        let n = usize::from(words) * 4;
        set_bytes(p.buffer.as_mut(), BASE_LEN, range(self.options, 0, n));
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        if self.options.len() & 3 != 0 || self.options.len() > MAX_LEN - BASE_LEN {
            return Err(Error::Malformed);
        }
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

    #[test]
    fn reads_header_with_one_option() {
        // geneve.pcap frame 1: 8 bytes of options (class 0x0103, type 0x80, one word).
        let b = [
            0x02, 0x40, 0x65, 0x58, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x03, 0x80, 0x01, 0x00, 0x00,
            0x00, 0x0c, 0xab,
        ];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert!(p.critical() && !p.oam());
        assert_eq!(p.protocol(), EtherType::Teb);
        assert_eq!(p.vni(), 10);
        let o: Vec<_> = Options::new(p.options()).collect();
        assert_eq!(o.len(), 1);
        let o = o[0].unwrap();
        assert_eq!(
            (o.class, o.kind, o.data),
            (0x0103, 0x80, &[0, 0, 0, 0x0c][..])
        );
        assert_eq!(p.payload(), &[0xab]);
        let r = Repr::parse(&p).unwrap();
        let mut out = [0u8; 16];
        assert_eq!(r.emit_to(&mut out), Ok(16));
        assert_eq!(&out[..], &b[..16]);
    }

    #[test]
    fn bad_version_short_and_ragged_options() {
        let mut b = [0u8; 12];
        b[0] = 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
        b[0] = 0x01;
        assert_eq!(Packet::new_checked(&b[..11]), Err(Error::Truncated));
        // One option word announcing two words of data.
        b[11] = 0x02;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
        assert_eq!(Repr::new(1).emit_to(&mut [0u8; 7]), Err(Error::Truncated));
        let odd = Repr {
            options: &[1, 2, 3],
            ..Repr::new(1)
        };
        assert_eq!(odd.emit_to(&mut [0u8; 16]), Err(Error::Malformed));
    }

    fn options() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                any::<u16>(),
                any::<u8>(),
                0u8..8,
                proptest::collection::vec(any::<u8>(), 0..3),
            ),
            0..4,
        )
        .prop_map(|opts| {
            let mut out = Vec::new();
            for (class, kind, flags, words) in opts {
                out.extend(class.to_be_bytes());
                out.push(kind);
                out.push((flags << 5) | words.len() as u8);
                for w in words {
                    out.extend([w; 4]);
                }
            }
            out
        })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            oam in any::<bool>(), critical in any::<bool>(), rf in 0u8..64,
            proto in any::<u16>(), vni in 0u32..(1 << 24), reserved in any::<u8>(),
            opts in options(), tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let r = Repr {
                oam, critical, reserved_flags: rf, protocol: EtherType::from(proto),
                vni, reserved, options: &opts,
            };
            let len = r.header_len();
            let mut buf = vec![0u8; len + tail.len()];
            buf[len..].copy_from_slice(&tail);
            prop_assert_eq!(r.emit_to(&mut buf), Ok(len));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload(), &tail[..]);
        }

        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let p = Packet::new_unchecked(&b[..]);
            let _ = (p.header_len(), p.vni(), p.options(), p.payload());
            for o in Options::new(p.options()) {
                let _ = o;
            }
            if let Ok(r) = Repr::parse(&p) {
                let mut out = vec![0u8; r.header_len()];
                prop_assert!(r.emit_to(&mut out).is_ok());
                prop_assert_eq!(&out[..], &b[..r.header_len()]);
            }
        }
    }
}
