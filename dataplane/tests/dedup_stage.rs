//! dedup stage: what counts as a copy, the window, the bounded table, bursts.
//!
//! Frames are built here byte by byte (IP/TCP/UDP by etherparse) and their
//! `Layers` set by hand, so these tests do not depend on parse.

use dataplane::frame::{ChainFrame, Frame, VecFrame};
use dataplane::stage::dedup::{
    Dedup, DedupConfig, DedupCounters, DedupError, Verdict, MAX_ENTRIES, MIN_ENTRIES,
};
use dataplane::stage::parse::Layers;
use etherparse::{PacketBuilder, TcpHeader};
use proptest::prelude::*;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const MAC_R: [u8; 6] = [0x02, 0, 0, 0, 0, 0x1];
const T0: u64 = 1_000_000_000; // 1 s, a whole number of µs
const MS: u64 = 1_000_000;

fn ipv4_checksum(h: &mut [u8]) {
    let ihl = usize::from(h[0] & 0x0f) * 4;
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = 0;
    for w in h[..ihl].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Fields of an IP packet the tests vary.
#[derive(Clone, Debug)]
struct Ip {
    v6: bool,
    id: u16,
    ttl: u8,
    tos: u8,
    sport: u16,
    seq: u32,
    payload: Vec<u8>,
}

impl Default for Ip {
    fn default() -> Self {
        Self {
            v6: false,
            id: 0x1234,
            ttl: 64,
            tos: 0,
            sport: 40000,
            seq: 1000,
            payload: b"GET / HTTP/1.1\r\n".to_vec(),
        }
    }
}

impl Ip {
    /// The IP packet (TCP inside), with a valid IPv4 checksum.
    fn bytes(&self) -> Vec<u8> {
        let mut tcp = TcpHeader::new(self.sport, 80, self.seq, 65535);
        tcp.ack = true;
        let mut v = Vec::new();
        if self.v6 {
            let src = [0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let mut dst = src;
            dst[15] = 2;
            PacketBuilder::ipv6(src, dst, self.ttl)
                .tcp_header(tcp)
                .write(&mut v, &self.payload)
                .unwrap();
            // Traffic class straddles bytes 0 and 1.
            v[0] = 0x60 | (self.tos >> 4);
            v[1] = (v[1] & 0x0f) | (self.tos << 4);
        } else {
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], self.ttl)
                .tcp_header(tcp)
                .write(&mut v, &self.payload)
                .unwrap();
            v[1] = self.tos;
            v[4..6].copy_from_slice(&self.id.to_be_bytes());
            ipv4_checksum(&mut v);
        }
        v
    }
}

/// An Ethernet frame around `l3` and the layers parse would report.
fn eth(dst: [u8; 6], src: [u8; 6], vlans: &[u16], ethertype: u16, l3: &[u8]) -> (VecFrame, Layers) {
    let mut b = Vec::new();
    b.extend_from_slice(&dst);
    b.extend_from_slice(&src);
    for (i, v) in vlans.iter().enumerate() {
        let tpid: u16 = if i + 1 < vlans.len() { 0x88a8 } else { 0x8100 };
        b.extend_from_slice(&tpid.to_be_bytes());
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&ethertype.to_be_bytes());
    let l3_offset = b.len() as u16;
    b.extend_from_slice(l3);
    let ip_version = match ethertype {
        0x0800 => 4,
        0x86dd => 6,
        _ => 0,
    };
    let (l4_offset, payload_offset) = match ip_version {
        4 => {
            let l4 = l3_offset + u16::from(l3[0] & 0x0f) * 4;
            (
                l4,
                l4 + u16::from(l3[(l4 - l3_offset) as usize + 12] >> 4) * 4,
            )
        }
        6 => {
            let l4 = l3_offset + 40;
            (l4, l4 + u16::from(l3[52] >> 4) * 4)
        }
        _ => (0, l3_offset),
    };
    // Where the IP packet ends, as parse keeps it for dedup: by its length
    // field, or at the frame's end when that is 0; 0 where parse finds the
    // header cut short or its lengths lying.
    let len_at = |at: usize| match l3.get(at..at + 2) {
        Some(&[x, y]) => usize::from(u16::from_be_bytes([x, y])),
        _ => 0,
    };
    let (min, len) = match ip_version {
        4 => (usize::from(l3[0] & 0x0f) * 4, len_at(2)),
        6 => (40, 40 + len_at(4)),
        _ => (usize::MAX, 0),
    };
    let ip_len = match (ip_version, len) {
        (4, 0) | (6, 40) => l3.len(),
        _ => len,
    };
    let ip_end = if (20..=ip_len).contains(&min) && ip_len <= l3.len() {
        u32::from(l3_offset) + ip_len as u32
    } else {
        0
    };
    let layers = Layers {
        vlan_count: vlans.len() as u8,
        outer_vlan: vlans.first().copied(),
        inner_vlan: vlans.get(1).copied(),
        ethertype,
        l3_offset: if ip_version == 0 { 0 } else { l3_offset },
        ip_version,
        l4_proto: if ip_version == 0 { 0 } else { 6 },
        l4_offset: if ip_version == 0 { 0 } else { l4_offset },
        payload_offset,
        ip_end,
        ..Layers::default()
    };
    (VecFrame::new(&b), layers)
}

