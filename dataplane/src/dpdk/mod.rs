//! The safe layer over DPDK: the only place in the dataplane with `unsafe`.
//!
//! Follows capsule's shape: an owned [`Mbuf`] that frees on drop, bursts as
//! fixed-capacity [`Batch`]es, `tx` that takes ownership only of what the
//! device accepted. Every error carries DPDK's own `rte_strerror` text.

pub mod acl;
mod batch;
mod eal;
mod error;
pub mod events;
mod hugemem;
mod intr;
mod lcore;
mod mbuf;
mod mempool;
pub mod pdump;
mod port;
mod power;
mod ring;
pub mod telemetry;
pub mod testing;

pub use batch::{Batch, Drain};
pub use eal::{running as eal_running, version, Eal};
pub use error::{DpdkError, Result};
pub use hugemem::{advise_hugepages, prefetch, HugeSlice};
pub use intr::{rx_interrupts_supported, RxInterrupts};
pub use lcore::{
    launch, main_lcore, monotonic_ns, thread_cpu_ns, tsc_hz, tsc_now, worker_lcores, LcoreHandle,
    WorkerPanic,
};
pub use mbuf::{capture_time_in_use, register_capture_time, Mbuf, SharedMbuf};
pub use mempool::{Mempool, SOCKET_ID_ANY};
pub use port::{
    detach, port_id, port_names, port_owner, rss_capable, stats_of, LinkState, Port, PortConfig,
    PortInfo, PortStats, RssMode, RxQueue, TxQueue, SYMMETRIC_RSS_KEY_WORD,
};
pub use power::{cpu_waits, pause_rx_queue, set_timer_slack_ns, unpause_rx_queue, CpuWaits};
pub use ring::{Ring, RingItem};
