//! Sluice's namespace and a receiver's, joined by a veth pair, the
//! receiver with an address and a Linux VXLAN device (VNI 100) that takes
//! Sluice's tunnels; and interface names that do not collide.

use super::{ip, seq, Netns};

/// A unique interface name (at most 15 characters) starting with `tag`
/// (three letters).
pub fn ifname(tag: &str) -> String {
    format!("{tag}{}x{}", std::process::id() % 100_000, seq())
}

/// Sluice's namespace and a receiver's, joined by a veth pair; both
/// deleted on drop.
pub struct Namespaces {
    pub sluice: Netns,
    pub receiver: Netns,
    /// Sluice's end of the veth pair (in `sluice`).
    pub veth_s: String,
    /// The receiver's end (in `receiver`, address 192.0.2.10/24).
    pub veth_r: String,
}

impl Namespaces {
    pub fn new() -> Namespaces {
        let n = Namespaces {
            sluice: Netns::quiet("ns-s"),
            receiver: Netns::quiet("ns-r"),
            veth_s: ifname("sls"),
            veth_r: ifname("slr"),
        };
        ip(&[
            "link",
            "add",
            &n.veth_s,
            "netns",
            n.sluice.name(),
            "type",
            "veth",
            "peer",
            "name",
            &n.veth_r,
            "netns",
            n.receiver.name(),
        ]);
        n.sluice.ip(&["link", "set", &n.veth_s, "up"]);
        let r = &n.receiver;
        r.ip(&["addr", "add", "192.0.2.10/24", "dev", &n.veth_r]);
        r.ip(&["link", "set", &n.veth_r, "up"]);
        r.ip(&[
            "link",
            "add",
            "vx100",
            "type",
            "vxlan",
            "id",
            "100",
            "dstport",
            "4789",
            "local",
            "192.0.2.10",
            "dev",
            &n.veth_r,
        ]);
        r.ip(&["link", "set", "vx100", "up"]);
        n
    }
}
