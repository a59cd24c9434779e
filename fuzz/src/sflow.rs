//! Target `sflow`: an sFlow v5 datagram as the intake reads it, straight
//! from the wire: header, every sample, every flow and counter record.
//!
//! Input: the UDP payload. Checks: no panic, every sample and record the
//! walk hands out lies inside the input, and a walk ends after at most as
//! many items as the counts said (one of them possibly the error that
//! ended it).

use dataplane::wire::sflow::{CountersSample, Datagram, FlowSample, IfCounters, RawPacketHeader};

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

pub fn run(data: &[u8]) {
    let Ok(d) = Datagram::new_checked(data) else {
        return;
    };
    let _ = (d.agent_address(), d.sequence(), d.uptime_ms());
    let mut n = 0u64;
    for s in d.samples() {
        n += 1;
        let Ok(s) = s else { break };
        assert!(inside(data, s.data), "a sample outside the datagram");
        if let Ok(f) = FlowSample::parse(&s) {
            for r in f.records.flatten() {
                assert!(inside(s.data, r.data), "a flow record outside its sample");
                if let Ok(h) = RawPacketHeader::parse(&r) {
                    assert!(inside(r.data, h.header), "a header outside its record");
                }
            }
        } else if let Ok(c) = CountersSample::parse(&s) {
            for r in c.records.flatten() {
                assert!(inside(s.data, r.data), "a counter record outside its sample");
                let _ = IfCounters::parse(&r);
            }
        }
    }
    assert!(n <= u64::from(d.sample_count()), "more samples than counted");
}
