//! What a config costs: the hugepage memory, the heap and the lcores it
//! needs, item by item, from the same keys the appliance sizes its pools
//! and tables with. `sluice --check-config` prints it; `scripts/setup.sh
//! --for CONFIG` reserves the hugepages it says.
//!
//! The figures are upper bounds from DPDK 22.11's layouts (a pool object
//! is its header, the mbuf and its data room, each rounded to a cache
//! line; a ring slot is a pointer) plus what EAL and the drivers take for
//! themselves, measured on a running appliance (README: "Memory").

use std::fmt;

use super::Config;

/// Where an item lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// DPDK's hugepage memory: what `nr_hugepages` must cover.
    Hugepages,
    /// The process heap: resident memory (RSS).
    Heap,
    /// A pdump primary's hugepage memory (Sluice is its secondary).
    Primary,
}

/// One thing that takes memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub what: String,
    /// How the size follows from the config, e.g. `8191 mbufs x 2368 B`.
    pub how: String,
    pub bytes: u64,
    pub place: Place,
}

/// A config's memory and lcores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub items: Vec<Item>,
    /// Worker lcores the figures assume.
    pub workers: usize,
    /// EAL lcores: the main lcore and the workers.
    pub lcores: usize,
    /// Where the worker count came from.
    pub workers_from: &'static str,
    /// MiB EAL takes at start (`-m`, `--socket-mem`), when its options say.
    pub eal_memory_mib: Option<u64>,
}

const MIB: u64 = 1 << 20;
/// DPDK's hugepages here: 2 MiB.
pub const HUGEPAGE: u64 = 2 * MIB;
/// A pool object: `rte_mempool_objhdr` (24 B, padded to a line), the
/// 128-byte `rte_mbuf`, then its data room.
const OBJ_OVERHEAD: u64 = 64 + 128;
/// The packet pool's data room (`appliance::eal_and_pool`): 128 B of
/// headroom and a 2048-byte frame.
const PACKET_DATA_ROOM: u64 = 2176;
/// The clone pool's data room (`dataplane::runtime::worker::CLONE_DATA_ROOM`).
const CLONE_DATA_ROOM: u64 = 128;
/// A pool's per-lcore caches live in its header: `RTE_MAX_LCORE` (128)
/// caches of `2 x RTE_MEMPOOL_CACHE_MAX_SIZE` pointers.
const POOL_HEADER: u64 = 128 * (2 * 512 * 8 + 64) + 4096;
/// A dedup bucket holds 4 entries in one 64-byte line.
const DEDUP_BYTES_PER_ENTRY: u64 = 16;
/// A flow cache slot is one cache line.
const FLOW_CACHE_SLOT: u64 = 64;
/// A descriptor and its software ring entry, with room for the drivers
/// that keep more per descriptor.
const DESCRIPTOR: u64 = 64;
/// The exception and control rings (`appliance::lcores::Shared`).
const CONTROL_RING_SLOTS: u64 = 1024 + 256;
/// What EAL and the drivers take whatever the config: memseg lists,
/// ethdev data of every port slot, each port's queue structures, the
/// interrupt thread's buffers. Measured: the sidecar example forwarding
/// the sample traffic used 26 MiB of hugepages, 21 MiB of it its pool,
/// dedup table and rings; rounded up.
const EAL_BASE: u64 = 6 * MIB;
/// The policy's classifier (rte_acl tables and the destination slots):
/// a few hundred KiB for policies of tens of rules; this leaves room for
/// thousands.
const CLASSIFIER: u64 = 8 * MIB;

