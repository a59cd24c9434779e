//! ICMP (RFC 792) and ICMPv6 (RFC 4443): both are type, code, checksum and
//! a 4-byte rest-of-header, so one view serves both. They differ in their
//! type numbers and in the checksum: ICMPv6 covers a pseudo-header.

use super::bytes::{range, range_mut, set_u16, set_u32, set_u8, u16_at, u32_at, u8_at};
use super::checksum;
use super::{Error, Result};
use std::net::Ipv6Addr;

/// Bytes of type, code, checksum and rest-of-header.
/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// The type-dependent word: echo identifier and sequence, MTU, pointer.
    pub const REST: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

macro_rules! message_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(n: u8) -> Self {
                match n {
                    $($n => Self::$variant,)*
                    n => Self::Unknown(n),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(m: $name) -> u8 {
                match m {
                    $($name::$variant => $n,)*
                    $name::Unknown(n) => n,
                }
            }
        }
    };
}

message_enum! {
    /// ICMPv4 message types.
    Icmpv4Message {
        EchoReply = 0,
        DstUnreachable = 3,
        Redirect = 5,
        EchoRequest = 8,
        RouterAdvert = 9,
        RouterSolicit = 10,
        TimeExceeded = 11,
        ParamProblem = 12,
        Timestamp = 13,
        TimestampReply = 14,
    }
}

message_enum! {
    /// ICMPv6 message types, NDP and MLD included.
    Icmpv6Message {
        DstUnreachable = 1,
        PktTooBig = 2,
        TimeExceeded = 3,
        ParamProblem = 4,
        EchoRequest = 128,
        EchoReply = 129,
        MldQuery = 130,
        MldReport = 131,
        MldDone = 132,
        RouterSolicit = 133,
        RouterAdvert = 134,
        NeighborSolicit = 135,
        NeighborAdvert = 136,
        Redirect = 137,
        NodeInfoQuery = 139,
        NodeInfoReply = 140,
        MldV2Report = 143,
    }
}

/// A view of an ICMP or ICMPv6 message.
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
        if self.b().len() < HEADER_LEN {
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

    /// The raw type byte; see [`Packet::v4_message`] and [`Packet::v6_message`].
    pub fn msg_type(&self) -> u8 {
        u8_at(self.b(), field::TYPE)
    }

    pub fn v4_message(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.msg_type())
    }

    pub fn v6_message(&self) -> Icmpv6Message {
        Icmpv6Message::from(self.msg_type())
    }

    pub fn code(&self) -> u8 {
        u8_at(self.b(), field::CODE)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.b(), field::CHECKSUM)
    }

    /// Bytes 4..8, whose meaning depends on the type (echo identifier and
    /// sequence, MTU, pointer, unused).
    pub fn rest_of_header(&self) -> u32 {
        u32_at(self.b(), field::REST)
    }

    /// Echo request/reply identifier.
    pub fn echo_ident(&self) -> u16 {
        u16_at(self.b(), field::ECHO_IDENT)
    }

    /// Echo request/reply sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        u16_at(self.b(), field::ECHO_SEQNO)
    }

    /// After the 8-byte header: the invoking packet of an error message, the
    /// data of an echo, NDP targets and options.
    pub fn payload(&self) -> &[u8] {
        range(self.b(), HEADER_LEN, usize::MAX)
    }

    /// ICMPv4 checksum over the whole buffer.
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(self.b(), 0)
    }

    /// ICMPv6 checksum over the whole buffer and the IPv6 pseudo-header.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.b();
        checksum::verify(b, checksum::pseudo_v6(src, dst, 58, b.len() as u32))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        set_u8(self.buffer.as_mut(), field::TYPE, t);
    }

    pub fn set_code(&mut self, c: u8) {
        set_u8(self.buffer.as_mut(), field::CODE, c);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_rest_of_header(&mut self, r: u32) {
        set_u32(self.buffer.as_mut(), field::REST, r);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        range_mut(self.buffer.as_mut(), HEADER_LEN, usize::MAX)
    }

    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let c = checksum::finish(checksum::sum(
            b,
            checksum::pseudo_v6(src, dst, 58, b.len() as u32),
        ));
        self.set_checksum(c);
    }
}

/// An ICMPv4 header as plain values (checksum left to `fill_checksum_v4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Repr {
    pub message: Icmpv4Message,
    pub code: u8,
    pub rest_of_header: u32,
}

/// An ICMPv6 header as plain values (checksum left to `fill_checksum_v6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv6Repr {
    pub message: Icmpv6Message,
    pub code: u8,
    pub rest_of_header: u32,
}

macro_rules! repr_impl {
    ($repr:ident, $msg:ident) => {
        impl $repr {
            pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<$repr> {
                p.check_len()?;
                Ok($repr {
                    message: $msg::from(p.msg_type()),
                    code: p.code(),
                    rest_of_header: p.rest_of_header(),
                })
            }

            pub const fn header_len(&self) -> usize {
                HEADER_LEN
            }

            pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
                p.set_msg_type(self.message.into());
                p.set_code(self.code);
                p.set_checksum(0);
                p.set_rest_of_header(self.rest_of_header);
            }

            pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
                let Some(h) = buf.get_mut(..HEADER_LEN) else {
                    return Err(Error::Truncated);
                };
                self.emit(&mut Packet::new_unchecked(h));
                Ok(HEADER_LEN)
            }
        }
    };
}

repr_impl!(Icmpv4Repr, Icmpv4Message);
repr_impl!(Icmpv6Repr, Icmpv6Message);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Echo request id 0x1234 seq 1, payload "abcd"; checksum computed by hand:
    /// !(0800 + 1234 + 0001 + 6162 + 6364) = !0xdefb = 0x2104.
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn reads_an_echo_request() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.v4_message(), Icmpv4Message::EchoRequest);
        assert_eq!(p.v6_message(), Icmpv6Message::Unknown(8));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum_v4());
        let mut b = ECHO;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_checksum(0);
        p.fill_checksum_v4();
        assert_eq!(p.checksum(), 0x2104);
    }

    #[test]
    fn v6_checksum_covers_the_pseudo_header() {
        let s: Ipv6Addr = "fe80::1".parse().unwrap();
        let d: Ipv6Addr = "ff02::1".parse().unwrap();
        let mut b = [135u8, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));
        let other: Ipv6Addr = "fe80::2".parse().unwrap();
        assert!(!p.verify_checksum_v6(&other, &d));
        assert!(!p.verify_checksum_v4());
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&ECHO[..n]), Err(Error::Truncated));
        }
    }

    #[test]
    fn message_numbers_round_trip() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(n)), n);
            assert_eq!(u8::from(Icmpv6Message::from(n)), n);
        }
    }

    proptest! {
        #[test]
        fn v4_parse_emit_round_trip(t: u8, code: u8, rest: u32) {
            let r = Icmpv4Repr { message: Icmpv4Message::from(t), code, rest_of_header: rest };
            let mut buf = [0xffu8; HEADER_LEN];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Icmpv4Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }

        #[test]
        fn v6_parse_emit_round_trip(t: u8, code: u8, rest: u32) {
            let r = Icmpv6Repr { message: Icmpv6Message::from(t), code, rest_of_header: rest };
            let mut buf = [0u8; HEADER_LEN];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Icmpv6Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }
    }
}
