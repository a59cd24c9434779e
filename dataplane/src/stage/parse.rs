//! parse: where every layer of a frame starts, in one pass.
//!
//! One hand-written forward walk over the bytes: Ethernet, up to
//! [`MAX_VLAN_TAGS`] VLAN tags, an MPLS stack of up to [`MAX_MPLS_LABELS`]
//! entries, IPv4 (options, fragments) or IPv6 (up to [`MAX_EXT_HEADERS`]
//! extension headers), then the TCP/UDP/SCTP/ICMP header. No allocation, no
//! general-purpose parser: this runs for every packet before filtering, so
//! it reads each header once and only the fields later stages use.
//!
//! It never reads past the frame and never panics; the first problem found
//! goes into [`Layers::error`] and what was found before it stays. Length
//! fields are trusted only to shrink what is looked at (Ethernet padding
//! after the IP packet is not L4), never to read further than the frame.
//!
//! A chained mbuf (a jumbo frame) is parsed from its first segment, where a
//! PMD puts at least the first 2 KiB and so every header, while lengths are
//! checked against the whole frame's `pkt_len`: the IP packet may run on
//! into later segments, which parse never walks. A header that itself
//! crosses out of the first segment is reported as cut short.

use crate::frame::Frame;
use crate::wire::bytes::{array_at, try_u16_at, u16_at, u32_at};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::ipv6::{ext_header_len, is_ext_header};
use crate::wire::{icmp, ip_proto, ipv4, ipv6, mpls, tcp, udp, vlan};
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// VLAN tags followed before giving up with [`ParseError::BadVlan`]. Real
/// networks stack two (QinQ), rarely three.
pub const MAX_VLAN_TAGS: usize = 8;
/// MPLS entries followed before giving up with [`ParseError::BadMpls`];
/// segment-routing stacks can be a dozen deep.
pub const MAX_MPLS_LABELS: usize = 16;
/// IPv6 extension headers followed before [`ParseError::BadExtHeader`].
pub const MAX_EXT_HEADERS: usize = crate::wire::ipv6::MAX_EXT_HEADERS;

const ETHERNET_HEADER_LEN: usize = ethernet::HEADER_LEN;
/// SCTP's common header: ports, verification tag, checksum.
const SCTP_HEADER_LEN: usize = 12;

/// What `parse` found in a frame. Offsets are from the start of the frame.
/// A field the frame does not have is zero / `None`.
///
/// Offsets fit in `u16` even for 64 KiB+ GSO frames: the deepest header
/// chain parse follows ends well below 20 KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// Number of 802.1Q/802.1ad/QinQ tags (0x8100, 0x88a8, 0x9100).
    pub vlan_count: u8,
    /// VLAN ID of the outermost tag.
    pub outer_vlan: Option<u16>,
    /// VLAN ID of the second tag (QinQ inner).
    pub inner_vlan: Option<u16>,
    /// EtherType after all VLAN tags (0x8847/0x8848 for MPLS).
    pub ethertype: u16,
    /// Number of MPLS labels before the payload.
    pub mpls_labels: u8,
    /// Start of the IP header, 0 when there is none.
    pub l3_offset: u16,
    /// 4, 6, or 0 when the frame carries no IP.
    pub ip_version: u8,
    /// Transport protocol after IPv6 extension headers (IP protocol number).
    /// For a later fragment, the fragment's next header (there is no
    /// transport header to check it against).
    pub l4_proto: u8,
    /// Start of the transport header, 0 when there is none. Set for every
    /// protocol, known or not, unless the packet is a later fragment.
    pub l4_offset: u16,
    /// First byte after every header parse understood (L4 payload). For an
    /// unknown transport protocol this is `l4_offset`; for a frame without
    /// IP, the end of the L2/MPLS headers; after an error, the end of the
    /// last header that was whole.
    pub payload_offset: u16,
    /// End of the IP packet: where its length field says it ends, or the
    /// end of the frame when that field is 0 (GSO, jumbograms). 0 when the
    /// frame has no IP header whose lengths parse could check (none, cut
    /// short, lying). Dedup's fingerprint covers the IP packet to here
    /// without reading its header again. A `u32`: a GSO super-frame's
    /// packet may end past 64 KiB (an mbuf's length is a `u32`).
    pub ip_end: u32,
    /// Source address: IPv4 in the low 32 bits, IPv6 as 128 bits.
    pub src_addr: u128,
    /// Destination address, same encoding as `src_addr`.
    pub dst_addr: u128,
    /// TCP/UDP/SCTP source port, 0 otherwise.
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port, 0 otherwise.
    pub dst_port: u16,
    /// TCP flags byte (CWR..FIN), 0 for non-TCP.
    pub tcp_flags: u8,
    /// IPv4 MF/offset or IPv6 fragment header seen.
    pub fragment: Fragment,
    /// The frame is malformed or truncated somewhere parse looked.
    pub error: Option<ParseError>,
}

