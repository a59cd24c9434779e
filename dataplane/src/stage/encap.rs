//! encap: wrap a frame in its destination's tunnel.
//!
//! An [`EncapTemplate`] is built once per destination from an
//! [`EncapConfig`]: it holds the outer headers (Ethernet, optional 802.1Q,
//! IPv4 or IPv6, UDP or GRE, tunnel header) already emitted, plus the
//! per-destination state (IPv4 ID, GRE/VXLAN sequence numbers, counters).
//! Per packet it prepends those bytes into the frame's headroom — the payload
//! is never copied — and patches what varies:
//!
//! - outer lengths; IPv4 ID and header checksum (the constant words are
//!   summed once at build time, so the per-packet checksum is two adds and a
//!   fold); IPv6 flow label;
//! - UDP source port from a symmetric hash of the inner flow, in
//!   49152–65535 (RFC 7348 §5), so both directions of a flow take the same
//!   ECMP path; UDP checksum 0 over IPv4 (RFC 7348), computed over IPv6
//!   (DESIGN §5: RFC 8200 wants one; zero-checksum receivers are opt-in);
//! - GRE sequence number (ERSPAN II/III), VXLAN extended sequence;
//! - ERSPAN T bit when the inner frame was sliced (by the slice stage or
//!   here to fit the MTU), ERSPAN III timestamp, and the [`TagInfo`]
//!   fields — mapped by [`crate::stage::tag`], the one place that decides
//!   which origin fact goes where.
//!
//! Outer IPv4 always has DF set and nothing is ever fragmented: a frame
//! whose encapsulation would exceed the uplink MTU is cut to fit
//! ([`OversizePolicy::TruncateToMtu`], T=1 for ERSPAN) or dropped and
//! counted ([`OversizePolicy::Drop`]).
//!
//! ERSPAN III timestamps: [`TimestampMode::Ieee1588`] (the default) sends
//! `Gra=10`: nanoseconds within the second in the 32-bit header field and
//! the seconds in platform sub-header ID 3 (O=1), i.e. full ns precision
//! from the `now_ns` argument (ns since the Unix epoch). Linux's ERSPAN
//! receiver ignores O and would take the sub-header for frame bytes; for
//! such receivers [`TimestampMode::Us100`] sends `Gra=00`, 100 µs ticks in
//! 32 bits (wrapping after ~5 days) and no sub-header.

use std::net::IpAddr;

use thiserror::Error;

use crate::frame::Frame;
use crate::stage::parse::{Fragment, Layers};
use crate::stage::tag::{self, ErspanWords, TagInfo, VxlanExtended};
use crate::wire::bytes::{set_u16, u32_at};
use crate::wire::ethernet::{self, Address, EtherType};
use crate::wire::{checksum, erspan, geneve, gre, ipv4, ipv6, udp, vlan, vxlan, IpProtocol};

/// Lowest UDP source port encap uses (RFC 7348 §5: the dynamic range).
pub const UDP_SRC_PORT_MIN: u16 = 49152;
/// Room for the longest outer header: Ethernet, 802.1Q, IPv6, GRE with
/// sequence, ERSPAN III with its platform sub-header (86 bytes).
pub const MAX_HEADER_LEN: usize = 96;
/// The smallest inner frame an MTU must leave room for: a minimum Ethernet
/// frame without FCS. A smaller budget would cut every frame to nothing useful.
pub const MIN_INNER_LEN: usize = 60;

/// How a destination's tunnel is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncapConfig {
    pub tunnel: TunnelConfig,
    pub outer: OuterConfig,
    /// Uplink MTU: the largest outer IP packet (header included), as Linux
    /// counts it. 1500 by default.
    pub mtu: u16,
    pub oversize: OversizePolicy,
}

/// The tunnel header, per destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelConfig {
    /// VXLAN (RFC 7348). `udp_dst_port` 4789 unless the receiver says
    /// otherwise; `extended` opts in to DESIGN §5's use of reserved bits.
    Vxlan {
        vni: u32,
        udp_dst_port: u16,
        extended: Option<VxlanExtendedConfig>,
    },
    /// ERSPAN type II: GRE with S=1, protocol 0x88BE.
    ErspanII { session: u16 },
    /// ERSPAN type III: GRE with S=1, protocol 0x22EB. `hw_id` `None` sends
    /// the appliance ID's low 6 bits (see [`crate::stage::tag`]).
    ErspanIII {
        session: u16,
        hw_id: Option<u8>,
        timestamp: TimestampMode,
    },
    /// L2GRE: GRE with K=1, protocol 0x6558 (TEB); the key is the tag.
    L2Gre { key: u32 },
    /// Geneve (RFC 8926) to UDP 6081, no options.
    Geneve { vni: u32 },
}

impl TunnelConfig {
    /// Standard VXLAN to the IANA port.
    pub const fn vxlan(vni: u32) -> TunnelConfig {
        TunnelConfig::Vxlan {
            vni,
            udp_dst_port: vxlan::PORT,
            extended: None,
        }
    }

    /// ERSPAN III with the default timestamp and the appliance's hardware ID.
    pub const fn erspan3(session: u16) -> TunnelConfig {
        TunnelConfig::ErspanIII {
            session,
            hw_id: None,
            timestamp: TimestampMode::Ieee1588,
        }
    }
}

/// The opt-in VXLAN extended mode (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanExtendedConfig {
    /// Flags byte to send instead of `0x08`, so the receiver can tell the
    /// mode apart. Keep the I bit (0x08) set for the VNI to count.
    pub flags: u8,
}

impl Default for VxlanExtendedConfig {
    fn default() -> Self {
        VxlanExtendedConfig {
            flags: vxlan::FLAG_I,
        }
    }
}

/// ERSPAN III timestamp granularity (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampMode {
    /// `Gra=10`: ns within the second, seconds in sub-header ID 3.
    #[default]
    Ieee1588,
    /// `Gra=00`: 100 µs ticks, no sub-header (Linux-compatible).
    Us100,
}

/// The outer headers, per destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterConfig {
    pub src_mac: Address,
    /// The next hop's MAC (resolved by the control plane).
    pub dst_mac: Address,
    pub vlan: Option<OuterVlan>,
    /// Both addresses must be of the same family.
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// 6 bits.
    pub dscp: u8,
    /// IPv4 TTL / IPv6 hop limit; not 0.
    pub ttl: u8,
}

/// An 802.1Q tag on the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterVlan {
    /// 1–4094.
    pub vid: u16,
    /// 0–7.
    pub pcp: u8,
}

/// What to do with a frame whose encapsulation would exceed the MTU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OversizePolicy {
    /// Cut the inner frame to fit (ERSPAN T=1) — `truncate_to_mtu`.
    #[default]
    TruncateToMtu,
    /// Drop it and count `dropped_too_big`.
    Drop,
}

