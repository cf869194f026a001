//! SENDMSG / RECVMSG: gather and scatter over iovecs, and multishot RECVMSG
//! with the `io_uring_recvmsg_out` buffer layout.

use ringline_ring::abi::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

fn conn(p: &mut Pair) -> (i32, i32) {
    let l = listen(p, 7400, 8);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    let c = connect_n(p, 7400, 1, 100)[0];
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    (take(&mut p.s_cqes, 1).unwrap().res, c)
}

fn iov(b: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    }
}

fn msghdr(iovs: &mut [libc::iovec], namelen: u32, controllen: usize) -> Box<libc::msghdr> {
    // SAFETY: msghdr is a plain C struct of integers and pointers; all-zero is valid.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iovs.as_mut_ptr();
    m.msg_iovlen = iovs.len();
    m.msg_namelen = namelen;
    m.msg_controllen = controllen;
    Box::new(m)
}

fn raw(opcode: u8, fd: i32, msg: &libc::msghdr, ud: u64) -> Sqe {
    Sqe {
        opcode,
        fd,
        addr: msg as *const libc::msghdr as u64,
        len: 1,
        user_data: ud,
        ..Sqe::default()
    }
}

#[test]
fn sendmsg_gathers_and_recvmsg_scatters() {
    let mut p = Pair::new();
    let (sfd, cfd) = conn(&mut p);
    let (mut a, mut b, mut c) = (b"hello ".to_vec(), b"io_uring ".to_vec(), b"world".to_vec());
    let mut out = [iov(&mut a), iov(&mut b), iov(&mut c)];
    let m = msghdr(&mut out, 0, 0);
    // SAFETY: the msghdr, its iovecs and their buffers live to the end of the
    // test, after the SENDMSG's CQE, and are not touched until then.
    unsafe { push(&mut p.c, raw(IORING_OP_SENDMSG, cfd, &m, 10)) };
    // 7 + 13 bytes of iovecs: MSG_WAITALL completes exactly when the 20 sent arrive.
    let (mut x, mut y) = (vec![0u8; 7], vec![0u8; 64]);
    let mut inn = [iov(&mut x), iov(&mut y[..13])];
    let mut rm = msghdr(&mut inn, 0, 0);
    rm.msg_flags = 0x7777;
    let mut r = raw(IORING_OP_RECVMSG, sfd, &rm, 11);
    r.op_flags = libc::MSG_WAITALL as u32;
    // SAFETY: as for the SENDMSG: `rm`, `inn`, `x` and `y` live to the end of
    // the test and are read only after the RECVMSG's CQE.
    unsafe { push(&mut p.s, r) };
    assert!(p.run_until(10_000, |p| p.c_cqes.iter().any(|c| c.user_data == 10)));
    assert_eq!(take(&mut p.c_cqes, 10).unwrap().res, 20);
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 11)));
    assert_eq!(take(&mut p.s_cqes, 11).unwrap().res, 20);
    assert_eq!(&x[..], b"hello i");
    assert_eq!(&y[..13], b"o_uring world");
    assert_eq!(rm.msg_flags, 0, "msg_flags written back");
}

#[test]
fn multishot_recvmsg_uses_recvmsg_out_layout_and_reports_eof_in_a_buffer() {
    let mut p = Pair::new();
    let (sfd, cfd) = conn(&mut p);
    let mut ring = p.s.register_buf_ring(8, 2).unwrap();
    let mut bufs = vec![0u8; 8 * 256];
    let base = bufs.as_mut_ptr() as u64;
    for bid in 0..8u16 {
        // SAFETY: `bufs` lives to the end of the test, after the last engine
        // step, and the test reads a buffer only once a CQE handed it back.
        unsafe { ring.add_and_advance(base + bid as u64 * 256, 256, bid) };
    }
    // Reserve 16 bytes of name and 8 of control in every buffer.
    let m = msghdr(&mut [], 16, 8);
    let mut r = raw(IORING_OP_RECVMSG, sfd, &m, 20);
    r.ioprio = IORING_RECV_MULTISHOT;
    r.flags = IOSQE_BUFFER_SELECT;
    r.buf_index = 2;
    // SAFETY: the msghdr lives to the end of the test, after the last engine
    // step (it names no iovecs).
    unsafe { push(&mut p.s, r) };
    let data = b"abcdefghij".to_vec();
    let send = opcode::Send::new(cfd, data.as_ptr(), 10).user_data(21);
    // SAFETY: `data` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 20)));
    let c = take(&mut p.s_cqes, 20).unwrap();
    let hdr = 16 + 16 + 8;
    assert_eq!(c.res, hdr + 10);
    assert!(more(c.flags));
    let bid = buffer_id(c.flags).unwrap() as usize;
    let buf = &bufs[bid * 256..(bid + 1) * 256];
    let out = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
    assert_eq!(
        (out(0), out(4), out(8), out(12)),
        (0, 0, 10, 0),
        "namelen, controllen, payloadlen, flags"
    );
    assert_eq!(&buf[hdr as usize..hdr as usize + 10], b"abcdefghij");
    // EOF: a buffer with an empty header, no F_MORE.
    push_safe(
        &mut p.c,
        opcode::Shutdown::new(cfd, libc::SHUT_WR)
            .user_data(22)
            .build(),
    );
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 20)));
    let e = take(&mut p.s_cqes, 20).unwrap();
    assert_eq!(e.res, hdr);
    assert!(!more(e.flags));
    let bid = buffer_id(e.flags).expect("EOF carries a buffer") as usize;
    assert_eq!(
        u32::from_ne_bytes(bufs[bid * 256 + 8..bid * 256 + 12].try_into().unwrap()),
        0
    );
}

#[test]
fn multishot_recvmsg_buffer_smaller_than_header_is_efault() {
    let mut p = Pair::new();
    let (sfd, cfd) = conn(&mut p);
    let mut ring = p.s.register_buf_ring(2, 3).unwrap();
    let mut bufs = [0u8; 64];
    // SAFETY: `bufs` lives to the end of the test, after the last engine step,
    // and is not read.
    unsafe { ring.add_and_advance(bufs.as_mut_ptr() as u64, 32, 0) };
    let m = msghdr(&mut [], 64, 0);
    let mut r = raw(IORING_OP_RECVMSG, sfd, &m, 30);
    r.ioprio = IORING_RECV_MULTISHOT;
    r.flags = IOSQE_BUFFER_SELECT;
    r.buf_index = 3;
    // SAFETY: the msghdr lives to the end of the test, after the last engine
    // step (it names no iovecs).
    unsafe { push(&mut p.s, r) };
    let data = b"x".to_vec();
    let send = opcode::Send::new(cfd, data.as_ptr(), 1).user_data(31);
    // SAFETY: `data` lives to the end of the test, after the last engine step.
    unsafe { push(&mut p.c, send.build()) };
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 30)));
    assert_eq!(take(&mut p.s_cqes, 30).unwrap().res, -libc::EFAULT);
}