impl Layers {
    /// The source address as a std type, when there is IP.
    pub fn src_ip(&self) -> Option<IpAddr> {
        self.addr(self.src_addr)
    }

    /// The destination address as a std type, when there is IP.
    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.addr(self.dst_addr)
    }

    fn addr(&self, a: u128) -> Option<IpAddr> {
        match self.ip_version {
            4 => Some(IpAddr::V4(Ipv4Addr::from(a as u32))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(a))),
            _ => None,
        }
    }
}

/// Fragment state of the IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment (an IPv6 atomic fragment, offset 0 without M, is whole).
    #[default]
    None,
    /// First fragment: offset 0, more fragments follow; L4 header present.
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// What was wrong with a frame. Parsing stops there; offsets found so far stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Shorter than an Ethernet header.
    TruncatedL2,
    /// More VLAN tags than parse follows, or a tag cut short.
    BadVlan,
    /// MPLS stack without bottom-of-stack, or cut short.
    BadMpls,
    /// IP header shorter than its minimum, bad version, or lengths that lie.
    BadL3,
    /// IPv6 extension-header chain that runs off the end or is too long.
    BadExtHeader,
    /// Transport header cut short (or a TCP data offset under 5).
    TruncatedL4,
}

impl ParseError {
    /// The stage's error counters, declared once (as a VPP node does): each
    /// error with its counter name and what it means. Order is the
    /// declaration order of the enum, which [`ParseError::index`] relies on.
    pub const TABLE: [(ParseError, &'static str, &'static str); 6] = [
        (
            ParseError::TruncatedL2,
            "truncated_l2",
            "frame shorter than an Ethernet header",
        ),
        (
            ParseError::BadVlan,
            "bad_vlan",
            "VLAN tag cut short or too many tags",
        ),
        (
            ParseError::BadMpls,
            "bad_mpls",
            "MPLS stack cut short or without bottom",
        ),
        (
            ParseError::BadL3,
            "bad_l3",
            "IP header truncated, wrong version or lying lengths",
        ),
        (
            ParseError::BadExtHeader,
            "bad_ext_header",
            "IPv6 extension headers run off the packet or are too many",
        ),
        (
            ParseError::TruncatedL4,
            "truncated_l4",
            "transport header cut short",
        ),
    ];

    /// Number of error kinds.
    pub const COUNT: usize = Self::TABLE.len();

    /// Position in [`ParseError::TABLE`] and in [`ParseCounters::errors`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Counter name, snake case.
    pub fn name(self) -> &'static str {
        Self::TABLE[self.index()].1
    }

    /// One line for operators.
    pub fn description(self) -> &'static str {
        Self::TABLE[self.index()].2
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for ParseError {}

/// Per-worker counters of the parse stage: plain adds, summed by the main
/// lcore with [`ParseCounters::add`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseCounters {
    /// Frames parsed, with or without error.
    pub parsed: u64,
    /// Frames per error kind, indexed by [`ParseError::index`].
    pub errors: [u64; ParseError::COUNT],
}

impl ParseCounters {
    /// Counts one parsed frame.
    #[inline]
    pub fn count(&mut self, l: &Layers) {
        self.parsed += 1;
        if let Some(e) = l.error {
            self.errors[e.index()] += 1;
        }
    }

    pub fn error(&self, e: ParseError) -> u64 {
        self.errors[e.index()]
    }

    /// Frames with any error: `parse_errors` in the packet accounting.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds another worker's counters.
    pub fn add(&mut self, other: &ParseCounters) {
        self.parsed += other.parsed;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
    }

    /// `("parsed", n)` then `(error name, n)` for every error kind.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        core::iter::once(("parsed", self.parsed)).chain(
            ParseError::TABLE
                .iter()
                .map(|&(e, name, _)| (name, self.errors[e.index()])),
        )
    }
}

/// Parses a burst: `out[i] = parse(frames[i])` for as many as both slices
/// hold, counting each. Returns that number.
pub fn parse_burst(frames: &[&[u8]], out: &mut [Layers], counters: &mut ParseCounters) -> usize {
    let n = frames.len().min(out.len());
    for (f, l) in frames.iter().zip(out.iter_mut()) {
        parse_to(f, f.len(), l);
        counters.count(l);
    }
    n
}

