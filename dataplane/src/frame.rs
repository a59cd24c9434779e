//! The buffer the stages work on.
//!
//! A [`Frame`] is one packet: its headers are contiguous at the front of
//! `data()` (the first segment, for a chained mbuf), and it may have room in
//! front for tunnel headers. `dpdk::Mbuf` implements it for the appliance;
//! [`VecFrame`] implements it for tests, benchmarks and fuzzing, so every
//! stage runs with plain `cargo test`; [`ChainFrame`] stands for a chained
//! mbuf there.

use thiserror::Error;

/// Why a frame could not be grown or shrunk as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("not enough headroom: need {need} bytes, have {have}")]
    NoHeadroom { need: usize, have: usize },
    #[error("not enough tailroom: need {need} bytes, have {have}")]
    NoTailroom { need: usize, have: usize },
    #[error("frame too short: need {need} bytes, have {have}")]
    TooShort { need: usize, have: usize },
}

/// One packet buffer. Implementations never panic on out-of-range requests:
/// they return a [`FrameError`] and leave the frame unchanged.
pub trait Frame {
    /// The contiguous bytes at the front of the frame (all of it unless chained).
    fn data(&self) -> &[u8];
    /// Mutable view of [`Frame::data`].
    fn data_mut(&mut self) -> &mut [u8];
    /// Length of the whole frame over all segments.
    fn pkt_len(&self) -> usize;
    /// Every segment's bytes in order, [`Frame::data`] first: what a stage
    /// that must read past the headers of a chained frame walks (their
    /// lengths add up to [`Frame::pkt_len`]).
    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        core::iter::once(self.data())
    }
    /// Bytes free in front of the frame.
    fn headroom(&self) -> usize;
    /// Grows the frame by `len` bytes at the front and returns them.
    fn prepend(&mut self, len: usize) -> Result<&mut [u8], FrameError>;
    /// Removes `len` bytes from the front.
    fn adj(&mut self, len: usize) -> Result<(), FrameError>;
    /// Removes `len` bytes from the end.
    fn trim(&mut self, len: usize) -> Result<(), FrameError>;
    /// Grows the frame by `len` bytes at the end and returns them.
    fn append(&mut self, len: usize) -> Result<&mut [u8], FrameError>;

    /// Keeps at most the first `len` bytes.
    fn truncate(&mut self, len: usize) {
        let total = self.pkt_len();
        if len < total {
            // Cannot fail: we trim less than the frame holds.
            let _ = self.trim(total - len);
        }
    }
}

/// Default headroom of a [`VecFrame`], the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default tailroom of a [`VecFrame`].
pub const DEFAULT_TAILROOM: usize = 64;

/// A [`Frame`] over a plain vector, with head- and tailroom like an mbuf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecFrame {
    /// A frame holding `bytes` with the default head- and tailroom.
    pub fn new(bytes: &[u8]) -> Self {
        Self::with_room(bytes, DEFAULT_HEADROOM, DEFAULT_TAILROOM)
    }

    /// A frame holding `bytes` with exactly `headroom` and `tailroom` free bytes.
    pub fn with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + bytes.len() + tailroom];
        buf[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        Self {
            buf,
            start: headroom,
            end: headroom + bytes.len(),
        }
    }

    /// Bytes free after the frame.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn pkt_len(&self) -> usize {
        self.end - self.start
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        if len > self.start {
            return Err(FrameError::NoHeadroom {
                need: len,
                have: self.start,
            });
        }
        self.start -= len;
        Ok(&mut self.buf[self.start..self.start + len])
    }

    fn adj(&mut self, len: usize) -> Result<(), FrameError> {
        if len > self.pkt_len() {
            return Err(FrameError::TooShort {
                need: len,
                have: self.pkt_len(),
            });
        }
        self.start += len;
        Ok(())
    }

    fn trim(&mut self, len: usize) -> Result<(), FrameError> {
        if len > self.pkt_len() {
            return Err(FrameError::TooShort {
                need: len,
                have: self.pkt_len(),
            });
        }
        self.end -= len;
        Ok(())
    }

    fn append(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        if len > self.tailroom() {
            return Err(FrameError::NoTailroom {
                need: len,
                have: self.tailroom(),
            });
        }
        let old = self.end;
        self.end += len;
        Ok(&mut self.buf[old..self.end])
    }
}

/// A [`Frame`] in several segments, like a chained mbuf: headers and
/// head-room in the first segment (a [`VecFrame`]), the rest of the bytes in
/// read-only segments after it. For testing and fuzzing the stages' chained
/// paths without DPDK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainFrame {
    head: VecFrame,
    tail: Vec<Vec<u8>>,
}

