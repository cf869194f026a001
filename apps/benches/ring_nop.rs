//! `ring_nop_roundtrip/{ringline,kernel_uring}`: one NOP from SQE to CQE.
//!
//! ringline: push, `submit_and_wait(1)` (runs one inline engine step on an
//! idle loopback wire), read and consume the CQE. kernel_uring: the same
//! through the kernel's io_uring (`io_uring_enter` with GETEVENTS).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringline_dataplane::WireConfig;
use ringline_ring::opcode;
use ringline_testkit::pair::lone_runtime;

fn nop_roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_nop_roundtrip");

    let (mut rt, _peer) = lone_runtime(&WireConfig {
        frames_per_direction: 64,
        ..WireConfig::default()
    });
    let nop = opcode::Nop::new().user_data(7).build();
    g.bench_function("ringline", |b| {
        b.iter(|| {
            rt.push_safe(&nop).expect("SQ space");
            rt.submit_and_wait(1).expect("submit");
            let cqe = rt.wait_cqe().expect("cqe");
            rt.cqe_seen();
            black_box(cqe.user_data)
        })
    });

    let mut ring = io_uring::IoUring::new(64).expect("io_uring_setup");
    let knop = io_uring::opcode::Nop::new().build().user_data(7);
    g.bench_function("kernel_uring", |b| {
        b.iter(|| {
            // SAFETY: a NOP names no memory.
            unsafe { ring.submission().push(&knop).expect("SQ space") };
            ring.submit_and_wait(1).expect("submit");
            let cqe = ring.completion().next().expect("cqe");
            black_box(cqe.user_data())
        })
    });
    g.finish();
}

criterion_group!(benches, nop_roundtrip);
criterion_main!(benches);