/// Why a config cannot make a template. Each names the value at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncapConfigError {
    #[error("VNI {0} does not fit in 24 bits")]
    Vni(u32),
    #[error("ERSPAN session ID {0} does not fit in 10 bits")]
    Session(u16),
    #[error("ERSPAN hardware ID {0} does not fit in 6 bits")]
    HwId(u8),
    #[error("DSCP {0} does not fit in 6 bits")]
    Dscp(u8),
    #[error("TTL must not be 0")]
    Ttl,
    #[error("outer VLAN ID {0} is not in 1..=4094")]
    Vid(u16),
    #[error("outer VLAN PCP {0} is not in 0..=7")]
    Pcp(u8),
    #[error("outer source and destination addresses are of different families")]
    AddressFamilies,
    #[error("UDP destination port must not be 0")]
    UdpPort,
    #[error("MTU {mtu} leaves less than {MIN_INNER_LEN} bytes for the inner frame (needs at least {need})")]
    Mtu { mtu: u16, need: usize },
}

/// What encap needs to know about one packet besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncapMeta<'a> {
    /// What parse found in the inner frame: the flow for the UDP source
    /// port hash (without it, the MAC pair is hashed).
    pub layers: Option<&'a Layers>,
    /// [`flow_hash`] of the frame when the caller has it already (the flow
    /// meter computes it): encap then does not hash again.
    pub flow_hash: Option<u32>,
    pub tag: TagInfo,
    /// The matching rule's tag ([`crate::stage::filter::DestAction::tag`]):
    /// overrides the destination's VNI / session / key.
    pub tag_override: Option<u32>,
    /// The slice stage cut this frame (ERSPAN T bit).
    pub sliced: bool,
}

/// Why one frame was not encapsulated. Each is also counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncapError {
    #[error("encapsulated frame would exceed the MTU (oversize policy: drop)")]
    TooBig,
    #[error("not enough headroom for the tunnel headers")]
    NoHeadroom,
}

/// Per-destination encap counters: the frames that did not go as asked.
/// The frames encapsulated are counted where they are sent (the
/// destination's counters), not a second time per packet here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapCounters {
    /// Frames cut to fit the MTU.
    pub truncated_to_mtu: u64,
    /// Frames dropped because they did not fit and the policy is `Drop`.
    pub dropped_too_big: u64,
    /// Frames dropped for lack of headroom.
    pub no_headroom: u64,
}

/// The tunnel-specific part of a template, with the offsets encap patches.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Vxlan {
        vni: u32,
        extended: Option<u8>,
    },
    Geneve {
        vni: u32,
    },
    L2Gre {
        key: u32,
    },
    ErspanII {
        session: u16,
        words: ErspanWords,
    },
    ErspanIII {
        session: u16,
        hw_id: Option<u8>,
        timestamp: TimestampMode,
        words: ErspanWords,
    },
}

/// One destination's pre-built outer headers and per-destination state.
#[derive(Clone, Debug)]
pub struct EncapTemplate {
    hdr: [u8; MAX_HEADER_LEN],
    len: usize,
    /// Offset of the outer IP header.
    l3: usize,
    /// Offset of the UDP or GRE header.
    l4: usize,
    /// Offset of the VXLAN / Geneve / ERSPAN header (= `l4` for L2GRE).
    tun: usize,
    v4: bool,
    kind: Kind,
    /// A UDP tunnel (source port) or IPv6 (flow label): the flow hash is used.
    needs_hash: bool,
    /// A UDP tunnel over IPv6: the UDP checksum is computed.
    udp6: bool,
    /// Standard VXLAN or Geneve over IPv4: per packet only the lengths,
    /// the IPv4 ID and checksum and the UDP source port change, which
    /// [`EncapTemplate::encap_udp4`] writes without looking at the kind.
    udp4: bool,
    /// IPv4: sum of the header's constant words (length, ID and checksum
    /// zero). IPv6: the UDP pseudo-header's address and protocol words.
    base_sum: u64,
    max_inner: usize,
    oversize: OversizePolicy,
    ip_id: u16,
    /// GRE sequence (ERSPAN) or VXLAN extended sequence of the next packet.
    seq: u32,
    /// The ERSPAN III timestamp words of the last time given, kept for
    /// the next frames: a burst's frames share one time.
    stamp: Stamp,
    counters: EncapCounters,
}

/// The ERSPAN III timestamp words for one `now_ns`.
#[derive(Clone, Copy, Debug, Default)]
struct Stamp {
    /// The time they are for.
    ns: u64,
    lo: u32,
    hi: u32,
    /// The template has the platform sub-header that `hi` goes into.
    sub: bool,
}

impl Stamp {
    /// The ERSPAN III timestamp words for `now_ns` in the granularity of
    /// `kind`; nothing for other tunnels.
    // Out of line: asked once a burst.
    #[inline(never)]
    fn of(kind: Kind, now_ns: u64) -> Stamp {
        match kind {
            Kind::ErspanIII {
                timestamp: TimestampMode::Ieee1588,
                ..
            } => Stamp {
                ns: now_ns,
                lo: (now_ns % NS_PER_S) as u32,
                hi: (now_ns / NS_PER_S) as u32,
                sub: true,
            },
            Kind::ErspanIII {
                timestamp: TimestampMode::Us100,
                ..
            } => Stamp {
                ns: now_ns,
                lo: (now_ns / NS_PER_100US) as u32,
                hi: 0,
                sub: false,
            },
            _ => Stamp {
                ns: now_ns,
                ..Stamp::default()
            },
        }
    }
}

const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_100US: u64 = 100_000;

