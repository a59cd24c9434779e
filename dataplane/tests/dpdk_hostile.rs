//! Chained (multi-segment) mbufs through the stages, on real DPDK mbufs in
//! an in-process EAL (virtual devices only, no PCI): a 5,000-byte frame
//! does not fit one mbuf's 2,048 bytes of data room, so it arrives as a
//! chain — as `net_pcap` hands jumbo frames over. Headers are in the first
//! segment; everything after it must still be sliced, encapsulated and
//! decapsulated exactly.

#![cfg(feature = "dpdk")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::dpdk::{testing, Batch, Eal, Mbuf, Mempool, Port, PortConfig};
use dataplane::frame::Frame;
use dataplane::stage::decap::{Decap, DecapConfig, DecapOutcome};
use dataplane::stage::dedup::{Dedup, DedupConfig, Verdict};
use dataplane::stage::encap::{
    EncapConfig, EncapMeta, EncapTemplate, OuterConfig, OversizePolicy, TunnelConfig,
};
use dataplane::stage::parse::{parse, parse_frame, ParseError};
use dataplane::stage::slice::{fit_to, keep_len, slice, SliceSpec};
use dataplane::wire::ethernet::Address;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

/// Data room of an appliance mbuf, and the bytes of it after the headroom.
const DATA_ROOM: u16 = 2176;
const SEGMENT: usize = 2048;
const LEN: usize = 5000;

fn eal() -> &'static Eal {
    testing::shared_eal("hostile")
}

fn pool(name: &str) -> Mempool {
    eal();
    Mempool::new(&testing::unique_prefix(name), 1023, 0, DATA_ROOM, -1).expect("mempool")
}

/// A valid Ethernet + IPv4 + UDP frame of `len` bytes, payload bytes all
/// different from their neighbours.
fn frame(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len - 42).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
        .udp(40000, 443)
        .write(&mut v, &payload)
        .expect("build");
    assert_eq!(v.len(), len);
    v
}

fn chained(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let m = Mbuf::from_bytes(pool, bytes).expect("mbuf");
    assert_eq!(m.pkt_len(), bytes.len());
    assert_eq!(
        usize::from(m.nb_segs()),
        bytes.len().div_ceil(SEGMENT).max(1)
    );
    assert_eq!(m.data().len(), bytes.len().min(SEGMENT), "first segment");
    assert_eq!(m.to_vec(), bytes);
    m
}

fn template(tunnel: TunnelConfig, v6: bool, mtu: u16) -> EncapTemplate {
    let (src_ip, dst_ip): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(192, 0, 2, 2).into(),
        )
    };
    EncapTemplate::new(&EncapConfig {
        tunnel,
        outer: OuterConfig {
            src_mac: Address([2, 0x53, 0x4c, 0, 0, 1]),
            dst_mac: Address([2, 0x53, 0x4c, 0, 0, 2]),
            vlan: None,
            src_ip,
            dst_ip,
            dscp: 0,
            ttl: 64,
        },
        mtu,
        oversize: OversizePolicy::TruncateToMtu,
    })
    .expect("template")
}

#[test]
fn slicing_cuts_across_segments_exactly() {
    let p = pool("hs-slice");
    let f = frame(LEN);
    let layers = parse(&f);
    for keep in [
        0usize, 1, 14, 100, 2047, 2048, 2049, 4095, 4096, 4097, 4999, 5000, 5001, 65535,
    ] {
        let mut m = chained(&p, &f);
        let out = fit_to(&mut m, keep);
        let want = keep.min(LEN);
        assert_eq!(m.pkt_len(), want, "fit_to({keep})");
        assert_eq!(out.removed, LEN - want, "fit_to({keep})");
        assert_eq!(m.to_vec(), &f[..want], "fit_to({keep})");
        // No empty segment is left behind after the cut.
        assert_eq!(
            usize::from(m.nb_segs()),
            want.div_ceil(SEGMENT).max(1),
            "fit_to({keep})"
        );
    }
    for spec in [
        SliceSpec::Bytes(3000),
        SliceSpec::AfterL4(0),
        SliceSpec::AfterL4(2500),
        SliceSpec::Whole,
    ] {
        let mut m = chained(&p, &f);
        slice(&mut m, &layers, spec);
        let want = keep_len(&layers, spec).unwrap_or(LEN).min(LEN);
        assert_eq!(m.pkt_len(), want, "{spec:?}");
        assert_eq!(m.to_vec(), &f[..want], "{spec:?}");
    }
    drop(p);
}

