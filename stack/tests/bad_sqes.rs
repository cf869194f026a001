//! Bad SQEs complete with the kernel's negative errno; nothing panics, and the
//! engine keeps working afterwards.

use proptest::prelude::*;
use ringline_ring::abi::*;
use ringline_ring::opcode::{self, SafeSqe};
use ringline_testkit::pair::*;

/// Pushes `sqe` on the server and waits for its CQE.
///
/// # Safety
///
/// As `push`: the memory `sqe` names stays valid until its final CQE.
unsafe fn run_one(p: &mut Pair, sqe: Sqe) -> Cqe {
    let ud = sqe.user_data;
    // SAFETY: the caller upholds the push contract (this function's).
    unsafe { push(&mut p.s, sqe) };
    wait(p, ud)
}

/// [`run_one`] for an SQE that names no memory.
fn run_safe(p: &mut Pair, sqe: SafeSqe) -> Cqe {
    let ud = sqe.user_data;
    push_safe(&mut p.s, sqe);
    wait(p, ud)
}

fn wait(p: &mut Pair, ud: u64) -> Cqe {
    for _ in 0..100 {
        p.step();
        if let Some(c) = take(&mut p.s_cqes, ud) {
            return c;
        }
    }
    panic!("no CQE for {ud}");
}

fn raw(opcode: u8, fd: i32) -> Sqe {
    Sqe {
        opcode,
        fd,
        ..Sqe::default()
    }
}