impl EncapTemplate {
    /// Validates `cfg` and builds the outer headers.
    pub fn new(cfg: &EncapConfig) -> Result<EncapTemplate, EncapConfigError> {
        let o = &cfg.outer;
        if o.dscp > 63 {
            return Err(EncapConfigError::Dscp(o.dscp));
        }
        if o.ttl == 0 {
            return Err(EncapConfigError::Ttl);
        }
        if let Some(v) = o.vlan {
            if v.vid == 0 || v.vid > 4094 {
                return Err(EncapConfigError::Vid(v.vid));
            }
            if v.pcp > 7 {
                return Err(EncapConfigError::Pcp(v.pcp));
            }
        }
        let v4 = match (o.src_ip, o.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => true,
            (IpAddr::V6(_), IpAddr::V6(_)) => false,
            _ => return Err(EncapConfigError::AddressFamilies),
        };
        let mut kind = match cfg.tunnel {
            TunnelConfig::Vxlan {
                vni,
                udp_dst_port,
                extended,
            } => {
                if vni > tag::VNI_MASK {
                    return Err(EncapConfigError::Vni(vni));
                }
                if udp_dst_port == 0 {
                    return Err(EncapConfigError::UdpPort);
                }
                Kind::Vxlan {
                    vni,
                    extended: extended.map(|x| x.flags),
                }
            }
            TunnelConfig::Geneve { vni } => {
                if vni > tag::VNI_MASK {
                    return Err(EncapConfigError::Vni(vni));
                }
                Kind::Geneve { vni }
            }
            TunnelConfig::L2Gre { key } => Kind::L2Gre { key },
            TunnelConfig::ErspanII { session } => {
                if u32::from(session) > tag::SESSION_MASK {
                    return Err(EncapConfigError::Session(session));
                }
                Kind::ErspanII {
                    session,
                    words: ErspanWords::default(),
                }
            }
            TunnelConfig::ErspanIII {
                session,
                hw_id,
                timestamp,
            } => {
                if u32::from(session) > tag::SESSION_MASK {
                    return Err(EncapConfigError::Session(session));
                }
                if let Some(h) = hw_id.filter(|h| *h > tag::HW_ID_MASK) {
                    return Err(EncapConfigError::HwId(h));
                }
                Kind::ErspanIII {
                    session,
                    hw_id,
                    timestamp,
                    words: ErspanWords::default(),
                }
            }
        };

        let mut hdr = [0u8; MAX_HEADER_LEN];
        let ip_type = if v4 { EtherType::Ipv4 } else { EtherType::Ipv6 };
        // Every emit_to below writes into a 96-byte buffer whose worst case
        // use is 86 bytes, so none can fail; `?`-free `unwrap_or` keeps the
        // builder total anyway.
        let mut at = ethernet::Repr {
            src_addr: o.src_mac,
            dst_addr: o.dst_mac,
            ethertype: if o.vlan.is_some() {
                EtherType::Vlan
            } else {
                ip_type
            },
        }
        .emit_to(&mut hdr)
        .unwrap_or(0);
        if let Some(v) = o.vlan {
            at += vlan::Repr {
                pcp: v.pcp,
                dei: false,
                vid: v.vid,
                ethertype: ip_type,
            }
            .emit_to(&mut hdr[at..])
            .unwrap_or(0);
        }
        let l3 = at;
        let proto = match kind {
            Kind::Vxlan { .. } | Kind::Geneve { .. } => IpProtocol::Udp,
            _ => IpProtocol::Gre,
        };
        at += match (o.src_ip, o.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
                ttl: o.ttl,
                dscp: o.dscp,
                dont_frag: true,
                ..ipv4::Repr::new(s, d, proto, 0)
            }
            .emit_to(&mut hdr[at..]),
            (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
                hop_limit: o.ttl,
                traffic_class: o.dscp << 2,
                ..ipv6::Repr::new(s, d, proto, 0)
            }
            .emit_to(&mut hdr[at..]),
            _ => Err(crate::wire::Error::Malformed),
        }
        .unwrap_or(0);
        let l4 = at;
        let udp_dst = match cfg.tunnel {
            TunnelConfig::Vxlan { udp_dst_port, .. } => Some(udp_dst_port),
            TunnelConfig::Geneve { .. } => Some(geneve::PORT),
            _ => None,
        };
        if let Some(dst_port) = udp_dst {
            at += udp::Repr {
                src_port: UDP_SRC_PORT_MIN,
                dst_port,
                payload_len: 0,
            }
            .emit_to(&mut hdr[at..])
            .unwrap_or(0);
        }
        let gre_repr = match kind {
            Kind::L2Gre { key } => Some(gre::Repr {
                key: Some(key),
                ..gre::Repr::new(EtherType::Teb)
            }),
            Kind::ErspanII { .. } => Some(gre::Repr {
                sequence: Some(0),
                ..gre::Repr::new(EtherType::ErspanII)
            }),
            Kind::ErspanIII { .. } => Some(gre::Repr {
                sequence: Some(0),
                ..gre::Repr::new(EtherType::ErspanIII)
            }),
            _ => None,
        };
        if let Some(g) = gre_repr {
            at += g.emit_to(&mut hdr[at..]).unwrap_or(0);
        }
        let tun = at;
        // ERSPAN COS from the outer DSCP's class selector, as Linux does.
        let cos = o.dscp >> 3;
        at += match kind {
            Kind::Vxlan { vni, extended } => vxlan::Repr {
                flags: extended.unwrap_or(vxlan::FLAG_I),
                ..vxlan::Repr::new(vni)
            }
            .emit_to(&mut hdr[at..]),
            Kind::Geneve { vni } => geneve::Repr::new(vni).emit_to(&mut hdr[at..]),
            Kind::L2Gre { .. } => Ok(0),
            Kind::ErspanII { session, .. } => erspan::Repr::TypeII(erspan::TypeII {
                cos,
                session_id: session,
                ..erspan::TypeII::default()
            })
            .emit_to(&mut hdr[at..]),
            Kind::ErspanIII {
                session,
                hw_id,
                timestamp,
                ..
            } => erspan::Repr::TypeIII(erspan::TypeIII {
                vlan: 0,
                cos,
                bso: 0,
                truncated: false,
                session_id: session,
                timestamp: 0,
                sgt: 0,
                // An Ethernet frame (FT=0) with P=1, as Linux sends it.
                p: true,
                frame_type: erspan::FRAME_TYPE_ETHERNET,
                hw_id: hw_id.unwrap_or(0),
                egress: false,
                granularity: match timestamp {
                    TimestampMode::Ieee1588 => erspan::Granularity::Ieee1588,
                    TimestampMode::Us100 => erspan::Granularity::Us100,
                },
                platform: match timestamp {
                    TimestampMode::Ieee1588 => Some(erspan::Platform::upper_timestamp(0, 0)),
                    TimestampMode::Us100 => None,
                },
            })
            .emit_to(&mut hdr[at..]),
        }
        .unwrap_or(0);
        let len = at;
        // The ERSPAN words' constant bits, read once here rather than per packet.
        if let Kind::ErspanII { words, .. } | Kind::ErspanIII { words, .. } = &mut kind {
            *words = ErspanWords::from_header(hdr.get(tun..len).unwrap_or(&[]));
        }

        let outer_l3 = len - l3;
        let max_inner = usize::from(cfg.mtu).saturating_sub(outer_l3);
        if max_inner < MIN_INNER_LEN {
            return Err(EncapConfigError::Mtu {
                mtu: cfg.mtu,
                need: outer_l3 + MIN_INNER_LEN,
            });
        }

        let base_sum = match (o.src_ip, o.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                let mut h = [0u8; ipv4::MIN_HEADER_LEN];
                h.copy_from_slice(&hdr[l3..l3 + ipv4::MIN_HEADER_LEN]);
                // Total length, ID and checksum vary per packet.
                h[2..6].fill(0);
                h[10..12].fill(0);
                checksum::sum(&h, 0)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_v6(&s, &d, 17, 0),
            _ => 0,
        };

