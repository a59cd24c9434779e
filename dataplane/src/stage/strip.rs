//! strip: remove the headers a tool cannot take, per tool destination.
//!
//! What goes, each on its own switch of [`StripSpec`]:
//! - VLAN tags (0x8100, 0x88a8, 0x9100), any number of them and wherever
//!   they sit in the chain of L2 shims (also after a VN-Tag);
//! - VN-Tag (0x8926) and 802.1BR E-Tag (0x893f);
//! - the MPLS label stack (0x8847/0x8848). MPLS does not say what it
//!   carries, so the first nibble after the bottom of the stack decides, as
//!   in Linux and Wireshark: 4 is IPv4, 6 is IPv6, and 0 is a pseudowire
//!   control word (RFC 4385) — when an Ethernet frame follows it, that
//!   frame is what the tool gets (the outer MACs and tags go with the
//!   stack). Anything else leaves the stack where it is, counted;
//! - an outer VXLAN/Geneve/L2GRE/ERSPAN tunnel (nested ones up to the
//!   configured depth), found by [`Decap::classify`] — tunnels are parsed in
//!   one place — after the shims in front of it are gone, so an
//!   MPLS-carried tunnel strips too. The inner frame's own shims are then
//!   stripped by the same rules.
//!
//! The chain stays consistent: the MAC addresses and every kept shim move
//! forward over what is removed, each kept shim is announced by the type
//! before it, and the last type names what follows (IPv4/IPv6 for a
//! stripped stack). The frame itself never moves: the front is `adj`ed,
//! and a tunnel's outer padding trimmed. IP and L4 headers are not touched:
//! nothing in them covers the removed bytes. Optionally the destination MAC
//! is rewritten, for a tool that only listens to its own.
//!
//! Everything is decided before a byte changes, so a frame that cannot be
//! stripped (a shim cut short, more than [`MAX_SHIMS`]) is left as it came,
//! with the reason in [`Stripped::left`] and in the counters. Frames shorter
//! than an Ethernet header are left alone. A stripped minimum-size frame
//! may end up under 60 bytes; the port pads it on the way out.
//!
//! Offsets of a burst's [`Layers`](crate::stage::parse::Layers) do not
//! describe a stripped frame: a stage after this one that needs them parses
//! the frame again (when [`Stripped::changed`]).

use crate::frame::Frame;
use crate::stage::decap::{Classified, Decap, DecapConfig, DecapConfigError};
use crate::stage::parse::MAX_MPLS_LABELS;
use crate::wire::bytes::{array_at, set_bytes, try_u16_at};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::{mpls, vlan};

/// Cisco VN-Tag's EtherType: 4 bytes of tag follow it.
pub const VN_TAG: u16 = 0x8926;
/// 802.1BR E-Tag's EtherType: 6 bytes of tag follow it.
pub const E_TAG: u16 = 0x893f;
/// VN-Tag bytes after its EtherType.
const VN_TAG_BODY: usize = 4;
/// E-Tag bytes after its EtherType.
const E_TAG_BODY: usize = 6;
/// A pseudowire control word.
const CONTROL_WORD_LEN: usize = 4;
/// Shims (tags, and the MPLS stack as one) followed in one frame before it
/// is left alone as [`Left::TooManyShims`].
pub const MAX_SHIMS: usize = 16;
/// Times an Ethernet pseudowire or tunnel is opened for one frame: the
/// bound on nesting, so a crafted frame cannot keep the stage busy.
const MAX_OPENINGS: usize = 4;

/// What a destination strips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StripSpec {
    pub vlan: bool,
    pub mpls: bool,
    /// VN-Tag and E-Tag.
    pub vntag: bool,
    pub tunnel: bool,
    /// Write this destination MAC into every frame.
    pub dst_mac: Option<[u8; 6]>,
}

impl StripSpec {
    /// Whether the spec changes nothing at all.
    pub fn is_noop(&self) -> bool {
        *self == StripSpec::default()
    }

    fn any_shim(&self) -> bool {
        self.vlan || self.mpls || self.vntag
    }
}

