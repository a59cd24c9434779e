//! ERSPAN headers (draft-foschiano-erspan-03), carried in GRE.
//!
//! - Type I: GRE protocol 0x88BE *without* the S bit; no ERSPAN header, the
//!   mirrored frame follows GRE directly. Nothing to parse here.
//! - Type II (`Ver=1`), GRE 0x88BE with S=1, 8 bytes:
//!   ```text
//!   |  Ver  |          VLAN         | COS | En|T|    Session ID     |
//!   |      Reserved         |                  Index                |
//!   ```
//! - Type III (`Ver=2`), GRE 0x22EB, 12 bytes, then 8 more when O=1:
//!   ```text
//!   |  Ver  |          VLAN         | COS |BSO|T|    Session ID     |
//!   |                          Timestamp                            |
//!   |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|
//!   |  Platf ID |            Platform Specific Info                 |
//!   |                  Platform Specific Info                       |
//!   ```
//!
//! Bit positions agree with Linux `include/net/erspan.h` and Wireshark's
//! dissector. The platform sub-header's layout depends on its ID; ID 3
//! (`Platf ID | Reserved(12) | Port ID/Index(14)`, then the upper 32 bits of
//! the timestamp) is the one we emit, the others are kept as raw bits.

use super::bytes::{range, range_mut, set_u16, set_u32, u16_at, u32_at};
use super::{Error, Result};

/// Where each field starts (smoltcp's `mod field`); [`w2`] and [`w10`]
/// are the bits of the words at `COS_SESSION` and `FLAGS`.
pub mod field {
    /// Version (4 bits) and the source VLAN (12 bits).
    pub const VER_VLAN: usize = 0;
    /// CoS, En/BSO, T and the session ID: see [`super::w2`].
    pub const COS_SESSION: usize = 2;
    /// Type II: reserved (12 bits) and port index (20 bits).
    pub const INDEX: usize = 4;
    /// Type III: lower 32 timestamp bits.
    pub const TIMESTAMP: usize = 4;
    /// Type III: security group tag.
    pub const SGT: usize = 8;
    /// Type III: P, FT, Hw ID, D, Gra, O: see [`super::w10`].
    pub const FLAGS: usize = 10;
    /// Type III: the platform sub-header's two words, when O is set.
    pub const PLATFORM: usize = 12;
    pub const PLATFORM_WORD2: usize = 16;
}

/// Bytes of a type II header.
pub const TYPE_II_LEN: usize = 8;
/// Bytes of a type III header without the platform sub-header.
pub const TYPE_III_LEN: usize = 12;
/// Bytes of the optional type III platform sub-header.
pub const PLATFORM_LEN: usize = 8;

/// `Ver` of a type II header.
pub const VERSION_II: u8 = 1;
/// `Ver` of a type III header.
pub const VERSION_III: u8 = 2;

/// Type III frame type of an Ethernet payload (the only one decap unwraps).
pub const FRAME_TYPE_ETHERNET: u8 = 0;
/// Type III frame type of an IP payload.
pub const FRAME_TYPE_IP: u8 = 2;

/// Type III platform sub-header ID whose second word is the upper 32
/// timestamp bits.
pub const PLATFORM_ID_UPPER_TIMESTAMP: u8 = 3;

/// Type III timestamp granularity (`Gra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// 100 µs ticks in 32 bits (wraps after about 5 days).
    Us100,
    /// 100 ns ticks.
    Ns100,
    /// IEEE 1588: nanoseconds within the second in the header, seconds in
    /// the upper 32 bits (platform sub-header ID 3).
    Ieee1588,
    /// Implementation specific.
    Custom,
}

impl From<u8> for Granularity {
    fn from(v: u8) -> Self {
        match v & 3 {
            0 => Self::Us100,
            1 => Self::Ns100,
            2 => Self::Ieee1588,
            _ => Self::Custom,
        }
    }
}

impl From<Granularity> for u8 {
    fn from(g: Granularity) -> u8 {
        match g {
            Granularity::Us100 => 0,
            Granularity::Ns100 => 1,
            Granularity::Ieee1588 => 2,
            Granularity::Custom => 3,
        }
    }
}