        let udp = matches!(kind, Kind::Vxlan { .. } | Kind::Geneve { .. });
        Ok(EncapTemplate {
            hdr,
            len,
            l3,
            l4,
            tun,
            v4,
            kind,
            needs_hash: udp || !v4,
            udp6: udp && !v4,
            udp4: v4
                && matches!(
                    kind,
                    Kind::Vxlan { extended: None, .. } | Kind::Geneve { .. }
                ),
            base_sum,
            max_inner,
            oversize: cfg.oversize,
            ip_id: 0,
            seq: 0,
            stamp: Stamp::of(kind, 0),
            counters: EncapCounters::default(),
        })
    }

    /// Bytes prepended to every frame.
    pub fn header_len(&self) -> usize {
        self.len
    }

    /// The pre-built outer headers (per-packet fields still zero).
    pub fn header(&self) -> &[u8] {
        &self.hdr[..self.len]
    }

    /// Whether a packet's outer checksum covers its inner frame (UDP over
    /// IPv6), which then has to be one contiguous segment to get one.
    pub fn checksums_payload(&self) -> bool {
        self.udp6
    }

    /// The longest inner frame that fits the MTU.
    pub fn max_inner_len(&self) -> usize {
        self.max_inner
    }

    pub fn counters(&self) -> &EncapCounters {
        &self.counters
    }

    /// The sequence number the next encapsulated packet gets: the GRE
    /// sequence (ERSPAN II/III) or, in VXLAN extended mode, the 24-bit
    /// sequence (low bits of this counter). Unused by other tunnels.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Continues numbering from `seq`. With several workers per destination
    /// the runtime reserves a block of a shared counter per burst and sets
    /// its start here, so numbers stay unique across workers and a receiver
    /// can count gaps as loss.
    pub fn set_next_seq(&mut self, seq: u32) {
        self.seq = seq;
    }

    /// The outer IPv4 header's per-packet fields in the copied template's
    /// IPv4 header `ip`: total length, the next ID, and the checksum
    /// patched from the template's precomputed sum.
    #[inline(always)]
    fn outer_ipv4(&mut self, ip: &mut [u8; ipv4::MIN_HEADER_LEN], ip_len: u16) {
        let id = self.ip_id;
        self.ip_id = id.wrapping_add(1);
        let c = ipv4_checksum(self.base_sum, ip_len, id);
        // Total length and ID are adjacent: one store.
        let len_id = u32::from(ip_len) << 16 | u32::from(id);
        ip[2..6].copy_from_slice(&len_id.to_be_bytes());
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Encapsulates one frame. `now_ns` (ns since the Unix epoch) is only
    /// read by ERSPAN III, whose timestamp words are computed when it
    /// changes (once a burst), not per frame. On error (counted) the frame
    /// is left as it came.
    // Inlined into the hoisted loops: a call per packet saved and restored
    // six registers and passed the meta through memory, for a short path
    // of a few dozen instructions.
    #[inline(always)]
    pub fn encap<F: Frame>(
        &mut self,
        frame: &mut F,
        meta: &EncapMeta<'_>,
        now_ns: u64,
    ) -> Result<(), EncapError> {
        match self.short_path_hash(frame, meta) {
            Some(hash) => self.encap_udp4(frame, hash),
            None => self.encap_general(frame, *meta, now_ns),
        }
    }

    /// Makes the template's ERSPAN III timestamp words those of `now_ns`.
    #[inline(always)]
    fn stamp_at(&mut self, now_ns: u64) {
        if self.stamp.ns != now_ns {
            self.stamp = Stamp::of(self.kind, now_ns);
        }
    }

    /// [`EncapTemplate::encap`] off the VXLAN short path: ERSPAN III's
    /// short path, else [`EncapTemplate::encap_one`]. Out of line, with the
    /// meta by value: a hoisted loop then builds no meta in memory for the
    /// inlined VXLAN short path, whose fields stay in registers, and carries
    /// no more live values through it (inlined, the ERSPAN III path cost
    /// full-1dest +8 instructions a packet).
    #[inline(never)]
    fn encap_general<F: Frame>(
        &mut self,
        frame: &mut F,
        meta: EncapMeta<'_>,
        now_ns: u64,
    ) -> Result<(), EncapError> {
        if let Kind::ErspanIII {
            session,
            hw_id,
            words,
            ..
        } = self.kind
        {
            if self.v4 && meta.tag_override.is_none() && frame.pkt_len() <= self.max_inner {
                self.stamp_at(now_ns);
                return self.encap_erspan3_v4(frame, &meta, session, hw_id, words);
            }
        }
        self.encap_one(frame, &meta, now_ns)
    }

    /// The frame's [`flow_hash`] (the caller's when it has it) when the
    /// frame takes [`EncapTemplate::encap_udp4`]: a `udp4` template, no
    /// rule's tag, and a frame within the MTU. None sends it the general
    /// way. The first two are the destination's and the rule's, so they go
    /// the same way for every packet of a hoisted loop.
    #[inline(always)]
    fn short_path_hash<F: Frame>(&self, frame: &F, meta: &EncapMeta<'_>) -> Option<u32> {
        if !self.udp4 || meta.tag_override.is_some() || frame.pkt_len() > self.max_inner {
            return None;
        }
        Some(match meta.flow_hash {
            Some(h) => h,
            // The frame's bytes are found only for a frame without IP.
            None => fold32(flow_hash64_with(meta.layers, || frame.data())),
        })
    }

    /// The short paths' start: the template's bytes prepended to the
    /// frame, and the outer IP packet's length, which fits in 16 bits
    /// (max_inner keeps it within the MTU).
    #[inline(always)]
    fn prepend_template<'f, F: Frame>(
        &mut self,
        frame: &'f mut F,
    ) -> Result<(&'f mut [u8], u16), EncapError> {
        let total = frame.pkt_len() + self.len;
        let Ok(h) = frame.prepend(self.len) else {
            self.counters.no_headroom += 1;
            return Err(EncapError::NoHeadroom);
        };
        copy_header(h, &self.hdr);
        Ok((h, (total - self.l3) as u16))
    }

    /// [`EncapTemplate::encap`] for a `udp4` template and no rule's tag:
    /// the template's bytes, then the IPv4 total length, ID and checksum
    /// (from the template's pre-summed words) and the UDP source port and
    /// length, `hash` the frame's [`flow_hash`]. Only for a frame within
    /// the MTU: a longer one takes the general path.
    #[inline(always)]
    fn encap_udp4<F: Frame>(&mut self, frame: &mut F, hash: u32) -> Result<(), EncapError> {
        let l3 = self.l3;
        let (h, ip_len) = self.prepend_template(frame)?;
        // The template's IPv4 header has no options, so its UDP header
        // (`l4`) follows it: one view of both, one bounds check.
        let headers = h
            .get_mut(l3..)
            .and_then(|r| r.split_first_chunk_mut::<{ ipv4::MIN_HEADER_LEN }>())
            .and_then(|(ip, r)| Some((ip, r.first_chunk_mut::<{ udp::HEADER_LEN }>()?)));
        if let Some((ip, u)) = headers {
            self.outer_ipv4(ip, ip_len);
            let udp_len = ip_len - ipv4::MIN_HEADER_LEN as u16;
            u[0..2].copy_from_slice(&udp_src_port(hash).to_be_bytes());
            u[4..6].copy_from_slice(&udp_len.to_be_bytes());
        }
        Ok(())
    }

    /// [`EncapTemplate::encap`] for an ERSPAN III over IPv4 template and
    /// no rule's tag, a frame within the MTU: the template's bytes, then
    /// the IPv4 total length, ID and checksum, the GRE sequence number, and
    /// the ERSPAN III words ([`erspan3_fields`], as the general path writes
    /// them) with the template's timestamp words. The kind's fields are
    /// the caller's match.
    #[inline(always)]
    fn encap_erspan3_v4<F: Frame>(
        &mut self,
        frame: &mut F,
        meta: &EncapMeta<'_>,
        session: u16,
        hw_id: Option<u8>,
        words: ErspanWords,
    ) -> Result<(), EncapError> {
        let l3 = self.l3;
        let (h, ip_len) = self.prepend_template(frame)?;
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        // The template's IPv4 header has no options and its GRE header
        // only S (the sequence at +4), so GRE follows at `l4` = l3 + 20 and
        // ERSPAN at `tun` = l4 + 8: one view of all three.
        let headers = h
            .get_mut(l3..)
            .and_then(|r| r.split_first_chunk_mut::<{ ipv4::MIN_HEADER_LEN }>())
            .and_then(|(ip, r)| {
                let (g, e) = r.split_first_chunk_mut::<{ gre::BASE_LEN + 4 }>()?;
                Some((ip, g, e))
            });
        if let Some((ip, g, e)) = headers {
            self.outer_ipv4(ip, ip_len);
            g[4..8].copy_from_slice(&seq.to_be_bytes());
            let session = tag::session(session, None);
            erspan3_fields(e, &words, meta, session, meta.sliced, hw_id, self.stamp);
        }
        Ok(())
    }

    /// Encapsulates a burst: `verdicts[i]` says what happened to
    /// `frames[i]`. Processes as many frames as all three slices have;
    /// returns how many were encapsulated.
    pub fn encap_burst<F: Frame>(
        &mut self,
        frames: &mut [F],
        metas: &[EncapMeta<'_>],
        now_ns: u64,
        verdicts: &mut [Result<(), EncapError>],
    ) -> usize {
        let mut ok = 0;
        for ((f, m), v) in frames.iter_mut().zip(metas).zip(verdicts.iter_mut()) {
            *v = self.encap(f, m, now_ns);
            ok += usize::from(v.is_ok());
        }
        ok
    }

    // Out of line: the short path above stays small where it is inlined.
    #[inline(never)]
    fn encap_one<F: Frame>(
        &mut self,
        frame: &mut F,
        meta: &EncapMeta<'_>,
        now_ns: u64,
    ) -> Result<(), EncapError> {
        let hl = self.len;
        if frame.headroom() < hl {
            self.counters.no_headroom += 1;
            return Err(EncapError::NoHeadroom);
        }
        let mut truncated = meta.sliced;
        if frame.pkt_len() > self.max_inner {
            match self.oversize {
                OversizePolicy::Drop => {
                    self.counters.dropped_too_big += 1;
                    return Err(EncapError::TooBig);
                }
                OversizePolicy::TruncateToMtu => {
                    frame.truncate(self.max_inner);
                    truncated = true;
                    self.counters.truncated_to_mtu += 1;
                }
            }
        }
        let hash = match (self.needs_hash, meta.flow_hash) {
            (false, _) => 0,
            (true, Some(h)) => h,
            (true, None) => flow_hash(meta.layers, frame.data()),
        };
        let total = frame.pkt_len() + hl;
        let (l3, l4, tun) = (self.l3, self.l4, self.tun);
        let Ok(h) = frame.prepend(hl) else {
            // Unreachable after the headroom check; counted rather than trusted.
            self.counters.no_headroom += 1;
            return Err(EncapError::NoHeadroom);
        };
        let tpl = &self.hdr;
        copy_header(h, tpl);
        // From here on the frame's header bytes are only written, never
        // read: every field is composed from the template (`tpl`) and the
        // packet's facts. A narrow load of bytes the copy just stored stalls
        // on store forwarding — measured as the hottest spot before.

        // Fixed-size views of each header (`arr`) let the field writes below
        // compile without bounds checks. The offsets are the template's own,
        // so every view exists; were that ever false, the field would keep
        // the template's value rather than panic.

        // Both lengths fit in 16 bits: max_inner keeps the IP packet within the MTU.
        let ip_len = (total - l3) as u16;
        if self.v4 {
            if let Some(ip) = arr::<{ ipv4::MIN_HEADER_LEN }>(h, l3) {
                self.outer_ipv4(ip, ip_len);
            }
        } else if let Some(ip) = arr::<8>(h, l3) {
            let plen = ip_len - ipv6::HEADER_LEN as u16;
            ip[4..6].copy_from_slice(&plen.to_be_bytes());
            // RFC 6438: the flow label from the inner flow, for ECMP.
            let w0 = u32_at(tpl, l3) & 0xfff0_0000;
            ip[..4].copy_from_slice(&(w0 | (hash >> 12)).to_be_bytes());
        }

        let tag = &meta.tag;
        let udp_len = (total - l4) as u16;
        match self.kind {
            Kind::Vxlan { vni, extended } => {
                let ext = extended.map(|flags| {
                    let sequence = self.seq;
                    // 24 bits go on the wire (tag::apply_vxlan masks).
                    self.seq = self.seq.wrapping_add(1);
                    VxlanExtended { flags, sequence }
                });
                if let Some(u) = arr::<16>(h, l4) {
                    u[0..2].copy_from_slice(&udp_src_port(hash).to_be_bytes());
                    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
                    // The template's VXLAN header is the standard one with
                    // the destination's VNI: only a rule's tag or the
                    // extended mode changes it.
                    if meta.tag_override.is_some() || ext.is_some() {
                        let vni = tag::vni(vni, meta.tag_override);
                        tag::apply_vxlan(&mut u[8..], tag, vni, ext);
                    }
                }
            }
            Kind::Geneve { vni } => {
                if let Some(u) = arr::<16>(h, l4) {
                    u[0..2].copy_from_slice(&udp_src_port(hash).to_be_bytes());
                    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
                    if meta.tag_override.is_some() {
                        let vni = tag::vni(vni, meta.tag_override);
                        geneve::Packet::new_unchecked(&mut u[8..]).set_vni_reserved(vni, 0);
                    }
                }
            }
            Kind::L2Gre { key } => {
                // The template's GRE header has K only: the key is at +4.
                if meta.tag_override.is_some() {
                    if let Some(g) = arr::<8>(h, l4) {
                        let key = tag::gre_key(key, meta.tag_override);
                        g[4..8].copy_from_slice(&key.to_be_bytes());
                    }
                }
            }
            Kind::ErspanII { session, words } => {
                let seq = self.seq;
                self.seq = seq.wrapping_add(1);
                let session = tag::session(session, meta.tag_override);
                let orig_vlan = meta.layers.and_then(|l| l.outer_vlan);
                // GRE with S only (sequence at +4), then the 8-byte header.
                if let Some(g) = arr::<16>(h, l4) {
                    g[4..8].copy_from_slice(&seq.to_be_bytes());
                    tag::write_erspan2(&words, &mut g[8..], tag, session, truncated, orig_vlan);
                }
            }
            Kind::ErspanIII {
                session,
                hw_id,
                words,
                ..
            } => {
                let seq = self.seq;
                self.seq = seq.wrapping_add(1);
                let session = tag::session(session, meta.tag_override);
                self.stamp_at(now_ns);
                let stamp = self.stamp;
                if let Some(g) = arr::<8>(h, l4) {
                    g[4..8].copy_from_slice(&seq.to_be_bytes());
                }
                if let Some(e) = h.get_mut(tun..) {
                    erspan3_fields(e, &words, meta, session, truncated, hw_id, stamp);
                }
            }
        }

        if self.udp6 {
            self.fill_udp6_checksum(frame, total);
        }
        Ok(())
    }

    /// The UDP checksum over IPv6 covers the whole datagram, payload
    /// included: the only per-packet cost that grows with the frame. A frame
    /// whose bytes are not all contiguous (a chained mbuf) keeps checksum 0,
    /// which RFC 6935 allows for tunnels and Linux accepts with
    /// `udp6zerocsumrx`.
    fn fill_udp6_checksum<F: Frame>(&self, frame: &mut F, total: usize) {
        let l4 = self.l4;
        let data = frame.data();
        if data.len() != total {
            return;
        }
        let udp_len = (total - l4) as u64;
        let acc = checksum::sum(data.get(l4..).unwrap_or(&[]), self.base_sum + udp_len);
        let c = match checksum::finish(acc) {
            0 => 0xffff,
            c => c,
        };
        set_u16(frame.data_mut(), l4 + 6, c);
    }
}

