//! Token buckets for per-destination rate limits.

/// A token bucket in TSC ticks: `rate` tokens per second, at most `burst`
/// tokens saved up. Pure arithmetic on a caller-supplied clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens scaled by `hz` (so refill is an integer multiply).
    tokens: u128,
    cap: u128,
    rate: u64,
    hz: u64,
    last: u64,
}

impl TokenBucket {
    /// `rate` tokens/second, bucket depth `burst` tokens, clock at `hz` ticks/second.
    pub fn new(rate: u64, burst: u64, hz: u64, now: u64) -> Self {
        let hz = hz.max(1);
        let cap = u128::from(burst.max(1)) * u128::from(hz);
        Self {
            tokens: cap,
            cap,
            rate,
            hz,
            last: now,
        }
    }

    /// Takes `n` tokens if there are enough.
    #[inline]
    pub fn take(&mut self, n: u64, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = now;
        self.tokens = (self.tokens + u128::from(elapsed) * u128::from(self.rate)).min(self.cap);
        let need = u128::from(n) * u128::from(self.hz);
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

/// A destination's limits on one worker (packets and bits per second).
#[derive(Debug, Clone, Default)]
pub struct DestLimiter {
    pps: Option<TokenBucket>,
    bps: Option<TokenBucket>,
}

impl DestLimiter {
    /// Limits `share` of the destination's rates (a worker's part of them);
    /// buckets hold 10 ms of traffic, at least one jumbo frame.
    pub fn new(mbps: Option<u64>, pps: Option<u64>, workers: u64, hz: u64, now: u64) -> Self {
        let w = workers.max(1);
        let pps = pps.map(|r| {
            let r = (r / w).max(1);
            TokenBucket::new(r, (r / 100).max(32), hz, now)
        });
        let bps = mbps.map(|m| {
            let r = (m * 1_000_000 / w).max(1);
            TokenBucket::new(r, (r / 100).max(9216 * 8), hz, now)
        });
        Self { pps, bps }
    }

    /// Whether any limit is set (else there is no need to read the clock).
    #[inline]
    pub fn is_limited(&self) -> bool {
        self.pps.is_some() || self.bps.is_some()
    }

    /// Whether a packet of `bytes` may go now.
    #[inline]
    pub fn allow(&mut self, bytes: usize, now: u64) -> bool {
        // Check both before taking from either, so a refusal costs nothing.
        let ok_p = self.pps.as_mut().is_none_or(|b| b.take(1, now));
        if !ok_p {
            return false;
        }
        self.bps
            .as_mut()
            .is_none_or(|b| b.take(bytes as u64 * 8, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_rate_and_refuses_beyond_it() {
        // 1000 tokens/s, depth 10, clock 1 MHz.
        let mut b = TokenBucket::new(1000, 10, 1_000_000, 0);
        let ok = (0..20).filter(|_| b.take(1, 0)).count();
        assert_eq!(ok, 10, "only the depth at once");
        assert!(!b.take(1, 999), "less than 1 ms: no token yet");
        assert!(b.take(1, 1000), "1 ms later: one token");
        // One second later the bucket is full again, not more.
        let ok = (0..2000).filter(|_| b.take(1, 1_001_000)).count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn limiter_splits_the_rate_between_workers() {
        let hz = 1_000_000;
        let mut l = DestLimiter::new(None, Some(64_000), 2, hz, 0);
        // 32k pps per worker: 320 per 10 ms bucket.
        let ok = (0..1000).filter(|_| l.allow(64, 0)).count();
        assert_eq!(ok, 320);
        let mut unlimited = DestLimiter::default();
        assert!((0..1000).all(|_| unlimited.allow(1500, 0)));
    }
}
