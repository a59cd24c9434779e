//! Port events: link up and down, queue state changes. A vhost-user port's
//! link follows its peer (up when the virtio side is ready, down when it
//! goes away), so these counts are its connects and disconnects; a NIC's
//! follow the cable.
//!
//! DPDK calls the callback from whichever thread noticed the change (the
//! vhost-user thread, the interrupt thread), so it only stores into static
//! atomics; the main lcore reads and reports them.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::{check, DpdkError, Result};

const MAX_PORTS: usize = dpdk_sys::RTE_MAX_ETHPORTS as usize;

/// Event counts of one port since Sluice started watching it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortEvents {
    /// The link now (read from the device: not every one raises events).
    pub link_up: bool,
    /// Link-up events (a vhost-user peer connecting).
    pub link_ups: u64,
    /// Link-down events (a vhost-user peer going away).
    pub link_downs: u64,
    /// Queue state changes (a vhost-user peer enabling or disabling a ring).
    pub queue_changes: u64,
}

struct Slot {
    watched: AtomicBool,
    link_ups: AtomicU64,
    link_downs: AtomicU64,
    queue_changes: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            watched: AtomicBool::new(false),
            link_ups: AtomicU64::new(0),
            link_downs: AtomicU64::new(0),
            queue_changes: AtomicU64::new(0),
        }
    }
}

static SLOTS: [Slot; MAX_PORTS] = [const { Slot::new() }; MAX_PORTS];

fn link_is_up(port: u16) -> bool {
    let mut link = dpdk_sys::rte_eth_link::default();
    // SAFETY: valid out-pointer; a plain read of the device's link word.
    let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(port, &mut link) };
    ret == 0 && link.link_status() as u32 == dpdk_sys::RTE_ETH_LINK_UP
}

/// The ethdev event callback of every watched port.
///
/// # Safety
/// ethdev calls it with a valid port id and event; the pointers are unused.
unsafe extern "C" fn on_event(
    port: u16,
    event: dpdk_sys::rte_eth_event_type,
    _arg: *mut c_void,
    _ret: *mut c_void,
) -> c_int {
    let Some(s) = SLOTS.get(usize::from(port)) else {
        return 0;
    };
    match event {
        dpdk_sys::RTE_ETH_EVENT_INTR_LSC => {
            // The driver sets the new link state before it raises the event.
            let n = if link_is_up(port) {
                &s.link_ups
            } else {
                &s.link_downs
            };
            n.fetch_add(1, Ordering::AcqRel);
        }
        dpdk_sys::RTE_ETH_EVENT_QUEUE_STATE => {
            s.queue_changes.fetch_add(1, Ordering::AcqRel);
        }
        _ => {}
    }
    0
}

/// Starts counting link and queue state events of `port`; call it before
/// the port is configured, so that a peer connecting at once is seen.
/// Watching a port twice is harmless.
pub fn watch(port: u16) -> Result<()> {
    let Some(s) = SLOTS.get(usize::from(port)) else {
        return Err(DpdkError::Invalid {
            what: format!("port {port}"),
            reason: format!("beyond DPDK's {MAX_PORTS} ports"),
        });
    };
    if s.watched.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    for ev in [
        dpdk_sys::RTE_ETH_EVENT_INTR_LSC,
        dpdk_sys::RTE_ETH_EVENT_QUEUE_STATE,
    ] {
        // SAFETY: on_event only touches static atomics, so it stays valid
        // for the life of the process; the argument is unused (null).
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_callback_register(port, ev, Some(on_event), std::ptr::null_mut())
        };
        check(&format!("port {port}: watch events"), ret)?;
    }
    Ok(())
}

/// The event counts of `port` (all zero when it is not watched).
pub fn of(port: u16) -> PortEvents {
    let Some(s) = SLOTS.get(usize::from(port)) else {
        return PortEvents::default();
    };
    PortEvents {
        link_up: link_is_up(port),
        link_ups: s.link_ups.load(Ordering::Acquire),
        link_downs: s.link_downs.load(Ordering::Acquire),
        queue_changes: s.queue_changes.load(Ordering::Acquire),
    }
}
