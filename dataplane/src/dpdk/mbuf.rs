//! Owned packet buffers over `rte_mbuf`.
//!
//! [`Mbuf`] owns a chain whose first segment is a direct buffer this value
//! alone may write: the received packet, or a fresh header segment. Shared
//! (indirect) data is a separate type, [`SharedMbuf`], that can only be read
//! or put behind a new header segment — so two destinations never write into
//! the same bytes.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use dpdk_sys::rte_mbuf;

use super::error::{DpdkError, Result};
use super::mempool::Mempool;
use crate::frame::{Frame, FrameError};

/// An owned packet; freed (the whole chain) on drop.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only handle to its chain's first segment; mbufs may
// be freed from any thread (mempool put is thread-safe).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only reads the buffer.
unsafe impl Sync for Mbuf {}

/// Read-only handle to data shared with other clones (an indirect mbuf chain).
#[repr(transparent)]
#[derive(Debug)]
pub struct SharedMbuf(NonNull<rte_mbuf>);

// SAFETY: the shared data is never written through this type; refcounts are atomic.
unsafe impl Send for SharedMbuf {}
// SAFETY: as above.
unsafe impl Sync for SharedMbuf {}

/// Offset of the RX timestamp dynamic field and its flag bit (0: not
/// registered, so no mbuf carries a capture time).
static CAPTURE_TIME_OFFSET: AtomicU64 = AtomicU64::new(0);
static CAPTURE_TIME_FLAG: AtomicU64 = AtomicU64::new(0);

/// Registers DPDK's RX timestamp dynamic field (once per process; again is
/// a no-op), so that mbufs can carry their capture time. Call after EAL
/// init and before the first [`Mbuf::set_capture_time_ns`].
pub fn register_capture_time() -> Result<()> {
    if CAPTURE_TIME_FLAG.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    let (mut offset, mut flag) = (0i32, 0u64);
    // SAFETY: two valid out-pointers; registration is idempotent in DPDK.
    let ret = unsafe { dpdk_sys::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag) };
    if ret < 0 || offset < 0 || flag == 0 {
        return Err(DpdkError::Call {
            what: "register the mbuf RX timestamp field".into(),
            reason: super::error::strerror(super::error::rte_errno()),
        });
    }
    CAPTURE_TIME_OFFSET.store(offset as u64, Ordering::Relaxed);
    CAPTURE_TIME_FLAG.store(flag, Ordering::Release);
    Ok(())
}

/// Whether any mbuf may carry a capture time (a capture is replayed at
/// capture timing in this process): one load, for the fast path to skip
/// looking per packet.
#[inline]
pub fn capture_time_in_use() -> bool {
    CAPTURE_TIME_FLAG.load(Ordering::Relaxed) != 0
}

/// Segments of the chain starting at `m`.
fn segments(m: &rte_mbuf) -> impl Iterator<Item = &rte_mbuf> {
    let mut cur: *const rte_mbuf = m;
    std::iter::from_fn(move || {
        // SAFETY: `cur` is null or a segment of a valid chain owned by the
        // caller's Mbuf/SharedMbuf, which outlives the borrow.
        let seg = unsafe { cur.as_ref()? };
        cur = seg.next;
        Some(seg)
    })
}

/// Bytes of one segment.
#[inline]
fn seg_data(seg: &rte_mbuf) -> &[u8] {
    if seg.data_len == 0 {
        return &[];
    }
    // SAFETY: buf_addr + data_off .. + data_len lies inside the segment's
    // buffer by mbuf invariant, and the borrow is tied to the segment's.
    unsafe {
        std::slice::from_raw_parts(
            (seg.buf_addr as *const u8).add(seg.data_off as usize),
            seg.data_len as usize,
        )
    }
}

/// Whether a segment's buffer may be written by its holder.
fn seg_writable(seg: &rte_mbuf) -> bool {
    // SAFETY: seg is a valid mbuf; these helpers only read its fields.
    unsafe {
        dpdk_sys::sluice_rte_mbuf_is_indirect(seg) == 0
            && dpdk_sys::sluice_rte_mbuf_refcnt_read(seg) == 1
    }
}

