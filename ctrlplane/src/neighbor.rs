//! Next-hop resolution on one uplink: ARP for IPv4, neighbour discovery
//! for IPv6. Each uplink has its own table: it answers for that uplink's
//! own address only, resolves the next hops its tunnels' routes chose
//! (`config::Routes`), re-resolves periodically and forgets a neighbour
//! that stops answering. Pure logic: frames in, frames out, time passed
//! in, so it is tested without DPDK.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dataplane::wire::ethernet::{self, Address, EtherType};
use dataplane::wire::{arp, checksum, icmp, ip_proto, ipv6, IpProtocol};

const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
/// Neighbour solicitation/advertisement: the target address follows the
/// ICMPv6 header's first word and reserved bits (RFC 4861 §4.3, §4.4).
const ND_TARGET: usize = icmp::field::REST + 4;
/// Then the options.
const ND_OPTIONS: usize = ND_TARGET + 16;
/// Option types: source and target link-layer address.
const ND_OPT_SOURCE_LL: u8 = 1;
const ND_OPT_TARGET_LL: u8 = 2;
/// NA flags in the first byte after the checksum: solicited, override.
const ND_NA_SOLICITED_OVERRIDE: u8 = 0x60;
/// Hop limit of every ND message; a receiver drops one with less.
const ND_HOP_LIMIT: u8 = 255;
/// Milliseconds between requests while a neighbour is unresolved.
const RETRY_MS: u64 = 1000;
/// Requests without an answer before a resolved neighbour is forgotten.
const MAX_UNANSWERED: u32 = 3;

/// Where a neighbour stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Fixed by the config: never resolved, never forgotten.
    Static([u8; 6]),
    /// No MAC yet; `sent` requests so far, the last at `last_ms`.
    Incomplete { sent: u32, last_ms: u64 },
    /// Resolved at `at_ms`; `unanswered` refresh requests since.
    Reachable {
        mac: [u8; 6],
        at_ms: u64,
        unanswered: u32,
        last_ms: u64,
    },
}

impl State {
    pub fn mac(&self) -> Option<[u8; 6]> {
        match *self {
            State::Static(m) | State::Reachable { mac: m, .. } => Some(m),
            State::Incomplete { .. } => None,
        }
    }
}

/// The appliance's side of one uplink (or of a decap input with an address).
#[derive(Debug, Clone)]
pub struct Uplink {
    pub mac: [u8; 6],
    pub addr: IpAddr,
    /// Between re-resolutions of a reachable neighbour.
    pub refresh: Duration,
}

/// The neighbour table.
#[derive(Debug)]
pub struct Neighbors {
    up: Uplink,
    entries: HashMap<IpAddr, State>,
}

impl Neighbors {
    pub fn new(up: Uplink, statics: &[(IpAddr, [u8; 6])]) -> Self {
        let entries = statics
            .iter()
            .map(|(ip, mac)| (*ip, State::Static(*mac)))
            .collect();
        Self { up, entries }
    }

    pub fn uplink(&self) -> &Uplink {
        &self.up
    }

