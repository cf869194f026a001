//! Per-socket options through URING_CMD SETSOCKOPT take effect on the
//! connection: TCP_NODELAY off turns Nagle on for that socket alone (a second
//! small send waits for the first one's ACK), on a connected socket and, by
//! inheritance, on one a listener accepts.

use ringline_ring::abi::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

/// SETSOCKOPT IPPROTO_TCP TCP_NODELAY `on` on `fd` of runtime `server` or the client.
fn set_nodelay(p: &mut Pair, server: bool, fd: i32, on: bool, ud: u64) {
    let val = Box::new(i32::from(on));
    let s = Sqe {
        opcode: IORING_OP_URING_CMD,
        fd,
        off: u64::from(SOCKET_URING_OP_SETSOCKOPT),
        addr: libc::IPPROTO_TCP as u64 | ((libc::TCP_NODELAY as u64) << 32),
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
