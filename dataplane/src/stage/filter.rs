//! filter: ordered rules, first match wins.

use crate::stage::slice::SliceSpec;

/// Index of a destination in the compiled policy's destination table.
pub type DestId = u16;

/// What one destination of a matching rule gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestAction {
    pub dest: DestId,
    /// How much of the frame this destination keeps.
    pub slice: SliceSpec,
    /// Drop copies seen within the dedup window before sending here.
    pub dedup: bool,
    /// Overrides the destination's VNI / ERSPAN session ID when set.
    pub tag: Option<u32>,
}

/// The verdict of the rule that matched (or of the default rule).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Drop,
    Forward(Vec<DestAction>),
}