fn ip_frame(ip: &Ip, vlans: &[u16]) -> (VecFrame, Layers) {
    let et = if ip.v6 { 0x86dd } else { 0x0800 };
    eth(MAC_B, MAC_A, vlans, et, &ip.bytes())
}

fn table(cfg: DedupConfig) -> Dedup {
    Dedup::new(&cfg).unwrap()
}

fn small() -> DedupConfig {
    DedupConfig {
        entries: 1 << 12,
        ..DedupConfig::default()
    }
}

/// Verdicts for `frames` checked one after another at the given times.
fn run(d: &mut Dedup, frames: &[(&(VecFrame, Layers), u64)]) -> Vec<Verdict> {
    frames.iter().map(|((f, l), t)| d.check(f, l, *t)).collect()
}

use Verdict::{Duplicate as D, Unique as U};

// In a module so that `cargo test dedup` selects these tests by name.
mod dedup {
    use super::*;

    #[test]
    fn copies_differing_in_ttl_or_checksum_are_duplicates() {
        for v6 in [false, true] {
            let base = Ip {
                v6,
                ..Ip::default()
            };
            let a = ip_frame(&base, &[]);
            let routed = ip_frame(
                &Ip {
                    ttl: 63,
                    ..base.clone()
                },
                &[],
            );
            // A checksum that does not match the header (zeroed by a capture card).
            let mut bad_sum = ip_frame(&base, &[]);
            if !v6 {
                let o = usize::from(bad_sum.1.l3_offset);
                bad_sum.0.data_mut()[o + 10..o + 12].copy_from_slice(&[0, 0]);
            }
            let mut d = table(small());
            assert_eq!(
                run(
                    &mut d,
                    &[(&a, T0), (&routed, T0 + MS), (&bad_sum, T0 + 2 * MS)]
                ),
                [U, D, D],
                "v6={v6}"
            );
        }
    }

    #[test]
    fn copies_differing_in_vlan_tags_or_macs_are_duplicates() {
        for v6 in [false, true] {
            let ip = Ip {
                v6,
                ..Ip::default()
            }
            .bytes();
            let et = if v6 { 0x86dd } else { 0x0800 };
            let untagged = eth(MAC_B, MAC_A, &[], et, &ip);
            let tag10 = eth(MAC_B, MAC_A, &[10], et, &ip);
            let tag20 = eth(MAC_B, MAC_A, &[20], et, &ip);
            let qinq = eth(MAC_B, MAC_A, &[100, 10], et, &ip);
            let routed = eth(MAC_R, MAC_B, &[], et, &ip);
            let mut d = table(small());
            let got = run(
                &mut d,
                &[
                    (&tag10, T0),
                    (&untagged, T0 + 1),
                    (&tag20, T0 + 2),
                    (&qinq, T0 + 3),
                    (&routed, T0 + 4),
                ],
            );
            assert_eq!(got, [U, D, D, D, D], "v6={v6}");
        }
    }

    #[test]
    fn ethernet_padding_is_not_part_of_an_ip_packet() {
        // A 40-byte TCP ACK is padded to the Ethernet minimum; a tag pushed or
        // popped on the way changes the padding, not the packet.
        let ip = Ip {
            payload: vec![],
            ..Ip::default()
        }
        .bytes();
        let mut padded = ip.clone();
        padded.extend_from_slice(&[0u8; 6]);
        let mut junk = ip.clone();
        junk.extend_from_slice(&[0xee; 2]);
        let a = eth(MAC_B, MAC_A, &[], 0x0800, &padded);
        let b = eth(MAC_B, MAC_A, &[7], 0x0800, &junk);
        let mut d = table(small());
        assert_eq!(run(&mut d, &[(&a, T0), (&b, T0 + 1)]), [U, D]);
        // IPv6 the same way, through its payload length.
        let ip6 = Ip {
            payload: vec![],
            ..Ip {
                v6: true,
                ..Ip::default()
            }
        }
        .bytes();
        let mut padded6 = ip6.clone();
        padded6.extend_from_slice(&[0xee; 4]);
        let a6 = eth(MAC_B, MAC_A, &[], 0x86dd, &ip6);
        let b6 = eth(MAC_B, MAC_A, &[7], 0x86dd, &padded6);
        assert_eq!(run(&mut d, &[(&a6, T0), (&b6, T0 + 1)]), [U, D]);
    }

