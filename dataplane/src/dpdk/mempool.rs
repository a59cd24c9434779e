//! Packet mempools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;

use super::error::{rte_errno, strerror, DpdkError, Result};

/// Any NUMA socket (DPDK's `SOCKET_ID_ANY`, a macro bindgen cannot see).
pub const SOCKET_ID_ANY: i32 = -1;

/// A pool of packet buffers. Freed on drop only when no mbuf of it is in
/// use anywhere (a port's RX ring counts): otherwise it is leaked on
/// purpose, since freeing it would leave those mbufs dangling.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool's get/put operations are thread-safe (per-lcore caches
// plus a lock-free ring); the pointer is valid until Drop.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method takes &self and calls thread-safe functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with `data_room` bytes each (headroom
    /// included; `RTE_MBUF_DEFAULT_BUF_SIZE` is 2176) and a per-lcore cache.
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::Invalid {
            what: format!("mempool name {name:?}"),
            reason: "contains a NUL byte".into(),
        })?;
        // SAFETY: cname is a valid C string; EAL is initialised (pool creation
        // fails with E_RTE_NO_CONFIG otherwise, which we report).
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(p)
            .map(|ptr| Mempool {
                ptr,
                name: name.to_owned(),
            })
            .ok_or_else(|| DpdkError::Call {
                what: format!("create mempool {name} ({n} mbufs of {data_room} bytes)"),
                reason: strerror(rte_errno()),
            })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mbufs free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: ptr is a valid mempool until Drop.
        unsafe { dpdk_sys::sluice_rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs taken from the pool (in flight, in RX rings, or held).
    pub fn in_use(&self) -> u32 {
        // SAFETY: ptr is a valid mempool until Drop.
        unsafe { dpdk_sys::sluice_rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool exists any more, so nothing can
            // reach the pool after it is freed.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) }
        }
    }
}
