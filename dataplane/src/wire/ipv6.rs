//! IPv6 fixed header (RFC 8200) and its extension headers.
//!
//! Extension headers share one layout: next header, length, data. Their
//! length is counted in 8-byte units not counting the first 8, except AH
//! (RFC 4302) whose length is in 4-byte units minus 2, and the fragment
//! header, always 8 bytes. [`ext_header_len`] holds that rule once.

use super::bytes::{bytes_at, range, range_mut, set_bytes, set_u16, set_u32, set_u8, u16_at};
use super::bytes::{u32_at, u8_at};
use super::{ip_proto, Error, IpProtocol, Result};
use std::net::Ipv6Addr;

/// Where each field of the fixed header starts (smoltcp's `mod field`).
pub mod field {
    /// Version, traffic class and flow label.
    pub const VER_TC_FLOW: usize = 0;
    /// Payload length.
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
    /// First byte after the fixed header.
    pub const PAYLOAD: usize = 40;
}

/// Where each field of an extension header starts.
pub mod ext_field {
    pub const NXT_HDR: usize = 0;
    /// Length byte (units per [`super::ext_header_len`]).
    pub const LENGTH: usize = 1;
    /// The header's data (for a routing header, its type first).
    pub const DATA: usize = 2;
    /// Routing header: routing type.
    pub const ROUTING_TYPE: usize = 2;
    /// Routing header: segments left.
    pub const SEG_LEFT: usize = 3;
}

/// Where each field of a fragment header starts.
pub mod frag_field {
    pub const NXT_HDR: usize = 0;
    pub const RESERVED: usize = 1;
    /// Fragment offset (high 13 bits) and the M flag (bit 0).
    pub const FRAG_OFF: usize = 2;
    pub const IDENT: usize = 4;
}

/// Fragment offset bits (bytes, a multiple of 8) of a fragment header's
/// offset word.
pub const FRAG_OFFSET_MASK: u16 = 0xfff8;
/// More-fragments bit of a fragment header's offset word.
pub const FRAG_MORE: u16 = 0x0001;

/// Bytes in the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Bytes in a fragment header.
pub const FRAG_HEADER_LEN: usize = 8;
/// Extension headers [`skip_ext_headers`] follows before giving up: more is
/// either an attack or a broken stack (RFC 7112 limits the header chain).
pub const MAX_EXT_HEADERS: usize = 8;

/// The length, fixed header included, of an IPv6 packet whose payload-length
/// field holds `payload_len` and from whose first header byte `rest` bytes
/// of frame follow: 40 + the field, or all of `rest` when the field is 0.
/// Jumbograms (RFC 2675) and Linux BIG TCP/GSO packets carry 0 there. The
/// one place this rule is written; whether the result fits in `rest` is the
/// caller's check.
#[inline(always)]
pub const fn packet_len(payload_len: u16, rest: usize) -> usize {
    match payload_len {
        0 => rest,
        n => HEADER_LEN + n as usize,
    }
}