    #[test]
    fn gso_super_frames_are_keyed_on_the_whole_frame() {
        // IP lengths of 0 (TSO / BIG TCP as seen on a vswitch port): the IP
        // header says nothing about the end, and IPv6 has no ID to tell
        // segments apart, so the payload must be in the key.
        for v6 in [false, true] {
            let seg = |payload: &[u8]| {
                let mut ip = Ip {
                    v6,
                    payload: payload.to_vec(),
                    ..Ip::default()
                }
                .bytes();
                let at = if v6 { 4 } else { 2 };
                ip[at..at + 2].copy_from_slice(&[0, 0]);
                if !v6 {
                    ipv4_checksum(&mut ip);
                }
                ip_frame_raw(v6, &ip)
            };
            let (a, b) = (seg(&[1; 3000]), seg(&[2; 3000]));
            let mut d = table(small());
            assert_eq!(
                run(&mut d, &[(&a, T0), (&b, T0 + 1), (&a, T0 + 2)]),
                [U, U, D],
                "v6={v6}"
            );
        }
    }

    fn ip_frame_raw(v6: bool, l3: &[u8]) -> (VecFrame, Layers) {
        eth(MAC_B, MAC_A, &[], if v6 { 0x86dd } else { 0x0800 }, l3)
    }

    #[test]
    fn a_tcp_retransmission_is_not_a_copy() {
        for v6 in [false, true] {
            let first = Ip {
                v6,
                ..Ip::default()
            };
            // IPv4: the same segment sent again carries a new IP ID. IPv6 has no
            // ID; a retransmission is byte-identical there and only the window
            // tells it apart (see the window test).
            let again = Ip {
                id: first.id + 1,
                ..first.clone()
            };
            let next = Ip {
                seq: first.seq + 16,
                ..first.clone()
            };
            let mut d = table(small());
            let got = run(
                &mut d,
                &[
                    (&ip_frame(&first, &[]), T0),
                    (&ip_frame(&again, &[]), T0 + MS),
                    (&ip_frame(&next, &[]), T0 + 2 * MS),
                ],
            );
            let want = if v6 { [U, D, U] } else { [U, U, U] };
            assert_eq!(got, want, "v6={v6}");
        }
    }

    #[test]
    fn distinct_packets_are_kept() {
        let base = Ip::default();
        let variants = [
            base.clone(),
            Ip {
                sport: 40001,
                ..base.clone()
            },
            Ip {
                payload: b"GET / HTTP/1.0\r\n".to_vec(),
                ..base.clone()
            },
            Ip {
                payload: b"GET / HTTP/1.1\r\n\0".to_vec(),
                ..base.clone()
            },
            Ip { v6: true, ..base },
        ];
        let mut d = table(small());
        for (i, ip) in variants.iter().enumerate() {
            assert_eq!(
                d.check(&ip_frame(ip, &[]).0, &ip_frame(ip, &[]).1, T0),
                U,
                "{i}"
            );
        }
    }

    #[test]
    fn the_window_runs_from_the_first_sighting() {
        let a = ip_frame(&Ip::default(), &[]);
        let mut d = table(small());
        // Window 50 ms by default: a copy 49.999 ms later is a duplicate, one at
        // 50 ms is not, and copies do not extend the window.
        assert_eq!(
            run(
                &mut d,
                &[(&a, T0), (&a, T0 + 49_999_000), (&a, T0 + 50 * MS)]
            ),
            [U, D, U]
        );
        // The late one started a new window.
        assert_eq!(d.check(&a.0, &a.1, T0 + 99 * MS), D);
        assert_eq!(d.check(&a.0, &a.1, T0 + 100 * MS), U);
        let c = d.counters();
        assert_eq!((c.hits, c.inserts, c.expired_replacements), (2, 3, 2));
    }

    #[test]
    fn time_running_backwards_fails_open() {
        let a = ip_frame(&Ip::default(), &[]);
        let mut d = table(small());
        assert_eq!(run(&mut d, &[(&a, T0), (&a, T0 - MS)]), [U, U]);
    }