impl Footprint {
    /// The footprint of `cfg` with the lcores EAL gets: `eal_lcores` from
    /// the command line's `-l`, else `[eal] args`, else the default
    /// (`-l 0-1`: one worker). `[workers] lcores` decides when it is set.
    pub fn of(cfg: &Config, eal_args: Option<&[String]>) -> Footprint {
        let eal = eal_args.unwrap_or(&cfg.eal.args);
        let eal_lcores = eal_args.and_then(|a| super::lcores_in(a).ok().flatten());
        let eal_lcores = eal_lcores.as_deref();
        let config_lcores = cfg.eal.lcores().ok().flatten();
        let (eal_count, from) = match (eal_lcores, &config_lcores) {
            (Some(l), _) => (l.len(), "EAL -l"),
            (None, Some(l)) => (l.len(), "eal.args -l"),
            (None, None) => (2, "the default EAL -l 0-1"),
        };
        // One EAL lcore and no workers.lcores: the main lcore runs the
        // single worker itself (one-lcore mode).
        let (workers, lcores, workers_from) = match &cfg.workers.lcores {
            Some(l) => (l.len(), l.len() + 1, "workers.lcores"),
            None if eal_count <= 1 => (1, 1, from),
            None => (eal_count - 1, eal_count, from),
        };
        let w = workers as u64;
        let mut items = Vec::new();
        let mut add = |what: &str, how: String, bytes: u64, place| {
            items.push(Item {
                what: what.into(),
                how,
                bytes,
                place,
            })
        };
        let mbufs = u64::from(cfg.mempool.mbufs);
        let obj = round_line(OBJ_OVERHEAD + PACKET_DATA_ROOM);
        add(
            "packet pool",
            format!("{mbufs} mbufs x {obj} B"),
            mbufs * obj + ring_bytes(mbufs) + POOL_HEADER,
            Place::Hugepages,
        );
        if !cfg.uplinks.is_empty() {
            let obj = round_line(OBJ_OVERHEAD + CLONE_DATA_ROOM);
            add(
                "clone pool",
                format!("{mbufs} mbufs x {obj} B, when every uplink sends chained mbufs"),
                mbufs * obj + ring_bytes(mbufs) + POOL_HEADER,
                Place::Hugepages,
            );
        }
        let dedup = u64::from(cfg.dedup.table_entries);
        add(
            "dedup tables",
            format!("{w} x {dedup} entries x {DEDUP_BYTES_PER_ENTRY} B"),
            w * dedup * DEDUP_BYTES_PER_ENTRY,
            Place::Hugepages,
        );
        if let Some(f) = &cfg.flows {
            let n = f.table_entries as u64;
            let entry = dataplane::flow::table::ENTRY_BYTES as u64;
            add(
                "flow tables",
                format!("{w} x {n} flows x {entry} B"),
                w * n * entry,
                Place::Hugepages,
            );
            let r = f.ring_entries as u64;
            let rec = dataplane::flow::table::EXPIRED_BYTES as u64;
            add(
                "flow export rings",
                format!("{w} x {r} records x {rec} B"),
                w * r * rec,
                Place::Heap,
            );
        }
        let dist = u64::from(cfg.queues.distributor_ring);
        if workers > 1 {
            add(
                "distributor rings",
                format!("{w} x {dist} slots, when an input cannot hash"),
                w * ring_bytes(dist),
                Place::Hugepages,
            );
        }
        add(
            "exception and control rings",
            format!("{CONTROL_RING_SLOTS} slots"),
            ring_bytes(CONTROL_RING_SLOTS),
            Place::Hugepages,
        );
        let ports = cfg.ports.iter().filter(|p| p.pdump.is_none()).count() as u64;
        let desc = u64::from(cfg.queues.rx_desc) + u64::from(cfg.queues.tx_desc);
        add(
            "descriptor rings",
            format!("{ports} ports x {w} queue pairs x {desc} descriptors"),
            ports * w * desc * DESCRIPTOR,
            Place::Hugepages,
        );
        add(
            "classifier",
            "policy tables, allowance".into(),
            CLASSIFIER,
            Place::Hugepages,
        );
        add(
            "EAL and drivers",
            "fixed, measured".into(),
            EAL_BASE,
            Place::Hugepages,
        );
        let fc = u64::from(cfg.flow_cache.entries);
        add(
            "flow caches",
            format!("{w} x {fc} flows x {FLOW_CACHE_SLOT} B"),
            w * fc * FLOW_CACHE_SLOT,
            Place::Heap,
        );
        if let Some(p) = &cfg.pdump {
            let n = u64::from(p.mbufs);
            let taps = cfg.pdump_inputs().count() as u64 * 2;
            add(
                "pdump pool and rings",
                format!("{n} mbufs, up to {taps} rings of {} slots", p.ring_size),
                n * obj + ring_bytes(n) + taps * ring_bytes(u64::from(p.ring_size)),
                Place::Primary,
            );
        }
        if cfg.pdump.is_some() {
            // A secondary's pools and rings are made in the primary's
            // memory, as its tap pool is.
            for i in &mut items {
                if i.place == Place::Hugepages {
                    i.place = Place::Primary;
                }
            }
        }
        Footprint {
            items,
            workers,
            lcores,
            workers_from,
            eal_memory_mib: super::memory_in(eal),
        }
    }

    /// Bytes in `place`.
    pub fn total(&self, place: Place) -> u64 {
        self.items
            .iter()
            .filter(|i| i.place == place)
            .map(|i| i.bytes)
            .sum()
    }

