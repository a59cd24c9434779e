//! Packet capture taps on a primary process's ports (`rte_pdump`), for a
//! Sluice running as a DPDK secondary process.
//!
//! The primary (it called `rte_pdump_init`) runs a callback on every burst
//! of a tapped queue: it copies each packet into *our* mempool and puts the
//! copy on *our* ring, both in the shared hugepage memory. Its own
//! switching is untouched; the copies cost its lcores one `rte_pktmbuf_copy`
//! per packet. What could not be copied (our pool empty) or queued (our
//! ring full) the primary counts in `rte_pdump_stats`, never in ours.
//!
//! The primary's lcores take mbufs from the tap pool with their own lcore
//! ids, which may be ours too: the tap pool must have no per-lcore cache
//! ([`TAP_POOL_CACHE`]).

use std::ffi::CString;
use std::sync::Arc;

use super::error::{errno_text, DpdkError, Result};
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use super::ring::Ring;

/// The tap pool's per-lcore cache: none, since the primary's lcore ids and
/// ours may be the same numbers.
pub const TAP_POOL_CACHE: u32 = 0;

/// The memzone `rte_pdump_init` creates in the primary.
const PDUMP_STATS_ZONE: &str = "rte_pdump_stats";

/// Which way the tapped packets travel through the primary's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// As the port receives them.
    Rx,
    /// As the port sends them.
    Tx,
}

impl Capture {
    fn flag(self) -> u32 {
        match self {
            Capture::Rx => dpdk_sys::RTE_PDUMP_FLAG_RX,
            Capture::Tx => dpdk_sys::RTE_PDUMP_FLAG_TX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Capture::Rx => "rx",
            Capture::Tx => "tx",
        }
    }
}

/// Whether this process is a DPDK secondary.
pub fn is_secondary() -> bool {
    // SAFETY: plain query of EAL's configuration.
    unsafe { dpdk_sys::rte_eal_process_type() == dpdk_sys::RTE_PROC_SECONDARY }
}

/// Whether the primary process of our file prefix still runs. Only
/// meaningful in a secondary.
pub fn primary_alive() -> bool {
    // SAFETY: a null path means EAL's own config file of this prefix.
    unsafe { dpdk_sys::rte_eal_primary_proc_alive(std::ptr::null()) != 0 }
}

/// Checks that the primary can serve taps: it runs, and it initialised
/// packet capture. (Asking a primary without `rte_pdump_init` times out,
/// and one that is gone makes `rte_pdump` read a reply that never came.)
pub fn check_primary() -> Result<()> {
    if !is_secondary() {
        return Err(DpdkError::Call {
            what: "pdump".into(),
            reason: "taps need a secondary process (EAL --proc-type=secondary)".into(),
        });
    }
    if !primary_alive() {
        return Err(DpdkError::Call {
            what: "pdump".into(),
            reason: "the primary process is not running".into(),
        });
    }
    let zone = CString::new(PDUMP_STATS_ZONE).map_err(|_| DpdkError::Invalid {
        what: "pdump".into(),
        reason: "memzone name".into(),
    })?;
    // SAFETY: a valid C string; lookup only reads the shared memzone list.
    if unsafe { dpdk_sys::rte_memzone_lookup(zone.as_ptr()) }.is_null() {
        return Err(DpdkError::Call {
            what: "pdump".into(),
            reason: "the primary did not initialise packet capture (rte_pdump_init): \
                     dpdk-testpmd does; the primary application must call it"
                .into(),
        });
    }
    Ok(())
}

/// The mempool handler every pktmbuf pool uses by default.
const RING_MP_MC: &str = "ring_mp_mc";
/// `RING_F_*` flags that make a ring other than multi-producer/consumer.
const RING_SYNC_FLAGS: i32 = 0x3f & !0x4;

