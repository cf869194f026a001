//! TIMEOUT beyond the relative one-shot timer, on the deterministic two-engine
//! harness (virtual clock: absolute times are engine µs): absolute deadlines,
//! multishot timers, `IORING_TIMEOUT_UPDATE` and `IORING_LINK_TIMEOUT_UPDATE`,
//! `IORING_TIMEOUT_ETIME_SUCCESS` in a link, and the flag combinations the
//! kernel refuses. The real-clock side of absolute times is in `wait_loop.rs`,
//! the comparison with the kernel in the conformance suite.

use ringline_ring::abi::*;
use ringline_ring::app::Timespec;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

fn ts_us(us: u64) -> Box<Timespec> {
    Box::new(Timespec {
        tv_sec: (us / 1_000_000) as i64,
        tv_nsec: ((us % 1_000_000) * 1000) as i64,
    })
}

/// Steps until a CQE with `ud` arrives; returns it and the clock then.
fn wait_for(p: &mut Pair, ud: u64) -> (Cqe, u64) {
    for _ in 0..100_000 {
        if let Some(c) = take(&mut p.s_cqes, ud) {
            return (c, p.now_us());
        }
        p.step();
    }
    panic!("no CQE for {ud}");
}

#[test]
fn absolute_timeout_fires_at_its_time_not_before() {
    let mut p = Pair::new();
    p.run(3);
    let at = p.now_us() + 50_000;
    let ts = ts_us(at);
    let sqe = opcode::Timeout::new(&*ts)
        .flags(IORING_TIMEOUT_ABS)
        .user_data(1)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let (c, when) = wait_for(&mut p, 1);
    assert_eq!(c.res, -libc::ETIME);
    assert!(when >= at, "fired at {when}, deadline {at}");
    assert!(when < at + 10_000, "fired late: {when} for {at}");

    // A time already past fires at once.
    let ts = ts_us(1);
    let sqe = opcode::Timeout::new(&*ts)
        .flags(IORING_TIMEOUT_ABS | IORING_TIMEOUT_REALTIME)
        .user_data(2)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let start = p.now_us();
    let (c, when) = wait_for(&mut p, 2);
    assert_eq!(c.res, -libc::ETIME);
    assert!(
        when - start <= 4_000,
        "past deadline took {} µs",
        when - start
    );
}

#[test]
fn multishot_timeout_fires_count_times_then_ends() {
    let mut p = Pair::new();
    let ts = ts_us(5_000);
    let sqe = opcode::Timeout::new(&*ts)
        .count(3)
        .flags(IORING_TIMEOUT_MULTISHOT)
        .user_data(1)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let start = p.now_us();
    let mut times = Vec::new();
    let mut flags = Vec::new();
    for _ in 0..3 {
        let (c, when) = wait_for(&mut p, 1);
        assert_eq!(c.res, -libc::ETIME);
        times.push(when - start);
        flags.push(c.flags & IORING_CQE_F_MORE != 0);
    }
    assert_eq!(flags, vec![true, true, false], "F_MORE on all but the last");
    for (i, t) in times.iter().enumerate() {
        assert!(*t >= 5_000 * (i as u64 + 1), "firing {i} at {t} µs");
    }
    p.run(200);
    assert!(
        take(&mut p.s_cqes, 1).is_none(),
        "nothing after the last firing"
    );
    assert_eq!(p.s.driver().stats().ops_in_flight, 0);
}

