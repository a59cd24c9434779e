//! The generator: one *cycle* of a profile — `packets` originals and their
//! copies, in time order — built once, then written to a pcap or sent
//! (again and again, with sequence numbers continuing).
//!
//! Everything is deterministic: flows are taken in smooth weighted
//! round-robin and each flow's 5-tuples in odometer order (source port
//! fastest); sizes in smooth weighted round-robin; exactly
//! `floor(packets × ratio)` originals get a copy, picked by a fixed hash
//! of their index so that copies spread over flows and sizes.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::{
    IpNumber, PacketBuilder, PacketBuilderStep, SingleVlanHeader, VlanHeader, VlanId, VlanPcp,
};

use crate::profile::{Flow, Profile, Proto, Tunnel, TunnelKind, Vlan, FCS};
use crate::stamp::{self, Stamp};

/// One generated frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The frame as captured (no FCS).
    pub frame: Vec<u8>,
    /// Nominal time from the start of the cycle, from the profile's rate.
    pub ts_ns: u64,
    /// Where the stamp starts in `frame` (with sequence stamping on).
    pub stamp_at: Option<usize>,
    /// Where the send-time field starts (a `send_time` profile, room left).
    pub time_at: Option<usize>,
    /// Global 5-tuple index: the stamp's flow id.
    pub flow: u32,
    /// Index of the `[[flow]]` the tuple comes from.
    pub spec: usize,
    /// Sequence number within the flow, counted over originals.
    pub seq: u32,
    /// A duplicate copy of an earlier original.
    pub copy: bool,
    /// The (inner) frame size with FCS the size mix chose.
    pub size: usize,
}

/// One cycle of a profile.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub packets: Vec<Packet>,
    /// Originals per flow id in one cycle: the sequence step between cycles.
    pub per_flow: HashMap<u32, u32>,
}

/// The fields of one 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The `i`-th 5-tuple of a flow (odometer: source port fastest, then
/// destination port, source address, destination address).
pub fn tuple(f: &Flow, i: u64) -> Tuple {
    let sp = i % f.src_port.count;
    let rest = i / f.src_port.count;
    let dp = rest % f.dst_port.count;
    let rest = rest / f.dst_port.count;
    let s = rest % f.src.count;
    let d = rest / f.src.count;
    let (src_port, dst_port) = match f.proto {
        // ICMP echo: the ID is the only "port".
        Proto::Icmp => (f.src_port.first + sp as u16, 0),
        _ => (f.src_port.first + sp as u16, f.dst_port.first + dp as u16),
    };
    Tuple {
        src: f.src.nth(s),
        dst: f.dst.nth(d),
        proto: f.proto.number(f.v6()),
        src_port,
        dst_port,
    }
}

/// Smooth weighted round-robin (nginx's): evenly interleaved, exact shares
/// over every `Σ weights` picks.
struct Wrr {
    weights: Vec<i128>,
    current: Vec<i128>,
    total: i128,
}

impl Wrr {
    fn new(weights: impl Iterator<Item = u64>) -> Wrr {
        let weights: Vec<i128> = weights.map(i128::from).collect();
        let total = weights.iter().sum();
        Wrr {
            current: vec![0; weights.len()],
            weights,
            total,
        }
    }