/// A view of an IPv6 packet's fixed header and what follows.
///
/// A payload length of 0 is read as "to the end of the buffer" (see
/// [`packet_len`]).
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

    /// The buffer must hold the fixed header and the payload length; more
    /// (Ethernet padding) is fine.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
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
        u8_at(self.b(), field::VER_TC_FLOW) >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (u16_at(self.b(), field::VER_TC_FLOW) >> 4) as u8
    }

    pub fn flow_label(&self) -> u32 {
        u32_at(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// The payload length field as it is (0 for jumbograms and GSO).
    pub fn payload_len(&self) -> u16 {
        u16_at(self.b(), field::LENGTH)
    }

    /// Bytes of the packet, fixed header included: 40 + payload length, or
    /// the whole buffer when that field is 0. Never more than the buffer.
    pub fn packet_len(&self) -> usize {
        let len = self.b().len();
        packet_len(self.payload_len(), len).min(len)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(u8_at(self.b(), field::NXT_HDR))
    }

    pub fn hop_limit(&self) -> u8 {
        u8_at(self.b(), field::HOP_LIMIT)
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes_at::<16>(self.b(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes_at::<16>(self.b(), field::DST_ADDR))
    }

    /// Everything after the fixed header up to the packet length: extension
    /// headers included.
    pub fn payload(&self) -> &[u8] {
        range(self.b(), HEADER_LEN, self.packet_len())
    }

    /// The upper-layer protocol and its offset from the start of this
    /// header, after skipping extension headers (see [`skip_ext_headers`]).
    pub fn upper_layer(&self) -> Result<(IpProtocol, usize)> {
        let (proto, off) = skip_ext_headers(self.payload(), self.next_header())?;
        Ok((proto, HEADER_LEN + off))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_version(&mut self, v: u8) {
        let b = (u8_at(self.b(), field::VER_TC_FLOW) & 0x0f) | (v << 4);
        set_u8(self.m(), field::VER_TC_FLOW, b);
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (u16_at(self.b(), field::VER_TC_FLOW) & 0xf00f) | (u16::from(tc) << 4);
        set_u16(self.m(), field::VER_TC_FLOW, w);
    }

    pub fn set_flow_label(&mut self, fl: u32) {
        let w = (u32_at(self.b(), field::VER_TC_FLOW) & 0xfff0_0000) | (fl & 0x000f_ffff);
        set_u32(self.m(), field::VER_TC_FLOW, w);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.m(), field::LENGTH, len);
    }

    pub fn set_next_header(&mut self, p: IpProtocol) {
        set_u8(self.m(), field::NXT_HDR, p.into());
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        set_u8(self.m(), field::HOP_LIMIT, h);
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        set_bytes(self.m(), field::SRC_ADDR, &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        set_bytes(self.m(), field::DST_ADDR, &a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.packet_len();
        range_mut(self.m(), HEADER_LEN, end)
    }
}

/// An IPv6 fixed header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// What follows the fixed header: an extension header or the upper layer.
    pub next_header: IpProtocol,
    /// Bytes after the fixed header. Above 65535 `emit` writes 0, as GSO does.
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
}

impl Repr {
    /// A plain header for tunnel encap: hop limit 64, class and label 0.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, payload_len: usize) -> Repr {
        Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.packet_len() - HEADER_LEN,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(6);
        p.set_traffic_class(self.traffic_class);
        p.set_flow_label(self.flow_label);
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(0));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let Some(h) = buf.get_mut(..HEADER_LEN) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut Packet::new_unchecked(h));
        Ok(HEADER_LEN)
    }
}

/// Whether `p` is an extension header with the common layout that a parser
/// can step over. ESP is not: what follows it is encrypted.
#[inline]
pub const fn is_ext_header(p: u8) -> bool {
    // Hop-by-hop, routing, fragment, AH, destination options, mobility,
    // HIP, shim6 (RFC 7045 §4 lists them).
    matches!(
        p,
        ip_proto::HOP_BY_HOP
            | ip_proto::IPV6_ROUTE
            | ip_proto::IPV6_FRAG
            | ip_proto::AH
            | ip_proto::IPV6_OPTS
            | ip_proto::MOBILITY
            | ip_proto::HIP
            | ip_proto::SHIM6
    )
}

/// Bytes of an extension header of protocol `p` whose length byte is
/// `len_byte`; `None` for a protocol that is not an extension header.
#[inline]
pub const fn ext_header_len(p: u8, len_byte: u8) -> Option<usize> {
    match p {
        ip_proto::IPV6_FRAG => Some(FRAG_HEADER_LEN),
        ip_proto::AH => Some((len_byte as usize + 2) * 4),
        p if is_ext_header(p) => Some((len_byte as usize + 1) * 8),
        _ => None,
    }
}