#[test]
fn unlimited_multishot_timeout_runs_until_cancelled() {
    let mut p = Pair::new();
    let ts = ts_us(2_000);
    let sqe = opcode::Timeout::new(&*ts)
        .flags(IORING_TIMEOUT_MULTISHOT)
        .user_data(1)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    for _ in 0..10 {
        let (c, _) = wait_for(&mut p, 1);
        assert_eq!(
            (c.res, c.flags & IORING_CQE_F_MORE),
            (-libc::ETIME, IORING_CQE_F_MORE)
        );
    }
    push_safe(&mut p.s, opcode::AsyncCancel::new(1).user_data(2).build());
    let (c, _) = wait_for(&mut p, 2);
    assert_eq!(c.res, 0);
    let (c, _) = wait_for(&mut p, 1);
    assert_eq!((c.res, c.flags & IORING_CQE_F_MORE), (-libc::ECANCELED, 0));
    // Expiries and the cancel are counted apart from failures.
    let st = p.s.driver().stats();
    assert_eq!((st.op_timeouts, st.op_cancelled, st.op_errors), (10, 1, 0));
    push_safe(&mut p.s, opcode::AsyncCancel::new(1).user_data(3).build());
    assert_eq!(wait_for(&mut p, 3).0.res, -libc::ENOENT);
    assert_eq!(
        p.s.driver().stats().op_errors,
        1,
        "a cancel that found nothing failed"
    );
}

#[test]
fn update_moves_a_pending_timeout_and_removes_its_count() {
    let mut p = Pair::new();
    let long = ts_us(10_000_000);
    let sqe = opcode::Timeout::new(&*long).count(100).user_data(1).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    p.run(3);
    let short = ts_us(20_000);
    let start = p.now_us();
    let sqe = opcode::TimeoutUpdate::new(1, &*short).user_data(2).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let (c, _) = wait_for(&mut p, 2);
    assert_eq!(c.res, 0, "update");
    // The count is gone: 150 NOPs do not complete it.
    for i in 0..150 {
        push_safe(&mut p.s, opcode::Nop::new().user_data(1000 + i).build());
    }
    p.step();
    assert!(!p.s_cqes.iter().any(|c| c.user_data == 1), "count removed");
    let (c, when) = wait_for(&mut p, 1);
    assert_eq!(c.res, -libc::ETIME);
    assert!(
        when - start >= 20_000 && when - start < 30_000,
        "{} µs",
        when - start
    );

    // Unknown targets.
    let sqe = opcode::TimeoutUpdate::new(77, &*short).user_data(3).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    assert_eq!(wait_for(&mut p, 3).0.res, -libc::ENOENT);
    push_safe(
        &mut p.s,
        opcode::TimeoutRemove::new(77).user_data(4).build(),
    );
    assert_eq!(wait_for(&mut p, 4).0.res, -libc::ENOENT);

    // An absolute update.
    let sqe = opcode::Timeout::new(&*long).user_data(5).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    p.step();
    let at = p.now_us() + 8_000;
    let abs = ts_us(at);
    let sqe = opcode::TimeoutUpdate::new(5, &*abs)
        .abs()
        .user_data(6)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    assert_eq!(wait_for(&mut p, 6).0.res, 0);
    let (c, when) = wait_for(&mut p, 5);
    assert_eq!(c.res, -libc::ETIME);
    assert!(when >= at && when < at + 5_000, "{when} for {at}");
}

#[test]
fn link_timeout_update_shortens_the_guard() {
    let mut p = Pair::new();
    // A TIMEOUT of 10 s guarded by a LINK_TIMEOUT of 10 s; updating the
    // guard to 5 ms cancels the TIMEOUT then.
    let long = ts_us(10_000_000);
    let sqe = opcode::Timeout::new(&*long)
        .sqe_flags(IOSQE_IO_LINK)
        .user_data(1)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let sqe = opcode::LinkTimeout::new(&*long).user_data(2).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    p.run(3);
    let short = ts_us(5_000);
    let sqe = opcode::TimeoutUpdate::new(2, &*short)
        .link()
        .user_data(3)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    assert_eq!(wait_for(&mut p, 3).0.res, 0);
    assert_eq!(wait_for(&mut p, 2).0.res, -libc::ETIME);
    assert_eq!(wait_for(&mut p, 1).0.res, -libc::ECANCELED);
    // A plain update does not find a link timeout, nor a link update a TIMEOUT.
    let sqe = opcode::Timeout::new(&*long).user_data(4).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let sqe = opcode::TimeoutUpdate::new(4, &*short)
        .link()
        .user_data(5)
        .build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    assert_eq!(wait_for(&mut p, 5).0.res, -libc::ENOENT);
}

