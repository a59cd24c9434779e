//! tag: where a packet came from, as the tunnel header will carry it.
//!
//! The one place that decides which [`TagInfo`] field goes into which
//! standard header field, per tunnel (DESIGN §4 "tag"):
//!
//! | tunnel | field | value |
//! |---|---|---|
//! | VXLAN, Geneve | VNI (24 bits) | the rule's tag override, else the destination's VNI |
//! | L2GRE | key (32 bits) | the rule's tag override, else the destination's key |
//! | ERSPAN II/III | session ID (10 bits) | the rule's tag override, else the destination's session |
//! | ERSPAN II | index (20 bits) | input port |
//! | ERSPAN III | hardware ID (6 bits) | the destination's `hw_id` if configured, else the appliance ID's low 6 bits |
//! | ERSPAN III | D bit | direction (0 ingress, 1 egress) |
//! | ERSPAN III | platform sub-header ID 3 port index (14 bits) | input port (when the sub-header is sent) |
//! | VXLAN extended (opt-in) | bytes 1–3 | per-destination sequence number |
//! | VXLAN extended (opt-in) | byte 7 bit 0 | direction |
//!
//! Overrides wider than their field are cut to its width: policy validation
//! (control plane) is where an out-of-range tag is refused. `rule_id` is not
//! put on the wire: a rule that must be told apart gets its own tag override.

use crate::stage::Direction;
use crate::wire::bytes::{set_u16, set_u32, u16_at, u32_at};
use crate::wire::{erspan, vxlan};

/// The per-packet facts a tunnel header carries about the packet's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagInfo {
    /// This appliance's ID (ERSPAN III hardware ID is its low 6 bits).
    pub appliance_id: u16,
    /// Input port the packet arrived on.
    pub input_port: u16,
    /// Rule (policy entry) that matched.
    pub rule_id: u32,
    pub direction: Direction,
}

/// Width of a VXLAN/Geneve VNI.
pub const VNI_MASK: u32 = 0x00ff_ffff;
/// Width of an ERSPAN session ID.
pub const SESSION_MASK: u32 = 0x03ff;
/// Width of an ERSPAN type II index.
pub const INDEX_MASK: u32 = 0x000f_ffff;
/// Width of an ERSPAN type III hardware ID.
pub const HW_ID_MASK: u8 = 0x3f;
/// Width of the port index in ERSPAN III platform sub-header ID 3.
pub const PORT_INDEX_MASK: u16 = 0x3fff;
/// Width of the VXLAN extended sequence number.
pub const VXLAN_SEQ_MASK: u32 = 0x00ff_ffff;

impl TagInfo {
    pub fn egress(&self) -> bool {
        self.direction == Direction::Egress
    }
}

/// The VNI to send: the rule's override, else the destination's.
#[inline]
pub fn vni(dest_vni: u32, override_tag: Option<u32>) -> u32 {
    override_tag.unwrap_or(dest_vni) & VNI_MASK
}

/// The ERSPAN session ID to send: the rule's override, else the destination's.
#[inline]
pub fn session(dest_session: u16, override_tag: Option<u32>) -> u16 {
    (override_tag.unwrap_or(u32::from(dest_session)) & SESSION_MASK) as u16
}

/// The L2GRE key to send: the rule's override, else the destination's.
#[inline]
pub fn gre_key(dest_key: u32, override_tag: Option<u32>) -> u32 {
    override_tag.unwrap_or(dest_key)
}

/// ERSPAN II index: the input port.
#[inline]
pub fn erspan2_index(tag: &TagInfo) -> u32 {
    u32::from(tag.input_port) & INDEX_MASK
}

/// ERSPAN III hardware ID: the destination's if configured, else the
/// appliance's.
#[inline]
pub fn erspan3_hw_id(tag: &TagInfo, dest_hw_id: Option<u8>) -> u8 {
    dest_hw_id.unwrap_or(tag.appliance_id as u8) & HW_ID_MASK
}

/// ERSPAN III platform sub-header ID 3 port index: the input port.
#[inline]
pub fn erspan3_port_index(tag: &TagInfo) -> u16 {
    tag.input_port & PORT_INDEX_MASK
}

/// The constant bits of the ERSPAN words that change per packet, read once
/// from a destination's template header (starting at the ERSPAN header).
/// Per packet the words are composed from these and only written: reading
/// back bytes just copied into the frame stalls the CPU on store
/// forwarding, and reading the template again costs bounds checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErspanWords {
    /// `Ver | VLAN`.
    pub w0: u16,
    /// `COS | En/BSO | T | SessionID` with T and the session cleared.
    pub w2: u16,
    /// Type III `P | FT | HwID | D | Gra | O` with HwID and D cleared.
    pub w10: u16,
    /// Type III sub-header ID 3's first word with the port index cleared,
    /// when the template has that sub-header.
    pub platform: Option<u32>,
}

