//! Criterion benchmark of the slice stage (ns per packet, bursts of 32).
//!
//! Each iteration slices a burst of 32 full-size (1514-byte) TCP frames and
//! then gives the frames their bytes back with `append` (a `VecFrame` only
//! moves its end on `trim`, so the bytes are still there): a compare and an
//! add per frame, included in the figures. Criterion's element throughput
//! is packets: ns per packet = 1e9 / (elements per second).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::parse::Layers;
use dataplane::stage::slice::{fit_to, slice_burst, SliceCounters, SliceSpec};
use dataplane::stage::BURST;

const LEN: usize = 1514;

fn frame() -> (VecFrame, Layers) {
    let mut b = vec![0u8; LEN];
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    b[14] = 0x45;
    b[16..18].copy_from_slice(&((LEN - 14) as u16).to_be_bytes());
    b[23] = 6;
    b[46] = 0x50;
    let layers = Layers {
        ethertype: 0x0800,
        l3_offset: 14,
        ip_version: 4,
        l4_proto: 6,
        l4_offset: 34,
        payload_offset: 54,
        ..Layers::default()
    };
    // Tailroom for the cut bytes is the frame's own: trim only moves the end.
    (VecFrame::new(&b), layers)
}

fn restore(frames: &mut [VecFrame]) {
    for f in frames {
        let missing = LEN - f.pkt_len();
        if missing > 0 {
            let _ = f.append(missing);
        }
    }
}

fn bench(c: &mut Criterion) {
    let (f, l) = frame();
    let mut frames = vec![f; BURST];
    let layers = [l; BURST];
    let mut counters = SliceCounters::default();

    let mut g = c.benchmark_group("slice");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, spec) in [
        ("after_l4_64", SliceSpec::AfterL4(64)),
        ("bytes_128", SliceSpec::Bytes(128)),
        ("bytes_longer_than_frame", SliceSpec::Bytes(9000)),
        ("whole", SliceSpec::Whole),
    ] {
        g.bench_function(format!("burst32/{name}"), |b| {
            b.iter(|| {
                slice_burst(&mut frames, &layers, black_box(spec), &mut counters);
                restore(&mut frames);
            })
        });
    }
    g.bench_function("burst32/fit_to_1464", |b| {
        b.iter(|| {
            for f in frames.iter_mut() {
                counters.record(fit_to(f, black_box(1464)));
            }
            restore(&mut frames);
        })
    });
    g.finish();
    black_box(counters);
}

criterion_group!(benches, bench);
criterion_main!(benches);