/// Why something the spec asked to strip is still in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Left {
    /// More than [`MAX_SHIMS`] tags: the frame is left as it came.
    TooManyShims,
    /// A tag runs past the frame (or its first segment): left as it came.
    ShimCutShort,
    /// An MPLS stack without its bottom in the frame, or deeper than
    /// parse follows: the stack stays.
    MplsNoBottom,
    /// After the stack: neither IPv4, IPv6 nor a control word and an
    /// Ethernet frame. The stack stays.
    MplsUnknownPayload,
    /// A tunnel whose payload is not Ethernet (GRE carrying IP, …).
    TunnelNotEthernet,
    /// A recognised tunnel that decap calls malformed, or a fragment.
    TunnelMalformed,
}

/// What strip did to one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stripped {
    pub vlan_tags: u8,
    /// MPLS labels removed (stacks ending in IP or a pseudowire).
    pub mpls_labels: u8,
    pub vn_tags: u8,
    pub e_tags: u8,
    /// Ethernet pseudowires opened (stack, control word and outer L2 gone).
    pub pseudowires: u8,
    /// Tunnel headers removed.
    pub tunnels: u8,
    /// Bytes the frame lost, front and back.
    pub bytes: usize,
    /// The destination MAC was written.
    pub dst_mac: bool,
    /// The first thing asked for that stays, and why.
    pub left: Option<Left>,
}

impl Stripped {
    /// The frame's bytes differ from what came in.
    pub fn changed(&self) -> bool {
        self.bytes > 0 || self.dst_mac
    }
}

/// Per-worker strip counters of one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StripCounters {
    /// Frames that lost bytes.
    pub stripped: u64,
    pub vlan_tags: u64,
    pub mpls_labels: u64,
    pub vn_tags: u64,
    pub e_tags: u64,
    pub pseudowires: u64,
    pub tunnels: u64,
    pub bytes_removed: u64,
    pub dst_mac_rewritten: u64,
    pub too_many_shims: u64,
    pub shim_cut_short: u64,
    pub mpls_no_bottom: u64,
    pub mpls_unknown_payload: u64,
    pub tunnel_not_ethernet: u64,
    pub tunnel_malformed: u64,
}

impl StripCounters {
    /// How many counters [`StripCounters::iter`] gives.
    pub const COUNT: usize = 15;

    /// Counts one frame's outcome.
    #[inline]
    pub fn record(&mut self, s: &Stripped) {
        self.stripped += u64::from(s.bytes > 0);
        self.vlan_tags += u64::from(s.vlan_tags);
        self.mpls_labels += u64::from(s.mpls_labels);
        self.vn_tags += u64::from(s.vn_tags);
        self.e_tags += u64::from(s.e_tags);
        self.pseudowires += u64::from(s.pseudowires);
        self.tunnels += u64::from(s.tunnels);
        self.bytes_removed += s.bytes as u64;
        self.dst_mac_rewritten += u64::from(s.dst_mac);
        match s.left {
            None => {}
            Some(Left::TooManyShims) => self.too_many_shims += 1,
            Some(Left::ShimCutShort) => self.shim_cut_short += 1,
            Some(Left::MplsNoBottom) => self.mpls_no_bottom += 1,
            Some(Left::MplsUnknownPayload) => self.mpls_unknown_payload += 1,
            Some(Left::TunnelNotEthernet) => self.tunnel_not_ethernet += 1,
            Some(Left::TunnelMalformed) => self.tunnel_malformed += 1,
        }
    }

    /// Adds another worker's counters.
    pub fn add(&mut self, o: &StripCounters) {
        for (a, (_, b)) in self.fields_mut().into_iter().zip(o.iter()) {
            *a += b;
        }
    }

