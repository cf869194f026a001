//! Steady-state traffic through the loopback wire and the fault injector
//! allocates nothing: a counting global allocator watches the test thread.

use ringline_dataplane::{FaultConfig, FaultyNic, LoopbackWire, Nic, WireConfig, RX_BURST};
use ringline_testkit::counting::{self, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_allocates_nothing() {
    let cfg = WireConfig {
        frames_per_direction: 256,
        ..WireConfig::default()
    };
    let (mut a, b) = LoopbackWire::pair(&cfg);
    let faults = FaultConfig {
        seed: 11,
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.1,
        max_delay_polls: 4,
    };
    let mut b = FaultyNic::new(b, faults);
    let mut out = Vec::with_capacity(RX_BURST);
    let mut delivered = 0u64;

    let mut step = |a: &mut ringline_dataplane::LoopbackPort,
                    b: &mut FaultyNic<ringline_dataplane::LoopbackPort>,
                    seq: u64| {
        for i in 0..16 {
            let _ = a.tx_frame(100, &mut |buf| {
                buf[..8].copy_from_slice(&(seq + i).to_le_bytes())
            });
        }
        a.tx_flush();
        b.rx_burst(&mut out, RX_BURST);
        for f in out.drain(..) {
            delivered += 1;
            b.rx_release(f);
        }
    };

    // Warm up: nothing should allocate even here, but only steady state is
    // promised.
    for seq in 0..100 {
        step(&mut a, &mut b, seq * 16);
    }
    counting::watch();
    for seq in 100..5000 {
        step(&mut a, &mut b, seq * 16);
    }
    counting::unwatch();

    assert_eq!(counting::allocations(), 0, "allocations on the data path");
    assert!(delivered > 50_000, "traffic flowed: {delivered}");
    assert!(b.stats().dropped > 0 && b.stats().duplicated > 0 && b.stats().delayed > 0);
}
