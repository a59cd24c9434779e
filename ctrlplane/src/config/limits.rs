//! Sizes and identity: `[appliance]`, `[workers]`, `[mempool]`,
//! `[queues]` and `[dedup]`.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::raw::RawDedup;

/// `[appliance]`: who this appliance is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplianceId {
    pub name: String,
    /// Carried in tunnels (ERSPAN III hardware ID: low 6 bits).
    pub id: u16,
}

impl Default for ApplianceId {
    fn default() -> Self {
        Self {
            name: "sluice".into(),
            id: 1,
        }
    }
}

/// `[workers]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Worker lcores; default: every EAL lcore but the main one.
    pub lcores: Option<Vec<u32>>,
    /// What every worker does when nothing arrives.
    pub idle: IdleMode,
    /// The longest a sleeping worker takes to look at its queues again
    /// (µs): the wake-up delay the RX rings must cover.
    pub idle_max_us: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            lcores: None,
            idle: IdleMode::Poll,
            // Under 2 % of a core for an idle adaptive worker (500 wake-ups
            // a second); a flowing link's sleeps are far shorter anyway.
            idle_max_us: 2000,
        }
    }
}

/// `workers.idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleMode {
    /// Busy polling, a whole core each (DPDK's classic loop).
    #[default]
    Poll,
    /// DPDK's PMD power management, then sleeps growing to `idle_max_us`.
    Adaptive,
    /// Sleeps on the RX queues' interrupts (inputs whose driver has them).
    Interrupt,
}

impl WorkersConfig {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        if !(10..=100_000).contains(&self.idle_max_us) {
            p.push(format!(
                "workers.idle_max_us: {} is outside 10..=100000",
                self.idle_max_us
            ));
        }
        let Some(l) = &self.lcores else {
            return;
        };
        if l.is_empty() {
            p.push("workers.lcores: must list at least one lcore".into());
        }
        let mut seen = HashSet::new();
        for c in l {
            if !seen.insert(c) {
                p.push(format!("workers.lcores: lcore {c} is listed twice"));
            }
        }
    }
}

/// `[mempool]`: the packet pool, and as many small mbufs for indirect
/// clones (an extra destination's copy of a large frame) when the uplink
/// sends chained mbufs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    pub mbufs: u32,
    pub cache: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            mbufs: 16383,
            cache: 256,
        }
    }
}

impl MempoolConfig {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        if self.mbufs < 1024 {
            p.push(format!("mempool.mbufs: {} is fewer than 1024", self.mbufs));
        }
        if self.cache > 512 {
            p.push(format!(
                "mempool.cache: {} is more than DPDK's 512",
                self.cache
            ));
        }
    }
}

/// `[queues]`: descriptor rings and the distributor's rings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Per-worker ring from the distributor, for inputs without RSS.
    pub distributor_ring: u32,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            rx_desc: 1024,
            tx_desc: 1024,
            distributor_ring: 4096,
        }
    }
}

impl QueuesConfig {
    pub(super) fn problems(&self, p: &mut Vec<String>) {
        for (key, v) in [
            ("queues.rx_desc", self.rx_desc),
            ("queues.tx_desc", self.tx_desc),
        ] {
            if !(64..=8192).contains(&v) {
                p.push(format!("{key}: {v} is outside 64..=8192"));
            }
        }
        if !self.distributor_ring.is_power_of_two() {
            p.push(format!(
                "queues.distributor_ring: {} is not a power of two",
                self.distributor_ring
            ));
        }
    }
}

/// `[dedup]`: the per-worker duplicate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupConfig {
    /// Entries per worker (a power of two).
    pub table_entries: u32,
    /// A copy seen again within this long is a duplicate (`window_us`).
    pub window: Duration,
    pub ignore_dscp: bool,
    pub include_l2: bool,
}

impl DedupConfig {
    pub(super) fn check(raw: RawDedup, p: &mut Vec<String>) -> DedupConfig {
        let e = raw.table_entries;
        if !e.is_power_of_two() || !(1024..=1 << 26).contains(&e) {
            p.push(format!(
                "dedup.table_entries: {e} is not a power of two in 1024..=67108864"
            ));
        }
        if raw.window_us == 0 || raw.window_us > 10_000_000 {
            p.push(format!(
                "dedup.window_us: {} is outside 1..=10000000",
                raw.window_us
            ));
        }
        DedupConfig {
            table_entries: e,
            window: Duration::from_micros(raw.window_us),
            ignore_dscp: raw.ignore_dscp,
            include_l2: raw.include_l2,
        }
    }
}
