//! IPv4 header (RFC 791) with options, and its header checksum.

use super::bytes::{range, range_mut, set_bytes, set_u16, set_u8, u16_at, u32_at, u8_at};
use super::checksum;
use super::{Error, IpProtocol, Result};
use core::fmt;
use std::net::Ipv4Addr;

/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP (high 6 bits) and ECN (low 2 bits).
    pub const DSCP_ECN: usize = 1;
    /// Total length.
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    /// Flags (high 3 bits) and fragment offset.
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    /// Options, or the payload when IHL is 5.
    pub const OPTIONS: usize = 20;
}

/// Don't-fragment bit of the flags/offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More-fragments bit of the flags/offset word.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset (in 8-byte units) in the flags/offset word.
pub const OFFSET_MASK: u16 = 0x1fff;

/// Bytes in a header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS;
/// Bytes in a header with the most options IHL can describe.
pub const MAX_HEADER_LEN: usize = 60;
/// Most bytes of options (IHL 15).
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - MIN_HEADER_LEN;

/// The length of an IPv4 packet whose total-length field holds `total_len`
/// and from whose first header byte `rest` bytes of frame follow: the
/// field, or all of `rest` when the field is 0. Linux GSO/TSO (BIG TCP)
/// hands such packets to taps and pdump, and Wireshark reads them the same
/// way. The one place this rule is written; whether the result fits in
/// `rest` or covers the header is the caller's check.
#[inline(always)]
pub const fn packet_len(total_len: u16, rest: usize) -> usize {
    match total_len {
        0 => rest,
        n => n as usize,
    }
}

