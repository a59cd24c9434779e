//! RX interrupts: a worker with nothing to poll sleeps in `epoll` on its
//! queues' interrupt event fds (`rte_eth_dev_rx_intr_*`, `rte_epoll_wait`,
//! as DPDK's l3fwd-power does). The port must have been configured with
//! RX interrupts (`PortConfig::rx_interrupts`); `net_tap`, `net_vhost`
//! and many NICs have them, `net_memif`, `net_ring`, `net_pcap` and
//! `net_null` do not.

use super::error::{check, Result};

/// Whether port `port` can interrupt on RX queue `queue`: its driver set
/// up an event fd for it (configured with RX interrupts, and started).
/// Drivers without an enable operation (`net_tap`: the fd is the queue's
/// own) interrupt all the same.
pub fn rx_interrupts_supported(port: u16, queue: u16) -> bool {
    // SAFETY: plain query on a started port; DPDK checks the ids.
    unsafe { dpdk_sys::rte_eth_dev_rx_intr_ctl_q_get_fd(port, queue) >= 0 }
}

/// The RX queues one thread sleeps on, in that thread's own epoll set.
/// Made and used on the polling thread: DPDK keeps one epoll fd per thread.
#[derive(Debug)]
pub struct RxInterrupts {
    queues: Vec<(u16, u16)>,
}

impl RxInterrupts {
    /// Adds every `(port, queue)` to the calling thread's epoll set.
    pub fn register(queues: &[(u16, u16)]) -> Result<RxInterrupts> {
        for &(port, queue) in queues {
            // SAFETY: plain call; the data pointer is unused by us (null).
            let ret = unsafe {
                dpdk_sys::rte_eth_dev_rx_intr_ctl_q(
                    port,
                    queue,
                    dpdk_sys::RTE_EPOLL_PER_THREAD,
                    dpdk_sys::RTE_INTR_EVENT_ADD as i32,
                    std::ptr::null_mut(),
                )
            };
            check(
                &format!("port {port} RX queue {queue}: add its interrupt to the worker's epoll"),
                ret,
            )?;
        }
        Ok(RxInterrupts {
            queues: queues.to_vec(),
        })
    }

    /// Arms every queue's interrupt, waits until one fires or `timeout_ms`
    /// passes, and disarms them. Returns whether an interrupt woke it. A
    /// packet that arrived just before arming waits for the timeout at
    /// worst: the caller keeps it short.
    pub fn wait(&mut self, timeout_ms: i32) -> bool {
        for &(port, queue) in &self.queues {
            // SAFETY: plain call on a started port's queue, registered
            // above. -ENOTSUP (no enable operation) is fine: see above.
            unsafe { dpdk_sys::rte_eth_dev_rx_intr_enable(port, queue) };
        }
        let mut events = [dpdk_sys::rte_epoll_event::default(); 8];
        // SAFETY: `events` holds 8 entries, as passed; the per-thread epoll
        // fd is this thread's, where `register` added the queues.
        let n = unsafe {
            dpdk_sys::rte_epoll_wait(
                dpdk_sys::RTE_EPOLL_PER_THREAD,
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        for &(port, queue) in &self.queues {
            // SAFETY: as above.
            unsafe { dpdk_sys::rte_eth_dev_rx_intr_disable(port, queue) };
        }
        n > 0
    }
}
