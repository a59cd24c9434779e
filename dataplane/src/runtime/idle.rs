//! What a worker does after a round of polling that brought nothing:
//! poll again (`poll`, DPDK's classic busy loop), sleep for a while that
//! grows with the silence up to a bound (`adaptive`), or sleep until an
//! RX interrupt fires (`interrupt`). The decision is taken only on empty
//! rounds; a round with packets costs one comparison.
//!
//! Wake-up delay: an adaptive worker notices a packet at most
//! `max_sleep_us` after it arrived; an interrupt worker at once, or after
//! `max_sleep_us` (rounded up to whole milliseconds, epoll's unit) when the
//! packet arrived just before the interrupt was armed. The RX ring holds
//! what arrives meanwhile: `rx_desc` ≥ rate × delay (1,024 descriptors
//! hold 1 ms at 1 Mpps); what does not fit is counted by the device as
//! missed (`show port stats`: RX-missed).

use std::time::Duration;

use crate::dpdk::{set_timer_slack_ns, RxInterrupts};
use crate::stage::BURST;

/// How a worker waits when nothing arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleMode {
    /// Busy polling: the lowest latency, a whole core.
    #[default]
    Poll,
    /// DPDK's PMD power management on the RX queues, then sleeps that
    /// double with each empty round up to the bound.
    Adaptive,
    /// Sleeps in epoll on the RX queues' interrupts.
    Interrupt,
}

impl IdleMode {
    pub fn name(self) -> &'static str {
        match self {
            IdleMode::Poll => "poll",
            IdleMode::Adaptive => "adaptive",
            IdleMode::Interrupt => "interrupt",
        }
    }
}

/// A worker's idle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    pub mode: IdleMode,
    /// The longest a sleeping worker takes to look again (µs).
    pub max_sleep_us: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            mode: IdleMode::Poll,
            max_sleep_us: 1000,
        }
    }
}

/// Empty rounds polled before the first wait: a burst's stragglers and a
/// busy link's short gaps are met by polling.
const SPIN_ROUNDS: u32 = 32;
/// The first sleep of an adaptive worker (µs); each empty round doubles it.
const FIRST_SLEEP_US: u32 = 4;
/// The kernel's leeway on a sleep (ns): its default of 50 µs would
/// lengthen every short sleep to that.
const TIMER_SLACK_NS: u64 = 1000;

/// How to wait now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Sleep(Duration),
    /// Until an RX interrupt, or this many ms.
    Interrupt(i32),
}

/// A worker's idle state across rounds.
#[derive(Debug)]
pub struct Idle {
    cfg: IdleConfig,
    /// Consecutive empty rounds.
    empty: u32,
    /// The next adaptive sleep (µs); 0 while polling.
    sleep_us: u32,
    /// A round brought packets since the last empty one.
    traffic: bool,
    intr: Option<RxInterrupts>,
}

impl Idle {
    /// The idle state of a worker polling `queues` (port, queue); in
    /// interrupt mode they are added to the calling thread's epoll set, so
    /// call it on the worker's own thread.
    pub fn new(cfg: IdleConfig, queues: &[(u16, u16)]) -> Result<Idle, String> {
        let intr = match cfg.mode {
            IdleMode::Interrupt => Some(RxInterrupts::register(queues).map_err(|e| e.to_string())?),
            IdleMode::Adaptive | IdleMode::Poll => None,
        };
        if cfg.mode != IdleMode::Poll {
            set_timer_slack_ns(TIMER_SLACK_NS);
        }
        Ok(Idle {
            cfg,
            empty: 0,
            sleep_us: 0,
            traffic: false,
            intr,
        })
    }

    pub fn mode(&self) -> IdleMode {
        self.cfg.mode
    }

    /// After a round that brought `got` packets: a full half burst means
    /// a busy link (poll on), fewer a light one (sleep half as long).
    #[inline]
    pub fn busy(&mut self, got: usize) {
        self.empty = 0;
        self.traffic = true;
        if got >= BURST / 2 {
            self.sleep_us = 0;
        } else {
            self.sleep_us /= 2;
        }
    }