    /// `(counter name, value)` for every counter, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let c = *self;
        [
            ("stripped", c.stripped),
            ("vlan_tags", c.vlan_tags),
            ("mpls_labels", c.mpls_labels),
            ("vn_tags", c.vn_tags),
            ("e_tags", c.e_tags),
            ("pseudowires", c.pseudowires),
            ("tunnels", c.tunnels),
            ("bytes_removed", c.bytes_removed),
            ("dst_mac_rewritten", c.dst_mac_rewritten),
            ("too_many_shims", c.too_many_shims),
            ("shim_cut_short", c.shim_cut_short),
            ("mpls_no_bottom", c.mpls_no_bottom),
            ("mpls_unknown_payload", c.mpls_unknown_payload),
            ("tunnel_not_ethernet", c.tunnel_not_ethernet),
            ("tunnel_malformed", c.tunnel_malformed),
        ]
        .into_iter()
    }

    fn fields_mut(&mut self) -> [&mut u64; Self::COUNT] {
        [
            &mut self.stripped,
            &mut self.vlan_tags,
            &mut self.mpls_labels,
            &mut self.vn_tags,
            &mut self.e_tags,
            &mut self.pseudowires,
            &mut self.tunnels,
            &mut self.bytes_removed,
            &mut self.dst_mac_rewritten,
            &mut self.too_many_shims,
            &mut self.shim_cut_short,
            &mut self.mpls_no_bottom,
            &mut self.mpls_unknown_payload,
            &mut self.tunnel_not_ethernet,
            &mut self.tunnel_malformed,
        ]
    }
}

/// The strip stage of one destination on one worker.
#[derive(Clone, Debug)]
pub struct Strip {
    spec: StripSpec,
    /// The tunnel classifier, when the spec strips tunnels.
    tunnels: Option<Decap>,
    counters: StripCounters,
}

impl Strip {
    /// `tunnels` says which UDP ports carry VXLAN and Geneve and how many
    /// nested tunnels come off (its re-tagging is not used).
    pub fn new(spec: StripSpec, tunnels: &DecapConfig) -> Result<Strip, DecapConfigError> {
        let tunnels = match spec.tunnel {
            true => Some(Decap::new(DecapConfig {
                retag: None,
                ..tunnels.clone()
            })?),
            false => None,
        };
        Ok(Strip {
            spec,
            tunnels,
            counters: StripCounters::default(),
        })
    }

    pub fn spec(&self) -> &StripSpec {
        &self.spec
    }

    pub fn counters(&self) -> &StripCounters {
        &self.counters
    }

    /// The counts since the last take, leaving zero: what a worker adds
    /// to its shared counters at the drain tick.
    pub fn take_counters(&mut self) -> StripCounters {
        std::mem::take(&mut self.counters)
    }

    /// Strips one frame and counts what was done.
    #[inline]
    pub fn strip<F: Frame>(&mut self, frame: &mut F) -> Stripped {
        let s = self.strip_uncounted(frame);
        self.counters.record(&s);
        s
    }

    /// Strips every frame of a burst; `out[i]` (as far as `out` goes) is
    /// what happened to `frames[i]`.
    pub fn strip_burst<F: Frame>(&mut self, frames: &mut [F], out: &mut [Stripped]) {
        let mut out = out.iter_mut();
        for f in frames {
            let s = self.strip(f);
            if let Some(o) = out.next() {
                *o = s;
            }
        }
    }

    fn strip_uncounted<F: Frame>(&self, frame: &mut F) -> Stripped {
        let mut s = Stripped::default();
        let before = frame.pkt_len();
        if self.spec.any_shim() {
            shims(frame, &self.spec, &mut s);
        }
        if let Some(t) = &self.tunnels {
            if s.left.is_none() && tunnel(t, frame, &mut s) && self.spec.any_shim() {
                shims(frame, &self.spec, &mut s);
            }
        }
        s.bytes = before - frame.pkt_len();
        if let Some(mac) = self.spec.dst_mac {
            if let Some(d) = frame.data_mut().get_mut(..6) {
                d.copy_from_slice(&mac);
                s.dst_mac = true;
            }
        }
        s
    }
}

/// Removes an outer tunnel; whether one was removed.
fn tunnel<F: Frame>(t: &Decap, frame: &mut F, s: &mut Stripped) -> bool {
    let len = frame.pkt_len();
    match t.classify(frame.data(), len) {
        Ok(Classified::Ethernet { start, end, info }) => {
            // classify guarantees start + 14 <= end <= len.
            if frame.adj(start).is_err() || frame.trim(len - end).is_err() {
                s.left = Some(Left::TunnelMalformed);
                return false;
            }
            s.tunnels = s.tunnels.saturating_add(info.layers);
            true
        }
        Ok(Classified::NotTunnel) => false,
        Ok(Classified::NotEthernet(_)) => {
            s.left = Some(Left::TunnelNotEthernet);
            false
        }
        Err(_) => {
            s.left = Some(Left::TunnelMalformed);
            false
        }
    }
}