/// Masks of the 16-bit word at offset 2 (shared by types II and III);
/// public so encap can compose whole words without reading them back.
pub mod w2 {
    pub const COS: u16 = 0xe000;
    pub const EN: u16 = 0x1800;
    pub const T: u16 = 0x0400;
    pub const SESSION: u16 = 0x03ff;
}

/// Masks of the type III 16-bit word at offset 10.
pub mod w10 {
    pub const P: u16 = 0x8000;
    pub const FT: u16 = 0x7c00;
    pub const HW: u16 = 0x03f0;
    pub const D: u16 = 0x0008;
    pub const GRA: u16 = 0x0006;
    pub const O: u16 = 0x0001;
}

/// A view of an ERSPAN type II or III header and the frame after it.
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

    /// `Malformed` for a version other than II/III (its length is unknown),
    /// `Truncated` when the buffer ends inside the header or sub-header.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < 2 {
            return Err(Error::Truncated);
        }
        match self.header_len() {
            0 => Err(Error::Malformed),
            n if len < n => Err(Error::Truncated),
            _ => Ok(()),
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn w(&self, at: usize) -> u16 {
        u16_at(self.buffer.as_ref(), at)
    }

    pub fn version(&self) -> u8 {
        (self.w(field::VER_VLAN) >> 12) as u8
    }

    /// Header length for this version (with the type III sub-header when O
    /// is set), 0 for an unknown version.
    pub fn header_len(&self) -> usize {
        match self.version() {
            VERSION_II => TYPE_II_LEN,
            VERSION_III if self.has_platform() => TYPE_III_LEN + PLATFORM_LEN,
            VERSION_III => TYPE_III_LEN,
            _ => 0,
        }
    }

    /// VLAN of the mirrored frame's source.
    pub fn vlan(&self) -> u16 {
        self.w(field::VER_VLAN) & 0x0fff
    }

    pub fn cos(&self) -> u8 {
        ((self.w(field::COS_SESSION) & w2::COS) >> 13) as u8
    }

    /// Type II `En` (original encapsulation) / type III `BSO` (bad/short/oversized).
    pub fn en_bso(&self) -> u8 {
        ((self.w(field::COS_SESSION) & w2::EN) >> 11) as u8
    }

    /// T: the mirrored frame was truncated.
    pub fn truncated(&self) -> bool {
        self.w(field::COS_SESSION) & w2::T != 0
    }

    pub fn session_id(&self) -> u16 {
        self.w(field::COS_SESSION) & w2::SESSION
    }

    /// Type II: the 12 reserved bits before the index.
    pub fn reserved(&self) -> u16 {
        (u32_at(self.buffer.as_ref(), field::INDEX) >> 20) as u16
    }

    /// Type II: the 20-bit port index.
    pub fn index(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::INDEX) & 0x000f_ffff
    }

    /// Type III: lower 32 timestamp bits.
    pub fn timestamp(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::TIMESTAMP)
    }

    /// Type III: security group tag.
    pub fn sgt(&self) -> u16 {
        self.w(field::SGT)
    }

    /// Type III: P bit.
    pub fn p(&self) -> bool {
        self.w(field::FLAGS) & w10::P != 0
    }

    /// Type III: frame type (0 Ethernet, 2 IP).
    pub fn frame_type(&self) -> u8 {
        ((self.w(field::FLAGS) & w10::FT) >> 10) as u8
    }

    /// Type III: 6-bit hardware ID.
    pub fn hw_id(&self) -> u8 {
        ((self.w(field::FLAGS) & w10::HW) >> 4) as u8
    }

    /// Type III: D bit, false ingress, true egress.
    pub fn egress(&self) -> bool {
        self.w(field::FLAGS) & w10::D != 0
    }

    pub fn granularity(&self) -> Granularity {
        Granularity::from(((self.w(field::FLAGS) & w10::GRA) >> 1) as u8)
    }

    /// Type III: O bit, the platform sub-header follows.
    pub fn has_platform(&self) -> bool {
        self.version() == VERSION_III && self.w(field::FLAGS) & w10::O != 0
    }

    /// Type III: the platform sub-header's two words, when O is set.
    pub fn platform(&self) -> Option<Platform> {
        self.has_platform().then(|| {
            Platform::from_words(
                u32_at(self.buffer.as_ref(), field::PLATFORM),
                u32_at(self.buffer.as_ref(), field::PLATFORM_WORD2),
            )
        })
    }

    /// The mirrored frame.
    pub fn payload(&self) -> &[u8] {
        match self.header_len() {
            0 => &[],
            n => range(self.buffer.as_ref(), n, usize::MAX),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_bits(&mut self, at: usize, mask: u16, v: u16) {
        let old = u16_at(self.buffer.as_ref(), at);
        set_u16(self.buffer.as_mut(), at, (old & !mask) | (v & mask));
    }

    pub fn set_version(&mut self, v: u8) {
        self.set_bits(field::VER_VLAN, 0xf000, u16::from(v) << 12);
    }

    pub fn set_vlan(&mut self, v: u16) {
        self.set_bits(field::VER_VLAN, 0x0fff, v);
    }

    pub fn set_cos(&mut self, v: u8) {
        self.set_bits(field::COS_SESSION, w2::COS, u16::from(v) << 13);
    }

    pub fn set_en_bso(&mut self, v: u8) {
        self.set_bits(field::COS_SESSION, w2::EN, u16::from(v) << 11);
    }

    pub fn set_truncated(&mut self, t: bool) {
        self.set_bits(field::COS_SESSION, w2::T, if t { w2::T } else { 0 });
    }

    pub fn set_session_id(&mut self, v: u16) {
        self.set_bits(field::COS_SESSION, w2::SESSION, v);
    }

    /// Type II: reserved (12 bits) and index (20 bits) together.
    pub fn set_reserved_index(&mut self, reserved: u16, index: u32) {
        let w = (u32::from(reserved & 0x0fff) << 20) | (index & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::INDEX, w);
    }

    pub fn set_timestamp(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::TIMESTAMP, v);
    }

    pub fn set_sgt(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SGT, v);
    }

    /// Type III word at offset 10, all six fields at once.
    pub fn set_word10(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FLAGS, v);
    }

    pub fn set_egress(&mut self, e: bool) {
        self.set_bits(field::FLAGS, w10::D, if e { w10::D } else { 0 });
    }

    pub fn set_hw_id(&mut self, v: u8) {
        self.set_bits(field::FLAGS, w10::HW, u16::from(v) << 4);
    }

    /// Type III: writes the sub-header words (O must already be set).
    pub fn set_platform(&mut self, p: Platform) {
        let (a, b) = p.words();
        set_u32(self.buffer.as_mut(), field::PLATFORM, a);
        set_u32(self.buffer.as_mut(), field::PLATFORM_WORD2, b);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        match self.header_len() {
            0 => &mut [],
            n => range_mut(self.buffer.as_mut(), n, usize::MAX),
        }
    }
}

