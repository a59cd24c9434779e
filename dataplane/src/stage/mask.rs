//! mask: overwrite bytes a tool must not see, per tool destination.
//!
//! `len` bytes from `offset` past an anchor — the start of L2, L3, L4 or
//! the L4 payload, as the frame's [`Layers`] give them — become `pattern`.
//! Bytes past the frame's end are left alone (the frame is not grown), and
//! a packet without the anchor's layer (no IP for L3; no transport header
//! for L4; for the payload, neither a transport header nor a later
//! fragment's data) is left whole and counted as `no_layer`.
//!
//! Checksums are left as captured: the IP, TCP and UDP checksums of a
//! masked packet no longer match its bytes, and tools see that (Wireshark
//! flags it when told to check). Recomputing them would tell a tool a
//! masked packet is the one that was sent, and would cost a pass over the
//! payload; a broker forwards mirrored bytes, it does not forge them.
//!
//! `layers` must describe the frame as it is: after strip changed a frame,
//! parse it again. A chained frame is masked in its first segment, where
//! the bytes are writable; if the masked range runs on into a later
//! segment, the frame is cut where the first segment ends (counted as
//! `cut_chained`), so a masked byte never leaves unmasked.

use crate::frame::Frame;
use crate::stage::parse::{Fragment, Layers};

/// Where a mask's offset counts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// The first byte of the frame.
    L2,
    /// The IP header.
    L3,
    /// The transport header.
    L4,
    /// The first byte after every header parse understood.
    #[default]
    Payload,
}

/// What a destination masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskSpec {
    pub anchor: Anchor,
    pub offset: u16,
    pub len: u16,
    pub pattern: u8,
}

/// What mask did to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskOutcome {
    /// `bytes` were overwritten (0 when the range starts past the end);
    /// `cut`: the frame was cut where its first segment ends.
    Masked { bytes: usize, cut: bool },
    /// The frame has no layer for the anchor: left whole.
    NoLayer,
}

/// Per-worker mask counters of one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaskCounters {
    /// Frames with at least one byte overwritten.
    pub masked: u64,
    pub bytes_masked: u64,
    /// Frames whose masked range starts past their end.
    pub past_end: u64,
    /// Frames without the anchor's layer, left whole.
    pub no_layer: u64,
    /// Chained frames cut where their first segment ends.
    pub cut_chained: u64,
}

impl MaskCounters {
    /// How many counters [`MaskCounters::iter`] gives.
    pub const COUNT: usize = 5;

    #[inline]
    pub fn record(&mut self, o: MaskOutcome) {
        match o {
            MaskOutcome::Masked { bytes, cut } => {
                self.masked += u64::from(bytes > 0);
                self.bytes_masked += bytes as u64;
                self.past_end += u64::from(bytes == 0 && !cut);
                self.cut_chained += u64::from(cut);
            }
            MaskOutcome::NoLayer => self.no_layer += 1,
        }
    }

    /// Adds another worker's counters.
    pub fn add(&mut self, o: &MaskCounters) {
        self.masked += o.masked;
        self.bytes_masked += o.bytes_masked;
        self.past_end += o.past_end;
        self.no_layer += o.no_layer;
        self.cut_chained += o.cut_chained;
    }

    /// `(counter name, value)` for every counter.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("masked", self.masked),
            ("bytes_masked", self.bytes_masked),
            ("past_end", self.past_end),
            ("no_layer", self.no_layer),
            ("cut_chained", self.cut_chained),
        ]
        .into_iter()
    }
}

/// Where `anchor` is in a frame parsed as `l`, if the frame has that layer.
#[inline]
pub fn anchor_offset(l: &Layers, anchor: Anchor) -> Option<usize> {
    let at = match anchor {
        Anchor::L2 => return Some(0),
        Anchor::L3 => l.l3_offset,
        Anchor::L4 => l.l4_offset,
        Anchor::Payload if l.l4_offset != 0 || l.fragment == Fragment::Later => l.payload_offset,
        Anchor::Payload => 0,
    };
    (at != 0).then_some(usize::from(at))
}

/// Masks one frame whose parse is `layers`.
#[inline]
pub fn mask<F: Frame>(frame: &mut F, layers: &Layers, spec: &MaskSpec) -> MaskOutcome {
    let Some(at) = anchor_offset(layers, spec.anchor) else {
        return MaskOutcome::NoLayer;
    };
    let start = at + usize::from(spec.offset);
    let len = frame.pkt_len();
    if start >= len {
        return MaskOutcome::Masked {
            bytes: 0,
            cut: false,
        };
    }
    let end = (start + usize::from(spec.len)).min(len);
    let head = frame.data_mut();
    let writable = end.min(head.len());
    let bytes = match head.get_mut(start..writable) {
        Some(b) => {
            b.fill(spec.pattern);
            b.len()
        }
        None => 0,
    };
    // The rest of the range is in a read-only later segment: cut it off.
    let cut = end > writable;
    if cut {
        frame.truncate(start.max(writable));
    }
    MaskOutcome::Masked { bytes, cut }
}