/// Strips the L2 shims of the frame, opening Ethernet pseudowires (at most
/// [`MAX_OPENINGS`]).
#[inline]
fn shims<F: Frame>(frame: &mut F, spec: &StripSpec, s: &mut Stripped) {
    // Most frames carry none: one compare, and no plan to build.
    if !try_u16_at(frame.data(), ethernet::field::ETHERTYPE).is_some_and(is_shim) {
        return;
    }
    shims_walk(frame, spec, s);
}

/// Whether a type announces a shim strip knows.
#[inline(always)]
fn is_shim(ty: u16) -> bool {
    vlan::is_tpid(ty)
        || matches!(
            ty,
            VN_TAG | E_TAG | ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST
        )
}

#[inline(never)]
fn shims_walk<F: Frame>(frame: &mut F, spec: &StripSpec, s: &mut Stripped) {
    for _ in 0..MAX_OPENINGS {
        let plan = plan(frame.data(), spec, s);
        if plan.cut == 0 {
            return;
        }
        if let Some(p) = plan.pseudowire {
            // The inner frame starts `p` in: everything before it goes.
            if frame.adj(p).is_ok() {
                s.pseudowires = s.pseudowires.saturating_add(1);
                continue;
            }
            return;
        }
        compact(frame.data_mut(), &plan);
        // `cut` is inside the header plan walked, so within the frame.
        let _ = frame.adj(plan.cut);
        return;
    }
}

/// A shim that stays: announced by `ty`, its body is `at..at + len`.
/// Narrow fields keep the plan small (it is built per tagged frame): the
/// walk ends within `MAX_SHIMS` shims of at most 8 bytes each.
#[derive(Clone, Copy, Debug, Default)]
struct Kept {
    ty: u16,
    at: u8,
    len: u8,
}

/// What [`plan`] decided for one frame's shims.
#[derive(Debug, Default)]
struct Plan {
    kept: [Kept; MAX_SHIMS],
    n_kept: usize,
    /// The type that names what follows the shims, written before `end`.
    last_type: u16,
    /// Where what follows the shims starts.
    end: usize,
    /// Bytes that come off the front; 0 when nothing is stripped.
    cut: usize,
    /// Set when an Ethernet pseudowire is opened: where its frame starts.
    pseudowire: Option<usize>,
}

/// Walks the shims after the MAC addresses and decides what goes, counting
/// into `s`; changes nothing. On a frame left as it came, `cut` is 0.
fn plan(d: &[u8], spec: &StripSpec, s: &mut Stripped) -> Plan {
    let mut p = Plan::default();
    let Some(mut ty) = try_u16_at(d, ethernet::field::ETHERTYPE) else {
        return p;
    };
    let mut off = ethernet::HEADER_LEN;
    let mut removed = 0usize;
    let mut seen = Stripped::default();
    for shim in 0..=MAX_SHIMS {
        let (len, strip) = match ty {
            vlan::TPID_8021Q | vlan::TPID_8021AD | vlan::TPID_QINQ => {
                (vlan::HEADER_LEN - 2, spec.vlan)
            }
            VN_TAG => (VN_TAG_BODY, spec.vntag),
            E_TAG => (E_TAG_BODY, spec.vntag),
            ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST if spec.mpls => {
                match mpls_payload(d, off) {
                    Ok(Payload::Ip { ty: t, end, labels }) => {
                        seen.mpls_labels = seen.mpls_labels.saturating_add(labels);
                        removed += end - off;
                        ty = t;
                        off = end;
                    }
                    Ok(Payload::Ethernet { start, labels }) => {
                        s.vlan_tags = s.vlan_tags.saturating_add(seen.vlan_tags);
                        s.vn_tags = s.vn_tags.saturating_add(seen.vn_tags);
                        s.e_tags = s.e_tags.saturating_add(seen.e_tags);
                        s.mpls_labels = s.mpls_labels.saturating_add(labels);
                        p.cut = start;
                        p.pseudowire = Some(start);
                        return p;
                    }
                    Err(why) => s.left = Some(why),
                }
                break;
            }
            _ => break,
        };
        if shim == MAX_SHIMS {
            s.left = Some(Left::TooManyShims);
            return p;
        }
        // The body and the type after it must be in the frame.
        let Some(&[t0, t1]) = array_at::<2>(d, off + len) else {
            s.left = Some(Left::ShimCutShort);
            return p;
        };
        if strip {
            removed += len + 2;
            match ty {
                VN_TAG => seen.vn_tags += 1,
                E_TAG => seen.e_tags += 1,
                _ => seen.vlan_tags += 1,
            }
        } else {
            // off < 14 + MAX_SHIMS * 8 and len <= 6: both fit in a byte.
            p.kept[p.n_kept] = Kept {
                ty,
                at: off as u8,
                len: len as u8,
            };
            p.n_kept += 1;
        }
        ty = u16::from_be_bytes([t0, t1]);
        off += len + 2;
    }
    s.vlan_tags = s.vlan_tags.saturating_add(seen.vlan_tags);
    s.vn_tags = s.vn_tags.saturating_add(seen.vn_tags);
    s.e_tags = s.e_tags.saturating_add(seen.e_tags);
    s.mpls_labels = s.mpls_labels.saturating_add(seen.mpls_labels);
    p.last_type = ty;
    p.end = off;
    p.cut = removed;
    p
}

