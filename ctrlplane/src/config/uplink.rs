//! `[[uplink]]` and `[[neighbor]]`: the appliance's addressing on each
//! port its tunnels leave by, the routes between them, and neighbours
//! whose MAC the operator fixes.
//!
//! A tunnel's remote leaves by one uplink, chosen once when the policy is
//! compiled ([`Routes::route`]): a fixed neighbour of that address (on its
//! uplink), else the uplink whose subnet holds it, else the uplink with
//! the longest static route to it, else the first uplink in config order
//! with a gateway of the remote's family.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::raw::{RawNeighbor, RawUplink};
use super::values::{parse_cidr, parse_mac, Cidr, MacAddr};

/// Uplinks an appliance may have: each worker holds a TX queue and a TX
/// buffer on every one.
pub const MAX_UPLINKS: usize = 8;

/// One `[[uplink]]`: the addressing of the uplink port it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    /// The `role = "uplink"` port this addressing is for.
    pub port: String,
    /// The appliance's address on the uplink, with prefix length: `192.0.2.1/24`.
    pub address: Cidr,
    /// Next hop for remotes no subnet or route of any uplink reaches
    /// (same family as `address`, on its subnet).
    pub gateway: Option<IpAddr>,
    /// Static routes: remotes in the prefix go by this uplink, to the next hop.
    pub routes: Vec<StaticRoute>,
    /// Source MAC of tunnels; default: the uplink port's own.
    pub mac: Option<MacAddr>,
    /// Largest outer IP packet; encapsulated packets never exceed it.
    pub mtu: u16,
    /// Between next-hop re-resolutions (`arp_refresh_s`).
    pub arp_refresh: Duration,
}

/// `"198.51.100.0/24 via 192.0.2.254"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: Cidr,
    pub via: IpAddr,
}

/// Whether `ip` is inside `net` (of its family).
pub fn contains(net: &Cidr, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => net.contains_bits(4, u128::from(u32::from(a))),
        IpAddr::V6(a) => net.contains_bits(6, u128::from(a)),
    }
}

/// Whether two prefixes share an address: the shorter holds the other.
fn overlap(a: &Cidr, b: &Cidr) -> bool {
    if a.len <= b.len {
        contains(a, b.addr)
    } else {
        contains(b, a.addr)
    }
}

impl UplinkConfig {
    /// The typed section `uplink[i]` (`None` without a usable address),
    /// its problems added to `p`.
    pub(super) fn check(i: usize, raw: RawUplink, p: &mut Vec<String>) -> Option<UplinkConfig> {
        let key = format!("uplink[{i}]");
        let address = parse_cidr(&raw.address);
        match address {
            None => p.push(format!(
                "{key}.address: {:?} is not an address with prefix length such as 192.0.2.1/24",
                raw.address
            )),
            Some(net @ Cidr { addr, .. }) => {
                if let Some(gw) = raw.gateway {
                    if gw.is_ipv4() != addr.is_ipv4() {
                        p.push(format!(
                            "{key}.gateway: {gw} is not of the address family of {key}.address"
                        ));
                    } else if !contains(&net, gw) {
                        p.push(format!(
                            "{key}.gateway: {gw} is not on the uplink's subnet {net}"
                        ));
                    }
                }
                if addr.is_unspecified() || addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
                    p.push(format!(
                        "{key}.address: {addr} cannot be an interface address"
                    ));
                }
            }
        }
        let routes = raw
            .routes
            .iter()
            .enumerate()
            .filter_map(|(k, text)| static_route(&format!("{key}.routes[{k}]"), text, address, p))
            .collect();
        let mac = match &raw.mac {
            None => None,
            Some(text) => {
                let mac = parse_mac(text);
                if mac.is_none() {
                    p.push(format!("{key}.mac: {text:?} is not a MAC address"));
                }
                mac
            }
        };
        if !(576..=9600).contains(&raw.mtu) {
            p.push(format!("{key}.mtu: {} is outside 576..=9600", raw.mtu));
        }
        if raw.arp_refresh_s == 0 {
            p.push(format!("{key}.arp_refresh_s: must be at least 1"));
        }
        // Kept with its other problems, so that checks between uplinks
        // still see it (the config is not used while there is a problem).
        let address = address?;
        Some(UplinkConfig {
            port: raw.port,
            address,
            gateway: raw.gateway,
            routes,
            mac,
            mtu: raw.mtu,
            arp_refresh: Duration::from_secs(u64::from(raw.arp_refresh_s)),
        })
    }
}

