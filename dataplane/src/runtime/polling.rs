//! Whether an lcore is in a round that polls the inputs, so that `stop`
//! can wait until none is.
//!
//! The run word tells the lcores to pause, but an lcore reads it only at
//! the start of a round: when `stop` answers, a round begun before may
//! still be in an RX burst. That matters when an input's peer leaves
//! while stopped: `net_memif` unmaps the rings of a departed peer from
//! the interrupt thread without waiting for the lcores (DPDK 22.11), and
//! an RX burst still running then faults. So each lcore raises its flag
//! before a round that polls and lowers it before one that does not, and
//! `stop` stores the pause and then waits for every flag to be down.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What the main lcore asks of the workers.
pub mod run_state {
    /// Poll the inputs and forward.
    pub const RUNNING: u8 = 0;
    /// Console `stop`: inputs are not polled (the device counts what it
    /// cannot hold as missed); ARP/ND and control frames still flow.
    pub const PAUSED: u8 = 1;
    /// Drain the TX buffer and leave the loop.
    pub const EXIT: u8 = 2;
}

/// One lcore's flag: up while its current round polls the inputs.
#[derive(Debug, Default)]
pub struct Polling(AtomicBool);

impl Polling {
    /// Called by the lcore at the start of each round: `state` is what it
    /// read of the run word `run` this round. Returns whether this round
    /// may poll. Only a change costs more than a load of the lcore's own
    /// flag.
    ///
    /// Raising the flag and reading the word again are both sequentially
    /// consistent, as are `stop`'s store of the pause and its read of the
    /// flag ([`Polling::is_up`]): either this lcore sees the pause, or
    /// `stop` sees the flag up and waits.
    #[inline]
    pub fn begin_round(&self, state: u8, run: &AtomicU8) -> bool {
        let polls = state == run_state::RUNNING;
        if polls == self.0.load(Ordering::Relaxed) {
            return polls;
        }
        if !polls {
            self.0.store(false, Ordering::Release);
            return false;
        }
        self.0.store(true, Ordering::SeqCst);
        if run.load(Ordering::SeqCst) == run_state::RUNNING {
            return true;
        }
        self.0.store(false, Ordering::Release);
        false
    }

    /// Lowers the flag of an lcore that is between rounds and hands its
    /// core back (the one-lcore mode's worker).
    pub fn lower(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether the lcore may be in a round that polls (for `stop`).
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::run_state::{PAUSED, RUNNING};
    use super::*;

    #[test]
    fn the_flag_follows_the_run_word() {
        let p = Polling::default();
        let (running, paused) = (AtomicU8::new(RUNNING), AtomicU8::new(PAUSED));
        assert!(!p.is_up(), "an lcore starts paused");
        assert!(p.begin_round(RUNNING, &running));
        assert!(p.is_up());
        // Running on: the word is not read again (it would say paused).
        assert!(p.begin_round(RUNNING, &paused));
        assert!(
            !p.begin_round(PAUSED, &running),
            "a pause is not read again"
        );
        assert!(!p.is_up(), "a paused round lowers the flag");
    }

    #[test]
    fn a_pause_between_the_two_reads_wins() {
        // The lcore read "run", then `stop` stored the pause before the
        // flag went up: the second read sees it, and the round does not poll.
        let p = Polling::default();
        assert!(!p.begin_round(RUNNING, &AtomicU8::new(PAUSED)));
        assert!(!p.is_up(), "the flag is down again: `stop` need not wait");
    }

    #[test]
    fn lower_hands_the_core_back() {
        let p = Polling::default();
        let running = AtomicU8::new(RUNNING);
        assert!(p.begin_round(RUNNING, &running));
        p.lower();
        assert!(!p.is_up());
        // The next round raises it again.
        assert!(p.begin_round(RUNNING, &running));
    }
}