/// The ERSPAN III header's per-packet fields in `e`, the header copied
/// from the template (and what follows it): [`tag::write_erspan3`]'s, then
/// the timestamp, its upper bits in the platform sub-header when the
/// template has one. Both encap paths write them here.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn erspan3_fields(
    e: &mut [u8],
    words: &ErspanWords,
    meta: &EncapMeta<'_>,
    session: u16,
    truncated: bool,
    hw_id: Option<u8>,
    stamp: Stamp,
) {
    const WITH_SUB: usize = erspan::TYPE_III_LEN + erspan::PLATFORM_LEN;
    let orig_vlan = meta.layers.and_then(|l| l.outer_vlan);
    // A copy: were `write_erspan3` left out of line, a reference into the
    // caller's meta would keep the whole meta in memory for every packet,
    // whichever path it takes.
    let tag = &{ meta.tag };
    if stamp.sub {
        if let Some(e) = e.first_chunk_mut::<WITH_SUB>() {
            tag::write_erspan3(words, e, tag, session, truncated, hw_id, orig_vlan);
            e[4..8].copy_from_slice(&stamp.lo.to_be_bytes());
            // Sub-header ID 3, word 1: the upper timestamp bits.
            e[16..20].copy_from_slice(&stamp.hi.to_be_bytes());
        }
    } else if let Some(e) = e.first_chunk_mut::<{ erspan::TYPE_III_LEN }>() {
        tag::write_erspan3(words, e, tag, session, truncated, hw_id, orig_vlan);
        e[4..8].copy_from_slice(&stamp.lo.to_be_bytes());
    }
}

