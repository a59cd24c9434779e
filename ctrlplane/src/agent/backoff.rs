//! Reconnect delays: exponential, bounded, with jitter so that a fleet of
//! appliances losing the controller together does not come back together.
//!
//! The jitter is "full": each delay is drawn from the whole of its step,
//! not only its upper half. A controller's appliances, all losing their
//! session at the same instant, then spread their reconnects evenly over
//! the first step instead of waiting out half of it together and arriving
//! in a herd over the other half.

use std::time::Duration;

/// Doubling steps from `initial` up to `max`; each delay is drawn
/// uniformly from zero to the current step ("full jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            step: initial,
        }
    }

    /// Back to the first step (after a session that worked).
    pub fn reset(&mut self) {
        self.step = self.initial;
    }

    /// The delay before the next attempt; the step after it doubles.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let hi = step.as_micros().min(u128::from(u64::MAX)) as u64;
        Duration::from_micros(rand::random_range(0..=hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_bounded_and_jitter() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let steps = [100u64, 200, 400, 800, 1000, 1000, 1000];
        for s in steps {
            let d = b.next_delay();
            assert!(d <= ms(s), "{d:?} for step {s}");
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
        // Jitter over the whole step: of 200 draws, some fall in its lower
        // half and some in its upper half (each misses with odds 2^-200).
        let mut b = Backoff::new(ms(1000), ms(1000));
        let draws: Vec<Duration> = (0..200).map(|_| b.next_delay()).collect();
        assert!(draws.iter().any(|d| *d < ms(500)));
        assert!(draws.iter().any(|d| *d > ms(500)));
    }

    #[test]
    fn degenerate_settings_still_give_a_delay() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() <= Duration::from_millis(1));
    }
}
