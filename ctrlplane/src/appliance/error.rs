//! Why the appliance could not start: each variant names what failed, in
//! the words the operator reads after `sluice: cannot start:`.

use std::path::PathBuf;

use dataplane::dpdk::DpdkError;
use dataplane::runtime::counters::MAX_DEST_SLOTS;

use super::plan::PlanError;
use crate::config::ConfigError;
use crate::policy::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config file, or the built-in default's.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The built-in default's directory or its sample capture.
    #[error("{}: {reason}", path.display())]
    DefaultFiles { path: PathBuf, reason: String },
    #[error("{0}")]
    Eal(DpdkError),
    #[error("cannot attach to the primary of pdump.file_prefix {prefix:?} (is it running, without --in-memory, on the same DPDK build as Sluice?): {source}")]
    AttachPrimary { prefix: String, source: DpdkError },
    #[error("flows: cannot open the IPFIX export socket: {0}")]
    FlowExport(std::io::Error),
    #[error("mempool.mbufs = {mbufs}: {source}")]
    Mempool { mbufs: u32, source: DpdkError },
    /// pdump mode: EAL arguments, the primary, the taps.
    #[error("{0}")]
    Pdump(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("uplink: {0}")]
    UplinkMac(DpdkError),
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("policy has {0} destinations; the appliance holds {MAX_DEST_SLOTS}")]
    TooManyDestinations(usize),
    /// A ring or queue the workers need.
    #[error("{what}: {source}")]
    Dpdk { what: String, source: DpdkError },
    /// A decap input's address that it cannot answer ARP/ND for.
    #[error("{0}")]
    Answerer(String),
    #[error("{0}")]
    Publish(String),
    /// A capture input's replay thread.
    #[error("{0}")]
    Capture(String),
    /// Intake, flow export or the data-service stream.
    #[error("{0}")]
    DataService(String),
    #[error("a worker failed while starting: {0}")]
    WorkerFailed(String),
    /// The worker the main lcore runs itself (one-lcore mode).
    #[error("{0}")]
    Inline(String),
}

impl StartError {
    /// A DPDK failure of `what`.
    pub(crate) fn dpdk(what: &str) -> impl Fn(DpdkError) -> StartError + '_ {
        move |source| StartError::Dpdk {
            what: what.to_owned(),
            source,
        }
    }
}
