//! Wall-clock nanoseconds from the TSC, for dedup windows and ERSPAN III
//! timestamps, without a system call per burst.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::dpdk::{tsc_hz, tsc_now};

/// Converts TSC ticks to nanoseconds since the Unix epoch, anchored once.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    hz: u64,
    base_tsc: u64,
    base_ns: u64,
    /// ns per tick in 32.32 fixed point.
    mult: u64,
}

impl Clock {
    /// Anchors the TSC to the system clock now. EAL must be initialised.
    pub fn new() -> Clock {
        let hz = tsc_hz().max(1);
        let base_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Clock {
            hz,
            base_tsc: tsc_now(),
            base_ns,
            mult: ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        }
    }

    pub fn hz(&self) -> u64 {
        self.hz
    }

    #[inline]
    pub fn tsc_now(&self) -> u64 {
        tsc_now()
    }

    /// Nanoseconds since the Unix epoch.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        let ticks = tsc_now().wrapping_sub(self.base_tsc);
        self.base_ns + ((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