/// Names of this process's mempool handlers, by index.
fn own_mempool_ops() -> Vec<String> {
    // SAFETY: the table is written only while drivers register (before and
    // during EAL init); afterwards it is read-only, as here.
    let table = unsafe { &*std::ptr::addr_of!(dpdk_sys::rte_mempool_ops_table) };
    table
        .ops
        .iter()
        .take(table.num_ops as usize)
        .map(|o| {
            // SAFETY: a registered handler's name is NUL-terminated in its 32 bytes.
            unsafe { std::ffi::CStr::from_ptr(o.name.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// (name, ops index, whether it sits on an MP/MC ring of its own) of every
/// mempool in the shared memory.
fn shared_pools() -> Vec<(String, i32, bool)> {
    /// # Safety
    /// `rte_mempool_walk` calls it with a live pool and the `arg` given to it.
    unsafe extern "C" fn visit(mp: *mut dpdk_sys::rte_mempool, arg: *mut std::ffi::c_void) {
        // SAFETY: arg is the Vec passed below; mp is a live pool of the walk.
        let (out, mp) = unsafe { (&mut *(arg as *mut Vec<(String, i32, bool)>), &*mp) };
        // SAFETY: a pool's name is NUL-terminated in its array.
        let name = unsafe { std::ffi::CStr::from_ptr(mp.name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        // The ring handlers keep their objects in a ring named MP_<pool>.
        let ring_name = CString::new(format!("MP_{name}")).unwrap_or_default();
        // SAFETY: a valid C string; lookup only reads the shared ring list.
        let ring = unsafe { dpdk_sys::rte_ring_lookup(ring_name.as_ptr()) };
        // SAFETY: pool_data is the union's pointer member for every handler.
        let data = unsafe { mp.__bindgen_anon_1.pool_data };
        let mp_mc = !ring.is_null()
            && ring as *mut std::ffi::c_void == data
            // SAFETY: non-null, a ring of the shared list.
            && unsafe { (*ring).flags } & RING_SYNC_FLAGS == 0;
        out.push((name, mp.ops_index, mp_mc));
    }
    let mut out: Vec<(String, i32, bool)> = Vec::new();
    // SAFETY: visit only reads each pool and pushes into `out`, which
    // outlives the walk.
    unsafe {
        dpdk_sys::rte_mempool_walk(Some(visit), &mut out as *mut _ as *mut std::ffi::c_void);
    }
    out
}

/// Checks that the primary's mempool handlers have the indices ours have.
/// A pool records its handler by index into each process's own table, so
/// a tap pool is usable by both only when the tables agree; they differ
/// when the primary links a mempool driver directly that this process
/// loads later as a plugin (Debian's dpdk-testpmd links librte_mempool_dpaa
/// through librte_net_dpaa). `ours` tells which pools to skip.
pub fn check_mempool_ops(ours: &dyn Fn(&str) -> bool) -> Result<()> {
    let table = own_mempool_ops();
    let Some(mine) = table.iter().position(|n| n == RING_MP_MC) else {
        return Ok(());
    };
    let theirs = shared_pools()
        .into_iter()
        .find(|(name, _, mp_mc)| *mp_mc && !ours(name));
    let Some((pool, index, _)) = theirs else {
        // No pool of the primary's tells its order: nothing to compare.
        return Ok(());
    };
    if index as usize == mine {
        return Ok(());
    }
    Err(DpdkError::Call {
        what: "pdump".into(),
        reason: format!(
            "the primary registered its mempool handlers in another order than Sluice: its pool {pool:?} \
             has {RING_MP_MC} as handler #{index}, Sluice's is #{mine} (Sluice's order: {}), so the primary \
             could not allocate from Sluice's tap pool. The primary links a mempool driver directly that \
             Sluice loads later from the plugin directory: load it first with EAL -d <library> \
             (for Debian's dpdk-testpmd: -d /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/librte_mempool_dpaa.so.23)",
            table.join(", ")
        ),
    })
}

/// One enabled tap: a queue (or every queue) of a primary's port, in one
/// direction, copied onto `ring`. Disabled on drop.
#[derive(Debug)]
pub struct Tap {
    device: CString,
    queue: u16,
    capture: Capture,
    enabled: bool,
    /// Held until the tap is off: the primary writes into both.
    _ring: Arc<Ring<Mbuf>>,
    _pool: Arc<Mempool>,
}

impl Tap {
    /// Asks the primary to copy `device`'s packets in direction `capture`
    /// (`queue` `None`: every queue it has now) into `pool` and onto `ring`.
    pub fn enable(
        device: &str,
        queue: Option<u16>,
        capture: Capture,
        ring: &Arc<Ring<Mbuf>>,
        pool: &Arc<Mempool>,
    ) -> Result<Tap> {
        let c = CString::new(device).map_err(|_| DpdkError::Invalid {
            what: format!("pdump device {device:?}"),
            reason: "contains a NUL byte".into(),
        })?;
        let q = queue.unwrap_or(dpdk_sys::RTE_PDUMP_ALL_QUEUES as u16);
        // SAFETY: c is a valid C string the call only reads (DPDK's
        // prototype lacks const); ring and pool are MP/MC and live in shared
        // memory for as long as this Tap holds them.
        let ret = unsafe {
            dpdk_sys::rte_pdump_enable_by_deviceid(
                c.as_ptr() as *mut _,
                q,
                capture.flag(),
                ring.as_ptr(),
                pool.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if ret < 0 {
            return Err(DpdkError::Call {
                what: format!(
                    "tap {} of {device:?} (queue {})",
                    capture.name(),
                    queue.map_or("all".to_owned(), |q| q.to_string())
                ),
                reason: errno_text(ret),
            });
        }
        Ok(Tap {
            device: c,
            queue: q,
            capture,
            enabled: true,
            _ring: Arc::clone(ring),
            _pool: Arc::clone(pool),
        })
    }

    /// Asks the primary to remove a tap someone else left on `device`
    /// (a Sluice that was killed): nothing happens when there is none.
    pub fn remove_existing(device: &str, queue: Option<u16>, capture: Capture) {
        let Ok(c) = CString::new(device) else { return };
        let q = queue.unwrap_or(dpdk_sys::RTE_PDUMP_ALL_QUEUES as u16);
        // SAFETY: valid C string, only read; the primary answers -EINVAL
        // when there is no tap to remove.
        unsafe {
            dpdk_sys::rte_pdump_disable_by_deviceid(c.as_ptr() as *mut _, q, capture.flag());
        }
    }

    /// Removes the tap. The primary may still be inside a callback that
    /// saw it: keep the ring and pool a little longer than this call.
    pub fn disable(&mut self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.enabled = false;
        if !primary_alive() {
            // Gone with its callbacks.
            return Ok(());
        }
        // SAFETY: as in remove_existing.
        let ret = unsafe {
            dpdk_sys::rte_pdump_disable_by_deviceid(
                self.device.as_ptr() as *mut _,
                self.queue,
                self.capture.flag(),
            )
        };
        if ret < 0 {
            return Err(DpdkError::Call {
                what: format!("remove tap {} of {:?}", self.capture.name(), self.device),
                reason: errno_text(ret),
            });
        }
        Ok(())
    }

    pub fn capture(&self) -> Capture {
        self.capture
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.disable();
    }
}

/// What the primary's tap callbacks did for one port (both directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Copies put on our ring.
    pub accepted: u64,
    /// No mbuf in our pool for the copy.
    pub no_mbuf: u64,
    /// Our ring was full: the copy was dropped.
    pub ring_full: u64,
}

/// The primary's tap counters for `port` (since the taps were enabled).
pub fn stats(port: u16) -> Result<TapStats> {
    let mut s = dpdk_sys::rte_pdump_stats::default();
    // SAFETY: valid out-pointer; the call reads the shared statistics zone.
    let ret = unsafe { dpdk_sys::rte_pdump_stats(port, &mut s) };
    if ret < 0 {
        return Err(DpdkError::Call {
            what: format!("pdump statistics of port {port}"),
            reason: errno_text(ret),
        });
    }
    // `accepted` counts copies made; those the full ring refused are in it too.
    Ok(TapStats {
        accepted: s.accepted.saturating_sub(s.ringfull),
        no_mbuf: s.nombuf,
        ring_full: s.ringfull,
    })
}
