//! DPDK's PMD power management (`librte_power`) on RX queues, and the
//! thread settings a worker that sleeps needs.
//!
//! Of the three modes of `rte_power_ethdev_pmgmt_queue_enable`, Sluice
//! uses `pause`: after 512 empty polls of every queue of the lcore, each
//! empty poll waits a microsecond in the CPU (TPAUSE where the CPU has
//! WAITPKG, `rte_pause` otherwise) instead of spinning on the queue.
//! `monitor` waits inside the RX burst with no time limit until the
//! queue's descriptor is written: a worker that also drains TX buffers,
//! answers the exit word and serves the uplink's ARP cannot sleep there.
//! `scale` takes the core's cpufreq governor over (userspace), which a
//! sidecar sharing its host with VMs must not do. Neither the pause nor the
//! TPAUSE gives the core back to the scheduler: the worker's own backoff
//! (`runtime::idle`) sleeps for that.

use super::error::{check, Result};

/// What the CPU offers for waiting (`rte_cpu_get_intrinsics_support`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuWaits {
    /// UMONITOR/UMWAIT (Intel WAITPKG): `rte_power_monitor`.
    pub monitor: bool,
    /// TPAUSE (Intel WAITPKG): `rte_power_pause`.
    pub pause: bool,
}

/// The CPU's wait instructions, as DPDK sees them.
pub fn cpu_waits() -> CpuWaits {
    let mut i = dpdk_sys::rte_cpu_intrinsics::default();
    // SAFETY: writes one struct through a valid pointer; no EAL needed.
    unsafe { dpdk_sys::rte_cpu_get_intrinsics_support(&mut i) };
    CpuWaits {
        monitor: i.power_monitor() != 0,
        pause: i.power_pause() != 0,
    }
}

/// Turns on DPDK's `pause` power management on RX queue `queue` of port
/// `port`, which lcore `lcore` polls. The queue must not be started yet
/// (before `Port::start`): DPDK adds its RX callback to a stopped queue
/// only. Returns a line on what the waits are, for the log.
pub fn pause_rx_queue(port: u16, queue: u16, lcore: u32) -> Result<&'static str> {
    // SAFETY: plain call on a configured port; DPDK checks the ids.
    let ret = unsafe {
        dpdk_sys::rte_power_ethdev_pmgmt_queue_enable(
            lcore,
            port,
            queue,
            dpdk_sys::RTE_POWER_MGMT_TYPE_PAUSE,
        )
    };
    check(
        &format!("port {port} RX queue {queue}: DPDK power management (pause) on lcore {lcore}"),
        ret,
    )?;
    Ok(if cpu_waits().pause {
        "TPAUSE"
    } else {
        "rte_pause (the CPU has no TPAUSE)"
    })
}

/// Turns DPDK's power management of that queue off again (before the
/// port is closed, or configured anew).
pub fn unpause_rx_queue(port: u16, queue: u16, lcore: u32) {
    // SAFETY: plain call; an error only means it was not on.
    unsafe { dpdk_sys::rte_power_ethdev_pmgmt_queue_disable(lcore, port, queue) };
}

/// Sets the calling thread's timer slack: the kernel may run a sleep this
/// much late to merge wake-ups. The default (50 µs) would make every short
/// sleep of an idle worker at least that long.
pub fn set_timer_slack_ns(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK takes the value as its second argument and
    // touches only the calling thread's settings.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
}
