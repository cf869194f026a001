//! SQE links, hard links, LINK_TIMEOUT, drain, CQE_SKIP_SUCCESS and SEND_ZC.

use ringline_ring::abi::*;
use ringline_ring::app::Timespec;
use ringline_ring::opcode::{self, SafeSqe};
use ringline_testkit::pair::*;

fn nop(ud: u64, res: i32, flags: u8) -> SafeSqe {
    opcode::Nop::new()
        .inject_result(res)
        .user_data(ud)
        .sqe_flags(flags)
        .build()
}

fn listen_accept_connect(p: &mut Pair) -> (i32, i32) {
    let sa = sockaddr(SERVER_IP, 7100);
    let sp = &*sa as *const libc::sockaddr_in as *const libc::sockaddr;
    push_safe(
        &mut p.s,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(1)
            .build(),
    );
    p.step();
    let l = take(&mut p.s_cqes, 1).unwrap().res;
    // SAFETY: `sa` lives to the end of this function, after the steps below
    // that consume the BIND (it reads the address when it starts, at once).
    unsafe { push(&mut p.s, opcode::Bind::new(l, sp, 16).user_data(2).build()) };
    push_safe(&mut p.s, opcode::Listen::new(l, 8).user_data(3).build());
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(4).build());
    push_safe(
        &mut p.c,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(5)
            .build(),
    );
    p.step();
    let c = take(&mut p.c_cqes, 5).unwrap().res;
    // SAFETY: as for the BIND: the CONNECT starts in the first step below.
    unsafe {
        push(
            &mut p.c,
            opcode::Connect::new(c, sp, 16).user_data(6).build(),
        )
    };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 4)));
    let s = take(&mut p.s_cqes, 4).unwrap().res;
    assert!(s >= 0);
    p.s_cqes.clear();
    p.c_cqes.clear();
    (s, c)
}

fn results(cqes: &[Cqe]) -> Vec<(u64, i32)> {
    cqes.iter().map(|c| (c.user_data, c.res)).collect()
}

#[test]
fn failed_link_cancels_the_rest_in_order() {
    let mut p = Pair::new();
    for s in [
        nop(1, 0, IOSQE_IO_LINK),
        nop(2, -5, IOSQE_IO_LINK),
        nop(3, 0, IOSQE_IO_LINK),
        nop(4, 0, 0),
        nop(5, 0, 0),
    ] {
        push_safe(&mut p.s, s);
    }
    p.step();
    // As in Linux (conformance `link_mid_fail`): the head runs when its
    // chain is complete, the unlinked NOP 5 in the same submission, then the
    // chain's later requests.
    assert_eq!(
        results(&p.s_cqes),
        vec![
            (1, 0),
            (5, 0),
            (2, -5),
            (3, -libc::ECANCELED),
            (4, -libc::ECANCELED),
        ]
    );
}

#[test]
fn hardlink_continues_after_failure() {
    let mut p = Pair::new();
    push_safe(&mut p.s, nop(1, -5, IOSQE_IO_HARDLINK));
    push_safe(&mut p.s, nop(2, 0, 0));
    p.step();
    assert_eq!(results(&p.s_cqes), vec![(1, -5), (2, 0)]);
}

#[test]
fn chain_ends_at_submission_boundary() {
    let mut p = Pair::new();
    push_safe(&mut p.s, nop(1, 0, IOSQE_IO_LINK));
    p.step();
    push_safe(&mut p.s, nop(2, -1, 0));
    p.step();
    push_safe(&mut p.s, nop(3, 0, 0));
    p.step();
    assert_eq!(results(&p.s_cqes), vec![(1, 0), (2, -1), (3, 0)]);
}

#[test]
fn linked_request_waits_for_a_parked_one() {
    let mut p = Pair::new();
    let (sfd, cfd) = listen_accept_connect(&mut p);
    let mut buf = vec![0u8; 64];
    let recv = opcode::Recv::new(sfd, buf.as_mut_ptr(), 64)
        .user_data(10)
        .sqe_flags(IOSQE_IO_LINK);
    // SAFETY: `buf` lives to the end of the test, after the last engine step,
    // and is not touched.
    unsafe { push(&mut p.s, recv.build()) };
    push_safe(&mut p.s, nop(11, 0, 0));
    p.run(20);
    assert!(
        p.s_cqes.is_empty(),
        "the linked NOP must wait: {:?}",
        p.s_cqes
    );
    let msg = b"abc".to_vec();
    let send = opcode::Send::new(cfd, msg.as_ptr(), 3).user_data(12);
    // SAFETY: `msg` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| p.s_cqes.len() == 2));
    assert_eq!(results(&p.s_cqes), vec![(10, 3), (11, 0)]);
}