    #[test]
    fn set_window_applies_at_once() {
        let a = ip_frame(&Ip::default(), &[]);
        let mut d = table(small());
        assert_eq!(d.window_us(), 50_000);
        assert_eq!(d.check(&a.0, &a.1, T0), U);
        d.set_window(1_000);
        assert_eq!(d.window_us(), 1_000);
        assert_eq!(d.check(&a.0, &a.1, T0 + 2 * MS), U);
        d.set_window(200_000);
        assert_eq!(d.check(&a.0, &a.1, T0 + 150 * MS), D);
        d.set_window(0);
        assert_eq!(
            d.check(&a.0, &a.1, T0 + 150 * MS),
            U,
            "window 0 disables dedup"
        );
    }

    #[test]
    fn dscp_ecn_is_in_the_key_unless_ignored() {
        for v6 in [false, true] {
            let base = Ip {
                v6,
                ..Ip::default()
            };
            let a = ip_frame(&base, &[]);
            let remarked = ip_frame(
                &Ip {
                    tos: 0xb8 | 0x01, // EF, ECT(1)
                    ..base.clone()
                },
                &[],
            );
            let mut strict = table(small());
            assert_eq!(
                run(&mut strict, &[(&a, T0), (&remarked, T0 + 1)]),
                [U, U],
                "v6={v6}"
            );
            let mut lax = table(DedupConfig {
                ignore_dscp_ecn: true,
                ..small()
            });
            assert_eq!(
                run(&mut lax, &[(&a, T0), (&remarked, T0 + 1)]),
                [U, D],
                "v6={v6}"
            );
            // Ignoring DSCP masks nothing else.
            let other_ttl_and_id = ip_frame(
                &Ip {
                    ttl: 1,
                    id: 9,
                    sport: 1,
                    ..base
                },
                &[],
            );
            assert_eq!(
                lax.check(&other_ttl_and_id.0, &other_ttl_and_id.1, T0 + 2),
                U
            );
        }
    }

    #[test]
    fn include_l2_makes_macs_and_tags_part_of_the_key() {
        let ip = Ip::default().bytes();
        let a = eth(MAC_B, MAC_A, &[10], 0x0800, &ip);
        let same = eth(MAC_B, MAC_A, &[10], 0x0800, &ip);
        let lower_ttl = eth(
            MAC_B,
            MAC_A,
            &[10],
            0x0800,
            &Ip {
                ttl: 3,
                ..Ip::default()
            }
            .bytes(),
        );
        let other_tag = eth(MAC_B, MAC_A, &[11], 0x0800, &ip);
        let untagged = eth(MAC_B, MAC_A, &[], 0x0800, &ip);
        let other_mac = eth(MAC_R, MAC_A, &[10], 0x0800, &ip);
        let mut d = table(DedupConfig {
            include_l2: true,
            ..small()
        });
        let got = run(
            &mut d,
            &[
                (&a, T0),
                (&same, T0 + 1),
                (&lower_ttl, T0 + 2),
                (&other_tag, T0 + 3),
                (&untagged, T0 + 4),
                (&other_mac, T0 + 5),
            ],
        );
        assert_eq!(got, [U, D, D, U, U, U]);
    }

