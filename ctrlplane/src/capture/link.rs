//! Link types (pcap-linktype(7)) and the conversion of the IP link types
//! Sluice carries into Ethernet frames.
//!
//! The pipeline works on Ethernet frames. A Linux cooked capture (SLL,
//! SLL2), raw IP (RAW, IPV4, IPV6) or BSD loopback (NULL, LOOP) capture
//! holds IP packets that a broker can carry all the same: each gets an
//! Ethernet header. Cooked captures give the sender's MAC and the packet's
//! protocol; where no MAC is known the fixed, locally administered
//! [`SRC_MAC`] and [`DST_MAC`] stand in (a broadcast or multicast packet
//! gets its group address, as on the wire).

/// Source MAC of converted frames whose capture has none.
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of converted frames sent to a single host.
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

pub const ETHERNET: u16 = 1;
pub const NULL: u16 = 0;
/// DLT_RAW as Linux numbers it; files from Linux carry it as well as 101.
pub const RAW_DLT12: u16 = 12;
pub const RAW: u16 = 101;
pub const LOOP: u16 = 108;
pub const LINUX_SLL: u16 = 113;
pub const IPV4: u16 = 228;
pub const IPV6: u16 = 229;
pub const LINUX_SLL2: u16 = 276;

use dataplane::wire::ethernet::ethertype::{IPV4 as ETH_IPV4, IPV6 as ETH_IPV6};
const ARPHRD_NETLINK: u16 = 824;

/// Whether Sluice carries frames of this link type.
pub fn carried(link_type: u16) -> bool {
    matches!(
        link_type,
        ETHERNET | NULL | RAW_DLT12 | RAW | LOOP | LINUX_SLL | IPV4 | IPV6 | LINUX_SLL2
    )
}

/// The link types Sluice carries, by name, for messages.
pub const CARRIED: &str = "ETHERNET, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP";

/// The link type's name as pcap-linktype(7) spells it (without
/// `LINKTYPE_`), with its number.
pub fn name(link_type: u16) -> String {
    let n = match link_type {
        0 => "NULL",
        1 => "ETHERNET",
        3 => "AX25",
        6 => "IEEE802_5",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        12 => "RAW (Linux DLT_RAW)",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        114 => "LTALK",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        122 => "IP_OVER_FC",
        123 => "SUNATM",
        127 => "IEEE802_11_RADIOTAP",
        129 => "ARCNET_LINUX",
        138 => "APPLE_IP_OVER_IEEE1394",
        139 => "MTP2_WITH_PHDR",
        140 => "MTP2",
        141 => "MTP3",
        142 => "SCCP",
        143 => "DOCSIS",
        144 => "LINUX_IRDA",
        147..=162 => return format!("USER{} ({link_type})", link_type - 147),
        163 => "IEEE802_11_AVS",
        165 => "BACNET_MS_TP",
        166 => "PPP_PPPD",
        169 => "GPRS_LLC",
        177 => "LINUX_LAPD",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        197 => "ERF",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        202 => "AX25_KISS",
        203 => "LAPD",
        204 => "PPP_WITH_DIR",
        209 => "IPMB_LINUX",
        215 => "IEEE802_15_4_NONASK_PHY",
        220 => "USB_LINUX_MMAPPED",
        226 => "IPNET",
        227 => "CAN_SOCKETCAN",
        228 => "IPV4",
        229 => "IPV6",
        230 => "IEEE802_15_4_NOFCS",
        231 => "DBUS",
        235 => "DVB_CI",
        239 => "NFLOG",
        240 => "NETANALYZER",
        241 => "NETANALYZER_TRANSPARENT",
        242 => "IPOIB",
        243 => "MPEG_2_TS",
        247 => "INFINIBAND",
        248 => "SCTP",
        249 => "USBPCAP",
        251 => "BLUETOOTH_LE_LL",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        256 => "BLUETOOTH_LE_LL_WITH_PHDR",
        258 => "PKTAP",
        259 => "EPON",
        264 => "ISO_14443",
        266 => "USB_DARWIN",
        270 => "LORATAP",
        271 => "VSOCK",
        272 => "NORDIC_BLE",
        274 => "ETHERNET_MPACKET",
        276 => "LINUX_SLL2",
        281 => "DSA_TAG_BRCM",
        283 => "IEEE802_15_4_TAP",
        284 => "DSA_TAG_DSA",
        285 => "DSA_TAG_EDSA",
        _ => return format!("{link_type} (not a link type Sluice knows)"),
    };
    format!("{n} ({link_type})")
}

/// Why a frame cannot be carried as Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconvertible {
    /// The link header is cut short.
    Short,
    /// Not IP nor anything with an EtherType: netlink, CAN, an unknown
    /// address family or IP version.
    NotIp,
}