#[test]
fn link_timeout_fires_and_cancels_its_request() {
    let mut p = Pair::new();
    let (sfd, _cfd) = listen_accept_connect(&mut p);
    let mut buf = vec![0u8; 64];
    let ts = Box::new(Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    });
    let recv = opcode::Recv::new(sfd, buf.as_mut_ptr(), 64)
        .user_data(20)
        .sqe_flags(IOSQE_IO_LINK);
    // SAFETY: `buf` and `ts` live to the end of the test, after the last engine
    // step, and are not touched.
    unsafe {
        push(&mut p.s, recv.build());
        push(
            &mut p.s,
            opcode::LinkTimeout::new(&*ts).user_data(21).build(),
        );
    }
    let t0 = p.now_us();
    assert!(p.run_until(100_000, |p| p.s_cqes.len() == 2));
    assert!(p.now_us() - t0 >= 20_000, "fired early");
    let mut r = results(&p.s_cqes);
    r.sort();
    assert_eq!(r, vec![(20, -libc::ECANCELED), (21, -libc::ETIME)]);
}

/// A LINK_TIMEOUT guards the request right before it, even when that request
/// starts later in the chain (as in Linux, it is armed when its request is
/// issued): RECV -> RECV -> LINK_TIMEOUT, the first RECV completes, the
/// second waits, and the timeout cancels it.
#[test]
fn link_timeout_guards_a_request_that_starts_later_in_the_chain() {
    let mut p = Pair::new();
    let (sfd, cfd) = listen_accept_connect(&mut p);
    let mut a = vec![0u8; 64];
    let mut b = vec![0u8; 64];
    let ts = Box::new(Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    });
    let first = opcode::Recv::new(sfd, a.as_mut_ptr(), 64)
        .user_data(40)
        .sqe_flags(IOSQE_IO_LINK);
    let second = opcode::Recv::new(sfd, b.as_mut_ptr(), 64)
        .user_data(41)
        .sqe_flags(IOSQE_IO_LINK);
    // SAFETY: `a`, `b` and `ts` live to the end of the test, after the last
    // engine step, and are not touched (the timeout reads `ts` when the
    // second RECV starts, well before that).
    unsafe {
        push(&mut p.s, first.build());
        push(&mut p.s, second.build());
        push(
            &mut p.s,
            opcode::LinkTimeout::new(&*ts).user_data(42).build(),
        );
    }
    p.run(5);
    let msg = b"abc".to_vec();
    let send = opcode::Send::new(cfd, msg.as_ptr(), 3).user_data(43);
    // SAFETY: `msg` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| take(&mut p.s_cqes, 40).is_some()));
    let t0 = p.now_us();
    assert!(p.run_until(100_000, |p| p.s_cqes.len() == 2));
    assert!(p.now_us() - t0 >= 20_000, "fired early");
    let mut r = results(&p.s_cqes);
    r.sort();
    assert_eq!(r, vec![(41, -libc::ECANCELED), (42, -libc::ETIME)]);
}

#[test]
fn link_timeout_cancelled_when_request_finishes_first() {
    let mut p = Pair::new();
    let (sfd, cfd) = listen_accept_connect(&mut p);
    let mut buf = vec![0u8; 64];
    let ts = Box::new(Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    });
    let recv = opcode::Recv::new(sfd, buf.as_mut_ptr(), 64)
        .user_data(30)
        .sqe_flags(IOSQE_IO_LINK);
    // SAFETY: `buf` and `ts` live to the end of the test, after the last engine
    // step, and are not touched.
    unsafe {
        push(&mut p.s, recv.build());
        push(
            &mut p.s,
            opcode::LinkTimeout::new(&*ts).user_data(31).build(),
        );
    }
    p.run(5);
    let msg = b"hi".to_vec();
    let send = opcode::Send::new(cfd, msg.as_ptr(), 2).user_data(32);
    // SAFETY: `msg` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| p.s_cqes.len() == 2));
    assert_eq!(results(&p.s_cqes), vec![(30, 2), (31, -libc::ECANCELED)]);
    // A LINK_TIMEOUT on its own is invalid.
    // SAFETY: as above, `ts` lives to the end of the test.
    unsafe {
        push(
            &mut p.s,
            opcode::LinkTimeout::new(&*ts).user_data(33).build(),
        )
    };
    p.step();
    assert_eq!(take(&mut p.s_cqes, 33).unwrap().res, -libc::EINVAL);
}

