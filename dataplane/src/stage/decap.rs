//! decap: turn a tunnelled frame back into the frame it carries.
//!
//! Recognised (DESIGN §4): VXLAN (UDP 4789 and configured ports such as
//! Linux's 8472), Geneve (UDP 6081), L2GRE (GRE protocol 0x6558), ERSPAN
//! type I (GRE 0x88BE without S), II (0x88BE with S) and III (0x22EB, with
//! or without the platform sub-header), over IPv4 or IPv6 (extension headers
//! skipped) with any number of VLAN tags on the outer frame (up to
//! [`MAX_OUTER_TAGS`]), nested up to [`DecapConfig::max_layers`] deep.
//!
//! [`Decap::classify`] only reads: it finds where the innermost Ethernet
//! frame starts and ends, and what each tunnel header said. [`Decap::decap`]
//! then removes the outer bytes in place (`adj` at the front, `trim` for the
//! outer frame's padding after the IP packet) — the frame never moves — and
//! optionally pushes an 802.1Q tag derived from the VNI/session so a tool can
//! tell the sources apart. Because everything is decided before anything is
//! changed, a frame that fails is left exactly as it came.
//!
//! Outcomes are kept apart so the caller can count, pass or drop each:
//! - [`DecapOutcome::Decapsulated`]: the frame is now the inner frame;
//! - [`DecapOutcome::NotTunnel`]: no tunnel we know (frame untouched);
//! - [`DecapOutcome::NotEthernet`]: a tunnel whose payload is not an
//!   Ethernet frame — GRE carrying IP, CDP or WCCP, Geneve carrying IP,
//!   ERSPAN III with a frame type other than Ethernet, PPTP's GRE version 1
//!   (frame untouched: a tool port cannot take it as it is);
//! - `Err(`[`DecapError`]`)`: a recognised tunnel that is malformed (short
//!   headers, wrong version, lengths that disagree, nesting beyond the
//!   limit) or a fragment of one (frame untouched).
//!
//! What is deliberately *not* checked: outer IPv4/UDP/GRE checksums (mirror
//! traffic is often captured before the sender's NIC filled them in), VXLAN
//! reserved bits (RFC 7348 says ignore them; our own extended mode uses
//! them), Geneve critical options (a broker does not act on options).
//! Strict on lengths like tshark: a UDP length of 0 (what Linux GSO/BIG TCP
//! super-packets carry; they never exist on a wire) is `BadLength`.
//!
//! Chained frames: headers are read from `data()` (the first segment) and
//! lengths are checked against `pkt_len()`; a header that does not fit in the
//! first segment reads as `Truncated`.

use std::sync::Arc;

use thiserror::Error;

use crate::frame::Frame;
use crate::runtime::counters::Counter;
use crate::stage::tag::{self, ReceivedTag};
use crate::wire::bytes::{u16_at, u32_at};
use crate::wire::ethernet::{self, ethertype, EtherType};
use crate::wire::{erspan, geneve, gre, ip_proto, ipv4, ipv6, udp, vlan, vxlan, IpProtocol};

/// Most nested tunnels a [`DecapConfig`] may allow.
pub const MAX_LAYERS: usize = 4;
/// Most VLAN tags followed on an outer frame before giving up on it.
pub const MAX_OUTER_TAGS: usize = 4;

/// How decap recognises tunnels and what it does with the inner frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecapConfig {
    /// UDP destination ports carrying VXLAN (4789; add 8472 for Linux's
    /// pre-IANA default).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports carrying Geneve (6081).
    pub geneve_ports: Vec<u16>,
    /// Tunnels stripped at most, 1..=[`MAX_LAYERS`] (default 2). A frame
    /// with a further tunnel inside is `TooDeep`.
    pub max_layers: u8,
    /// Push an 802.1Q tag on the inner frame derived from the outermost
    /// tunnel's VNI/session/key.
    pub retag: Option<Retag>,
}

impl Default for DecapConfig {
    fn default() -> Self {
        DecapConfig {
            vxlan_ports: vec![vxlan::PORT],
            geneve_ports: vec![geneve::PORT],
            max_layers: 2,
            retag: None,
        }
    }
}

/// The 802.1Q tag pushed on decapsulated frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retag {
    pub map: VidMap,
    /// Priority of the pushed tag, 0..=7.
    pub pcp: u8,
}

/// How a tunnel ID (VNI, ERSPAN session, GRE key) becomes a VLAN ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VidMap {
    /// The ID's low 12 bits. IDs whose low bits are 0 or 4095 (not usable
    /// VIDs) get no tag and are counted in `retag_unmapped`.
    Low12,
    /// An explicit table; IDs not in it get `default`, or no tag.
    Table {
        entries: Vec<(u32, u16)>,
        default: Option<u16>,
    },
}

impl VidMap {
    /// The VID for a tunnel ID, if it has a usable one.
    pub fn vid(&self, id: u32) -> Option<u16> {
        let vid = match self {
            VidMap::Low12 => Some((id & 0x0fff) as u16),
            VidMap::Table { entries, default } => entries
                .binary_search_by_key(&id, |e| e.0)
                .ok()
                .and_then(|i| entries.get(i))
                .map(|e| e.1)
                .or(*default),
        };
        vid.filter(|v| (1..=4094).contains(v))
    }
}

/// Why a [`DecapConfig`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecapConfigError {
    #[error("max_layers {0} is not in 1..={MAX_LAYERS}")]
    MaxLayers(u8),
    #[error("UDP port {0} is configured for both VXLAN and Geneve")]
    PortClash(u16),
    #[error("UDP port 0 cannot carry a tunnel")]
    PortZero,
    #[error("more than {MAX_PORTS} UDP ports for one tunnel kind")]
    TooManyPorts,
    #[error("retag PCP {0} is not in 0..=7")]
    Pcp(u8),
    #[error("retag table maps {id} to VLAN {vid}, not in 1..=4094")]
    Vid { id: u32, vid: u16 },
    #[error("retag table lists tunnel ID {0} twice")]
    DuplicateId(u32),
}

/// Which tunnel a header was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    /// GRE protocol 0x6558 (transparent Ethernet bridging).
    L2Gre,
    ErspanI,
    ErspanII,
    ErspanIII,
    /// GRE carrying something other than Ethernet or ERSPAN.
    Gre,
}

/// What a tunnel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    Ethernet,
    /// A GRE or Geneve protocol type other than Ethernet.
    EtherType(EtherType),
    /// An ERSPAN III frame type other than Ethernet (2 is IP).
    ErspanFrameType(u8),
    /// GRE version 1 (PPTP): PPP, not Ethernet.
    Pptp,
}