impl ChainFrame {
    /// `bytes` cut after each of `cuts` (offsets into `bytes`, in any order;
    /// those past the end are ignored, empty segments are not made), the
    /// first segment with the default head-room and no tail-room.
    pub fn new(bytes: &[u8], cuts: &[usize]) -> Self {
        let mut at: Vec<usize> = cuts
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < bytes.len())
            .collect();
        at.sort_unstable();
        at.dedup();
        at.push(bytes.len());
        let first = at.first().copied().unwrap_or(0);
        let tail = at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect();
        Self {
            head: VecFrame::with_room(&bytes[..first], DEFAULT_HEADROOM, 0),
            tail,
        }
    }

    /// The whole frame in one vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.segments().flatten().copied().collect()
    }
}

impl Frame for ChainFrame {
    fn data(&self) -> &[u8] {
        self.head.data()
    }

    fn data_mut(&mut self) -> &mut [u8] {
        self.head.data_mut()
    }

    fn pkt_len(&self) -> usize {
        self.head.pkt_len() + self.tail.iter().map(Vec::len).sum::<usize>()
    }

    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        core::iter::once(self.head.data()).chain(self.tail.iter().map(Vec::as_slice))
    }

    fn headroom(&self) -> usize {
        self.head.headroom()
    }

    fn prepend(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        self.head.prepend(len)
    }

    /// Within the first segment only, as `dpdk::Mbuf` does.
    fn adj(&mut self, len: usize) -> Result<(), FrameError> {
        self.head.adj(len)
    }

    fn trim(&mut self, len: usize) -> Result<(), FrameError> {
        let total = self.pkt_len();
        if len > total {
            return Err(FrameError::TooShort {
                need: len,
                have: total,
            });
        }
        let mut cut = len;
        while let Some(last) = self.tail.last_mut() {
            if cut < last.len() {
                last.truncate(last.len() - cut);
                return Ok(());
            }
            cut -= last.len();
            self.tail.pop();
        }
        self.head.trim(cut)
    }

    /// The tail segments are read-only: only an unchained frame grows.
    fn append(&mut self, len: usize) -> Result<&mut [u8], FrameError> {
        if self.tail.is_empty() {
            return self.head.append(len);
        }
        Err(FrameError::NoTailroom { need: len, have: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_uses_headroom_and_refuses_past_it() {
        let mut f = VecFrame::with_room(&[1, 2, 3], 2, 0);
        f.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(f.data(), &[8, 9, 1, 2, 3]);
        assert_eq!(
            f.prepend(1),
            Err(FrameError::NoHeadroom { need: 1, have: 0 })
        );
        assert_eq!(f.data(), &[8, 9, 1, 2, 3]);
    }

    #[test]
    fn adj_trim_append_truncate_at_the_edges() {
        let mut f = VecFrame::with_room(&[1, 2, 3, 4], 0, 1);
        assert!(f.adj(5).is_err());
        f.adj(1).unwrap();
        assert!(f.trim(4).is_err());
        f.trim(1).unwrap();
        assert_eq!(f.data(), &[2, 3]);
        assert_eq!(
            f.append(3),
            Err(FrameError::NoTailroom { need: 3, have: 2 })
        );
        f.append(2).unwrap().copy_from_slice(&[7, 7]);
        assert_eq!(f.data(), &[2, 3, 7, 7]);
        f.truncate(10);
        assert_eq!(f.pkt_len(), 4);
        f.truncate(1);
        assert_eq!(f.data(), &[2]);
        assert_eq!(f.headroom(), 1, "adj(1) moved the start by one");
    }

    #[test]
    fn a_chain_frame_holds_its_bytes_in_segments_and_trims_across_them() {
        let bytes: Vec<u8> = (0..10).collect();
        let mut f = ChainFrame::new(&bytes, &[7, 3, 3, 0, 99]);
        let segs: Vec<&[u8]> = f.segments().collect();
        assert_eq!(segs, [&bytes[..3], &bytes[3..7], &bytes[7..]]);
        assert_eq!((f.data(), f.pkt_len()), (&bytes[..3], 10));
        assert_eq!(f.to_vec(), bytes);
        assert!(f.append(1).is_err(), "a chained frame has no tailroom");
        f.trim(4).unwrap();
        assert_eq!(f.to_vec(), &bytes[..6]);
        f.truncate(2);
        assert_eq!((f.to_vec(), f.segments().count()), (bytes[..2].to_vec(), 1));
        assert!(f.trim(3).is_err());
        assert_eq!(ChainFrame::new(&[], &[]).pkt_len(), 0);
    }
}
