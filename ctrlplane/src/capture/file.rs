//! Reads pcap and pcapng files as libpcap does: every record with its link
//! type, FCS length and capture time, whatever the file's byte order and
//! time resolution.
//!
//! - pcap (pcap-savefile(5)): µs or ns magic, either byte order, and the
//!   "modified" (Kuznetzov) variant with its longer record header. The
//!   link-type field's low 16 bits are the link type; when its P bit
//!   (0x0400_0000) is set, its top 4 bits give the FCS length in 16-bit
//!   words at the end of every frame.
//! - pcapng: sections, interfaces (`if_tsresol`, `if_tsoffset`, `if_fcslen`
//!   in bits), enhanced, simple and obsolete packet blocks (`epb_flags` FCS
//!   length in bytes). Unknown options and blocks are skipped, as libpcap
//!   skips them; only a block that cannot be framed ends the file.
//!
//! A record cut short by the end of the file ends it (a capture that was
//! still being written); see [`CaptureReader::truncated`].

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use thiserror::Error;

/// Largest record or block accepted: libpcap's own bound for pcapng
/// blocks (16 MiB); anything bigger is a corrupt length field.
const MAX_RECORD: usize = 16 << 20;

/// Why a capture file cannot be read (further).
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("neither pcap nor pcapng (first bytes {0:02x?})")]
    NotACapture([u8; 4]),
    #[error("{0}")]
    Corrupt(String),
}

/// A record's link layer: the link type and the FCS bytes at the end of
/// each frame (0: none, or not known to be there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub link_type: u16,
    pub fcs_bytes: u8,
}

/// One captured frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub link: Link,
    /// Capture time, ns since the epoch.
    pub time_ns: u64,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
}

impl Record<'_> {
    /// The captured bytes without the FCS, where the link says one is
    /// there: the FCS is the last `fcs_bytes` of the frame on the wire, so
    /// a frame cut short by the snapshot length may hold part of it or none.
    pub fn without_fcs(&self) -> &[u8] {
        let fcs = u32::from(self.link.fcs_bytes);
        let keep = (self.orig_len.saturating_sub(fcs) as usize).min(self.data.len());
        &self.data[..keep]
    }
}

/// A record found in `buf`: link, time, offset and length of its data,
/// length on the wire.
type Found = (Link, u64, usize, usize, u32);

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Link,
    /// Timestamp units: 10^-n s, or 2^-n s when `binary`.
    resol: u8,
    binary: bool,
    offset_s: i64,
    snaplen: u32,
}

enum Format {
    Pcap {
        swapped: bool,
        nanos: bool,
        /// Kuznetzov's modified pcap: 8 more bytes per record header.
        modified: bool,
        link: Link,
    },
    PcapNg {
        swapped: bool,
        interfaces: Vec<Interface>,
        /// The last packet's time, for simple packet blocks (which have none).
        last_ns: u64,
    },
}

/// A pcap or pcapng file, record by record.
pub struct CaptureReader<R: Read> {
    input: R,
    format: Format,
    buf: Vec<u8>,
    /// A pcapng packet block read ahead (its body in `buf`).
    pending: Option<u32>,
    truncated: bool,
}

impl CaptureReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        CaptureReader::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of input
/// (nothing read), `Err(UnexpectedEof)` when it ends part-way.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn u16_at(b: &[u8], at: usize, swapped: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if swapped {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, swapped: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if swapped {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAP_MODIFIED: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

