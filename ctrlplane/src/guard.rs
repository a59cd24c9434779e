//! The guard: watches pressure on the appliance (RX misses, distributor
//! ring fill, free mbufs, process memory) and decides when to enter
//! `protect` — shedding load on purpose so the production network never
//! feels the appliance — and when pressure has stayed low long enough to
//! go back to `running`. Pure logic over samples; the main lcore feeds it.

use serde::Deserialize;

/// How `protect` sheds load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shed {
    /// Keep one packet in `sample_keep_1_in`.
    #[default]
    Sample,
    /// Keep packets of the first `keep_rules` rules (the highest priority);
    /// shed the rest, lowest priority first.
    Priority,
}

/// `[guard]`: the limits and how to shed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// How often the guard looks, in ms.
    pub interval_ms: u64,
    /// Packets per second the inputs may miss (device RX-missed) before protect.
    pub max_missed_pps: u64,
    /// Free mbufs below this share of the pool (percent) mean pressure.
    pub min_free_mbufs_pct: u32,
    /// Distributor rings fuller than this (percent) mean pressure.
    pub max_ring_fill_pct: u32,
    /// Resident memory above this (MiB) means pressure; 0: no limit.
    pub max_rss_mb: u64,
    /// Pressure must stay low this long (ms) before leaving protect.
    pub calm_ms: u64,
    pub shed: Shed,
    pub sample_keep_1_in: u32,
    pub keep_rules: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            interval_ms: 100,
            max_missed_pps: 1000,
            min_free_mbufs_pct: 10,
            max_ring_fill_pct: 80,
            max_rss_mb: 0,
            calm_ms: 5000,
            shed: Shed::Sample,
            sample_keep_1_in: 10,
            keep_rules: 1,
        }
    }
}

impl GuardConfig {
    /// Every value that cannot work, each naming its key.
    pub fn problems(&self, p: &mut Vec<String>) {
        if self.interval_ms == 0 {
            p.push("guard.interval_ms: must be at least 1".into());
        }
        if self.min_free_mbufs_pct > 100 {
            p.push(format!(
                "guard.min_free_mbufs_pct: {} is over 100",
                self.min_free_mbufs_pct
            ));
        }
        if self.max_ring_fill_pct == 0 || self.max_ring_fill_pct > 100 {
            p.push(format!(
                "guard.max_ring_fill_pct: {} is outside 1..=100",
                self.max_ring_fill_pct
            ));
        }
        if self.sample_keep_1_in < 2 {
            p.push(format!(
                "guard.sample_keep_1_in: {} would shed nothing (at least 2)",
                self.sample_keep_1_in
            ));
        }
    }

    /// The word the workers read: 0 off, else the shed mode and its number.
    pub fn shed_word(&self) -> u64 {
        match self.shed {
            Shed::Sample => (1 << 32) | u64::from(self.sample_keep_1_in),
            Shed::Priority => (2 << 32) | u64::from(self.keep_rules),
        }
    }
}

/// What the guard sees at one look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: u64,
    /// RX-missed summed over the input ports (a counter).
    pub missed: u64,
    pub free_mbufs: u64,
    pub total_mbufs: u64,
    /// Fill of the fullest distributor ring, percent.
    pub ring_fill_pct: u32,
    pub rss_bytes: u64,
}

/// A change of state the guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Enter(String),
    Leave,
}

