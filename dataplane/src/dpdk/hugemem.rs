//! Huge pages for large per-worker tables (the dedup table): DPDK hugepage
//! memory under EAL, transparent huge pages on the heap otherwise.
//!
//! A 16 MiB table on 4 KiB pages spans 4,096 pages: every random lookup
//! misses the TLB as well as the cache. Backed by 2 MiB pages it spans
//! eight. [`HugeSlice`] takes explicit hugepages from DPDK (what EAL
//! reserved, never subject to the kernel's THP policy);
//! [`advise_hugepages`] only advises the kernel about heap memory.

/// Huge-page size on x86-64 and arm64 (with 4 KiB base pages).
const HUGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB-aligned pages inside
/// `[addr, addr + len)` with transparent huge pages. Advice only: returns
/// whether the kernel took it (it refuses when THP is disabled, and then
/// the memory simply stays on small pages).
pub fn advise_hugepages(addr: usize, len: usize) -> bool {
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) / HUGE * HUGE;
    if end <= start {
        return false;
    }
    // SAFETY: madvise(MADV_HUGEPAGE) changes neither the contents nor the
    // validity of the mapping; the range lies inside the caller's own
    // allocation, rounded inwards to whole huge pages.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) == 0 }
}

/// A fixed-length array in DPDK's hugepage memory (`rte_malloc_socket`):
/// for the large per-worker tables, whose random lookups would otherwise
/// miss the TLB as often as the cache. Freed with `rte_free` on drop.
pub struct HugeSlice<T: Copy> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
}

// SAFETY: the slice owns its memory exclusively (as a Box would), and
// rte_free may be called from any thread.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}

impl<T: Copy> HugeSlice<T> {
    /// `len` copies of `fill` on NUMA `socket` (`SOCKET_ID_ANY` for any),
    /// every page written now so none faults in on the fast path. `None`
    /// without EAL or when DPDK has not that much memory left.
    pub fn new(len: usize, fill: T, socket: i32) -> Option<Self> {
        if !super::eal::running() || len == 0 {
            return None;
        }
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let align = std::mem::align_of::<T>().max(64) as u32;
        // SAFETY: EAL is running; a NULL type name is allowed; align is a
        // power of two (a Rust alignment, or 64).
        let raw = unsafe { dpdk_sys::rte_malloc_socket(std::ptr::null(), bytes, align, socket) };
        let ptr = std::ptr::NonNull::new(raw.cast::<T>())?;
        for i in 0..len {
            // SAFETY: i < len, inside the allocation of len Ts, aligned for
            // T; writing (not assigning) since the memory is uninitialised.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        Some(HugeSlice { ptr, len })
    }
}

impl<T: Copy> std::ops::Deref for HugeSlice<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr holds len initialised Ts (written in new) until Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: ptr came from rte_malloc_socket and is freed once, here.
        unsafe { dpdk_sys::rte_free(self.ptr.as_ptr().cast()) };
    }
}

impl<T: Copy> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeSlice").field("len", &self.len).finish()
    }
}

/// Hints the CPU to load the cache line of `x` (a `prefetcht0`), without
/// waiting for it: a burst's table lookups then overlap their misses
/// without holding the reorder buffer as plain loads do.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults and changes no state a program can
    // observe; SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
