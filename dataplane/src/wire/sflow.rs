//! sFlow version 5 datagrams (sflow.org, "sFlow Version 5", 2004): what
//! fabric switches export about the packets they sample and the counters of
//! their interfaces. XDR throughout: big-endian 32-bit words, opaque data
//! padded to a multiple of 4.
//!
//! ```text
//! datagram: version(5) | agent address type (1 = IPv4, 2 = IPv6) | agent address
//!           | sub-agent id | sequence | uptime (ms) | sample count | samples…
//! sample (and each record inside one): data format (enterprise << 12 | format)
//!           | length | data
//! flow sample (1):       sequence | source id | sampling rate | sample pool
//!                        | drops | input | output | record count | records…
//! flow sample, expanded (3): sequence | source id type | source id index
//!                        | sampling rate | sample pool | drops | input format
//!                        | input | output format | output | record count | records…
//! counters sample (2):   sequence | source id | record count | records…
//! counters sample, expanded (4): sequence | source id type | source id index
//!                        | record count | records…
//! raw packet header (flow record 1): protocol | frame length | stripped
//!                        | header length | header bytes (padded)
//! ```
//!
//! Every view here is read-only and bounded by its buffer: a length field
//! pointing past the end is `Truncated`, a version, address type or count
//! that cannot be right is `Malformed`, never a panic. Unknown sample and
//! record formats are handed out as they are (`Record`) for the caller to
//! count and skip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{array_at, range, u32_at};
use super::{Error, Result};

/// The datagram version this view reads.
pub const VERSION: u32 = 5;

/// Agent address types.
pub const ADDRESS_IPV4: u32 = 1;
pub const ADDRESS_IPV6: u32 = 2;

/// Sample formats (enterprise 0).
pub mod sample_format {
    pub const FLOW: u32 = 1;
    pub const COUNTERS: u32 = 2;
    pub const FLOW_EXPANDED: u32 = 3;
    pub const COUNTERS_EXPANDED: u32 = 4;
}

/// Flow record formats (enterprise 0).
pub mod flow_format {
    pub const RAW_PACKET_HEADER: u32 = 1;
}

/// Counter record formats (enterprise 0).
pub mod counter_format {
    pub const GENERIC_INTERFACE: u32 = 1;
}

/// `header_protocol` of a raw packet header whose bytes start at Ethernet.
pub const HEADER_PROTOCOL_ETHERNET: u32 = 1;

/// Bytes of the datagram header before the agent address.
const PREFIX_LEN: usize = 8;
/// Bytes after the agent address: sub-agent, sequence, uptime, count.
const SUFFIX_LEN: usize = 16;
/// Bytes of a sample's or record's format and length words.
const RECORD_HEADER_LEN: usize = 8;
/// The smallest sample or record (its two header words).
const MIN_RECORD_LEN: usize = RECORD_HEADER_LEN;

/// A view of an sFlow v5 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Datagram<T> {
    pub const fn new_unchecked(buffer: T) -> Datagram<T> {
        Datagram { buffer }
    }

    /// The view, if the buffer holds a whole version-5 header with a known
    /// address type.
    pub fn new_checked(buffer: T) -> Result<Datagram<T>> {
        let d = Self::new_unchecked(buffer);
        d.check_len()?;
        Ok(d)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.b().len() < PREFIX_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != VERSION {
            return Err(Error::Malformed);
        }
        let Some(addr_len) = self.address_len() else {
            return Err(Error::Malformed);
        };
        if self.b().len() < PREFIX_LEN + addr_len + SUFFIX_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u32 {
        u32_at(self.b(), 0)
    }

    pub fn address_type(&self) -> u32 {
        u32_at(self.b(), 4)
    }

    fn address_len(&self) -> Option<usize> {
        match self.address_type() {
            ADDRESS_IPV4 => Some(4),
            ADDRESS_IPV6 => Some(16),
            _ => None,
        }
    }

    /// The switch's own address, as it reports it.
    pub fn agent_address(&self) -> Option<IpAddr> {
        match self.address_type() {
            ADDRESS_IPV4 => array_at::<4>(self.b(), PREFIX_LEN).map(|a| Ipv4Addr::from(*a).into()),
            ADDRESS_IPV6 => array_at::<16>(self.b(), PREFIX_LEN).map(|a| Ipv6Addr::from(*a).into()),
            _ => None,
        }
    }

    fn suffix(&self) -> usize {
        PREFIX_LEN + self.address_len().unwrap_or(0)
    }

    pub fn sub_agent_id(&self) -> u32 {
        u32_at(self.b(), self.suffix())
    }

    pub fn sequence(&self) -> u32 {
        u32_at(self.b(), self.suffix() + 4)
    }

    /// Milliseconds since the agent booted.
    pub fn uptime_ms(&self) -> u32 {
        u32_at(self.b(), self.suffix() + 8)
    }

    pub fn sample_count(&self) -> u32 {
        u32_at(self.b(), self.suffix() + 12)
    }

    /// Bytes of the header, where the samples start.
    pub fn header_len(&self) -> usize {
        self.suffix() + SUFFIX_LEN
    }

    /// The samples, as many as the count says.
    pub fn samples(&self) -> Records<'_> {
        Records::new(
            range(self.b(), self.header_len(), usize::MAX),
            self.sample_count(),
        )
    }
}

