//! What a worker does with the packets of each rule, resolved once per
//! tables generation instead of once per packet: the rule's targets with
//! their counter slots, and whether any of them wants dedup.

use crate::runtime::policy::Output;
use crate::runtime::tables::Tables;
use crate::stage::filter::{Action, Verdict};
use crate::stage::slice::SliceSpec;

/// One destination of a rule, as the forward path needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    /// Index into the tables' destinations (and the worker's templates).
    pub dest: usize,
    /// Counter slot of the destination.
    pub slot: u16,
    pub slice: SliceSpec,
    pub dedup: bool,
    pub tag: Option<u32>,
    /// A tool destination: its index into the tables' tools.
    pub tool: Option<u16>,
    /// A tunnel destination: the uplink its copies leave by (its TX lane).
    pub uplink: u16,
    /// The destination strips or masks: its copy is written inside the
    /// frame, so it must be a copy of its own.
    pub edits: bool,
}

/// One rule's (or the default's) action, flattened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RulePlan {
    /// Range of the rule's targets in [`Plans::targets`]; empty for a drop.
    start: u32,
    len: u32,
    /// Some target drops copies seen within the dedup window.
    pub any_dedup: bool,
    /// Every target does: a copy then goes nowhere.
    pub all_dedup: bool,
    /// The rule's id, which tunnels carry as a tag (`u32::MAX` for the default).
    pub rule_id: u32,
    /// The rule or one of its destinations samples.
    pub sampled: bool,
    /// Some target strips or masks: in place when it gets the original,
    /// so no other target may share the original's bytes (a clone).
    pub any_edits: bool,
    /// Flow metering counts the rule's packets.
    pub meter: bool,
}

/// The plans of a burst's packets: one for every packet (a burst whose
/// packets all matched one rule, which is then looked up once and never
/// copied out per packet) or one each. Every pass that reads plans takes
/// this, so the two shapes are told apart in one place.
#[derive(Debug, Clone, Copy)]
pub(super) enum BurstPlans<'a> {
    One(&'a RulePlan),
    Each(&'a [RulePlan]),
}

impl<'a> BurstPlans<'a> {
    /// Packet `i`'s plan.
    #[inline(always)]
    pub fn get(self, i: usize) -> Option<&'a RulePlan> {
        match self {
            BurstPlans::One(p) => Some(p),
            BurstPlans::Each(ps) => ps.get(i),
        }
    }

    /// Packet `i`'s plan, or for a packet past the plans (none is: each
    /// burst has a plan a packet) one that sends nowhere, so that such a
    /// packet would still be counted, as filtered.
    #[inline(always)]
    pub fn of(self, i: usize) -> &'a RulePlan {
        self.get(i).unwrap_or(&RulePlan::NOWHERE)
    }
}

impl RulePlan {
    /// No target: what a packet without a plan gets.
    const NOWHERE: RulePlan = RulePlan {
        start: 0,
        len: 0,
        any_dedup: false,
        all_dedup: false,
        rule_id: 0,
        sampled: false,
        any_edits: false,
        meter: false,
    };
}

/// The plans of one classifier: indexed by rule position, the default last.
#[derive(Debug, Default)]
pub(super) struct Plans {
    rules: Vec<RulePlan>,
    targets: Vec<Target>,
    /// Some rule's plan wants dedup (kept here, not searched per burst).
    any_dedup: bool,
    /// Some rule's plan meters flows.
    any_meter: bool,
}

impl Plans {
    /// Flattens every rule's action of `t`'s classifier.
    pub fn build(t: &Tables) -> Plans {
        let cls = &t.policy.classifier;
        let mut p = Plans::default();
        let ids = cls.rule_ids().iter().copied();
        let actions = cls
            .rule_actions()
            .iter()
            .zip(ids)
            .chain(std::iter::once((cls.default_action(), u32::MAX)));
        for (action, rule_id) in actions {
            let start = p.targets.len() as u32;
            if let Action::Forward(targets) = action {
                for a in targets {
                    let dest = usize::from(a.dest);
                    let d = t.policy.destinations.get(dest);
                    p.targets.push(Target {
                        dest,
                        slot: t.dests.get(dest).map_or(0, |d| d.slot),
                        slice: a.slice,
                        dedup: a.dedup,
                        tag: a.tag,
                        tool: d.and_then(|d| match d.out {
                            Output::Tool(i) => Some(i),
                            Output::Tunnel(_) => None,
                        }),
                        uplink: d.and_then(|d| d.tunnel()).map_or(0, |t| t.uplink),
                        edits: d.is_some_and(|d| !d.strip.is_noop() || d.mask.is_some()),
                    });
                }
            }
            let mine = &p.targets[start as usize..];
            let rule_samples = t.policy.rule_samples.get(rule_id as usize);
            let dest_samples = mine.iter().any(|x| {
                t.policy
                    .destinations
                    .get(x.dest)
                    .is_some_and(|d| d.sample.is_some())
            });
            let meter = match t.policy.rule_meters.get(rule_id as usize) {
                Some(m) => *m,
                None => rule_id == u32::MAX && t.policy.meter_default,
            };
            p.rules.push(RulePlan {
                meter,
                sampled: rule_samples.is_some_and(Option::is_some) || dest_samples,
                start,
                len: mine.len() as u32,
                any_dedup: mine.iter().any(|x| x.dedup),
                any_edits: mine.iter().any(|x| x.edits),
                all_dedup: !mine.is_empty() && mine.iter().all(|x| x.dedup),
                rule_id,
            });
        }
        p.any_dedup = p.rules.iter().any(|r| r.any_dedup);
        p.any_meter = p.rules.iter().any(|r| r.meter);
        p
    }

    /// Some rule's plan meters flows: a burst may need the flow table.
    #[inline]
    pub fn any_meter(&self) -> bool {
        self.any_meter
    }

    /// Some rule's plan wants dedup: a burst may need its fingerprints.
    #[inline]
    pub fn any_dedup(&self) -> bool {
        self.any_dedup
    }

    /// The plan of a verdict (the default's for no rule or an unknown one).
    #[inline]
    pub fn of(&self, v: Verdict) -> RulePlan {
        let default = self.rules.len().saturating_sub(1);
        let i = v.rule_index().map_or(default, |i| i.min(default));
        self.rules.get(i).copied().unwrap_or_default()
    }

    /// The targets of a plan.
    #[inline]
    pub fn targets(&self, p: RulePlan) -> &[Target] {
        let (s, n) = (p.start as usize, p.len as usize);
        self.targets.get(s..s + n).unwrap_or(&[])
    }
}