/// What follows an MPLS stack.
enum Payload {
    /// IP of type `ty` at `end`.
    Ip { ty: u16, end: usize, labels: u8 },
    /// A control word, then an Ethernet frame at `start`.
    Ethernet { start: usize, labels: u8 },
}

/// The label stack at `off` and what it carries.
fn mpls_payload(d: &[u8], mut off: usize) -> Result<Payload, Left> {
    let mut labels = 0u8;
    loop {
        if usize::from(labels) == MAX_MPLS_LABELS {
            return Err(Left::MplsNoBottom);
        }
        let Some(&[_, _, tc_s, _]) = array_at::<{ mpls::HEADER_LEN }>(d, off) else {
            return Err(Left::MplsNoBottom);
        };
        labels += 1;
        off += mpls::HEADER_LEN;
        if tc_s & 1 != 0 {
            break;
        }
    }
    match d.get(off).map(|b| b >> 4) {
        Some(4) => Ok(Payload::Ip {
            ty: ethertype::IPV4,
            end: off,
            labels,
        }),
        Some(6) => Ok(Payload::Ip {
            ty: ethertype::IPV6,
            end: off,
            labels,
        }),
        Some(0) => {
            let start = off + CONTROL_WORD_LEN;
            // An Ethernet header whose type is a type, not an 802.3 length.
            match try_u16_at(d, start + ethernet::field::ETHERTYPE) {
                Some(t) if t >= 0x0600 => Ok(Payload::Ethernet { start, labels }),
                _ => Err(Left::MplsUnknownPayload),
            }
        }
        _ => Err(Left::MplsUnknownPayload),
    }
}