    /// On an empty round: whether it is the first since packets came (the
    /// link went quiet: what the TX buffers hold should leave now).
    #[inline]
    pub fn went_quiet(&mut self) -> bool {
        std::mem::replace(&mut self.traffic, false)
    }

    /// After an empty round: whether to wait now, and how.
    pub fn empty_round(&mut self) -> Option<Wait> {
        if self.cfg.mode == IdleMode::Poll {
            return None;
        }
        if self.sleep_us == 0 {
            self.empty += 1;
            if self.empty < SPIN_ROUNDS {
                return None;
            }
            self.sleep_us = FIRST_SLEEP_US.min(self.cfg.max_sleep_us);
        }
        match self.cfg.mode {
            IdleMode::Interrupt => {
                Some(Wait::Interrupt(self.cfg.max_sleep_us.div_ceil(1000) as i32))
            }
            _ => {
                let d = self.sleep_us;
                self.sleep_us = d.saturating_mul(2).min(self.cfg.max_sleep_us);
                Some(Wait::Sleep(Duration::from_micros(u64::from(d))))
            }
        }
    }

    /// Waits as `w` says, no longer than `cap` (the main lcore's share in
    /// one-lcore mode); returns whether an RX interrupt ended the wait.
    pub fn wait(&mut self, w: Wait, cap: Option<Duration>) -> bool {
        match (w, self.intr.as_mut()) {
            (Wait::Interrupt(ms), Some(intr)) => {
                let ms = cap.map_or(ms, |c| ms.min(c.as_millis().max(1) as i32));
                intr.wait(ms)
            }
            (Wait::Sleep(d), _) => {
                std::thread::sleep(cap.map_or(d, |c| d.min(c)));
                false
            }
            (Wait::Interrupt(ms), None) => {
                std::thread::sleep(Duration::from_millis(ms as u64));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(mode: IdleMode, max: u32) -> Idle {
        Idle {
            cfg: IdleConfig {
                mode,
                max_sleep_us: max,
            },
            empty: 0,
            sleep_us: 0,
            traffic: false,
            intr: None,
        }
    }

    #[test]
    fn the_first_empty_round_after_packets_is_quiet() {
        for mode in [IdleMode::Poll, IdleMode::Adaptive, IdleMode::Interrupt] {
            let mut i = idle(mode, 1000);
            assert!(!i.went_quiet(), "{mode:?}: nothing came yet");
            i.busy(BURST);
            i.busy(1);
            assert!(i.went_quiet(), "{mode:?}");
            assert!(!i.went_quiet(), "{mode:?}: once per quiet spell");
        }
    }

    #[test]
    fn poll_never_waits() {
        let mut i = idle(IdleMode::Poll, 1000);
        assert!((0..10_000).all(|_| i.empty_round().is_none()));
    }

    #[test]
    fn adaptive_spins_then_doubles_its_sleep_up_to_the_bound() {
        let mut i = idle(IdleMode::Adaptive, 100);
        let waits: Vec<Option<Wait>> = (0..SPIN_ROUNDS + 6).map(|_| i.empty_round()).collect();
        assert!(waits[..SPIN_ROUNDS as usize - 1]
            .iter()
            .all(Option::is_none));
        let us = |w: &Option<Wait>| match w {
            Some(Wait::Sleep(d)) => d.as_micros() as u32,
            other => panic!("{other:?}"),
        };
        let sleeps: Vec<u32> = waits[SPIN_ROUNDS as usize - 1..].iter().map(us).collect();
        assert_eq!(sleeps, [4, 8, 16, 32, 64, 100, 100]);
        // A light round halves the next sleep; a busy one polls again.
        i.busy(1);
        assert_eq!(
            i.empty_round(),
            Some(Wait::Sleep(Duration::from_micros(50)))
        );
        i.busy(BURST);
        assert_eq!(i.empty_round(), None);
    }

    #[test]
    fn interrupt_waits_whole_milliseconds() {
        let mut i = idle(IdleMode::Interrupt, 1500);
        let w = (0..SPIN_ROUNDS).filter_map(|_| i.empty_round()).next();
        assert_eq!(w, Some(Wait::Interrupt(2)));
    }
}