/// One sample of a datagram, or one record of a sample: its format and its
/// data, not yet interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub enterprise: u32,
    pub format: u32,
    pub data: &'a [u8],
}

impl Record<'_> {
    /// Whether this is the standard (enterprise 0) format `format`.
    pub fn is(&self, format: u32) -> bool {
        self.enterprise == 0 && self.format == format
    }
}

/// The records of a datagram or a sample, in order. A record whose length
/// runs past the buffer, or a count larger than what the buffer can hold,
/// ends the walk with one `Err`.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u32,
    failed: bool,
}

impl<'a> Records<'a> {
    fn new(rest: &'a [u8], count: u32) -> Records<'a> {
        Records {
            rest,
            left: count,
            failed: false,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        if self.rest.len() < MIN_RECORD_LEN {
            self.failed = true;
            return Some(Err(Error::Truncated));
        }
        let format = u32_at(self.rest, 0);
        let len = u32_at(self.rest, 4) as usize;
        let Some(data) = self.rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            self.failed = true;
            return Some(Err(Error::Truncated));
        };
        // XDR pads opaque data to 4 bytes; lengths here are already
        // multiples of 4 in practice, but a short final pad is tolerated.
        let next = (RECORD_HEADER_LEN + len + 3) & !3;
        self.rest = self.rest.get(next..).unwrap_or(&[]);
        self.left -= 1;
        Some(Ok(Record {
            enterprise: format >> 12,
            format: format & 0xfff,
            data,
        }))
    }
}

/// Reads consecutive XDR words, failing with `Truncated` at the end.
struct Words<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Words<'a> {
    fn new(b: &'a [u8]) -> Words<'a> {
        Words { b, at: 0 }
    }

    fn u32(&mut self) -> Result<u32> {
        let v = array_at::<4>(self.b, self.at).ok_or(Error::Truncated)?;
        self.at += 4;
        Ok(u32::from_be_bytes(*v))
    }

    fn u64(&mut self) -> Result<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    fn rest(&self) -> &'a [u8] {
        range(self.b, self.at, usize::MAX)
    }
}

/// What flow and counters samples start with: the sequence number and the
/// source id, packed in one word in the compact formats (type in the top
/// byte) and in two in the expanded ones. `w` is left after them.
struct SampleStart<'a> {
    expanded: bool,
    w: Words<'a>,
    sequence: u32,
    source_id_type: u32,
    source_id_index: u32,
}