/// The type III platform-specific sub-header (8 bytes), as raw fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Platform {
    /// 6-bit platform ID: decides what the other 58 bits mean.
    pub id: u8,
    /// The 26 bits after the ID.
    pub info: u32,
    /// The second 32-bit word.
    pub word1: u32,
}

impl Platform {
    /// Platform ID 3: port index (14 bits) and the upper timestamp bits.
    pub const fn upper_timestamp(port_index: u16, upper: u32) -> Platform {
        Platform {
            id: PLATFORM_ID_UPPER_TIMESTAMP,
            info: (port_index & 0x3fff) as u32,
            word1: upper,
        }
    }

    pub const fn from_words(a: u32, b: u32) -> Platform {
        Platform {
            id: (a >> 26) as u8,
            info: a & 0x03ff_ffff,
            word1: b,
        }
    }

    pub const fn words(&self) -> (u32, u32) {
        (
            ((self.id as u32 & 0x3f) << 26) | (self.info & 0x03ff_ffff),
            self.word1,
        )
    }

    /// ID 3's port index.
    pub const fn port_index(&self) -> u16 {
        (self.info & 0x3fff) as u16
    }
}

/// An ERSPAN type II header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TypeII {
    pub vlan: u16,
    pub cos: u8,
    /// `En`: 0 no VLAN, 1 ISL, 2 802.1Q, 3 VLAN tag preserved in the frame.
    pub encap: u8,
    pub truncated: bool,
    pub session_id: u16,
    pub reserved: u16,
    pub index: u32,
}