/// What one tunnel header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    pub kind: TunnelKind,
    /// VNI (VXLAN, Geneve), session ID (ERSPAN II/III), key (GRE, if any).
    pub id: Option<u32>,
    /// GRE sequence number, if any.
    pub sequence: Option<u32>,
    /// ERSPAN T bit: the sender cut the mirrored frame.
    pub truncated: bool,
    /// Origin fields of ERSPAN headers (index, hardware ID, direction).
    pub origin: ReceivedTag,
    pub payload: Payload,
    /// Outer IP version, 4 or 6.
    pub ip_version: u8,
}

impl TunnelInfo {
    fn new(kind: TunnelKind, ip_version: u8) -> TunnelInfo {
        TunnelInfo {
            kind,
            id: None,
            sequence: None,
            truncated: false,
            origin: ReceivedTag::default(),
            payload: Payload::Ethernet,
            ip_version,
        }
    }
}

/// A decapsulated frame: what was removed. With nesting, the outermost
/// tunnel (the one the sender addressed to us, which re-tagging uses) and
/// the innermost one (the tunnel the frame itself was in) are kept; kept
/// small because one is returned per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    /// Tunnels stripped, 1..=max_layers.
    pub layers: u8,
    outer: TunnelInfo,
    innermost: TunnelInfo,
    /// Bytes removed from the front (before any re-tag).
    pub stripped: usize,
    /// VLAN ID of the tag pushed by re-tagging, if one was.
    pub vlan: Option<u16>,
}

impl Decapsulated {
    /// The outermost tunnel: the one the sender addressed to us.
    pub fn outer(&self) -> &TunnelInfo {
        &self.outer
    }

    /// The innermost tunnel (the outer one when there was no nesting).
    pub fn innermost(&self) -> &TunnelInfo {
        &self.innermost
    }
}

/// What decap did with a frame that was not malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapOutcome {
    Decapsulated(Decapsulated),
    NotTunnel,
    NotEthernet(TunnelInfo),
}

/// A recognised tunnel that cannot be decapsulated. The frame is untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecapError {
    /// The frame ends inside a tunnel header, or before the lengths say.
    #[error("tunnel header or payload cut short")]
    Truncated,
    /// IP, UDP or option lengths that contradict each other.
    #[error("tunnel lengths disagree")]
    BadLength,
    /// GRE, ERSPAN or Geneve version we do not know.
    #[error("unknown tunnel header version")]
    BadVersion,
    /// VXLAN without the I flag, GRE with the routing bit.
    #[error("tunnel header flags not allowed")]
    BadFlags,
    /// A fragment of a tunnel packet: its inner frame is not all here.
    #[error("fragmented tunnel packet")]
    Fragmented,
    /// More nested tunnels than `max_layers`.
    #[error("tunnels nested deeper than the configured limit")]
    TooDeep,
}

/// Per-worker decap counters; every frame lands in exactly one of the
/// first four plus the error kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapCounters {
    pub decapsulated: u64,
    /// Tunnel headers removed in all (≥ `decapsulated` with nesting).
    pub layers_stripped: u64,
    pub not_tunnel: u64,
    pub not_ethernet: u64,
    pub truncated: u64,
    pub bad_length: u64,
    pub bad_version: u64,
    pub bad_flags: u64,
    pub fragmented: u64,
    pub too_deep: u64,
    /// Decapsulated frames re-tagged.
    pub retagged: u64,
    /// Decapsulated frames whose ID had no VID (left untagged).
    pub retag_unmapped: u64,
}

/// The stage's counters where the runtime reads them (VPP style): shared
/// with the main lcore, written only by the worker that runs the stage,
/// once per burst ([`Decap::publish`]); frames are tallied in plain fields
/// in between, so the per-frame cost stays an add.
#[derive(Debug, Default)]
pub struct DecapStats {
    decapsulated: Counter,
    layers_stripped: Counter,
    not_tunnel: Counter,
    not_ethernet: Counter,
    truncated: Counter,
    bad_length: Counter,
    bad_version: Counter,
    bad_flags: Counter,
    fragmented: Counter,
    too_deep: Counter,
    retagged: Counter,
    retag_unmapped: Counter,
}

impl DecapStats {
    fn all(&self) -> [&Counter; 12] {
        [
            &self.decapsulated,
            &self.layers_stripped,
            &self.not_tunnel,
            &self.not_ethernet,
            &self.truncated,
            &self.bad_length,
            &self.bad_version,
            &self.bad_flags,
            &self.fragmented,
            &self.too_deep,
            &self.retagged,
            &self.retag_unmapped,
        ]
    }

    /// The values now.
    pub fn snapshot(&self) -> DecapCounters {
        DecapCounters::from_fields(self.all().map(Counter::get))
    }

    /// Adds a burst's tally.
    fn add(&self, t: &DecapCounters) {
        for (c, n) in self.all().into_iter().zip(t.fields()) {
            if n != 0 {
                c.add(n);
            }
        }
    }

    /// Zeroes every counter (the owning worker only, between bursts).
    pub fn zero(&self) {
        for c in self.all() {
            c.set(0);
        }
    }
}

impl DecapCounters {
    /// The fields in [`DecapStats::all`]'s order.
    fn fields(&self) -> [u64; 12] {
        [
            self.decapsulated,
            self.layers_stripped,
            self.not_tunnel,
            self.not_ethernet,
            self.truncated,
            self.bad_length,
            self.bad_version,
            self.bad_flags,
            self.fragmented,
            self.too_deep,
            self.retagged,
            self.retag_unmapped,
        ]
    }

    fn from_fields(f: [u64; 12]) -> DecapCounters {
        let [decapsulated, layers_stripped, not_tunnel, not_ethernet, truncated, bad_length, bad_version, bad_flags, fragmented, too_deep, retagged, retag_unmapped] =
            f;
        DecapCounters {
            decapsulated,
            layers_stripped,
            not_tunnel,
            not_ethernet,
            truncated,
            bad_length,
            bad_version,
            bad_flags,
            fragmented,
            too_deep,
            retagged,
            retag_unmapped,
        }
    }

    fn record(&mut self, r: &Result<DecapOutcome, DecapError>) {
        match r {
            Ok(DecapOutcome::Decapsulated(d)) => {
                self.decapsulated += 1;
                self.layers_stripped += u64::from(d.layers);
            }
            Ok(DecapOutcome::NotTunnel) => self.not_tunnel += 1,
            Ok(DecapOutcome::NotEthernet(_)) => self.not_ethernet += 1,
            Err(DecapError::Truncated) => self.truncated += 1,
            Err(DecapError::BadLength) => self.bad_length += 1,
            Err(DecapError::BadVersion) => self.bad_version += 1,
            Err(DecapError::BadFlags) => self.bad_flags += 1,
            Err(DecapError::Fragmented) => self.fragmented += 1,
            Err(DecapError::TooDeep) => self.too_deep += 1,
        }
    }

