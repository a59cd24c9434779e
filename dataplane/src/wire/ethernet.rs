//! Ethernet II header: destination, source, EtherType.

use super::bytes::{bytes_at, range, range_mut, set_bytes, set_u16, u16_at};
use super::{Error, Result};
use core::fmt;

/// Bytes in an Ethernet II header (no FCS, no tags).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Where each header field starts (smoltcp's `mod field`).
pub mod field {
    pub const DESTINATION: usize = 0;
    pub const SOURCE: usize = 6;
    pub const ETHERTYPE: usize = 12;
    /// First byte after the header.
    pub const PAYLOAD: usize = 14;
}

/// EtherType numbers, and the GRE protocol types that share their space, as
/// plain numbers: what the per-packet code matches on, and what
/// [`EtherType`] converts through. The one place these numbers are written.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag (C-TAG).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-TAG).
    pub const SERVICE_VLAN: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ: u16 = 0x9100;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const LLDP: u16 = 0x88cc;
    /// Transparent Ethernet Bridging: L2GRE payload.
    pub const TEB: u16 = 0x6558;
    /// ERSPAN type II (GRE protocol).
    pub const ERSPAN_II: u16 = 0x88be;
    /// ERSPAN type III (GRE protocol).
    pub const ERSPAN_III: u16 = 0x22eb;
}

/// EtherType values, and the GRE protocol types that share their space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// 802.1Q customer tag (C-TAG).
    Vlan,
    /// 802.1ad service tag (S-TAG).
    ServiceVlan,
    /// Pre-standard QinQ outer tag.
    QinQ,
    MplsUnicast,
    MplsMulticast,
    Lldp,
    /// Transparent Ethernet Bridging: L2GRE payload.
    Teb,
    /// ERSPAN type II (GRE protocol).
    ErspanII,
    /// ERSPAN type III (GRE protocol).
    ErspanIII,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(n: u16) -> Self {
        match n {
            ethertype::IPV4 => Self::Ipv4,
            ethertype::ARP => Self::Arp,
            ethertype::IPV6 => Self::Ipv6,
            ethertype::VLAN => Self::Vlan,
            ethertype::SERVICE_VLAN => Self::ServiceVlan,
            ethertype::QINQ => Self::QinQ,
            ethertype::MPLS_UNICAST => Self::MplsUnicast,
            ethertype::MPLS_MULTICAST => Self::MplsMulticast,
            ethertype::LLDP => Self::Lldp,
            ethertype::TEB => Self::Teb,
            ethertype::ERSPAN_II => Self::ErspanII,
            ethertype::ERSPAN_III => Self::ErspanIII,
            n => Self::Unknown(n),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => ethertype::IPV4,
            EtherType::Arp => ethertype::ARP,
            EtherType::Ipv6 => ethertype::IPV6,
            EtherType::Vlan => ethertype::VLAN,
            EtherType::ServiceVlan => ethertype::SERVICE_VLAN,
            EtherType::QinQ => ethertype::QINQ,
            EtherType::MplsUnicast => ethertype::MPLS_UNICAST,
            EtherType::MplsMulticast => ethertype::MPLS_MULTICAST,
            EtherType::Lldp => ethertype::LLDP,
            EtherType::Teb => ethertype::TEB,
            EtherType::ErspanII => ethertype::ERSPAN_II,
            EtherType::ErspanIII => ethertype::ERSPAN_III,
            EtherType::Unknown(n) => n,
        }
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl Address {
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The first six bytes of `b`, if there are six.
    pub fn from_bytes(b: &[u8]) -> Option<Address> {
        match b.get(..6) {
            Some(&[a, b, c, d, e, f]) => Some(Address([a, b, c, d, e, f])),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Locally administered bit set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` when the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> Address {
        Address(bytes_at(self.buffer.as_ref(), field::DESTINATION))
    }

    pub fn src_addr(&self) -> Address {
        Address(bytes_at(self.buffer.as_ref(), field::SOURCE))
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header (VLAN tags included, if any).
    pub fn payload(&self) -> &[u8] {
        range(self.buffer.as_ref(), HEADER_LEN, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_dst_addr(&mut self, a: Address) {
        set_bytes(self.buffer.as_mut(), field::DESTINATION, &a.0);
    }

    pub fn set_src_addr(&mut self, a: Address) {
        set_bytes(self.buffer.as_mut(), field::SOURCE, &a.0);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        range_mut(self.buffer.as_mut(), HEADER_LEN, usize::MAX)
    }
}

/// An Ethernet II header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            ethertype: p.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; a buffer shorter than the header gets nothing
    /// past its end (use [`Repr::emit_to`] to be told).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_dst_addr(self.dst_addr);
        p.set_src_addr(self.src_addr);
        p.set_ethertype(self.ethertype);
    }

    /// Writes the header at the front of `buf` and returns its length.
    pub fn emit_to(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        self.emit(&mut Packet::new_unchecked(buf));
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x86, 0xdd, 0x60,
        0x00,
    ];

    #[test]
    fn reads_fields() {
        let p = Packet::new_checked(&FRAME[..]).unwrap();
        assert_eq!(p.dst_addr(), Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(p.src_addr().to_string(), "02:aa:bb:cc:dd:ee");
        assert!(p.src_addr().is_local());
        assert!(!p.dst_addr().is_multicast());
        assert_eq!(p.ethertype(), EtherType::Ipv6);
        assert_eq!(p.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn short_buffers_are_truncated_and_never_panic() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&FRAME[..n]), Err(Error::Truncated));
            let p = Packet::new_unchecked(&FRAME[..n]);
            let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload());
            let mut buf = FRAME[..n].to_vec();
            let r = Repr::parse(&Packet::new_unchecked(&FRAME[..])).unwrap();
            assert_eq!(r.emit_to(&mut buf), Err(Error::Truncated));
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        }
        assert_eq!(
            Packet::new_unchecked(&FRAME[..13]).ethertype(),
            EtherType::Unknown(0)
        );
    }

    #[test]
    fn ethertypes_round_trip() {
        for n in 0..=u16::MAX {
            assert_eq!(u16::from(EtherType::from(n)), n);
        }
        assert_eq!(EtherType::from(0x88a8), EtherType::ServiceVlan);
    }

    fn repr() -> impl Strategy<Value = Repr> {
        (any::<[u8; 6]>(), any::<[u8; 6]>(), any::<u16>()).prop_map(|(s, d, t)| Repr {
            src_addr: Address(s),
            dst_addr: Address(d),
            ethertype: EtherType::from(t),
        })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = vec![0u8; HEADER_LEN + tail.len()];
            buf[HEADER_LEN..].copy_from_slice(&tail);
            prop_assert_eq!(r.emit_to(&mut buf), Ok(HEADER_LEN));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload(), &tail[..]);
        }
    }
}