impl<'a> SampleStart<'a> {
    /// `r`'s start, which must be of format `compact` or `expanded`.
    fn parse(r: &Record<'a>, compact: u32, expanded: u32) -> Result<SampleStart<'a>> {
        let expanded = if r.is(compact) {
            false
        } else if r.is(expanded) {
            true
        } else {
            return Err(Error::Malformed);
        };
        let mut w = Words::new(r.data);
        let sequence = w.u32()?;
        let (source_id_type, source_id_index) = if expanded {
            (w.u32()?, w.u32()?)
        } else {
            let s = w.u32()?;
            (s >> 24, s & 0x00ff_ffff)
        };
        Ok(SampleStart {
            expanded,
            w,
            sequence,
            source_id_type,
            source_id_index,
        })
    }
}

/// A flow sample, compact (format 1) or expanded (format 3): one sampled
/// packet and what the switch knew about it.
#[derive(Debug, Clone)]
pub struct FlowSample<'a> {
    pub sequence: u32,
    pub source_id_type: u32,
    pub source_id_index: u32,
    /// One packet in this many was sampled.
    pub sampling_rate: u32,
    /// Packets that could have been sampled (before sampling).
    pub sample_pool: u32,
    pub drops: u32,
    /// The input interface's ifIndex (0: unknown).
    pub input: u32,
    /// The output interface's ifIndex (0: unknown; see the spec's format bits).
    pub output: u32,
    pub records: Records<'a>,
}

impl<'a> FlowSample<'a> {
    /// The flow sample in `r`, which must be sample format 1 or 3.
    pub fn parse(r: &Record<'a>) -> Result<FlowSample<'a>> {
        let SampleStart {
            expanded,
            mut w,
            sequence,
            source_id_type,
            source_id_index,
        } = SampleStart::parse(r, sample_format::FLOW, sample_format::FLOW_EXPANDED)?;
        let sampling_rate = w.u32()?;
        let sample_pool = w.u32()?;
        let drops = w.u32()?;
        let (input, output) = if expanded {
            let (_, input, _, output) = (w.u32()?, w.u32()?, w.u32()?, w.u32()?);
            (input, output)
        } else {
            (w.u32()? & 0x3fff_ffff, w.u32()? & 0x3fff_ffff)
        };
        let count = w.u32()?;
        Ok(FlowSample {
            sequence,
            source_id_type,
            source_id_index,
            sampling_rate,
            sample_pool,
            drops,
            input,
            output,
            records: Records::new(w.rest(), count),
        })
    }
}

/// A counters sample, compact (format 2) or expanded (format 4).
#[derive(Debug, Clone)]
pub struct CountersSample<'a> {
    pub sequence: u32,
    pub source_id_type: u32,
    pub source_id_index: u32,
    pub records: Records<'a>,
}

impl<'a> CountersSample<'a> {
    /// The counters sample in `r`, which must be sample format 2 or 4.
    pub fn parse(r: &Record<'a>) -> Result<CountersSample<'a>> {
        let SampleStart {
            mut w,
            sequence,
            source_id_type,
            source_id_index,
            ..
        } = SampleStart::parse(r, sample_format::COUNTERS, sample_format::COUNTERS_EXPANDED)?;
        let count = w.u32()?;
        Ok(CountersSample {
            sequence,
            source_id_type,
            source_id_index,
            records: Records::new(w.rest(), count),
        })
    }
}

/// A raw packet header flow record: the first bytes of the sampled frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacketHeader<'a> {
    /// What `header` starts with (`HEADER_PROTOCOL_ETHERNET`, …).
    pub protocol: u32,
    /// The sampled frame's length on the wire (before `stripped`).
    pub frame_length: u32,
    /// Bytes removed before sampling (e.g. the FCS).
    pub stripped: u32,
    pub header: &'a [u8],
}

impl<'a> RawPacketHeader<'a> {
    /// The raw packet header in `r`, which must be flow record format 1.
    pub fn parse(r: &Record<'a>) -> Result<RawPacketHeader<'a>> {
        if !r.is(flow_format::RAW_PACKET_HEADER) {
            return Err(Error::Malformed);
        }
        let mut w = Words::new(r.data);
        let protocol = w.u32()?;
        let frame_length = w.u32()?;
        let stripped = w.u32()?;
        let len = w.u32()? as usize;
        let header = w.rest().get(..len).ok_or(Error::Truncated)?;
        Ok(RawPacketHeader {
            protocol,
            frame_length,
            stripped,
            header,
        })
    }
}

/// Generic interface counters (counter record format 1), RFC 2233's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfCounters {
    pub if_index: u32,
    pub if_type: u32,
    pub if_speed: u64,
    pub if_direction: u32,
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast_pkts: u32,
    pub in_multicast_pkts: u32,
    pub in_broadcast_pkts: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast_pkts: u32,
    pub out_multicast_pkts: u32,
    pub out_broadcast_pkts: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous_mode: u32,
}