    /// Starts resolving `ip` (a next hop some destination needs).
    pub fn want(&mut self, ip: IpAddr) {
        self.entries.entry(ip).or_insert(State::Incomplete {
            sent: 0,
            last_ms: 0,
        });
    }

    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.entries.get(&ip).and_then(State::mac)
    }

    /// Every entry, for `show arp`.
    pub fn entries(&self) -> impl Iterator<Item = (&IpAddr, &State)> {
        self.entries.iter()
    }

    /// Requests due at `now_ms` (first tries, retries, refreshes). Returns
    /// the frames to send and whether a neighbour was forgotten.
    pub fn poll(&mut self, now_ms: u64) -> (Vec<Vec<u8>>, bool) {
        let mut out = Vec::new();
        let mut lost = false;
        let refresh_ms = u64::try_from(self.up.refresh.as_millis()).unwrap_or(u64::MAX);
        let ips: Vec<IpAddr> = self.entries.keys().copied().collect();
        for ip in ips {
            let Some(state) = self.entries.get_mut(&ip) else {
                continue;
            };
            let send = match state {
                State::Static(_) => false,
                State::Incomplete { sent, last_ms } => {
                    if *sent == 0 || now_ms.saturating_sub(*last_ms) >= RETRY_MS {
                        *sent += 1;
                        *last_ms = now_ms;
                        true
                    } else {
                        false
                    }
                }
                State::Reachable {
                    at_ms,
                    unanswered,
                    last_ms,
                    ..
                } => {
                    let due = now_ms.saturating_sub(*at_ms) >= refresh_ms
                        && now_ms.saturating_sub(*last_ms) >= RETRY_MS;
                    if due && *unanswered >= MAX_UNANSWERED {
                        *state = State::Incomplete {
                            sent: 1,
                            last_ms: now_ms,
                        };
                        lost = true;
                        true
                    } else if due {
                        *unanswered += 1;
                        *last_ms = now_ms;
                        true
                    } else {
                        false
                    }
                }
            };
            if send {
                if let Some(f) = self.request(ip) {
                    out.push(f);
                }
            }
        }
        (out, lost)
    }

    /// Handles a frame from the uplink. Returns a reply to send (for a
    /// request about our address) and whether a wanted MAC changed.
    pub fn handle(&mut self, frame: &[u8], now_ms: u64) -> (Option<Vec<u8>>, bool) {
        let Ok(eth) = ethernet::Packet::new_checked(frame) else {
            return (None, false);
        };
        match eth.ethertype() {
            EtherType::Arp => self.handle_arp(eth.payload(), now_ms),
            EtherType::Ipv6 => self.handle_nd(eth.payload(), now_ms),
            _ => (None, false),
        }
    }

    fn learn(&mut self, ip: IpAddr, mac: [u8; 6], now_ms: u64) -> bool {
        match self.entries.get_mut(&ip) {
            // Only next hops we asked for are learnt: a mirror network is no
            // place to fill a table from gratuitous traffic.
            None | Some(State::Static(_)) => false,
            Some(s) => {
                let changed = s.mac() != Some(mac);
                *s = State::Reachable {
                    mac,
                    at_ms: now_ms,
                    unanswered: 0,
                    last_ms: now_ms,
                };
                changed
            }
        }
    }

    fn handle_arp(&mut self, payload: &[u8], now_ms: u64) -> (Option<Vec<u8>>, bool) {
        let Ok(p) = arp::Packet::new_checked(payload) else {
            return (None, false);
        };
        let Ok(r) = arp::Repr::parse(&p) else {
            return (None, false);
        };
        let changed = self.learn(IpAddr::V4(r.sender_ip), r.sender_hw.0, now_ms);
        let ours = self.up.addr == IpAddr::V4(r.target_ip);
        let reply = (ours && r.operation == arp::Operation::Request).then(|| {
            arp_frame(
                arp::Operation::Reply,
                self.up.mac,
                r.target_ip,
                r.sender_hw.0,
                r.sender_ip,
                r.sender_hw.0,
            )
        });
        (reply, changed)
    }

    fn handle_nd(&mut self, ip6: &[u8], now_ms: u64) -> (Option<Vec<u8>>, bool) {
        // Fixed header only: ND messages carry no extension headers.
        let ip = ipv6::Packet::new_unchecked(ip6);
        if ip6.len() < ipv6::HEADER_LEN + ND_OPTIONS
            || ip.next_header() != IpProtocol::Icmpv6
            || ip.hop_limit() != ND_HOP_LIMIT
        {
            return (None, false);
        }
        let src = ip.src_addr();
        let icmp = &ip6[ipv6::HEADER_LEN..];
        let target =
            Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[ND_TARGET..ND_OPTIONS]).unwrap_or([0; 16]));
        let option_mac = |kind: u8| -> Option<[u8; 6]> {
            let mut opts = &icmp[ND_OPTIONS..];
            while opts.len() >= 8 {
                let len = usize::from(opts[1]) * 8;
                if len == 0 || len > opts.len() {
                    return None;
                }
                if opts[0] == kind && len >= 8 {
                    return <[u8; 6]>::try_from(&opts[2..8]).ok();
                }
                opts = &opts[len..];
            }
            None
        };
        match icmp[icmp::field::TYPE] {
            ND_NA => {
                let changed = option_mac(ND_OPT_TARGET_LL)
                    .map(|mac| self.learn(IpAddr::V6(target), mac, now_ms))
                    .unwrap_or(false);
                (None, changed)
            }
            ND_NS => {
                let mut changed = false;
                if let Some(mac) = option_mac(ND_OPT_SOURCE_LL) {
                    changed = self.learn(IpAddr::V6(src), mac, now_ms);
                }
                let reply = match (self.up.addr, option_mac(ND_OPT_SOURCE_LL)) {
                    (IpAddr::V6(ours), Some(peer_mac))
                        if ours == target && !src.is_unspecified() =>
                    {
                        Some(nd_frame(ND_NA, self.up.mac, ours, peer_mac, src, target))
                    }
                    _ => None,
                };
                (reply, changed)
            }
            _ => (None, false),
        }
    }

    /// An ARP request or neighbour solicitation for `ip`.
    fn request(&self, ip: IpAddr) -> Option<Vec<u8>> {
        match (self.up.addr, ip) {
            (IpAddr::V4(ours), IpAddr::V4(target)) => Some(arp_frame(
                arp::Operation::Request,
                self.up.mac,
                ours,
                [0; 6],
                target,
                [0xff; 6],
            )),
            (IpAddr::V6(ours), IpAddr::V6(target)) => {
                let t = target.octets();
                let group = Ipv6Addr::new(
                    0xff02,
                    0,
                    0,
                    0,
                    0,
                    1,
                    0xff00 | u16::from(t[13]),
                    u16::from_be_bytes([t[14], t[15]]),
                );
                let g = group.octets();
                let mcast_mac = [0x33, 0x33, g[12], g[13], g[14], g[15]];
                Some(nd_frame(ND_NS, self.up.mac, ours, mcast_mac, group, target))
            }
            _ => None,
        }
    }
}

