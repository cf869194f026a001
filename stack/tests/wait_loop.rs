//! The inline driver's wait loop on the real (TSC) clock: while the engine is
//! quiet it spins on a cheap check instead of whole steps, and time must
//! still move: a TIMEOUT fires on time inside `submit_and_wait`, and
//! `submit_and_wait_timeout` gives up at its deadline with `-ETIME`.

use std::time::{Duration, Instant};

use ringline_dataplane::WireConfig;
use ringline_ring::app::Timespec;
use ringline_ring::opcode;
use ringline_testkit::pair::lone_runtime;

/// A runtime on the real clock, its wire's other end idle.
fn runtime() -> ringline::Runtime<ringline_dataplane::LoopbackPort> {
    let (rt, _peer) = lone_runtime(&WireConfig::default());
    rt
}

#[test]
fn timers_and_deadlines_advance_while_the_engine_is_quiet() {
    let mut rt = runtime();

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

/// Absolute TIMEOUTs on the real clocks: a deadline 20 ms ahead on
/// CLOCK_MONOTONIC, CLOCK_BOOTTIME and CLOCK_REALTIME fires after 20 ms (not
/// before), whatever the engine's own time origin.
#[test]
fn absolute_timeouts_follow_the_machine_clocks() {
    let mut rt = runtime();
    for (clock, flag) in [
        (libc::CLOCK_MONOTONIC, 0),
        (
            libc::CLOCK_BOOTTIME,
            ringline_ring::abi::IORING_TIMEOUT_BOOTTIME,
        ),
        (
            libc::CLOCK_REALTIME,
            ringline_ring::abi::IORING_TIMEOUT_REALTIME,
        ),
    ] {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for clock_gettime to write.
        assert_eq!(unsafe { libc::clock_gettime(clock, &mut now) }, 0);
        let at_ns = now.tv_sec * 1_000_000_000 + now.tv_nsec + 20_000_000;
        let ts = Timespec {
            tv_sec: at_ns / 1_000_000_000,
            tv_nsec: at_ns % 1_000_000_000,
        };
        let sqe = opcode::Timeout::new(&ts)
            .flags(ringline_ring::abi::IORING_TIMEOUT_ABS | flag)
            .user_data(9)
            .build();
        let t0 = Instant::now();
        // SAFETY: `ts` outlives the request (it completes inside the wait below).
        unsafe { rt.push(&sqe) }.expect("SQ room");
        rt.submit_and_wait(1).expect("wait");
        let waited = t0.elapsed();
        let cqes: Vec<_> = rt.completions().collect();
        assert_eq!((cqes[0].user_data, cqes[0].res), (9, -libc::ETIME));
        assert!(
            waited >= Duration::from_millis(19) && waited < Duration::from_millis(500),
            "clock {clock}: absolute TIMEOUT 20 ms ahead completed after {waited:?}"
        );
    }
}

/// A gateway outside the engine's subnet (or the engine's own address) is
/// refused at open, with a message that says why.
#[test]
fn a_gateway_off_the_subnet_is_refused() {
    use ringline::{open, Clock, EngineConfig};
    use ringline_dataplane::LoopbackWire;
    use ringline_ring::ring::RingConfig;
    for gw in [
        std::net::Ipv4Addr::new(192, 0, 2, 1),
        std::net::Ipv4Addr::new(10, 0, 0, 1),
    ] {
        let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
        let cfg = EngineConfig {
            ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
            prefix_len: 24,
            gateway: Some(gw),
            ..EngineConfig::default()
        };
        let err = open(nic, &RingConfig::default(), cfg, Clock::monotonic())
            .err()
            .unwrap_or_else(|| panic!("gateway {gw} accepted"));
        assert!(err.to_string().contains("gateway"), "{err}");
    }
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig {
        gateway: Some(std::net::Ipv4Addr::new(10, 0, 0, 254)),
        ..EngineConfig::default()
    };
    assert!(open(nic, &RingConfig::default(), cfg, Clock::monotonic()).is_ok());
}
