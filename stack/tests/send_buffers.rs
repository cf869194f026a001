//! SEND from provided buffers under back-pressure (the sweep and the
//! conformance suite send small amounts, which always fit): a send bundle
//! of 4 MiB through a 1 MiB send buffer waits for room and sends every
//! byte in order in one CQE (the group then empty); a single provided
//! buffer larger than the room completes with what fit, as a SEND without
//! MSG_WAITALL does, the buffer consumed.

use ringline_ring::abi::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

const SIZE: usize = 256 << 10;
const BUFS: usize = 16;

/// A connected pair: (server fd, client fd).
fn connected(p: &mut Pair) -> (i32, i32) {
    let l = listen(p, 7500, 4);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    let cfd = connect_n(p, 7500, 1, 100)[0];
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    (take(&mut p.s_cqes, 1).unwrap().res, cfd)
}

fn send_select(fd: i32, ud: u64, group: u16, bundle: bool) -> Sqe {
    Sqe {
        opcode: IORING_OP_SEND,
        fd,
        flags: IOSQE_BUFFER_SELECT,
        buf_index: group,
        ioprio: if bundle { IORING_RECVSEND_BUNDLE } else { 0 },
        user_data: ud,
        ..Sqe::default()
    }
}

/// Runs the pair, the client receiving into `rx`, until the server has a
/// CQE for `ud` (if any) and the client holds `want` bytes (or 200k rounds).
fn run_reading(
    p: &mut Pair,
    cfd: i32,
    ud: Option<u64>,
    rx: &mut Vec<u8>,
    want: usize,
) -> Option<Cqe> {
    let mut buf = vec![0u8; 64 << 10];
    let mut armed = false;
    let mut done = None;
    for _ in 0..200_000 {
        if !armed {
            let r = opcode::Recv::new(cfd, buf.as_mut_ptr(), buf.len() as u32)
                .user_data(50)
                .build();
            // SAFETY: `buf` outlives the request: the loop waits for its CQE
            // before reusing or dropping it (the last one is awaited below).
            unsafe { push(&mut p.c, r) };
            armed = true;
        }
        p.step();
        if let Some(c) = take(&mut p.c_cqes, 50) {
            assert!(c.res > 0, "client recv: {}", c.res);
            rx.extend_from_slice(&buf[..c.res as usize]);
            armed = false;
        }
        if let (None, Some(ud)) = (&done, ud) {
            done = take(&mut p.s_cqes, ud);
        }
        if (ud.is_none() || done.is_some()) && rx.len() >= want {
            break;
        }
    }
    if armed {
        // Let the outstanding RECV end before `buf` goes.
        push_safe(&mut p.c, opcode::AsyncCancel::new(50).user_data(51).build());
        assert!(p.run_until(10_000, |p| p.c_cqes.iter().any(|c| c.user_data == 50)));
    }
    done
}

#[test]
fn bundles_and_buffers_under_back_pressure() {
    // 1 MiB socket buffers each way on both ends (the default is larger).
    let mut o = PairOpts::default();
    for e in [&mut o.server, &mut o.client] {
        e.rx_buffer = 1 << 20;
        e.tx_buffer = 1 << 20;
    }
    let mut p = Pair::with(o);
    let (sfd, cfd) = connected(&mut p);
    let data: Vec<u8> = (0..BUFS * SIZE).map(|i| (i * 7 % 251) as u8).collect();
    let base = data.as_ptr() as u64;
    let mut ring = p.s.register_buf_ring(BUFS as u32, 3).unwrap();
    for bid in 0..BUFS as u16 {
        // SAFETY: `data` outlives the ring's use (the test's end), and the
        // engine only reads it (a send).
        unsafe { ring.add_and_advance(base + u64::from(bid) * SIZE as u64, SIZE as u32, bid) };
    }
    // SAFETY: names only the group's buffers.
    unsafe { push(&mut p.s, send_select(sfd, 20, 3, true)) };
    let mut rx = Vec::new();
    let c = run_reading(&mut p, cfd, Some(20), &mut rx, data.len()).expect("bundle CQE");
    assert_eq!(c.res as usize, data.len(), "the whole bundle");
    assert_eq!(buffer_id(c.flags), Some(0));
    assert!(!more(c.flags), "the group is empty: the last CQE");
    assert!(rx == data, "every byte, in order");

    // One 2 MiB buffer: completes with what fits while the client does not read.
    let big: Vec<u8> = (0..2 * BUFS * SIZE / 4)
        .map(|i| (i * 13 % 251) as u8)
        .collect();
    let mut ring2 = p.s.register_buf_ring(1, 4).unwrap();
    // SAFETY: as above.
    unsafe { ring2.add_and_advance(big.as_ptr() as u64, big.len() as u32, 9) };
    // SAFETY: names only the group's buffer.
    unsafe { push(&mut p.s, send_select(sfd, 21, 4, false)) };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 21)));
    let c = take(&mut p.s_cqes, 21).unwrap();
    assert!(
        c.res > 0 && (c.res as usize) < big.len(),
        "partial: {}",
        c.res
    );
    assert_eq!(buffer_id(c.flags), Some(9));
    let mut rx = Vec::new();
    let n = c.res as usize;
    run_reading(&mut p, cfd, None, &mut rx, n);
    assert!(rx == big[..n], "the bytes that fit, in order");
    // The buffer was consumed: the group is empty now.
    // SAFETY: names no memory (the group is empty).
    unsafe { push(&mut p.s, send_select(sfd, 22, 4, false)) };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 22)));
    assert_eq!(take(&mut p.s_cqes, 22).unwrap().res, -libc::ENOBUFS);
}
