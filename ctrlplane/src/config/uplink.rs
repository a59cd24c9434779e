//! `[uplink]` and `[[neighbor]]`: the appliance's addressing on the port
//! its tunnels leave by, and neighbours whose MAC the operator fixes.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::raw::{RawNeighbor, RawUplink};
use super::values::{parse_cidr, parse_mac, Cidr, MacAddr};

/// `[uplink]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    /// The appliance's address on the uplink, with prefix length: `192.0.2.1/24`.
    pub address: Cidr,
    /// Next hop for destinations outside the uplink's subnet (same family
    /// as `address`).
    pub gateway: Option<IpAddr>,
    /// Source MAC of tunnels; default: the uplink port's own.
    pub mac: Option<MacAddr>,
    /// Largest outer IP packet; encapsulated packets never exceed it.
    pub mtu: u16,
    /// Between next-hop re-resolutions (`arp_refresh_s`).
    pub arp_refresh: Duration,
}

impl UplinkConfig {
    /// The typed section, or `None` with its problems added to `p`.
    pub(super) fn check(raw: RawUplink, p: &mut Vec<String>) -> Option<UplinkConfig> {
        let before = p.len();
        let address = parse_cidr(&raw.address);
        match address {
            None => p.push(format!(
                "uplink.address: {:?} is not an address with prefix length such as 192.0.2.1/24",
                raw.address
            )),
            Some(Cidr { addr, .. }) => {
                if let Some(gw) = raw.gateway {
                    if gw.is_ipv4() != addr.is_ipv4() {
                        p.push(format!(
                            "uplink.gateway: {gw} is not of the address family of uplink.address"
                        ));
                    }
                }
                if addr.is_unspecified() || addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
                    p.push(format!(
                        "uplink.address: {addr} cannot be an interface address"
                    ));
                }
            }
        }
        let mac = match &raw.mac {
            None => None,
            Some(text) => {
                let mac = parse_mac(text);
                if mac.is_none() {
                    p.push(format!("uplink.mac: {text:?} is not a MAC address"));
                }
                mac
            }
        };
        if !(576..=9600).contains(&raw.mtu) {
            p.push(format!("uplink.mtu: {} is outside 576..=9600", raw.mtu));
        }
        if raw.arp_refresh_s == 0 {
            p.push("uplink.arp_refresh_s: must be at least 1".into());
        }
        let address = address.filter(|_| p.len() == before)?;
        Some(UplinkConfig {
            address,
            gateway: raw.gateway,
            mac,
            mtu: raw.mtu,
            arp_refresh: Duration::from_secs(u64::from(raw.arp_refresh_s)),
        })
    }
}

/// `[[neighbor]]`: a neighbour's MAC fixed by the operator: no ARP/ND for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub ip: IpAddr,
    pub mac: MacAddr,
}

impl NeighborConfig {
    /// The typed entries; each bad one is a problem in `p`.
    pub(super) fn check(raw: Vec<RawNeighbor>, p: &mut Vec<String>) -> Vec<NeighborConfig> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, n) in raw.into_iter().enumerate() {
            match parse_mac(&n.mac) {
                Some(mac) => out.push(NeighborConfig { ip: n.ip, mac }),
                None => p.push(format!(
                    "neighbor[{i}].mac: {:?} is not a MAC address",
                    n.mac
                )),
            }
        }
        out
    }
}