/// Steps over the extension headers at the front of `buf`, the first being
/// `first`. Returns the upper-layer protocol and its offset in `buf`.
/// Stops at a fragment header whose offset is not 0, returning
/// `(Ipv6Frag, its offset)`: a later fragment has no upper-layer header.
/// `Err(Truncated)` when a header runs past `buf`, `Err(Malformed)` after
/// [`MAX_EXT_HEADERS`].
pub fn skip_ext_headers(buf: &[u8], first: IpProtocol) -> Result<(IpProtocol, usize)> {
    let mut next = u8::from(first);
    let mut off = 0usize;
    for _ in 0..MAX_EXT_HEADERS {
        if !is_ext_header(next) {
            return Ok((IpProtocol::from(next), off));
        }
        let (Some(&nh), Some(&len_byte)) = (
            buf.get(off + ext_field::NXT_HDR),
            buf.get(off + ext_field::LENGTH),
        ) else {
            return Err(Error::Truncated);
        };
        let len = ext_header_len(next, len_byte).unwrap_or(FRAG_HEADER_LEN);
        if buf.len() < off + len {
            return Err(Error::Truncated);
        }
        if next == ip_proto::IPV6_FRAG
            && u16_at(buf, off + frag_field::FRAG_OFF) & FRAG_OFFSET_MASK != 0
        {
            return Ok((IpProtocol::Ipv6Frag, off));
        }
        next = nh;
        off += len;
    }
    if is_ext_header(next) {
        return Err(Error::Malformed);
    }
    Ok((IpProtocol::from(next), off))
}

/// A view of one extension header of a given kind (not ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    kind: IpProtocol,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// `kind` is the protocol number that announced this header.
    pub const fn new_unchecked(buffer: T, kind: IpProtocol) -> ExtHeader<T> {
        ExtHeader { buffer, kind }
    }

    pub fn new_checked(buffer: T, kind: IpProtocol) -> Result<ExtHeader<T>> {
        let h = Self::new_unchecked(buffer, kind);
        h.check_len()?;
        Ok(h)
    }

    /// `Malformed` if `kind` is not an extension header, `Truncated` if the
    /// buffer is shorter than the length field says.
    pub fn check_len(&self) -> Result<()> {
        if !is_ext_header(self.kind.into()) {
            return Err(Error::Malformed);
        }
        let b = self.buffer.as_ref();
        if b.len() < 2 || b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn kind(&self) -> IpProtocol {
        self.kind
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(u8_at(self.buffer.as_ref(), ext_field::NXT_HDR))
    }

    /// The raw length byte.
    pub fn len_field(&self) -> u8 {
        u8_at(self.buffer.as_ref(), ext_field::LENGTH)
    }

    /// Length in bytes by the rule of this kind.
    pub fn header_len(&self) -> usize {
        ext_header_len(self.kind.into(), self.len_field()).unwrap_or(0)
    }

    /// The bytes after next header and length: options, routing data, AH's
    /// SPI/sequence/ICV.
    pub fn data(&self) -> &[u8] {
        range(self.buffer.as_ref(), ext_field::DATA, self.header_len())
    }

    /// Routing header: routing type (4 = segment routing).
    pub fn routing_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), ext_field::ROUTING_TYPE)
    }

    /// Routing header: segments left.
    pub fn segments_left(&self) -> u8 {
        u8_at(self.buffer.as_ref(), ext_field::SEG_LEFT)
    }

    /// What follows this header.
    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    pub fn set_next_header(&mut self, p: IpProtocol) {
        set_u8(self.buffer.as_mut(), ext_field::NXT_HDR, p.into());
    }

    pub fn set_len_field(&mut self, n: u8) {
        set_u8(self.buffer.as_mut(), ext_field::LENGTH, n);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        range_mut(self.buffer.as_mut(), ext_field::DATA, hl)
    }
}

/// One extension header with opaque data (hop-by-hop, routing, destination
/// options, AH, mobility...). The fragment header has its own [`FragRepr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtRepr<'a> {
    pub kind: IpProtocol,
    pub next_header: IpProtocol,
    /// Bytes after next header and length.
    pub data: &'a [u8],
}

