//! One-way delay of received frames (receive time − the send time the
//! sender wrote, see [`crate::stamp`]), kept in a log-linear histogram:
//! exact below 128 ns, then 64 buckets per power of two (under 1.6 %
//! error), so a run of any length takes the same 30 KiB.

use serde::Serialize;

/// Buckets per power of two (and the exact range is twice that).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) * SUB as usize) + SUB as usize;

/// Percentiles of what was recorded, in ns (each the upper edge of its
/// bucket, never above the largest sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyReport {
    pub samples: u64,
    pub min_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl std::fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |ns: u64| ns as f64 / 1000.0;
        write!(
            f,
            "{} samples: min {:.1} µs, mean {:.1}, p50 {:.1}, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}",
            self.samples,
            us(self.min_ns),
            us(self.mean_ns),
            us(self.p50_ns),
            us(self.p90_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns)
        )
    }
}

/// The histogram.
#[derive(Debug, Clone)]
pub struct Latency {
    counts: Vec<u64>,
    samples: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            counts: vec![0; BUCKETS],
            samples: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn bucket(ns: u64) -> usize {
    if ns < 2 * SUB {
        return ns as usize;
    }
    let shift = 63 - ns.leading_zeros() - SUB_BITS;
    (shift as usize) * SUB as usize + (ns >> shift) as usize
}

/// The largest value that falls in bucket `i`.
fn upper_edge(i: usize) -> u64 {
    if i < 2 * SUB as usize {
        return i as u64;
    }
    let shift = (i / SUB as usize - 1) as u32;
    let top = (i % SUB as usize) as u64 + SUB;
    ((top + 1) << shift).wrapping_sub(1)
}

impl Latency {
    pub fn new() -> Latency {
        Latency::default()
    }

    /// Records one delay.
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.samples += 1;
        self.sum += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// The smallest bucket edge at or above a share `q` of the samples.
    fn quantile(&self, q: f64) -> u64 {
        let want = ((self.samples as f64 * q).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return upper_edge(i).min(self.max);
            }
        }
        self.max
    }

    /// The percentiles, or `None` when nothing was recorded.
    pub fn report(&self) -> Option<LatencyReport> {
        if self.samples == 0 {
            return None;
        }
        Some(LatencyReport {
            samples: self.samples,
            min_ns: self.min,
            mean_ns: (self.sum / u128::from(self.samples)) as u64,
            p50_ns: self.quantile(0.50),
            p90_ns: self.quantile(0.90),
            p99_ns: self.quantile(0.99),
            p999_ns: self.quantile(0.999),
            max_ns: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for ns in (0..5000).chain([1 << 20, (1 << 40) + 12345, u64::MAX]) {
            let b = bucket(ns);
            assert!(b < BUCKETS, "{ns}");
            assert!(upper_edge(b) >= ns, "{ns} above its bucket's edge");
            // Under 1/64 of error above the exact range.
            assert!(upper_edge(b) - ns <= ns / SUB, "{ns}");
            if ns < 5000 {
                assert!(b == last || b == last + 1, "{ns}: {last} -> {b}");
                last = b;
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut l = Latency::new();
        assert_eq!(l.report(), None);
        // 1..=1000 µs, one sample each, then one outlier of 50 ms.
        for us in 1..=1000u64 {
            l.record(us * 1000);
        }
        l.record(50_000_000);
        let r = l.report().unwrap();
        assert_eq!((r.samples, r.min_ns, r.max_ns), (1001, 1000, 50_000_000));
        let near = |got: u64, want: u64| got >= want && got - want <= want / SUB;
        assert!(near(r.p50_ns, 501_000), "{r:?}");
        assert!(near(r.p90_ns, 901_000), "{r:?}");
        assert!(near(r.p99_ns, 991_000), "{r:?}");
        assert!(near(r.p999_ns, 1_000_000), "{r:?}");
        assert_eq!(r.mean_ns, (500_500_000 + 50_000_000) / 1001);
    }
}
