//! TCP header (RFC 9293): ports, sequence numbers, data offset, flags.

use super::bytes::{range, range_mut, set_bytes, set_u16, set_u32, set_u8, u16_at, u32_at, u8_at};
use super::checksum;
use super::{Error, Result};
use core::fmt;
use std::net::IpAddr;

/// IPv4-style options: the same 40-byte, 4-byte-word limit applies to TCP.
pub use super::ipv4::Options;

/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    /// Data offset (high nibble).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    /// Options, or the payload when the data offset is 5.
    pub const OPTIONS: usize = 20;
}

/// Bytes in a header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS;
/// Bytes in a header with data offset 15.
pub const MAX_HEADER_LEN: usize = 60;

/// The flags byte (byte 13): CWR ECE URG ACK PSH RST SYN FIN.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Wireshark's order and letters.
        const NAMES: [(u8, char); 8] = [
            (0x80, 'C'),
            (0x40, 'E'),
            (0x20, 'U'),
            (0x10, 'A'),
            (0x08, 'P'),
            (0x04, 'R'),
            (0x02, 'S'),
            (0x01, 'F'),
        ];
        let s: String = NAMES
            .iter()
            .map(|&(bit, c)| if self.0 & bit != 0 { c } else { '·' })
            .collect();
        write!(f, "Flags({s})")
    }
}

/// A view of a TCP segment.
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

    /// The buffer must hold the header as the data offset says; a data
    /// offset under 5 is malformed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
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

    pub fn seq_number(&self) -> u32 {
        u32_at(self.b(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        u32_at(self.b(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.b(), field::DATA_OFF) >> 4) * 4
    }

    pub fn flags(&self) -> Flags {
        Flags(u8_at(self.b(), field::FLAGS))
    }

    pub fn window_len(&self) -> u16 {
        u16_at(self.b(), field::WIN_SIZE)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.b(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        u16_at(self.b(), field::URGENT)
    }

    pub fn options(&self) -> &[u8] {
        range(self.b(), MIN_HEADER_LEN, self.header_len())
    }

    /// Everything after the header: the caller hands in exactly the segment
    /// (the IP payload), so Ethernet padding is already gone.
    pub fn payload(&self) -> &[u8] {
        range(self.b(), self.header_len(), usize::MAX)
    }

    /// Whether the checksum over the whole buffer is right for these addresses.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let b = self.b();
        checksum::verify(b, checksum::pseudo(src, dst, 6, b.len() as u32))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_src_port(&mut self, p: u16) {
        set_u16(self.m(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        set_u16(self.m(), field::DST_PORT, p);
    }

    pub fn set_seq_number(&mut self, n: u32) {
        set_u32(self.m(), field::SEQ_NUM, n);
    }

    pub fn set_ack_number(&mut self, n: u32) {
        set_u32(self.m(), field::ACK_NUM, n);
    }

    /// Sets the data offset from bytes (rounded down to 4); reserved bits 0.
    pub fn set_header_len(&mut self, len: usize) {
        set_u8(self.m(), field::DATA_OFF, (((len / 4) as u8) & 0x0f) << 4);
    }

    pub fn set_flags(&mut self, f: Flags) {
        set_u8(self.m(), field::FLAGS, f.0);
    }

    pub fn set_window_len(&mut self, w: u16) {
        set_u16(self.m(), field::WIN_SIZE, w);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.m(), field::CHECKSUM, c);
    }

    pub fn set_urgent_at(&mut self, u: u16) {
        set_u16(self.m(), field::URGENT, u);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        range_mut(self.m(), MIN_HEADER_LEN, hl)
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        range_mut(self.m(), hl, usize::MAX)
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let b = self.b();
        let c = checksum::finish(checksum::sum(
            b,
            checksum::pseudo(src, dst, 6, b.len() as u32),
        ));
        self.set_checksum(c);
    }
}

/// A TCP header as plain values. The checksum is not part of it: `emit`
/// writes 0 and [`Packet::fill_checksum`] fills it once the payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: Flags,
    pub window_len: u16,
    pub urgent_at: u16,
    pub options: Options,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
            urgent_at: p.urgent_at(),
            options: Options::new(p.options())?,
        })
    }

    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len(self.header_len());
        p.set_flags(self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent_at);
        set_bytes(p.m(), MIN_HEADER_LEN, self.options.as_slice());
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let hl = self.header_len();
        let Some(h) = buf.get_mut(..hl) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut Packet::new_unchecked(h));
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// SYN 40000 → 80, seq 1, data offset 6 with an MSS option of 1460.
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn reads_fields() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (1, 0));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(!p.flags().contains(Flags::ACK));
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "Flags(···A··S·)");
    }

    #[test]
    fn length_checks() {
        for n in 0..SYN.len() {
            assert_eq!(Packet::new_checked(&SYN[..n]), Err(Error::Truncated));
        }
        let mut bad = SYN;
        bad[12] = 0x40; // data offset 4
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
    }

    #[test]
    fn checksum_against_known_value() {
        // 10.0.0.1 → 10.0.0.2 pseudo-header + SYN, summed by hand:
        // 0a00+0001+0a00+0002+0006+0018 + 9c40+0050+0000+0001+0000+0000
        // +6002+faf0+0000(cksum)+0000+0204+05b4.
        let words: u32 = [
            0x0a00, 0x0001, 0x0a00, 0x0002, 0x0006, 0x0018, 0x9c40, 0x0050, 0x0001, 0x6002, 0xfaf0,
            0x0204, 0x05b4,
        ]
        .iter()
        .sum();
        let mut folded = words;
        while folded > 0xffff {
            folded = (folded & 0xffff) + (folded >> 16);
        }
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let d = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut b = SYN;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(&s, &d);
        assert_eq!(p.checksum(), !(folded as u16));
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))));
        let s6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        p.fill_checksum(&s6, &s6);
        assert!(p.verify_checksum(&s6, &s6));
    }

    fn repr() -> impl Strategy<Value = Repr> {
        (
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
            (any::<u8>(), any::<u16>(), any::<u16>(), 0usize..=10),
        )
            .prop_map(|((sp, dp, seq, ack), (fl, win, urg, words))| Repr {
                src_port: sp,
                dst_port: dp,
                seq_number: seq,
                ack_number: ack,
                flags: Flags(fl),
                window_len: win,
                urgent_at: urg,
                options: Options::new(&vec![1u8; words * 4]).unwrap(),
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr(), payload in 0usize..20) {
            let mut buf = vec![0u8; r.header_len() + payload];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(r.header_len()));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.payload().len(), payload);
            prop_assert_eq!(Repr::parse(&p), Ok(r));
        }
    }
}