impl<'a> ExtRepr<'a> {
    /// Checks that `data` fits the length rule of `kind` (8-byte units, or
    /// 4-byte units for AH, at least 12 bytes for AH).
    pub fn new(kind: IpProtocol, next_header: IpProtocol, data: &'a [u8]) -> Result<ExtRepr<'a>> {
        let r = ExtRepr {
            kind,
            next_header,
            data,
        };
        if r.len_field().is_none() {
            return Err(Error::Malformed);
        }
        Ok(r)
    }

    /// The length byte that describes this header, if the data fits.
    fn len_field(&self) -> Option<u8> {
        let total = self.data.len() + 2;
        let k = u8::from(self.kind);
        let n = match k {
            44 => return None,
            51 if total & 3 == 0 && total >= 12 => total / 4 - 2,
            51 => return None,
            k if is_ext_header(k) && total & 7 == 0 => total / 8 - 1,
            _ => return None,
        };
        u8::try_from(n).ok()
    }

    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &ExtHeader<&'a T>) -> Result<ExtRepr<'a>> {
        h.check_len()?;
        if u8::from(h.kind) == 44 {
            return Err(Error::Malformed);
        }
        let b: &'a [u8] = T::as_ref(h.buffer);
        Ok(ExtRepr {
            kind: h.kind,
            next_header: h.next_header(),
            data: range(b, ext_field::DATA, h.header_len()),
        })
    }

    pub fn header_len(&self) -> usize {
        self.data.len() + 2
    }

    /// Writes the header. Data that does not fit its kind's length rule gets
    /// a length byte of 0 (`ExtRepr::new` refuses such data).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut ExtHeader<T>) {
        h.set_next_header(self.next_header);
        h.set_len_field(self.len_field().unwrap_or(0));
        set_bytes(h.buffer.as_mut(), ext_field::DATA, self.data);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let hl = self.header_len();
        let Some(h) = buf.get_mut(..hl) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut ExtHeader::new_unchecked(h, self.kind));
        Ok(hl)
    }
}

/// A view of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragHeader<T> {
    pub const fn new_unchecked(buffer: T) -> FragHeader<T> {
        FragHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<FragHeader<T>> {
        let h = Self::new_unchecked(buffer);
        if h.buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(h)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(u8_at(self.buffer.as_ref(), frag_field::NXT_HDR))
    }

    /// Offset of this fragment's data in bytes (the field × 8).
    pub fn frag_offset(&self) -> u16 {
        u16_at(self.buffer.as_ref(), frag_field::FRAG_OFF) & FRAG_OFFSET_MASK
    }

    pub fn more_frags(&self) -> bool {
        u16_at(self.buffer.as_ref(), frag_field::FRAG_OFF) & FRAG_MORE != 0
    }

    pub fn ident(&self) -> u32 {
        u32_at(self.buffer.as_ref(), frag_field::IDENT)
    }

    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), FRAG_HEADER_LEN, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragHeader<T> {
    pub fn set_next_header(&mut self, p: IpProtocol) {
        set_u8(self.buffer.as_mut(), frag_field::NXT_HDR, p.into());
    }

    /// Sets offset (bytes, rounded down to 8) and M together, reserved bits 0.
    pub fn set_offset_and_more(&mut self, offset: u16, more: bool) {
        set_u16(
            self.buffer.as_mut(),
            frag_field::FRAG_OFF,
            (offset & FRAG_OFFSET_MASK) | u16::from(more),
        );
    }

    pub fn set_ident(&mut self, id: u32) {
        set_u32(self.buffer.as_mut(), frag_field::IDENT, id);
    }
}

/// A fragment header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragRepr {
    pub next_header: IpProtocol,
    /// In bytes, a multiple of 8.
    pub frag_offset: u16,
    pub more_frags: bool,
    pub ident: u32,
}

impl FragRepr {
    pub fn parse<T: AsRef<[u8]>>(h: &FragHeader<T>) -> Result<FragRepr> {
        if h.buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(FragRepr {
            next_header: h.next_header(),
            frag_offset: h.frag_offset(),
            more_frags: h.more_frags(),
            ident: h.ident(),
        })
    }