fn arp_frame(
    op: arp::Operation,
    our_mac: [u8; 6],
    our_ip: Ipv4Addr,
    target_hw: [u8; 6],
    target_ip: Ipv4Addr,
    eth_dst: [u8; 6],
) -> Vec<u8> {
    // Minimum Ethernet frame without FCS.
    let mut f = vec![0u8; 60];
    let eth = ethernet::Repr {
        dst_addr: Address(eth_dst),
        src_addr: Address(our_mac),
        ethertype: EtherType::Arp,
    };
    let _ = eth.emit_to(&mut f);
    let r = arp::Repr {
        operation: op,
        sender_hw: Address(our_mac),
        sender_ip: our_ip,
        target_hw: Address(target_hw),
        target_ip,
    };
    // The buffer is 60 bytes: 14 + 28 always fit.
    let _ = r.emit(&mut f[ethernet::HEADER_LEN..]);
    f
}

/// A neighbour solicitation (with our link-layer address) or advertisement
/// (solicited + override, with our link-layer address as target option).
fn nd_frame(
    kind: u8,
    our_mac: [u8; 6],
    src: Ipv6Addr,
    eth_dst: [u8; 6],
    dst: Ipv6Addr,
    target: Ipv6Addr,
) -> Vec<u8> {
    // One link-layer address option: type, length in 8-byte units, MAC.
    let icmp_len = ND_OPTIONS + 8;
    let l3 = ethernet::HEADER_LEN;
    let l4 = l3 + ipv6::HEADER_LEN;
    let mut f = vec![0u8; l4 + icmp_len];
    let eth = ethernet::Repr {
        dst_addr: Address(eth_dst),
        src_addr: Address(our_mac),
        ethertype: EtherType::Ipv6,
    };
    // The buffer holds every header: the emits cannot fail.
    let _ = eth.emit_to(&mut f);
    let mut ip = ipv6::Repr::new(src, dst, IpProtocol::Icmpv6, icmp_len);
    ip.hop_limit = ND_HOP_LIMIT;
    let _ = ip.emit_to(&mut f[l3..]);
    let icmp = &mut f[l4..];
    icmp[icmp::field::TYPE] = kind;
    if kind == ND_NA {
        icmp[icmp::field::REST] = ND_NA_SOLICITED_OVERRIDE;
    }
    icmp[ND_TARGET..ND_OPTIONS].copy_from_slice(&target.octets());
    // Source (NS) or target (NA) link-layer address option.
    let opt = &mut icmp[ND_OPTIONS..];
    opt[0] = if kind == ND_NS {
        ND_OPT_SOURCE_LL
    } else {
        ND_OPT_TARGET_LL
    };
    opt[1] = 1;
    opt[2..8].copy_from_slice(&our_mac);
    let acc = checksum::pseudo_v6(&src, &dst, ip_proto::ICMPV6, icmp_len as u32);
    let c = checksum::finish(checksum::sum(icmp, acc));
    let at = icmp::field::CHECKSUM;
    icmp[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn v4() -> Neighbors {
        Neighbors::new(
            Uplink {
                mac: OURS,
                addr: "192.0.2.1".parse().expect("ip"),
                refresh: Duration::from_secs(30),
            },
            &[("198.51.100.7".parse().expect("ip"), [2, 0, 0, 0, 0, 7])],
        )
    }

    #[test]
    fn fixed_neighbours_are_known_at_once() {
        let n = v4();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(n.lookup(ip("198.51.100.7")), Some([2, 0, 0, 0, 0, 7]));
        assert_eq!(n.lookup(ip("192.0.2.10")), None);
    }

    #[test]
    fn answers_only_for_its_own_address() {
        let mut n = v4();
        let ask = |target: &str| {
            arp_frame(
                arp::Operation::Request,
                PEER,
                "192.0.2.254".parse().expect("ip"),
                [0; 6],
                target.parse().expect("ip"),
                [0xff; 6],
            )
        };
        assert!(n.handle(&ask("192.0.2.1"), 0).0.is_some());
        assert!(n.handle(&ask("192.0.2.2"), 0).0.is_none(), "not ours");
    }

    #[test]
    fn resolves_by_arp_retries_answers_and_forgets() {
        let mut n = v4();
        let gw: IpAddr = "192.0.2.254".parse().expect("ip");
        n.want(gw);
        let (reqs, _) = n.poll(0);
        assert_eq!(reqs.len(), 1);
        let req = &reqs[0];
        assert_eq!(&req[0..6], &[0xff; 6]);
        let p = arp::Packet::new_checked(&req[14..]).expect("arp");
        assert_eq!(p.operation(), arp::Operation::Request);
        assert_eq!(IpAddr::V4(p.target_ip()), gw);
        assert!(n.poll(500).0.is_empty(), "no retry before a second");
        assert_eq!(n.poll(1000).0.len(), 1, "retry");

        // The gateway answers.
        let reply = arp_frame(
            arp::Operation::Reply,
            PEER,
            "192.0.2.254".parse().expect("ip"),
            OURS,
            "192.0.2.1".parse().expect("ip"),
            OURS,
        );
        let (out, changed) = n.handle(&reply, 1100);
        assert!(out.is_none() && changed);
        assert_eq!(n.lookup(gw), Some(PEER));

        // Someone asks for our address: we answer, to them.
        let ask = arp_frame(
            arp::Operation::Request,
            PEER,
            "192.0.2.254".parse().expect("ip"),
            [0; 6],
            "192.0.2.1".parse().expect("ip"),
            [0xff; 6],
        );
        let (out, changed) = n.handle(&ask, 1200);
        assert!(!changed);
        let out = out.expect("a reply");
        assert_eq!(&out[0..6], &PEER);
        let p = arp::Packet::new_checked(&out[14..]).expect("arp");
        assert_eq!(p.operation(), arp::Operation::Reply);
        assert_eq!(p.sender_hw().0, OURS);

        // Refreshes go unanswered: the neighbour is forgotten.
        let mut lost = false;
        let mut t = 1100 + 30_000;
        for _ in 0..10 {
            let (_, l) = n.poll(t);
            lost |= l;
            t += 1000;
        }
        assert!(lost);
        assert_eq!(n.lookup(gw), None);
    }

    #[test]
    fn resolves_ipv6_by_neighbour_discovery() {
        let ours: Ipv6Addr = "2001:db8::1".parse().expect("ip");
        let peer: Ipv6Addr = "2001:db8::9".parse().expect("ip");
        let mut n = Neighbors::new(
            Uplink {
                mac: OURS,
                addr: IpAddr::V6(ours),
                refresh: Duration::from_secs(30),
            },
            &[],
        );
        n.want(IpAddr::V6(peer));
        let (reqs, _) = n.poll(0);
        let ns = &reqs[0];
        assert_eq!(&ns[0..3], &[0x33, 0x33, 0xff]);
        assert_eq!(ns[54], ND_NS);
        // The checksum verifies over the pseudo-header.
        let acc = checksum::pseudo_v6(
            &ours,
            &"ff02::1:ff00:9".parse().expect("ip"),
            ip_proto::ICMPV6,
            32,
        );
        assert!(checksum::verify(&ns[54..], acc));
        // The peer advertises.
        let na = nd_frame(ND_NA, PEER, peer, OURS, ours, peer);
        let (_, changed) = n.handle(&na, 10);
        assert!(changed);
        assert_eq!(n.lookup(IpAddr::V6(peer)), Some(PEER));
        // The peer solicits us: we advertise back.
        let ns = nd_frame(ND_NS, PEER, peer, OURS, ours, ours);
        let (reply, _) = n.handle(&ns, 20);
        let reply = reply.expect("an advertisement");
        assert_eq!(reply[54], ND_NA);
        assert_eq!(&reply[0..6], &PEER);
    }
}