    #[test]
    fn non_ip_frames_are_keyed_on_the_frame_without_its_tags() {
        let arp = |sender_ip: u8, pad: usize| {
            let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
            p.extend_from_slice(&MAC_A);
            p.extend_from_slice(&[10, 0, 0, sender_ip]);
            p.extend_from_slice(&[0; 6]);
            p.extend_from_slice(&[10, 0, 0, 2]);
            p.resize(p.len() + pad, 0x5a);
            p
        };
        let bcast = [0xff; 6];
        let a = eth(bcast, MAC_A, &[], 0x0806, &arp(1, 18));
        // Tagged on another port: 4 bytes less padding.
        let tagged = eth(bcast, MAC_A, &[30], 0x0806, &arp(1, 14));
        let other = eth(bcast, MAC_A, &[], 0x0806, &arp(3, 18));
        // The MACs are the frame's identity when there is no IP header.
        let other_src = eth(bcast, MAC_B, &[], 0x0806, &arp(1, 18));
        let lldp1 = eth(MAC_R, MAC_A, &[], 0x88cc, &[1, 2, 3, 4]);
        let lldp2 = eth(MAC_R, MAC_A, &[5], 0x88cc, &[1, 2, 3, 4]);
        let lldp3 = eth(MAC_R, MAC_A, &[], 0x88cc, &[1, 2, 3, 5]);
        // Without an IP length, trailing zero bytes are content.
        let lldp4 = eth(MAC_R, MAC_A, &[], 0x88cc, &[1, 2, 3, 4, 0]);
        let mut d = table(small());
        let got = run(
            &mut d,
            &[
                (&a, T0),
                (&tagged, T0 + 1),
                (&other, T0 + 2),
                (&other_src, T0 + 3),
                (&lldp1, T0 + 4),
                (&lldp2, T0 + 5),
                (&lldp3, T0 + 6),
                (&lldp4, T0 + 7),
            ],
        );
        assert_eq!(got, [U, D, U, U, U, D, U, U]);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_and_counts_it() {
        // One bucket of four ways: every packet lands in it.
        let mut d = table(DedupConfig {
            entries: MIN_ENTRIES,
            ..DedupConfig::default()
        });
        let frames: Vec<_> = (0..6u16)
            .map(|i| {
                ip_frame(
                    &Ip {
                        id: i,
                        ..Ip::default()
                    },
                    &[],
                )
            })
            .collect();
        for (i, (f, l)) in frames.iter().enumerate().take(5) {
            assert_eq!(d.check(f, l, T0 + i as u64 * 1000), U);
        }
        assert_eq!(
            d.counters(),
            DedupCounters {
                checked: 5,
                hits: 0,
                inserts: 5,
                evictions: 1,
                expired_replacements: 0,
            }
        );
        // Packet 0 was the oldest and is gone; 1..4 are still there.
        assert_eq!(d.check(&frames[4].0, &frames[4].1, T0 + 10_000), D);
        assert_eq!(d.check(&frames[0].0, &frames[0].1, T0 + 10_000), U);
        assert_eq!(d.counters().evictions, 2);
        // Once the window has passed, inserts reuse expired ways, not live ones.
        assert_eq!(d.check(&frames[5].0, &frames[5].1, T0 + 60 * MS), U);
        let c = d.counters();
        assert_eq!((c.evictions, c.expired_replacements), (2, 1));
        assert_eq!(c.checked, c.hits + c.inserts);
    }

    #[test]
    fn a_packet_seen_again_after_the_window_reuses_its_own_entry() {
        let mut d = table(DedupConfig {
            entries: MIN_ENTRIES,
            ..DedupConfig::default()
        });
        let f = |id: u16| {
            ip_frame(
                &Ip {
                    id,
                    ..Ip::default()
                },
                &[],
            )
        };
        let (x, a, y, z, w) = (f(1), f(2), f(3), f(4), f(5));
        // Ways after this: W (live), A (expired), Y, Z (live).
        let late = T0 + 60 * MS;
        let got = run(
            &mut d,
            &[(&x, T0), (&a, T0), (&y, late), (&z, late), (&w, late)],
        );
        assert_eq!(got, [U; 5]);
        // A again: its own expired way is the one to reuse, not a live one.
        assert_eq!(d.check(&a.0, &a.1, late), U);
        assert_eq!(d.counters().evictions, 0);
        assert_eq!(d.counters().expired_replacements, 2);
        for p in [&a, &w, &y, &z] {
            assert_eq!(d.check(&p.0, &p.1, late + 1), D);
        }
    }

    #[test]
    fn the_entry_count_is_validated() {
        for bad in [0, 1, 2, 3, 1000, 4097, MAX_ENTRIES * 2] {
            let err = Dedup::new(&DedupConfig {
                entries: bad,
                ..DedupConfig::default()
            })
            .unwrap_err();
            assert_eq!(
                err,
                DedupError::BadEntries {
                    got: bad,
                    min: MIN_ENTRIES,
                    max: MAX_ENTRIES
                }
            );
            assert!(err.to_string().contains("power of two"), "{err}");
        }
        let d = table(DedupConfig {
            entries: 1 << 10,
            ..DedupConfig::default()
        });
        assert_eq!(d.entries(), 1 << 10);
        assert_eq!(d.memory_bytes(), (1 << 10) * 16);
    }

    #[test]
    fn debug_output_is_a_summary_without_keys_or_table() {
        let d = table(DedupConfig {
            entries: 1 << 16,
            seed: 0x1234_5678,
            ..DedupConfig::default()
        });
        let s = format!("{d:?}");
        assert!(
            s.contains("entries: 65536") && s.contains("window_us: 50000"),
            "{s}"
        );
        assert!(s.len() < 400, "{s}");
    }

    #[test]
    fn the_seed_changes_fingerprints_not_verdicts() {
        let a = ip_frame(&Ip::default(), &[]);
        let d1 = table(small());
        let d2 = table(DedupConfig {
            seed: 42,
            ..small()
        });
        assert_ne!(
            d1.fingerprint(a.0.data(), &a.1),
            d2.fingerprint(a.0.data(), &a.1)
        );
        assert_ne!(d1.fingerprint(a.0.data(), &a.1).tag, 0);
    }

    #[test]
    fn a_burst_matches_one_by_one_checks_and_finds_copies_inside_it() {
        // 70 frames: more than two bursts' worth, with copies inside one burst,
        // across bursts, and unique packets.
        let frames: Vec<VecFrame> = (0..70u16)
            .map(|i| {
                let ip = Ip {
                    id: i % 40,
                    ttl: 64 - (i / 40) as u8,
                    ..Ip::default()
                };
                ip_frame(&ip, &[i % 3]).0
            })
            .collect();
        let layers: Vec<Layers> = (0..70u16)
            .map(|i| ip_frame(&Ip::default(), &[i % 3]).1)
            .collect();
        let mut burst = table(small());
        let mut verdicts = vec![U; 70];
        burst.check_burst(&frames, &layers, T0, &mut verdicts);
        let mut single = table(small());
        let want: Vec<_> = frames
            .iter()
            .zip(&layers)
            .map(|(f, l)| single.check(f, l, T0))
            .collect();
        assert_eq!(verdicts, want);
        assert_eq!(verdicts.iter().filter(|v| **v == D).count(), 30);
        assert_eq!(burst.counters(), single.counters());

        // Copies within one burst.
        let mut d = table(small());
        let pair = [frames[0].clone(), frames[40].clone()];
        let mut v = [U; 2];
        d.check_burst(&pair, &layers[..2], T0, &mut v);
        assert_eq!(v, [U, D]);

        // The shortest slice decides how many are checked.
        let mut d = table(small());
        let mut v = [D; 1];
        d.check_burst(&frames[..5], &layers[..5], T0, &mut v);
        assert_eq!(d.counters().checked, 1);
    }

    /// Under EAL the table sits in DPDK hugepage memory and answers as
    /// the heap table does.
    #[cfg(feature = "dpdk")]
    #[test]
    fn a_table_on_dpdk_hugepages_answers_as_one_on_the_heap() {
        dataplane::dpdk::testing::shared_eal("dedup-hugepages");
        let frames: Vec<VecFrame> = (0..70u16)
            .map(|i| {
                let ip = Ip {
                    id: i % 40,
                    ..Ip::default()
                };
                ip_frame(&ip, &[]).0
            })
            .collect();
        let layers: Vec<Layers> = (0..70).map(|_| ip_frame(&Ip::default(), &[]).1).collect();
        let mut huge = Dedup::new_on_hugepages(&small()).unwrap();
        assert!(huge.on_hugepages());
        assert_eq!(huge.entries(), small().entries);
        let mut heap = table(small());
        assert!(!heap.on_hugepages());
        let (mut a, mut b) = (vec![U; 70], vec![U; 70]);
        huge.check_burst(&frames, &layers, T0, &mut a);
        heap.check_burst(&frames, &layers, T0, &mut b);
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|v| **v == D).count(), 30);
        assert_eq!(huge.counters(), heap.counters());
    }

    #[test]
    fn a_selective_burst_checks_only_the_wanted_packets() {
        let frames: Vec<VecFrame> = (0..40u16)
            .map(|i| {
                ip_frame(
                    &Ip {
                        id: i % 20,
                        ..Ip::default()
                    },
                    &[],
                )
                .0
            })
            .collect();
        let layers = vec![ip_frame(&Ip::default(), &[]).1; 40];
        // Every third packet is not wanted: it gets Unique and is not recorded.
        let want: Vec<bool> = (0..40).map(|i| i % 3 != 0).collect();
        let mut d = table(small());
        let mut verdicts = vec![D; 40];
        d.check_burst_where(&frames, &layers, &want, T0, &mut verdicts);
        let mut single = table(small());
        let expected: Vec<_> = (0..40)
            .map(|i| {
                if want[i] {
                    single.check(&frames[i], &layers[i], T0)
                } else {
                    U
                }
            })
            .collect();
        assert_eq!(verdicts, expected);
        assert!(verdicts.contains(&D));
        assert_eq!(d.counters(), single.counters());
        assert_eq!(
            d.counters().checked,
            want.iter().filter(|w| **w).count() as u64
        );
        // A shorter `want` limits the burst like any other slice.
        let mut d = table(small());
        d.check_burst_where(&frames, &layers, &want[..2], T0, &mut verdicts);
        assert_eq!(d.counters().checked, 1);
    }

    #[test]
    fn a_burst_with_times_per_packet_runs_the_window_on_those_times() {
        // Copies of one packet 0.5 s apart in a capture, read in one burst:
        // apart on capture time, whatever the arrival clock says.
        let (frame, layers) = ip_frame(&Ip::default(), &[]);
        let frames = vec![frame; 4];
        let layers = vec![layers; 4];
        let want = [true; 4];
        let times = [T0, T0 + 500 * MS, T0 + 500 * MS + MS, T0 + 1000 * MS];
        let mut d = table(small());
        let mut verdicts = vec![D; 4];
        d.check_burst_where_at(&frames, &layers, &want, &times, &mut verdicts);
        assert_eq!(verdicts, [U, U, D, U]);
        // The same times for all gives what the one-time call gives.
        let mut at = table(small());
        let mut one = table(small());
        let (mut va, mut vo) = (vec![D; 4], vec![D; 4]);
        at.check_burst_where_at(&frames, &layers, &want, &[T0; 4], &mut va);
        one.check_burst_where(&frames, &layers, &want, T0, &mut vo);
        assert_eq!(va, vo);
        assert_eq!(at.counters(), one.counters());
    }

    // A frame of the right shape for the property tests.
    fn arb_ip() -> impl Strategy<Value = Ip> {
        (
            any::<bool>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(v6, id, ttl, tos, sport, seq, payload)| Ip {
                v6,
                id,
                ttl,
                tos,
                sport,
                seq,
                payload,
            })
    }

    proptest! {
        #[test]
        fn a_masked_field_mutation_is_always_a_duplicate(
            ip in arb_ip(),
            ttl in any::<u8>(),
            tos in any::<u8>(),
            csum in any::<[u8; 2]>(),
            vlans_a in prop::collection::vec(0u16..4096, 0..3),
            vlans_b in prop::collection::vec(0u16..4096, 0..3),
            macs in any::<([u8; 6], [u8; 6])>(),
            ignore_dscp_ecn in any::<bool>(),
            delay_us in 0u64..50_000,
        ) {
            let et = if ip.v6 { 0x86dd } else { 0x0800 };
            let a = eth(MAC_B, MAC_A, &vlans_a, et, &ip.bytes());
            let copy = Ip {
                ttl,
                tos: if ignore_dscp_ecn { tos } else { ip.tos },
                ..ip.clone()
            };
            let mut b = eth(macs.0, macs.1, &vlans_b, et, &copy.bytes());
            if !ip.v6 {
                let o = usize::from(b.1.l3_offset);
                b.0.data_mut()[o + 10..o + 12].copy_from_slice(&csum);
            }
            let mut d = table(DedupConfig { ignore_dscp_ecn, ..small() });
            prop_assert_eq!(d.check(&a.0, &a.1, T0), U);
            prop_assert_eq!(d.check(&b.0, &b.1, T0 + delay_us * 1000), D);
        }

        /// Prefetching a burst's buckets ahead of its lookups never changes
        /// a verdict or a counter: the prefetched path answers as
        /// `check_burst_where(_at)` does, burst after burst, with copies
        /// inside and across bursts, unwanted packets, evictions (a small
        /// table) and times per packet.
        #[test]
        fn a_prefetched_burst_answers_as_the_one_pass_burst(
            bursts in prop::collection::vec(
                prop::collection::vec((0u16..48, any::<bool>(), 0u64..120), 0..=32),
                1..8,
            ),
            entries in prop::sample::select(vec![MIN_ENTRIES, 64, 1 << 12]),
            per_packet_times in any::<bool>(),
        ) {
            let cfg = DedupConfig { entries, ..DedupConfig::default() };
            let (mut early, mut one_pass) = (table(cfg), table(cfg));
            let mut t = T0;
            for burst in bursts {
                let n = burst.len();
                let (frames, layers): (Vec<VecFrame>, Vec<Layers>) = burst
                    .iter()
                    .map(|&(id, _, _)| ip_frame(&Ip { id, ..Ip::default() }, &[]))
                    .unzip();
                let want: Vec<bool> = burst.iter().map(|p| p.1).collect();
                let times: Vec<u64> = burst.iter().map(|p| t + p.2 * MS).collect();
                t += 10 * MS;
                let mut fps = vec![Default::default(); n];
                prop_assert_eq!(early.prefetch_burst(&frames, &layers, &mut fps), n);
                let (mut a, mut b) = (vec![D; n], vec![D; n]);
                if per_packet_times {
                    early.check_prefetched_where_at(&fps, &want, &times, &mut a);
                    one_pass.check_burst_where_at(&frames, &layers, &want, &times, &mut b);
                } else {
                    early.check_prefetched_where(&fps, &want, t, &mut a);
                    one_pass.check_burst_where(&frames, &layers, &want, t, &mut b);
                }
                prop_assert_eq!(a, b);
                prop_assert_eq!(early.counters(), one_pass.counters());
            }
        }

        #[test]
        fn distinct_payloads_are_never_duplicates(
            payloads in prop::collection::hash_set(prop::collection::vec(any::<u8>(), 0..200), 1..200),
            v6 in any::<bool>(),
        ) {
            let mut d = table(DedupConfig { entries: 1 << 16, ..DedupConfig::default() });
            for p in payloads {
                let (f, l) = ip_frame(&Ip { v6, payload: p, ..Ip::default() }, &[]);
                prop_assert_eq!(d.check(&f, &l, T0), U);
            }
        }

        /// A chained frame (a jumbo frame in mbufs) is keyed on all its
        /// bytes, the same as those bytes in one segment, wherever the
        /// segments are cut: a copy's segmentation differs when a tag was
        /// pushed or popped on its way.
        #[test]
        fn a_chained_frame_has_the_key_of_its_bytes_in_one_segment(
            ip in arb_ip(),
            big in prop::collection::vec(any::<u8>(), 0..3000),
            padding in prop::collection::vec(any::<u8>(), 0..40),
            vlans in prop::collection::vec(0u16..4096, 0..3),
            // Cuts inside the headers too: a first segment need not hold them.
            cuts in prop::collection::vec(prop_oneof![0usize..64, 0usize..3400], 0..5),
            include_l2 in any::<bool>(),
            ignore_dscp_ecn in any::<bool>(),
            non_ip in any::<bool>(),
        ) {
            let ip = Ip { payload: [ip.payload, big].concat(), ..ip };
            let et = match (non_ip, ip.v6) {
                (true, _) => 0x88b5,
                (false, true) => 0x86dd,
                (false, false) => 0x0800,
            };
            // Ethernet padding after the IP packet: out of the key, however cut.
            let l3 = [ip.bytes(), padding].concat();
            let (whole, layers) = eth(MAC_B, MAC_A, &vlans, et, &l3);
            let chained = ChainFrame::new(whole.data(), &cuts);
            let d = table(DedupConfig { include_l2, ignore_dscp_ecn, ..small() });
            prop_assert_eq!(
                d.fingerprint_frame(&chained, &layers),
                d.fingerprint(whole.data(), &layers)
            );
            // Where parse kept the IP packet's end and where it did not
            // (the slow path reads the header): one key.
            prop_assert_eq!(
                d.fingerprint(whole.data(), &Layers { ip_end: 0, ..layers }),
                d.fingerprint(whole.data(), &layers)
            );
        }

        /// Arbitrary bytes and offsets, chained or not: never a panic, and
        /// the key is that of the bytes in one segment.
        #[test]
        fn any_bytes_and_any_offsets_in_any_segments_key_alike(
            data in prop::collection::vec(any::<u8>(), 0..300),
            cuts in prop::collection::vec(0usize..300, 0..4),
            l3_offset in any::<u16>(),
            ip_version in prop::sample::select(vec![0u8, 4, 6, 5]),
            vlan_count in any::<u8>(),
            include_l2 in any::<bool>(),
        ) {
            let layers = Layers { l3_offset, ip_version, vlan_count, ..Layers::default() };
            let d = table(DedupConfig { entries: MIN_ENTRIES, include_l2, ..DedupConfig::default() });
            prop_assert_eq!(
                d.fingerprint_frame(&ChainFrame::new(&data, &cuts), &layers),
                d.fingerprint(&data, &layers)
            );
        }

        #[test]
        fn any_bytes_and_any_offsets_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..200),
            l3_offset in any::<u16>(),
            ip_version in prop::sample::select(vec![0u8, 4, 6, 5]),
            vlan_count in any::<u8>(),
            include_l2 in any::<bool>(),
            ignore_dscp_ecn in any::<bool>(),
        ) {
            let layers = Layers { l3_offset, ip_version, vlan_count, ..Layers::default() };
            let mut d = table(DedupConfig { entries: MIN_ENTRIES, include_l2, ignore_dscp_ecn, ..DedupConfig::default() });
            let f = VecFrame::new(&data);
            prop_assert_eq!(d.check(&f, &layers, T0), U);
            prop_assert_eq!(d.check(&f, &layers, T0 + 1000), D);
        }
    }
}