/// [`parse_burst`] over [`Frame`]s (mbufs on the appliance): see
/// [`parse_frame`].
pub fn parse_frames<F: Frame>(
    frames: &[F],
    out: &mut [Layers],
    counters: &mut ParseCounters,
) -> usize {
    let n = frames.len().min(out.len());
    for (f, l) in frames.iter().zip(out.iter_mut()) {
        parse_to(f.data(), f.pkt_len(), l);
        counters.count(l);
    }
    n
}

/// Finds every layer of one Ethernet frame held in one slice. See the
/// module docs.
#[inline]
pub fn parse(frame: &[u8]) -> Layers {
    let mut l = Layers::default();
    parse_to(frame, frame.len(), &mut l);
    l
}

/// [`parse`] of a [`Frame`], chained or not: its first segment's bytes,
/// checked against its whole length.
#[inline]
pub fn parse_frame<F: Frame>(frame: &F) -> Layers {
    let mut l = Layers::default();
    parse_to(frame.data(), frame.pkt_len(), &mut l);
    l
}

/// Parses a frame of `pkt_len` bytes whose first `head.len()` bytes are
/// `head` (all of it unless chained) into a slot the caller owns, e.g. the
/// burst's output array.
///
/// Filling the slot in place matters for speed: building a `Layers` on the
/// stack with narrow field stores and then copying it out with wide loads
/// defeats store-to-load forwarding and cost half of the stage's time.
#[inline(always)]
pub fn parse_to(head: &[u8], pkt_len: usize, l: &mut Layers) {
    *l = Layers::default();
    // A frame is never shorter than its first segment; a caller's wrong
    // length must not make parse trust bytes that are not there.
    if let Err(e) = parse_into(head, pkt_len.max(head.len()), l) {
        l.error = Some(e);
    }
}

/// Offsets are stored as `u16`; every one parse produces is below 20 KiB
/// (see [`Layers`]), so this never truncates.
#[inline(always)]
fn off16(at: usize) -> u16 {
    at as u16
}

/// [`Layers::ip_end`] of an IP packet ending at `end`, which is at most the
/// frame's length: a `u32` on the appliance (an mbuf's `pkt_len`).
#[inline(always)]
fn ip_end(end: usize) -> u32 {
    end as u32
}

/// `f` is the first segment, `len` (at least `f.len()`) the frame's length.
#[inline(always)]
fn parse_into(f: &[u8], len: usize, l: &mut Layers) -> Result<(), ParseError> {
    let Some(ethertype) = try_u16_at(f, ethernet::field::ETHERTYPE) else {
        return Err(ParseError::TruncatedL2);
    };
    l.ethertype = ethertype;
    l.payload_offset = off16(ETHERNET_HEADER_LEN);
    // Untagged IP first: it is most of the traffic, and testing it before
    // the three TPIDs keeps the common path to one compare.
    match ethertype {
        ethertype::IPV4 => ipv4(f, len, ETHERNET_HEADER_LEN, l),
        ethertype::IPV6 => ipv6(f, len, ETHERNET_HEADER_LEN, l),
        _ => tagged(f, len, ethertype, l),
    }
}

/// VLAN tags, then what follows them.
#[inline(never)]
fn tagged(f: &[u8], len: usize, mut ethertype: u16, l: &mut Layers) -> Result<(), ParseError> {
    let mut off = ETHERNET_HEADER_LEN;
    while vlan::is_tpid(ethertype) {
        if usize::from(l.vlan_count) == MAX_VLAN_TAGS {
            return Err(ParseError::BadVlan);
        }
        let Some(&[t0, t1, e0, e1]) = array_at::<{ vlan::HEADER_LEN }>(f, off) else {
            return Err(ParseError::BadVlan);
        };
        let vid = u16::from_be_bytes([t0, t1]) & 0x0fff;
        match l.vlan_count {
            0 => l.outer_vlan = Some(vid),
            1 => l.inner_vlan = Some(vid),
            _ => {}
        }
        l.vlan_count += 1;
        ethertype = u16::from_be_bytes([e0, e1]);
        off += vlan::HEADER_LEN;
        l.ethertype = ethertype;
        l.payload_offset = off16(off);
    }
    match ethertype {
        ethertype::IPV4 => ipv4(f, len, off, l),
        ethertype::IPV6 => ipv6(f, len, off, l),
        ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => mpls(f, len, off, l),
        _ => Ok(()),
    }
}

