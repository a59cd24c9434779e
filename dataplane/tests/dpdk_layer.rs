//! The safe DPDK layer against a real EAL on virtual devices only.
//!
//! One EAL per test process (DPDK allows one): tests share it and use
//! their own uniquely named devices and pools.

#![cfg(feature = "dpdk")]

use std::sync::Mutex;

use dataplane::dpdk::{
    launch, testing, worker_lcores, Batch, DpdkError, Eal, Mbuf, Mempool, Port, PortConfig, RssMode,
};
use dataplane::frame::{Frame, FrameError};
use sluice_testkit::names::tmpdir;
use sluice_testkit::pcap::{read_pcap, write_pcap};

fn eal() -> &'static Eal {
    testing::shared_eal("layer")
}

/// Tests that launch on the worker lcore take turns.
static LCORE: Mutex<()> = Mutex::new(());

fn pool(name: &str, n: u32) -> Mempool {
    eal();
    Mempool::new(name, n, 0, 2176, -1).expect("mempool")
}

fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = [60, 64, 128, 1000, 1514][i % 5];
            (0..len)
                .map(|b| (b as u8).wrapping_mul(31).wrapping_add(i as u8))
                .collect()
        })
        .collect()
}

/// Polls `rx` until `want` packets arrived or the device stayed empty for
/// many polls in a row (a file-backed device has then run dry).
fn receive_all(rxq: &mut dataplane::dpdk::RxQueue, want: usize) -> Vec<Mbuf> {
    let mut got = Vec::new();
    let mut idle = 0;
    while got.len() < want && idle < 10_000 {
        let mut b: Batch<32> = Batch::new();
        if rxq.rx(&mut b) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        got.extend(b.drain());
    }
    got
}

#[test]
fn pcap_in_to_pcap_out_keeps_every_byte_and_count() {
    let dir = tmpdir("pcap");
    let input = frames(50);
    write_pcap(&dir.join("in.pcap"), &input);
    let mp = pool("pcap_pool", 1023);
    let spec_in = format!("net_pcap_in0,rx_pcap={}", dir.join("in.pcap").display());
    let spec_out = format!("net_pcap_out0,tx_pcap={}", dir.join("out.pcap").display());
    let mut pin = Port::open(&spec_in).expect("open input");
    let mut pout = Port::open(&spec_out).expect("open output");
    assert_eq!(
        pin.configure(&PortConfig::default(), &mp)
            .expect("configure"),
        RssMode::SingleQueue
    );
    pout.configure(&PortConfig::default(), &mp)
        .expect("configure");
    pin.start().expect("start");
    pout.start().expect("start");

    let mut rxq = pin.rx_queue(0).expect("rx queue");
    let mut txq = pout.tx_queue(0).expect("tx queue");
    assert!(
        matches!(pin.rx_queue(0), Err(DpdkError::Invalid { .. })),
        "a queue has one user"
    );

    let got = receive_all(&mut rxq, input.len());
    assert_eq!(got.len(), input.len());
    let mut batch: Batch<32> = Batch::new();
    let mut sent = 0;
    for m in got {
        if let Err(m) = batch.push(m) {
            sent += txq.tx(&mut batch);
            batch.push(m).expect("room after tx");
        }
    }
    while !batch.is_empty() {
        sent += txq.tx(&mut batch);
    }
    assert_eq!(sent, input.len());
    assert_eq!(pin.stats().expect("stats").ipackets, 50);
    assert_eq!(pout.stats().expect("stats").opackets, 50);
    drop(pout); // stops and closes: the pcap file is flushed
    drop(pin);
    assert_eq!(read_pcap(&dir.join("out.pcap")), input);
    assert_eq!(mp.in_use(), 0, "every mbuf went back to the pool");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn port_reports_info_link_mac_and_xstats() {
    let mp = pool("info_pool", 511);
    let mut p = Port::open("net_null_info0").expect("open null");
    let info = p.info().expect("info");
    assert_eq!(info.driver, "net_null");
    assert_eq!(info.name, "net_null_info0");
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConfig::default()
    };
    // net_null advertises RSS: it gets the symmetric key.
    assert_eq!(
        p.configure(&cfg, &mp).expect("configure"),
        RssMode::Symmetric
    );
    p.start().expect("start");
    assert!(p.link().expect("link").up);
    assert_eq!(p.mac().expect("mac").len(), 6);
    let x = p.xstats().expect("xstats");
    assert!(x.iter().any(|(n, _)| n == "rx_good_packets"), "{x:?}");
    let bad = PortConfig {
        rx_queues: 1000,
        ..PortConfig::default()
    };
    let err = p.configure(&bad, &mp).expect_err("too many queues");
    assert!(err.to_string().contains("rx_queues"), "{err}");
    assert!(p.tx_queue(5).is_err());
}

