//! UDP header (RFC 768) and its pseudo-header checksum.

use super::bytes::{range, range_mut, set_u16, u16_at};
use super::checksum;
use super::{Error, Result};
use std::net::IpAddr;

/// Bytes in a UDP header.
/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of a UDP datagram.
///
/// A length field of 0 is read as "to the end of the buffer": IPv6
/// jumbograms (RFC 2675) and GSO'd datagrams carry 0 there.
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

    /// The buffer must hold the header and the length field's bytes; a
    /// length field between 1 and 7 is malformed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field = usize::from(self.len());
        if field != 0 && field < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < field {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        u16_at(self.b(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        u16_at(self.b(), field::DST_PORT)
    }

    /// The length field as it is: header plus payload.
    pub fn len(&self) -> u16 {
        u16_at(self.b(), field::LENGTH)
    }

    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Bytes of the datagram: the length field, or the whole buffer when it
    /// is 0. Never more than the buffer.
    pub fn datagram_len(&self) -> usize {
        let field = usize::from(self.len());
        let len = self.b().len();
        if field == 0 {
            len
        } else {
            field.min(len)
        }
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.b(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        range(self.b(), HEADER_LEN, self.datagram_len())
    }

    /// Whether the checksum is right for these addresses. 0 means "not
    /// computed" and is accepted over IPv4 only (RFC 8200 §8.1 forbids it
    /// over IPv6 except for tunnels, RFC 6935 — callers that allow that
    /// check for 0 first).
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let data = range(self.b(), 0, self.datagram_len());
        checksum::verify(data, checksum::pseudo(src, dst, 17, data.len() as u32))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    pub fn set_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.datagram_len();
        range_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// Computes and stores the checksum over header and payload (the datagram
    /// must be complete). A computed 0 is sent as 0xffff: 0 means "none".
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let data = range(self.b(), 0, self.datagram_len());
        let c = checksum::finish(checksum::sum(
            data,
            checksum::pseudo(src, dst, 17, data.len() as u32),
        ));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// A UDP header as plain values. The checksum is not part of it: `emit`
/// writes 0 and [`Packet::fill_checksum`] fills it once the payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes after the header. Above 65535 − 8 `emit` writes a length of 0.
    pub payload_len: usize,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.datagram_len() - HEADER_LEN,
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(0));
        p.set_checksum(0);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let Some(h) = buf.get_mut(..HEADER_LEN) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut Packet::new_unchecked(h));
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// 53000 → 53 with 4 bytes of payload and no checksum.
    fn dgram() -> Vec<u8> {
        let mut d = vec![0xcf, 0x08, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00];
        d.extend([0xde, 0xad, 0xbe, 0xef]);
        d
    }

    fn v4() -> (IpAddr, IpAddr) {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        )
    }

    #[test]
    fn reads_fields() {
        let d = dgram();
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53000, 53, 12));
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn checksum_v4_and_v6() {
        let (s, d) = v4();
        let mut b = dgram();
        let mut p = Packet::new_unchecked(&mut b[..]);
        assert!(p.verify_checksum(&s, &d), "0 means none over IPv4");
        p.fill_checksum(&s, &d);
        // Independent sum: pseudo 0a00 0001 0a00 0002 0011 000c, header with
        // checksum 0, payload dead beef.
        let words: u32 = [
            0x0a00, 0x0001, 0x0a00, 0x0002, 0x0011, 0x000c, 0xcf08, 0x0035, 0x000c, 0xdead, 0xbeef,
        ]
        .iter()
        .sum();
        let folded = (words & 0xffff) + (words >> 16);
        assert_eq!(p.checksum(), !(folded as u16));
        assert!(p.verify_checksum(&s, &d));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert!(!p.verify_checksum(&s, &other));

        let s6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
        let d6 = IpAddr::V6("2001:db8::2".parse::<Ipv6Addr>().unwrap());
        p.set_checksum(0);
        assert!(!p.verify_checksum(&s6, &d6), "0 is not allowed over IPv6");
        p.fill_checksum(&s6, &d6);
        assert!(p.verify_checksum(&s6, &d6));
    }

    #[test]
    fn length_checks() {
        let d = dgram();
        for n in 0..d.len() {
            assert_eq!(Packet::new_checked(&d[..n]), Err(Error::Truncated));
        }
        let mut bad = d.clone();
        bad[5] = 7;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        let mut padded = d;
        padded.extend([0; 6]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(src: u16, dst: u16, len in 0usize..2000) {
            let r = Repr { src_port: src, dst_port: dst, payload_len: len };
            let mut buf = vec![0u8; HEADER_LEN + len];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }

        #[test]
        fn filled_checksums_verify(payload in proptest::collection::vec(any::<u8>(), 0..100), a: u32, b: u32) {
            let (s, d) = (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)));
            let r = Repr { src_port: 1, dst_port: 2, payload_len: payload.len() };
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            r.emit_to(&mut buf).unwrap();
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.fill_checksum(&s, &d);
            prop_assert!(p.checksum() != 0);
            prop_assert!(p.verify_checksum(&s, &d));
        }
    }
}