impl ErspanWords {
    pub fn from_header(h: &[u8]) -> ErspanWords {
        use erspan::{w10, w2};
        let p = erspan::Packet::new_unchecked(h);
        let platform = p
            .platform()
            .filter(|pl| pl.id == erspan::PLATFORM_ID_UPPER_TIMESTAMP)
            .map(|_| u32_at(h, erspan::TYPE_III_LEN) & !u32::from(PORT_INDEX_MASK));
        ErspanWords {
            w0: u16_at(h, 0),
            w2: u16_at(h, 2) & !(w2::T | w2::SESSION),
            w10: u16_at(h, 10) & !(w10::HW | w10::D),
            platform,
        }
    }
}

/// Writes the per-packet ERSPAN II fields — session, T bit, index, and the
/// mirrored frame's own VLAN when it had one (`En=3`: tag kept in the
/// frame) — into `out`, the ERSPAN header copied from the template whose
/// constant bits are `base`.
#[inline]
pub fn write_erspan2(
    base: &ErspanWords,
    out: &mut [u8],
    tag: &TagInfo,
    session: u16,
    truncated: bool,
    orig_vlan: Option<u16>,
) {
    use erspan::w2;
    let mut word2 = base.w2 | (session & w2::SESSION);
    if truncated {
        word2 |= w2::T;
    }
    if let Some(vid) = orig_vlan {
        word2 |= w2::EN;
        set_u16(out, 0, (base.w0 & 0xf000) | (vid & 0x0fff));
    }
    set_u16(out, 2, word2);
    set_u32(out, 4, erspan2_index(tag));
}

/// Writes the per-packet ERSPAN III fields — session, T bit, hardware ID,
/// D bit, the mirrored frame's VLAN, and the port index when the platform
/// sub-header (ID 3) is present — as [`write_erspan2`] does. The timestamp
/// is the encap stage's business (it owns the clock).
#[inline]
pub fn write_erspan3(
    base: &ErspanWords,
    out: &mut [u8],
    tag: &TagInfo,
    session: u16,
    truncated: bool,
    dest_hw_id: Option<u8>,
    orig_vlan: Option<u16>,
) {
    use erspan::{w10, w2};
    if let Some(vid) = orig_vlan {
        set_u16(out, 0, (base.w0 & 0xf000) | (vid & 0x0fff));
    }
    let mut word2 = base.w2 | (session & w2::SESSION);
    if truncated {
        word2 |= w2::T;
    }
    set_u16(out, 2, word2);
    let mut word10 = base.w10 | (u16::from(erspan3_hw_id(tag, dest_hw_id)) << 4);
    if tag.egress() {
        word10 |= w10::D;
    }
    set_u16(out, 10, word10);
    if let Some(w) = base.platform {
        set_u32(
            out,
            erspan::TYPE_III_LEN,
            w | u32::from(erspan3_port_index(tag)),
        );
    }
}

/// Writes a VXLAN header's per-packet fields. Standard mode (`extended`
/// `None`) leaves the reserved bits zero, as RFC 7348 and Linux require;
/// extended mode writes its flags byte, the sequence number and the
/// direction bit.
#[inline]
pub fn apply_vxlan(hdr: &mut [u8], tag: &TagInfo, vni: u32, extended: Option<VxlanExtended>) {
    let mut p = vxlan::Packet::new_unchecked(hdr);
    match extended {
        None => p.set_vni_reserved2(vni & VNI_MASK, 0),
        Some(x) => {
            p.set_flags_reserved1(x.flags, x.sequence & VXLAN_SEQ_MASK);
            let d = if tag.egress() { vxlan::EXT_EGRESS } else { 0 };
            p.set_vni_reserved2(vni & VNI_MASK, d);
        }
    }
}

/// The extended-mode VXLAN fields of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanExtended {
    /// Flags byte to send (configurable so a receiver can recognise the mode).
    pub flags: u8,
    /// The destination's sequence number for this packet (24 bits used).
    pub sequence: u32,
}

/// What a received tunnel header says about its packet's origin: the
/// reverse of the mapping above, for decap's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceivedTag {
    /// ERSPAN II index / ERSPAN III sub-header ID 3 port index.
    pub input_port: Option<u32>,
    /// ERSPAN III hardware ID.
    pub hw_id: Option<u8>,
    /// ERSPAN III D bit.
    pub direction: Option<Direction>,
}