#[test]
fn etime_success_keeps_the_link_going() {
    let mut p = Pair::new();
    let ts = ts_us(1_000);
    for (flags, base, want) in [
        (IORING_TIMEOUT_ETIME_SUCCESS, 10, 0),
        (0, 20, -libc::ECANCELED),
    ] {
        let sqe = opcode::Timeout::new(&*ts)
            .flags(flags)
            .sqe_flags(IOSQE_IO_LINK)
            .user_data(base)
            .build();
        // SAFETY: the timespec is boxed and lives to the end of the test, after the last
        // engine step.
        unsafe { push(&mut p.s, sqe) };
        push_safe(&mut p.s, opcode::Nop::new().user_data(base + 1).build());
        assert_eq!(wait_for(&mut p, base).0.res, -libc::ETIME);
        assert_eq!(wait_for(&mut p, base + 1).0.res, want, "flags {flags:#x}");
    }
}

#[test]
fn bad_timeout_flags_get_einval() {
    let mut p = Pair::new();
    let ts = ts_us(1_000);
    let bad = [
        IORING_TIMEOUT_ABS | IORING_TIMEOUT_MULTISHOT,
        IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME,
        1 << 8,
        IORING_TIMEOUT_UPDATE,
    ];
    for (i, f) in bad.iter().enumerate() {
        let ud = 100 + i as u64;
        let sqe = opcode::Timeout::new(&*ts).flags(*f).user_data(ud).build();
        // SAFETY: the timespec is boxed and lives to the end of the test, after the last
        // engine step.
        unsafe { push(&mut p.s, sqe) };
        assert_eq!(wait_for(&mut p, ud).0.res, -libc::EINVAL, "flags {f:#x}");
    }
    // Negative times (a nanosecond count of a second or more is no error:
    // Linux's prep checks only the signs, conformance `timeout_bad_timespec`).
    for (i, t) in [(-1i64, 0i64), (0, -1)].iter().enumerate() {
        let bad_ts = Box::new(Timespec {
            tv_sec: t.0,
            tv_nsec: t.1,
        });
        let ud = 200 + i as u64;
        let sqe = opcode::Timeout::new(&*bad_ts).user_data(ud).build();
        // SAFETY: `bad_ts` is boxed and lives until after this TIMEOUT's CQE (wait_for below).
        unsafe { push(&mut p.s, sqe) };
        assert_eq!(wait_for(&mut p, ud).0.res, -libc::EINVAL, "{t:?}");
    }
    // Updates: both update kinds at once, a clock flag, and remove with flags.
    let sqe = opcode::Timeout::new(&*ts).user_data(300).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    let mut both = opcode::TimeoutUpdate::new(300, &*ts).user_data(301).build();
    both.op_flags |= IORING_LINK_TIMEOUT_UPDATE;
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, both) };
    assert_eq!(wait_for(&mut p, 301).0.res, -libc::EINVAL);
    let mut clock = opcode::TimeoutUpdate::new(300, &*ts).user_data(302).build();
    clock.op_flags |= IORING_TIMEOUT_BOOTTIME;
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, clock) };
    assert_eq!(wait_for(&mut p, 302).0.res, -libc::EINVAL);
    let mut rm = opcode::TimeoutRemove::new(300)
        .user_data(303)
        .build()
        .into_sqe();
    rm.op_flags = IORING_TIMEOUT_ABS;
    // SAFETY: a TIMEOUT_REMOVE names no memory (its addr is a user_data).
    unsafe { push(&mut p.s, rm) };
    assert_eq!(wait_for(&mut p, 303).0.res, -libc::EINVAL);
    assert_eq!(wait_for(&mut p, 300).0.res, -libc::ETIME, "still armed");
}