#[test]
fn drain_waits_for_everything_before_it() {
    let mut p = Pair::new();
    let (sfd, cfd) = listen_accept_connect(&mut p);
    let mut buf = vec![0u8; 64];
    let recv = opcode::Recv::new(sfd, buf.as_mut_ptr(), 64).user_data(40);
    // SAFETY: `buf` lives to the end of the test, after the last engine step,
    // and is not touched.
    unsafe { push(&mut p.s, recv.build()) };
    push_safe(&mut p.s, nop(41, 0, IOSQE_IO_DRAIN));
    push_safe(&mut p.s, nop(42, 0, 0));
    p.run(20);
    assert!(
        p.s_cqes.is_empty(),
        "drain must hold both NOPs: {:?}",
        p.s_cqes
    );
    let msg = b"x".to_vec();
    let send = opcode::Send::new(cfd, msg.as_ptr(), 1).user_data(43);
    // SAFETY: `msg` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| p.s_cqes.len() == 3));
    assert_eq!(results(&p.s_cqes), vec![(40, 1), (41, 0), (42, 0)]);
}

#[test]
fn cqe_skip_success_posts_only_failures() {
    let mut p = Pair::new();
    push_safe(&mut p.s, nop(50, 0, IOSQE_CQE_SKIP_SUCCESS));
    push_safe(&mut p.s, nop(51, -3, IOSQE_CQE_SKIP_SUCCESS));
    push_safe(&mut p.s, nop(52, 0, 0));
    p.step();
    assert_eq!(results(&p.s_cqes), vec![(51, -3), (52, 0)]);
}

#[test]
fn send_zc_posts_request_then_notification() {
    let mut p = Pair::new();
    let (sfd, cfd) = listen_accept_connect(&mut p);
    let msg = vec![7u8; 1000];
    let zc = |ud| {
        let mut s = opcode::Send::new(sfd, msg.as_ptr(), 1000)
            .user_data(ud)
            .build();
        s.opcode = IORING_OP_SEND_ZC;
        s
    };
    let mut rz = zc(61);
    rz.ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    // SAFETY: `msg` lives to the end of the test, after the last engine step,
    // and is never written.
    unsafe {
        push(&mut p.s, zc(60));
        push(&mut p.s, rz);
    }
    p.step();
    let c: Vec<Cqe> = p.s_cqes.clone();
    assert_eq!(c.len(), 4);
    assert_eq!((c[0].user_data, c[0].res), (60, 1000));
    assert!(more(c[0].flags));
    assert_eq!(
        (c[1].user_data, c[1].res, c[1].flags),
        (60, 0, IORING_CQE_F_NOTIF)
    );
    assert_eq!(c[3].user_data, 61);
    assert_eq!(c[3].res as u32, 1 << 31, "REPORT_USAGE: data was copied");
    assert!(notif(c[3].flags) && !more(c[3].flags));
    let mut got = vec![0u8; 2000];
    let recv = opcode::Recv::new(cfd, got.as_mut_ptr(), 2000)
        .flags(libc::MSG_WAITALL)
        .user_data(62);
    // SAFETY: `got` lives to the end of the test, after the last engine step,
    // and is not touched.
    unsafe { push(&mut p.c, recv.build()) };
    assert!(p.run_until(10_000, |p| p.c_cqes.iter().any(|c| c.user_data == 62)));
    assert_eq!(take(&mut p.c_cqes, 62).unwrap().res, 2000);
}

#[test]
fn timeout_with_count_completes_after_n_cqes_or_times_out() {
    let mut p = Pair::new();
    let ts = Box::new(Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    });
    // SAFETY: `ts` lives to the end of the test, after the last engine step.
    unsafe {
        push(
            &mut p.s,
            opcode::Timeout::new(&*ts).count(3).user_data(70).build(),
        )
    };
    p.step();
    push_safe(&mut p.s, nop(71, 0, 0));
    push_safe(&mut p.s, nop(72, 0, 0));
    p.step();
    assert!(take(&mut p.s_cqes, 70).is_none(), "two CQEs are not three");
    push_safe(&mut p.s, nop(73, 0, 0));
    p.step();
    assert_eq!(take(&mut p.s_cqes, 70).map(|c| c.res), Some(0));
    // A pure timer fires with -ETIME.
    let short = Box::new(Timespec {
        tv_sec: 0,
        tv_nsec: 5_000_000,
    });
    // SAFETY: `short` lives to the end of the test, after the last engine step.
    unsafe {
        push(
            &mut p.s,
            opcode::Timeout::new(&*short).user_data(74).build(),
        )
    };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 74)));
    assert_eq!(take(&mut p.s_cqes, 74).unwrap().res, -libc::ETIME);
}