impl IfCounters {
    /// The counters in `r`, which must be counter record format 1.
    pub fn parse(r: &Record<'_>) -> Result<IfCounters> {
        if !r.is(counter_format::GENERIC_INTERFACE) {
            return Err(Error::Malformed);
        }
        let mut w = Words::new(r.data);
        Ok(IfCounters {
            if_index: w.u32()?,
            if_type: w.u32()?,
            if_speed: w.u64()?,
            if_direction: w.u32()?,
            if_status: w.u32()?,
            in_octets: w.u64()?,
            in_ucast_pkts: w.u32()?,
            in_multicast_pkts: w.u32()?,
            in_broadcast_pkts: w.u32()?,
            in_discards: w.u32()?,
            in_errors: w.u32()?,
            in_unknown_protos: w.u32()?,
            out_octets: w.u64()?,
            out_ucast_pkts: w.u32()?,
            out_multicast_pkts: w.u32()?,
            out_broadcast_pkts: w.u32()?,
            out_discards: w.u32()?,
            out_errors: w.u32()?,
            promiscuous_mode: w.u32()?,
        })
    }
}

/// Builds sFlow v5 datagrams, for tests and for fuzz seeds: the writer
/// side of the views above, in the same XDR layout.
pub mod build {
    use std::net::IpAddr;

    fn word(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// One sample or record: format word, length, data padded to 4.
    pub fn record(enterprise: u32, format: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 12);
        word(&mut out, enterprise << 12 | format);
        let padded = (data.len() + 3) & !3;
        word(&mut out, padded as u32);
        out.extend_from_slice(data);
        out.resize(8 + padded, 0);
        out
    }

