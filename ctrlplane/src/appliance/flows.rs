//! Flow telemetry of a running appliance: the export thread over the
//! workers' flow rings and intake, sending to the `[flows]` collectors and
//! the data-service stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use dataplane::flow::table::Expired;
use dataplane::runtime::tables::Tables;

use crate::config::FlowsConfig;
pub use crate::flows::export::ExportCounters;
use crate::flows::export::{ExportStats, FlowExport, IpfixStats};
use crate::flows::recent::RecentFlows;
use crate::flows::workers::WorkerFlows;
use crate::flows::{FlowSink, IpfixConfig, IpfixExporter};

/// The export thread and its counters.
pub struct Flows {
    export: FlowExport,
    /// The last records exported, for `show flows`.
    pub recent: RecentFlows,
    ipfix: Arc<IpfixStats>,
    stats: Arc<ExportStats>,
}

impl Flows {
    /// Starts the export thread: IPFIX to the `[flows]` collectors when
    /// there is such a section, and every sink of `extra` (the stream).
    pub fn start(
        cfg: Option<&FlowsConfig>,
        observation_domain: u32,
        rings: Vec<Arc<ArrayQueue<Expired>>>,
        tables: Arc<ArcSwap<Tables>>,
        extra: Vec<Box<dyn FlowSink>>,
    ) -> std::io::Result<Flows> {
        let mut sinks: Vec<Box<dyn FlowSink>> = Vec::new();
        let mut ipfix = Arc::default();
        if let Some(cfg) = cfg {
            let exporter = IpfixExporter::new(IpfixConfig {
                collectors: cfg.collectors.clone(),
                template_refresh: cfg.template_refresh,
                observation_domain,
                max_message: cfg.max_message,
            })?;
            ipfix = exporter.stats();
            sinks.push(Box::new(exporter));
        }
        sinks.extend(extra);
        let recent = RecentFlows::default();
        sinks.push(recent.sink());
        let export = FlowExport::start(vec![Box::new(WorkerFlows::new(rings, tables))], sinks)?;
        Ok(Flows {
            recent,
            stats: export.stats(),
            export,
            ipfix,
        })
    }

    /// Hands records of another source (intake) to the thread; counted in
    /// `channel_full` when it lags.
    pub fn sender(&self) -> impl FnMut(dataplane::flow::FlowRecord) + Send + 'static {
        let (tx, stats) = (self.export.sender(), self.export.stats());
        move |r| {
            if tx.try_send(r).is_err() {
                stats.channel_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> ExportCounters {
        Flows::counters_of(&self.stats, &self.ipfix)
    }

    /// Drains what the workers left and stops (after the workers joined).
    pub fn stop(self) -> ExportCounters {
        let Flows {
            export,
            ipfix,
            stats,
            ..
        } = self;
        export.stop();
        Flows::counters_of(&stats, &ipfix)
    }

    fn counters_of(stats: &ExportStats, ipfix: &IpfixStats) -> ExportCounters {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        ExportCounters {
            records: get(&stats.records),
            channel_full: get(&stats.channel_full),
            ipfix_records: get(&ipfix.records),
            ipfix_messages: get(&ipfix.messages),
            ipfix_templates: get(&ipfix.templates),
            ipfix_send_errors: get(&ipfix.send_errors),
        }
    }
}