    /// 2 MiB hugepages to reserve: what the items need, or what EAL's
    /// `-m` takes at start when that is more.
    pub fn hugepages(&self) -> u64 {
        let eal = self.eal_memory_mib.unwrap_or(0) * MIB;
        self.total(Place::Hugepages).max(eal).div_ceil(HUGEPAGE)
    }
}

fn round_line(b: u64) -> u64 {
    b.div_ceil(64) * 64
}

/// An `rte_ring` of at least `n` slots: a power of two of pointers and its
/// header.
fn ring_bytes(n: u64) -> u64 {
    (n + 1).next_power_of_two() * 8 + 384
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

/// What `--check-config` prints: every item, the totals, and the two
/// lines `scripts/setup.sh --for` reads (`hugepages:` and `lcores:`).
impl fmt::Display for Footprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (place, title) in [
            (Place::Hugepages, "hugepage memory"),
            (Place::Heap, "heap (resident)"),
            (Place::Primary, "in the pdump primary's hugepages"),
        ] {
            let items: Vec<&Item> = self.items.iter().filter(|i| i.place == place).collect();
            if items.is_empty() {
                continue;
            }
            writeln!(f, "{title}:")?;
            for i in items {
                writeln!(f, "  {:<28} {:>10}  {}", i.what, mib(i.bytes), i.how)?;
            }
            writeln!(f, "  {:<28} {:>10}", "total", mib(self.total(place)))?;
        }
        if let Some(m) = self.eal_memory_mib {
            writeln!(f, "EAL takes {m} MiB at start (-m / --socket-mem)")?;
        }
        let h = self.hugepages();
        writeln!(f, "hugepages: {h} x 2 MiB ({} MiB)", h * 2)?;
        if self.lcores == 1 {
            return write!(
                f,
                "lcores: 1 (one-lcore mode: the main lcore runs the worker, from {})",
                self.workers_from
            );
        }
        write!(
            f,
            "lcores: {} (the main lcore and {} worker{}, from {}; with three or more, a distributor takes one of them when an input cannot hash)",
            self.lcores,
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.workers_from
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        [eal]
        args = ["-l", "0-2", "--no-pci"]
        [[port]]
        name = "in"
        device = "net_null0"
        role = "input"
        [[port]]
        name = "up"
        device = "net_null1"
        role = "uplink"
        [[uplink]]
        port = "up"
        address = "192.0.2.1/24"
        [mempool]
        mbufs = 4096
        [dedup]
        table_entries = 65536
        [flow_cache]
        entries = 16384
    "#;

    #[test]
    fn the_footprint_follows_the_keys() {
        let cfg = Config::parse(SMALL, "t").expect("valid");
        let f = Footprint::of(&cfg, None);
        assert_eq!((f.workers, f.lcores), (2, 3), "from eal.args -l 0-2");
        let item = |w: &str| f.items.iter().find(|i| i.what == w).expect(w).bytes;
        assert_eq!(item("dedup tables"), 2 * 65536 * 16);
        assert_eq!(item("flow caches"), 2 * 16384 * 64);
        assert!(item("packet pool") > 4096 * 2304);
        assert_eq!(f.total(Place::Heap), 2 * 16384 * 64);
        assert_eq!(f.hugepages(), f.total(Place::Hugepages).div_ceil(HUGEPAGE));
        // More mbufs, more hugepages; the command line's -l wins.
        let big = Config::parse(&SMALL.replace("4096", "65536"), "t").expect("valid");
        assert!(Footprint::of(&big, None).hugepages() > f.hugepages());
        let cli = [
            "sluice".to_owned(),
            "-l".into(),
            "0-1".into(),
            "-m".into(),
            "256".into(),
        ];
        let on_cli = Footprint::of(&cfg, Some(&cli[1..]));
        assert_eq!((on_cli.workers, on_cli.hugepages()), (1, 128));
        let one = ["-l".to_owned(), "0".into()];
        let one = Footprint::of(&cfg, Some(&one));
        assert_eq!((one.workers, one.lcores), (1, 1), "one-lcore mode");
        assert!(one.to_string().contains("lcores: 1 (one-lcore mode"));
        let text = f.to_string();
        assert!(
            text.contains(&format!("hugepages: {} x 2 MiB", f.hugepages())),
            "{text}"
        );
        assert!(text.contains("lcores: 3 "), "{text}");
    }

    #[test]
    fn bad_eal_and_flow_cache_keys_are_named() {
        let bad = SMALL.replace("\"0-2\"", "\"0-x\"").replace("16384", "1000");
        let e = Config::parse(&bad, "t").expect_err("invalid").to_string();
        assert!(e.contains("eal.args: lcore list \"0-x\""), "{e}");
        assert!(e.contains("flow_cache.entries: 1000"), "{e}");
    }
}