/// An ERSPAN type III header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeIII {
    pub vlan: u16,
    pub cos: u8,
    /// Bad/short/oversized: 0 good or unknown, 1 short, 2 oversized, 3 CRC error.
    pub bso: u8,
    pub truncated: bool,
    pub session_id: u16,
    pub timestamp: u32,
    pub sgt: u16,
    pub p: bool,
    pub frame_type: u8,
    pub hw_id: u8,
    /// D bit: false ingress, true egress.
    pub egress: bool,
    pub granularity: Granularity,
    /// The sub-header; `Some` sets O.
    pub platform: Option<Platform>,
}

/// A type II or type III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr {
    TypeII(TypeII),
    TypeIII(TypeIII),
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(match p.version() {
            VERSION_II => Repr::TypeII(TypeII {
                vlan: p.vlan(),
                cos: p.cos(),
                encap: p.en_bso(),
                truncated: p.truncated(),
                session_id: p.session_id(),
                reserved: p.reserved(),
                index: p.index(),
            }),
            // check_len let only II and III through.
            _ => Repr::TypeIII(TypeIII {
                vlan: p.vlan(),
                cos: p.cos(),
                bso: p.en_bso(),
                truncated: p.truncated(),
                session_id: p.session_id(),
                timestamp: p.timestamp(),
                sgt: p.sgt(),
                p: p.p(),
                frame_type: p.frame_type(),
                hw_id: p.hw_id(),
                egress: p.egress(),
                granularity: p.granularity(),
                platform: p.platform(),
            }),
        })
    }

    pub fn header_len(&self) -> usize {
        match self {
            Repr::TypeII(_) => TYPE_II_LEN,
            Repr::TypeIII(r) if r.platform.is_some() => TYPE_III_LEN + PLATFORM_LEN,
            Repr::TypeIII(_) => TYPE_III_LEN,
        }
    }

    /// Writes the header; fields are masked to their widths.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        match self {
            Repr::TypeII(r) => {
                let w0 = (u16::from(VERSION_II) << 12) | (r.vlan & 0x0fff);
                set_u16(p.buffer.as_mut(), field::VER_VLAN, w0);
                set_u16(
                    p.buffer.as_mut(),
                    field::COS_SESSION,
                    word2(r.cos, r.encap, r.truncated, r.session_id),
                );
                p.set_reserved_index(r.reserved, r.index);
            }
            Repr::TypeIII(r) => {
                let w0 = (u16::from(VERSION_III) << 12) | (r.vlan & 0x0fff);
                set_u16(p.buffer.as_mut(), field::VER_VLAN, w0);
                set_u16(
                    p.buffer.as_mut(),
                    field::COS_SESSION,
                    word2(r.cos, r.bso, r.truncated, r.session_id),
                );
                p.set_timestamp(r.timestamp);
                p.set_sgt(r.sgt);
                p.set_word10(r.word10());
                if let Some(pl) = r.platform {
                    p.set_platform(pl);
                }
            }
        }
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        self.emit(&mut Packet::new_unchecked(buf));
        Ok(len)
    }
}

impl TypeIII {
    /// The word at offset 10: `P | FT | HwID | D | Gra | O`.
    pub fn word10(&self) -> u16 {
        (if self.p { w10::P } else { 0 })
            | ((u16::from(self.frame_type) << 10) & w10::FT)
            | ((u16::from(self.hw_id) << 4) & w10::HW)
            | (if self.egress { w10::D } else { 0 })
            | ((u16::from(u8::from(self.granularity)) << 1) & w10::GRA)
            | (if self.platform.is_some() { w10::O } else { 0 })
    }
}