/// The guard's memory between looks.
#[derive(Debug, Clone)]
pub struct Guard {
    pub cfg: GuardConfig,
    last: Option<Sample>,
    protecting: bool,
    calm_since: Option<u64>,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            last: None,
            protecting: false,
            calm_since: None,
        }
    }

    pub fn protecting(&self) -> bool {
        self.protecting
    }

    /// What is over its limit in `s`, if anything.
    pub fn pressure(&self, s: &Sample) -> Option<String> {
        let c = &self.cfg;
        if let Some(prev) = self.last {
            let dt = s.at_ms.saturating_sub(prev.at_ms).max(1);
            let pps = s.missed.saturating_sub(prev.missed) * 1000 / dt;
            if pps > c.max_missed_pps {
                return Some(format!(
                    "inputs miss {pps} packets/s (limit {})",
                    c.max_missed_pps
                ));
            }
        }
        if let Some(free) = (s.free_mbufs * 100).checked_div(s.total_mbufs) {
            if free < u64::from(c.min_free_mbufs_pct) {
                return Some(format!(
                    "{free}% of mbufs free (limit {}%)",
                    c.min_free_mbufs_pct
                ));
            }
        }
        if s.ring_fill_pct > c.max_ring_fill_pct {
            return Some(format!(
                "a distributor ring is {}% full (limit {}%)",
                s.ring_fill_pct, c.max_ring_fill_pct
            ));
        }
        if c.max_rss_mb > 0 && s.rss_bytes > c.max_rss_mb << 20 {
            return Some(format!(
                "resident memory {} MiB (limit {} MiB)",
                s.rss_bytes >> 20,
                c.max_rss_mb
            ));
        }
        None
    }

    /// Looks at a sample; returns a transition when the state changes.
    pub fn observe(&mut self, s: Sample) -> Option<Transition> {
        let pressure = self.pressure(&s);
        self.last = Some(s);
        match (self.protecting, pressure) {
            (false, Some(why)) => {
                self.protecting = true;
                self.calm_since = None;
                Some(Transition::Enter(why))
            }
            (true, Some(_)) => {
                self.calm_since = None;
                None
            }
            (true, None) => {
                let since = *self.calm_since.get_or_insert(s.at_ms);
                if s.at_ms.saturating_sub(since) >= self.cfg.calm_ms {
                    self.protecting = false;
                    self.calm_since = None;
                    Some(Transition::Leave)
                } else {
                    None
                }
            }
            (false, None) => None,
        }
    }
}

/// This process's resident memory, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64) -> Sample {
        Sample {
            at_ms,
            free_mbufs: 900,
            total_mbufs: 1000,
            ..Sample::default()
        }
    }

    #[test]
    fn enters_on_each_pressure_and_leaves_after_calm() {
        let mut g = Guard::new(GuardConfig {
            calm_ms: 300,
            ..GuardConfig::default()
        });
        assert_eq!(g.observe(sample(0)), None);
        // 5000 misses in 100 ms: 50k pps.
        let mut s = sample(100);
        s.missed = 5000;
        assert!(
            matches!(g.observe(s), Some(Transition::Enter(w)) if w.contains("50000 packets/s"))
        );
        assert!(g.protecting());
        // Calm for 200 ms is not enough; pressure again resets the clock.
        let mut t = sample(200);
        t.missed = 5000;
        assert_eq!(g.observe(t), None);
        let mut u = sample(400);
        u.missed = 5000;
        assert_eq!(g.observe(u), None);
        let mut v = sample(500);
        v.missed = 5000;
        v.free_mbufs = 50;
        assert_eq!(g.observe(v), None, "still under pressure: stays");
        let mut w = sample(600);
        w.missed = 5000;
        assert_eq!(g.observe(w), None, "calm starts");
        let mut x = sample(900);
        x.missed = 5000;
        assert_eq!(g.observe(x), Some(Transition::Leave));
        assert!(!g.protecting());
    }

    #[test]
    fn each_limit_names_itself() {
        let g = Guard::new(GuardConfig {
            max_rss_mb: 10,
            ..GuardConfig::default()
        });
        let mut s = sample(0);
        s.free_mbufs = 5;
        assert!(g.pressure(&s).is_some_and(|w| w.contains("mbufs free")));
        let mut s = sample(0);
        s.ring_fill_pct = 95;
        assert!(g
            .pressure(&s)
            .is_some_and(|w| w.contains("ring is 95% full")));
        let mut s = sample(0);
        s.rss_bytes = 11 << 20;
        assert!(g
            .pressure(&s)
            .is_some_and(|w| w.contains("resident memory 11 MiB")));
        assert_eq!(g.pressure(&sample(0)), None);
        assert!(rss_bytes() > 0);
    }
}