impl Mbuf {
    /// Takes one empty mbuf from `pool`.
    pub fn alloc(pool: &Mempool) -> Result<Mbuf> {
        // SAFETY: pool is a valid mempool.
        let p = unsafe { dpdk_sys::sluice_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(p).map(Mbuf).ok_or_else(|| DpdkError::NoMbuf {
            pool: pool.name().to_owned(),
        })
    }

    /// A packet holding `bytes`, chained over as many segments as it needs.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf> {
        let mut head = Mbuf::alloc(pool)?;
        let mut rest = bytes;
        let room = head.tailroom();
        let take = rest.len().min(room);
        head.append_bytes(&rest[..take]);
        rest = &rest[take..];
        while !rest.is_empty() {
            let mut seg = Mbuf::alloc(pool)?;
            let take = rest.len().min(seg.tailroom());
            seg.append_bytes(&rest[..take]);
            rest = &rest[take..];
            head.chain(seg)?;
        }
        Ok(head)
    }

    fn append_bytes(&mut self, bytes: &[u8]) {
        if let Ok(dst) = Frame::append(self, bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid mbuf chain that nothing else owns, whose first
    /// segment is direct and not shared.
    pub(crate) unsafe fn from_raw(p: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Gives up ownership without freeing.
    pub(crate) fn into_raw(self) -> NonNull<rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    fn head(&self) -> &rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// Number of segments in the chain.
    pub fn nb_segs(&self) -> u16 {
        self.head().nb_segs
    }

    /// Port the packet was received on.
    pub fn port(&self) -> u16 {
        self.head().port
    }

    /// Sets the port the packet counts as received on (a device that does
    /// not set it, such as `net_ring`, leaves it to whoever fills the ring).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: self owns the head segment; `port` is plain metadata.
        unsafe { self.0.as_mut().port = port }
    }

    /// The time the packet was captured, when it came from a capture file
    /// replayed at capture timing ([`Mbuf::set_capture_time_ns`]); `None`
    /// for everything else. Costs one load while no capture is replayed.
    #[inline]
    pub fn capture_time_ns(&self) -> Option<u64> {
        let flag = CAPTURE_TIME_FLAG.load(Ordering::Relaxed);
        if flag == 0 || self.head().ol_flags & flag == 0 {
            return None;
        }
        let offset = CAPTURE_TIME_OFFSET.load(Ordering::Relaxed) as usize;
        // SAFETY: the flag is set only by `set_capture_time_ns`, after the
        // dynamic field at `offset` was registered: 8 aligned bytes inside
        // the mbuf header, which self owns.
        Some(unsafe { std::ptr::read(self.0.as_ptr().cast::<u8>().add(offset).cast::<u64>()) })
    }

    /// Carries the packet's capture time (ns) in DPDK's RX timestamp
    /// dynamic field, so that dedup's window runs on capture time.
    /// [`register_capture_time`] must have succeeded first; before, this
    /// does nothing.
    pub fn set_capture_time_ns(&mut self, ns: u64) {
        let flag = CAPTURE_TIME_FLAG.load(Ordering::Relaxed);
        if flag == 0 {
            return;
        }
        let offset = CAPTURE_TIME_OFFSET.load(Ordering::Relaxed) as usize;
        // SAFETY: as in `capture_time_ns`; self owns the head segment.
        unsafe {
            std::ptr::write(self.0.as_ptr().cast::<u8>().add(offset).cast::<u64>(), ns);
            self.0.as_mut().ol_flags |= flag;
        }
    }

    /// Bytes free after the last segment (0 when that segment is shared).
    pub fn tailroom(&self) -> usize {
        match segments(self.head()).last() {
            // SAFETY: last is a valid segment of our chain.
            Some(last) if seg_writable(last) => unsafe {
                dpdk_sys::sluice_rte_pktmbuf_tailroom(last) as usize
            },
            _ => 0,
        }
    }

    /// Whether the chain holds what its head says: segment lengths adding up
    /// to `pkt_len`, `nb_segs` segments, each inside its buffer. A PMD can
    /// get this wrong (net_pcap with frames over 64 KiB).
    pub fn is_consistent(&self) -> bool {
        let head = self.head();
        if head.nb_segs == 1 && head.next.is_null() {
            return head.data_len as u32 == head.pkt_len
                && head.data_off as u32 + head.data_len as u32 <= head.buf_len as u32;
        }
        let (mut len, mut n) = (0u64, 0u32);
        for seg in segments(head) {
            if seg.data_off as u32 + seg.data_len as u32 > seg.buf_len as u32 {
                return false;
            }
            len += u64::from(seg.data_len);
            n += 1;
            if n > u32::from(u16::MAX) {
                return false;
            }
        }
        len == u64::from(head.pkt_len) && n == u32::from(head.nb_segs)
    }

    /// The whole packet, all segments, as one vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pkt_len());
        for seg in segments(self.head()) {
            v.extend_from_slice(seg_data(seg));
        }
        v
    }

    /// Appends `tail`'s chain after this one.
    pub fn chain(&mut self, tail: Mbuf) -> Result<()> {
        let t = tail.into_raw();
        // SAFETY: both chains are valid and owned; on success the head takes
        // ownership of tail's segments.
        let ret = unsafe { dpdk_sys::sluice_rte_pktmbuf_chain(self.0.as_ptr(), t.as_ptr()) };
        if ret < 0 {
            // SAFETY: on failure ownership of `t` stays with us: take it back.
            drop(unsafe { Mbuf::from_raw(t) });
            return Err(DpdkError::Invalid {
                what: "mbuf chain".into(),
                reason: "too many segments".into(),
            });
        }
        Ok(())
    }

    /// Makes the packet one contiguous segment (when it fits in one buffer).
    pub fn linearize(&mut self) -> Result<()> {
        // SAFETY: self owns a valid chain.
        let ret = unsafe { dpdk_sys::sluice_rte_pktmbuf_linearize(self.0.as_ptr()) };
        if ret < 0 {
            return Err(DpdkError::Invalid {
                what: "mbuf linearize".into(),
                reason: format!("{} bytes do not fit in one segment", self.pkt_len()),
            });
        }
        Ok(())
    }

    /// A deep copy of the whole packet into mbufs of `pool`.
    pub fn copy(&self, pool: &Mempool) -> Result<Mbuf> {
        self.copy_front(pool, usize::MAX)
    }

    /// A deep copy of the packet's first `len` bytes (all of them if it
    /// has fewer) into mbufs of `pool`: what a destination that keeps only
    /// the front of the frame needs copied.
    pub fn copy_front(&self, pool: &Mempool, len: usize) -> Result<Mbuf> {
        if self.head().next.is_null() {
            self.copy_one_segment(pool, len)
        } else {
            self.copy_chain(pool, len)
        }
    }

    fn copy_chain(&self, pool: &Mempool, len: usize) -> Result<Mbuf> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        // SAFETY: self is a valid chain; the copy is a new direct chain we own.
        let p =
            unsafe { dpdk_sys::sluice_rte_pktmbuf_copy(self.0.as_ptr(), pool.as_ptr(), 0, len) };
        NonNull::new(p).map(Mbuf).ok_or_else(|| DpdkError::NoMbuf {
            pool: pool.name().to_owned(),
        })
    }