#[test]
fn a_device_without_rss_is_reported_for_distribution() {
    let dir = tmpdir("norss");
    write_pcap(&dir.join("a.pcap"), &frames(1));
    let a = dir.join("a.pcap").display().to_string();
    let mp = pool("norss_pool", 511);
    // Two RX queues from two files: net_pcap cannot hash.
    let mut p = Port::open(&format!(
        "net_pcap_norss0,rx_pcap={a},rx_pcap={a},tx_iface=lo"
    ))
    .expect("open");
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 1,
        ..PortConfig::default()
    };
    assert_eq!(
        p.configure(&cfg, &mp).expect("configure"),
        RssMode::Unsupported
    );
    assert_eq!(p.rss(), RssMode::Unsupported);
    drop(p);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn opening_a_missing_device_says_which() {
    eal();
    let err = Port::open("0000:00:99.0").expect_err("no PCI here");
    assert!(err.to_string().contains("0000:00:99.0"), "{err}");
    let err = Port::open("net_nosuchdriver0").expect_err("no such driver");
    assert!(err.to_string().contains("net_nosuchdriver0"), "{err}");
}

#[test]
fn mbuf_prepend_append_at_the_edges() {
    let mp = pool("edge_pool", 63);
    let mut m = Mbuf::alloc(&mp).expect("alloc");
    assert_eq!((m.headroom(), m.tailroom(), m.pkt_len()), (128, 2048, 0));
    assert_eq!(
        m.prepend(129),
        Err(FrameError::NoHeadroom {
            need: 129,
            have: 128
        })
    );
    m.prepend(128).expect("exactly the headroom").fill(0xAA);
    assert_eq!(
        m.prepend(1),
        Err(FrameError::NoHeadroom { need: 1, have: 0 })
    );
    assert_eq!(
        m.append(2049),
        Err(FrameError::NoTailroom {
            need: 2049,
            have: 2048
        })
    );
    m.append(2048).expect("exactly the tailroom").fill(0xBB);
    assert_eq!(
        m.append(1),
        Err(FrameError::NoTailroom { need: 1, have: 0 })
    );
    assert_eq!(m.pkt_len(), 2176);
    assert_eq!(
        m.adj(2177),
        Err(FrameError::TooShort {
            need: 2177,
            have: 2176
        })
    );
    assert_eq!(
        m.trim(2177),
        Err(FrameError::TooShort {
            need: 2177,
            have: 2176
        })
    );
    m.adj(128).expect("adj");
    assert!(m.data().iter().all(|b| *b == 0xBB));
    m.trim(2048).expect("trim to empty");
    assert_eq!(m.pkt_len(), 0);
    drop(m);
    assert_eq!(mp.in_use(), 0);
}

#[test]
fn chained_mbufs_trim_adj_linearize_and_copy() {
    let mp = pool("chain_pool", 63);
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut m = Mbuf::from_bytes(&mp, &bytes).expect("from_bytes");
    assert_eq!(m.nb_segs(), 3);
    assert_eq!(m.to_vec(), bytes);
    assert_eq!(m.data().len(), 2048, "data() is the first segment");
    // adj never reaches past the first segment, where headers live.
    assert_eq!(
        m.adj(2049),
        Err(FrameError::TooShort {
            need: 2049,
            have: 2048
        })
    );
    let copy = m.copy(&mp).expect("copy");
    // The front of a chain, and of one segment: only those bytes.
    let front = m.copy_front(&mp, 2100).expect("copy_front");
    assert_eq!(front.to_vec(), &bytes[..2100]);
    let one = Mbuf::from_bytes(&mp, &bytes[..1500]).expect("one segment");
    let short = one.copy_front(&mp, 97).expect("copy_front");
    assert_eq!((short.nb_segs(), short.data()), (1, &bytes[..97]));
    assert_eq!(
        one.copy_front(&mp, 4000).expect("all").to_vec(),
        &bytes[..1500]
    );
    drop((front, one, short));
    // Cut inside the second segment: the third is freed.
    m.trim(5000 - 3000).expect("trim");
    assert_eq!((m.pkt_len(), m.nb_segs()), (3000, 2));
    assert_eq!(m.to_vec(), &bytes[..3000]);
    // Cut exactly at a segment boundary: no empty segment is left.
    m.trim(3000 - 2048).expect("trim");
    assert_eq!((m.pkt_len(), m.nb_segs()), (2048, 1));
    assert_eq!(copy.to_vec(), bytes, "the copy is independent");
    drop(m);
    drop(copy);

    let mut a = Mbuf::from_bytes(&mp, &bytes[..700]).expect("a");
    let b = Mbuf::from_bytes(&mp, &bytes[700..1500]).expect("b");
    a.chain(b).expect("chain");
    assert_eq!((a.nb_segs(), a.pkt_len()), (2, 1500));
    a.linearize().expect("linearize");
    assert_eq!((a.nb_segs(), a.data()), (1, &bytes[..1500]));
    drop(a);
    assert_eq!(mp.in_use(), 0);
}