/// A view of an IPv4 packet.
///
/// A total length of 0 is read as "to the end of the buffer" (see
/// [`packet_len`]): GSO packets must still parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the header and the total length, and that
    /// IHL and total length are consistent. A buffer longer than the total
    /// length (Ethernet padding) is fine. The version is checked by
    /// [`Repr::parse`], as smoltcp does, so a view can be used to fix it.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
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
        let total = usize::from(self.total_len());
        if total != 0 && total < hl {
            return Err(Error::Malformed);
        }
        if len < total {
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

    pub fn version(&self) -> u8 {
        u8_at(self.b(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.b(), field::VER_IHL) & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        u8_at(self.b(), field::DSCP_ECN) >> 2
    }

    pub fn ecn(&self) -> u8 {
        u8_at(self.b(), field::DSCP_ECN) & 0x03
    }

    /// The total length field as it is (0 for GSO/TSO packets).
    pub fn total_len(&self) -> u16 {
        u16_at(self.b(), field::LENGTH)
    }

    /// Bytes of the packet: the total length, or the whole buffer when the
    /// field is 0. Never more than the buffer.
    pub fn packet_len(&self) -> usize {
        let len = self.b().len();
        packet_len(self.total_len(), len).min(len)
    }

    pub fn ident(&self) -> u16 {
        u16_at(self.b(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        u16_at(self.b(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        u16_at(self.b(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    pub fn frag_offset(&self) -> u16 {
        (u16_at(self.b(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        u16_at(self.b(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    pub fn ttl(&self) -> u8 {
        u8_at(self.b(), field::TTL)
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(u8_at(self.b(), field::PROTOCOL))
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.b(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32_at(self.b(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32_at(self.b(), field::DST_ADDR))
    }

    /// Option bytes between the fixed header and IHL × 4.
    pub fn options(&self) -> &[u8] {
        range(self.b(), MIN_HEADER_LEN, self.header_len())
    }

    /// The bytes after the header up to the total length (Ethernet padding
    /// excluded).
    pub fn payload(&self) -> &[u8] {
        range(self.b(), self.header_len(), self.packet_len())
    }

    /// Whether the header checksum is right. A header cut short never is.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        match self.b().get(..hl) {
            Some(h) if hl >= MIN_HEADER_LEN => checksum::verify(h, 0),
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_version(&mut self, v: u8) {
        let b = (u8_at(self.b(), field::VER_IHL) & 0x0f) | (v << 4);
        set_u8(self.m(), field::VER_IHL, b);
    }

    /// Sets IHL from a length in bytes (rounded down to 4-byte units).
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = ((len / 4) as u8) & 0x0f;
        let b = (u8_at(self.b(), field::VER_IHL) & 0xf0) | ihl;
        set_u8(self.m(), field::VER_IHL, b);
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let b = (u8_at(self.b(), field::DSCP_ECN) & 0x03) | (dscp << 2);
        set_u8(self.m(), field::DSCP_ECN, b);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let b = (u8_at(self.b(), field::DSCP_ECN) & 0xfc) | (ecn & 0x03);
        set_u8(self.m(), field::DSCP_ECN, b);
    }

    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.m(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        set_u16(self.m(), field::IDENT, id);
    }

    fn set_flag(&mut self, bit: u16, on: bool) {
        let w = u16_at(self.b(), field::FLG_OFF);
        set_u16(
            self.m(),
            field::FLG_OFF,
            if on { w | bit } else { w & !bit },
        );
    }

    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset from bytes (rounded down to 8-byte units).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let w = (u16_at(self.b(), field::FLG_OFF) & !OFFSET_MASK) | (bytes >> 3);
        set_u16(self.m(), field::FLG_OFF, w);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        set_u8(self.m(), field::TTL, ttl);
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        set_u8(self.m(), field::PROTOCOL, p.into());
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.m(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        set_bytes(self.m(), field::SRC_ADDR, &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        set_bytes(self.m(), field::DST_ADDR, &a.octets());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        range_mut(self.m(), MIN_HEADER_LEN, hl)
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, end) = (self.header_len(), self.packet_len());
        range_mut(self.m(), hl, end)
    }

    /// Computes and stores the header checksum (IHL × 4 bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(range(self.b(), 0, hl));
        self.set_checksum(c);
    }
}

/// IPv4 options, kept inline so a [`Repr`] stays `Copy` and lifetime-free.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    len: u8,
    bytes: [u8; MAX_OPTIONS_LEN],
}

impl Options {
    pub const NONE: Options = Options {
        len: 0,
        bytes: [0; MAX_OPTIONS_LEN],
    };

    /// Options from raw bytes: at most 40, a multiple of 4 as IHL requires
    /// (pad with End-of-Options zeros first).
    pub fn new(b: &[u8]) -> Result<Options> {
        if b.len() > MAX_OPTIONS_LEN || b.len() & 3 != 0 {
            return Err(Error::Malformed);
        }
        let mut o = Self::NONE;
        o.bytes[..b.len()].copy_from_slice(b);
        o.len = b.len() as u8;
        Ok(o)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::NONE
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Options").field(&self.as_slice()).finish()
    }
}

/// An IPv4 header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header. Above 65535 − header, `emit` writes a total
    /// length of 0, as GSO does.
    pub payload_len: usize,
    pub ttl: u8,
    /// 6 bits.
    pub dscp: u8,
    /// 2 bits.
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes, a multiple of 8.
    pub frag_offset: u16,
    pub options: Options,
}

impl Repr {
    /// A plain header for tunnel encap: no options, DF set (DESIGN §4: tunnel
    /// packets are never fragmented), TTL 64.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload_len: usize) -> Repr {
        Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: Options::NONE,
        }
    }

    /// Lifts a checked header. The checksum is not verified (see the module
    /// docs of [`crate::wire`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.packet_len() - p.header_len(),
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options: Options::new(p.options())?,
        })
    }

    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }

    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and its checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(4);
        p.set_header_len(self.header_len());
        p.set_dscp(self.dscp);
        p.set_ecn(self.ecn);
        let total = u16::try_from(self.total_len()).unwrap_or(0);
        p.set_total_len(total);
        p.set_ident(self.ident);
        set_u16(p.m(), field::FLG_OFF, 0);
        p.set_dont_frag(self.dont_frag);
        p.set_more_frags(self.more_frags);
        p.set_frag_offset(self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        set_bytes(p.m(), MIN_HEADER_LEN, self.options.as_slice());
        p.fill_checksum();
    }

    /// Writes the header at the front of `buf` and returns its length.
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

    /// 192.168.0.1 → 192.168.0.199, UDP, total length 0x73, DF, checksum b861.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_with(hdr: &[u8], payload: usize) -> Vec<u8> {
        let mut v = hdr.to_vec();
        v.resize(hdr.len() + payload, 0xaa);
        v
    }

    #[test]
    fn reads_fields_and_checksum() {
        let buf = packet_with(&HDR, 0x73 - 20);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.verify_checksum());
        let mut bad = buf.clone();
        bad[8] = 63;
        assert!(!Packet::new_unchecked(&bad[..]).verify_checksum());
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut hdr = HDR;
        hdr[3] = 26; // 6 bytes of payload
        let buf = packet_with(&hdr, 6 + 20);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 6);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 6);
    }

    #[test]
    fn options_are_read_by_ihl() {
        // IHL 6: one 4-byte option (Router Alert, RFC 2113).
        let mut hdr = HDR.to_vec();
        hdr[0] = 0x46;
        hdr[3] = 24;
        hdr.extend([0x94, 0x04, 0x00, 0x00]);
        let p = Packet::new_checked(&hdr[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0, 0]);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.options.as_slice(), &[0x94, 0x04, 0, 0]);
        assert_eq!(r.payload_len, 0);
    }

    #[test]
    fn fragment_fields() {
        let mut hdr = HDR;
        hdr[6] = 0x20 | 0x01; // MF, offset 0x100 units
        hdr[7] = 0x00;
        let buf = packet_with(&hdr, 0x73 - 20);
        let p = Packet::new_unchecked(&buf[..]);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 0x100 * 8);
    }

    #[test]
    fn length_errors() {
        let buf = packet_with(&HDR, 0x73 - 20);
        for n in 0..0x73 {
            assert_eq!(Packet::new_checked(&buf[..n]), Err(Error::Truncated), "{n}");
        }
        let mut bad = buf.clone();
        bad[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        let mut bad = buf.clone();
        bad[3] = 19; // total < header
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        let mut bad = buf.clone();
        bad[0] = 0x65; // version 6
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Malformed));
        let mut bad = buf;
        bad[0] = 0x4f; // IHL 15 with no room for 60 bytes
        bad[3] = 0x73;
        assert!(Packet::new_checked(&bad[..40]).is_err());
    }

    #[test]
    fn gso_total_len_zero_means_whole_buffer() {
        let mut hdr = HDR;
        hdr[2] = 0;
        hdr[3] = 0;
        let buf = packet_with(&hdr, 70_000);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.packet_len(), 70_020);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 70_000);
        let mut out = [0u8; 20];
        r.emit_to(&mut out).unwrap();
        assert_eq!(Packet::new_unchecked(&out[..]).total_len(), 0);
    }

    #[test]
    fn emit_matches_a_known_header() {
        let p = Packet::new_unchecked(&HDR[..]);
        let r =
            Repr::parse(&Packet::new_checked(&packet_with(&HDR, 0x73 - 20)[..]).unwrap()).unwrap();
        let mut out = [0u8; 20];
        assert_eq!(r.emit_to(&mut out), Ok(20));
        assert_eq!(out, HDR);
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(r.emit_to(&mut [0u8; 19]), Err(Error::Truncated));
    }

    #[test]
    fn options_must_be_whole_words() {
        assert_eq!(Options::new(&[1, 2, 3]), Err(Error::Malformed));
        assert_eq!(Options::new(&[0; 44]), Err(Error::Malformed));
        assert_eq!(Options::new(&[1; 40]).unwrap().len(), 40);
    }

    fn repr() -> impl Strategy<Value = Repr> {
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                0usize..2000,
                any::<u8>(),
            ),
            (0u8..64, 0u8..4, any::<u16>(), any::<bool>(), any::<bool>()),
            (0u16..8192, proptest::collection::vec(any::<u8>(), 0..=10)),
        )
            .prop_map(
                |((s, d, proto, len, ttl), (dscp, ecn, id, df, mf), (off, words))| {
                    let mut opts = words.clone();
                    opts.resize(words.len() / 4 * 4, 0);
                    Repr {
                        src_addr: Ipv4Addr::from(s),
                        dst_addr: Ipv4Addr::from(d),
                        protocol: IpProtocol::from(proto),
                        payload_len: len,
                        ttl,
                        dscp,
                        ecn,
                        ident: id,
                        dont_frag: df,
                        more_frags: mf,
                        frag_offset: off << 3,
                        options: Options::new(&opts).unwrap(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr()) {
            let mut buf = vec![0u8; r.total_len()];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(r.header_len()));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Repr::parse(&p), Ok(r));
        }

        #[test]
        fn views_over_random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let p = Packet::new_unchecked(&b[..]);
            let _ = (p.options(), p.payload(), p.verify_checksum(), p.src_addr(), p.frag_offset());
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = Repr::parse(&p);
                prop_assert!(p.payload().len() + p.header_len() <= b.len());
            }
        }
    }
}