    /// [`Mbuf::copy`] of a one-segment packet: one mbuf, the header fields
    /// `rte_pktmbuf_copy` copies, one `memcpy`. The general call walks
    /// segments and offsets and cost three times as much for a 64-byte
    /// frame, on every extra destination. Also the 0-byte packet, which
    /// `rte_pktmbuf_copy` refuses (its offset 0 is not below `pkt_len`).
    fn copy_one_segment(&self, pool: &Mempool, len: usize) -> Result<Mbuf> {
        let mut c = Mbuf::alloc(pool)?;
        let src = self.head();
        let data = seg_data(src);
        let data = &data[..data.len().min(len)];
        let room = usize::from(c.head().buf_len) - usize::from(c.head().data_off);
        if room < data.len() {
            // A pool with smaller buffers than the packet's: the general copy chains.
            return self.copy_chain(pool, len);
        }
        // SAFETY: `c` is a fresh single-segment direct mbuf only we hold.
        // The header fields are plain metadata, written as rte_pktmbuf_copy
        // writes them; the data goes after the fresh buffer's headroom, in
        // the `room` bytes checked above.
        unsafe {
            let dst = c.0.as_mut();
            dst.port = src.port;
            dst.vlan_tci = src.vlan_tci;
            dst.vlan_tci_outer = src.vlan_tci_outer;
            dst.__bindgen_anon_1 = src.__bindgen_anon_1; // packet_type
            dst.__bindgen_anon_2 = src.__bindgen_anon_2; // hash
            dst.__bindgen_anon_3 = src.__bindgen_anon_3; // tx_offload
            dst.dynfield1 = src.dynfield1;
            // A copy is a direct buffer of its own.
            dst.ol_flags =
                src.ol_flags & !(dpdk_sys::RTE_MBUF_F_INDIRECT | dpdk_sys::RTE_MBUF_F_EXTERNAL);
            let at = (dst.buf_addr as *mut u8).add(usize::from(dst.data_off));
            std::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len());
            dst.data_len = data.len() as u16;
            dst.pkt_len = data.len() as u32;
        }
        Ok(c)
    }

    /// An indirect clone of the packet: no data copied, read-only.
    /// `pool` needs only small mbufs (data room 0 is enough).
    ///
    /// The original keeps its own headroom and lengths (the clone has its
    /// own copy of offset and length): `prepend`, `adj` and `trim` on it
    /// leave the clone's bytes alone. Its data bytes are the clone's too
    /// until the clone is freed, so write only in front of them.
    pub fn share(&self, pool: &Mempool) -> Result<SharedMbuf> {
        // SAFETY: self is a valid chain; the clone holds references on its buffers.
        let p = unsafe { dpdk_sys::sluice_rte_pktmbuf_clone(self.0.as_ptr(), pool.as_ptr()) };
        NonNull::new(p)
            .map(SharedMbuf)
            .ok_or_else(|| DpdkError::NoMbuf {
                pool: pool.name().to_owned(),
            })
    }
}