#[test]
fn encap_prepends_into_the_first_segment() {
    let p = pool("hs-encap");
    let f = frame(LEN);
    let layers = parse(&f);
    for (tunnel, v6) in [
        (TunnelConfig::vxlan(100), false),
        (TunnelConfig::vxlan(100), true),
        (TunnelConfig::erspan3(7), false),
        (TunnelConfig::ErspanII { session: 7 }, true),
        (TunnelConfig::L2Gre { key: 1 }, false),
        (TunnelConfig::Geneve { vni: 5 }, false),
    ] {
        // Room for the whole frame: nothing is cut.
        let mut tpl = template(tunnel, v6, 9000);
        let hl = tpl.header_len();
        let mut m = chained(&p, &f);
        let segs = m.nb_segs();
        let meta = EncapMeta {
            layers: Some(&layers),
            ..EncapMeta::default()
        };
        tpl.encap(&mut m, &meta, 1).expect("encap");
        assert_eq!(m.nb_segs(), segs, "{tunnel:?}: a segment was added");
        assert_eq!(m.pkt_len(), hl + LEN, "{tunnel:?}");
        assert_eq!(
            m.data().len(),
            hl + SEGMENT,
            "{tunnel:?}: header not in the first segment"
        );
        let bytes = m.to_vec();
        assert_eq!(&bytes[hl..], &f[..], "{tunnel:?}: inner frame changed");
        assert_eq!(&bytes[..12], &tpl.header()[..12], "{tunnel:?}: outer MACs");
        if v6 && matches!(tunnel, TunnelConfig::Vxlan { .. }) {
            // The UDP checksum over IPv6 needs the whole datagram in one
            // place: a chained frame keeps checksum 0 (RFC 6935, as encap
            // documents); the same frame in one segment gets a real one.
            let l4 = 14 + 40;
            assert_eq!(
                &bytes[l4 + 6..l4 + 8],
                &[0, 0],
                "checksum of a chained frame"
            );
        }

        // An uplink MTU of 1500: the chain is cut to fit, the tail freed.
        let mut tpl = template(tunnel, v6, 1500);
        let mut m = chained(&p, &f);
        tpl.encap(&mut m, &meta, 1).expect("encap");
        let inner = tpl.max_inner_len();
        assert_eq!(m.pkt_len(), hl + inner, "{tunnel:?}");
        assert_eq!(m.nb_segs(), 1, "{tunnel:?}: segments after the cut remain");
        assert_eq!(&m.to_vec()[hl..], &f[..inner], "{tunnel:?}");
        assert_eq!(tpl.counters().truncated_to_mtu, 1);
    }
}

#[test]
fn decap_of_a_chained_tunnel_frame_gives_the_inner_frame() {
    let p = pool("hs-decap");
    let inner = frame(LEN);
    for tunnel in [
        TunnelConfig::vxlan(100),
        TunnelConfig::erspan3(7),
        TunnelConfig::Geneve { vni: 5 },
    ] {
        // Encapsulate in one buffer, then load the result as a chain.
        let mut tpl = template(tunnel, false, 9000);
        let mut v = dataplane::frame::VecFrame::new(&inner);
        tpl.encap(&mut v, &EncapMeta::default(), 1).expect("encap");
        let outer = v.data().to_vec();
        let mut m = chained(&p, &outer);
        let mut d = Decap::new(DecapConfig::default()).expect("decap");
        let got = d.decap(&mut m);
        assert!(
            matches!(got, Ok(DecapOutcome::Decapsulated(_))),
            "{tunnel:?}: {got:?}"
        );
        assert_eq!(m.pkt_len(), LEN, "{tunnel:?}");
        assert_eq!(m.to_vec(), inner, "{tunnel:?}");
    }
}

