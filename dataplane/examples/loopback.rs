//! Loopback demo of the DPDK layer: sample traffic is written to a pcap,
//! received through `net_pcap`, sent out through a second `net_pcap`, and
//! the result is shown with the port counters and tshark.
//!
//! `make demo` runs it; it stands in until the `sluice` appliance exists.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dataplane::dpdk::{testing, Batch, Eal, Mempool, Port, PortConfig};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

const FRAMES: usize = 1000;

fn sample_traffic() -> Vec<Vec<u8>> {
    (0..FRAMES)
        .map(|i| {
            let payload = vec![i as u8; 18 + (i % 7) * 100];
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
                [10, 0, 0, (i % 4) as u8 + 1],
                [10, 0, 1, 1],
                64,
            );
            let mut out = Vec::new();
            let written = if i % 2 == 0 {
                b.udp(40000 + (i % 16) as u16, 5001)
                    .write(&mut out, &payload)
            } else {
                b.tcp(50000, 443, i as u32, 1024).write(&mut out, &payload)
            };
            written.map(|_| out).unwrap_or_default()
        })
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = PcapWriter::new(f).map_err(|e| e.to_string())?;
    for (i, fr) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64 * 10);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    write_pcap(&input, &sample_traffic())?;

    let mut args = testing::eal_args("demo");
    args.extend([
        "--vdev".into(),
        format!("net_pcap_in,rx_pcap={}", input.display()),
        "--vdev".into(),
        format!("net_pcap_out,tx_pcap={}", output.display()),
    ]);
    let eal = Eal::init(&args).map_err(|e| e.to_string())?;
    let pool = Mempool::new("demo", 4095, 256, 2176, -1).map_err(|e| e.to_string())?;
    let mut pin = Port::open("net_pcap_in").map_err(|e| e.to_string())?;
    let mut pout = Port::open("net_pcap_out").map_err(|e| e.to_string())?;
    for p in [&mut pin, &mut pout] {
        p.configure(&PortConfig::default(), &pool)
            .map_err(|e| e.to_string())?;
        p.start().map_err(|e| e.to_string())?;
    }
    let mut rxq = pin.rx_queue(0).map_err(|e| e.to_string())?;
    let mut txq = pout.tx_queue(0).map_err(|e| e.to_string())?;
    let mut batch: Batch<32> = Batch::new();
    let (mut rx, mut tx, mut idle) = (0, 0, 0);
    // net_pcap reads its file synchronously: once it has run dry, it stays dry.
    while idle < 1000 {
        let n = rxq.rx(&mut batch);
        rx += n;
        idle = if n == 0 { idle + 1 } else { 0 };
        while !batch.is_empty() {
            tx += txq.tx(&mut batch);
        }
    }
    let sin = pin.stats().map_err(|e| e.to_string())?;
    let sout = pout.stats().map_err(|e| e.to_string())?;
    drop((rxq, txq, pin, pout, pool, eal));

    println!("\n== Sluice loopback demo (DPDK net_pcap -> net_pcap) ==");
    println!("received {rx} frames, sent {tx}");
    println!(
        "port net_pcap_in : ipackets {} ibytes {}",
        sin.ipackets, sin.ibytes
    );
    println!(
        "port net_pcap_out: opackets {} obytes {}",
        sout.opackets, sout.obytes
    );
    println!("output: {}", output.display());
    match std::process::Command::new("tshark")
        .args(["-r", &output.display().to_string(), "-c", "8"])
        .output()
    {
        Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => println!("(tshark not available: {e}; run `make setup`)"),
    }
    if rx != FRAMES || tx != FRAMES {
        return Err(format!(
            "expected {FRAMES} frames through, got rx {rx} tx {tx}"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let dir =
        PathBuf::from(std::env::var("SLUICE_DEMO_DIR").unwrap_or_else(|_| "target/demo".into()));
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
