//! ARP for Ethernet and IPv4 (RFC 826): the only hardware/protocol pair an
//! uplink resolves.

use std::net::Ipv4Addr;

use super::bytes::{bytes_at, set_bytes, set_u16, set_u8, u16_at, u8_at};
use super::ethernet::{ethertype, Address};
use super::{Error, Result};

/// Where each field starts (smoltcp's `mod field`). The fixed part ends at
/// `SENDER_HW`; the addresses' offsets are those of Ethernet/IPv4 ARP.
pub mod field {
    pub const HARDWARE_TYPE: usize = 0;
    pub const PROTOCOL_TYPE: usize = 2;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: usize = 6;
    /// First address; also the length of the fixed part.
    pub const SENDER_HW: usize = 8;
    pub const SENDER_IP: usize = 14;
    pub const TARGET_HW: usize = 18;
    pub const TARGET_IP: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = packet_len(6, 4);
/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// Length of an ARP packet whose fixed part says `hardware_len` /
/// `protocol_len` bytes per address: the fixed part and four addresses.
#[inline(always)]
pub const fn packet_len(hardware_len: u8, protocol_len: u8) -> usize {
    field::SENDER_HW + 2 * (hardware_len as usize + protocol_len as usize)
}

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

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn hardware_type(&self) -> u16 {
        u16_at(self.b(), field::HARDWARE_TYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        u16_at(self.b(), field::PROTOCOL_TYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        u8_at(self.b(), field::HARDWARE_LEN)
    }

    pub fn protocol_len(&self) -> u8 {
        u8_at(self.b(), field::PROTOCOL_LEN)
    }

    pub fn operation(&self) -> Operation {
        u16_at(self.b(), field::OPERATION).into()
    }

    pub fn sender_hw(&self) -> Address {
        Address(bytes_at(self.b(), field::SENDER_HW))
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes_at::<4>(self.b(), field::SENDER_IP))
    }

    pub fn target_hw(&self) -> Address {
        Address(bytes_at(self.b(), field::TARGET_HW))
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes_at::<4>(self.b(), field::TARGET_IP))
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
    /// Parses a packet; anything but Ethernet / IPv4 with 6/4
    /// address lengths is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if p.hardware_type() != HARDWARE_ETHERNET
            || p.protocol_type() != ethertype::IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
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
        set_u16(b, field::HARDWARE_TYPE, HARDWARE_ETHERNET);
        set_u16(b, field::PROTOCOL_TYPE, ethertype::IPV4);
        set_u8(b, field::HARDWARE_LEN, 6);
        set_u8(b, field::PROTOCOL_LEN, 4);
        set_u16(b, field::OPERATION, self.operation.into());
        set_bytes(b, field::SENDER_HW, &self.sender_hw.0);
        set_bytes(b, field::SENDER_IP, &self.sender_ip.octets());
        set_bytes(b, field::TARGET_HW, &self.target_hw.0);
        set_bytes(b, field::TARGET_IP, &self.target_ip.octets());
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