#[test]
fn a_capture_time_travels_with_the_mbuf_and_its_copies() {
    let mp = pool("stamp_pool", 63);
    let mut m = Mbuf::from_bytes(&mp, &[0u8; 60]).expect("mbuf");
    dataplane::dpdk::register_capture_time().expect("register");
    dataplane::dpdk::register_capture_time().expect("a second time is a no-op");
    assert!(dataplane::dpdk::capture_time_in_use());
    assert_eq!(m.capture_time_ns(), None, "a fresh mbuf carries none");
    m.set_capture_time_ns(1_500_000_000_123_456_789);
    m.set_port(7);
    assert_eq!(m.capture_time_ns(), Some(1_500_000_000_123_456_789));
    assert_eq!(m.port(), 7);
    let copy = m.copy(&mp).expect("copy");
    assert_eq!(copy.capture_time_ns(), Some(1_500_000_000_123_456_789));
    drop((m, copy));
    // A recycled mbuf starts clean again.
    let fresh = Mbuf::alloc(&mp).expect("mbuf");
    assert_eq!(fresh.capture_time_ns(), None);
}

#[test]
fn shared_clones_get_their_own_header_segment() {
    let mp = pool("share_pool", 63);
    let clones = Mempool::new("share_clones", 63, 0, 0, -1).expect("clone pool");
    let payload: Vec<u8> = (0..200u8).collect();
    let m = Mbuf::from_bytes(&mp, &payload).expect("mbuf");
    let s1 = m.share(&clones).expect("share");
    let s2 = m.share(&clones).expect("share");
    assert_eq!(s1.data(), payload.as_slice());
    let mut h1 = s1.with_header(&mp).expect("header 1");
    let mut h2 = s2.with_header(&mp).expect("header 2");
    h1.prepend(4)
        .expect("prepend")
        .copy_from_slice(&[1, 1, 1, 1]);
    h2.prepend(2).expect("prepend").copy_from_slice(&[2, 2]);
    assert_eq!(h1.to_vec(), [&[1u8, 1, 1, 1][..], &payload].concat());
    assert_eq!(h2.to_vec(), [&[2u8, 2][..], &payload].concat());
    assert_eq!(m.to_vec(), payload, "the original is untouched");
    assert_eq!(h1.pkt_len(), 204);
    // The shared tail is read-only: nothing may be appended into it.
    assert_eq!(h1.tailroom(), 0);
    drop((m, h1, h2));
    assert_eq!(mp.in_use(), 0);
    assert_eq!(clones.in_use(), 0);
}

#[test]
fn tx_keeps_what_the_device_refused_in_order() {
    let mp = pool("ring_pool", 4095);
    // A net_ring port with no arguments loops TX back to RX through one
    // ring of fixed size: fill it without receiving and TX must refuse.
    let mut p = Port::open("net_ring_tx0").expect("net_ring");
    p.configure(&PortConfig::default(), &mp).expect("configure");
    p.start().expect("start");
    let mut txq = p.tx_queue(0).expect("tx");
    let mut rxq = p.rx_queue(0).expect("rx");
    let mut seq: u32 = 0;
    let mut sent = Vec::new();
    let mut refused_once = false;
    for _ in 0..100 {
        let mut b: Batch<32> = Batch::new();
        while !b.is_full() {
            let m = Mbuf::from_bytes(&mp, &seq.to_be_bytes()).expect("mbuf");
            seq += 1;
            b.push(m).expect("room");
        }
        let before: Vec<Vec<u8>> = b.as_slice().iter().map(Mbuf::to_vec).collect();
        let n = txq.tx(&mut b);
        sent.extend_from_slice(&before[..n]);
        if n < 32 {
            refused_once = true;
            // The unsent stay, in order, and go out once there is room.
            let left: Vec<Vec<u8>> = b.as_slice().iter().map(Mbuf::to_vec).collect();
            assert_eq!(left, before[n..]);
            let received = receive_all(&mut rxq, sent.len());
            let got: Vec<Vec<u8>> = received.iter().map(Mbuf::to_vec).collect();
            assert_eq!(got, sent, "everything accepted arrives, in order");
            drop(received);
            let n2 = txq.tx(&mut b);
            assert_eq!(n2, left.len());
            let got: Vec<Vec<u8>> = receive_all(&mut rxq, n2).iter().map(Mbuf::to_vec).collect();
            assert_eq!(got, left);
            break;
        }
    }
    assert!(refused_once, "the ring never filled");
    drop((txq, rxq, p));
    assert_eq!(mp.in_use(), 0);
}

