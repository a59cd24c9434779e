//! Target `policy`: the policy parser and compiler on any text. Either a
//! compiled policy or every problem, never a panic; a compiled policy's
//! classifier answers for a few packets and its verdicts name rules and
//! destinations that exist.

use ctrlplane::policy::{compile, parse_toml, Context};
use dataplane::stage::filter::Action;
use dataplane::stage::parse::parse;
use dataplane::stage::Direction;

/// A few frames for a compiled classifier: IPv4 TCP, IPv6 UDP, ARP.
const FRAMES: [&[u8]; 3] = [
    &[
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0,
        10, 1, 0, 1, 10, 2, 0, 1, 0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0,
        0, 0, 0, 0,
    ],
    &[
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64, 0x20, 0x01,
        0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 2, 0, 53, 0x12, 0xb5, 0, 8, 0, 0,
    ],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1,
    ],
];

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = parse_toml(text, "fuzz-policy.toml") else {
        return;
    };
    let ctx = Context {
        ports: vec![("tap0".into(), 0), ("tap1".into(), 1), ("tap2".into(), 7)],
    };
    match compile(&policy, &ctx) {
        Ok(c) => {
            for f in FRAMES {
                let l = parse(f);
                for port in [0u16, 1, 7] {
                    for dir in [Direction::Ingress, Direction::Egress] {
                        let v = c.classifier.classify(&l, port, dir);
                        if let Some(i) = v.rule_index() {
                            assert!(i < c.classifier.len());
                        }
                        if let Action::Forward(dests) = c.classifier.action(v) {
                            for d in dests {
                                assert!(
                                    usize::from(d.dest) < c.destinations.len(),
                                    "verdict names destination {} of {}",
                                    d.dest,
                                    c.destinations.len()
                                );
                            }
                        }
                    }
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in problems {
                assert!(!p.path.is_empty() && !p.reason.is_empty(), "{p:?}");
            }
        }
    }
}
