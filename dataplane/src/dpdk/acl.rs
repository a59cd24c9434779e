//! `rte_acl`, DPDK's multi-field classifier: rules compile into a trie
//! walked one input byte per level, several packets at a time in SIMD
//! lanes. Built once on the main lcore (`rte_acl_build` allocates and takes
//! milliseconds to seconds); classified from any thread (read-only).
//!
//! The context is generic over its number of fields `N` and the length `L`
//! of one packet's input bytes, so a rule and an input can be checked
//! against the field layout at build time and never at classify time.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::{check, rte_errno, strerror, DpdkError, Result};
use super::mempool::SOCKET_ID_ANY;

/// How a field of a rule matches the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A prefix: `mask_range` is the prefix length in bits.
    Prefix,
    /// An inclusive range: `value ..= mask_range`.
    Range,
    /// Arbitrary bits: `input & mask_range == value`.
    Bitmask,
}

/// Where a field sits in the input and how it matches. Multi-byte fields
/// are read in network byte order (big-endian); rule values are plain
/// integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    pub kind: FieldKind,
    /// 1, 2, 4 or 8 bytes. The first field must be one byte (rte_acl's rule).
    pub size: u8,
    /// rte_acl loads its input four bytes at a time: fields sharing one
    /// four-byte word share an input index.
    pub input_index: u8,
    /// Byte offset in the input.
    pub offset: u32,
}

/// One field of a rule: a value and, by the field's kind, a prefix length,
/// the range's upper bound or a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldMatch {
    pub value: u64,
    pub mask_range: u64,
}

/// A rule: the highest `priority` among matching rules wins; `userdata`
/// (non-zero) is what classify returns for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclRule<const N: usize> {
    pub priority: u32,
    pub userdata: u32,
    pub fields: [FieldMatch; N],
}

/// Highest priority rte_acl accepts.
pub const MAX_PRIORITY: u32 = dpdk_sys::RTE_ACL_MAX_PRIORITY;
/// Lowest priority rte_acl accepts.
pub const MIN_PRIORITY: u32 = dpdk_sys::RTE_ACL_MIN_PRIORITY;
/// What classify reports for an input no rule matches.
pub const NO_MATCH: u32 = 0;

/// `struct rte_acl_rule` followed by its fields, as `RTE_ACL_RULE_DEF`
/// declares it.
#[repr(C)]
struct RawRule<const N: usize> {
    data: dpdk_sys::rte_acl_rule_data,
    field: [dpdk_sys::rte_acl_field; N],
}

/// Inputs handed to one `rte_acl_classify` call (a pointer array on the stack).
const CHUNK: usize = 64;

static NEXT_NAME: AtomicU32 = AtomicU32::new(0);

/// A built context: `N` fields over inputs of `L` bytes.
#[derive(Debug)]
pub struct AclContext<const N: usize, const L: usize> {
    /// None for no rules: rte_acl refuses to build an empty context, and
    /// nothing can match anyway.
    ctx: Option<NonNull<dpdk_sys::rte_acl_ctx>>,
    rules: usize,
}

// SAFETY: a built context is only read by rte_acl_classify, which DPDK
// documents as safe from several threads at once; it is freed in Drop only.
unsafe impl<const N: usize, const L: usize> Send for AclContext<N, L> {}
// SAFETY: as above: every method takes &self and only classifies.
unsafe impl<const N: usize, const L: usize> Sync for AclContext<N, L> {}