    fn next(&mut self) -> usize {
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

/// Builds one cycle of the profile.
pub fn generate(p: &Profile) -> Cycle {
    let mut flows = Wrr::new(p.flows.iter().map(|f| f.weight));
    let mut sizes = Wrr::new(p.sizes.iter().map(|s| s.1));
    let mut next_tuple = vec![0u64; p.flows.len()];
    let mut base = Vec::with_capacity(p.flows.len());
    let mut acc = 0u64;
    for f in &p.flows {
        base.push(acc);
        acc += f.tuples();
    }
    let mut seqs: HashMap<u32, u32> = HashMap::new();
    let copy_of = pick_copies(p.packets, p.duplicates.as_ref().map_or(0.0, |d| d.ratio));
    let mut out: Vec<(u64, u8, usize, Packet)> = Vec::new();
    for i in 0..p.packets {
        let spec = flows.next();
        let f = &p.flows[spec];
        let t = next_tuple[spec];
        next_tuple[spec] = (t + 1) % f.tuples();
        let flow = (base[spec] + t) as u32;
        let seq = seqs.entry(flow).or_insert(0);
        let this_seq = *seq;
        *seq = seq.wrapping_add(1);
        let size = p.sizes[sizes.next()].0;
        let ts_ns = (u128::from(i) * 1_000_000_000 / u128::from(p.rate_pps)) as u64;
        let (frame, stamp_at, time_at) = build(
            f,
            &tuple(f, t),
            size - FCS,
            Stamping {
                sequence: p.sequence,
                send_time: p.send_time,
            },
            flow,
            this_seq,
        );
        let orig = Packet {
            frame,
            ts_ns,
            stamp_at,
            time_at,
            flow,
            spec,
            seq: this_seq,
            copy: false,
            size,
        };
        if let Some(d) = &p.duplicates {
            if copy_of.get(i as usize).copied().unwrap_or(false) {
                let mut c = orig.clone();
                c.copy = true;
                c.ts_ns += d.delay_ns;
                mutate(&mut c, f, d);
                out.push((c.ts_ns, 1, out.len(), c));
            }
        }
        out.push((orig.ts_ns, 0, out.len(), orig));
    }
    out.sort_by_key(|(ts, copy, idx, _)| (*ts, *copy, *idx));
    let mut packets: Vec<Packet> = out.into_iter().map(|x| x.3).collect();
    if let Some(tun) = &p.tunnel {
        for (k, pk) in packets.iter_mut().enumerate() {
            wrap(pk, tun, k as u32);
        }
    }
    Cycle {
        packets,
        per_flow: seqs,
    }
}

/// splitmix64's finaliser: a fixed, well-mixed hash of an index.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which of `n` originals get a copy: exactly `floor(n × ratio)` of them,
/// those whose index hashes lowest — a fixed choice that is not in step
/// with the flow or size schedule.
fn pick_copies(n: u64, ratio: f64) -> Vec<bool> {
    let m = ((n as f64 * ratio).floor() as usize).min(n as usize);
    let mut out = vec![false; n as usize];
    if m == 0 {
        return out;
    }
    let mut h: Vec<(u64, u64)> = (0..n).map(|i| (mix(i), i)).collect();
    h.select_nth_unstable(m - 1);
    for &(_, i) in &h[..m] {
        out[i as usize] = true;
    }
    out
}

/// Payload filler: a recognisable, non-zero pattern.
fn fill(payload: &mut [u8], flow: u32) {
    for (k, b) in payload.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(7).wrapping_add(flow as u8) | 1;
    }
}

fn vlan_header(outer: bool, id: u16) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::ZERO,
        drop_eligible_indicator: false,
        // Checked 1..=4094 by the profile.
        vlan_id: VlanId::try_new(id).unwrap_or(VlanId::ZERO),
        ether_type: if outer {
            etherparse::EtherType(0x88a8)
        } else {
            etherparse::EtherType(0)
        },
    }
}

/// Which fields a payload starts with.
#[derive(Debug, Clone, Copy)]
struct Stamping {
    sequence: bool,
    send_time: bool,
}

