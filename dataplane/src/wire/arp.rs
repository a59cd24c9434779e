//! ARP for Ethernet and IPv4 (RFC 826): the only hardware/protocol pair an
//! uplink resolves.

use std::net::Ipv4Addr;

use super::ethernet::Address;
use super::{Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            n => Operation::Unknown(n),
        }
    }
}

impl From<Operation> for u16 {
    fn from(o: Operation) -> u16 {
        match o {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(n) => n,
        }
    }
}

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds a whole Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(0)
    }

    pub fn protocol_type(&self) -> u16 {
        self.u16_at(2)
    }

    pub fn operation(&self) -> Operation {
        self.u16_at(6).into()
    }

    pub fn sender_hw(&self) -> Address {
        let b = self.buffer.as_ref();
        Address([b[8], b[9], b[10], b[11], b[12], b[13]])
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }

    pub fn target_hw(&self) -> Address {
        let b = self.buffer.as_ref();
        Address([b[18], b[19], b[20], b[21], b[22], b[23]])
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// An Ethernet/IPv4 ARP packet's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_hw: Address,
    pub sender_ip: Ipv4Addr,
    pub target_hw: Address,
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Parses a packet; anything but Ethernet (1) / IPv4 (0x0800) with 6/4
    /// address lengths is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let b = p.buffer.as_ref();
        if p.hardware_type() != 1 || p.protocol_type() != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            operation: p.operation(),
            sender_hw: p.sender_hw(),
            sender_ip: p.sender_ip(),
            target_hw: p.target_hw(),
            target_ip: p.target_ip(),
        })
    }

    /// Writes the packet into the first [`PACKET_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = buf.get_mut(..PACKET_LEN).ok_or(Error::Truncated)?;
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_hw.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_hw.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse_round_trips_and_short_input_is_refused() {
        let r = Repr {
            operation: Operation::Request,
            sender_hw: Address([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_hw: Address([0; 6]),
            target_ip: Ipv4Addr::new(192, 0, 2, 9),
        };
        let mut buf = [0u8; PACKET_LEN];
        r.emit(&mut buf).expect("room");
        let p = Packet::new_checked(&buf[..]).expect("whole");
        assert_eq!(Repr::parse(&p), Ok(r));
        assert!(Packet::new_checked(&buf[..27]).is_err());
        buf[5] = 16; // IPv6-sized protocol address: not ours
        let p = Packet::new_checked(&buf[..]).expect("whole");
        assert_eq!(Repr::parse(&p), Err(Error::Malformed));
    }
}