impl SharedMbuf {
    fn head(&self) -> &rte_mbuf {
        // SAFETY: self owns a valid indirect chain for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// Length of the shared packet.
    pub fn pkt_len(&self) -> usize {
        self.head().pkt_len as usize
    }

    /// The first segment's bytes.
    pub fn data(&self) -> &[u8] {
        seg_data(self.head())
    }

    /// An [`Mbuf`] whose first segment is a fresh, empty, writable buffer from
    /// `pool` with full headroom, followed by the shared data: tunnel headers
    /// go in front with `prepend`, the payload is never copied.
    pub fn with_header(self, pool: &Mempool) -> Result<Mbuf> {
        let mut head = Mbuf::alloc(pool)?;
        let shared = self.0;
        std::mem::forget(self);
        // SAFETY: `head` is a fresh single-segment mbuf we own; `shared` is a
        // valid chain whose ownership moves into head's chain here.
        unsafe {
            let h = head.0.as_mut();
            let s = shared.as_ptr();
            h.next = s;
            h.nb_segs = 1 + (*s).nb_segs;
            h.pkt_len = (*s).pkt_len;
        }
        Ok(head)
    }
}

impl Drop for SharedMbuf {
    fn drop(&mut self) {
        // SAFETY: we own the indirect chain; free detaches and drops references.
        unsafe { dpdk_sys::sluice_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the chain; freeing returns every segment to its pool.
        unsafe { dpdk_sys::sluice_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        seg_data(self.head())
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let seg = self.head();
        if seg.data_len == 0 {
            return &mut [];
        }
        // SAFETY: the first segment is direct and ours alone (type invariant),
        // and &mut self makes this the only live view of it.
        unsafe {
            std::slice::from_raw_parts_mut(
                (seg.buf_addr as *mut u8).add(seg.data_off as usize),
                seg.data_len as usize,
            )
        }
    }

    #[inline]
    fn pkt_len(&self) -> usize {
        self.head().pkt_len as usize
    }

    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        segments(self.head()).map(seg_data)
    }

    // headroom, prepend and adj are DPDK's static-inline functions written
    // out over the mbuf fields (rte_mbuf.h, without the debug-only sanity
    // check): a call through a C shim per packet cost more than the work.

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.head().data_off)
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> std::result::Result<&mut [u8], FrameError> {
        let have = self.headroom();
        if len > have {
            return Err(FrameError::NoHeadroom { need: len, have });
        }
        // SAFETY: we own the chain and its first segment is direct and ours
        // alone (type invariant); `len <= data_off` keeps the new start
        // inside the buffer, and data_len + len stays within buf_len since
        // data_off + data_len <= buf_len held before.
        unsafe {
            let m = self.0.as_mut();
            m.data_off -= len as u16;
            m.data_len += len as u16;
            m.pkt_len += len as u32;
            let p = (m.buf_addr as *mut u8).add(usize::from(m.data_off));
            Ok(std::slice::from_raw_parts_mut(p, len))
        }
    }

