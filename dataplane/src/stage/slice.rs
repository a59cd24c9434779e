//! slice: keep only the front of a frame.

/// How much of a frame a destination keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SliceSpec {
    /// The whole frame.
    #[default]
    Whole,
    /// `slice = N`: the first N bytes of the frame.
    Bytes(u16),
    /// `slice_after = "l4"`: every header parse found plus N payload bytes.
    AfterL4(u16),
}

use crate::frame::Frame;
use crate::stage::parse::Layers;

/// What slicing did to one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceOutcome {
    /// Bytes cut from the end of the frame.
    pub removed: usize,
}

impl SliceOutcome {
    /// The frame lost bytes: encap sets ERSPAN's T bit.
    pub fn truncated(self) -> bool {
        self.removed > 0
    }
}

/// Per-worker slice counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceCounters {
    /// Frames that lost bytes.
    pub sliced: u64,
    /// Bytes cut in all.
    pub bytes_removed: u64,
}

impl SliceCounters {
    /// Counts one outcome.
    #[inline]
    pub fn record(&mut self, outcome: SliceOutcome) {
        self.sliced += u64::from(outcome.truncated());
        self.bytes_removed += outcome.removed as u64;
    }
}

/// How many bytes of a frame `spec` keeps, or `None` for all of them.
///
/// `AfterL4(n)` keeps everything before `payload_offset` — parse's end of
/// the headers it understood, L4 or not — plus `n`. If parse found no header
/// at all (every offset 0) that is the first `n` bytes.
#[inline]
pub fn keep_len(layers: &Layers, spec: SliceSpec) -> Option<usize> {
    match spec {
        SliceSpec::Whole => None,
        SliceSpec::Bytes(n) => Some(usize::from(n)),
        SliceSpec::AfterL4(n) => {
            // The offsets only grow along the frame; the largest one is where
            // the headers parse found end, even if it left payload_offset 0.
            let headers = layers
                .payload_offset
                .max(layers.l4_offset)
                .max(layers.l3_offset);
            Some(usize::from(headers) + usize::from(n))
        }
    }
}

/// Cuts the frame to what `spec` keeps. Headers are not rewritten: inner IP
/// and L4 lengths still give the original size, which is what the tools
/// expect of a sliced capture (and what ERSPAN's T bit announces). Frames no
/// longer than the cut are left alone.
#[inline]
pub fn slice<F: Frame>(frame: &mut F, layers: &Layers, spec: SliceSpec) -> SliceOutcome {
    match keep_len(layers, spec) {
        Some(keep) => fit_to(frame, keep),
        None => SliceOutcome::default(),
    }
}

/// Truncates the frame to at most `max_len` bytes, for encap's
/// `truncate_to_mtu`: `max_len` is the uplink MTU minus the tunnel overhead.
#[inline]
pub fn fit_to<F: Frame>(frame: &mut F, max_len: usize) -> SliceOutcome {
    let before = frame.pkt_len();
    if before <= max_len {
        return SliceOutcome::default();
    }
    frame.truncate(max_len);
    SliceOutcome {
        // Measured, not assumed: a frame that refused the trim removed nothing.
        removed: before - frame.pkt_len(),
    }
}

/// Slices a burst for one destination: `frames[i]` with `layers[i]`, over
/// the shorter of the two slices, counting into `counters`.
pub fn slice_burst<F: Frame>(
    frames: &mut [F],
    layers: &[Layers],
    spec: SliceSpec,
    counters: &mut SliceCounters,
) {
    if spec == SliceSpec::Whole {
        return;
    }
    for (f, l) in frames.iter_mut().zip(layers) {
        counters.record(slice(f, l, spec));
    }
}
