//! Which controller the agent tries next: its configured controllers in
//! this appliance's own order (`protocol::failover`), taken in turn, so
//! that a fleet losing one controller spreads over the others.

use super::protocol::failover::controller_order;

#[derive(Debug, Clone)]
pub struct Rotation {
    /// Indices into the configured addresses, most preferred first.
    order: Vec<usize>,
    /// Position in `order` of the next one to try.
    next: usize,
}

impl Rotation {
    pub fn new<S: AsRef<str>>(name: &str, addresses: &[S]) -> Self {
        Self {
            order: controller_order(name, addresses),
            next: 0,
        }
    }

    /// The index of the address to try now; the one after it comes next
    /// time. Every address comes once before any comes again.
    pub fn next(&mut self) -> usize {
        let Some(&i) = self.order.get(self.next) else {
            return 0;
        };
        self.next = (self.next + 1) % self.order.len();
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTLS: [&str; 3] = ["ctl-1:7443", "ctl-2:7443", "ctl-3:7443"];

    #[test]
    fn two_appliances_start_at_different_controllers() {
        assert_ne!(
            Rotation::new("tap-a", &CTLS).next(),
            Rotation::new("tap-c", &CTLS).next()
        );
    }

    #[test]
    fn every_controller_is_tried_before_one_is_tried_again() {
        for name in ["tap-a", "tap-b", "tap-c", "edge-17"] {
            let mut r = Rotation::new(name, &CTLS);
            let first: Vec<usize> = (0..3).map(|_| r.next()).collect();
            let mut seen = first.clone();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2], "{name}: {first:?}");
            // And round again, in the same order.
            let again: Vec<usize> = (0..3).map(|_| r.next()).collect();
            assert_eq!(first, again, "{name}");
        }
    }

    #[test]
    fn one_or_no_controller() {
        let mut r = Rotation::new("tap-a", &["ctl:1"]);
        assert_eq!((r.next(), r.next()), (0, 0));
        let mut r = Rotation::new::<&str>("tap-a", &[]);
        assert_eq!(r.next(), 0);
    }
}