impl<const N: usize, const L: usize> AclContext<N, L> {
    /// Builds a context from `defs` and `rules`. Fails with a reason when
    /// a field does not fit the input, a rule's priority or userdata is out
    /// of range, or DPDK cannot build (out of memory, EAL not running).
    pub fn build(defs: &[FieldDef; N], rules: &[AclRule<N>]) -> Result<Self> {
        validate(defs, L)?;
        if !super::eal::running() {
            return Err(DpdkError::Invalid {
                what: "acl context".into(),
                reason: "EAL is not running: rte_acl allocates DPDK memory".into(),
            });
        }
        if std::mem::size_of::<RawRule<N>>()
            != std::mem::size_of::<dpdk_sys::rte_acl_rule>()
                + N * std::mem::size_of::<dpdk_sys::rte_acl_field>()
        {
            return Err(DpdkError::Invalid {
                what: "acl rule layout".into(),
                reason: "differs from RTE_ACL_RULE_SZ".into(),
            });
        }
        if let Some((i, r)) = rules.iter().enumerate().find(|(_, r)| {
            r.userdata == NO_MATCH || !(MIN_PRIORITY..=MAX_PRIORITY).contains(&r.priority)
        }) {
            return Err(DpdkError::Invalid {
                what: format!("acl rule {i}"),
                reason: format!(
                    "userdata {} must be non-zero and priority {} within {MIN_PRIORITY}..={MAX_PRIORITY}",
                    r.userdata, r.priority
                ),
            });
        }
        if rules.is_empty() {
            return Ok(AclContext {
                ctx: None,
                rules: 0,
            });
        }
        let max_rules = u32::try_from(rules.len()).map_err(|_| DpdkError::Invalid {
            what: "acl rules".into(),
            reason: format!("{} rules: more than rte_acl can index", rules.len()),
        })?;
        let name = format!("sluice-acl-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
        let cname = CString::new(name.clone()).map_err(|_| DpdkError::Invalid {
            what: "acl name".into(),
            reason: "contains a NUL byte".into(),
        })?;
        let param = dpdk_sys::rte_acl_param {
            name: cname.as_ptr(),
            socket_id: SOCKET_ID_ANY,
            rule_size: std::mem::size_of::<RawRule<N>>() as u32,
            max_rule_num: max_rules,
        };
        // SAFETY: param and the name it points to live across the call;
        // rte_acl_create copies the name and returns NULL (rte_errno set)
        // on failure, e.g. without EAL.
        let raw = unsafe { dpdk_sys::rte_acl_create(&param) };
        let ctx = NonNull::new(raw).ok_or_else(|| DpdkError::Call {
            what: format!("rte_acl_create {name}"),
            reason: strerror(rte_errno()),
        })?;
        // From here on Drop frees the context on every error path.
        let built = AclContext {
            ctx: Some(ctx),
            rules: rules.len(),
        };
        let raw_rules: Vec<RawRule<N>> = rules.iter().map(|r| raw_rule(defs, r)).collect();
        // SAFETY: ctx is a live context created with rule_size =
        // size_of::<RawRule<N>>() and room for max_rules rules; raw_rules
        // holds that many consecutive rules of exactly that layout
        // (RTE_ACL_RULE_DEF).
        let ret = unsafe {
            dpdk_sys::rte_acl_add_rules(
                ctx.as_ptr(),
                raw_rules.as_ptr().cast::<dpdk_sys::rte_acl_rule>(),
                max_rules,
            )
        };
        check("rte_acl_add_rules", ret)?;
        let mut cfg = dpdk_sys::rte_acl_config {
            num_categories: 1,
            num_fields: N as u32,
            // No memory limit (and DPDK's smallest node limit per trie):
            // the limits tried built in seconds to gigabytes and made the
            // 10,000-rule sets slower (docs/PERFORMANCE.md, issue 13).
            max_size: 0,
            ..Default::default()
        };
        for (d, f) in cfg.defs.iter_mut().zip(defs) {
            *d = dpdk_sys::rte_acl_field_def {
                type_: match f.kind {
                    FieldKind::Prefix => dpdk_sys::RTE_ACL_FIELD_TYPE_MASK,
                    FieldKind::Range => dpdk_sys::RTE_ACL_FIELD_TYPE_RANGE,
                    FieldKind::Bitmask => dpdk_sys::RTE_ACL_FIELD_TYPE_BITMASK,
                } as u8,
                size: f.size,
                field_index: 0,
                input_index: f.input_index,
                offset: f.offset,
            };
        }
        for (i, d) in cfg.defs.iter_mut().take(N).enumerate() {
            d.field_index = i as u8;
        }
        // SAFETY: ctx is live and holds the rules just added; cfg is a
        // valid configuration whose fields validate() checked against L.
        let ret = unsafe { dpdk_sys::rte_acl_build(ctx.as_ptr(), &cfg) };
        check("rte_acl_build", ret)?;
        Ok(built)
    }

    /// Number of rules the context was built from.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Classifies `inputs`: `out[i]` gets the userdata of the best rule
    /// matching `inputs[i]`, or [`NO_MATCH`]. Processes as many inputs as
    /// the shorter slice holds.
    #[inline]
    pub fn classify(&self, inputs: &[[u8; L]], out: &mut [u32]) {
        let n = inputs.len().min(out.len());
        let Some(ctx) = self.ctx else {
            out[..n].fill(NO_MATCH);
            return;
        };
        for (ins, outs) in inputs[..n].chunks(CHUNK).zip(out[..n].chunks_mut(CHUNK)) {
            let mut ptrs = [std::ptr::null::<u8>(); CHUNK];
            for (p, i) in ptrs.iter_mut().zip(ins) {
                *p = i.as_ptr();
            }
            // SAFETY: ctx is a built context; ptrs[..len] point to inputs of
            // L bytes, and build() checked that every field (read four bytes
            // at a time) lies within L; outs has room for len results of one
            // category. The return value is 0 or -EINVAL for bad arguments,
            // which these are not.
            unsafe {
                dpdk_sys::rte_acl_classify(
                    ctx.as_ptr(),
                    ptrs.as_mut_ptr(),
                    outs.as_mut_ptr(),
                    ins.len() as u32,
                    1,
                );
            }
        }
    }
}

impl<const N: usize, const L: usize> Drop for AclContext<N, L> {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx {
            // SAFETY: ctx came from rte_acl_create and is freed once, here.
            unsafe { dpdk_sys::rte_acl_free(ctx.as_ptr()) };
        }
    }
}

