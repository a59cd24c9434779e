//! Transparent huge pages for large per-worker tables (the dedup table).
//!
//! A 16 MiB table on 4 KiB pages spans 4,096 pages: every random lookup
//! misses the TLB as well as the cache. Backed by 2 MiB pages it spans
//! eight. The tables stay ordinary heap memory (freed by the global
//! allocator); this only advises the kernel before the first touch.

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
