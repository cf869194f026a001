//! The inline driver's wait loop on the real (TSC) clock: while the engine is
//! quiet it spins on a cheap check instead of whole steps, and time must
//! still move: a TIMEOUT fires on time inside `submit_and_wait`, and
//! `submit_and_wait_timeout` gives up at its deadline with `-ETIME`.

use std::time::{Duration, Instant};

use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::app::Timespec;
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;

#[test]
fn timers_and_deadlines_advance_while_the_engine_is_quiet() {
    let (a, _b) = LoopbackWire::pair(&WireConfig::default());
    let mut rt = open(
        a,
        &RingConfig::default(),
        EngineConfig::default(),
        Clock::monotonic(),
    )
    .expect("runtime");

    let ts = Timespec::from(Duration::from_millis(20));
    let sqe = opcode::Timeout::new(&ts).user_data(7).build();
    // SAFETY: `ts` outlives the request (it completes inside the wait below).
    unsafe { rt.push(&sqe) }.expect("SQ room");
    let t0 = Instant::now();
    rt.submit_and_wait(1).expect("wait");
    let waited = t0.elapsed();
    let cqes: Vec<_> = rt.completions().collect();
    assert_eq!(cqes.len(), 1);
    assert_eq!((cqes[0].user_data, cqes[0].res), (7, -libc::ETIME));
    // The wheel rounds up to its 1 ms tick; the spin must not stop time.
    assert!(
        waited >= Duration::from_millis(19) && waited < Duration::from_millis(500),
        "TIMEOUT of 20 ms completed after {waited:?}"
    );

    let t0 = Instant::now();
    let r = rt.submit_and_wait_timeout(1, Duration::from_millis(30));
    let waited = t0.elapsed();
    assert_eq!(r.map_err(|e| e.0), Err(libc::ETIME), "nothing to wait for");
    assert!(
        waited >= Duration::from_millis(29) && waited < Duration::from_millis(500),
        "30 ms deadline returned after {waited:?}"
    );
}