/// Reads the origin fields of an ERSPAN II or III header.
pub fn read_erspan(r: &erspan::Repr) -> ReceivedTag {
    match r {
        erspan::Repr::TypeII(h) => ReceivedTag {
            input_port: Some(h.index),
            ..ReceivedTag::default()
        },
        erspan::Repr::TypeIII(h) => ReceivedTag {
            input_port: h
                .platform
                .filter(|p| p.id == erspan::PLATFORM_ID_UPPER_TIMESTAMP)
                .map(|p| u32::from(p.port_index())),
            hw_id: Some(h.hw_id),
            direction: Some(if h.egress {
                Direction::Egress
            } else {
                Direction::Ingress
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: TagInfo = TagInfo {
        appliance_id: 0x1c5,
        input_port: 0x4321,
        rule_id: 7,
        direction: Direction::Egress,
    };

    #[test]
    fn overrides_win_and_are_cut_to_width() {
        assert_eq!(vni(100, None), 100);
        assert_eq!(vni(100, Some(0x0123_4567)), 0x23_4567);
        assert_eq!(session(5, None), 5);
        assert_eq!(session(5, Some(0x7ff)), 0x3ff);
        assert_eq!(gre_key(1, Some(u32::MAX)), u32::MAX);
        assert_eq!(erspan3_hw_id(&TAG, None), 0x05);
        assert_eq!(erspan3_hw_id(&TAG, Some(0x2a)), 0x2a);
    }

    #[test]
    fn erspan3_fields_round_trip_through_the_header() {
        let r = erspan::Repr::TypeIII(erspan::TypeIII {
            vlan: 0,
            cos: 0,
            bso: 0,
            truncated: false,
            session_id: 0,
            timestamp: 0,
            sgt: 0,
            p: true,
            frame_type: 0,
            hw_id: 0,
            egress: false,
            granularity: erspan::Granularity::Ieee1588,
            platform: Some(erspan::Platform::upper_timestamp(0, 9)),
        });
        let mut tpl = [0u8; 20];
        r.emit_to(&mut tpl).unwrap();
        let mut b = tpl;
        write_erspan3(
            &ErspanWords::from_header(&tpl),
            &mut b,
            &TAG,
            300,
            true,
            None,
            Some(77),
        );
        let p = erspan::Packet::new_checked(&b[..]).unwrap();
        let got = erspan::Repr::parse(&p).unwrap();
        let rx = read_erspan(&got);
        assert_eq!(rx.input_port, Some(0x0321));
        assert_eq!(rx.hw_id, Some(5));
        assert_eq!(rx.direction, Some(Direction::Egress));
        assert!(p.truncated());
        assert_eq!(p.session_id(), 300);
        assert_eq!(p.platform().map(|x| x.word1), Some(9));
        assert_eq!(p.vlan(), 77);
        assert_eq!(p.version(), erspan::VERSION_III);
        assert_eq!(p.granularity(), erspan::Granularity::Ieee1588);
        assert!(p.p());
    }

    #[test]
    fn erspan2_index_is_the_input_port() {
        let mut tpl = [0u8; 8];
        erspan::Repr::TypeII(erspan::TypeII {
            cos: 5,
            ..erspan::TypeII::default()
        })
        .emit_to(&mut tpl)
        .unwrap();
        let mut b = tpl;
        write_erspan2(
            &ErspanWords::from_header(&tpl),
            &mut b,
            &TAG,
            1023,
            false,
            None,
        );
        let p = erspan::Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.index(), 0x4321);
        assert_eq!(p.session_id(), 1023);
        assert!(!p.truncated());
        assert_eq!(p.version(), erspan::VERSION_II);
        assert_eq!((p.cos(), p.en_bso(), p.vlan()), (5, 0, 0));
        write_erspan2(
            &ErspanWords::from_header(&tpl),
            &mut b,
            &TAG,
            1,
            true,
            Some(300),
        );
        let p = erspan::Packet::new_checked(&b[..]).unwrap();
        assert!(p.truncated());
        assert_eq!(
            (p.cos(), p.en_bso(), p.vlan(), p.session_id()),
            (5, 3, 300, 1)
        );
    }

    #[test]
    fn vxlan_reserved_bits_only_in_extended_mode() {
        let mut b = [0u8; 8];
        vxlan::Repr::new(0).emit_to(&mut b).unwrap();
        apply_vxlan(&mut b, &TAG, 0xabcdef, None);
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        let x = VxlanExtended {
            flags: 0x0c,
            sequence: 0x0100_0002,
        };
        apply_vxlan(&mut b, &TAG, 0xabcdef, Some(x));
        assert_eq!(b, [0x0c, 0, 0, 2, 0xab, 0xcd, 0xef, 1]);
    }
}
