//! 802.1Q / 802.1ad / QinQ tags.
//!
//! On the wire a tag is TPID(2) TCI(2); the TPID sits where the EtherType
//! would be, so it belongs to the header before. This view covers what
//! follows it, TCI and the next EtherType, the same split Wireshark shows:
//! the TPID is `ethernet::Packet::ethertype` (or the previous tag's
//! `ethertype`), and `is_tpid` tells whether a tag follows.

use super::bytes::{range, range_mut, set_u16, u16_at};
use super::ethernet::{ethertype, EtherType};
use super::{Error, Result};

/// Where each field starts, from the TCI (smoltcp's `mod field`).
pub mod field {
    pub const TCI: usize = 0;
    /// The EtherType of what follows the tag (or the next tag's TPID).
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Bytes of TCI plus inner EtherType.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// 802.1Q customer tag.
pub const TPID_8021Q: u16 = ethertype::VLAN;
/// 802.1ad service tag.
pub const TPID_8021AD: u16 = ethertype::SERVICE_VLAN;
/// Pre-standard QinQ outer tag still sent by older switches.
pub const TPID_QINQ: u16 = ethertype::QINQ;

/// Whether an EtherType announces a VLAN tag.
#[inline]
pub const fn is_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ)
}

/// A view of one tag's TCI and the EtherType after it.
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

    /// The whole Tag Control Information word.
    pub fn tci(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (802.1p), 0..=7.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator (formerly CFI).
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier, 0..=4095.
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType after this tag: another TPID for QinQ.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), field::ETHERTYPE))
    }

    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), HEADER_LEN, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_tci(&mut self, tci: u16) {
        set_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(tci);
    }

    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        range_mut(self.buffer.as_mut(), HEADER_LEN, usize::MAX)
    }
}

/// One VLAN tag as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    /// EtherType after the tag.
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            pcp: p.pcp(),
            dei: p.dei(),
            vid: p.vid(),
            ethertype: p.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The TCI word this tag encodes. PCP over 7 or VID over 4095 are cut
    /// to their field widths, as the wire would.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_tci(self.tci());
        p.set_ethertype(self.ethertype);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        self.emit(&mut Packet::new_unchecked(buf));
        Ok(HEADER_LEN)
    }

    /// Writes TPID, TCI and EtherType: the 4 bytes `emit` covers, preceded
    /// by the TPID that announces the tag — the bytes to insert after the
    /// MAC addresses when pushing a tag onto a frame (6 bytes).
    pub fn emit_with_tpid(&self, tpid: u16, buf: &mut [u8]) -> Result<usize> {
        let Some(dst) = buf.get_mut(..HEADER_LEN + 2) else {
            return Err(Error::Truncated);
        };
        dst[..2].copy_from_slice(&tpid.to_be_bytes());
        self.emit_to(&mut dst[2..])?;
        Ok(HEADER_LEN + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_tci_fields() {
        // PCP 5, DEI 1, VID 0x123, then IPv4.
        let b = [0xb1, 0x23, 0x08, 0x00, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.pcp(), 5);
        assert!(p.dei());
        assert_eq!(p.vid(), 0x123);
        assert_eq!(p.ethertype(), EtherType::Ipv4);
        assert_eq!(p.payload(), &[0x45]);
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut b = [0xffu8, 0xff, 0, 0];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_vid(0x001);
        assert_eq!(p.tci(), 0xf001);
        p.set_pcp(0);
        assert_eq!(p.tci(), 0x1001);
        p.set_dei(false);
        assert_eq!(p.tci(), 0x0001);
    }

    #[test]
    fn tpids() {
        assert!(is_tpid(0x8100) && is_tpid(0x88a8) && is_tpid(0x9100));
        assert!(!is_tpid(0x0800) && !is_tpid(0x8847));
    }

    #[test]
    fn truncated_tag() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&[0u8; 4][..n]), Err(Error::Truncated));
        }
        let r = Repr {
            pcp: 0,
            dei: false,
            vid: 7,
            ethertype: EtherType::Ipv6,
        };
        assert_eq!(
            r.emit_with_tpid(TPID_8021Q, &mut [0u8; 5]),
            Err(Error::Truncated)
        );
        let mut b = [0u8; 6];
        assert_eq!(r.emit_with_tpid(TPID_8021Q, &mut b), Ok(6));
        assert_eq!(b, [0x81, 0x00, 0x00, 0x07, 0x86, 0xdd]);
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(pcp in 0u8..8, dei: bool, vid in 0u16..4096, t: u16) {
            let r = Repr { pcp, dei, vid, ethertype: EtherType::from(t) };
            let mut buf = [0u8; HEADER_LEN];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }
    }
}