    #[inline]
    fn adj(&mut self, len: usize) -> std::result::Result<(), FrameError> {
        let have = self.head().data_len as usize;
        if len > have {
            // Headers live in the first segment; removing more than it holds
            // would leave an empty leading segment that some PMDs reject.
            return Err(FrameError::TooShort { need: len, have });
        }
        // SAFETY: we own the chain; len <= data_len (so also <= pkt_len),
        // and data_off + len <= buf_len: the start stays inside the buffer.
        unsafe {
            let m = self.0.as_mut();
            m.data_len -= len as u16;
            m.data_off += len as u16;
            m.pkt_len -= len as u32;
        }
        Ok(())
    }

    fn trim(&mut self, len: usize) -> std::result::Result<(), FrameError> {
        let total = self.pkt_len();
        if len > total {
            return Err(FrameError::TooShort {
                need: len,
                have: total,
            });
        }
        if len == 0 {
            return Ok(());
        }
        let keep = total - len;
        // Walk to the segment where the new end falls, shorten it and free
        // every segment after it, so no empty segment is left in the chain.
        // SAFETY: we own the whole chain and hold &mut self; every pointer
        // followed is a segment of it; the detached tail is freed exactly once.
        unsafe {
            let head = self.0.as_ptr();
            let mut seg = head;
            let mut before = 0usize;
            let mut nb = 1u16;
            loop {
                let s = &mut *seg;
                let end = before + s.data_len as usize;
                if keep <= end || s.next.is_null() {
                    s.data_len = (keep - before) as u16;
                    let rest = s.next;
                    s.next = std::ptr::null_mut();
                    if !rest.is_null() {
                        dpdk_sys::sluice_rte_pktmbuf_free(rest);
                    }
                    break;
                }
                before = end;
                seg = s.next;
                nb += 1;
            }
            (*head).pkt_len = keep as u32;
            (*head).nb_segs = nb;
        }
        Ok(())
    }

    fn append(&mut self, len: usize) -> std::result::Result<&mut [u8], FrameError> {
        let have = self.tailroom();
        if len > have {
            return Err(FrameError::NoTailroom { need: len, have });
        }
        // SAFETY: the last segment is writable (tailroom() checked) and has
        // `len` bytes of room, so append succeeds and returns them.
        unsafe {
            let p = dpdk_sys::sluice_rte_pktmbuf_append(self.0.as_ptr(), len as u16);
            if p.is_null() {
                return Err(FrameError::NoTailroom { need: len, have });
            }
            Ok(std::slice::from_raw_parts_mut(p as *mut u8, len))
        }
    }
}
