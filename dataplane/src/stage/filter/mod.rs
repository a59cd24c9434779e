//! filter: ordered rules, first match wins.
//!
//! The control plane compiles its policy into a list of [`Rule`]s and builds
//! a [`Classifier`] once (validation errors name the rule and field). Each
//! worker keeps its own [`FlowCache`] and [`FilterCounters`] and calls
//! [`Classifier::classify_burst`]; the verdict is a rule index, resolved to
//! the shared [`Action`] by reference with [`Classifier::action`].
//!
//! Inside: rules expand to value/mask entries (`compile`), stored in
//! tuple-merge hash tables (`tuple`); per-field interval maps pick the
//! tables worth probing (`prune`); a per-worker flow cache answers repeat
//! flows without any of it (`cache`). The flow cache's misses go, a burst
//! at a time, to per-field bit vectors built from the rules (`bitvec`) for
//! policies up to [`BITVEC_MAX_RULES`], else, under DPDK, to `rte_acl`
//! built from the entries (`acl`).
//!
//! Costs (criterion, `perf/benches/filter.rs` and `classifier.rs`, 2-core
//! VM shared with other builds): flow-cache hit ~10-15 ns/packet at any
//! rule count; TupleMerge alone ~35 / ~120 / ~290 ns at 10 / 1,000 /
//! 10,000 mixed rules, rte_acl ~105 / ~85 at 1,000 / 10,000; behind the
//! flow cache, bit vectors ~0.77× rte_acl's time at 1,000 rules and ~1.06×
//! at 10,000; build ~10 ms (TupleMerge), 15-30 ms / 0.2-0.35 s (bit
//! vectors, 1,000 / 10,000 rules) and 0.3-0.7 s / 2-4 s (rte_acl).

#[cfg(feature = "dpdk")]
mod acl;
mod bitvec;
mod cache;
mod compile;
mod key;
mod prune;
mod rule;
mod tuple;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[cfg(feature = "dpdk")]
pub use acl::{AclBuildError, AclMissPath};
pub use bitvec::{BitVecBuildError, BitVecMissPath};
pub use cache::{FlowCache, FlowCacheOf};
pub use rule::{
    Cidr, CidrParseError, Field, Match, PortRange, Rule, RuleError, RuleErrorKind, RuleId,
    TcpFlags, VlanMatch,
};

use crate::flow::table::Hint;
use crate::stage::parse::Layers;
use crate::stage::slice::SliceSpec;
use crate::stage::{Direction, BURST};
use key::Key;
use tuple::{Tuples, NO_MATCH};

/// Policies of up to this many rules classify their flow-cache misses on
/// bit vectors, larger ones on rte_acl (`perf/benches/classifier.rs`,
/// ns a packet behind the flow cache: the bit vectors take 0.7–0.85× rte_acl's
/// time from 1,000 to 9,000 rules, 1.06–1.4× at 10,000, where their
/// chunks and vectors no longer stay in the caches; docs/PERFORMANCE.md,
/// "Session 13: where the bit vectors stop"). They also build 10–25×
/// faster, which a policy reload waits for.
pub const BITVEC_MAX_RULES: usize = 8192;

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

/// Which rule a packet matched: its position in the rule list given to
/// [`Classifier::build`], or the default. Four bytes, `Copy`: the action is
/// looked up by reference with [`Classifier::action`], never cloned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict(u32);

impl Verdict {
    /// No rule matched: the default action applies.
    pub const DEFAULT: Verdict = Verdict(NO_MATCH);

    /// Position of the matching rule, `None` for the default.
    pub fn rule_index(self) -> Option<usize> {
        (self.0 != NO_MATCH).then_some(self.0 as usize)
    }

    pub fn is_default(self) -> bool {
        self.0 == NO_MATCH
    }
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict::DEFAULT
    }
}

/// Why a rule list cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Every nonsensical field of every rule, in rule order.
    #[error("{} invalid rule field(s), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<RuleError>),
    /// Rule indices are u32 and u32::MAX means "no match".
    #[error("{0} rules: more than the classifier can index")]
    TooManyRules(usize),
}

/// What the classifier reads of a burst's packets: packet `i`'s headers,
/// the port it came in on and its direction.
#[derive(Clone, Copy)]
pub struct BurstFields<'a> {
    pub layers: &'a [Layers],
    pub in_ports: &'a [u16],
    pub dirs: &'a [Direction],
}

impl BurstFields<'_> {
    /// Packets every slice has.
    fn len(&self) -> usize {
        self.layers
            .len()
            .min(self.in_ports.len())
            .min(self.dirs.len())
    }
}