/// The word at offset 2: `COS | En/BSO | T | SessionID`.
fn word2(cos: u8, en: u8, t: bool, session: u16) -> u16 {
    ((u16::from(cos) << 13) & w2::COS)
        | ((u16::from(en) << 11) & w2::EN)
        | (if t { w2::T } else { 0 })
        | (session & w2::SESSION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_type_ii_from_capture() {
        // erspan-type-ii-1.pcap: VLAN 342, COS 6, En 0, T 0, span 666, index 32760.
        let b = [0x11, 0x56, 0xc2, 0x9a, 0x00, 0x00, 0x7f, 0xf8, 0xaa];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), VERSION_II);
        assert_eq!(p.vlan(), 342);
        assert_eq!(p.cos(), 6);
        assert_eq!(p.session_id(), 666);
        assert_eq!(p.index(), 32760);
        assert_eq!(p.payload(), &[0xaa]);
    }

    #[test]
    fn reads_type_iii_with_platform() {
        let r = TypeIII {
            vlan: 20,
            cos: 5,
            bso: 0,
            truncated: true,
            session_id: 0x3ff,
            timestamp: 0xdead_beef,
            sgt: 7,
            p: true,
            frame_type: 0,
            hw_id: 0x2a,
            egress: true,
            granularity: Granularity::Ieee1588,
            platform: Some(Platform::upper_timestamp(9, 0x0102_0304)),
        };
        let mut buf = [0u8; 21];
        assert_eq!(Repr::TypeIII(r).emit_to(&mut buf), Ok(20));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert!(p.truncated() && p.egress() && p.p());
        assert_eq!(p.hw_id(), 0x2a);
        assert_eq!(p.platform().map(|x| x.id), Some(3));
        assert_eq!(p.platform().map(|x| x.port_index()), Some(9));
        assert_eq!(&buf[16..20], &[1, 2, 3, 4]);
        assert_eq!(buf[12] >> 2, 3);
        assert_eq!(p.payload().len(), 1);
    }

    #[test]
    fn unknown_version_and_short_buffers() {
        assert_eq!(
            Packet::new_checked(&[0x30u8, 0, 0, 0, 0, 0, 0, 0][..]),
            Err(Error::Malformed)
        );
        let b = [0x20u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
        for n in 0..12 {
            assert_eq!(Packet::new_checked(&b[..n]), Err(Error::Truncated));
        }
    }

    fn type_ii() -> impl Strategy<Value = Repr> {
        (
            0u16..4096,
            0u8..8,
            0u8..4,
            any::<bool>(),
            0u16..1024,
            0u16..4096,
            0u32..(1 << 20),
        )
            .prop_map(
                |(vlan, cos, encap, truncated, session_id, reserved, index)| {
                    Repr::TypeII(TypeII {
                        vlan,
                        cos,
                        encap,
                        truncated,
                        session_id,
                        reserved,
                        index,
                    })
                },
            )
    }

    fn type_iii() -> impl Strategy<Value = Repr> {
        (
            (0u16..4096, 0u8..8, 0u8..4, any::<bool>(), 0u16..1024),
            (any::<u32>(), any::<u16>(), any::<bool>(), 0u8..32, 0u8..64),
            (any::<bool>(), 0u8..4),
            proptest::option::of((0u8..64, 0u32..(1 << 26), any::<u32>())),
        )
            .prop_map(
                |(
                    (vlan, cos, bso, truncated, session_id),
                    (timestamp, sgt, p, frame_type, hw_id),
                    (egress, gra),
                    pl,
                )| {
                    Repr::TypeIII(TypeIII {
                        vlan,
                        cos,
                        bso,
                        truncated,
                        session_id,
                        timestamp,
                        sgt,
                        p,
                        frame_type,
                        hw_id,
                        egress,
                        granularity: Granularity::from(gra),
                        platform: pl.map(|(id, info, word1)| Platform { id, info, word1 }),
                    })
                },
            )
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            r in prop_oneof![type_ii(), type_iii()],
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let len = r.header_len();
            let mut buf = vec![0u8; len + tail.len()];
            buf[len..].copy_from_slice(&tail);
            prop_assert_eq!(r.emit_to(&mut buf), Ok(len));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload(), &tail[..]);
        }

        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..24)) {
            let p = Packet::new_unchecked(&b[..]);
            let _ = (p.header_len(), p.platform(), p.payload(), p.index(), p.timestamp());
            if let Ok(r) = Repr::parse(&p) {
                let mut out = vec![0u8; r.header_len()];
                prop_assert!(r.emit_to(&mut out).is_ok());
                prop_assert_eq!(&out[..], &b[..r.header_len()]);
            }
        }
    }
}