/// `next_deadline_us` says when the engine next has timer work, so a driver
/// can sleep until then: nothing (only a frame or an SQE can wake a fresh
/// engine), the TIMEOUT's time once one is armed, a connection's timer (the
/// delayed ACK) while it is earlier, and the current time while work waits.
#[test]
fn next_deadline_names_the_next_timer() {
    let mut p = Pair::new();
    p.run(3);
    assert_eq!(p.s.driver().next_deadline_us(), None, "idle, nothing armed");
    let now = p.now_us();
    let at = now + 400_000;
    let ts = ts_us(400_000);
    let sqe = opcode::Timeout::new(&*ts).user_data(9).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    p.s.submit().expect("submit");
    assert_eq!(p.s.driver().next_deadline_us(), Some(at));

    // Connections: the server's per-connection timers join in; the
    // earliest deadline is never later than the TIMEOUT's.
    listen(&mut p, 7000, 8);
    connect_n(&mut p, 7000, 1, 100);
    let d = p.s.driver().next_deadline_us().expect("a deadline");
    assert!(d <= at, "{d} after the TIMEOUT's {at}");

    let (c, when) = wait_for(&mut p, 9);
    assert_eq!(c.res, -libc::ETIME);
    assert!(when >= at);
}

/// A counted TIMEOUT removed before its count is reached leaves no trace: a
/// new counted TIMEOUT that reuses its op slot, with the same deadline,
/// completes after its own count, not the removed one's.
#[test]
fn a_removed_counted_timeout_does_not_complete_its_successor() {
    let mut p = Pair::new();
    p.run(3);
    let ts = ts_us(1_000_000);
    let sqe = opcode::Timeout::new(&*ts).count(5).user_data(1).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    push_safe(&mut p.s, opcode::TimeoutRemove::new(1).user_data(2).build());
    let sqe = opcode::Timeout::new(&*ts).count(100).user_data(3).build();
    // SAFETY: the timespec is boxed and lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.s, sqe) };
    p.step();
    assert_eq!(take(&mut p.s_cqes, 2).map(|c| c.res), Some(0));
    assert_eq!(
        take(&mut p.s_cqes, 1).map(|c| c.res),
        Some(-libc::ECANCELED)
    );
    for i in 0..10 {
        push_safe(&mut p.s, opcode::Nop::new().user_data(100 + i).build());
        p.step();
    }
    assert!(
        take(&mut p.s_cqes, 3).is_none(),
        "completed after 10 of its 100 CQEs"
    );
}

/// ASYNC_CANCEL with `IORING_ASYNC_CANCEL_ANY` over a request guarded by a
/// LINK_TIMEOUT: cancelling the request ends its timeout too, and the
/// cancel must not complete that timeout a second time (it did: the op
/// slot was freed twice, a panic in debug builds and a corrupted op table
/// in release ones). Found by `ringline http`'s shutdown, which cancels
/// every RECV it guards with a LINK_TIMEOUT.
#[test]
fn cancel_any_over_a_link_timeout_completes_each_request_once() {
    let mut p = Pair::new();
    let long = ts_us(10_000_000);
    let guard = ts_us(5_000_000);
    for i in 0..3u64 {
        // SAFETY: both timespecs live to the end of the test.
        unsafe {
            push(
                &mut p.s,
                opcode::Timeout::new(&*long)
                    .user_data(10 + i)
                    .sqe_flags(IOSQE_IO_LINK)
                    .build(),
            );
            push(
                &mut p.s,
                opcode::LinkTimeout::new(&*guard).user_data(20 + i).build(),
            );
        }
    }
    p.run(3);
    push_safe(
        &mut p.s,
        opcode::AsyncCancel::new(0).any().user_data(99).build(),
    );
    p.run(10);
    let (c, _) = wait_for(&mut p, 99);
    assert!(c.res >= 3, "cancelled {}", c.res);
    for ud in (10..13).chain(20..23) {
        let n = p.s_cqes.iter().filter(|c| c.user_data == ud).count();
        assert_eq!(n, 1, "one CQE for {ud}: {:?}", p.s_cqes);
    }
    assert_eq!(p.s.driver().stats().ops_in_flight, 0);
}