/// Per-worker filter counters: plain `u64`s, summed by the main lcore.
/// Indexed by rule position in the classifier they were last used with;
/// they restart from zero when the worker sees a new classifier (the
/// runtime collects them before a policy swap if it wants totals).
#[derive(Clone, Debug, Default)]
pub struct FilterCounters {
    generation: u64,
    /// Packets matched, per rule position.
    pub rule_hits: Vec<u64>,
    /// Packets no rule matched (they took the default action).
    pub default_hits: u64,
    /// Packets whose action is `Drop`, by a rule or by the default: the
    /// `filtered` terminal counter of DESIGN §3.
    pub filtered: u64,
}

impl FilterCounters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Zero the counters and size them for `cls`.
    pub fn reset_for(&mut self, cls: &Classifier) {
        self.generation = cls.generation;
        self.rule_hits.clear();
        self.rule_hits.resize(cls.actions.len(), 0);
        self.default_hits = 0;
        self.filtered = 0;
    }
}

/// Source of classifier generations; 0 is never handed out, so an empty
/// flow-cache slot never looks valid.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The next classifier generation: none whose low 32 bits, all a
/// flow-cache slot keeps of it, are 0.
fn next_generation() -> u64 {
    loop {
        let g = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        if g as u32 != 0 {
            return g;
        }
    }
}

/// A rule list compiled for fast first-match lookup. Immutable once built;
/// shared by all workers, replaced whole on a policy change.
#[derive(Clone, Debug)]
pub struct Classifier {
    tuples: Tuples,
    /// Key bits some rule reads; the rest of a packet key is zeroed.
    used: Key,
    /// `used` holds the whole five-tuple and the IP version: a cached key
    /// is one flow in one direction, so the flow cache can keep the flow
    /// meter's hint for it.
    flow_keyed: bool,
    /// When no rule reads any field (a match-all policy, or none), every
    /// packet gets this verdict: no key, no cache.
    constant: Option<Verdict>,
    actions: Vec<Action>,
    ids: Vec<RuleId>,
    /// Per rule position: its action is `Drop` (for the filtered counter).
    drops: Vec<bool>,
    default: Action,
    default_drops: bool,
    generation: u64,
    /// The same rules on rte_acl, when the runtime built them: flow-cache
    /// misses are classified there, a burst at a time.
    #[cfg(feature = "dpdk")]
    acl: Option<Arc<AclMissPath>>,
    /// The same rules as per-field bit vectors, built with the classifier:
    /// flow-cache misses are classified there (else on rte_acl, else on
    /// TupleMerge).
    bitvec: Option<Arc<BitVecMissPath>>,
    /// Why a policy within [`BITVEC_MAX_RULES`] has no bit vectors: told
    /// with the policy, since its misses then take a slower path.
    bitvec_refused: Option<BitVecBuildError>,
}

