//! Typed lock-free rings over `rte_ring`.

use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::batch::Batch;
use super::error::{rte_errno, strerror, DpdkError, Result};
use super::mbuf::Mbuf;
use super::mempool::SOCKET_ID_ANY;

/// `RING_F_EXACT_SZ`: the ring holds exactly the capacity asked for.
const RING_F_EXACT_SZ: u32 = 0x0004;

/// A value that can travel through a ring as one pointer.
///
/// # Safety
/// `from_ptr(into_ptr(x))` must give back `x`, and the pointer must be
/// non-null and carry ownership.
pub unsafe trait RingItem: Send {
    fn into_ptr(self) -> *mut c_void;
    /// # Safety
    /// `p` must come from `into_ptr` of the same type, once.
    unsafe fn from_ptr(p: *mut c_void) -> Self;
}

// SAFETY: an mbuf pointer carries ownership of the packet.
unsafe impl RingItem for Mbuf {
    fn into_ptr(self) -> *mut c_void {
        self.into_raw().as_ptr() as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: caller guarantees p came from into_ptr, non-null.
        unsafe { Mbuf::from_raw(NonNull::new_unchecked(p as *mut dpdk_sys::rte_mbuf)) }
    }
}

// SAFETY: Box::into_raw/from_raw round-trip, never null.
unsafe impl<T: Send> RingItem for Box<T> {
    fn into_ptr(self) -> *mut c_void {
        Box::into_raw(self) as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: caller guarantees p came from Box::into_raw of a Box<T>.
        unsafe { Box::from_raw(p as *mut T) }
    }
}

/// A bounded multi-producer multi-consumer ring of `T`. Multi-producer mode
/// costs one compare-and-swap per burst, and makes every method safe from
/// any thread; items left at drop are dropped.
#[derive(Debug)]
pub struct Ring<T: RingItem> {
    ptr: NonNull<dpdk_sys::rte_ring>,
    _items: PhantomData<T>,
}

// SAFETY: MP/MC rte_ring operations are thread-safe and items are Send.
unsafe impl<T: RingItem> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: RingItem> Sync for Ring<T> {}

impl<T: RingItem> Ring<T> {
    /// A ring holding up to `capacity` items.
    pub fn new(name: &str, capacity: u32) -> Result<Ring<T>> {
        let cname = CString::new(name).map_err(|_| DpdkError::Invalid {
            what: format!("ring name {name:?}"),
            reason: "contains a NUL byte".into(),
        })?;
        // SAFETY: valid C string; flags 0 = multi-producer/multi-consumer.
        let p = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, SOCKET_ID_ANY, RING_F_EXACT_SZ)
        };
        NonNull::new(p)
            .map(|ptr| Ring {
                ptr,
                _items: PhantomData,
            })
            .ok_or_else(|| DpdkError::Call {
                what: format!("create ring {name} of {capacity}"),
                reason: strerror(rte_errno()),
            })
    }

    /// Adds one item; gives it back when the ring is full.
    pub fn enqueue(&self, item: T) -> std::result::Result<(), T> {
        let p = item.into_ptr();
        let objs = [p];
        // SAFETY: one valid pointer; MP-safe enqueue.
        let n = unsafe {
            dpdk_sys::sluice_rte_ring_enqueue_burst(
                self.ptr.as_ptr(),
                objs.as_ptr(),
                1,
                std::ptr::null_mut(),
            )
        };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: not enqueued: ownership is still ours.
            Err(unsafe { T::from_ptr(p) })
        }
    }

    /// Takes one item.
    pub fn dequeue(&self) -> Option<T> {
        let mut objs = [std::ptr::null_mut::<c_void>()];
        // SAFETY: room for one pointer; MC-safe dequeue.
        let n = unsafe {
            dpdk_sys::sluice_rte_ring_dequeue_burst(
                self.ptr.as_ptr(),
                objs.as_mut_ptr(),
                1,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: a dequeued pointer came from into_ptr of a T.
        (n == 1).then(|| unsafe { T::from_ptr(objs[0]) })
    }

    /// Items in the ring now.
    pub fn len(&self) -> usize {
        // SAFETY: plain query.
        unsafe { dpdk_sys::sluice_rte_ring_count(self.ptr.as_ptr()) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_ring {
        self.ptr.as_ptr()
    }

    /// Free places in the ring now.
    pub fn free(&self) -> usize {
        // SAFETY: plain query.
        unsafe { dpdk_sys::sluice_rte_ring_free_count(self.ptr.as_ptr()) as usize }
    }
}

impl Ring<Mbuf> {
    /// Moves packets from the front of `batch` into the ring; those that do
    /// not fit stay in the batch. Returns how many moved.
    pub fn enqueue_batch<const N: usize>(&self, batch: &mut Batch<N>) -> usize {
        let len = batch.len();
        // SAFETY: the batch holds len owned mbuf pointers; MP-safe enqueue.
        let n = unsafe {
            dpdk_sys::sluice_rte_ring_enqueue_burst(
                self.ptr.as_ptr(),
                batch.as_raw() as *const *mut c_void,
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring owns the first n now.
        unsafe { batch.consume_front(n) };
        n
    }

    /// Fills the batch's free slots from the ring; returns how many came.
    pub fn dequeue_batch<const N: usize>(&self, batch: &mut Batch<N>) -> usize {
        let (slots, free) = batch.spare_raw();
        // SAFETY: `slots` has `free` writable entries; MC-safe dequeue.
        let n = unsafe {
            dpdk_sys::sluice_rte_ring_dequeue_burst(
                self.ptr.as_ptr(),
                slots as *mut *mut c_void,
                free as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: n owned mbufs were written into those slots.
        unsafe { batch.commit(n) };
        n
    }
}

impl<T: RingItem> Drop for Ring<T> {
    fn drop(&mut self) {
        while let Some(item) = self.dequeue() {
            drop(item);
        }
        // SAFETY: the ring is empty and nobody else holds it (we are dropped).
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}