/// Moves the MACs and the kept shims forward over the stripped ones, back to
/// front so nothing is overwritten before it is read, and writes the type
/// chain: each kept shim's type before it, `last_type` before `end`.
fn compact(d: &mut [u8], p: &Plan) {
    let mut w = p.end;
    let put_type = |d: &mut [u8], w: usize, t: u16| {
        if let Some(x) = d.get_mut(w - 2..w) {
            x.copy_from_slice(&t.to_be_bytes());
        }
    };
    put_type(d, w, p.last_type);
    w -= 2;
    for k in p.kept[..p.n_kept].iter().rev() {
        let (at, len) = (usize::from(k.at), usize::from(k.len));
        d.copy_within(at..at + len, w - len);
        w -= len;
        put_type(d, w, k.ty);
        w -= 2;
    }
    // A fixed-size copy: two register moves, not a call to memmove.
    if let Some(&macs) = array_at::<{ ethernet::field::ETHERTYPE }>(d, 0) {
        set_bytes(d, w - ethernet::field::ETHERTYPE, &macs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ChainFrame, VecFrame};
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const DST: [u8; 6] = [2, 0, 0, 0, 0, 0xd];
    const SRC: [u8; 6] = [2, 0, 0, 0, 0, 0x5];

    /// An IPv4/UDP packet (no Ethernet) with a recognisable payload.
    fn ip_udp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn ip6_tcp() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(80, 443, 7, 100)
            .write(&mut out, b"six")
            .unwrap();
        out
    }

    /// MACs, then each `(type, body)` shim, then `last` and `rest`.
    fn frame(shims: &[(u16, &[u8])], last: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = [DST, SRC].concat();
        for (t, body) in shims {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(body);
        }
        f.extend_from_slice(&last.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    fn plain(ip: &[u8]) -> Vec<u8> {
        frame(&[], 0x0800, ip)
    }

    /// MPLS entries for `labels`, the last with bottom-of-stack.
    fn stack(labels: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            let s = u32::from(i + 1 == labels.len());
            out.extend_from_slice(&((l << 12) | (s << 8) | 64).to_be_bytes());
        }
        out
    }

    /// `inner` in Ethernet/IPv4/UDP/VXLAN, with shims on the outer frame.
    fn vxlan(outer_shims: &[(u16, &[u8])], inner: &[u8]) -> Vec<u8> {
        let mut payload = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        payload.extend_from_slice(inner);
        let mut ip = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(55555, 4789)
            .write(&mut ip, &payload)
            .unwrap();
        let mut f = frame(outer_shims, 0x0800, &ip);
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xee]);
        f
    }

    fn strip(spec: StripSpec, bytes: &[u8]) -> (Vec<u8>, Stripped) {
        let mut st = Strip::new(spec, &DecapConfig::default()).unwrap();
        let mut f = VecFrame::new(bytes);
        let s = st.strip(&mut f);
        assert_eq!(s.bytes, bytes.len() - f.pkt_len());
        (f.data().to_vec(), s)
    }

    fn all() -> StripSpec {
        StripSpec {
            vlan: true,
            mpls: true,
            vntag: true,
            tunnel: true,
            dst_mac: None,
        }
    }

    /// etherparse reads `f` as plain Ethernet + IPv4 + UDP 1000→2000 with
    /// `payload`, no VLAN: what every stripped input must become.
    fn assert_plain_udp(f: &[u8], payload: &[u8]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
            panic!("no Ethernet II in {f:02x?}")
        };
        assert_eq!(eth.ether_type(), etherparse::EtherType::IPV4);
        assert!(p.vlan.is_none());
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("no IPv4 in {f:02x?}")
        };
        assert_eq!(ip.header().source(), [10, 0, 0, 1]);
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!()
        };
        assert_eq!((u.source_port(), u.destination_port()), (1000, 2000));
        assert_eq!(u.payload(), payload);
    }

    #[test]
    fn qinq_vntag_mpls_and_vxlan_all_come_off() {
        let ip = ip_udp(b"hello");
        let tci: &[u8] = &[0x00, 0x64];
        let vn: &[u8] = &[0x80, 0x01, 0x00, 0x02];
        let etag: &[u8] = &[0, 0, 0, 1, 0, 0];
        let labels = stack(&[100, 200]);
        let mpls_ip = [labels.clone(), ip.clone()].concat();
        let inner_tagged = frame(&[(0x8100, tci)], 0x0800, &ip);
        let inputs = [
            frame(&[(0x88a8, tci), (0x8100, tci)], 0x0800, &ip),
            frame(&[(0x9100, tci), (0x8100, tci), (0x8100, tci)], 0x0800, &ip),
            frame(&[(VN_TAG, vn), (0x8100, tci)], 0x0800, &ip),
            frame(&[(E_TAG, etag)], 0x0800, &ip),
            frame(&[], 0x8847, &mpls_ip),
            frame(&[(0x88a8, tci), (0x8100, tci)], 0x8848, &mpls_ip),
            vxlan(&[], &plain(&ip)),
            vxlan(&[(0x88a8, tci), (0x8100, tci)], &inner_tagged),
            // VN-Tag and QinQ outside, MPLS-carried VXLAN, QinQ and MPLS inside.
            {
                let inner = frame(&[(0x88a8, tci), (0x8100, tci)], 0x8847, &mpls_ip);
                let outer = vxlan(&[], &inner);
                let outer_ip = [labels.clone(), outer[14..].to_vec()].concat();
                frame(
                    &[(VN_TAG, vn), (0x88a8, tci), (0x8100, tci)],
                    0x8847,
                    &outer_ip,
                )
            },
        ];
        for input in &inputs {
            let (out, s) = strip(all(), input);
            assert_plain_udp(&out, b"hello");
            assert_eq!(&out[..12], &[DST, SRC].concat()[..], "MACs kept");
            assert!(s.left.is_none(), "{s:?}");
            assert_eq!(out.len(), 14 + ip.len());
        }
        let (_, s) = strip(all(), inputs.last().unwrap());
        assert_eq!(
            (s.vn_tags, s.vlan_tags, s.mpls_labels, s.tunnels),
            (1, 4, 4, 1)
        );
    }

    #[test]
    fn only_what_is_asked_comes_off_and_the_chain_stays_consistent() {
        let ip = ip_udp(b"x");
        let tci: &[u8] = &[0x20, 0x0a];
        let vn: &[u8] = &[0x80, 0x01, 0x00, 0x02];
        let labels = stack(&[16]);
        let input = frame(
            &[(VN_TAG, vn), (0x8100, tci)],
            0x8847,
            &[labels.clone(), ip.clone()].concat(),
        );
        let vlan_only = StripSpec {
            vlan: true,
            ..StripSpec::default()
        };
        let (out, s) = strip(vlan_only, &input);
        assert_eq!(
            out,
            frame(
                &[(VN_TAG, vn)],
                0x8847,
                &[labels.clone(), ip.clone()].concat()
            )
        );
        assert_eq!((s.vlan_tags, s.bytes), (1, 4));
        let mpls_only = StripSpec {
            mpls: true,
            ..StripSpec::default()
        };
        let (out, s) = strip(mpls_only, &input);
        assert_eq!(out, frame(&[(VN_TAG, vn), (0x8100, tci)], 0x0800, &ip));
        assert_eq!((s.mpls_labels, s.bytes), (1, 4));
        // Nothing asked, or nothing there: the frame is untouched.
        assert_eq!(strip(StripSpec::default(), &input).0, input);
        let bare = plain(&ip);
        assert_eq!(strip(all(), &bare), (bare.clone(), Stripped::default()));
    }

    #[test]
    fn mpls_payloads_ipv6_pseudowire_and_unknown() {
        let v6 = ip6_tcp();
        let (out, _) = strip(
            all(),
            &frame(&[], 0x8847, &[stack(&[3, 4, 5]), v6.clone()].concat()),
        );
        assert_eq!(out, frame(&[], 0x86dd, &v6));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        assert!(matches!(p.transport, Some(TransportSlice::Tcp(_))));

        // An Ethernet pseudowire with a control word: the customer frame,
        // its own tag stripped too.
        let ip = ip_udp(b"pw");
        let mut customer = frame(&[(0x8100, &[0u8, 9][..])], 0x0800, &ip);
        customer[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
        let pw = frame(
            &[(0x8100, &[0u8, 1][..])],
            0x8847,
            &[stack(&[1000]), vec![0, 0, 0, 0], customer.clone()].concat(),
        );
        let (out, s) = strip(all(), &pw);
        assert_plain_udp(&out, b"pw");
        assert_eq!(out[5], 0x77, "the customer's MACs");
        assert_eq!((s.pseudowires, s.mpls_labels, s.vlan_tags), (1, 1, 2));

        // No bottom of stack, and a payload MPLS cannot name: the stack
        // stays (and is counted), the VLAN before it still comes off.
        let tci: &[u8] = &[0, 1];
        let unknown = [stack(&[7]), vec![0x51; 30]].concat();
        let (out, s) = strip(all(), &frame(&[(0x8100, tci)], 0x8847, &unknown));
        assert_eq!(out, frame(&[], 0x8847, &unknown));
        assert_eq!(s.left, Some(Left::MplsUnknownPayload));
        let no_bottom = vec![0u8; 12];
        let (out, s) = strip(all(), &frame(&[(0x8100, tci)], 0x8847, &no_bottom));
        assert_eq!(out, frame(&[], 0x8847, &no_bottom));
        assert_eq!(s.left, Some(Left::MplsNoBottom));
        // A control word not followed by a whole Ethernet header.
        let short = [stack(&[7]), vec![0; 10]].concat();
        let (_, s) = strip(all(), &frame(&[], 0x8847, &short));
        assert_eq!(s.left, Some(Left::MplsUnknownPayload));
    }

    #[test]
    fn frames_that_cannot_be_stripped_are_left_as_they_came() {
        let tci: &[u8] = &[0, 1];
        let deep: Vec<(u16, &[u8])> = vec![(0x8100, tci); MAX_SHIMS + 1];
        let f = frame(&deep, 0x0800, &ip_udp(b""));
        assert_eq!(strip(all(), &f).0, f);
        assert_eq!(strip(all(), &f).1.left, Some(Left::TooManyShims));
        let cut = frame(&[(0x8100, tci)], 0x8100, &[0]);
        let (out, s) = strip(all(), &cut);
        assert_eq!((out, s.left), (cut, Some(Left::ShimCutShort)));
        for short in [&[][..], &[1, 2, 3], &[0; 13]] {
            assert_eq!(strip(all(), short).0, short);
        }
        // A malformed VXLAN (no I flag) and GRE carrying IP stay whole.
        let mut bad = vxlan(&[], &plain(&ip_udp(b"")));
        bad[42] = 0;
        assert_eq!(
            strip(all(), &bad),
            (
                bad.clone(),
                Stripped {
                    left: Some(Left::TunnelMalformed),
                    ..Stripped::default()
                }
            )
        );
    }

    #[test]
    fn dst_mac_is_rewritten_and_everything_is_counted() {
        let spec = StripSpec {
            dst_mac: Some([0xaa; 6]),
            ..all()
        };
        let mut st = Strip::new(spec, &DecapConfig::default()).unwrap();
        let ip = ip_udp(b"m");
        let mut f = VecFrame::new(&vxlan(&[(0x8100, &[0u8, 5][..])], &plain(&ip)));
        let s = st.strip(&mut f);
        assert_eq!(&f.data()[..6], &[0xaa; 6]);
        assert_eq!(&f.data()[6..], &plain(&ip)[6..]);
        assert!(s.changed() && s.dst_mac);
        let mut g = VecFrame::new(&[0u8; 4]);
        assert!(!st.strip(&mut g).changed());
        let c = *st.counters();
        assert_eq!(
            (c.stripped, c.vlan_tags, c.tunnels, c.dst_mac_rewritten),
            (1, 1, 1, 1)
        );
        let mut sum = StripCounters::default();
        sum.add(&c);
        sum.add(&c);
        assert_eq!(sum.iter().find(|e| e.0 == "tunnels"), Some(("tunnels", 2)));
        assert_eq!(sum.iter().count(), 15);
    }

    proptest::proptest! {
        /// Never panics, accounts for every byte it removes, and leaves a
        /// frame it did not change byte for byte as it was.
        #[test]
        fn strip_never_panics_on_arbitrary_bytes(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160),
            shape in proptest::sample::select(vec![0u16, 0x8100, 0x8847, VN_TAG, E_TAG, 0x88a8]),
            dst_mac in proptest::bool::ANY,
            cut in 0usize..200,
        ) {
            if let Some(t) = bytes.get_mut(12..14) {
                if shape != 0 {
                    t.copy_from_slice(&shape.to_be_bytes());
                }
            }
            let spec = StripSpec { dst_mac: dst_mac.then_some([1; 6]), ..all() };
            let mut st = Strip::new(spec, &DecapConfig::default()).unwrap();
            let mut f = VecFrame::new(&bytes);
            let s = st.strip(&mut f);
            proptest::prop_assert_eq!(s.bytes, bytes.len() - f.pkt_len());
            if !s.changed() {
                proptest::prop_assert_eq!(f.data(), &bytes[..]);
            }
            // Chained: the same, or less where a header crosses into a
            // later segment (which strip leaves as it came).
            let mut c = ChainFrame::new(&bytes, &[cut]);
            let s = st.strip(&mut c);
            proptest::prop_assert_eq!(s.bytes, bytes.len() - c.pkt_len());
            if !s.changed() {
                proptest::prop_assert_eq!(c.to_vec(), bytes.clone());
            }
            if cut >= bytes.len() {
                proptest::prop_assert_eq!(c.to_vec(), f.data().to_vec());
            }
        }
    }
}