/// Appends the Ethernet frame for `data` (a frame of `link_type`, FCS
/// already removed) to `out`; Ethernet frames are copied as they are.
pub fn to_ethernet(link_type: u16, data: &[u8], out: &mut Vec<u8>) -> Result<(), Unconvertible> {
    match link_type {
        ETHERNET => {
            out.extend_from_slice(data);
            Ok(())
        }
        RAW | RAW_DLT12 => {
            let ethertype = ip_ethertype(data).ok_or(Unconvertible::NotIp)?;
            ethernet(out, DST_MAC, SRC_MAC, ethertype, data);
            Ok(())
        }
        IPV4 => {
            ethernet(out, DST_MAC, SRC_MAC, ETH_IPV4, data);
            Ok(())
        }
        IPV6 => {
            ethernet(out, DST_MAC, SRC_MAC, ETH_IPV6, data);
            Ok(())
        }
        NULL | LOOP => {
            let h: [u8; 4] = data
                .get(..4)
                .and_then(|h| h.try_into().ok())
                .ok_or(Unconvertible::Short)?;
            // LOOP's family is in network byte order; NULL's in the
            // capturing host's, which the file does not say: either.
            let family = if link_type == LOOP {
                u32::from_be_bytes(h)
            } else if u32::from_le_bytes(h) < 0x1_0000 {
                u32::from_le_bytes(h)
            } else {
                u32::from_be_bytes(h)
            };
            let ethertype = match family {
                2 => ETH_IPV4,
                // AF_INET6 of Linux, the BSDs, FreeBSD and Darwin.
                10 | 24 | 28 | 30 => ETH_IPV6,
                _ => return Err(Unconvertible::NotIp),
            };
            ethernet(out, DST_MAC, SRC_MAC, ethertype, &data[4..]);
            Ok(())
        }
        LINUX_SLL => {
            if data.len() < 16 {
                return Err(Unconvertible::Short);
            }
            let cooked = Cooked {
                packet_type: be16(data, 0),
                hatype: be16(data, 2),
                halen: be16(data, 4),
                addr: &data[6..14],
                protocol: be16(data, 14),
            };
            cooked.to_ethernet(&data[16..], out)
        }
        LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(Unconvertible::Short);
            }
            let cooked = Cooked {
                protocol: be16(data, 0),
                hatype: be16(data, 8),
                packet_type: u16::from(data[10]),
                halen: u16::from(data[11]),
                addr: &data[12..20],
            };
            cooked.to_ethernet(&data[20..], out)
        }
        _ => Err(Unconvertible::NotIp),
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ethernet(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) {
    out.reserve(14 + payload.len());
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The EtherType for a raw IP packet, from its version nibble.
fn ip_ethertype(packet: &[u8]) -> Option<u16> {
    match packet.first()? >> 4 {
        4 => Some(ETH_IPV4),
        6 => Some(ETH_IPV6),
        _ => None,
    }
}

/// A Linux cooked header's fields (SLL and SLL2 order them differently).
struct Cooked<'a> {
    /// 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us.
    packet_type: u16,
    /// ARPHRD_ type of the interface.
    hatype: u16,
    halen: u16,
    addr: &'a [u8],
    protocol: u16,
}

impl Cooked<'_> {
    fn to_ethernet(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Unconvertible> {
        if self.hatype == ARPHRD_NETLINK {
            return Err(Unconvertible::NotIp);
        }
        let src = match self.addr.get(..6) {
            Some(a) if self.halen == 6 => [a[0], a[1], a[2], a[3], a[4], a[5]],
            _ => SRC_MAC,
        };
        let dst = match self.packet_type {
            1 => [0xff; 6],
            2 => multicast_mac(self.protocol, payload).unwrap_or(DST_MAC),
            _ => DST_MAC,
        };
        match self.protocol {
            // Novell raw 802.3 and 802.2 LLC: an 802.3 frame, with its length.
            0x0001 | 0x0004 => {
                let len = u16::try_from(payload.len()).map_err(|_| Unconvertible::NotIp)?;
                ethernet(out, dst, src, len, payload);
                Ok(())
            }
            p if p >= 0x0600 => {
                ethernet(out, dst, src, p, payload);
                Ok(())
            }
            // CAN, ETH_P_ALL and the other Linux pseudo protocols.
            _ => Err(Unconvertible::NotIp),
        }
    }
}

/// The group MAC of an IPv4 or IPv6 multicast packet (RFC 1112, RFC 2464).
fn multicast_mac(protocol: u16, packet: &[u8]) -> Option<[u8; 6]> {
    match protocol {
        ETH_IPV4 => {
            let d = packet.get(16..20)?;
            Some([0x01, 0x00, 0x5e, d[1] & 0x7f, d[2], d[3]])
        }
        ETH_IPV6 => {
            let d = packet.get(36..40)?;
            Some([0x33, 0x33, d[0], d[1], d[2], d[3]])
        }
        _ => None,
    }
}
