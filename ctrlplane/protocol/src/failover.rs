//! The order in which an appliance tries its controllers.
//!
//! Every appliance of a fleet usually lists the same controllers. Were
//! they all tried in list order, every appliance would start at the first
//! one, and when a controller dies every one of its appliances would fail
//! over to the same next one: the survivors would be hit unevenly, and in
//! a herd. So each appliance takes its own order, by rendezvous (highest
//! random weight) hashing of its name with each controller's address:
//!
//! - the fleet starts spread evenly over the controllers;
//! - a dead controller's appliances spread evenly over the others, since
//!   each one's next choice is its own;
//! - the order does not depend on how a config orders the list, and adding
//!   or removing a controller moves only the appliances it concerns.
//!
//! The controller side needs nothing of this; its scale benchmark takes
//! the same order its simulated appliances.

/// The indices of `addresses` in the order appliance `name` tries them:
/// every one once, the most preferred first. The same for the same name
/// and set of addresses, on every machine and in every build.
pub fn controller_order<S: AsRef<str>>(name: &str, addresses: &[S]) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (weight(name, a.as_ref()), i))
        .collect();
    // Highest weight first; equal weights (the same address twice) in list order.
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, i)| i).collect()
}

/// FNV-1a over both strings (a separator between), then the splitmix64
/// finaliser: a hash fixed by its definition (std's may change between
/// releases), mixed well enough that neighbouring names do not pick
/// neighbouring orders.
fn weight(name: &str, address: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let bytes = name.bytes().chain([0xff]).chain(address.bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTLS: [&str; 3] = ["ctl-1:7443", "ctl-2:7443", "ctl-3:7443"];

    #[test]
    fn each_order_holds_every_controller_once() {
        for i in 0..100 {
            let mut o = controller_order(&format!("tap-{i}"), &CTLS);
            o.sort_unstable();
            assert_eq!(o, [0, 1, 2]);
        }
        assert!(controller_order::<&str>("tap-0", &[]).is_empty());
        assert_eq!(controller_order("tap-0", &["only:1"]), [0]);
    }

    #[test]
    fn two_names_start_at_different_controllers() {
        // Fixed names, fixed hash: these two start apart, on every machine.
        let a = controller_order("tap-a", &CTLS);
        let b = controller_order("tap-c", &CTLS);
        assert_ne!(a[0], b[0], "{a:?} {b:?}");
        // And the same name always takes the same order.
        assert_eq!(a, controller_order("tap-a", &CTLS));
    }

    #[test]
    fn the_order_follows_the_addresses_not_the_list() {
        let mut rev = CTLS;
        rev.reverse();
        for i in 0..50 {
            let name = format!("tap-{i}");
            let by_addr = |list: &[&str]| -> Vec<String> {
                controller_order(&name, list)
                    .into_iter()
                    .map(|j| list[j].to_owned())
                    .collect()
            };
            assert_eq!(by_addr(&CTLS), by_addr(&rev));
        }
    }

    /// A fleet starts spread over its controllers, and the appliances of
    /// any one of them move to every other one when it dies.
    #[test]
    fn a_fleet_spreads_and_so_does_a_dead_controllers_share() {
        let n = 3000;
        // [first choice][second choice]
        let mut moves = [[0usize; 3]; 3];
        for i in 0..n {
            let o = controller_order(&format!("sim-{i:05}"), &CTLS);
            moves[o[0]][o[1]] += 1;
        }
        for (first, row) in moves.iter().enumerate() {
            let share: usize = row.iter().sum();
            assert!(
                share > n / 3 * 9 / 10 && share < n / 3 * 11 / 10,
                "controller {first} starts with {share} of {n}: {moves:?}"
            );
            for (second, &m) in row.iter().enumerate() {
                if second != first {
                    assert!(
                        m > share / 2 * 8 / 10,
                        "of {first}'s {share}, only {m} go to {second}: {moves:?}"
                    );
                }
            }
        }
    }
}