    /// Malformed frames of every kind.
    pub fn errors(&self) -> u64 {
        self.truncated
            + self.bad_length
            + self.bad_version
            + self.bad_flags
            + self.fragmented
            + self.too_deep
    }
}

/// One layer found by [`Decap::classify_one`].
enum Found {
    NotTunnel,
    NotEthernet(TunnelInfo),
    /// The inner Ethernet frame is `start..end` of the examined frame.
    Ethernet {
        info: TunnelInfo,
        start: usize,
        end: usize,
    },
}

/// Where the innermost frame is, without touching the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// Bytes `start..end` of the frame are the inner Ethernet frame.
    Ethernet {
        start: usize,
        end: usize,
        info: Decapsulated,
    },
    NotTunnel,
    NotEthernet(TunnelInfo),
}

/// What [`Decap::classify_quick`] found: a few bytes, returned in
/// registers, where moving a `Classified` (about 100 bytes) cost every
/// frame 20 instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quick {
    NotTunnel,
    /// VXLAN with this VNI on an untagged IPv4 frame without options; the
    /// inner frame ends at `end`.
    Vxlan {
        vni: u32,
        end: usize,
    },
    /// Not one of the common cases: the general walk decides.
    Walk,
}

/// Where the inner frame of [`Quick::Vxlan`] starts: right after the
/// VXLAN header of an untagged IPv4 frame without options.
const VXLAN_INNER: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + vxlan::HEADER_LEN;

/// What stripping [`Quick::Vxlan`]'s one tunnel with VNI `vni` did.
#[inline(always)]
fn vxlan_decapsulated(vni: u32) -> Decapsulated {
    let mut info = TunnelInfo::new(TunnelKind::Vxlan, 4);
    info.id = Some(vni);
    Decapsulated {
        layers: 1,
        outer: info,
        innermost: info,
        stripped: VXLAN_INNER,
        vlan: None,
    }
}

/// Most UDP ports per tunnel kind.
pub const MAX_PORTS: usize = 8;

/// A set of UDP ports as a bitmap: one load and a bit test per lookup,
/// where comparing against each configured port cost 20 instructions on
/// every frame (three lookups per VXLAN frame on the fast path).
#[derive(Clone, Debug)]
struct Ports(Box<[u64; 1024]>);