/// Builds one frame of `len` bytes (no FCS) for tuple `t` of flow `f`.
/// Returns the frame and where its stamp and send-time field start.
fn build(
    f: &Flow,
    t: &Tuple,
    len: usize,
    stamping: Stamping,
    flow: u32,
    seq: u32,
) -> (Vec<u8>, Option<usize>, Option<usize>) {
    let eth = || PacketBuilder::ethernet2(f.src_mac, f.dst_mac);
    let ip = |step_vlan: Option<VlanHeader>| -> PacketBuilderStep<etherparse::IpHeaders> {
        match (t.src, t.dst, step_vlan) {
            (IpAddr::V4(s), IpAddr::V4(d), None) => eth().ipv4(s.octets(), d.octets(), f.ttl),
            (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => {
                eth().vlan(v).ipv4(s.octets(), d.octets(), f.ttl)
            }
            (IpAddr::V6(s), IpAddr::V6(d), None) => eth().ipv6(s.octets(), d.octets(), f.ttl),
            (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => {
                eth().vlan(v).ipv6(s.octets(), d.octets(), f.ttl)
            }
            // The profile checks both ends are one version.
            (s, _, _) => eth().ipv4(
                match s {
                    IpAddr::V4(a) => a.octets(),
                    IpAddr::V6(_) => [0; 4],
                },
                [0; 4],
                f.ttl,
            ),
        }
    };
    let vlan = match f.vlan {
        Vlan::None => None,
        Vlan::Single(v) => Some(VlanHeader::Single(vlan_header(false, v))),
        Vlan::Double(o, i) => Some(VlanHeader::Double(etherparse::DoubleVlanHeader {
            outer: vlan_header(true, o),
            inner: vlan_header(false, i),
        })),
    };
    let hdr = f.header_len();
    let mut payload = vec![0u8; len.saturating_sub(hdr)];
    fill(&mut payload, flow);
    let stamped = stamping.sequence && payload.len() >= stamp::LEN;
    if stamped {
        Stamp { flow, seq }.write(&mut payload);
    }
    let timed = stamped && stamping.send_time && payload.len() >= stamp::LEN + stamp::TIME_LEN;
    if timed {
        stamp::write_time(0, &mut payload[stamp::LEN..]);
    }
    let mut out = Vec::with_capacity(len);
    let step = ip(vlan);
    let res = match f.proto {
        Proto::Udp => step.udp(t.src_port, t.dst_port).write(&mut out, &payload),
        Proto::Tcp => step
            .tcp(t.src_port, t.dst_port, seq.wrapping_mul(1448), 65535)
            .psh()
            .ack(1)
            .write(&mut out, &payload),
        Proto::Icmp if f.v6() => step
            .icmpv6_echo_request(t.src_port, seq as u16)
            .write(&mut out, &payload),
        Proto::Icmp => step
            .icmpv4_echo_request(t.src_port, seq as u16)
            .write(&mut out, &payload),
    };
    // Writing into a Vec fails only on a payload too long for IP, which
    // the profile's size limits rule out.
    debug_assert!(res.is_ok(), "{res:?}");
    (
        out,
        stamped.then_some(hdr),
        timed.then_some(hdr + stamp::LEN),
    )
}

/// Turns an original into what a second mirror point would have sent:
/// TTL/hop limit changed, the outer VLAN ID rewritten (or a tag added),
/// MACs replaced. The payload (and its stamp) stays byte for byte: a
/// deduplicator keys on it.
fn mutate(c: &mut Packet, f: &Flow, d: &crate::profile::Duplicates) {
    let l3 = 14
        + match f.vlan {
            Vlan::None => 0,
            Vlan::Single(_) => 4,
            Vlan::Double(..) => 8,
        };
    if d.ttl_delta != 0 {
        if f.v6() {
            let h = &mut c.frame[l3 + 7];
            *h = (i16::from(*h) + d.ttl_delta).clamp(0, 255) as u8;
        } else {
            let h = &mut c.frame[l3 + 8];
            *h = (i16::from(*h) + d.ttl_delta).clamp(0, 255) as u8;
            c.frame[l3 + 10..l3 + 12].fill(0);
            let sum = ipv4_header_checksum(&c.frame[l3..l3 + 20]);
            c.frame[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        }
    }
    if let Some(m) = d.src_mac {
        c.frame[6..12].copy_from_slice(&m);
    }
    if let Some(m) = d.dst_mac {
        c.frame[..6].copy_from_slice(&m);
    }
    if let Some(v) = d.vlan {
        if f.vlan == Vlan::None {
            let ethertype = [c.frame[12], c.frame[13]];
            let tag = [0x81, 0x00, (v >> 8) as u8, v as u8];
            c.frame.splice(12..12, tag);
            c.frame[16..18].copy_from_slice(&ethertype);
            c.stamp_at = c.stamp_at.map(|a| a + 4);
            c.time_at = c.time_at.map(|a| a + 4);
        } else {
            let tci = u16::from_be_bytes([c.frame[14], c.frame[15]]);
            let tci = (tci & 0xf000) | (v & 0x0fff);
            c.frame[14..16].copy_from_slice(&tci.to_be_bytes());
        }
    }
}

fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Puts the frame in the profile's tunnel. `k` is the packet's index in
/// the cycle (the GRE sequence number of ERSPAN).
fn wrap(p: &mut Packet, t: &Tunnel, k: u32) {
    let mut payload: Vec<u8> = Vec::with_capacity(p.frame.len() + 20);
    let ip_proto = match t.kind {
        TunnelKind::Vxlan => {
            payload.extend_from_slice(&[0x08, 0, 0, 0]);
            payload.extend_from_slice(&(t.id << 8).to_be_bytes());
            None
        }
        TunnelKind::Geneve => {
            payload.extend_from_slice(&[0, 0, 0x65, 0x58]);
            payload.extend_from_slice(&(t.id << 8).to_be_bytes());
            None
        }
        TunnelKind::Gre => {
            payload.extend_from_slice(&[0x20, 0x00, 0x65, 0x58]);
            payload.extend_from_slice(&t.id.to_be_bytes());
            Some(IpNumber::GRE)
        }
        TunnelKind::Erspan2 => {
            payload.extend_from_slice(&[0x10, 0x00, 0x88, 0xbe]);
            payload.extend_from_slice(&k.to_be_bytes());
            // Ver=1, VLAN 0 | COS 0, En 0, T 0, session | index 0.
            payload.extend_from_slice(&0x1000u16.to_be_bytes());
            payload.extend_from_slice(&((t.id & 0x3ff) as u16).to_be_bytes());
            payload.extend_from_slice(&0u32.to_be_bytes());
            Some(IpNumber::GRE)
        }
        TunnelKind::Erspan3 => {
            payload.extend_from_slice(&[0x10, 0x00, 0x22, 0xeb]);
            payload.extend_from_slice(&k.to_be_bytes());
            // Ver=2, VLAN 0 | COS, BSO, T 0, session | timestamp | SGT 0, P 0, FT 0, HwID 1, D 0, Gra 0, O 0.
            payload.extend_from_slice(&0x2000u16.to_be_bytes());
            payload.extend_from_slice(&((t.id & 0x3ff) as u16).to_be_bytes());
            payload.extend_from_slice(&((p.ts_ns / 100_000) as u32).to_be_bytes());
            payload.extend_from_slice(&[0, 0, 0x00, 0x04]);
            Some(IpNumber::GRE)
        }
    };
    let inner_at = payload.len();
    payload.extend_from_slice(&p.frame);
    let eth = PacketBuilder::ethernet2(t.src_mac, t.dst_mac);
    let step = match (t.src, t.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        // The profile checks both ends are one version.
        _ => eth.ipv4([0; 4], [0; 4], 64),
    };
    let mut out = Vec::with_capacity(payload.len() + 60);
    let res = match ip_proto {
        Some(n) => step.write(&mut out, n, &payload),
        None => {
            // Source port from the inner flow, as VXLAN senders do.
            let sport = 49152 | (p.flow as u16 & 0x3fff);
            step.udp(sport, t.udp_port).write(&mut out, &payload)
        }
    };
    debug_assert!(res.is_ok(), "{res:?}");
    let outer = out.len() - payload.len();
    p.stamp_at = p.stamp_at.map(|a| a + outer + inner_at);
    p.time_at = p.time_at.map(|a| a + outer + inner_at);
    p.frame = out;
}

impl Cycle {
    /// Rewrites every stamp for cycle number `round` (0 is as generated):
    /// each flow's sequence continues where the previous round ended.
    /// Checksums stay valid (see [`crate::stamp`]).
    pub fn set_round(&mut self, round: u32) {
        for p in &mut self.packets {
            let Some(at) = p.stamp_at else { continue };
            let step = self.per_flow.get(&p.flow).copied().unwrap_or(0);
            Stamp {
                flow: p.flow,
                seq: p.seq.wrapping_add(step.wrapping_mul(round)),
            }
            .write(&mut p.frame[at..]);
        }
    }

    /// Writes send time `ns` into packet `i`'s send-time field, if it has
    /// one; checksums stay valid (see [`crate::stamp`]).
    pub fn set_send_time(&mut self, i: usize, ns: u64) {
        let p = &mut self.packets[i];
        if let Some(at) = p.time_at {
            stamp::write_time(ns, &mut p.frame[at..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrr_is_exact_and_interleaved() {
        let mut w = Wrr::new([7u64, 4, 1].into_iter());
        let picks: Vec<usize> = (0..12).map(|_| w.next()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 7);
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 4);
        assert_eq!(picks.iter().filter(|&&p| p == 2).count(), 1);
        assert_ne!(picks[..2], [0, 0], "{picks:?}");
    }

    #[test]
    fn set_round_continues_sequences() {
        let p = Profile::parse(
            "packets = 6\n[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\nsrc_port = \"1-2\"\n",
        )
        .unwrap();
        let mut c = generate(&p);
        assert_eq!(c.per_flow.get(&0), Some(&3));
        c.set_round(2);
        let s: Vec<(u32, u32)> = c
            .packets
            .iter()
            .map(|p| {
                let st = Stamp::read(&p.frame[p.stamp_at.unwrap()..]).unwrap();
                (st.flow, st.seq)
            })
            .collect();
        assert_eq!(s, [(0, 6), (1, 6), (0, 7), (1, 7), (0, 8), (1, 8)]);
    }

    #[test]
    fn send_time_follows_the_stamp_where_it_fits() {
        // 64-byte UDP: 18 bytes of payload, room for the stamp alone.
        let p = Profile::parse(
            "packets = 4\nsend_time = true\nsize = [[64, 1], [128, 1]]\n[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\nproto = \"udp\"\n",
        )
        .unwrap();
        let mut c = generate(&p);
        let at: Vec<(Option<usize>, Option<usize>)> =
            c.packets.iter().map(|p| (p.stamp_at, p.time_at)).collect();
        let at0 = Some(42);
        let at1 = Some(42 + stamp::LEN);
        assert_eq!(at, [(at0, None), (at0, at1), (at0, None), (at0, at1)]);
        let before = c.packets[0].frame.clone();
        c.set_send_time(0, 99);
        assert_eq!(c.packets[0].frame, before, "no field, nothing written");
        c.set_send_time(1, 99);
        assert_eq!(
            stamp::read_time(&c.packets[1].frame[42 + stamp::LEN..]),
            Some(99)
        );
        assert!(Profile::parse(
            "sequence = false\nsend_time = true\n[[flow]]\nsrc = \"10.0.0.1\"\ndst = \"10.0.0.2\"\n"
        )
        .is_err_and(|e| e.to_string().contains("send_time")));
    }
}