    /// A datagram from `agent` carrying `samples` (each from [`record`]).
    pub fn datagram(agent: IpAddr, sequence: u32, uptime_ms: u32, samples: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        word(&mut out, super::VERSION);
        match agent {
            IpAddr::V4(a) => {
                word(&mut out, super::ADDRESS_IPV4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                word(&mut out, super::ADDRESS_IPV6);
                out.extend_from_slice(&a.octets());
            }
        }
        for v in [0, sequence, uptime_ms, samples.len() as u32] {
            word(&mut out, v);
        }
        for s in samples {
            out.extend_from_slice(s);
        }
        out
    }

    /// A compact flow sample with one raw packet header record holding
    /// `frame` (whole: nothing stripped, frame length its length).
    pub fn flow_sample(sequence: u32, sampling_rate: u32, input: u32, frame: &[u8]) -> Vec<u8> {
        let mut hdr = Vec::new();
        for v in [
            super::HEADER_PROTOCOL_ETHERNET,
            frame.len() as u32,
            0,
            frame.len() as u32,
        ] {
            word(&mut hdr, v);
        }
        hdr.extend_from_slice(frame);
        let rec = record(0, super::flow_format::RAW_PACKET_HEADER, &hdr);
        let mut data = Vec::new();
        for v in [
            sequence,
            input,
            sampling_rate,
            sequence.wrapping_mul(sampling_rate),
            0,
            input,
            0,
            1,
        ] {
            word(&mut data, v);
        }
        data.extend_from_slice(&rec);
        record(0, super::sample_format::FLOW, &data)
    }

    /// A compact counters sample with generic interface counters for
    /// `if_index`: `in_octets` and `in_ucast` set, the rest zero.
    pub fn counters_sample(sequence: u32, if_index: u32, in_octets: u64, in_ucast: u32) -> Vec<u8> {
        let mut c = Vec::new();
        for v in [if_index, 6] {
            word(&mut c, v);
        }
        c.extend_from_slice(&10_000_000_000u64.to_be_bytes());
        for v in [1, 3] {
            word(&mut c, v);
        }
        c.extend_from_slice(&in_octets.to_be_bytes());
        word(&mut c, in_ucast);
        for _ in 0..5 {
            word(&mut c, 0);
        }
        c.extend_from_slice(&0u64.to_be_bytes());
        for _ in 0..6 {
            word(&mut c, 0);
        }
        let rec = record(0, super::counter_format::GENERIC_INTERFACE, &c);
        let mut data = Vec::new();
        for v in [sequence, if_index, 1] {
            word(&mut data, v);
        }
        data.extend_from_slice(&rec);
        record(0, super::sample_format::COUNTERS, &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: [u8; 20] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45, 0, 0, 40, 0, 1,
    ];

    fn sample_datagram() -> Vec<u8> {
        build::datagram(
            "192.0.2.1".parse().unwrap(),
            7,
            1000,
            &[
                build::flow_sample(1, 512, 3, &FRAME),
                build::counters_sample(2, 3, 123_456, 789),
            ],
        )
    }

    #[test]
    fn reads_a_datagram_with_a_flow_and_a_counters_sample() {
        let b = sample_datagram();
        let d = Datagram::new_checked(&b[..]).unwrap();
        assert_eq!(d.agent_address(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            (d.sequence(), d.uptime_ms(), d.sample_count()),
            (7, 1000, 2)
        );
        let samples: Vec<_> = d.samples().collect::<Result<_>>().unwrap();
        assert_eq!(samples.len(), 2);
        let f = FlowSample::parse(&samples[0]).unwrap();
        assert_eq!((f.sampling_rate, f.input, f.source_id_index), (512, 3, 3));
        let recs: Vec<_> = f.records.collect::<Result<_>>().unwrap();
        let h = RawPacketHeader::parse(&recs[0]).unwrap();
        assert_eq!(h.protocol, HEADER_PROTOCOL_ETHERNET);
        assert_eq!(h.frame_length, FRAME.len() as u32);
        assert_eq!(h.header, &FRAME[..]);
        let c = CountersSample::parse(&samples[1]).unwrap();
        let recs: Vec<_> = c.records.collect::<Result<_>>().unwrap();
        let ifc = IfCounters::parse(&recs[0]).unwrap();
        assert_eq!(
            (ifc.if_index, ifc.in_octets, ifc.in_ucast_pkts),
            (3, 123_456, 789)
        );
    }

    #[test]
    fn reads_an_ipv6_agent() {
        let b = build::datagram("2001:db8::1".parse().unwrap(), 1, 2, &[]);
        let d = Datagram::new_checked(&b[..]).unwrap();
        assert_eq!(d.agent_address(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(d.samples().count(), 0);
    }

    #[test]
    fn refuses_other_versions_and_address_types() {
        let mut b = sample_datagram();
        b[3] = 4;
        assert_eq!(Datagram::new_checked(&b[..]), Err(Error::Malformed));
        let mut b = sample_datagram();
        b[7] = 9;
        assert_eq!(Datagram::new_checked(&b[..]), Err(Error::Malformed));
        assert_eq!(Datagram::new_checked(&b[..5]), Err(Error::Truncated));
    }

    #[test]
    fn a_truncated_sample_ends_the_walk_with_an_error() {
        let b = sample_datagram();
        let cut = &b[..b.len() - 10];
        let d = Datagram::new_checked(cut).unwrap();
        let v: Vec<_> = d.samples().collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(Error::Truncated));
    }

    #[test]
    fn a_count_larger_than_the_samples_is_truncated() {
        let mut b = sample_datagram();
        // The sample count is the last header word.
        let at = Datagram::new_checked(&b[..]).unwrap().header_len() - 4;
        b[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
        let d = Datagram::new_checked(&b[..]).unwrap();
        let v: Vec<_> = d.samples().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], Err(Error::Truncated));
    }

    /// Walks everything the views can read, as the intake does.
    fn walk(b: &[u8]) {
        let Ok(d) = Datagram::new_checked(b) else {
            return;
        };
        let _ = (d.agent_address(), d.sequence(), d.uptime_ms());
        for s in d.samples().flatten() {
            if let Ok(f) = FlowSample::parse(&s) {
                for r in f.records.flatten() {
                    let _ = RawPacketHeader::parse(&r);
                }
            } else if let Ok(c) = CountersSample::parse(&s) {
                for r in c.records.flatten() {
                    let _ = IfCounters::parse(&r);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            walk(&b);
        }

        #[test]
        fn never_panics_on_a_damaged_datagram(at in 0usize..200, v: u8, cut in 0usize..200) {
            let mut b = sample_datagram();
            let at = at % b.len();
            b[at] = v;
            b.truncate(b.len().saturating_sub(cut));
            walk(&b);
        }
    }
}