/// pcap's link-type field: the low 16 bits, and the FCS length when the
/// P bit says it is known.
pub fn pcap_link(field: u32) -> Link {
    let fcs_bytes = if field & 0x0400_0000 != 0 {
        ((field >> 28) * 2) as u8
    } else {
        0
    };
    Link {
        link_type: field as u16,
        fcs_bytes,
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header (pcap) or first section header (pcapng).
    pub fn new(mut input: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        if !read_full(&mut input, &mut magic)? {
            return Err(CaptureError::Corrupt("empty file".into()));
        }
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let pcap = |m: u32| matches!(m, PCAP_US | PCAP_NS | PCAP_MODIFIED);
        let mut r = if pcap(le) || pcap(be) {
            let swapped = !pcap(le);
            let magic = if swapped { be } else { le };
            let mut h = [0u8; 20];
            if !read_full(&mut input, &mut h)? {
                return Err(CaptureError::Corrupt("pcap file header cut short".into()));
            }
            CaptureReader {
                input,
                format: Format::Pcap {
                    swapped,
                    nanos: magic == PCAP_NS,
                    modified: magic == PCAP_MODIFIED,
                    link: pcap_link(u32_at(&h, 16, swapped)),
                },
                buf: Vec::new(),
                pending: None,
                truncated: false,
            }
        } else if le == PCAPNG_SHB {
            let mut len_field = [0u8; 4];
            if !read_full(&mut input, &mut len_field)? {
                return Err(CaptureError::Corrupt(
                    "pcapng section header cut short".into(),
                ));
            }
            let mut r = CaptureReader {
                input,
                format: Format::PcapNg {
                    swapped: false,
                    interfaces: Vec::new(),
                    last_ns: 0,
                },
                buf: Vec::new(),
                pending: None,
                truncated: false,
            };
            r.section(len_field)?;
            r
        } else {
            return Err(CaptureError::NotACapture(magic));
        };
        r.buf.reserve(1 << 16);
        Ok(r)
    }

    /// The file's link type: pcap's, or that of pcapng's interfaces defined
    /// before its first packet (more may follow later in the file).
    pub fn links(&mut self) -> Result<Vec<Link>, CaptureError> {
        if let Format::Pcap { link, .. } = &self.format {
            return Ok(vec![*link]);
        }
        // Interfaces are defined before the packets that use them.
        match self.peek_interfaces() {
            Err(CaptureError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.truncated = true;
            }
            r => r?,
        }
        Ok(match &self.format {
            Format::PcapNg { interfaces, .. } => interfaces.iter().map(|i| i.link).collect(),
            Format::Pcap { .. } => Vec::new(),
        })
    }

    /// Whether the last record was cut short by the end of the file (it
    /// was dropped, and reading stopped there).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, CaptureError> {
        let got = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match got {
            Err(CaptureError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.truncated = true;
                Ok(None)
            }
            Err(e) => Err(e),
            Ok(None) => Ok(None),
            Ok(Some((link, time_ns, at, len, orig_len))) => Ok(Some(Record {
                link,
                time_ns,
                data: &self.buf[at..at + len],
                orig_len,
            })),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Found>, CaptureError> {
        let Format::Pcap {
            swapped,
            nanos,
            modified,
            link,
        } = self.format
        else {
            return Ok(None);
        };
        let mut h = [0u8; 24];
        let hlen = if modified { 24 } else { 16 };
        if !read_full(&mut self.input, &mut h[..hlen])? {
            return Ok(None);
        }
        let sec = u64::from(u32_at(&h, 0, swapped));
        let frac = u64::from(u32_at(&h, 4, swapped));
        let caplen = u32_at(&h, 8, swapped) as usize;
        let orig_len = u32_at(&h, 12, swapped);
        if caplen > MAX_RECORD {
            return Err(CaptureError::Corrupt(format!(
                "a record says it holds {caplen} bytes"
            )));
        }
        self.buf.resize(caplen, 0);
        if !read_full(&mut self.input, &mut self.buf)? && caplen > 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let time_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        Ok(Some((link, time_ns, 0, caplen, orig_len)))
    }

    /// Reads one pcapng block into `buf` (its body, after type and length).
    /// `Ok(None)` at the end of the file.
    fn block(&mut self) -> Result<Option<u32>, CaptureError> {
        let Format::PcapNg { swapped, .. } = self.format else {
            return Ok(None);
        };
        let mut h = [0u8; 8];
        if !read_full(&mut self.input, &mut h)? {
            return Ok(None);
        }
        let kind = u32_at(&h, 0, swapped);
        if kind == PCAPNG_SHB {
            self.section([h[4], h[5], h[6], h[7]])?;
            return Ok(Some(PCAPNG_SHB));
        }
        let len = u32_at(&h, 4, swapped) as usize;
        if !(12..=MAX_RECORD).contains(&len) || !len.is_multiple_of(4) {
            return Err(CaptureError::Corrupt(format!(
                "pcapng block of type {kind:#x} has length {len}"
            )));
        }
        self.buf.resize(len - 8, 0);
        if !read_full(&mut self.input, &mut self.buf)? {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        // The trailing length copy is the block's last 4 bytes.
        self.buf.truncate(len - 12);
        Ok(Some(kind))
    }

    /// A section header block whose type and length field were read:
    /// byte order, then skip the rest. Interfaces are per section.
    fn section(&mut self, len_field: [u8; 4]) -> Result<(), CaptureError> {
        let mut bom = [0u8; 4];
        if !read_full(&mut self.input, &mut bom)? {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let swapped = match u32::from_le_bytes(bom) {
            PCAPNG_BOM => false,
            b if b.swap_bytes() == PCAPNG_BOM => true,
            _ => {
                return Err(CaptureError::Corrupt(
                    "pcapng section header without its byte-order magic".into(),
                ))
            }
        };
        let len = u32_at(&len_field, 0, swapped) as usize;
        if !(28..=MAX_RECORD).contains(&len) || !len.is_multiple_of(4) {
            return Err(CaptureError::Corrupt(format!(
                "pcapng section header has length {len}"
            )));
        }
        self.buf.resize(len - 12, 0);
        if !read_full(&mut self.input, &mut self.buf)? {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        self.format = Format::PcapNg {
            swapped,
            interfaces: Vec::new(),
            last_ns: 0,
        };
        Ok(())
    }

    /// Reads interface blocks up to the first packet block, which stays
    /// in `buf` for `next_record` (`pending`).
    fn peek_interfaces(&mut self) -> Result<(), CaptureError> {
        while self.pending.is_none() {
            match self.block()? {
                None => break,
                Some(IDB) => self.interface()?,
                Some(kind @ (EPB | SPB | OPB)) => self.pending = Some(kind),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// An interface description block in `buf`.
    fn interface(&mut self) -> Result<(), CaptureError> {
        let Format::PcapNg {
            swapped,
            interfaces,
            ..
        } = &mut self.format
        else {
            return Ok(());
        };
        let b = &self.buf;
        if b.len() < 8 {
            return Err(CaptureError::Corrupt(
                "pcapng interface block too short".into(),
            ));
        }
        let mut iface = Interface {
            link: Link {
                link_type: u16_at(b, 0, *swapped),
                fcs_bytes: 0,
            },
            resol: 6,
            binary: false,
            offset_s: 0,
            snaplen: u32_at(b, 4, *swapped),
        };
        for (code, v) in options(&b[8..], *swapped) {
            match (code, v.len()) {
                (IF_TSRESOL, 1..) => {
                    iface.binary = v[0] & 0x80 != 0;
                    iface.resol = v[0] & 0x7f;
                }
                // In bits (the pcapng specification).
                (IF_FCSLEN, 1..) => iface.link.fcs_bytes = v[0] / 8,
                (IF_TSOFFSET, 8..) => {
                    let w = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
                    iface.offset_s = if *swapped {
                        i64::from_be_bytes(w)
                    } else {
                        i64::from_le_bytes(w)
                    };
                }
                _ => {}
            }
        }
        interfaces.push(iface);
        Ok(())
    }

    fn next_pcapng(&mut self) -> Result<Option<Found>, CaptureError> {
        loop {
            let kind = match self.pending.take() {
                Some(k) => k,
                None => match self.block()? {
                    None => return Ok(None),
                    Some(k) => k,
                },
            };
            match kind {
                IDB => self.interface()?,
                EPB | OPB | SPB => {
                    if let Some(r) = self.packet(kind)? {
                        return Ok(Some(r));
                    }
                }
                // Section headers were handled by `block`; statistics,
                // name resolution, journal, custom and unknown blocks
                // carry no packet.
                _ => {}
            }
        }
    }

    /// A packet block in `buf`; `None` when it names no known interface
    /// (skipped, as libpcap refuses the file there but tshark goes on).
    fn packet(&mut self, kind: u32) -> Result<Option<Found>, CaptureError> {
        let Format::PcapNg {
            swapped,
            interfaces,
            last_ns,
        } = &mut self.format
        else {
            return Ok(None);
        };
        let sw = *swapped;
        let b = &self.buf;
        let short =
            || CaptureError::Corrupt(format!("pcapng packet block of type {kind} too short"));
        let (iface_id, ts, caplen, orig_len, at) = match kind {
            EPB => {
                if b.len() < 20 {
                    return Err(short());
                }
                let ts = u64::from(u32_at(b, 4, sw)) << 32 | u64::from(u32_at(b, 8, sw));
                (
                    u32_at(b, 0, sw) as usize,
                    Some(ts),
                    u32_at(b, 12, sw) as usize,
                    u32_at(b, 16, sw),
                    20,
                )
            }
            OPB => {
                if b.len() < 20 {
                    return Err(short());
                }
                let ts = u64::from(u32_at(b, 4, sw)) << 32 | u64::from(u32_at(b, 8, sw));
                (
                    usize::from(u16_at(b, 0, sw)),
                    Some(ts),
                    u32_at(b, 12, sw) as usize,
                    u32_at(b, 16, sw),
                    20,
                )
            }
            _ => {
                // Simple packet block: interface 0, no time, the captured
                // length is what the block holds up to the snapshot length.
                if b.len() < 4 {
                    return Err(short());
                }
                let orig = u32_at(b, 0, sw);
                let snap = interfaces.first().map_or(0, |i| i.snaplen);
                let mut cap = (orig as usize).min(b.len() - 4);
                if snap != 0 {
                    cap = cap.min(snap as usize);
                }
                (0, None, cap, orig, 4)
            }
        };
        let Some(iface) = interfaces.get(iface_id).copied() else {
            return Ok(None);
        };
        if at + caplen > b.len() {
            return Err(CaptureError::Corrupt(format!(
                "pcapng packet says it holds {caplen} bytes, its block {}",
                b.len() - at
            )));
        }
        let mut link = iface.link;
        if kind != SPB {
            // epb_flags / pack_flags: bits 5-8 are the FCS length in bytes.
            let opts_at = at + caplen.div_ceil(4) * 4;
            if let Some(rest) = b.get(opts_at..) {
                for (code, v) in options(rest, sw) {
                    if code == EPB_FLAGS && v.len() >= 4 {
                        let fcs = (u32_at(v, 0, sw) >> 5) & 0xf;
                        if fcs != 0 {
                            link.fcs_bytes = fcs as u8;
                        }
                    }
                }
            }
        }
        let time_ns = match ts {
            Some(ts) => iface.time_ns(ts),
            None => *last_ns,
        };
        *last_ns = time_ns;
        Ok(Some((link, time_ns, at, caplen, orig_len)))
    }
}

impl Interface {
    /// A timestamp in this interface's units as ns since the epoch.
    fn time_ns(&self, ts: u64) -> u64 {
        let ts = u128::from(ts);
        let ns = if self.binary {
            (ts * 1_000_000_000) >> self.resol.min(127)
        } else if self.resol <= 9 {
            ts * 10u128.pow(u32::from(9 - self.resol))
        } else {
            ts / 10u128.pow(u32::from(self.resol.min(38) - 9))
        };
        let offset = i128::from(self.offset_s) * 1_000_000_000;
        (ns as i128 + offset).clamp(0, i128::from(u64::MAX)) as u64
    }
}

const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const IF_TSRESOL: u16 = 9;
const IF_FCSLEN: u16 = 13;
const IF_TSOFFSET: u16 = 14;
const EPB_FLAGS: u16 = 2;

/// A block's options, (code, value), up to `opt_endofopt` or the end of
/// the block; a malformed tail is ignored, as libpcap ignores it.
fn options(mut b: &[u8], swapped: bool) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = u16_at(b, 0, swapped);
        let len = usize::from(u16_at(b, 2, swapped));
        if code == 0 || 4 + len > b.len() {
            return None;
        }
        let v = &b[4..4 + len];
        b = b.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
        Some((code, v))
    })
}