/// `PREFIX via NEXT-HOP`, its next hop on the uplink's subnet `net`.
fn static_route(
    key: &str,
    text: &str,
    net: Option<Cidr>,
    p: &mut Vec<String>,
) -> Option<StaticRoute> {
    let parsed = text.split_once(" via ").and_then(|(prefix, via)| {
        let prefix = parse_cidr(prefix)?;
        let via: IpAddr = via.trim().parse().ok()?;
        Some(StaticRoute { prefix, via })
    });
    let Some(r) = parsed else {
        p.push(format!(
            "{key}: {text:?} is not a route such as \"198.51.100.0/24 via 192.0.2.254\""
        ));
        return None;
    };
    if r.prefix.addr.is_ipv4() != r.via.is_ipv4() {
        p.push(format!(
            "{key}: {text:?}: the next hop is not of the prefix's address family"
        ));
        return None;
    }
    if let Some(net) = net {
        if !contains(&net, r.via) {
            p.push(format!(
                "{key}: {text:?}: the next hop {} is not on the uplink's subnet {net}",
                r.via
            ));
            return None;
        }
    }
    Some(r)
}

/// Checks between uplinks and against their ports: each `[[uplink]]`
/// names a distinct uplink port, each uplink port has one (`named`: the
/// ports every `[[uplink]]` names, usable or not), subnets and equal
/// static routes of two uplinks do not overlap (a remote in both would
/// have two ways out).
pub(super) fn check_all(
    uplinks: &[UplinkConfig],
    named: &[String],
    uplink_ports: &[&str],
    p: &mut Vec<String>,
) {
    if uplinks.len() > MAX_UPLINKS {
        p.push(format!(
            "uplink: {} uplinks, at most {MAX_UPLINKS}",
            uplinks.len()
        ));
    }
    for (i, u) in uplinks.iter().enumerate() {
        let key = format!("uplink[{i}]");
        if !uplink_ports.contains(&u.port.as_str()) {
            p.push(format!(
                "{key}.port: {:?} is not a port with role = \"uplink\"",
                u.port
            ));
        }
        for (j, o) in uplinks[..i].iter().enumerate() {
            if o.port == u.port {
                p.push(format!(
                    "{key}.port: {:?} already has its addressing in uplink[{j}]",
                    u.port
                ));
            }
            if overlap(&u.address, &o.address) {
                p.push(format!(
                    "{key}.address: {} overlaps uplink[{j}]'s subnet {} (port {:?}): a remote in both would have two ways out",
                    u.address, o.address, o.port
                ));
            }
            for r in &u.routes {
                if o.routes.iter().any(|x| x.prefix == r.prefix) {
                    p.push(format!(
                        "{key}.routes: {} is routed by uplink[{j}] (port {:?}) too: which one is ambiguous",
                        r.prefix, o.port
                    ));
                }
            }
        }
    }
    for port in uplink_ports {
        if !named.iter().any(|n| n == port) {
            p.push(format!(
                "port {port:?}: an uplink port needs its addressing: [[uplink]] with port = {port:?} and address = \"ADDRESS/LEN\""
            ));
        }
    }
}

/// `[[neighbor]]`: a neighbour's MAC fixed by the operator: no ARP/ND for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// The uplink it is on, by index into `Config::uplinks`: `uplink =
    /// "<port>"`, else the uplink whose subnet holds it, else the only one.
    pub uplink: usize,
}