#[test]
fn chained_frames_never_panic_any_stage() {
    let p = pool("hs-any");
    let tpl_kinds = [
        TunnelConfig::vxlan(1),
        TunnelConfig::erspan3(1),
        TunnelConfig::L2Gre { key: 1 },
    ];
    let mut dedup = Dedup::new(&DedupConfig {
        entries: 1024,
        seed: 7,
        ..DedupConfig::default()
    })
    .expect("dedup");
    // Valid and damaged frames of lengths around the segment edges.
    for len in [2049usize, 2100, 4096, 4097, 5000, 9000] {
        for damage in [None, Some(14), Some(16), Some(23), Some(38)] {
            let mut f = frame(len);
            if let Some(at) = damage {
                f[at] ^= 0xff;
            }
            let layers = parse_frame(&chained(&p, &f));
            for (i, tunnel) in tpl_kinds.iter().enumerate() {
                let mut m = chained(&p, &f);
                slice(&mut m, &layers, SliceSpec::AfterL4(64 * i as u16));
                let want = m.to_vec();
                let mut tpl = template(*tunnel, i == 1, 1500);
                match tpl.encap(&mut m, &EncapMeta::default(), 1) {
                    Ok(()) => {
                        let hl = tpl.header_len();
                        let kept = want.len().min(tpl.max_inner_len());
                        assert_eq!(&m.to_vec()[hl..], &want[..kept], "len {len} {damage:?}");
                    }
                    Err(e) => panic!("encap of a {len}-byte chain: {e}"),
                }
                let mut d = Decap::new(DecapConfig::default()).expect("decap");
                let got = d.decap(&mut m);
                assert!(
                    matches!(got, Ok(DecapOutcome::Decapsulated(_))),
                    "our own tunnel around a {len}-byte chain: {got:?}"
                );
            }
            let m = chained(&p, &f);
            let first = dedup.check(&m, &layers, 1_000_000_000);
            let again = dedup.check(&m, &layers, 1_000_001_000);
            assert_eq!(
                again,
                Verdict::Duplicate,
                "len {len} {damage:?} (first {first:?})"
            );
        }
    }
}

/// A valid frame longer than one mbuf parses as the whole frame: parse
/// reads the first segment's bytes but checks the IP length against
/// `pkt_len`, so it is not counted in `parse_errors` and its ports are
/// found for port rules (`dst_port = 22 → drop`).
#[test]
fn chained_frames_parse_as_whole_frames() {
    let p = pool("hs-parse");
    let f = frame(LEN);
    let whole = parse(&f);
    assert_eq!(whole.error, None);
    let m = chained(&p, &f);
    let seen = parse_frame(&m);
    assert_ne!(
        seen.error,
        Some(ParseError::BadL3),
        "a valid chained frame is malformed to parse"
    );
    assert_eq!(
        (seen.src_port, seen.dst_port),
        (40000, 443),
        "ports of a chained frame"
    );
    assert_eq!(seen, whole);
}

/// Dedup keys every byte of a chained frame: two chained packets that
/// differ after byte 2,048 (same IP ID and lengths, other payload) are not
/// copies (DESIGN §4 puts the payload bytes in the key), and a chain has
/// the key of the same bytes in one buffer.
#[test]
fn dedup_keys_the_whole_chained_frame() {
    let p = pool("hs-dedup");
    let a = frame(LEN);
    let mut b = a.clone();
    b[4000] ^= 1;
    let layers = parse(&a);
    let mut d = Dedup::new(&DedupConfig {
        entries: 1024,
        seed: 7,
        ..DedupConfig::default()
    })
    .expect("dedup");
    assert_eq!(
        d.check(&chained(&p, &a), &layers, 1_000_000_000),
        Verdict::Unique
    );
    assert_eq!(
        d.check(&chained(&p, &b), &layers, 1_000_001_000),
        Verdict::Unique,
        "a different packet taken for a copy"
    );
    assert_eq!(
        d.fingerprint_frame(&chained(&p, &a), &layers),
        d.fingerprint(&a, &layers),
        "a chain keyed unlike its bytes"
    );
}