impl Classifier {
    /// Validate and compile `rules` (first match wins, in list order) with
    /// `default` for packets no rule matches. Every invalid field of every
    /// rule is reported, so an operator fixes a policy in one round.
    pub fn build(rules: &[Rule], default: Action) -> Result<Classifier, BuildError> {
        if rules.len() >= NO_MATCH as usize {
            return Err(BuildError::TooManyRules(rules.len()));
        }
        let errors: Vec<RuleError> = rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.validate(i))
            .collect();
        if !errors.is_empty() {
            return Err(BuildError::Invalid(errors));
        }
        let mut entries = Vec::with_capacity(rules.len());
        let mut residuals = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            // Fits: checked against NO_MATCH above.
            compile::expand_rule(r, i as u32, &mut entries, &mut residuals);
        }
        let tuples = Tuples::build(entries, residuals);
        let used = compile::used_fields(rules);
        let constant = (used == Key::default()).then(|| Verdict(tuples.lookup(&used)));
        let five_tuple = key::SPORT_MASK | key::DPORT_MASK | key::PROTO_MASK | key::IPVER_MASK;
        let flow_keyed =
            used.src == u128::MAX && used.dst == u128::MAX && used.a & five_tuple == five_tuple;
        let mut c = Classifier {
            tuples,
            used,
            flow_keyed,
            constant,
            actions: rules.iter().map(|r| r.action.clone()).collect(),
            ids: rules.iter().map(|r| r.id).collect(),
            drops: rules.iter().map(|r| r.action == Action::Drop).collect(),
            default_drops: default == Action::Drop,
            default,
            generation: next_generation(),
            #[cfg(feature = "dpdk")]
            acl: None,
            bitvec: None,
            bitvec_refused: None,
        };
        if rules.len() <= BITVEC_MAX_RULES {
            // A policy too large for the bit vectors' 16-bit tables (tens
            // of thousands of distinct prefixes) goes without: its misses go
            // to rte_acl or TupleMerge, like a larger policy's, and
            // `bitvec_refusal` says why.
            c.bitvec_refused = c.adopt_bitvec(rules).err();
        }
        Ok(c)
    }

    /// Builds the bit-vector miss path from `rules`, the list this
    /// classifier was built from, and uses it from now on: what
    /// [`Classifier::build`] does up to [`BITVEC_MAX_RULES`] rules, and
    /// what the benches do beyond.
    pub fn adopt_bitvec(&mut self, rules: &[Rule]) -> Result<(), BitVecBuildError> {
        if self.constant.is_none() {
            self.bitvec = Some(Arc::new(BitVecMissPath::build(rules)?));
        }
        Ok(())
    }

    /// A classifier with no rules: everything takes `default`.
    pub fn empty(default: Action) -> Classifier {
        // No rules, nothing to validate.
        Classifier {
            tuples: Tuples::default(),
            used: Key::default(),
            flow_keyed: false,
            constant: Some(Verdict::DEFAULT),
            actions: Vec::new(),
            ids: Vec::new(),
            drops: Vec::new(),
            default_drops: default == Action::Drop,
            default,
            generation: next_generation(),
            #[cfg(feature = "dpdk")]
            acl: None,
            bitvec: None,
            bitvec_refused: None,
        }
    }

    /// Builds the rte_acl miss path for this classifier and uses it from
    /// now on, when the bit vectors could not be built (needs EAL; on the
    /// main lcore: building takes up to seconds). A policy rte_acl cannot
    /// express keeps the TupleMerge path and says why.
    #[cfg(feature = "dpdk")]
    pub fn adopt_acl(&mut self) -> Result<(), AclBuildError> {
        if self.constant.is_none() && self.bitvec.is_none() {
            self.acl = Some(Arc::new(AclMissPath::build(self)?));
        }
        Ok(())
    }

    /// Whether flow-cache misses go to the bit vectors.
    pub fn uses_bitvec(&self) -> bool {
        self.bitvec.is_some()
    }

    /// Why [`Classifier::build`] could not build the bit vectors of a
    /// policy within [`BITVEC_MAX_RULES`] rules.
    pub fn bitvec_refusal(&self) -> Option<&BitVecBuildError> {
        self.bitvec_refused.as_ref()
    }

    /// Classifies flow-cache misses without the bit vectors from now on
    /// (on rte_acl once adopted, else TupleMerge): for the benches and
    /// tests that compare the miss paths.
    pub fn drop_bitvec(&mut self) {
        self.bitvec = None;
    }

    /// Whether flow-cache misses go to rte_acl.
    pub fn uses_acl(&self) -> bool {
        #[cfg(feature = "dpdk")]
        return self.acl.is_some();
        #[cfg(not(feature = "dpdk"))]
        false
    }

    /// Rule indices of the first matches of `keys`, on the bit vectors or
    /// rte_acl when built.
    #[inline]
    fn lookup_keys(&self, keys: &[Key], out: &mut [u32]) {
        if let Some(bv) = &self.bitvec {
            bv.lookup_burst(keys, out);
            return;
        }
        #[cfg(feature = "dpdk")]
        if let Some(acl) = &self.acl {
            acl.lookup_burst(&self.tuples, keys, out);
            return;
        }
        for (o, k) in out.iter_mut().zip(keys) {
            *o = self.tuples.lookup(k);
        }
    }

    /// The verdict of every packet when no rule reads any field (a
    /// match-all policy): a caller may then skip the key, and the parse.
    pub fn constant_verdict(&self) -> Option<Verdict> {
        self.constant
    }

    /// Unique per build: flow caches and counters tell classifiers apart by it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Hash tables the lookup may probe (for `show policy` and tuning).
    pub fn table_count(&self) -> usize {
        self.tuples.table_count()
    }

    /// Compiled entries (rules expanded over their CIDR and port sets).
    pub fn entry_count(&self) -> usize {
        self.tuples.entry_count()
    }

    /// The action for a verdict: the rule's, or the default.
    #[inline]
    pub fn action(&self, v: Verdict) -> &Action {
        v.rule_index()
            .and_then(|i| self.actions.get(i))
            .unwrap_or(&self.default)
    }

    /// The id of the matching rule, `None` for the default.
    pub fn rule_id(&self, v: Verdict) -> Option<RuleId> {
        v.rule_index().and_then(|i| self.ids.get(i).copied())
    }

    pub fn default_action(&self) -> &Action {
        &self.default
    }

    /// Every rule's action, in rule order.
    pub fn rule_actions(&self) -> &[Action] {
        &self.actions
    }

    /// Every rule's id, in rule order.
    pub fn rule_ids(&self) -> &[RuleId] {
        &self.ids
    }

    #[inline]
    fn key(&self, l: &Layers, in_port: u16, dir: Direction) -> Key {
        Key::from_packet(l, in_port, dir).and(&self.used)
    }

    #[inline]
    pub(crate) fn lookup_key(&self, k: &Key) -> Verdict {
        Verdict(self.tuples.lookup(k))
    }

    /// Classify one packet, without a flow cache.
    pub fn classify(&self, l: &Layers, in_port: u16, dir: Direction) -> Verdict {
        if let Some(v) = self.constant {
            return v;
        }
        self.lookup_key(&self.key(l, in_port, dir))
    }

    /// Classify one packet through `cache`.
    pub fn classify_cached<const W: usize>(
        &self,
        cache: &mut FlowCacheOf<W>,
        l: &Layers,
        in_port: u16,
        dir: Direction,
    ) -> Verdict {
        if let Some(v) = self.constant {
            return v;
        }
        cache.lookup(self, &self.key(l, in_port, dir))
    }

    /// Classify a burst through `cache`: `out[i]` gets the verdict for
    /// `burst.layers[i]` received on `burst.in_ports[i]` in direction
    /// `burst.dirs[i]`. In two passes per [`BURST`] packets: every key and
    /// its set, whose line starts loading, then the probes — so the cache
    /// misses of a burst overlap instead of stalling one lookup after
    /// another. Processes as many packets as the shortest slice holds and
    /// returns that number.
    pub fn classify_burst_cached<const W: usize>(
        &self,
        cache: &mut FlowCacheOf<W>,
        burst: BurstFields<'_>,
        out: &mut [Verdict],
    ) -> usize {
        self.classify_into::<W, false>(cache, burst, out, &mut [])
    }

    /// Whether the key holds the whole five-tuple and the IP version: the
    /// flow cache then keeps the flow meter's hints
    /// ([`Classifier::classify_burst_hinted`]).
    pub fn flow_keyed(&self) -> bool {
        self.flow_keyed && self.constant.is_none()
    }

    /// The worker's classification of a burst when it meters:
    /// [`Classifier::classify_burst_cached`] that, when the classifier is
    /// [`Classifier::flow_keyed`], also hands out in `hints[i]` the flow
    /// meter's hint packet `i`'s cache slot keeps (untouched for a packet
    /// the cache missed). Returns whether it handed out hints: the one
    /// place that decides it.
    // The worker (DPDK only) is the caller.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn classify_burst_hinted<const W: usize>(
        &self,
        cache: &mut FlowCacheOf<W>,
        burst: BurstFields<'_>,
        out: &mut [Verdict],
        hints: &mut [Hint],
    ) -> bool {
        if !self.flow_keyed() {
            self.classify_into::<W, false>(cache, burst, out, &mut []);
            return false;
        }
        self.classify_into::<W, true>(cache, burst, out, hints);
        true
    }

    /// Keeps `hints[i]` in packet `i`'s flow-cache slot for every bit `i`
    /// of `fresh`, where the slot still holds the packet's key (a later
    /// packet of the burst may have taken it); only after
    /// [`Classifier::classify_burst_hinted`] handed out hints for `burst`.
    /// The keys are built again here: `fresh` holds the few packets the
    /// meter had to probe (new flows, stale hints), where keeping every
    /// packet's key from the classifier cost each packet (+6 instructions
    /// on the full pipeline without metering, measured).
    // The worker (DPDK only) is the caller.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn keep_meter_hints<const W: usize>(
        &self,
        cache: &mut FlowCacheOf<W>,
        burst: BurstFields<'_>,
        hints: &[Hint],
        mut fresh: u32,
    ) {
        while fresh != 0 {
            let i = fresh.trailing_zeros() as usize;
            fresh &= fresh - 1;
            let (Some(l), Some(&port), Some(&dir), Some(&hint)) = (
                burst.layers.get(i),
                burst.in_ports.get(i),
                burst.dirs.get(i),
                hints.get(i),
            ) else {
                continue;
            };
            let k = self.key(l, port, dir);
            cache.set_meter_hint(self.generation, &k, cache.set_of(&k), hint);
        }
    }

    /// [`Classifier::classify_burst_cached`], with each hit's meter hint
    /// in `hints` when `HINTED`.
    #[inline(always)]
    fn classify_into<const W: usize, const HINTED: bool>(
        &self,
        cache: &mut FlowCacheOf<W>,
        burst: BurstFields<'_>,
        out: &mut [Verdict],
        hints: &mut [Hint],
    ) -> usize {
        let BurstFields {
            layers,
            in_ports,
            dirs,
        } = burst;
        let n = burst.len().min(out.len());
        if let Some(v) = self.constant {
            out[..n].fill(v);
            return n;
        }
        let mut keys = [Key::default(); BURST];
        let mut sets = [0usize; BURST];
        for start in (0..n).step_by(BURST) {
            let end = (start + BURST).min(n);
            let m = end - start;
            for (((k, s), l), (&port, &dir)) in keys
                .iter_mut()
                .zip(sets.iter_mut())
                .zip(&layers[start..end])
                .zip(in_ports[start..end].iter().zip(&dirs[start..end]))
            {
                *k = self.key(l, port, dir);
                *s = cache.set_of(k);
                cache.prefetch(*s);
            }
            // Probe; the misses are classified together (rte_acl walks
            // them in SIMD lanes), then inserted. A new flow seen twice in
            // the burst is classified once: its later packets follow the
            // first, and count as hits, as they would one at a time.
            let mut missed = [0u8; BURST];
            let mut nm = 0;
            let mut follows = [u8::MAX; BURST];
            // The sets of this burst's misses so far, by their low 8 bits:
            // only a miss whose bit is already set can repeat one, so the
            // others skip the search among the earlier misses.
            let mut miss_sets = [0u64; 4];
            for (i, ((k, s), o)) in keys[..m]
                .iter()
                .zip(&sets[..m])
                .zip(&mut out[start..end])
                .enumerate()
            {
                if let Some((v, hint)) = cache.probe_hinted(self.generation, k, *s) {
                    *o = v;
                    if HINTED {
                        if let Some(h) = hints.get_mut(start + i) {
                            *h = hint;
                        }
                    }
                    continue;
                }
                let (word, bit) = ((*s >> 6) & 3, 1u64 << (*s & 63));
                let repeat = miss_sets[word] & bit != 0;
                miss_sets[word] |= bit;
                let first = if repeat {
                    missed[..nm].iter().position(|&j| {
                        let j = usize::from(j);
                        sets[j] == *s && keys[j] == *k
                    })
                } else {
                    None
                };
                match first {
                    Some(f) => follows[i] = f as u8,
                    None => {
                        missed[nm] = i as u8;
                        nm += 1;
                    }
                }
            }
            cache.count((m - nm) as u64, nm as u64);
            if nm > 0 {
                // Only bursts with a miss pay for these arrays.
                let mut miss_keys = [Key::default(); BURST];
                for (mk, &i) in miss_keys.iter_mut().zip(&missed[..nm]) {
                    *mk = keys[usize::from(i)];
                }
                let mut rules = [NO_MATCH; BURST];
                self.lookup_keys(&miss_keys[..nm], &mut rules[..nm]);
                for ((&i, k), &r) in missed[..nm].iter().zip(&miss_keys[..nm]).zip(&rules[..nm]) {
                    let i = usize::from(i);
                    out[start + i] = Verdict(r);
                    cache.insert(self.generation, k, sets[i], Verdict(r));
                }
                for (o, &f) in out[start..end].iter_mut().zip(&follows[..m]) {
                    if let Some(&r) = rules.get(usize::from(f)) {
                        *o = Verdict(r);
                    }
                }
            }
        }
        n
    }

    /// [`Classifier::classify_burst_cached`], counting each verdict in
    /// `counters`.
    pub fn classify_burst<const W: usize>(
        &self,
        cache: &mut FlowCacheOf<W>,
        layers: &[Layers],
        in_ports: &[u16],
        dirs: &[Direction],
        out: &mut [Verdict],
        counters: &mut FilterCounters,
    ) -> usize {
        if counters.generation != self.generation {
            counters.reset_for(self);
        }
        let burst = BurstFields {
            layers,
            in_ports,
            dirs,
        };
        let n = self.classify_burst_cached(cache, burst, out);
        for v in &out[..n] {
            self.count(*v, counters);
        }
        n
    }

    #[inline]
    fn count(&self, v: Verdict, c: &mut FilterCounters) {
        match v.rule_index() {
            Some(i) => {
                if let Some(h) = c.rule_hits.get_mut(i) {
                    *h += 1;
                }
                if self.drops.get(i).copied().unwrap_or(false) {
                    c.filtered += 1;
                }
            }
            None => {
                c.default_hits += 1;
                c.filtered += u64::from(self.default_drops);
            }
        }
    }
}
