//! parse: where every layer of a frame starts, in one pass.

/// What `parse` found in a frame. Offsets are from the start of the frame.
/// A field the frame does not have is zero / `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// Number of 802.1Q/802.1ad/QinQ tags (0x8100, 0x88a8, 0x9100).
    pub vlan_count: u8,
    /// VLAN ID of the outermost tag.
    pub outer_vlan: Option<u16>,
    /// VLAN ID of the second tag (QinQ inner).
    pub inner_vlan: Option<u16>,
    /// EtherType after all VLAN tags (0x8847/0x8848 for MPLS).
    pub ethertype: u16,
    /// Number of MPLS labels before the payload.
    pub mpls_labels: u8,
    /// Start of the IP header, 0 when there is none.
    pub l3_offset: u16,
    /// 4, 6, or 0 when the frame carries no IP.
    pub ip_version: u8,
    /// Transport protocol after IPv6 extension headers (IP protocol number).
    pub l4_proto: u8,
    /// Start of the transport header, 0 when there is none.
    pub l4_offset: u16,
    /// First byte after every header parse understood (L4 payload).
    pub payload_offset: u16,
    /// Source address: IPv4 in the low 32 bits, IPv6 as 128 bits.
    pub src_addr: u128,
    /// Destination address, same encoding as `src_addr`.
    pub dst_addr: u128,
    /// TCP/UDP/SCTP source port, 0 otherwise.
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port, 0 otherwise.
    pub dst_port: u16,
    /// TCP flags byte (CWR..FIN), 0 for non-TCP.
    pub tcp_flags: u8,
    /// IPv4 MF/offset or IPv6 fragment header seen.
    pub fragment: Fragment,
    /// The frame is malformed or truncated somewhere parse looked.
    pub error: Option<ParseError>,
}

/// Fragment state of the IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment.
    #[default]
    None,
    /// First fragment: offset 0, more fragments follow; L4 header present.
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// What was wrong with a frame. Parsing stops there; offsets found so far stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than an Ethernet header.
    TruncatedL2,
    /// More VLAN tags than parse follows, or a tag cut short.
    BadVlan,
    /// MPLS stack without bottom-of-stack, or cut short.
    BadMpls,
    /// IP header shorter than its minimum, bad version, or lengths that lie.
    BadL3,
    /// IPv6 extension-header chain that runs off the end or is too long.
    BadExtHeader,
    /// Transport header cut short.
    TruncatedL4,
}