#[test]
fn closure_runs_on_a_worker_lcore() {
    eal();
    let _turn = LCORE.lock().unwrap_or_else(|e| e.into_inner());
    let workers = worker_lcores();
    assert_eq!(workers, vec![1]);
    let h = launch(1, || (dataplane::dpdk::tsc_now() > 0, 6 * 7)).expect("launch");
    assert_eq!(h.wait(), Ok((true, 42)));
}

#[test]
fn panicking_worker_is_reported_and_the_lcore_reusable() {
    eal();
    let _turn = LCORE.lock().unwrap_or_else(|e| e.into_inner());
    let h = launch(1, || -> u32 { panic!("worker exploded at packet {}", 7) }).expect("launch");
    let err = h.wait().expect_err("panic must be reported");
    assert_eq!(err.lcore, 1);
    assert_eq!(err.message, "worker exploded at packet 7");
    assert!(err.to_string().contains("lcore 1"));
    let h = launch(1, || 1).expect("lcore free again");
    assert_eq!(h.wait(), Ok(1));
}

// ---- EAL start-up failures: each needs a fresh process. -------------------

/// Runs the ignored test `name` of this binary in a child process with EAL
/// arguments `args`, and returns what it reported (through a file: DPDK's
/// own unflushed stdout would interleave with ours).
fn run_child(name: &str, args: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let report = std::env::temp_dir().join(format!("{}.report", testing::unique_prefix("child")));
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SLUICE_EAL_ARGS", args)
        .env("SLUICE_CHILD_REPORT", &report)
        .output()
        .expect("spawn child");
    assert!(
        out.status.code().is_some(),
        "child died from a signal: {out:?}"
    );
    let msg = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "child reported nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(report);
    msg
}

fn report(msg: &str) {
    let path = std::env::var("SLUICE_CHILD_REPORT").expect("run by run_child");
    std::fs::write(path, msg).expect("write report");
}

#[test]
#[ignore = "child process of eal_errors_say_what_to_do"]
fn child_eal_init() {
    let args: Vec<String> = std::env::var("SLUICE_EAL_ARGS")
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect();
    match Eal::init(&args) {
        Ok(eal) => {
            let again = Eal::init(&args).map(|_| ()).expect_err("second init");
            // Allocate so that hugepage files would exist without cleanup.
            let mp = Mempool::new("child_pool", 1023, 0, 2176, -1).expect("pool");
            drop(mp);
            let prefix = eal.file_prefix().to_owned();
            drop(eal);
            let left = std::fs::read_dir("/dev/hugepages")
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .count()
                })
                .unwrap_or(0);
            report(&format!("ok; second init: {again}; files left: {left}"));
        }
        Err(e) => report(&e.to_string()),
    }
}

#[test]
fn eal_errors_say_what_to_do() {
    let prefix = testing::unique_prefix("child");
    let base = format!("sluice-test --no-pci --file-prefix {prefix} -l 0");

    let msg = run_child("child_eal_init", &format!("{base} --no-such-eal-flag"));
    assert!(msg.starts_with("EAL initialisation failed"), "{msg}");
    assert!(
        msg.contains("--no-such-eal-flag") && msg.contains("make setup"),
        "{msg}"
    );

    let empty = tmpdir("nohuge");
    let msg = run_child(
        "child_eal_init",
        &format!("{base} --huge-dir {}", empty.display()),
    );
    assert!(msg.contains("make setup"), "{msg}");

    // A good start: cleanup leaves no hugepage file of the prefix behind,
    // and a second init is refused with a reason.
    let msg = run_child("child_eal_init", &base);
    assert_eq!(
        msg,
        "ok; second init: EAL is already initialised in this process; DPDK allows it once; files left: 0"
    );
    let _ = std::fs::remove_dir_all(empty);
}