#[test]
fn table_of_bad_sqes() {
    let mut p = Pair::new();
    let listener = {
        let fd = run_safe(
            &mut p,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(1)
                .build(),
        )
        .res;
        let sa = sockaddr(SERVER_IP, 80);
        let ptr = &*sa as *const libc::sockaddr_in as *const libc::sockaddr;
        let bind = opcode::Bind::new(fd, ptr, 16).user_data(2).build();
        // SAFETY: `sa` lives until after the BIND's CQE (run_one waits for it).
        assert_eq!(unsafe { run_one(&mut p, bind) }.res, 0);
        assert_eq!(
            run_safe(&mut p, opcode::Listen::new(fd, 16).user_data(3).build()).res,
            0
        );
        fd
    };
    let fresh = run_safe(
        &mut p,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(4)
            .build(),
    )
    .res;
    let sa80 = sockaddr(SERVER_IP, 80);
    let sa80p = &*sa80 as *const libc::sockaddr_in as *const libc::sockaddr;
    let mut sa6 = sockaddr(SERVER_IP, 81);
    sa6.sin_family = libc::AF_INET6 as libc::sa_family_t;
    let sa6p = &*sa6 as *const libc::sockaddr_in as *const libc::sockaddr;
    let mut buf = vec![0u8; 64];

    let mut multishot_no_select = raw(IORING_OP_RECV, listener);
    multishot_no_select.ioprio = IORING_RECV_MULTISHOT;
    let mut waitall_multishot = opcode::RecvMulti::new(listener, 1).build().into_sqe();
    waitall_multishot.op_flags = libc::MSG_WAITALL as u32;
    let mut recv_bad_ioprio = opcode::Recv::new(fresh, buf.as_mut_ptr(), 64).build();
    recv_bad_ioprio.ioprio = 1 << 7;
    let mut accept_bad_ioprio = raw(IORING_OP_ACCEPT, listener);
    accept_bad_ioprio.ioprio = 1 << 5;
    let mut bad_sqe_flag = opcode::Nop::new().build().into_sqe();
    bad_sqe_flag.flags = 0x80;
    // A socket op naming slot 0 with no file table (a NOP ignores the flag).
    let mut fixed_file = opcode::Shutdown::new(0, libc::SHUT_WR).build().into_sqe();
    fixed_file.flags = IOSQE_FIXED_FILE;
    let mut personality = opcode::Nop::new().build().into_sqe();
    personality.personality = 3;
    let mut nop_flags = opcode::Nop::new().build().into_sqe();
    nop_flags.op_flags = 1 << 6; // bits 1..=4 are NOP_FILE, _FIXED_FILE, _FIXED_BUFFER, _TW
    let mut poll_level = opcode::PollAdd::new(listener, libc::POLLIN as u32)
        .build()
        .into_sqe();
    poll_level.len = IORING_POLL_ADD_LEVEL;
    let mut select_on_send = opcode::Send::new(fresh, buf.as_ptr(), 4).build();
    select_on_send.flags = IOSQE_BUFFER_SELECT;

    let table: Vec<(&str, Sqe, i32)> = vec![
        (
            "opcode >= IORING_OP_LAST",
            raw(IORING_OP_LAST, 0),
            -libc::EINVAL,
        ),
        ("opcode 255", raw(255, 0), -libc::EINVAL),
        (
            "unsupported opcode (FSYNC)",
            raw(IORING_OP_FSYNC, fresh),
            -libc::EOPNOTSUPP,
        ),
        ("unknown SQE flag bit", bad_sqe_flag, -libc::EINVAL),
        ("fixed file without a file table", fixed_file, -libc::EBADF),
        ("personality", personality, -libc::EINVAL),
        ("unknown NOP flag", nop_flags, -libc::EINVAL),
        (
            "recv on a bad fd",
            opcode::Recv::new(999, buf.as_mut_ptr(), 64).build(),
            -libc::EBADF,
        ),
        (
            "recv on a negative fd",
            opcode::Recv::new(-1, buf.as_mut_ptr(), 64).build(),
            -libc::EBADF,
        ),
        (
            "recv on a listener",
            opcode::Recv::new(listener, buf.as_mut_ptr(), 64).build(),
            -libc::ENOTCONN,
        ),
        (
            "recv on an unconnected socket",
            opcode::Recv::new(fresh, buf.as_mut_ptr(), 64).build(),
            -libc::ENOTCONN,
        ),
        (
            "multishot recv without buffer select",
            multishot_no_select,
            -libc::EINVAL,
        ),
        (
            "multishot recv with MSG_WAITALL",
            waitall_multishot,
            -libc::EINVAL,
        ),
        (
            "recv with unknown ioprio bits",
            recv_bad_ioprio,
            -libc::EINVAL,
        ),
        (
            "send on an unconnected socket",
            opcode::Send::new(fresh, buf.as_ptr(), 4).build(),
            -libc::EPIPE,
        ),
        (
            "buffer select on send, no such group",
            select_on_send,
            -libc::ENOENT,
        ),
        (
            "accept with unknown ioprio bits",
            accept_bad_ioprio,
            -libc::EINVAL,
        ),
        (
            "accept on a non-listening socket",
            raw(IORING_OP_ACCEPT, fresh),
            -libc::EINVAL,
        ),
        (
            "accept on a bad fd",
            raw(IORING_OP_ACCEPT, 4242),
            -libc::EBADF,
        ),
        (
            "socket AF_INET6",
            opcode::Socket::new(libc::AF_INET6, libc::SOCK_STREAM, 0)
                .build()
                .into(),
            -libc::EAFNOSUPPORT,
        ),
        (
            "socket SOCK_DGRAM",
            opcode::Socket::new(libc::AF_INET, libc::SOCK_DGRAM, 0)
                .build()
                .into(),
            -libc::EPROTONOSUPPORT,
        ),
        (
            "bind a port in use",
            opcode::Bind::new(fresh, sa80p, 16).build(),
            -libc::EADDRINUSE,
        ),
        (
            "bind with short addrlen",
            opcode::Bind::new(fresh, sa80p, 8).build(),
            -libc::EINVAL,
        ),
        (
            "bind a null address",
            opcode::Bind::new(fresh, std::ptr::null(), 16).build(),
            -libc::EFAULT,
        ),
        (
            "connect AF_INET6 address",
            opcode::Connect::new(fresh, sa6p, 16).build(),
            -libc::EAFNOSUPPORT,
        ),
        (
            "connect on a listener",
            opcode::Connect::new(listener, sa80p, 16).build(),
            -libc::EISCONN,
        ),
        (
            "shutdown unconnected",
            opcode::Shutdown::new(fresh, libc::SHUT_WR).build().into(),
            -libc::ENOTCONN,
        ),
        (
            "shutdown bad how",
            opcode::Shutdown::new(fresh, 7).build().into(),
            -libc::EINVAL,
        ),
        ("poll with LEVEL", poll_level, -libc::EINVAL),
        (
            "poll_remove unknown",
            opcode::PollRemove::new(123_456).build().into(),
            -libc::ENOENT,
        ),
        (
            "cancel unknown",
            opcode::AsyncCancel::new(123_456).build().into(),
            -libc::ENOENT,
        ),
        (
            "provide 0 buffers",
            opcode::ProvideBuffers::new(buf.as_mut_ptr(), 16, 0, 1, 0).build(),
            // io_provide_buffers_prep: a count of 0 is -E2BIG, as one too large.
            -libc::E2BIG,
        ),
        (
            "remove from unknown group",
            opcode::RemoveBuffers::new(1, 77).build().into(),
            -libc::ENOENT,
        ),
        (
            "close a bad fd",
            opcode::Close::new(31337).build().into(),
            -libc::EBADF,
        ),
    ];
    for (i, (what, mut sqe, want)) in table.into_iter().enumerate() {
        sqe.user_data = 10_000 + i as u64;
        // SAFETY: the table's SQEs name `buf`, `sa80` and `sa6` (or nothing),
        // which live to the end of the test, past every CQE.
        let c = unsafe { run_one(&mut p, sqe) };
        assert_eq!(c.res, want, "{what}: got {} want {}", c.res, want);
        assert!(!more(c.flags), "{what}: error CQE with F_MORE");
    }
    // Still healthy.
    let c = run_safe(
        &mut p,
        opcode::Nop::new().inject_result(5).user_data(99).build(),
    );
    assert_eq!(c.res, 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random SQEs (with addresses that are null or point at a live buffer)
    /// never panic the engine, and it still answers a NOP afterwards.
    #[test]
    fn random_sqes_never_panic(sqes in prop::collection::vec(
        (0u8..70, any::<u8>(), any::<u16>(), -2i32..6, 0u64..3, any::<u32>(), 0u32..5000, any::<u16>(), 0u32..3),
        1..40,
    )) {
        let mut p = Pair::new();
        let mut mem = vec![0u8; 8192];
        let base = mem.as_mut_ptr() as u64;
        // Addresses: null or the start of `mem` (with len capped to its size).
        for (i, (opcode, flags, ioprio, fd, addr_sel, op_flags, len, buf_index, off_sel)) in sqes.into_iter().enumerate() {
            let sqe = Sqe {
                opcode,
                flags,
                ioprio,
                fd,
                // `off` is a value for some ops and a pointer for others (ACCEPT's
                // socklen_t *): only null or the live buffer are safe.
                off: [0, base, base][off_sel as usize],
                addr: [0, base, base][addr_sel as usize],
                // PROVIDE_BUFFERS spans len * count (count = fd <= 5): keep it inside `mem`.
                len: len.min(1024),
                op_flags,
                user_data: i as u64,
                buf_index,
                ..Sqe::default()
            };
            // SAFETY: `sqe` names only null or `mem`, capped to its size. The
            // engine runs only while `mem` lives: `mem` is dropped after the
            // last step below and the pair never runs again.
            unsafe { push(&mut p.s, sqe) };
            p.step();
        }
        p.run(10);
        p.s_cqes.clear();
        let c = run_safe(&mut p, opcode::Nop::new().user_data(u64::MAX).build());
        prop_assert_eq!(c.res, 0);
        drop(mem);
    }
}