/// Reproducer (a crash of the appliance): net_pcap's jumbo path copies a
/// frame of more than 64 KiB into the chain with a 16-bit length — only
/// `caplen` modulo 65,536 bytes — but sets `pkt_len` to all of `caplen`.
/// `RxQueue::rx` hands such an mbuf over as it is, and everything that
/// trusts `pkt_len` walks off the end of the chain: `Mbuf::copy`
/// (`rte_pktmbuf_copy`) segfaults in the worker, `Mbuf::trim` would set a
/// segment's `data_len` past its buffer. BIG TCP and GSO captures carry
/// such frames (bigtcp-*.pcap are 80 KB). The safe layer must hand out
/// consistent chains only: drop (and count) or repair what the PMD gets
/// wrong.
#[test]
fn net_pcap_frames_over_64_kib_arrive_whole_or_not_at_all() {
    let p = pool("hs-64k");
    let dir = std::env::temp_dir().join(testing::unique_prefix("hs-64k"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("in.pcap");
    let mut big = frame(100);
    big.resize(70_000, 0x77);
    let frames = [frame(100), big, frame(100)];
    {
        let header = PcapHeader {
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let f = std::fs::File::create(&path).expect("create pcap");
        let mut w = PcapWriter::with_header(f, header).expect("pcap header");
        for (i, fr) in frames.iter().enumerate() {
            let ts = std::time::Duration::from_micros(i as u64);
            w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
                .expect("pcap write");
        }
    }
    let spec = format!(
        "net_pcap_hs64k{},rx_pcap={}",
        std::process::id(),
        path.display()
    );
    let mut port = Port::open(&spec).expect("open net_pcap");
    port.configure(&PortConfig::default(), &p)
        .expect("configure");
    port.start().expect("start");
    let mut rxq = port.rx_queue(0).expect("rx queue");
    let mut got = Vec::new();
    // A file-backed queue reads the file as it is polled: an empty poll is
    // the end of the file.
    loop {
        let mut b: Batch<32> = Batch::new();
        if rxq.rx(&mut b) == 0 {
            break;
        }
        got.extend(b.drain());
    }
    assert!(got.len() >= 2, "the frames around the big one were lost");
    for m in &got {
        assert_eq!(
            m.to_vec().len(),
            m.pkt_len(),
            "an mbuf whose pkt_len is not what its {} segments hold",
            m.nb_segs()
        );
    }
    drop(got);
    drop(port);
    let _ = std::fs::remove_dir_all(dir);
}

/// `Mbuf::copy` of a 0-byte frame: `rte_pktmbuf_copy(m, pool, 0, u32::MAX)`
/// returns NULL when the offset (0) is not below `pkt_len` (0), which made
/// the worker count a bogus `dropped_no_mbuf` for every destination but the
/// last (see `an_empty_frame_reaches_every_destination` in
/// ctrlplane/tests/e2e_hostile.rs). The copy is a fresh empty mbuf taken
/// from the pool, which a full pool still refuses.
#[test]
fn an_empty_frame_can_be_copied() {
    let p = pool("hs-empty");
    let m = Mbuf::from_bytes(&p, &[]).expect("empty mbuf");
    assert_eq!(m.pkt_len(), 0);
    let mut c = m.copy(&p).expect("a copy of an empty frame");
    assert_eq!((c.pkt_len(), c.nb_segs()), (0, 1));
    // Its own writable buffer: a tunnel header can go in front.
    c.prepend(8).expect("headroom").fill(0xee);
    assert_eq!((c.to_vec(), m.pkt_len()), (vec![0xee; 8], 0));
    let small =
        Mempool::new(&testing::unique_prefix("hs-empty1"), 1, 0, DATA_ROOM, -1).expect("mempool");
    let one = Mbuf::from_bytes(&small, &[]).expect("the pool's only mbuf");
    assert!(one.copy(&small).is_err(), "a copy from an empty pool");
}