impl NeighborConfig {
    /// The typed entries; each bad one is a problem in `p`.
    pub(super) fn check(
        raw: Vec<RawNeighbor>,
        uplinks: &[UplinkConfig],
        p: &mut Vec<String>,
    ) -> Vec<NeighborConfig> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, n) in raw.into_iter().enumerate() {
            let key = format!("neighbor[{i}]");
            let mac = parse_mac(&n.mac);
            if mac.is_none() {
                p.push(format!("{key}.mac: {:?} is not a MAC address", n.mac));
            }
            let uplink = match &n.uplink {
                Some(name) => {
                    let at = uplinks.iter().position(|u| &u.port == name);
                    if at.is_none() {
                        p.push(format!(
                            "{key}.uplink: {name:?} is not an uplink port with [[uplink]] addressing"
                        ));
                    }
                    at
                }
                None => {
                    let at = uplinks
                        .iter()
                        .position(|u| contains(&u.address, n.ip))
                        .or_else(|| (uplinks.len() == 1).then_some(0));
                    if uplinks.is_empty() {
                        p.push(format!(
                            "{key}: the appliance has no uplink for it to be on"
                        ));
                    } else if at.is_none() {
                        p.push(format!(
                            "{key}: {} is on no uplink's subnet: name its uplink (uplink = \"<port>\")",
                            n.ip
                        ));
                    }
                    at
                }
            };
            if let (Some(mac), Some(uplink)) = (mac, uplink) {
                out.push(NeighborConfig {
                    ip: n.ip,
                    mac,
                    uplink,
                });
            }
        }
        out
    }
}

/// Which uplink a tunnel's remote leaves by, and its next hop there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Index into `Config::uplinks` (the workers' uplink TX lanes).
    pub uplink: u16,
    /// The address whose MAC the tunnel's packets go to: the remote itself
    /// when it is on the uplink's subnet (or a fixed neighbour), else a
    /// static route's next hop or the gateway.
    pub next_hop: IpAddr,
}

/// The appliance's routes to tunnel remotes: every uplink's subnet,
/// static routes and gateway, and the fixed neighbours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    uplinks: Vec<UplinkConfig>,
    neighbors: Vec<NeighborConfig>,
}

impl Routes {
    pub fn new(uplinks: &[UplinkConfig], neighbors: &[NeighborConfig]) -> Routes {
        Routes {
            uplinks: uplinks.to_vec(),
            neighbors: neighbors.to_vec(),
        }
    }

    /// The uplink and next hop for `remote`: a fixed neighbour of that
    /// address, else the uplink whose subnet holds it, else the longest
    /// static route, else the first uplink (config order) with a gateway
    /// of its family. `None`: no uplink reaches it.
    pub fn route(&self, remote: IpAddr) -> Option<Route> {
        let at = |i: usize, next_hop| {
            Some(Route {
                uplink: u16::try_from(i).ok()?,
                next_hop,
            })
        };
        if let Some(n) = self.neighbors.iter().find(|n| n.ip == remote) {
            return at(n.uplink, remote);
        }
        if let Some(i) = self
            .uplinks
            .iter()
            .position(|u| contains(&u.address, remote))
        {
            return at(i, remote);
        }
        let longest = self
            .uplinks
            .iter()
            .enumerate()
            .flat_map(|(i, u)| u.routes.iter().map(move |r| (i, r)))
            .filter(|(_, r)| contains(&r.prefix, remote))
            .max_by_key(|(i, r)| (r.prefix.len, std::cmp::Reverse(*i)));
        if let Some((i, r)) = longest {
            return at(i, r.via);
        }
        self.uplinks.iter().enumerate().find_map(|(i, u)| {
            u.gateway
                .filter(|g| g.is_ipv4() == remote.is_ipv4())
                .and_then(|g| at(i, g))
        })
    }

    /// The uplinks' names (their ports), by index.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.uplinks.iter().map(|u| u.port.as_str())
    }

    /// Whether the appliance has no uplink.
    pub fn is_empty(&self) -> bool {
        self.uplinks.is_empty()
    }
}