impl Ports {
    fn new(ports: &[u16]) -> Ports {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports.iter().filter(|p| **p != 0) {
            bits[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        Ports(bits)
    }

    #[inline(always)]
    fn has(&self, port: u16) -> bool {
        self.0[usize::from(port >> 6)] >> (port & 63) & 1 != 0
    }
}

/// The decap stage of one worker: configuration and counters. A clone
/// shares the shared counter block (give it its own with
/// [`Decap::with_stats`]); one used only to [`Decap::classify`] counts
/// nothing.
#[derive(Clone, Debug)]
pub struct Decap {
    cfg: DecapConfig,
    vxlan_ports: Ports,
    geneve_ports: Ports,
    /// This burst's counts, not yet in `stats`.
    tally: DecapCounters,
    stats: Arc<DecapStats>,
}

impl Decap {
    pub fn new(mut cfg: DecapConfig) -> Result<Decap, DecapConfigError> {
        if cfg.max_layers == 0 || usize::from(cfg.max_layers) > MAX_LAYERS {
            return Err(DecapConfigError::MaxLayers(cfg.max_layers));
        }
        if cfg
            .vxlan_ports
            .iter()
            .chain(&cfg.geneve_ports)
            .any(|p| *p == 0)
        {
            return Err(DecapConfigError::PortZero);
        }
        if cfg.vxlan_ports.len().max(cfg.geneve_ports.len()) > MAX_PORTS {
            return Err(DecapConfigError::TooManyPorts);
        }
        if let Some(p) = cfg
            .vxlan_ports
            .iter()
            .find(|p| cfg.geneve_ports.contains(p))
        {
            return Err(DecapConfigError::PortClash(*p));
        }
        if let Some(r) = &mut cfg.retag {
            if r.pcp > 7 {
                return Err(DecapConfigError::Pcp(r.pcp));
            }
            if let VidMap::Table { entries, default } = &mut r.map {
                entries.sort_unstable_by_key(|e| e.0);
                for w in entries.windows(2) {
                    if let [a, b] = w {
                        if a.0 == b.0 {
                            return Err(DecapConfigError::DuplicateId(a.0));
                        }
                    }
                }
                let bad = entries
                    .iter()
                    .copied()
                    .chain(default.map(|d| (u32::MAX, d)))
                    .find(|e| !(1..=4094).contains(&e.1));
                if let Some((id, vid)) = bad {
                    return Err(DecapConfigError::Vid { id, vid });
                }
            }
        }
        Ok(Decap {
            vxlan_ports: Ports::new(&cfg.vxlan_ports),
            geneve_ports: Ports::new(&cfg.geneve_ports),
            cfg,
            tally: DecapCounters::default(),
            stats: Arc::default(),
        })
    }

    /// Counts into `stats` from now on: the runtime's copy, which the main
    /// lcore reads.
    pub fn with_stats(mut self, stats: Arc<DecapStats>) -> Self {
        self.stats = stats;
        self
    }

    pub fn config(&self) -> &DecapConfig {
        &self.cfg
    }

    /// The counters so far, published or not.
    pub fn counters(&self) -> DecapCounters {
        let (a, b) = (self.stats.snapshot().fields(), self.tally.fields());
        DecapCounters::from_fields(std::array::from_fn(|i| a[i] + b[i]))
    }

    /// Adds what was counted since the last call to the shared counters:
    /// once per burst, by the worker that owns the stage.
    pub fn publish(&mut self) {
        if self.tally != DecapCounters::default() {
            self.stats.add(&self.tally);
            self.tally = DecapCounters::default();
        }
    }

    /// Decapsulates one frame in place and counts the outcome.
    #[inline]
    pub fn decap<F: Frame>(&mut self, frame: &mut F) -> Result<DecapOutcome, DecapError> {
        let len = frame.pkt_len();
        let data = frame.data();
        // The fast path's verdicts are matched here and not through
        // `classify`, and counted where they are found: no `Classified`
        // (about 100 bytes) is built and moved, and no outcome goes through
        // memory to be matched again by the tally. Those cost a
        // pass-through frame 27 instructions and a VXLAN frame 25.
        match self.classify_quick(data, len) {
            Quick::NotTunnel => {
                self.tally.not_tunnel += 1;
                Ok(DecapOutcome::NotTunnel)
            }
            Quick::Vxlan { vni, end } => {
                let r = self.strip(frame, len, VXLAN_INNER, end, vxlan_decapsulated(vni));
                if r.is_ok() {
                    self.tally.decapsulated += 1;
                    self.tally.layers_stripped += 1;
                } else {
                    self.tally.truncated += 1;
                }
                r
            }
            Quick::Walk => {
                let r = match self.classify_walk(data, len) {
                    Ok(Classified::Ethernet { start, end, info }) => {
                        self.strip(frame, len, start, end, info)
                    }
                    Ok(Classified::NotTunnel) => Ok(DecapOutcome::NotTunnel),
                    Ok(Classified::NotEthernet(t)) => Ok(DecapOutcome::NotEthernet(t)),
                    Err(e) => Err(e),
                };
                self.tally.record(&r);
                r
            }
        }
    }

    /// Decapsulates a burst: `out[i]` is what happened to `frames[i]`.
    /// Processes as many frames as both slices have; returns how many were
    /// decapsulated.
    pub fn decap_burst<F: Frame>(
        &mut self,
        frames: &mut [F],
        out: &mut [Result<DecapOutcome, DecapError>],
    ) -> usize {
        let mut n = 0;
        for (f, o) in frames.iter_mut().zip(out.iter_mut()) {
            *o = self.decap(f);
            n += usize::from(matches!(o, Ok(DecapOutcome::Decapsulated(_))));
        }
        n
    }

    /// Cuts `frame` (`len` bytes) down to its inner frame, bytes
    /// `start..end`, and re-tags it if configured. A classifier found
    /// `start + 14 <= end <= len`, so the cut cannot fail.
    #[inline(always)]
    fn strip<F: Frame>(
        &mut self,
        frame: &mut F,
        len: usize,
        start: usize,
        end: usize,
        mut info: Decapsulated,
    ) -> Result<DecapOutcome, DecapError> {
        if frame.adj(start).is_err() || frame.trim(len - end).is_err() {
            return Err(DecapError::Truncated);
        }
        if let Some(r) = &self.cfg.retag {
            let vid = info.outer().id.and_then(|id| r.map.vid(id));
            match vid {
                Some(vid) if push_tag(frame, vid, r.pcp) => {
                    info.vlan = Some(vid);
                    self.tally.retagged += 1;
                }
                _ => self.tally.retag_unmapped += 1,
            }
        }
        Ok(DecapOutcome::Decapsulated(info))
    }

    /// Finds the innermost Ethernet frame of a frame whose contiguous bytes
    /// are `data` and whose whole length is `len`, without changing it.
    #[inline]
    pub fn classify(&self, data: &[u8], len: usize) -> Result<Classified, DecapError> {
        match self.classify_quick(data, len) {
            Quick::NotTunnel => Ok(Classified::NotTunnel),
            Quick::Vxlan { vni, end } => Ok(Classified::Ethernet {
                start: VXLAN_INNER,
                end,
                info: vxlan_decapsulated(vni),
            }),
            Quick::Walk => self.classify_walk(data, len),
        }
    }

    /// [`Decap::classify`] without the fast path: one tunnel after another.
    /// Out of line, so the fast path's caller does not pay its frame.
    #[inline(never)]
    fn classify_walk(&self, data: &[u8], len: usize) -> Result<Classified, DecapError> {
        let mut found: Option<(TunnelInfo, TunnelInfo)> = None;
        let mut n = 0u8;
        let (mut start, mut end) = (0usize, len);
        loop {
            let here = data.get(start..).unwrap_or(&[]);
            match self.classify_one(here, end - start) {
                Ok(Found::Ethernet {
                    info,
                    start: s,
                    end: e,
                }) => {
                    if n == self.cfg.max_layers {
                        return Err(DecapError::TooDeep);
                    }
                    found = Some(match found {
                        None => (info, info),
                        Some((outer, _)) => (outer, info),
                    });
                    n += 1;
                    end = start + e;
                    start += s;
                }
                Ok(Found::NotEthernet(t)) if n == 0 => return Ok(Classified::NotEthernet(t)),
                Err(e) if n == 0 => return Err(e),
                // Inside a tunnel, anything that is not a further L2 tunnel
                // is the payload: it is what the sender mirrored.
                Ok(_) | Err(_) => break,
            }
        }
        let Some((outer, innermost)) = found else {
            return Ok(Classified::NotTunnel);
        };
        Ok(Classified::Ethernet {
            start,
            end,
            info: Decapsulated {
                layers: n,
                outer,
                innermost,
                stripped: start,
                vlan: None,
            },
        })
    }

    /// The common cases in a few loads: untagged Ethernet, IPv4 without
    /// options or fragmentation, and either UDP to a VXLAN port, VXLAN with
    /// a VNI, carrying a frame that cannot itself be a tunnel; or UDP to no
    /// tunnel port, or a protocol that is neither UDP nor GRE (`NotTunnel`,
    /// what a pass-through sees). Anything else —
    /// and every error, whose reason the general walk reports — is `Walk`,
    /// and [`Decap::classify`] takes the general walk. Where both answer,
    /// they answer alike (`tests::fast_path_agrees_with_the_walk`).
    #[inline(always)]
    fn classify_quick(&self, d: &[u8], len: usize) -> Quick {
        const L3: usize = ethernet::HEADER_LEN;
        const L4: usize = L3 + ipv4::MIN_HEADER_LEN;
        const VX: usize = L4 + udp::HEADER_LEN;
        const INNER: usize = VXLAN_INNER;
        let Some(h) = d.first_chunk::<INNER>() else {
            return Quick::Walk;
        };
        // EtherType IPv4, version 4 with a 20-byte header, neither MF nor
        // an offset.
        if u16_at(h, ethernet::field::ETHERTYPE) != ethertype::IPV4
            || h[L3 + ipv4::field::VER_IHL] != 0x45
            || u16_at(h, L3 + ipv4::field::FLG_OFF) & (ipv4::FLAG_MF | ipv4::OFFSET_MASK) != 0
        {
            return Quick::Walk;
        }
        match h[L3 + ipv4::field::PROTOCOL] {
            ip_proto::UDP => {}
            // ERSPAN and NVGRE: the walk reads them.
            ip_proto::GRE => return Quick::Walk,
            // TCP, ICMP and the rest, most of what a TAP carries: no
            // protocol the walk knows as a tunnel, whatever the lengths.
            _ => return Quick::NotTunnel,
        }
        // Total length 0 (GSO) is left to the walk.
        let total = usize::from(u16_at(h, L3 + ipv4::field::LENGTH));
        let end = L3 + total;
        if total < ipv4::MIN_HEADER_LEN || end > len {
            return Quick::Walk;
        }
        let port = u16_at(h, L4 + udp::field::DST_PORT);
        if !self.vxlan_ports.has(port) {
            // UDP to no tunnel port, lengths sound: the walk says the same.
            if self.geneve_ports.has(port) {
                return Quick::Walk;
            }
            return Quick::NotTunnel;
        }
        let ulen = usize::from(u16_at(h, L4 + udp::field::LENGTH));
        if ulen < udp::HEADER_LEN || L4 + ulen > end || h[VX] & vxlan::FLAG_I == 0 {
            return Quick::Walk;
        }
        let inner_end = L4 + ulen;
        if inner_end < INNER + ethernet::HEADER_LEN || !self.inner_not_tunnel(&d[INNER..]) {
            return Quick::Walk;
        }
        Quick::Vxlan {
            vni: u32_at(h, VX + vxlan::field::VNI) >> 8,
            end: inner_end,
        }
    }

    /// Whether an inner frame surely carries no further tunnel, so the
    /// general walk would stop at it: not IPv6 or VLAN-tagged (those it
    /// looks into), and if IPv4, neither GRE nor UDP to a tunnel port.
    /// `false` means "look closer", not "a tunnel".
    #[inline(always)]
    fn inner_not_tunnel(&self, inner: &[u8]) -> bool {
        const L3: usize = ethernet::HEADER_LEN;
        let Some(h) = inner.first_chunk::<{ L3 + ipv4::field::PROTOCOL + 1 }>() else {
            return false;
        };
        match u16_at(h, ethernet::field::ETHERTYPE) {
            ethertype::IPV4 => {}
            ethertype::IPV6 | vlan::TPID_8021Q | vlan::TPID_8021AD | vlan::TPID_QINQ => {
                return false
            }
            _ => return true,
        }
        let ver_ihl = h[L3 + ipv4::field::VER_IHL];
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        let later_fragment = u16_at(h, L3 + ipv4::field::FLG_OFF) & ipv4::OFFSET_MASK != 0;
        if ver_ihl >> 4 != 4 || ihl < ipv4::MIN_HEADER_LEN || later_fragment {
            return true;
        }
        match h[L3 + ipv4::field::PROTOCOL] {
            ip_proto::UDP => {
                let at = L3 + ihl + udp::field::DST_PORT;
                // A UDP header the walk cannot read is no tunnel to it either.
                inner.get(at..at + 2).is_none_or(|p| {
                    let port = u16::from_be_bytes([p[0], p[1]]);
                    !self.vxlan_ports.has(port) && !self.geneve_ports.has(port)
                })
            }
            ip_proto::GRE => false,
            _ => true,
        }
    }

    /// One tunnel at the front of `d` (contiguous bytes of a frame of `len`
    /// bytes). Until a tunnel is recognised nothing is an error: a frame we
    /// cannot read far enough is simply not a tunnel to us.
    fn classify_one(&self, d: &[u8], len: usize) -> Result<Found, DecapError> {
        let Ok(eth) = ethernet::Packet::new_checked(d) else {
            return Ok(Found::NotTunnel);
        };
        let mut ethertype = u16::from(eth.ethertype());
        let mut off = ethernet::HEADER_LEN;
        for _ in 0..=MAX_OUTER_TAGS {
            if !vlan::is_tpid(ethertype) {
                break;
            }
            let Ok(tag) = vlan::Packet::new_checked(d.get(off..).unwrap_or(&[])) else {
                return Ok(Found::NotTunnel);
            };
            ethertype = u16::from(tag.ethertype());
            off += vlan::HEADER_LEN;
        }
        let ip = match EtherType::from(ethertype) {
            EtherType::Ipv4 => outer_ipv4(d, off, len)?,
            EtherType::Ipv6 => outer_ipv6(d, off, len)?,
            _ => None,
        };
        let Some(ip) = ip else {
            return Ok(Found::NotTunnel);
        };
        match ip.proto {
            IpProtocol::Udp => self.udp_tunnel(d, &ip),
            IpProtocol::Gre => gre_tunnel(d, &ip),
            _ => Ok(Found::NotTunnel),
        }
    }

    fn udp_tunnel(&self, d: &[u8], ip: &OuterIp) -> Result<Found, DecapError> {
        let l4 = ip.l4;
        if ip.end < l4 + udp::HEADER_LEN || d.len() < l4 + udp::HEADER_LEN {
            return Ok(Found::NotTunnel);
        }
        let u = udp::Packet::new_unchecked(d.get(l4..).unwrap_or(&[]));
        let port = u.dst_port();
        let kind = if self.vxlan_ports.has(port) {
            TunnelKind::Vxlan
        } else if self.geneve_ports.has(port) {
            TunnelKind::Geneve
        } else {
            return Ok(Found::NotTunnel);
        };
        if ip.fragment {
            return Err(DecapError::Fragmented);
        }
        let ulen = usize::from(u.len());
        if ulen < udp::HEADER_LEN || l4 + ulen > ip.end {
            return Err(DecapError::BadLength);
        }
        let p = l4 + udp::HEADER_LEN;
        let end = l4 + ulen;
        let tun = d.get(p..).unwrap_or(&[]);
        let mut info = TunnelInfo::new(kind, ip.version);
        let start = match kind {
            TunnelKind::Vxlan => {
                let x = vxlan::Packet::new_unchecked(tun);
                if end < p + vxlan::HEADER_LEN || x.check_len().is_err() {
                    return Err(DecapError::Truncated);
                }
                if !x.has_vni() {
                    return Err(DecapError::BadFlags);
                }
                info.id = Some(x.vni());
                p + vxlan::HEADER_LEN
            }
            _ => {
                let g = geneve::Packet::new_unchecked(tun);
                if end < p + geneve::BASE_LEN || tun.len() < geneve::BASE_LEN {
                    return Err(DecapError::Truncated);
                }
                if g.version() != geneve::VERSION {
                    return Err(DecapError::BadVersion);
                }
                let hl = g.header_len();
                if end < p + hl || g.check_len().is_err() {
                    return Err(DecapError::Truncated);
                }
                if geneve::Options::new(g.options()).any(|o| o.is_err()) {
                    return Err(DecapError::BadLength);
                }
                info.id = Some(g.vni());
                let proto = g.protocol();
                if proto != EtherType::Teb {
                    info.payload = Payload::EtherType(proto);
                    return Ok(Found::NotEthernet(info));
                }
                p + hl
            }
        };
        inner_ethernet(info, start, end)
    }
}

/// The outer IP header, as far as decap needs it.
struct OuterIp {
    version: u8,
    proto: IpProtocol,
    /// Offset of the upper-layer header.
    l4: usize,
    /// End of the IP packet (before any Ethernet padding).
    end: usize,
    /// A first fragment: the upper layer is not all here.
    fragment: bool,
}

/// `Ok(None)`: not a tunnel candidate. Errors only for GRE/UDP packets,
/// whose lengths matter.
fn outer_ipv4(d: &[u8], off: usize, len: usize) -> Result<Option<OuterIp>, DecapError> {
    let b = d.get(off..).unwrap_or(&[]);
    let ip = ipv4::Packet::new_unchecked(b);
    if b.len() < ipv4::MIN_HEADER_LEN || ip.version() != 4 {
        return Ok(None);
    }
    let proto = ip.protocol();
    let hl = ip.header_len();
    if !matches!(proto, IpProtocol::Udp | IpProtocol::Gre) || hl < ipv4::MIN_HEADER_LEN {
        return Ok(None);
    }
    // A later fragment has no upper-layer header to recognise.
    if ip.frag_offset() != 0 {
        return Ok(None);
    }
    if b.len() < hl {
        return Err(DecapError::Truncated);
    }
    // A GSO packet (total length 0) runs to the end of the frame; the UDP
    // length check below still applies.
    let total = ip.total_len();
    let end = off + ipv4::packet_len(total, len.saturating_sub(off));
    if total != 0 && usize::from(total) < hl {
        return Err(DecapError::BadLength);
    }
    if end > len {
        return Err(DecapError::Truncated);
    }
    Ok(Some(OuterIp {
        version: 4,
        proto,
        l4: off + hl,
        end,
        fragment: ip.more_frags(),
    }))
}

fn outer_ipv6(d: &[u8], off: usize, len: usize) -> Result<Option<OuterIp>, DecapError> {
    let b = d.get(off..).unwrap_or(&[]);
    let ip = ipv6::Packet::new_unchecked(b);
    if b.len() < ipv6::HEADER_LEN || ip.version() != 6 {
        return Ok(None);
    }
    let end = off + ipv6::packet_len(ip.payload_len(), len.saturating_sub(off));
    let ext = d
        .get(off + ipv6::HEADER_LEN..end.min(d.len()))
        .unwrap_or(&[]);
    let Ok((proto, at)) = ipv6::skip_ext_headers(ext, ip.next_header()) else {
        return Ok(None);
    };
    // Ipv6Frag here means a later fragment: no upper-layer header.
    if !matches!(proto, IpProtocol::Udp | IpProtocol::Gre) {
        return Ok(None);
    }
    if end > len {
        return Err(DecapError::Truncated);
    }
    // A first fragment's header follows the fixed header in practice.
    let fragment = ip.next_header() == IpProtocol::Ipv6Frag
        && ipv6::FragHeader::new_unchecked(ext).more_frags();
    Ok(Some(OuterIp {
        version: 6,
        proto,
        l4: off + ipv6::HEADER_LEN + at,
        end,
        fragment,
    }))
}

fn gre_tunnel(d: &[u8], ip: &OuterIp) -> Result<Found, DecapError> {
    let l4 = ip.l4;
    let b = d.get(l4..).unwrap_or(&[]);
    if ip.end < l4 + gre::BASE_LEN || b.len() < gre::BASE_LEN {
        return Err(DecapError::Truncated);
    }
    if ip.fragment {
        return Err(DecapError::Fragmented);
    }
    let g = gre::Packet::new_unchecked(b);
    if g.has_routing() {
        return Err(DecapError::BadFlags);
    }
    let mut info = TunnelInfo::new(TunnelKind::Gre, ip.version);
    match g.version() {
        0 => {}
        1 => {
            info.payload = Payload::Pptp;
            return Ok(Found::NotEthernet(info));
        }
        _ => return Err(DecapError::BadVersion),
    }
    let hl = g.header_len();
    if ip.end < l4 + hl || g.check_len().is_err() {
        return Err(DecapError::Truncated);
    }
    info.sequence = g.sequence();
    let p = l4 + hl;
    let end = ip.end;
    let start = match g.protocol() {
        EtherType::Teb => {
            info.kind = TunnelKind::L2Gre;
            info.id = g.key();
            p
        }
        EtherType::ErspanII if !g.has_sequence() => {
            info.kind = TunnelKind::ErspanI;
            p
        }
        EtherType::ErspanII => {
            info.kind = TunnelKind::ErspanII;
            p + erspan_header(d, p, end, erspan::VERSION_II, &mut info)?
        }
        EtherType::ErspanIII => {
            info.kind = TunnelKind::ErspanIII;
            let hl = erspan_header(d, p, end, erspan::VERSION_III, &mut info)?;
            if let Payload::ErspanFrameType(_) = info.payload {
                return Ok(Found::NotEthernet(info));
            }
            p + hl
        }
        other => {
            info.id = g.key();
            info.payload = Payload::EtherType(other);
            return Ok(Found::NotEthernet(info));
        }
    };
    inner_ethernet(info, start, end)
}

/// Reads an ERSPAN II/III header at `p` into `info`; returns its length.
fn erspan_header(
    d: &[u8],
    p: usize,
    end: usize,
    version: u8,
    info: &mut TunnelInfo,
) -> Result<usize, DecapError> {
    let b = d.get(p..).unwrap_or(&[]);
    let e = erspan::Packet::new_unchecked(b);
    if end < p + 2 || b.len() < 2 {
        return Err(DecapError::Truncated);
    }
    if e.version() != version {
        return Err(DecapError::BadVersion);
    }
    let hl = e.header_len();
    if end < p + hl {
        return Err(DecapError::Truncated);
    }
    let Ok(r) = erspan::Repr::parse(&e) else {
        return Err(DecapError::Truncated);
    };
    info.id = Some(u32::from(e.session_id()));
    info.truncated = e.truncated();
    info.origin = tag::read_erspan(&r);
    if let erspan::Repr::TypeIII(h) = r {
        if h.frame_type != erspan::FRAME_TYPE_ETHERNET {
            info.payload = Payload::ErspanFrameType(h.frame_type);
        }
    }
    Ok(hl)
}

/// The inner frame must at least hold an Ethernet header.
fn inner_ethernet(info: TunnelInfo, start: usize, end: usize) -> Result<Found, DecapError> {
    if end < start + ethernet::HEADER_LEN {
        return Err(DecapError::Truncated);
    }
    Ok(Found::Ethernet { info, start, end })
}

/// Inserts an 802.1Q tag after the MAC addresses: the addresses move 4
/// bytes forward into the headroom, the rest of the frame stays put.
fn push_tag<F: Frame>(frame: &mut F, vid: u16, pcp: u8) -> bool {
    if frame.prepend(vlan::HEADER_LEN).is_err() {
        return false;
    }
    let d = frame.data_mut();
    let Some(head) = d.get_mut(..ethernet::HEADER_LEN + vlan::HEADER_LEN) else {
        return false;
    };
    head.copy_within(vlan::HEADER_LEN..vlan::HEADER_LEN + 12, 0);
    let tci = (u16::from(pcp & 7) << 13) | (vid & 0x0fff);
    head[12..14].copy_from_slice(&vlan::TPID_8021Q.to_be_bytes());
    head[14..16].copy_from_slice(&tci.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VecFrame;

    /// Ethernet + IPv4 + UDP to `port` + VXLAN(vni) + `inner`.
    fn vxlan_frame(port: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip_len = (20 + 8 + 8 + inner.len()) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        f[42] = 0x08;
        f[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
        f.extend_from_slice(inner);
        f
    }

    fn inner() -> Vec<u8> {
        let mut i = vec![0x11u8; 60];
        i[12..14].copy_from_slice(&[0x88, 0xb5]);
        i
    }

    /// An inner IPv4/UDP frame to `dport`: the case the fast path must
    /// tell apart from a nested tunnel.
    fn inner_udp(dport: u16) -> Vec<u8> {
        let mut i = vec![0u8; 14 + 20 + 8 + 18];
        i[12..14].copy_from_slice(&[0x08, 0x00]);
        i[14] = 0x45;
        i[16..18].copy_from_slice(&46u16.to_be_bytes());
        i[23] = 17;
        i[36..38].copy_from_slice(&dport.to_be_bytes());
        i[38..40].copy_from_slice(&26u16.to_be_bytes());
        i
    }

    proptest::proptest! {
        /// Wherever the VXLAN/IPv4 fast path answers, the general walk
        /// answers the same: over valid frames, nested ones, and frames
        /// with any byte of the first 80 overwritten (lengths, flags,
        /// ports, versions, inner EtherTypes).
        #[test]
        fn fast_path_agrees_with_the_walk(
            inner_port in proptest::sample::select(vec![53u16, 4789, 8472, 6081]),
            outer_port in proptest::sample::select(vec![4789u16, 53, 6081]),
            nest in proptest::bool::ANY,
            at in 0usize..80,
            byte in proptest::num::u8::ANY,
            cut in 0usize..4,
            max_layers in 1u8..=2,
        ) {
            let d = Decap::new(DecapConfig {
                vxlan_ports: vec![4789, 8472],
                max_layers,
                ..DecapConfig::default()
            }).unwrap();
            let inner = inner_udp(inner_port);
            let mut f = if nest {
                vxlan_frame(outer_port, 7, &vxlan_frame(8472, 9, &inner))
            } else {
                vxlan_frame(outer_port, 7, &inner)
            };
            if let Some(b) = f.get_mut(at) {
                *b = byte;
            }
            let len = f.len() - cut * 7;
            f.truncate(len);
            if d.classify_quick(&f, len) != Quick::Walk {
                proptest::prop_assert_eq!(d.classify(&f, len), d.classify_walk(&f, len));
            }
        }

        /// The outer protocol's byte, every value, with one more byte
        /// anywhere changed: TCP, ICMP and the rest are answered by the
        /// fast path, and as the walk answers them.
        #[test]
        fn fast_path_agrees_with_the_walk_on_every_protocol(
            proto in proptest::num::u8::ANY,
            at in 0usize..80,
            byte in proptest::num::u8::ANY,
            cut in 0usize..4,
        ) {
            let d = Decap::new(DecapConfig::default()).unwrap();
            let mut f = vxlan_frame(4789, 7, &inner_udp(53));
            f[ethernet::HEADER_LEN + ipv4::field::PROTOCOL] = proto;
            if let Some(b) = f.get_mut(at) {
                *b = byte;
            }
            let len = f.len() - cut * 7;
            f.truncate(len);
            if d.classify_quick(&f, len) != Quick::Walk {
                proptest::prop_assert_eq!(d.classify(&f, len), d.classify_walk(&f, len));
            }
        }
    }

    #[test]
    fn fast_path_takes_the_common_cases_and_only_them() {
        let d = Decap::new(DecapConfig::default()).unwrap();
        let plain = vxlan_frame(4789, 5, &inner_udp(53));
        assert_eq!(
            d.classify_quick(&plain, plain.len()),
            Quick::Vxlan {
                vni: 5,
                end: plain.len()
            }
        );
        let dns = vxlan_frame(53, 5, &inner_udp(53));
        assert_eq!(d.classify_quick(&dns, dns.len()), Quick::NotTunnel);
        // TCP (and any protocol but UDP and GRE) is no tunnel; GRE may be.
        let proto = ethernet::HEADER_LEN + ipv4::field::PROTOCOL;
        let mut tcp = dns.clone();
        tcp[proto] = ip_proto::TCP;
        assert_eq!(d.classify_quick(&tcp, tcp.len()), Quick::NotTunnel);
        let mut gre = dns.clone();
        gre[proto] = ip_proto::GRE;
        assert_eq!(d.classify_quick(&gre, gre.len()), Quick::Walk);
        // Nested VXLAN, VXLAN or Geneve inside, Geneve outside: the walk.
        let geneve = vxlan_frame(6081, 5, &inner());
        assert_eq!(d.classify_quick(&geneve, geneve.len()), Quick::Walk);
        for inner in [
            vxlan_frame(4789, 6, &inner()),
            inner_udp(4789),
            inner_udp(6081),
        ] {
            let f = vxlan_frame(4789, 5, &inner);
            assert_eq!(d.classify_quick(&f, f.len()), Quick::Walk);
        }
    }

    #[test]
    fn vxlan_is_stripped_and_padding_trimmed() {
        let mut d = Decap::new(DecapConfig::default()).unwrap();
        let mut bytes = vxlan_frame(4789, 0x123456, &inner());
        bytes.extend_from_slice(&[0, 0, 0, 0]); // outer Ethernet padding
        let mut f = VecFrame::new(&bytes);
        let r = d.decap(&mut f).unwrap();
        let DecapOutcome::Decapsulated(info) = r else {
            panic!("{r:?}")
        };
        assert_eq!(f.data(), &inner()[..]);
        assert_eq!(info.layers, 1);
        assert_eq!(info.outer().kind, TunnelKind::Vxlan);
        assert_eq!(info.outer().id, Some(0x123456));
        assert_eq!(info.stripped, 50);
        assert_eq!(d.counters().decapsulated, 1);
    }

    #[test]
    fn counts_reach_the_shared_block_once_per_publish() {
        let stats = Arc::new(DecapStats::default());
        let mut d = Decap::new(DecapConfig::default())
            .unwrap()
            .with_stats(Arc::clone(&stats));
        let tunnel = vxlan_frame(4789, 7, &inner());
        for bytes in [&tunnel, &inner(), &tunnel] {
            let _ = d.decap(&mut VecFrame::new(bytes));
        }
        // Tallied, not yet where the main lcore reads.
        assert_eq!(stats.snapshot(), DecapCounters::default());
        assert_eq!((d.counters().decapsulated, d.counters().not_tunnel), (2, 1));
        d.publish();
        d.publish();
        let shared = stats.snapshot();
        assert_eq!((shared.decapsulated, shared.not_tunnel), (2, 1));
        assert_eq!(d.counters(), shared, "published once, not twice");
        stats.zero();
        assert_eq!(d.counters(), DecapCounters::default());
    }

    #[test]
    fn extra_port_and_nesting_limit() {
        let once = vxlan_frame(8472, 1, &inner());
        let twice = vxlan_frame(4789, 2, &once);
        let thrice = vxlan_frame(4789, 3, &twice);
        let mut d = Decap::new(DecapConfig::default()).unwrap();
        assert_eq!(
            d.decap(&mut VecFrame::new(&once)),
            Ok(DecapOutcome::NotTunnel)
        );
        let mut d = Decap::new(DecapConfig {
            vxlan_ports: vec![4789, 8472],
            ..DecapConfig::default()
        })
        .unwrap();
        let mut f = VecFrame::new(&twice);
        let Ok(DecapOutcome::Decapsulated(info)) = d.decap(&mut f) else {
            panic!()
        };
        assert_eq!(info.layers, 2);
        assert_eq!((info.outer().id, info.innermost().id), (Some(2), Some(1)));
        assert_eq!(f.data(), &inner()[..]);
        let mut f = VecFrame::new(&thrice);
        assert_eq!(d.decap(&mut f), Err(DecapError::TooDeep));
        assert_eq!(f.data(), &thrice[..]);
        assert_eq!(d.counters().too_deep, 1);
    }

    #[test]
    fn malformed_vxlan_errors() {
        let mut d = Decap::new(DecapConfig::default()).unwrap();
        let good = vxlan_frame(4789, 1, &inner());
        let mut no_i = good.clone();
        no_i[42] = 0;
        assert_eq!(
            d.decap(&mut VecFrame::new(&no_i)),
            Err(DecapError::BadFlags)
        );
        let mut long_udp = good.clone();
        long_udp[38..40].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            d.decap(&mut VecFrame::new(&long_udp)),
            Err(DecapError::BadLength)
        );
        let mut zero_udp = good.clone();
        zero_udp[38..40].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            d.decap(&mut VecFrame::new(&zero_udp)),
            Err(DecapError::BadLength)
        );
        assert_eq!(
            d.decap(&mut VecFrame::new(&good[..good.len() - 1])),
            Err(DecapError::Truncated)
        );
        let mut frag = good.clone();
        frag[20] = 0x20;
        assert_eq!(
            d.decap(&mut VecFrame::new(&frag)),
            Err(DecapError::Fragmented)
        );
        let short = vxlan_frame(4789, 1, &inner()[..13]);
        assert_eq!(
            d.decap(&mut VecFrame::new(&short)),
            Err(DecapError::Truncated)
        );
        assert_eq!(d.counters().errors(), 6);
    }

    #[test]
    fn retag_pushes_a_tag_from_the_vni() {
        let mut d = Decap::new(DecapConfig {
            retag: Some(Retag {
                map: VidMap::Low12,
                pcp: 5,
            }),
            ..DecapConfig::default()
        })
        .unwrap();
        let mut f = VecFrame::new(&vxlan_frame(4789, 0x12345, &inner()));
        let Ok(DecapOutcome::Decapsulated(info)) = d.decap(&mut f) else {
            panic!()
        };
        assert_eq!(info.vlan, Some(0x345));
        let i = inner();
        assert_eq!(&f.data()[..12], &i[..12]);
        assert_eq!(&f.data()[12..16], &[0x81, 0x00, 0xa3, 0x45]);
        assert_eq!(&f.data()[16..], &i[12..]);
        let mut f = VecFrame::new(&vxlan_frame(4789, 0x1000, &inner()));
        d.decap(&mut f).unwrap();
        assert_eq!(f.data(), &inner()[..]);
        assert_eq!(d.counters().retag_unmapped, 1);
    }

    #[test]
    fn vid_table_and_config_errors() {
        let m = VidMap::Table {
            entries: vec![(7, 70), (9, 90)],
            default: Some(1),
        };
        assert_eq!(
            (m.vid(7), m.vid(9), m.vid(8)),
            (Some(70), Some(90), Some(1))
        );
        let bad = |cfg: DecapConfig| Decap::new(cfg).err();
        assert_eq!(
            bad(DecapConfig {
                max_layers: 0,
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::MaxLayers(0))
        );
        assert_eq!(
            bad(DecapConfig {
                geneve_ports: vec![4789],
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::PortClash(4789))
        );
        assert_eq!(
            bad(DecapConfig {
                vxlan_ports: (1..=9).collect(),
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::TooManyPorts)
        );
        assert_eq!(
            bad(DecapConfig {
                vxlan_ports: vec![0],
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::PortZero)
        );
        assert_eq!(
            bad(DecapConfig {
                retag: Some(Retag {
                    map: VidMap::Table {
                        entries: vec![(3, 1), (3, 2)],
                        default: None
                    },
                    pcp: 0
                }),
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::DuplicateId(3))
        );
        assert_eq!(
            bad(DecapConfig {
                retag: Some(Retag {
                    map: VidMap::Table {
                        entries: vec![(3, 4095)],
                        default: None
                    },
                    pcp: 0
                }),
                ..DecapConfig::default()
            }),
            Some(DecapConfigError::Vid { id: 3, vid: 4095 })
        );
    }
}
