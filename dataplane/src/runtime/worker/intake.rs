//! Flow telemetry arriving on the uplink: UDP to one of the uplink's
//! addresses on an intake port goes, as it came, on a ring to the intake
//! thread, which decodes it (sFlow, NetFlow, IPFIX). The worker only
//! classifies; decoding stays off its path.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dpdk::{Mbuf, Ring};
use crate::stage::parse::{parse, Fragment};
use crate::wire::ip_proto;

/// What the intake takes from the uplink, and where it goes.
pub struct IntakeTap {
    /// The uplink's own addresses.
    pub addrs: Vec<IpAddr>,
    /// UDP destination ports taken in (0: unused).
    pub ports: [u16; 2],
    pub ring: Arc<Ring<Mbuf>>,
}

impl IntakeTap {
    /// Whether `frame` is UDP to one of our addresses on an intake port
    /// (a whole datagram: a fragment cannot be decoded alone).
    pub fn wants(&self, frame: &[u8]) -> bool {
        wants(frame, &self.addrs, self.ports)
    }
}

/// `IntakeTap::wants` without the ring, for tests.
pub fn wants(frame: &[u8], addrs: &[IpAddr], ports: [u16; 2]) -> bool {
    let l = parse(frame);
    l.l4_proto == ip_proto::UDP
        && l.l4_offset != 0
        && l.error.is_none()
        && l.dst_port != 0
        && ports.contains(&l.dst_port)
        && l.dst_ip().is_some_and(|a| addrs.contains(&a))
        && l.fragment == Fragment::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp(dst: [u8; 4], port: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 9], dst, 64)
            .udp(40000, port);
        let mut out = Vec::new();
        b.write(&mut out, &[0u8; 40]).unwrap();
        out
    }

    #[test]
    fn takes_udp_to_our_address_on_an_intake_port_only() {
        let ours: IpAddr = "192.0.2.1".parse().unwrap();
        let ports = [6343, 2055];
        assert!(wants(&udp([192, 0, 2, 1], 6343), &[ours], ports));
        assert!(wants(&udp([192, 0, 2, 1], 2055), &[ours], ports));
        assert!(!wants(&udp([192, 0, 2, 1], 4789), &[ours], ports));
        assert!(!wants(&udp([192, 0, 2, 7], 2055), &[ours], ports));
        assert!(!wants(&udp([192, 0, 2, 1], 0), &[ours], [0, 2055]));
    }
}
