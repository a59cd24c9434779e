//! sample: keep one packet in N, or one flow in N.
//!
//! - [`SampleSpec::OneInN`]: packet `k` through a sampler (counting from 0)
//!   is kept iff `k % n == 0` — exact and deterministic, with no random
//!   numbers. Each worker has its own sampler, so the count is exact per
//!   worker; over RSS-spread workers the total is within one packet per
//!   worker of `packets / n`.
//! - [`SampleSpec::FlowHash`]: a packet is kept iff the symmetric flow hash
//!   ([`encap::flow_hash`], the same on every worker and every run) of its
//!   five-tuple is `0 mod n`, so a flow is kept or dropped whole, both
//!   directions alike, and about one flow in `n` is kept.
//!
//! Tool groups pick their member from the hash's top bits, so a flow
//! sampler (which looks at `hash % n`) does not skew a group behind it.

use thiserror::Error;

use crate::frame::Frame;
use crate::stage::encap;
use crate::stage::parse::Layers;

/// How a rule or destination samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleSpec {
    /// Every `n`th packet, the first one included.
    OneInN(u32),
    /// Every flow whose hash is `0 mod one_in`.
    FlowHash { one_in: u32 },
}

/// Why a [`SampleSpec`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SampleError {
    #[error("sampling 1 in 0: the rate must be at least 1")]
    Zero,
}

/// Per-worker counters of one sampler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleCounters {
    pub kept: u64,
    /// Packets the sampler did not keep.
    pub sampled_out: u64,
}

impl SampleCounters {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &SampleCounters) {
        self.kept += o.kept;
        self.sampled_out += o.sampled_out;
    }

    /// `(counter name, value)` for every counter.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [("kept", self.kept), ("sampled_out", self.sampled_out)].into_iter()
    }
}

/// One sampler on one worker.
#[derive(Clone, Debug)]
pub struct Sampler {
    spec: SampleSpec,
    /// Packets seen modulo `n`: the next one is kept when this is 0.
    phase: u32,
    counters: SampleCounters,
}

impl Sampler {
    pub fn new(spec: SampleSpec) -> Result<Sampler, SampleError> {
        match spec {
            SampleSpec::OneInN(0) | SampleSpec::FlowHash { one_in: 0 } => Err(SampleError::Zero),
            _ => Ok(Sampler {
                spec,
                phase: 0,
                counters: SampleCounters::default(),
            }),
        }
    }

    pub fn spec(&self) -> SampleSpec {
        self.spec
    }

    pub fn counters(&self) -> &SampleCounters {
        &self.counters
    }

    /// Whether to keep `frame`, whose parse is `layers`; counts the answer.
    #[inline]
    pub fn keep<F: Frame>(&mut self, frame: &F, layers: &Layers) -> bool {
        let keep = match self.spec {
            SampleSpec::OneInN(n) => {
                let keep = self.phase == 0;
                self.phase += 1;
                if self.phase == n {
                    self.phase = 0;
                }
                keep
            }
            SampleSpec::FlowHash { one_in } => {
                encap::flow_hash(Some(layers), frame.data()).is_multiple_of(one_in)
            }
        };
        self.counters.kept += u64::from(keep);
        self.counters.sampled_out += u64::from(!keep);
        keep
    }

    /// `keep[i]` for `frames[i]` with `layers[i]`, over the shortest of the
    /// three slices.
    pub fn keep_burst<F: Frame>(&mut self, frames: &[F], layers: &[Layers], keep: &mut [bool]) {
        for ((f, l), k) in frames.iter().zip(layers).zip(keep) {
            *k = self.keep(f, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VecFrame;
    use crate::stage::parse::parse;
    use etherparse::PacketBuilder;

    fn udp(a: [u8; 4], b: [u8; 4], pa: u16, pb: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(a, b, 64)
            .udp(pa, pb)
            .write(&mut out, b"sample")
            .unwrap();
        out
    }

    fn keep(s: &mut Sampler, bytes: &[u8]) -> bool {
        s.keep(&VecFrame::new(bytes), &parse(bytes))
    }

    #[test]
    fn one_in_n_keeps_exactly_every_nth_packet() {
        let f = udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        for n in [1u32, 2, 7, 64] {
            let mut s = Sampler::new(SampleSpec::OneInN(n)).unwrap();
            // The same packets, not just as many.
            let kept: Vec<usize> = (0..1000).filter(|_| keep(&mut s, &f)).collect();
            let want: Vec<usize> = (0..1000usize)
                .filter(|k| k.is_multiple_of(n as usize))
                .collect();
            assert_eq!(kept, want);
            let c = s.counters();
            assert_eq!((c.kept + c.sampled_out, c.kept), (1000, want.len() as u64));
        }
        assert_eq!(
            Sampler::new(SampleSpec::OneInN(0)).err(),
            Some(SampleError::Zero)
        );
        assert_eq!(
            Sampler::new(SampleSpec::FlowHash { one_in: 0 }).err(),
            Some(SampleError::Zero)
        );
    }

    #[test]
    fn flow_sampling_keeps_whole_flows_in_both_directions() {
        let n = 4;
        let mut s = Sampler::new(SampleSpec::FlowHash { one_in: n }).unwrap();
        let mut kept_flows = 0;
        for i in 0..1000u32 {
            let a = (0x0a00_0000 + i * 7919).to_be_bytes();
            let b = (0xc0a8_0000 + i * 104_729).to_be_bytes();
            let (pa, pb) = (1024 + (i * 31) as u16, 443);
            let there = udp(a, b, pa, pb);
            let back = udp(b, a, pb, pa);
            let first = keep(&mut s, &there);
            for _ in 0..3 {
                assert_eq!(keep(&mut s, &there), first, "flow {i} split");
                assert_eq!(keep(&mut s, &back), first, "flow {i}'s reply split");
            }
            kept_flows += usize::from(first);
        }
        // About one in four, never all or none.
        assert!((200..300).contains(&kept_flows), "{kept_flows} of 1000");
        assert_eq!(s.counters().kept, 7 * kept_flows as u64);
        assert_eq!(s.counters().kept + s.counters().sampled_out, 7000);
    }
}