    pub const fn header_len(&self) -> usize {
        FRAG_HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut FragHeader<T>) {
        h.set_next_header(self.next_header);
        set_u8(h.buffer.as_mut(), frag_field::RESERVED, 0);
        h.set_offset_and_more(self.frag_offset, self.more_frags);
        h.set_ident(self.ident);
    }

    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        let Some(h) = buf.get_mut(..FRAG_HEADER_LEN) else {
            return Err(Error::Truncated);
        };
        self.emit(&mut FragHeader::new_unchecked(h));
        Ok(FRAG_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixed(next: u8, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0] = 0x6a; // version 6, traffic class 0xab
        h[1] = 0xb1; // flow label 0x12345
        h[2] = 0x23;
        h[3] = 0x45;
        h[4..6].copy_from_slice(&payload_len.to_be_bytes());
        h[6] = next;
        h[7] = 255;
        h[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        h[24..40].copy_from_slice(&"ff02::2".parse::<Ipv6Addr>().unwrap().octets());
        h
    }

    #[test]
    fn reads_fixed_header() {
        let mut b = fixed(17, 8);
        b.extend([0u8; 8 + 6]); // 6 bytes of Ethernet padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr().to_string(), "2001:db8::1");
        assert_eq!(p.dst_addr().to_string(), "ff02::2");
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.upper_layer(), Ok((IpProtocol::Udp, 40)));
    }

