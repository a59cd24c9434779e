//! The workers' flow rings as a [`FlowSource`]: expired table entries
//! become [`FlowRecord`]s here, on the export thread, with the matched
//! rule's destinations looked up in the tables now published (the worker
//! only carries the rule's id).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use dataplane::flow::table::Expired;
use dataplane::flow::FlowRecord;
use dataplane::runtime::tables::Tables;
use dataplane::stage::filter::Action;

use super::FlowSource;

/// Every worker's ring, and the tables to resolve rules with.
pub struct WorkerFlows {
    rings: Vec<Arc<ArrayQueue<Expired>>>,
    tables: Arc<ArcSwap<Tables>>,
    /// Destinations of each rule id, for `generation`.
    dests: HashMap<u32, Vec<u16>>,
    generation: Option<u64>,
}

impl WorkerFlows {
    pub fn new(rings: Vec<Arc<ArrayQueue<Expired>>>, tables: Arc<ArcSwap<Tables>>) -> Self {
        WorkerFlows {
            rings,
            tables,
            dests: HashMap::new(),
            generation: None,
        }
    }

    fn refresh(&mut self) {
        let t = self.tables.load();
        if self.generation == Some(t.generation) {
            return;
        }
        let cls = &t.policy.classifier;
        let ids = cls.rule_ids().iter().copied();
        let actions = cls
            .rule_actions()
            .iter()
            .zip(ids)
            .chain(std::iter::once((cls.default_action(), u32::MAX)));
        self.dests = actions
            .map(|(a, id)| {
                let d = match a {
                    Action::Forward(targets) => targets.iter().map(|x| x.dest).collect(),
                    _ => Vec::new(),
                };
                (id, d)
            })
            .collect();
        self.generation = Some(t.generation);
    }
}

impl FlowSource for WorkerFlows {
    fn drain(&mut self, out: &mut dyn FnMut(FlowRecord)) -> usize {
        if self.rings.iter().all(|r| r.is_empty()) {
            return 0;
        }
        self.refresh();
        let mut n = 0;
        for r in &self.rings {
            while let Some(e) = r.pop() {
                let dests = self
                    .dests
                    .get(&e.entry.rule_id())
                    .cloned()
                    .unwrap_or_default();
                out(e.entry.record(e.reason, dests));
                n += 1;
            }
        }
        n
    }
}
