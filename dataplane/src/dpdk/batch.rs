//! Fixed-capacity bursts of mbufs, as DPDK's rx/tx burst functions use them.

use std::mem::MaybeUninit;

use dpdk_sys::rte_mbuf;

use super::mbuf::Mbuf;

/// Up to `N` owned packets, in order. Dropping a batch frees what it holds.
pub struct Batch<const N: usize = 32> {
    slots: [MaybeUninit<Mbuf>; N],
    len: usize,
}

impl<const N: usize> Default for Batch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for Batch<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("len", &self.len).finish()
    }
}

impl<const N: usize> Batch<N> {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            slots: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    pub const CAPACITY: usize = N;

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds a packet at the end; gives it back when the batch is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.slots[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last packet.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside the live range.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// Removes packet `i`, replacing it with the last one (order changes).
    pub fn swap_remove(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        self.slots.swap(i, self.len - 1);
        self.pop()
    }

    /// The packets, in order.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first `len` slots are initialised; MaybeUninit<Mbuf> has
        // Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr() as *const Mbuf, self.len) }
    }

    /// The packets, in order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, with &mut self for exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Keeps the packets for which `keep` is true, in order; frees the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let len = self.len;
        self.len = 0;
        for i in 0..len {
            // SAFETY: slot i < old len is initialised and read exactly once.
            let mut m = unsafe { self.slots[i].assume_init_read() };
            if keep(&mut m) {
                self.slots[self.len].write(m);
                self.len += 1;
            }
        }
    }

    /// Takes every packet out, in order; packets not iterated are freed.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let len = self.len;
        self.len = 0;
        Drain {
            batch: self,
            next: 0,
            len,
        }
    }

    /// Takes every packet out, in order, handing each to `f`: a whole
    /// burst's loop without [`Drain`]'s bookkeeping (an index and a length
    /// kept across calls; here it is one pass over the filled slots).
    #[inline(always)]
    pub fn drain_each(&mut self, mut f: impl FnMut(Mbuf)) {
        let len = self.len;
        self.len = 0;
        for slot in &self.slots[..len] {
            // SAFETY: slots 0..len were initialised and the batch's len is
            // already 0, so each is read exactly once.
            f(unsafe { slot.assume_init_read() });
        }
    }

    /// Free slots at the end, as raw pointers for `rte_eth_rx_burst` and
    /// `rte_ring_dequeue_burst`.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut rte_mbuf, usize) {
        // SAFETY: the pointer stays inside the slot array (len <= N).
        let p = unsafe { self.slots.as_mut_ptr().add(self.len) } as *mut *mut rte_mbuf;
        (p, N - self.len)
    }

    /// Marks `n` more slots as filled by DPDK.
    ///
    /// # Safety
    /// The `n` slots after the current end must now hold owned, valid mbufs.
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// The packets as raw pointers for `rte_eth_tx_burst`/`rte_ring_enqueue_burst`.
    pub(crate) fn as_raw(&mut self) -> *mut *mut rte_mbuf {
        self.slots.as_mut_ptr() as *mut *mut rte_mbuf
    }

    /// Forgets the first `n` packets, which DPDK now owns, and moves the rest
    /// to the front in order.
    ///
    /// # Safety
    /// The first `n` packets must have been handed over to DPDK.
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        // MaybeUninit slots need no drop: rotating only moves pointers.
        self.slots[..self.len].rotate_left(n);
        self.len -= n;
    }
}

impl<const N: usize> Drop for Batch<N> {
    fn drop(&mut self) {
        self.drain();
    }
}

/// Iterator of [`Batch::drain`].
pub struct Drain<'a, const N: usize> {
    batch: &'a mut Batch<N>,
    next: usize,
    len: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.len {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slots 0..len were initialised when the drain began (the
        // batch's len is already 0) and each is read exactly once.
        Some(unsafe { self.batch.slots[i].assume_init_read() })
    }
}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}

// Mbuf is a transparent pointer: the raw casts above depend on it.
const _: () = assert!(std::mem::size_of::<Mbuf>() == std::mem::size_of::<*mut rte_mbuf>());
