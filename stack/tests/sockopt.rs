//! Per-socket options through URING_CMD SETSOCKOPT take effect on the
//! connection: TCP_NODELAY off turns Nagle on for that socket alone (a second
//! small send waits for the first one's ACK), on a connected socket and, by
//! inheritance, on one a listener accepts; TCP_USER_TIMEOUT gives up on a
//! peer that vanished with data outstanding.

use ringline_ring::abi::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

/// SETSOCKOPT IPPROTO_TCP TCP_NODELAY `on` on `fd` of runtime `server` or the client.
fn set_nodelay(p: &mut Pair, server: bool, fd: i32, on: bool, ud: u64) {
    set_tcp_option(p, server, fd, libc::TCP_NODELAY, i32::from(on), ud);
}

/// SETSOCKOPT IPPROTO_TCP `name` = `v` on `fd` of runtime `server` or the client.
fn set_tcp_option(p: &mut Pair, server: bool, fd: i32, name: i32, v: i32, ud: u64) {
    let val = Box::new(v);
    let s = Sqe {
        opcode: IORING_OP_URING_CMD,
        fd,
        off: u64::from(SOCKET_URING_OP_SETSOCKOPT),
        addr: libc::IPPROTO_TCP as u64 | ((name as u64) << 32),
        file_index: 4,
        addr3: &*val as *const i32 as u64,
        user_data: ud,
        ..Sqe::default()
    };
    let r = if server { &mut p.s } else { &mut p.c };
    // SAFETY: `val` lives until the CQE below, which comes within this call's steps.
    unsafe { push(r, s) };
    assert!(p.run_until(100, |p| {
        let q = if server { &p.s_cqes } else { &p.c_cqes };
        q.iter().any(|c| c.user_data == ud)
    }));
    let q = if server { &mut p.s_cqes } else { &mut p.c_cqes };
    assert_eq!(take(q, ud).unwrap().res, 0, "setsockopt");
    drop(val);
}

/// Sends 10 bytes twice from `fd`, running only the sender's engine (so no
/// ACK comes back), and returns how many segments the second send put on
/// the wire.
fn second_send_segments(p: &mut Pair, server: bool, fd: i32, ud: u64) -> u64 {
    let data = [7u8; 10];
    let mut segs = [0; 2];
    for (i, s) in segs.iter_mut().enumerate() {
        let r = if server { &mut p.s } else { &mut p.c };
        let before = r.driver().stats().tx_segments;
        let sqe = opcode::Send::new(fd, data.as_ptr(), 10)
            .user_data(ud + i as u64)
            .build();
        // SAFETY: `data` outlives the SEND, which completes within these steps.
        unsafe { push(r, sqe) };
        for _ in 0..4 {
            r.submit().unwrap();
        }
        *s = r.driver().stats().tx_segments - before;
    }
    assert_eq!(segs[0], 1, "the first small send goes out at once");
    segs[1]
}

fn pair_conn(port: u16) -> (Pair, i32) {
    let mut p = Pair::new();
    let l = listen(&mut p, port, 8);
    (p, l)
}

#[test]
fn tcp_nodelay_is_per_socket() {
    let (mut p, l) = pair_conn(7500);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    let c = connect_n(&mut p, 7500, 1, 100)[0];
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let s = take(&mut p.s_cqes, 1).unwrap().res;
    p.run(50);
    // The engine's default (EngineConfig::nagle false): TCP_NODELAY.
    assert_eq!(second_send_segments(&mut p, false, c, 10), 1);
    p.run(200);
    set_nodelay(&mut p, false, c, false, 20);
    p.run(50);
    assert_eq!(
        second_send_segments(&mut p, false, c, 30),
        0,
        "Nagle holds it"
    );
    p.run(200);
    // The other end is untouched.
    assert_eq!(second_send_segments(&mut p, true, s, 40), 1);
    p.run(200);
    set_nodelay(&mut p, false, c, true, 50);
    p.run(50);
    assert_eq!(second_send_segments(&mut p, false, c, 60), 1);
}

#[test]
fn an_accepted_socket_inherits_the_listeners_options() {
    let (mut p, l) = pair_conn(7501);
    set_nodelay(&mut p, true, l, false, 2);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    connect_n(&mut p, 7501, 1, 100);
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let s = take(&mut p.s_cqes, 1).unwrap().res;
    p.run(50);
    assert_eq!(
        second_send_segments(&mut p, true, s, 10),
        0,
        "Nagle, from the listener"
    );
}

/// How long (µs) after its SEND a RECV on a server connection whose client
/// vanished (its engine stops) with data outstanding toward it fails, and
/// with what; `None` if it has not within `limit_us`. The server's
/// `TCP_USER_TIMEOUT` is `user_ms` (0: not set).
fn vanished_peer(port: u16, user_ms: i32, limit_us: u64) -> Option<(i32, u64)> {
    use std::sync::atomic::Ordering;
    let (mut p, l) = pair_conn(port);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    connect_n(&mut p, port, 1, 100);
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let s = take(&mut p.s_cqes, 1).unwrap().res;
    if user_ms > 0 {
        set_tcp_option(&mut p, true, s, libc::TCP_USER_TIMEOUT, user_ms, 2);
    }
    p.run(50);
    let mut buf = vec![0u8; 64];
    let data = vec![5u8; 10_000];
    // SAFETY: `buf` and `data` live until after their CQEs (dropped at the end).
    unsafe {
        push(
            &mut p.s,
            opcode::Recv::new(s, buf.as_mut_ptr(), 64)
                .user_data(3)
                .build(),
        );
        push(
            &mut p.s,
            opcode::Send::new(s, data.as_ptr(), data.len() as u32)
                .user_data(4)
                .build(),
        );
    }
    // From now on only the server runs: nothing it sends is acknowledged.
    let start = p.now_us();
    let mut out = None;
    while p.now_us() - start < limit_us {
        p.clock.fetch_add(5_000, Ordering::Relaxed);
        p.s.submit().unwrap();
        reap(&mut p.s, &mut p.s_cqes);
        if let Some(c) = take(&mut p.s_cqes, 3) {
            out = Some((c.res, p.now_us() - start));
            break;
        }
    }
    if out.is_some() {
        assert_eq!(p.s.driver().stats().user_timeouts, 1);
    }
    drop((buf, data));
    out
}

#[test]
fn tcp_user_timeout_gives_up_on_a_peer_that_vanished_with_data_outstanding() {
    let (res, after) = vanished_peer(7502, 2_000, 10_000_000).expect("given up within 10 s");
    assert_eq!(res, -libc::ETIMEDOUT);
    // Counted from the data going out (the SEND, at the start).
    assert!(
        (1_990_000..=2_200_000).contains(&after),
        "given up after {after} µs (user timeout 2 s)"
    );
    // Without it, the engine keeps backing off (the idle timeout, 180 s by
    // default, is what ends such a connection).
    assert_eq!(vanished_peer(7503, 0, 10_000_000), None);
}