/// The field layout must be something rte_acl reads within `len` bytes.
/// Each trie walk starts with one byte, the first field's: nothing else
/// may share its input index (rte_acl would silently never read it).
/// Every other input index is a word loaded whole (four bytes, or eight
/// for an eight-byte field) from the offset of its first field.
fn validate(defs: &[FieldDef], len: usize) -> Result<()> {
    let bad = |i: usize, reason: String| {
        Err(DpdkError::Invalid {
            what: format!("acl field {i}"),
            reason,
        })
    };
    if defs.is_empty() || defs.len() > dpdk_sys::RTE_ACL_MAX_FIELDS as usize {
        return bad(0, format!("{} fields: rte_acl takes 1 to 64", defs.len()));
    }
    if defs[0].size != 1 {
        return bad(0, "the first field must be one byte long".into());
    }
    for (i, d) in defs.iter().enumerate() {
        if ![1, 2, 4, 8].contains(&d.size) {
            return bad(i, format!("size {} is not 1, 2, 4 or 8", d.size));
        }
        if i > 0 && d.input_index == defs[0].input_index {
            return bad(
                i,
                "shares the first field's input index, of which rte_acl reads one byte".into(),
            );
        }
        let word = defs
            .iter()
            .find(|w| w.input_index == d.input_index)
            .map_or(d.offset, |w| w.offset) as usize;
        let (start, load) = (d.offset as usize, usize::from(d.size).max(4));
        let end = start + usize::from(d.size);
        if start < word || end > word + load {
            return bad(
                i,
                format!("bytes {start}..{end} lie outside its input word at {word}"),
            );
        }
        if word + load > len {
            return bad(
                i,
                format!("bytes up to {} read, input is {len}", word + load),
            );
        }
    }
    Ok(())
}

fn raw_rule<const N: usize>(defs: &[FieldDef; N], r: &AclRule<N>) -> RawRule<N> {
    let mut field = [dpdk_sys::rte_acl_field::default(); N];
    for ((f, m), d) in field.iter_mut().zip(&r.fields).zip(defs) {
        // rte_acl reads the union member of the field's size.
        let as_size = |x: u64| match d.size {
            1 => dpdk_sys::rte_acl_field_types { u8_: x as u8 },
            2 => dpdk_sys::rte_acl_field_types { u16_: x as u16 },
            4 => dpdk_sys::rte_acl_field_types { u32_: x as u32 },
            _ => dpdk_sys::rte_acl_field_types { u64_: x },
        };
        f.value = as_size(m.value);
        f.mask_range = as_size(m.mask_range);
    }
    RawRule {
        data: dpdk_sys::rte_acl_rule_data {
            category_mask: 1,
            // In range: checked by build() against MAX_PRIORITY (< 2^29).
            priority: r.priority as i32,
            userdata: r.userdata,
        },
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldKind::{Bitmask, Range};

    fn def(kind: FieldKind, size: u8, input_index: u8, offset: u32) -> FieldDef {
        FieldDef {
            kind,
            size,
            input_index,
            offset,
        }
    }

    #[test]
    fn a_five_tuple_layout_is_accepted() {
        let defs = [
            def(Bitmask, 1, 0, 0),
            def(Bitmask, 4, 1, 4),
            def(Bitmask, 4, 2, 8),
            def(Range, 2, 3, 12),
            def(Range, 2, 3, 14),
        ];
        assert!(validate(&defs, 16).is_ok());
        // Input 15 bytes: the ports' word is read up to byte 16.
        assert!(validate(&defs, 15).is_err());
    }

    #[test]
    fn nothing_shares_the_first_fields_input() {
        // rte_acl starts each walk with the first field's byte alone: a
        // field next to it in the same input word would never be read.
        let defs = [def(Bitmask, 1, 0, 0), def(Bitmask, 1, 0, 1)];
        let e = validate(&defs, 8).unwrap_err().to_string();
        assert!(
            e.contains("acl field 1") && e.contains("first field"),
            "{e}"
        );
    }

    #[test]
    fn a_field_lies_within_the_word_of_its_input_index() {
        // The word is loaded from the offset of its first field (4): a
        // two-byte field at 7 would read past it.
        let defs = [
            def(Bitmask, 1, 0, 0),
            def(Bitmask, 2, 1, 4),
            def(Bitmask, 2, 1, 7),
        ];
        let e = validate(&defs, 16).unwrap_err().to_string();
        assert!(e.contains("acl field 2") && e.contains("4"), "{e}");
        let defs = [
            def(Bitmask, 1, 0, 0),
            def(Bitmask, 2, 1, 4),
            def(Bitmask, 2, 1, 6),
        ];
        assert!(validate(&defs, 8).is_ok());
    }
}