/// The label stack, then IP guessed from the first nibble after its bottom
/// (what Linux and Wireshark do: MPLS does not say what it carries). A
/// pseudowire control word (nibble 0) or anything else is left as payload.
#[inline(never)]
fn mpls(f: &[u8], len: usize, mut off: usize, l: &mut Layers) -> Result<(), ParseError> {
    loop {
        if usize::from(l.mpls_labels) == MAX_MPLS_LABELS {
            return Err(ParseError::BadMpls);
        }
        let Some(&[_, _, tc_s, _]) = array_at::<{ mpls::HEADER_LEN }>(f, off) else {
            return Err(ParseError::BadMpls);
        };
        l.mpls_labels += 1;
        off += mpls::HEADER_LEN;
        l.payload_offset = off16(off);
        if tc_s & 0x01 != 0 {
            break;
        }
    }
    match f.get(off).map(|b| b >> 4) {
        Some(4) => ipv4(f, len, off, l),
        Some(6) => ipv6(f, len, off, l),
        _ => Ok(()),
    }
}

#[inline(always)]
fn ipv4(f: &[u8], len: usize, l3: usize, l: &mut Layers) -> Result<(), ParseError> {
    l.l3_offset = off16(l3);
    let Some(h) = array_at::<{ ipv4::MIN_HEADER_LEN }>(f, l3) else {
        return Err(ParseError::BadL3);
    };
    let ver_ihl = h[ipv4::field::VER_IHL];
    if ver_ihl >> 4 != 4 {
        return Err(ParseError::BadL3);
    }
    l.ip_version = 4;
    l.src_addr = u128::from(u32_at(h, ipv4::field::SRC_ADDR));
    l.dst_addr = u128::from(u32_at(h, ipv4::field::DST_ADDR));
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    // `len > l3`: the header was read from `f`, which `len` covers.
    let avail = len - l3;
    let ip_len = ipv4::packet_len(u16_at(h, ipv4::field::LENGTH), avail);
    if header_len < ipv4::MIN_HEADER_LEN || ip_len < header_len || ip_len > avail {
        return Err(ParseError::BadL3);
    }
    l.ip_end = ip_end(l3 + ip_len);
    let proto = h[ipv4::field::PROTOCOL];
    l.l4_proto = proto;
    let l4 = l3 + header_len;
    l.payload_offset = off16(l4);
    let frag = u16_at(h, ipv4::field::FLG_OFF);
    if frag & ipv4::OFFSET_MASK != 0 {
        l.fragment = Fragment::Later;
        return Ok(());
    }
    if frag & ipv4::FLAG_MF != 0 {
        l.fragment = Fragment::First;
    }
    transport(f, l3 + ip_len, l4, proto, l)
}

#[inline(always)]
fn ipv6(f: &[u8], len: usize, l3: usize, l: &mut Layers) -> Result<(), ParseError> {
    l.l3_offset = off16(l3);
    let Some(h) = array_at::<{ ipv6::HEADER_LEN }>(f, l3) else {
        return Err(ParseError::BadL3);
    };
    if h[ipv6::field::VER_TC_FLOW] >> 4 != 6 {
        return Err(ParseError::BadL3);
    }
    l.ip_version = 6;
    let (src, dst) = h[ipv6::field::SRC_ADDR..].split_at(16);
    l.src_addr = u128::from_be_bytes(src.try_into().unwrap_or_default());
    l.dst_addr = u128::from_be_bytes(dst.try_into().unwrap_or_default());
    let avail = len - l3;
    let ip_len = ipv6::packet_len(u16_at(h, ipv6::field::LENGTH), avail);
    if ip_len > avail {
        return Err(ParseError::BadL3);
    }
    let end = l3 + ip_len;
    l.ip_end = ip_end(end);
    let mut next = h[ipv6::field::NXT_HDR];
    let mut off = l3 + ipv6::HEADER_LEN;
    l.payload_offset = off16(off);
    if is_ext_header(next) {
        match ext_headers(f, end, off, next, l)? {
            Some((n, o)) => (next, off) = (n, o),
            None => return Ok(()),
        }
    }
    l.l4_proto = next;
    transport(f, end, off, next, l)
}

