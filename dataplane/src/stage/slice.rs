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
