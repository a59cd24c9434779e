//! `pktgen [EAL options] -- <command> [options]`, like testpmd and sluice.
//!
//! `pcap` and `check` need no DPDK (no `--`, no EAL options); `send` and
//! `recv` start EAL (default: `-l 0 --no-pci --in-memory`, a unique file
//! prefix) and hot-plug the port given by its devargs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dataplane::dpdk::Eal;
use pktgen::pcap::payload_offset;
use pktgen::port::{self, RecvOptions, SendOptions};
use pktgen::{generate, Checker, Profile};

/// Sluice's traffic generator.
#[derive(Debug, Parser)]
#[command(
    name = "pktgen",
    version,
    about,
    override_usage = "pktgen [EAL options] -- <COMMAND> [OPTIONS]"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a profile's traffic to a pcap file (no DPDK).
    Pcap {
        #[arg(long)]
        profile: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Cycles to write, sequence numbers continuing.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
    },
    /// Send a profile's traffic through a DPDK port.
    Send {
        #[arg(long)]
        profile: PathBuf,
        /// Port devargs (hot-plugged), e.g. `net_tap0,iface=pg0`, or the
        /// name of an EAL `--vdev`.
        #[arg(long)]
        port: String,
        /// Packets per second [default: as fast as the port takes them].
        #[arg(long, conflicts_with = "rate_mbps")]
        rate_pps: Option<u64>,
        /// Megabits per second on the wire (FCS, preamble and gap counted).
        #[arg(long)]
        rate_mbps: Option<u64>,
        /// Packets to send [default: one cycle of the profile].
        #[arg(long)]
        count: Option<u64>,
        /// Seconds to send for (the cycle repeats, sequences continuing).
        #[arg(long)]
        duration: Option<f64>,
        /// Packets per burst (1 to 32).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(1..=32))]
        burst: u8,
        /// Keep the port open this long after the last packet (and the
        /// report), so that the peer drains it (a memif peer loses what is
        /// still in the ring when its sender goes).
        #[arg(long, value_name = "MS", default_value_t = 0)]
        linger_ms: u64,
        /// The final report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Receive from a DPDK port and check sequence numbers.
    Recv {
        #[arg(long)]
        port: String,
        /// Seconds to receive for.
        #[arg(long)]
        duration: Option<f64>,
        /// Stop after this many packets.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many milliseconds without a packet (after the first).
        #[arg(long, value_name = "MS")]
        idle_ms: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Send a `send_time` profile through one port and receive it on
    /// another in the same loop: the one-way delay's percentiles.
    Latency {
        #[arg(long)]
        profile: PathBuf,
        /// Port devargs to send through.
        #[arg(long)]
        tx_port: String,
        /// Port devargs to receive on (the frames after the device under test).
        #[arg(long)]
        rx_port: String,
        #[arg(long)]
        rate_pps: u64,
        /// Seconds to send for.
        #[arg(long)]
        duration: f64,
        /// Packets per burst (1 to 32).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
        burst: u8,
        /// After the last burst, receive until nothing came for this long.
        #[arg(long, value_name = "MS", default_value_t = 200)]
        drain_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// Check the sequence numbers in a pcap file (no DPDK).
    Check {
        #[arg(long)]
        pcap: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn default_eal(program: &str) -> Vec<String> {
    [
        program,
        "-l",
        "0",
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        &format!("pktgen-{}", std::process::id()),
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn secs(s: Option<f64>) -> Result<Option<Duration>, String> {
    s.map(|s| Duration::try_from_secs_f64(s).map_err(|e| format!("duration {s}: {e}")))
        .transpose()
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv.first().cloned().unwrap_or_else(|| "pktgen".into());
    let (eal_args, app_args) = match argv.iter().position(|a| a == "--") {
        Some(i) => (argv[..i].to_vec(), argv[i + 1..].to_vec()),
        None => (vec![program.clone()], argv[1..].to_vec()),
    };
    let eal_args = if eal_args.len() <= 1 {
        default_eal(&program)
    } else {
        eal_args
    };
    let args = match Args::try_parse_from(std::iter::once(program).chain(app_args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(args.command, &eal_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktgen: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd, eal_args: &[String]) -> Result<(), String> {
    match cmd {
        Cmd::Pcap {
            profile,
            out,
            rounds,
        } => {
            let p = Profile::load(&profile).map_err(|e| e.to_string())?;
            let mut c = generate(&p);
            let n = pktgen::pcap::write(&out, &mut c, rounds)?;
            println!(
                "wrote {n} frames ({} flows, {} originals and {} copies a cycle) to {}",
                p.tuples(),
                p.packets,
                c.packets.len() as u64 - p.packets,
                out.display()
            );
            Ok(())
        }
        Cmd::Check { pcap, json } => {
            let frames = pktgen::pcap::read(&pcap)?;
            let mut c = Checker::new();
            for f in &frames {
                c.frame(f, payload_offset(f));
            }
            let r = c.report();
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!("check: {r}");
            }
            Ok(())
        }
        Cmd::Send {
            profile,
            port,
            rate_pps,
            rate_mbps,
            count,
            duration,
            burst,
            linger_ms,
            json,
        } => {
            let p = Profile::load(&profile).map_err(|e| e.to_string())?;
            let mut c = generate(&p);
            let rate_pps = match (rate_pps, rate_mbps) {
                (Some(r), _) => Some(r),
                (None, Some(m)) => {
                    // Average wire bits per frame over the cycle.
                    let bits: u64 = c
                        .packets
                        .iter()
                        .map(|p| (p.frame.len() as u64 + 24) * 8)
                        .sum();
                    let avg = bits / (c.packets.len() as u64).max(1);
                    Some((m * 1_000_000 / avg.max(1)).max(1))
                }
                (None, None) => None,
            };
            let duration = secs(duration)?;
            let count = if duration.is_some() && count.is_none() {
                Some(u64::MAX)
            } else {
                count
            };
            let _eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
            let mut o = port::open(&port)?;
            let opts = SendOptions {
                rate_pps,
                count,
                duration,
                burst: Some(usize::from(burst)),
            };
            let r = port::send(&mut c, &mut o.tx, &o.pool, &opts, |r| {
                eprintln!(
                    "pktgen: tx {} packets, {:.3} Mpps, {:.3} Gbit/s",
                    r.packets, r.mpps, r.gbps
                )
            });
            // The report first: whoever waits for it knows everything is
            // sent while the port still lingers.
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!("{r}");
            }
            std::thread::sleep(Duration::from_millis(linger_ms));
            Ok(())
        }
        Cmd::Latency {
            profile,
            tx_port,
            rx_port,
            rate_pps,
            duration,
            burst,
            drain_ms,
            json,
        } => {
            let p = Profile::load(&profile).map_err(|e| e.to_string())?;
            if !p.send_time {
                return Err(format!(
                    "latency: profile {} has no send_time = true",
                    profile.display()
                ));
            }
            let mut c = generate(&p);
            if c.packets.iter().all(|p| p.time_at.is_none()) {
                return Err(format!(
                    "latency: no frame of {} has room for the stamp and send time ({} bytes of payload)",
                    profile.display(),
                    pktgen::stamp::LEN + pktgen::stamp::TIME_LEN
                ));
            }
            let opts = SendOptions {
                rate_pps: Some(rate_pps.max(1)),
                count: Some(u64::MAX),
                duration: secs(Some(duration))?,
                burst: Some(usize::from(burst)),
            };
            let _eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
            let mut out = port::open_with_pool(&tx_port, "pktgen_tx_pool")?;
            let mut back = port::open_with_pool(&rx_port, "pktgen_rx_pool")?;
            port::wait_for_links(
                &[(&tx_port, &out.port), (&rx_port, &back.port)],
                Duration::from_secs(10),
            )?;
            let r = port::send_and_receive(
                &mut c,
                &mut out.tx,
                &out.pool,
                &mut back.rx,
                &opts,
                Duration::from_millis(drain_ms),
                |r| eprintln!("pktgen: tx {} packets", r.packets),
            );
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!("{}\n{}", r.sent, r.received);
            }
            Ok(())
        }
        Cmd::Recv {
            port,
            duration,
            count,
            idle_ms,
            json,
        } => {
            if duration.is_none() && count.is_none() && idle_ms.is_none() {
                return Err("recv: give --duration, --count or --idle-ms".into());
            }
            let _eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
            let mut o = port::open(&port)?;
            let opts = RecvOptions {
                duration: secs(duration)?,
                count,
                idle: idle_ms.map(Duration::from_millis),
            };
            let r = port::receive(&mut o.rx, &opts);
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!("{r}");
            }
            Ok(())
        }
    }
}