/// Walks the extension headers from `off` (the first being `next`) and
/// returns the upper-layer protocol and its offset, or `None` for a later
/// fragment, whose `Layers` it has filled. Out of line: most packets have no
/// extension header, and the hot path stays short without this loop.
#[inline(never)]
fn ext_headers(
    f: &[u8],
    end: usize,
    mut off: usize,
    mut next: u8,
    l: &mut Layers,
) -> Result<Option<(u8, usize)>, ParseError> {
    // Bounded by the IP payload, not the frame: headers that spill into
    // Ethernet padding are as broken as headers past the end. Read from
    // the first segment only (`end` may lie in a later one).
    let ip = f.get(..end.min(f.len())).unwrap_or(&[]);
    for _ in 0..MAX_EXT_HEADERS {
        let Some(&[nh, len_byte]) = array_at::<2>(ip, off) else {
            return Err(ParseError::BadExtHeader);
        };
        let len = ext_header_len(next, len_byte).unwrap_or(8);
        if off + len > end {
            return Err(ParseError::BadExtHeader);
        }
        if next == ip_proto::IPV6_FRAG {
            let word = u16_at(ip, off + ipv6::frag_field::FRAG_OFF);
            if word & ipv6::FRAG_OFFSET_MASK != 0 {
                l.fragment = Fragment::Later;
                l.l4_proto = nh;
                l.payload_offset = off16(off + len);
                return Ok(None);
            }
            if word & ipv6::FRAG_MORE != 0 {
                l.fragment = Fragment::First;
            }
        }
        next = nh;
        off += len;
        l.payload_offset = off16(off);
        if !is_ext_header(next) {
            return Ok(Some((next, off)));
        }
    }
    Err(ParseError::BadExtHeader)
}

/// The transport header at `l4`, which must end by `end` (the end of the IP
/// packet) and be in the first segment `f`.
#[inline(always)]
fn transport(f: &[u8], end: usize, l4: usize, proto: u8, l: &mut Layers) -> Result<(), ParseError> {
    l.l4_offset = off16(l4);
    let seg = f.get(l4..end.min(f.len())).unwrap_or(&[]);
    let len = match proto {
        ip_proto::UDP => udp::HEADER_LEN,
        ip_proto::TCP => match seg.first_chunk::<{ tcp::MIN_HEADER_LEN }>() {
            Some(h) => {
                l.tcp_flags = h[tcp::field::FLAGS];
                // A data offset under 5 cannot hold the fixed header; it is
                // reported like a cut header (nothing after it is usable).
                match usize::from(h[tcp::field::DATA_OFF] >> 4) * 4 {
                    n if n < tcp::MIN_HEADER_LEN => 0,
                    n => n,
                }
            }
            None => tcp::MIN_HEADER_LEN,
        },
        ip_proto::SCTP => SCTP_HEADER_LEN,
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            if seg.len() < icmp::HEADER_LEN {
                return Err(ParseError::TruncatedL4);
            }
            l.payload_offset = off16(l4 + icmp::HEADER_LEN);
            return Ok(());
        }
        _ => return Ok(()),
    };
    // TCP, UDP and SCTP all start with the two ports; keep them even when
    // the rest is cut short, they are what filters match on.
    if let Some(&[s0, s1, d0, d1]) = seg.first_chunk::<4>() {
        l.src_port = u16::from_be_bytes([s0, s1]);
        l.dst_port = u16::from_be_bytes([d0, d1]);
    }
    if len == 0 || seg.len() < len {
        return Err(ParseError::TruncatedL4);
    }
    l.payload_offset = off16(l4 + len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_table_matches_the_enum_order() {
        for (i, (e, name, desc)) in ParseError::TABLE.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.name(), *name);
            assert_eq!(e.to_string(), *desc);
        }
        let names: std::collections::HashSet<_> = ParseError::TABLE.iter().map(|t| t.1).collect();
        assert_eq!(names.len(), ParseError::COUNT);
    }

    #[test]
    fn counters_count_each_error_kind_and_sum() {
        let mut c = ParseCounters::default();
        c.count(&Layers::default());
        c.count(&Layers {
            error: Some(ParseError::BadL3),
            ..Layers::default()
        });
        c.count(&Layers {
            error: Some(ParseError::BadL3),
            ..Layers::default()
        });
        assert_eq!(c.parsed, 3);
        assert_eq!(c.error(ParseError::BadL3), 2);
        assert_eq!(c.total_errors(), 2);
        let mut total = ParseCounters::default();
        total.add(&c);
        total.add(&c);
        assert_eq!(total.error(ParseError::BadL3), 4);
        let v: Vec<_> = total.iter().collect();
        assert_eq!(v[0], ("parsed", 6));
        assert!(v.contains(&("bad_l3", 4)));
        assert!(v.contains(&("truncated_l4", 0)));
        assert_eq!(v.len(), 1 + ParseError::COUNT);
    }
}