    #[test]
    fn truncation_and_version() {
        let mut b = fixed(59, 4);
        b.extend([0u8; 4]);
        for n in 0..b.len() {
            assert_eq!(Packet::new_checked(&b[..n]), Err(Error::Truncated));
        }
        b[0] = 0x4a;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn ext_header_lengths() {
        assert_eq!(ext_header_len(0, 0), Some(8));
        assert_eq!(ext_header_len(43, 2), Some(24));
        assert_eq!(ext_header_len(44, 200), Some(8));
        assert_eq!(ext_header_len(51, 4), Some(24)); // AH: (4 + 2) × 4
        assert_eq!(ext_header_len(60, 255), Some(2048));
        assert_eq!(ext_header_len(6, 0), None);
        assert_eq!(ext_header_len(50, 0), None);
    }

    /// HBH(8) → routing(24) → AH(16) → fragment(8, offset 0, M) → dest opts(8) → TCP.
    fn chain() -> Vec<u8> {
        let mut c = vec![43, 0, 1, 4, 0, 0, 0, 0]; // HBH: PadN
        c.extend([51, 2, 0, 1]); // routing type 0, segments left 1
        c.extend([0u8; 20]);
        c.extend([44, 2, 0, 0, 0, 0, 0, 1]); // AH: SPI, then seq + 4 bytes ICV
        c.extend([0u8; 8]);
        c.extend([60, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // fragment M=1
        c.extend([6, 0, 1, 4, 0, 0, 0, 0]); // dest opts
        c
    }

    #[test]
    fn skips_every_kind_of_extension_header() {
        let c = chain();
        assert_eq!(c.len(), 64);
        assert_eq!(
            skip_ext_headers(&c, IpProtocol::HopByHop),
            Ok((IpProtocol::Tcp, 64))
        );
        for cut in [0, 1, 7, 8, 31, 47, 55, 63] {
            assert_eq!(
                skip_ext_headers(&c[..cut], IpProtocol::HopByHop),
                Err(Error::Truncated),
                "{cut}"
            );
        }
        let h = ExtHeader::new_checked(&c[8..], IpProtocol::Ipv6Route).unwrap();
        assert_eq!(h.header_len(), 24);
        assert_eq!(h.segments_left(), 1);
        let a = ExtHeader::new_checked(&c[32..], IpProtocol::Ah).unwrap();
        assert_eq!(a.header_len(), 16);
        assert_eq!(a.next_header(), IpProtocol::Ipv6Frag);
        let f = FragHeader::new_checked(&c[48..]).unwrap();
        assert_eq!(
            (f.frag_offset(), f.more_frags(), f.ident()),
            (0, true, 0xdeadbeef)
        );
    }

    #[test]
    fn later_fragment_stops_the_walk() {
        let mut c = chain();
        c[50] = 0x05; // offset 0x50 units
        assert_eq!(
            skip_ext_headers(&c, IpProtocol::HopByHop),
            Ok((IpProtocol::Ipv6Frag, 48))
        );
    }

    #[test]
    fn too_many_ext_headers_are_malformed() {
        // n destination-options headers, the last followed by TCP.
        let chain_of = |n: usize| {
            let mut c = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { 6 } else { 60 };
                c.extend([next, 0, 1, 4, 0, 0, 0, 0]);
            }
            c
        };
        let ok = chain_of(MAX_EXT_HEADERS);
        assert_eq!(
            skip_ext_headers(&ok, IpProtocol::Ipv6Opts),
            Ok((IpProtocol::Tcp, 8 * MAX_EXT_HEADERS))
        );
        let long = chain_of(MAX_EXT_HEADERS + 1);
        assert_eq!(
            skip_ext_headers(&long, IpProtocol::Ipv6Opts),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn ext_repr_refuses_bad_lengths() {
        assert!(ExtRepr::new(IpProtocol::HopByHop, IpProtocol::Tcp, &[0; 5]).is_err());
        assert!(ExtRepr::new(IpProtocol::Ah, IpProtocol::Tcp, &[0; 6]).is_err());
        assert!(ExtRepr::new(IpProtocol::Ah, IpProtocol::Tcp, &[0; 10]).is_ok());
        assert!(ExtRepr::new(IpProtocol::Tcp, IpProtocol::Tcp, &[0; 6]).is_err());
        assert!(ExtRepr::new(IpProtocol::Ipv6Frag, IpProtocol::Tcp, &[0; 6]).is_err());
    }

    fn repr() -> impl Strategy<Value = Repr> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u8>(),
            0usize..3000,
            any::<u8>(),
            any::<u8>(),
            0u32..(1 << 20),
        )
            .prop_map(|(s, d, nh, len, hl, tc, fl)| Repr {
                src_addr: Ipv6Addr::from(s),
                dst_addr: Ipv6Addr::from(d),
                next_header: IpProtocol::from(nh),
                // 0 would be read back as "to the end of the buffer": the same.
                payload_len: len,
                hop_limit: hl,
                traffic_class: tc,
                flow_label: fl,
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr()) {
            let mut buf = vec![0u8; HEADER_LEN + r.payload_len];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
        }

        #[test]
        fn ext_parse_emit_round_trip(
            kind in prop::sample::select(vec![0u8, 43, 51, 60, 135]),
            nh: u8,
            units in 0usize..6,
            fill: u8,
        ) {
            let len = if kind == 51 { 10 + units * 4 } else { 6 + units * 8 };
            let data = vec![fill; len];
            let r = ExtRepr::new(IpProtocol::from(kind), IpProtocol::from(nh), &data).unwrap();
            let mut buf = vec![0u8; r.header_len() + 3];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(len + 2));
            let h = ExtHeader::new_checked(&buf[..], IpProtocol::from(kind)).unwrap();
            prop_assert_eq!(h.header_len(), len + 2);
            prop_assert_eq!(ExtRepr::parse(&h), Ok(r));
        }

        #[test]
        fn frag_parse_emit_round_trip(nh: u8, off in 0u16..8192, m: bool, id: u32) {
            let r = FragRepr { next_header: IpProtocol::from(nh), frag_offset: off << 3, more_frags: m, ident: id };
            let mut buf = [0xffu8; FRAG_HEADER_LEN];
            prop_assert_eq!(r.emit_to(&mut buf), Ok(FRAG_HEADER_LEN));
            prop_assert_eq!(buf[1], 0);
            prop_assert_eq!(FragRepr::parse(&FragHeader::new_checked(&buf[..]).unwrap()), Ok(r));
        }

        #[test]
        fn skipping_random_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), first: u8) {
            if let Ok((_, off)) = skip_ext_headers(&b, IpProtocol::from(first)) {
                prop_assert!(off <= b.len());
            }
        }
    }
}