/// Masks a burst for one destination: `frames[i]` with `layers[i]`, over
/// the shorter of the two slices, counting into `counters`.
pub fn mask_burst<F: Frame>(
    frames: &mut [F],
    layers: &[Layers],
    spec: &MaskSpec,
    counters: &mut MaskCounters,
) {
    if spec.len == 0 {
        return;
    }
    for (f, l) in frames.iter_mut().zip(layers) {
        counters.record(mask(f, l, spec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ChainFrame, VecFrame};
    use crate::stage::parse::parse;
    use etherparse::PacketBuilder;

    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 1, 1000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn masked(bytes: &[u8], spec: MaskSpec) -> (Vec<u8>, MaskOutcome) {
        let mut f = VecFrame::new(bytes);
        let o = mask(&mut f, &parse(bytes), &spec);
        (f.data().to_vec(), o)
    }

    /// The indices where `a` and `b` differ.
    fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
        (0..a.len()).filter(|&i| a[i] != b[i]).collect()
    }

    #[test]
    fn only_the_masked_bytes_change_at_every_anchor() {
        let f = tcp(&[0x11; 40]);
        // Ethernet 14, IPv4 20, TCP 20: L3 at 14, L4 at 34, payload at 54.
        for (anchor, base) in [
            (Anchor::L2, 0),
            (Anchor::L3, 14),
            (Anchor::L4, 34),
            (Anchor::Payload, 54),
        ] {
            let spec = MaskSpec {
                anchor,
                offset: 2,
                len: 5,
                pattern: 0xee,
            };
            let (out, o) = masked(&f, spec);
            assert_eq!(out.len(), f.len());
            assert_eq!(diff(&f, &out), (base + 2..base + 7).collect::<Vec<_>>());
            assert!(out[base + 2..base + 7].iter().all(|&b| b == 0xee));
            assert_eq!(
                o,
                MaskOutcome::Masked {
                    bytes: 5,
                    cut: false
                }
            );
        }
    }

    #[test]
    fn the_end_of_the_frame_bounds_the_mask() {
        let f = tcp(&[0x11; 10]);
        let spec = MaskSpec {
            anchor: Anchor::Payload,
            offset: 4,
            len: 1000,
            pattern: 0,
        };
        let (out, o) = masked(&f, spec);
        assert_eq!(out.len(), f.len());
        assert_eq!(diff(&f, &out), (58..64).collect::<Vec<_>>());
        assert_eq!(
            o,
            MaskOutcome::Masked {
                bytes: 6,
                cut: false
            }
        );
        let past = MaskSpec { offset: 11, ..spec };
        let (out, o) = masked(&f, past);
        assert_eq!(out, f);
        let mut c = MaskCounters::default();
        c.record(o);
        assert_eq!((c.masked, c.past_end), (0, 1));
    }

    #[test]
    fn a_frame_without_the_layer_is_left_whole_and_counted() {
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut c = MaskCounters::default();
        for anchor in [Anchor::L3, Anchor::L4, Anchor::Payload] {
            let (out, o) = masked(
                &arp,
                MaskSpec {
                    anchor,
                    offset: 0,
                    len: 4,
                    pattern: 0xff,
                },
            );
            assert_eq!((out.as_slice(), o), (&arp[..], MaskOutcome::NoLayer));
            c.record(o);
        }
        assert_eq!(c.no_layer, 3);
        // A later IPv4 fragment has no L4 but its data is payload.
        let mut frag = tcp(&[0x11; 20]);
        frag[20] = 0x00;
        frag[21] = 0x10;
        let l = parse(&frag);
        assert_eq!(anchor_offset(&l, Anchor::L4), None);
        assert_eq!(anchor_offset(&l, Anchor::Payload), Some(34));
    }

    #[test]
    fn a_chained_frame_is_cut_where_the_mask_cannot_write() {
        let bytes = tcp(&[0x11; 100]);
        let l = parse(&bytes);
        let mut f = ChainFrame::new(&bytes, &[80]);
        let spec = MaskSpec {
            anchor: Anchor::Payload,
            offset: 0,
            len: 60,
            pattern: 0xaa,
        };
        let o = mask(&mut f, &l, &spec);
        assert_eq!(
            o,
            MaskOutcome::Masked {
                bytes: 26,
                cut: true
            }
        );
        assert_eq!(f.to_vec().len(), 80);
        assert!(f.to_vec()[54..].iter().all(|&b| b == 0xaa));
        // Wholly in the first segment: nothing is cut.
        let mut f = ChainFrame::new(&bytes, &[80]);
        let o = mask(&mut f, &l, &MaskSpec { len: 10, ..spec });
        assert_eq!(f.pkt_len(), bytes.len());
        // Past the end of a chained frame: nothing to mask, nothing cut.
        let far = MaskSpec {
            offset: 500,
            ..spec
        };
        let mut g = ChainFrame::new(&bytes, &[80]);
        assert_eq!(
            mask(&mut g, &l, &far),
            MaskOutcome::Masked {
                bytes: 0,
                cut: false
            }
        );
        assert_eq!(g.pkt_len(), bytes.len());
        let mut c = MaskCounters::default();
        c.record(o);
        assert_eq!((c.masked, c.bytes_masked, c.cut_chained), (1, 10, 0));
    }

    proptest::proptest! {
        /// Never panics; changes only bytes inside the range, to the pattern.
        #[test]
        fn mask_never_panics_and_stays_in_its_range(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            anchor in proptest::sample::select(vec![Anchor::L2, Anchor::L3, Anchor::L4, Anchor::Payload]),
            offset in 0u16..300,
            len in 0u16..300,
        ) {
            let spec = MaskSpec { anchor, offset, len, pattern: 0x5a };
            let l = parse(&bytes);
            let mut f = VecFrame::new(&bytes);
            let o = mask(&mut f, &l, &spec);
            proptest::prop_assert_eq!(f.pkt_len(), bytes.len());
            let start = anchor_offset(&l, anchor).map(|a| a + usize::from(offset));
            for (i, (&a, &b)) in bytes.iter().zip(f.data()).enumerate() {
                let inside = start.is_some_and(|s| i >= s && i < s + usize::from(len));
                let want = if inside { 0x5a } else { a };
                proptest::prop_assert_eq!(b, want, "byte {}", i);
            }
            if start.is_none() {
                proptest::prop_assert_eq!(o, MaskOutcome::NoLayer);
            }
        }
    }
}