/// The outer IPv4 header checksum from the template's pre-summed constant
/// words plus this packet's total length and ID. The base is at most ten
/// 16-bit words, so the sum stays under 2^21 and two folds always finish
/// it: a fixed sequence instead of `checksum::finish`'s general loop,
/// which showed up in the per-packet profile.
#[inline(always)]
fn ipv4_checksum(base: u64, total_len: u16, id: u16) -> u16 {
    let s = base + u64::from(total_len) + u64::from(id);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The `N` bytes of `b` at `at` as an array, if they are all there.
#[inline(always)]
fn arr<const N: usize>(b: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    b.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

/// Copies the first `dst.len()` bytes of the template into `dst` with
/// fixed-size 32-byte moves, the last one overlapping the one before: a
/// `memcpy` call for a length only known at run time costs more than the
/// copy itself at these sizes (42 to 86 bytes), and a copy loop would be
/// turned back into that call by the compiler.
#[inline(always)]
fn copy_header(dst: &mut [u8], tpl: &[u8; MAX_HEADER_LEN]) {
    let n = dst.len().min(MAX_HEADER_LEN);
    if n < 32 {
        // Shorter than any template; kept total for any caller.
        dst[..n].copy_from_slice(&tpl[..n]);
        return;
    }
    dst[..32].copy_from_slice(&tpl[..32]);
    if n > 64 {
        dst[32..64].copy_from_slice(&tpl[32..64]);
    }
    dst[n - 32..n].copy_from_slice(&tpl[n - 32..n]);
}

/// A UDP source port in 49152–65535 from a flow hash.
#[inline]
fn udp_src_port(hash: u32) -> u16 {
    // The top bits: the best mixed of a multiplicative hash.
    UDP_SRC_PORT_MIN | (hash >> 18) as u16
}

/// A hash of the inner flow that is the same for both directions: the
/// data plane's one flow hash (the UDP source port and IPv6 flow label
/// here, the distributor's worker, flow sampling, tool-group balancing,
/// and the flow table's tag through [`flow_hash64`]). Each end's
/// (address, port) is folded into 64 bits ([`flow_end`]) and the two are
/// combined by [`mix_ends`]: symmetric without ordering the ends, one
/// multiply, no data-dependent branch. A fixed key, so every worker and
/// every run agrees. Fragments hash without ports so all pieces of a
/// datagram take one path. Without IP the MAC pair and EtherType are
/// hashed instead.
#[inline(always)]
pub fn flow_hash(layers: Option<&Layers>, frame: &[u8]) -> u32 {
    fold32(flow_hash64(layers, frame))
}

/// [`flow_hash`] before its fold to 32 bits.
// Inlined: the IP case is a dozen instructions, which a call per packet
// (registers saved, the layers reloaded) doubled.
#[inline(always)]
pub fn flow_hash64(layers: Option<&Layers>, frame: &[u8]) -> u64 {
    flow_hash64_with(layers, || frame)
}

/// [`flow_hash64`] with the frame's bytes asked for only when the hash
/// reads them (no IP): a caller holding an mbuf then does not find its
/// data for every packet.
#[inline(always)]
fn flow_hash64_with<'a>(layers: Option<&Layers>, frame: impl FnOnce() -> &'a [u8]) -> u64 {
    match layers {
        Some(l) if l.ip_version != 0 => {
            let ports = l.fragment == Fragment::None;
            let pa = if ports { l.src_port } else { 0 };
            let pb = if ports { l.dst_port } else { 0 };
            mix_ends(
                flow_end(l.src_addr, pa),
                flow_end(l.dst_addr, pb),
                l.l4_proto,
            )
        }
        _ => l2_hash64(frame()),
    }
}

/// [`flow_hash64`] of a frame without IP: its MAC pair and EtherType.
#[inline(never)]
fn l2_hash64(frame: &[u8]) -> u64 {
    let mac = |at: usize| {
        let mut m = [0u8; 8];
        if let Some(s) = frame.get(at..at + 6) {
            m[2..].copy_from_slice(s);
        }
        u64::from_be_bytes(m)
    };
    let et = frame
        .get(12..14)
        .map_or(0, |e| u16::from_be_bytes([e[0], e[1]]));
    mix_ends(mac(0), mac(6), 0) ^ u64::from(et)
}

/// [`flow_hash`] of an IP flow from its two ends (address as in
/// [`Layers::src_addr`], port or 0) and protocol: for callers that read
/// them without a full parse.
#[inline(always)]
pub fn ends_hash(a: u128, pa: u16, b: u128, pb: u16, proto: u8) -> u32 {
    fold32(mix_ends(flow_end(a, pa), flow_end(b, pb), proto))
}

/// One end of a flow, (address, port) folded into 64 bits: IPv4's exactly
/// (the address in the low 32 bits, the port in the top 16), IPv6's
/// address halves xored first.
#[inline(always)]
pub fn flow_end(addr: u128, port: u16) -> u64 {
    (addr as u64) ^ (addr >> 64) as u64 ^ u64::from(port) << 48
}

/// The 64-bit flow hash of two ends ([`flow_end`]) and a protocol: the
/// keyed ends multiplied (64×64→128 bits; multiplying commutes, so the
/// ends need no ordering), the product's halves folded. The ends' sum is
/// added in so that an end equal to the key, whose product is 0 whatever
/// the other end, does not make all its flows one hash.
#[inline(always)]
pub fn mix_ends(ea: u64, eb: u64, proto: u8) -> u64 {
    const KEY: u64 = 0x9e37_79b9_7f4a_7c15;
    let k = KEY ^ u64::from(proto) << 56;
    let p = u128::from(ea ^ k) * u128::from(eb ^ k);
    ((p >> 64) as u64 ^ p as u64) ^ ea.wrapping_add(eb)
}

/// The 32 bits of a 64-bit flow hash its users take: the high half, where
/// every bit of both ends has reached.
#[inline(always)]
pub fn fold32(h: u64) -> u32 {
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VecFrame;
    use crate::stage::Direction;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn outer(v6: bool) -> OuterConfig {
        OuterConfig {
            src_mac: Address([2, 0, 0, 0, 0, 1]),
            dst_mac: Address([2, 0, 0, 0, 0, 2]),
            vlan: None,
            src_ip: if v6 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
            } else {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
            },
            dst_ip: if v6 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
            } else {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))
            },
            dscp: 0,
            ttl: 64,
        }
    }

    fn cfg(tunnel: TunnelConfig, v6: bool) -> EncapConfig {
        EncapConfig {
            tunnel,
            outer: outer(v6),
            mtu: 1500,
            oversize: OversizePolicy::TruncateToMtu,
        }
    }

    #[test]
    fn header_lengths_per_tunnel() {
        let cases = [
            (TunnelConfig::vxlan(1), false, 50),
            (TunnelConfig::vxlan(1), true, 70),
            (TunnelConfig::Geneve { vni: 1 }, false, 50),
            (TunnelConfig::L2Gre { key: 1 }, false, 42),
            (TunnelConfig::ErspanII { session: 1 }, false, 50),
            (TunnelConfig::erspan3(1), false, 62),
            (TunnelConfig::erspan3(1), true, 82),
            (
                TunnelConfig::ErspanIII {
                    session: 1,
                    hw_id: None,
                    timestamp: TimestampMode::Us100,
                },
                false,
                54,
            ),
        ];
        for (t, v6, len) in cases {
            let tpl = EncapTemplate::new(&cfg(t, v6)).unwrap();
            assert_eq!(tpl.header_len(), len, "{t:?} v6={v6}");
            assert_eq!(tpl.max_inner_len(), 1500 - (len - 14));
        }
        let mut c = cfg(TunnelConfig::erspan3(1), true);
        c.outer.vlan = Some(OuterVlan { vid: 10, pcp: 1 });
        assert_eq!(EncapTemplate::new(&c).unwrap().header_len(), 86);
    }

    #[test]
    fn bad_configs_name_the_value() {
        let mut c = cfg(TunnelConfig::vxlan(1 << 24), false);
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::Vni(1 << 24))
        );
        c.tunnel = TunnelConfig::ErspanII { session: 1024 };
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::Session(1024))
        );
        c.tunnel = TunnelConfig::ErspanIII {
            session: 1,
            hw_id: Some(64),
            timestamp: TimestampMode::Ieee1588,
        };
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::HwId(64))
        );
        c.tunnel = TunnelConfig::vxlan(1);
        c.outer.dst_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::AddressFamilies)
        );
        c.outer = outer(false);
        c.mtu = 90;
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::Mtu { mtu: 90, need: 96 })
        );
        c.mtu = 1500;
        c.outer.vlan = Some(OuterVlan { vid: 4095, pcp: 0 });
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::Vid(4095))
        );
        c.outer.vlan = None;
        c.outer.ttl = 0;
        assert_eq!(EncapTemplate::new(&c).err(), Some(EncapConfigError::Ttl));
        c.outer.ttl = 1;
        c.outer.dscp = 64;
        assert_eq!(
            EncapTemplate::new(&c).err(),
            Some(EncapConfigError::Dscp(64))
        );
    }

    #[test]
    fn ipv4_checksum_and_lengths_are_patched() {
        let mut tpl = EncapTemplate::new(&cfg(TunnelConfig::vxlan(77), false)).unwrap();
        for n in [60usize, 61, 1000] {
            let inner = vec![0xabu8; n];
            let mut f = VecFrame::new(&inner);
            tpl.encap(&mut f, &EncapMeta::default(), 0).unwrap();
            let d = f.data();
            let ip = ipv4::Packet::new_checked(&d[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert!(ip.dont_frag());
            assert_eq!(usize::from(ip.total_len()), n + 36);
            let u = udp::Packet::new_checked(ip.payload()).unwrap();
            assert_eq!(usize::from(u.len()), n + 16);
            assert_eq!(u.checksum(), 0);
            assert!(u.src_port() >= UDP_SRC_PORT_MIN);
            assert_eq!(&d[50..], &inner[..]);
        }
    }

    #[test]
    fn the_short_udp4_path_writes_the_general_paths_bytes() {
        // A rule's tag equal to the destination's VNI takes the general
        // path and must give the same bytes as the short one.
        let l = Layers {
            ip_version: 4,
            l4_proto: 17,
            src_addr: 0x0a00_0001,
            dst_addr: 0x0a00_0002,
            src_port: 5000,
            dst_port: 53,
            ..Layers::default()
        };
        for tunnel in [TunnelConfig::vxlan(77), TunnelConfig::Geneve { vni: 77 }] {
            let mut c = cfg(tunnel, false);
            c.outer.vlan = Some(OuterVlan { vid: 10, pcp: 3 });
            let mut short = EncapTemplate::new(&c).unwrap();
            let mut general = short.clone();
            for (n, flow_hash) in [(60usize, None), (61, Some(0xdead_beef)), (1000, None)] {
                let inner = vec![0xabu8; n];
                let (mut a, mut b) = (VecFrame::new(&inner), VecFrame::new(&inner));
                let meta = EncapMeta {
                    layers: Some(&l),
                    flow_hash,
                    ..EncapMeta::default()
                };
                short.encap(&mut a, &meta, 0).unwrap();
                let tagged = EncapMeta {
                    tag_override: Some(77),
                    ..meta
                };
                general.encap(&mut b, &tagged, 0).unwrap();
                assert_eq!(a.data(), b.data(), "{tunnel:?}, {n} bytes");
            }
            assert_eq!(short.counters(), general.counters());
        }
    }

    #[test]
    fn the_short_erspan3_path_writes_the_general_paths_bytes() {
        // A rule's tag equal to the destination's session takes the
        // general path and must give the same bytes as the short one, for
        // both timestamp modes, sliced frames (T) or not, a mirrored frame
        // with its own VLAN, either direction and a hardware ID given or not.
        let plain = Layers {
            ip_version: 4,
            l4_proto: 6,
            src_addr: 0x0a00_0001,
            dst_addr: 0x0a00_0002,
            ..Layers::default()
        };
        let tagged = Layers {
            outer_vlan: Some(1104),
            ..plain
        };
        let now = 1_700_000_000 * NS_PER_S + 123_456_789;
        for timestamp in [TimestampMode::Ieee1588, TimestampMode::Us100] {
            for hw_id in [None, Some(5)] {
                let mut c = cfg(
                    TunnelConfig::ErspanIII {
                        session: 8,
                        hw_id,
                        timestamp,
                    },
                    false,
                );
                c.outer.vlan = Some(OuterVlan { vid: 10, pcp: 3 });
                c.outer.dscp = 46;
                let mut short = EncapTemplate::new(&c).unwrap();
                short.set_next_seq(u32::MAX);
                let mut general = short.clone();
                let max = short.max_inner_len();
                let cases = [
                    (60usize, false, &plain, Direction::Ingress),
                    (61, true, &tagged, Direction::Egress),
                    (1000, false, &tagged, Direction::Ingress),
                    (max, true, &plain, Direction::Egress),
                ];
                for (n, sliced, l, direction) in cases {
                    let inner: Vec<u8> = (0..n).map(|i| i as u8).collect();
                    let (mut a, mut b) = (VecFrame::new(&inner), VecFrame::new(&inner));
                    let meta = EncapMeta {
                        layers: Some(l),
                        tag: TagInfo {
                            appliance_id: 0x1234,
                            input_port: 0x0321,
                            rule_id: 7,
                            direction,
                        },
                        sliced,
                        ..EncapMeta::default()
                    };
                    short.encap(&mut a, &meta, now).unwrap();
                    let overridden = EncapMeta {
                        tag_override: Some(8),
                        ..meta
                    };
                    general.encap(&mut b, &overridden, now).unwrap();
                    assert_eq!(a.data(), b.data(), "{timestamp:?} {hw_id:?}, {n} bytes");
                    let e = erspan::Packet::new_checked(&a.data()[46..]).unwrap();
                    assert_eq!(e.truncated(), sliced);
                    assert_eq!(e.session_id(), 8);
                }
                assert_eq!(short.next_seq(), general.next_seq());
                assert_eq!(short.next_seq(), 3);
                assert_eq!(short.counters(), general.counters());
            }
        }
    }

    #[test]
    fn ipv6_udp_checksum_verifies() {
        let mut tpl = EncapTemplate::new(&cfg(TunnelConfig::Geneve { vni: 5 }, true)).unwrap();
        let mut f = VecFrame::new(&[7u8; 99]);
        tpl.encap(&mut f, &EncapMeta::default(), 0).unwrap();
        let d = f.data();
        let ip = ipv6::Packet::new_checked(&d[14..]).unwrap();
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum(&IpAddr::V6(ip.src_addr()), &IpAddr::V6(ip.dst_addr())));
    }

    #[test]
    fn oversize_policies() {
        let mut c = cfg(TunnelConfig::ErspanII { session: 3 }, false);
        let mut tpl = EncapTemplate::new(&c).unwrap();
        let max = tpl.max_inner_len();
        let big = vec![1u8; max + 10];
        let mut f = VecFrame::new(&big);
        tpl.encap(&mut f, &EncapMeta::default(), 0).unwrap();
        assert_eq!(f.pkt_len(), 1500 + 14);
        assert!(erspan::Packet::new_unchecked(&f.data()[42..]).truncated());
        assert_eq!(tpl.counters().truncated_to_mtu, 1);

        let mut f = VecFrame::new(&big[..max]);
        tpl.encap(&mut f, &EncapMeta::default(), 0).unwrap();
        assert!(!erspan::Packet::new_unchecked(&f.data()[42..]).truncated());

        c.oversize = OversizePolicy::Drop;
        let mut tpl = EncapTemplate::new(&c).unwrap();
        let mut f = VecFrame::new(&big);
        assert_eq!(
            tpl.encap(&mut f, &EncapMeta::default(), 0),
            Err(EncapError::TooBig)
        );
        assert_eq!(f.data(), &big[..]);
        assert_eq!(tpl.counters().dropped_too_big, 1);

        let mut f = VecFrame::with_room(&big[..100], 10, 0);
        assert_eq!(
            tpl.encap(&mut f, &EncapMeta::default(), 0),
            Err(EncapError::NoHeadroom)
        );
        assert_eq!(f.data(), &big[..100]);
        assert_eq!(tpl.counters().no_headroom, 1);
    }

    #[test]
    fn gre_sequence_counts_per_destination() {
        let mut tpl = EncapTemplate::new(&cfg(TunnelConfig::erspan3(9), false)).unwrap();
        tpl.set_next_seq(u32::MAX - 1);
        let mut frames: Vec<VecFrame> = (0..4).map(|_| VecFrame::new(&[0u8; 64])).collect();
        let metas = [EncapMeta::default(); 4];
        let mut v = [Ok(()); 4];
        let now = 1_700_000_000 * NS_PER_S + 123_456_789;
        assert_eq!(tpl.encap_burst(&mut frames, &metas, now, &mut v), 4);
        for (i, f) in frames.iter().enumerate() {
            let g = gre::Packet::new_checked(&f.data()[34..]).unwrap();
            assert_eq!(g.sequence(), Some((i as u32).wrapping_sub(2)));
            let e = erspan::Packet::new_checked(g.payload()).unwrap();
            assert_eq!(e.timestamp(), 123_456_789);
            assert_eq!(e.platform().map(|p| p.word1), Some(1_700_000_000));
            assert_eq!(e.granularity(), erspan::Granularity::Ieee1588);
        }
        assert_eq!(tpl.next_seq(), 2);
    }

    #[test]
    fn two_fold_checksum_equals_the_general_one() {
        let worst = 10 * 0xffffu64;
        for (base, len, id) in [(0, 0, 0), (worst, 0xffff, 0xffff), (12345, 1500, 7)] {
            assert_eq!(
                ipv4_checksum(base, len, id),
                checksum::finish(base + u64::from(len) + u64::from(id))
            );
        }
    }

    #[test]
    fn flow_hash_is_symmetric_and_spreads() {
        let l = |s: u128, d: u128, sp: u16, dp: u16| Layers {
            ip_version: 4,
            l4_proto: 6,
            src_addr: s,
            dst_addr: d,
            src_port: sp,
            dst_port: dp,
            ..Layers::default()
        };
        let mut ports = std::collections::HashSet::new();
        for i in 0..1000u16 {
            let a = l(0x0a00_0001, 0x0a00_0002, 1000 + i, 80);
            let b = l(0x0a00_0002, 0x0a00_0001, 80, 1000 + i);
            let (ha, hb) = (flow_hash(Some(&a), &[]), flow_hash(Some(&b), &[]));
            assert_eq!(ha, hb);
            ports.insert(udp_src_port(ha));
        }
        assert!(ports.len() > 900, "{} distinct ports", ports.len());
        let f1 = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 8, 6];
        let f2 = [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 8, 6];
        assert_eq!(flow_hash(None, &f1), flow_hash(None, &f2));
        assert_eq!(flow_hash(None, &[]), flow_hash(None, &[]));
    }
}
