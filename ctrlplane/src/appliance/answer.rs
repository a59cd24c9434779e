//! A decap input's own address: switches sending ERSPAN or VXLAN to the
//! appliance resolve it by ARP (or IPv6 neighbour discovery) first, so the
//! main lcore answers for it on that port, as it does for each uplink's.
//! The workers divert the port's ARP/ND frames to the exception ring.

use std::net::IpAddr;
use std::time::Duration;

use dataplane::dpdk::{Batch, Mbuf, Mempool, Port, TxQueue};

use crate::config::PortConfig;
use crate::log::log;
use crate::neighbor::{Neighbors, Uplink};

/// Answers ARP/ND for one decap input's address, on that port.
pub struct Answerer {
    pub port: u16,
    pub name: String,
    pub addr: IpAddr,
    pub mac: [u8; 6],
    /// Only answers: it learns no neighbour (it wants none).
    neighbors: Neighbors,
    /// The port's TX queue 0: no worker sends on an input.
    txq: TxQueue,
    pub answered: u64,
}

impl Answerer {
    /// The answerer for `port`, if its config gives it an address.
    pub fn for_port(pc: &PortConfig, port: &Port) -> Result<Option<Answerer>, String> {
        let Some(addr) = pc.address else {
            return Ok(None);
        };
        let mac = port.mac().map_err(|e| format!("port {:?}: {e}", pc.name))?;
        let txq = port.tx_queue(0).map_err(|e| {
            format!(
                "port {:?}: address {addr} needs a device that can send ARP/ND replies: {e}",
                pc.name
            )
        })?;
        let neighbors = Neighbors::new(
            Uplink {
                mac,
                addr,
                refresh: Duration::from_secs(30),
            },
            &[],
        );
        Ok(Some(Answerer {
            port: port.id(),
            name: pc.name.clone(),
            addr,
            mac,
            neighbors,
            txq,
            answered: 0,
        }))
    }

    /// Answers `frame` if it asks for our address.
    pub fn handle(&mut self, frame: &[u8], now_ms: u64, pool: &Mempool) {
        let (reply, _) = self.neighbors.handle(frame, now_ms);
        let Some(reply) = reply else { return };
        let m = match Mbuf::from_bytes(pool, &reply) {
            Ok(m) => m,
            Err(e) => {
                log(format!(
                    "port {:?}: no mbuf for an ARP/ND reply: {e}",
                    self.name
                ));
                return;
            }
        };
        let mut b: Batch<1> = Batch::new();
        if b.push(m).is_err() {
            return;
        }
        if self.txq.tx(&mut b) == 1 {
            self.answered += 1;
        } else {
            log(format!(
                "port {:?}: TX queue full, an ARP/ND reply was not sent",
                self.name
            ));
        }
    }
}

/// The answerers of every port whose config gives it an address.
pub fn for_ports(ports: &[(PortConfig, Port)]) -> Result<Vec<Answerer>, String> {
    let mut answerers = Vec::new();
    for (pc, p) in ports {
        if let Some(a) = Answerer::for_port(pc, p)? {
            log(format!(
                "port {} {:?}: answers ARP/ND for {}",
                a.port, a.name, a.addr
            ));
            answerers.push(a);
        }
    }
    Ok(answerers)
}

/// Whether an exception frame came in on a port with an answerer.
pub fn find<'a>(answerers: &'a mut [Answerer], m: &Mbuf) -> Option<&'a mut Answerer> {
    answerers.iter_mut().find(|a| a.port == m.port())
}
