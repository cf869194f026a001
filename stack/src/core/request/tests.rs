//! Decoding, opcode by opcode: what each SQE becomes and every rejection.

use super::*;

fn sqe(opcode: u8) -> Sqe {
    Sqe {
        opcode,
        ..Sqe::default()
    }
}

/// The negative errno decoding `s` gives, as the engine would post it.
fn res(s: Sqe) -> i32 {
    Request::decode(&s)
        .expect_err("should be rejected")
        .as_res()
}

fn ok(s: Sqe) -> Request {
    Request::decode(&s).expect("should decode")
}

// ---- each opcode decodes ----

#[test]
fn probe_matches_decode() {
    // What the probe reports supported is what decodes: an SQE of every
    // other opcode is -EOPNOTSUPP (or -EINVAL past the table, or for a
    // 128-byte op on ringline's 64-byte SQEs).
    for op in 0..=u8::MAX {
        let sqe128 = matches!(op, IORING_OP_NOP128 | IORING_OP_URING_CMD128);
        let unsupported = matches!(
            Request::decode(&sqe(op)),
            Err(e) if e == crate::errno::EOPNOTSUPP || op >= IORING_OP_LAST || sqe128
        );
        assert_eq!(supported(op), !unsupported, "opcode {op}");
    }
}

#[test]
fn each_opcode_decodes() {
    assert_eq!(
        ok(sqe(IORING_OP_NOP)),
        Request::Nop {
            inject: None,
            file: false,
            fixed_file: false,
            buf: None,
        }
    );
    let s = Sqe {
        fd: libc::AF_INET,
        off: libc::SOCK_STREAM as u64,
        ..sqe(IORING_OP_SOCKET)
    };
    assert_eq!(
        ok(s),
        Request::Socket {
            nonblock: false,
            cloexec: false,
            direct: None,
        }
    );
    let s = Sqe {
        addr: 0x1000,
        off: 16,
        ..sqe(IORING_OP_BIND)
    };
    assert_eq!(
        ok(s),
        Request::Bind {
            addr: 0x1000,
            addrlen: 16
        }
    );
    let s = Sqe {
        opcode: IORING_OP_CONNECT,
        ..s
    };
    assert_eq!(
        ok(s),
        Request::Connect {
            addr: 0x1000,
            addrlen: 16
        }
    );
    let s = Sqe {
        len: 0,
        ..sqe(IORING_OP_LISTEN)
    };
    assert_eq!(ok(s), Request::Listen { backlog: 0 });
    assert!(matches!(ok(sqe(IORING_OP_ACCEPT)), Request::Accept(_)));
    for (op, kind) in [
        (IORING_OP_RECV, RecvKind::Recv),
        (IORING_OP_READ, RecvKind::Read),
        (IORING_OP_RECVMSG, RecvKind::RecvMsg),
    ] {
        assert!(matches!(ok(sqe(op)), Request::Recv(r) if r.kind == kind));
    }
    for (op, kind) in [
        (IORING_OP_SEND, SendKind::Send),
        (IORING_OP_WRITE, SendKind::Write),
        (IORING_OP_SEND_ZC, SendKind::SendZc),
        (IORING_OP_SENDMSG, SendKind::SendMsg),
        (IORING_OP_SENDMSG_ZC, SendKind::SendMsgZc),
    ] {
        assert!(matches!(ok(sqe(op)), Request::Send(r) if r.kind == kind));
    }
    assert_eq!(ok(sqe(IORING_OP_CLOSE)), Request::Close { slot: 0 });
    assert_eq!(
        ok(sqe(IORING_OP_SHUTDOWN)),
        Request::Shutdown {
            how: ShutdownHow::Read
        }
    );
    assert_eq!(
        ok(sqe(IORING_OP_POLL_ADD)),
        Request::PollAdd {
            events: 0,
            mode: PollMode::OneShot
        }
    );
    assert_eq!(
        ok(sqe(IORING_OP_POLL_REMOVE)),
        Request::PollRemove {
            target: 0,
            new_events: None,
            new_user_data: None
        }
    );
    assert!(matches!(
        ok(sqe(IORING_OP_ASYNC_CANCEL)),
        Request::Cancel(_)
    ));
    let s = Sqe {
        fd: 4,
        len: 64,
        addr: 0x1000,
        buf_index: 3,
        ..sqe(IORING_OP_PROVIDE_BUFFERS)
    };
    assert!(matches!(ok(s), Request::ProvideBuffers { count: 4, .. }));
    let s = Sqe {
        fd: 4,
        buf_index: 3,
        ..sqe(IORING_OP_REMOVE_BUFFERS)
    };
    assert_eq!(ok(s), Request::RemoveBuffers { count: 4, group: 3 });
    let s = Sqe {
        len: 1,
        ..sqe(IORING_OP_TIMEOUT)
    };
    assert!(matches!(ok(s), Request::Timeout(_)));
    let s = Sqe {
        opcode: IORING_OP_LINK_TIMEOUT,
        ..s
    };
    assert!(matches!(ok(s), Request::LinkTimeout(_)));
    assert!(matches!(
        ok(sqe(IORING_OP_TIMEOUT_REMOVE)),
        Request::TimeoutRemove { update: None, .. }
    ));
}

#[test]
fn submission_header() {
    let s = Sqe {
        user_data: 99,
        fd: 7,
        flags: IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_DRAIN,
        ..sqe(IORING_OP_CLOSE)
    };
    let d = Submission::decode(&s).unwrap();
    assert_eq!((d.user_data, d.fd, d.opcode), (99, 7, IORING_OP_CLOSE));
    assert_eq!(d.flags, s.flags);
    assert_eq!(d.req, Request::Close { slot: 0 });
}

// ---- rejections, with the engine's errno and order ----

#[test]
fn common_checks_in_order() {
    // Opcode beyond the table.
    assert_eq!(res(sqe(IORING_OP_LAST)), -libc::EINVAL);
    assert_eq!(res(sqe(u8::MAX)), -libc::EINVAL);
    // Unknown SQE flag.
    let s = Sqe {
        flags: 0x80 | IOSQE_FIXED_FILE,
        ..sqe(IORING_OP_NOP)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // FIXED_FILE is resolved at issue, not decoded: a NOP takes it.
    let s = Sqe {
        flags: IOSQE_FIXED_FILE,
        ..sqe(IORING_OP_NOP)
    };
    assert!(matches!(ok(s), Request::Nop { file: false, .. }));
    // Personality before BUFFER_SELECT's -EOPNOTSUPP.
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        personality: 1,
        ..sqe(IORING_OP_SENDMSG)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // BUFFER_SELECT on SENDMSG (SEND takes it), and on an unsupported opcode.
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        ..sqe(IORING_OP_SENDMSG)
    };
    assert_eq!(res(s), -libc::EOPNOTSUPP);
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        ioprio: IORING_RECVSEND_BUNDLE,
        buf_index: 7,
        ..sqe(IORING_OP_SEND)
    };
    assert!(matches!(
        ok(s),
        Request::Send(Send {
            data: SendData::Group(7),
            bundle: true,
            ..
        })
    ));
    // Known but unsupported opcodes.
    for op in [
        IORING_OP_SPLICE,
        IORING_OP_FSYNC,
        IORING_OP_OPENAT,
        IORING_OP_PIPE,
    ] {
        assert_eq!(res(sqe(op)), -libc::EOPNOTSUPP, "opcode {op}");
    }
    // 128-byte SQE ops on a ring of 64-byte SQEs.
    for op in [IORING_OP_NOP128, IORING_OP_URING_CMD128] {
        assert_eq!(res(sqe(op)), -libc::EINVAL, "opcode {op}");
    }
    // ioprio on an op without one (and not on one with).
    let s = Sqe {
        ioprio: 1,
        ..sqe(IORING_OP_NOP)
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        ioprio: IORING_RECVSEND_POLL_FIRST,
        ..sqe(IORING_OP_RECV)
    };
    assert!(matches!(ok(s), Request::Recv(_)));
    // Common checks come before the opcode's: a bad NOP flag loses to
    // personality.
    let s = Sqe {
        personality: 1,
        op_flags: 2,
        ..sqe(IORING_OP_NOP)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // CLOSE refuses FIXED_FILE at prep.
    let s = Sqe {
        flags: IOSQE_FIXED_FILE,
        ..sqe(IORING_OP_CLOSE)
    };
    assert_eq!(res(s), -libc::EBADF);
}

#[test]
fn nop_and_socket() {
    // IORING_NOP_CQE32 (no 32-byte CQEs) and unknown bits.
    for f in [IORING_NOP_CQE32, 1 << 6] {
        let s = Sqe {
            op_flags: f,
            ..sqe(IORING_OP_NOP)
        };
        assert_eq!(res(s), -libc::EINVAL);
    }
    // NOP_FILE looks the fd up at issue (a slot with NOP_FIXED_FILE, which
    // means nothing alone); NOP_FIXED_BUFFER looks up buffer `buf_index`.
    let nop = |f| {
        let Request::Nop {
            file,
            fixed_file,
            buf,
            ..
        } = ok(Sqe {
            op_flags: f,
            buf_index: 7,
            ..sqe(IORING_OP_NOP)
        })
        else {
            panic!()
        };
        (file, fixed_file, buf)
    };
    assert_eq!(nop(IORING_NOP_FILE), (true, false, None));
    let fixed = IORING_NOP_FILE | IORING_NOP_FIXED_FILE;
    assert_eq!(nop(fixed), (true, true, None));
    assert_eq!(nop(IORING_NOP_FIXED_BUFFER), (false, false, Some(7)));
    assert_eq!(
        nop(IORING_NOP_FIXED_FILE | IORING_NOP_TW),
        (false, false, None)
    );
    let good = Sqe {
        fd: libc::AF_INET,
        off: libc::SOCK_STREAM as u64,
        ..sqe(IORING_OP_SOCKET)
    };
    // rw_flags before the domain.
    let s = Sqe {
        op_flags: 1,
        fd: libc::AF_INET6,
        ..good
    };
    assert_eq!(res(s), -libc::EINVAL);
    // A direct descriptor: close-on-exec is refused; else the executor
    // installs it.
    let s = Sqe {
        file_index: 1,
        off: good.off | libc::SOCK_CLOEXEC as u64,
        ..good
    };
    assert_eq!(res(s), -libc::EINVAL);
    for (fi, e) in [(1, Direct::Slot(0)), (u32::MAX, Direct::Alloc)] {
        let s = Sqe {
            file_index: fi,
            ..good
        };
        assert!(matches!(ok(s), Request::Socket { direct: Some(d), .. } if d == e));
    }
    let s = Sqe {
        fd: libc::AF_INET6,
        off: 0x100,
        ..good
    };
    assert_eq!(res(s), -libc::EAFNOSUPPORT);
    let s = Sqe {
        off: 0x100 | libc::SOCK_DGRAM as u64,
        ..good
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        off: libc::SOCK_DGRAM as u64,
        ..good
    };
    assert_eq!(res(s), -libc::EPROTONOSUPPORT);
    let s = Sqe {
        len: libc::IPPROTO_UDP as u32,
        ..good
    };
    assert_eq!(res(s), -libc::EPROTONOSUPPORT);
}

#[test]
fn bind_connect_addrlen() {
    for op in [IORING_OP_BIND, IORING_OP_CONNECT] {
        let s = Sqe { off: 15, ..sqe(op) };
        assert_eq!(res(s), -libc::EINVAL);
    }
}

#[test]
fn accept_rejections() {
    let a = sqe(IORING_OP_ACCEPT);
    for s in [
        Sqe {
            ioprio: 1 << 5,
            ..a
        },
        Sqe { len: 1, ..a },
        Sqe { buf_index: 1, ..a },
        Sqe {
            op_flags: libc::O_APPEND as u32,
            ..a
        },
        Sqe {
            file_index: 1,
            op_flags: libc::SOCK_CLOEXEC as u32,
            ..a
        },
        Sqe {
            file_index: 1,
            ioprio: IORING_ACCEPT_MULTISHOT,
            ..a
        },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    // Direct descriptors decode; the executor installs them.
    let s = Sqe {
        file_index: u32::MAX,
        ioprio: IORING_ACCEPT_MULTISHOT,
        ..a
    };
    assert!(matches!(
        ok(s),
        Request::Accept(Accept {
            direct: Some(Direct::Alloc),
            ..
        })
    ));
}

#[test]
fn recv_rejections() {
    let r = sqe(IORING_OP_RECV);
    // Unknown ioprio; BUNDLE on RECV, not on RECVMSG.
    let s = Sqe {
        ioprio: 1 << 7,
        ..r
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        ioprio: IORING_RECVSEND_BUNDLE,
        ..r
    };
    assert!(matches!(ok(s), Request::Recv(Recv { bundle: true, .. })));
    let s = Sqe {
        ioprio: IORING_RECVSEND_BUNDLE,
        ..sqe(IORING_OP_RECVMSG)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // READ takes no ioprio flags at all.
    let s = Sqe {
        ioprio: IORING_RECVSEND_POLL_FIRST,
        ..sqe(IORING_OP_READ)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // Multishot without a buffer group.
    let s = Sqe {
        ioprio: IORING_RECV_MULTISHOT,
        ..r
    };
    assert_eq!(res(s), -libc::EINVAL);
    let m = Sqe {
        ioprio: IORING_RECV_MULTISHOT,
        flags: IOSQE_BUFFER_SELECT,
        ..r
    };
    assert!(ok(m) != Request::Close { slot: 0 });
    // Multishot with MSG_WAITALL, and with an optlen cap.
    let s = Sqe {
        op_flags: MSG_WAITALL,
        ..m
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        file_index: 64,
        ..m
    };
    assert!(matches!(
        ok(s),
        Request::Recv(Recv {
            total: 64,
            multishot: true,
            ..
        })
    ));
    // READ's rw_flags are not msg_flags: no WAITALL check, no flags kept.
    let s = Sqe {
        op_flags: MSG_WAITALL,
        ..sqe(IORING_OP_READ)
    };
    assert!(matches!(ok(s), Request::Recv(Recv { msg_flags: 0, .. })));
}

/// READ, WRITE, READV, WRITEV: ioprio is an I/O priority (checked at
/// decode), rw_flags and the offset give the error the executor reports
/// once the socket is found.
#[test]
fn read_write_rules() {
    let issue_err = |s: Sqe| match ok(s) {
        Request::Recv(r) => r.issue_err,
        Request::Send(w) => w.issue_err,
        other => panic!("{other:?}"),
    };
    for op in [
        IORING_OP_READ,
        IORING_OP_WRITE,
        IORING_OP_READV,
        IORING_OP_WRITEV,
    ] {
        let b = sqe(op);
        assert_eq!(issue_err(b), None, "opcode {op}");
        assert_eq!(issue_err(Sqe { off: u64::MAX, ..b }), None, "offset -1");
        assert_eq!(issue_err(Sqe { off: 5, ..b }), Some(crate::errno::ESPIPE));
        assert_eq!(
            issue_err(Sqe {
                off: -2i64 as u64,
                ..b
            }),
            Some(EINVAL)
        );
        for (f, e) in [
            (0x01, Some(EINVAL)), // RWF_HIPRI without IOPOLL
            (0x02 | 0x04 | 0x10 | 0x20 | 0x100, None),
            (0x08, None),              // RWF_NOWAIT
            (0x40, Some(EOPNOTSUPP)),  // RWF_ATOMIC
            (0x80, Some(EOPNOTSUPP)),  // RWF_DONTCACHE
            (0x200, Some(EOPNOTSUPP)), // unknown
            (0x41, Some(EOPNOTSUPP)),  // the flags before HIPRI
        ] {
            assert_eq!(
                issue_err(Sqe { op_flags: f, ..b }),
                e,
                "opcode {op} flags {f:#x}"
            );
        }
        // ioprio: classes NONE (level 0), RT, BE, IDLE; hint bits unchecked.
        for p in [0u16, 1 << 13 | 7, 2 << 13 | 4, 3 << 13, 2 << 13 | 1 << 3] {
            assert!(matches!(
                ok(Sqe { ioprio: p, ..b }),
                Request::Recv(_) | Request::Send(_)
            ));
        }
        for p in [1u16, 4 << 13, u16::MAX] {
            assert_eq!(res(Sqe { ioprio: p, ..b }), -libc::EINVAL, "ioprio {p:#x}");
        }
    }
    // More than UIO_MAXIOV iovecs.
    for op in [IORING_OP_READV, IORING_OP_WRITEV] {
        assert_eq!(
            res(Sqe {
                len: 1025,
                ..sqe(op)
            }),
            -libc::EINVAL
        );
        assert!(matches!(
            ok(Sqe {
                len: 1024,
                ..sqe(op)
            }),
            Request::Recv(_) | Request::Send(_)
        ));
    }
    // RWF_NOWAIT is MSG_DONTWAIT to the executors.
    let s = Sqe {
        op_flags: 0x08,
        ..sqe(IORING_OP_READV)
    };
    assert!(
        matches!(ok(s), Request::Recv(Recv { msg_flags, .. }) if msg_flags == libc::MSG_DONTWAIT as u32)
    );
}

#[test]
fn send_rejections() {
    // FIXED_BUF (no registered buffers), on every send kind.
    for op in [IORING_OP_SEND, IORING_OP_SENDMSG, IORING_OP_WRITE] {
        let s = Sqe {
            ioprio: IORING_RECVSEND_FIXED_BUF,
            ..sqe(op)
        };
        assert_eq!(res(s), -libc::EINVAL, "opcode {op}");
    }
    // SEND_ZC takes it (the buffer is checked at issue); SENDMSG_ZC's
    // import from registered buffers is refused.
    let s = Sqe {
        ioprio: IORING_RECVSEND_FIXED_BUF,
        ..sqe(IORING_OP_SEND_ZC)
    };
    assert!(matches!(
        ok(s),
        Request::Send(Send {
            issue_err: None,
            data: SendData::Fixed,
            ..
        })
    ));
    let s = Sqe {
        ioprio: IORING_RECVSEND_FIXED_BUF,
        ..sqe(IORING_OP_SENDMSG_ZC)
    };
    assert!(
        matches!(ok(s), Request::Send(Send { issue_err: Some(e), .. }) if e == crate::errno::EFAULT)
    );
    // REPORT_USAGE is zero-copy only.
    let s = Sqe {
        ioprio: IORING_SEND_ZC_REPORT_USAGE,
        ..sqe(IORING_OP_SEND)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // Zero-copy cannot skip its CQE.
    let s = Sqe {
        flags: IOSQE_CQE_SKIP_SUCCESS,
        ..sqe(IORING_OP_SENDMSG_ZC)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // A sendto address is copied in (TCP then ignores it): too long
    // -EINVAL, unreadable -EFAULT, after the ioprio check; fine otherwise.
    let s = Sqe {
        off: 0x10000,
        file_index: 16,
        ..sqe(IORING_OP_SEND)
    };
    assert!(matches!(ok(s), Request::Send(_)));
    let s = Sqe {
        off: 0x10000,
        file_index: 129,
        ..sqe(IORING_OP_SEND)
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        off: 0x10,
        file_index: 16,
        ..sqe(IORING_OP_SEND)
    };
    assert_eq!(res(s), -libc::EFAULT);
    let s = Sqe {
        off: 0x10,
        ..sqe(IORING_OP_SEND)
    };
    assert!(
        matches!(ok(s), Request::Send(_)),
        "addr_len 0: nothing copied"
    );
    let s = Sqe {
        off: 0x1000,
        ioprio: 1 << 7,
        ..sqe(IORING_OP_SEND)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // Zero-copy: the same faults after the notification exists.
    let s = Sqe {
        off: 0x10,
        file_index: 16,
        ..sqe(IORING_OP_SEND_ZC)
    };
    assert!(
        matches!(ok(s), Request::Send(Send { issue_err: Some(e), .. }) if e == crate::errno::EFAULT)
    );
    let s = Sqe {
        ioprio: 1 << 7,
        ..sqe(IORING_OP_SEND_ZC)
    };
    assert!(matches!(
        ok(s),
        Request::Send(Send {
            issue_err: Some(EINVAL),
            ..
        })
    ));
    // SENDMSG takes neither addr2 nor file_index; SEND's pad must be 0.
    for s in [
        Sqe {
            off: 0x1000,
            ..sqe(IORING_OP_SENDMSG)
        },
        Sqe {
            file_index: 1,
            ..sqe(IORING_OP_SENDMSG)
        },
        Sqe {
            file_index: 1 << 16,
            ..sqe(IORING_OP_SEND)
        },
        Sqe {
            len: 1 << 31,
            ..sqe(IORING_OP_SENDMSG)
        },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    // MSG_FASTOPEN on a TCP socket: -EISCONN once the socket is found.
    let s = Sqe {
        op_flags: 0x2000_0000,
        ..sqe(IORING_OP_SEND)
    };
    assert!(
        matches!(ok(s), Request::Send(Send { issue_err: Some(e), .. }) if e == crate::errno::EISCONN)
    );
}

#[test]
fn close_shutdown_rejections() {
    let c = sqe(IORING_OP_CLOSE);
    // A slot and an fd at once.
    assert_eq!(
        res(Sqe {
            file_index: 1,
            fd: 3,
            ..c
        }),
        -libc::EINVAL
    );
    assert_eq!(ok(Sqe { file_index: 1, ..c }), Request::Close { slot: 1 });
    for s in [
        Sqe { off: 1, ..c },
        Sqe { addr: 1, ..c },
        Sqe { len: 1, ..c },
        Sqe { op_flags: 1, ..c },
        Sqe { buf_index: 1, ..c },
        Sqe { ioprio: 1, ..c },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    let sh = sqe(IORING_OP_SHUTDOWN);
    for s in [
        Sqe { off: 1, ..sh },
        Sqe { addr: 1, ..sh },
        Sqe { op_flags: 1, ..sh },
        Sqe { buf_index: 1, ..sh },
        Sqe {
            file_index: 1,
            ..sh
        },
        Sqe { len: 3, ..sh },
        Sqe {
            len: u32::MAX,
            ..sh
        },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
}

#[test]
fn poll_rejections() {
    let p = sqe(IORING_OP_POLL_ADD);
    for s in [
        Sqe {
            len: IORING_POLL_ADD_LEVEL,
            ..p
        },
        // Coalesced needs MULTI and an aligned word.
        Sqe {
            len: RINGLINE_POLL_COALESCED,
            addr: 0x1000,
            ..p
        },
        Sqe {
            len: RINGLINE_POLL_COALESCED | IORING_POLL_ADD_MULTI,
            addr: 0x1002,
            ..p
        },
        // A plain poll takes no address.
        Sqe { addr: 0x1000, ..p },
        Sqe { off: 1, ..p },
        Sqe { buf_index: 1, ..p },
        Sqe { ioprio: 1, ..p },
        Sqe {
            len: IORING_POLL_ADD_MULTI,
            flags: IOSQE_CQE_SKIP_SUCCESS,
            ..p
        },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    // A one-shot poll may skip its CQE.
    let s = Sqe {
        flags: IOSQE_CQE_SKIP_SUCCESS,
        ..p
    };
    assert!(matches!(ok(s), Request::PollAdd { .. }));
    // EPOLLONESHOT in the events makes a MULTI poll one-shot.
    let s = Sqe {
        len: IORING_POLL_ADD_MULTI,
        op_flags: 1 << 30,
        ..p
    };
    assert!(matches!(
        ok(s),
        Request::PollAdd {
            mode: PollMode::OneShot,
            ..
        }
    ));
    let r = sqe(IORING_OP_POLL_REMOVE);
    // Unknown flags, buf_index, file_index; MULTI without an events update;
    // a new user_data or events without their update flag.
    for s in [
        Sqe { len: 1 << 3, ..r },
        Sqe { buf_index: 1, ..r },
        Sqe { file_index: 1, ..r },
        Sqe {
            len: IORING_POLL_ADD_MULTI,
            ..r
        },
        Sqe { off: 1, ..r },
        Sqe { op_flags: 1, ..r },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    let s = Sqe {
        len: IORING_POLL_UPDATE_USER_DATA,
        off: 7,
        addr: 5,
        ..r
    };
    assert_eq!(
        ok(s),
        Request::PollRemove {
            target: 5,
            new_events: None,
            new_user_data: Some(7)
        }
    );
}

#[test]
fn cancel_rejections_and_keys() {
    let c = sqe(IORING_OP_ASYNC_CANCEL);
    // FD_FIXED: the fd is a slot, looked up at issue; FD_FIXED alone is no
    // key.
    let s = Sqe {
        op_flags: IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_FD,
        fd: 3,
        ..c
    };
    assert!(matches!(
        ok(s),
        Request::Cancel(CancelMatch {
            fd: Some(3),
            fd_fixed: true,
            ..
        })
    ));
    let s = Sqe {
        op_flags: 1 << 9,
        ..c
    };
    assert_eq!(res(s), -libc::EINVAL);
    // Neither FD nor OP with ANY (io_async_cancel_prep).
    for f in [IORING_ASYNC_CANCEL_FD, IORING_ASYNC_CANCEL_OP] {
        let s = Sqe {
            op_flags: f | IORING_ASYNC_CANCEL_ANY,
            ..c
        };
        assert_eq!(res(s), -libc::EINVAL);
    }
    let s = Sqe {
        op_flags: IORING_ASYNC_CANCEL_FD_FIXED,
        ..c
    };
    let Request::Cancel(m) = ok(s) else { panic!() };
    assert_eq!((m.fd_fixed, m.fd), (false, None));
    for s in [Sqe { off: 1, ..c }, Sqe { file_index: 1, ..c }] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    let s = Sqe {
        op_flags: IORING_ASYNC_CANCEL_OP,
        len: u32::from(IORING_OP_LAST),
        ..c
    };
    assert_eq!(res(s), -libc::EINVAL);
    // Without OP, len is not checked.
    let s = Sqe {
        len: u32::MAX,
        addr: 3,
        ..c
    };
    let Request::Cancel(m) = ok(s) else { panic!() };
    assert_eq!(
        (m.user_data, m.fd, m.opcode, m.all),
        (Some(3), None, None, false)
    );
    // FD + OP + USERDATA: all three keys.
    let s = Sqe {
        op_flags: IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_USERDATA,
        fd: 9,
        len: u32::from(IORING_OP_RECV),
        addr: 3,
        ..c
    };
    let Request::Cancel(m) = ok(s) else { panic!() };
    assert!(m.matches(9, 3, IORING_OP_RECV));
    assert!(!m.matches(8, 3, IORING_OP_RECV));
    assert!(!m.matches(9, 4, IORING_OP_RECV));
    assert!(!m.matches(9, 3, IORING_OP_SEND));
    // ANY drops the user_data key (and implies ALL): everything matches.
    let s = Sqe {
        op_flags: IORING_ASYNC_CANCEL_ANY,
        fd: 9,
        addr: 3,
        ..c
    };
    let Request::Cancel(m) = ok(s) else { panic!() };
    assert!(m.any && m.all);
    assert!(m.matches(1, 2, IORING_OP_RECV) && m.matches(9, 0, IORING_OP_SEND));
}

#[test]
fn buffer_rejections() {
    let p = Sqe {
        fd: 4,
        len: 64,
        addr: 0x1000,
        ..sqe(IORING_OP_PROVIDE_BUFFERS)
    };
    // io_provide_buffers_prep's order: the count (fd widened with its sign)
    // first, -E2BIG; the first id past 65535 -E2BIG too.
    assert_eq!(res(Sqe { fd: 0, ..p }), -libc::E2BIG);
    assert_eq!(res(Sqe { fd: -1, ..p }), -libc::E2BIG);
    assert_eq!(res(Sqe { off: 65536, ..p }), -libc::E2BIG);
    assert_eq!(
        res(Sqe {
            fd: 1 << 17,
            len: 0,
            ..p
        }),
        -libc::E2BIG
    );
    assert_eq!(res(Sqe { fd: 1 << 17, ..p }), -libc::E2BIG);
    // rw_flags, splice_fd_in; a range past user space (access_ok); an
    // address in the first page is taken (nothing is read yet).
    for s in [Sqe { op_flags: 1, ..p }, Sqe { file_index: 1, ..p }] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
    assert_eq!(res(Sqe { addr: 1 << 47, ..p }), -libc::EFAULT);
    assert!(matches!(
        ok(Sqe { addr: 0, ..p }),
        Request::ProvideBuffers { .. }
    ));
    assert_eq!(res(Sqe { len: 0, ..p }), -libc::EINVAL);
    assert_eq!(
        res(Sqe {
            addr: u64::MAX - 100,
            ..p
        }),
        -libc::EOVERFLOW
    );
    assert_eq!(res(Sqe { off: 65533, ..p }), -libc::EINVAL);
    assert!(matches!(
        ok(Sqe { off: 65532, ..p }),
        Request::ProvideBuffers {
            first_bid: 65532,
            ..
        }
    ));
    let r = Sqe {
        fd: 1,
        ..sqe(IORING_OP_REMOVE_BUFFERS)
    };
    for s in [
        Sqe { fd: 0, ..r },
        Sqe { fd: -1, ..r },
        Sqe { fd: 65537, ..r },
        Sqe { addr: 1, ..r },
        Sqe { off: 1, ..r },
        Sqe { len: 1, ..r },
        Sqe { op_flags: 1, ..r },
        Sqe { file_index: 1, ..r },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
}

#[test]
fn timeout_rejections() {
    let t = Sqe {
        len: 1,
        ..sqe(IORING_OP_TIMEOUT)
    };
    for op in [IORING_OP_TIMEOUT, IORING_OP_LINK_TIMEOUT] {
        let t = Sqe { opcode: op, ..t };
        for s in [
            Sqe { len: 0, ..t },
            Sqe { len: 2, ..t },
            Sqe { buf_index: 1, ..t },
            Sqe { file_index: 1, ..t },
            Sqe {
                op_flags: IORING_TIMEOUT_UPDATE,
                ..t
            },
            Sqe {
                op_flags: IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME,
                ..t
            },
            Sqe {
                op_flags: IORING_TIMEOUT_MULTISHOT | IORING_TIMEOUT_ABS,
                ..t
            },
        ] {
            assert_eq!(res(s), -libc::EINVAL, "{s:?}");
        }
    }
    // Multishot is fine on a TIMEOUT, not on a LINK_TIMEOUT.
    let m = Sqe {
        op_flags: IORING_TIMEOUT_MULTISHOT,
        ..t
    };
    assert!(matches!(
        ok(m),
        Request::Timeout(TimeoutSpec {
            multishot: true,
            ..
        })
    ));
    let m = Sqe {
        opcode: IORING_OP_LINK_TIMEOUT,
        ..m
    };
    assert_eq!(res(m), -libc::EINVAL);

    let r = sqe(IORING_OP_TIMEOUT_REMOVE);
    for s in [
        Sqe { len: 1, ..r },
        Sqe { buf_index: 1, ..r },
        Sqe { file_index: 1, ..r },
        // A plain remove takes no flags.
        Sqe {
            op_flags: IORING_TIMEOUT_ABS,
            ..r
        },
        // Both update kinds at once.
        Sqe {
            op_flags: IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE,
            ..r
        },
        // An update keeps its timer's clock.
        Sqe {
            op_flags: IORING_TIMEOUT_UPDATE | IORING_TIMEOUT_BOOTTIME,
            ..r
        },
    ] {
        assert_eq!(res(s), -libc::EINVAL, "{s:?}");
    }
}

#[test]
fn timeout_clocks() {
    for (f, c) in [
        (0, TimeoutClock::Monotonic),
        (IORING_TIMEOUT_BOOTTIME, TimeoutClock::Boottime),
        (IORING_TIMEOUT_REALTIME, TimeoutClock::Realtime),
    ] {
        let s = Sqe {
            len: 1,
            op_flags: f | IORING_TIMEOUT_ABS,
            ..sqe(IORING_OP_TIMEOUT)
        };
        let Request::Timeout(t) = ok(s) else { panic!() };
        assert_eq!((t.clock, t.clock.flags(), t.abs), (c, f, true));
    }
    assert_eq!(TimeoutClock::Boottime.clock_id(), libc::CLOCK_BOOTTIME);
    assert!(ShutdownHow::Both.read() && ShutdownHow::Both.write());
    assert!(!ShutdownHow::Write.read() && !ShutdownHow::Read.write());
    assert_eq!(
        poll_interest(0xdead_0001),
        1 | (libc::POLLERR | libc::POLLHUP | libc::POLLRDHUP) as u32
    );
}

#[test]
fn merged_registered_resource_checks() {
    // URING_CMD: MULTISHOT exactly with BUFFER_SELECT (io_uring_cmd_prep).
    let c = sqe(IORING_OP_URING_CMD);
    assert!(matches!(ok(c), Request::SockCmd(_)));
    let s = Sqe {
        op_flags: IORING_URING_CMD_MULTISHOT,
        ..c
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        ..c
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        op_flags: IORING_URING_CMD_MULTISHOT,
        ..c
    };
    assert!(matches!(ok(s), Request::SockCmd(_)));
    // TIMEOUT_REMOVE refuses IOSQE_FIXED_FILE (io_timeout_remove_prep).
    let s = Sqe {
        flags: IOSQE_FIXED_FILE,
        ..sqe(IORING_OP_TIMEOUT_REMOVE)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // READ_FIXED: io_prep_rw's attributes, as READ's.
    let s = Sqe {
        pad2: 2,
        ..sqe(IORING_OP_READ_FIXED)
    };
    assert_eq!(res(s), -libc::EINVAL);
    // BUNDLE: RECV only; optlen is a multishot RECV's cap.
    let r = Sqe {
        ioprio: IORING_RECVSEND_BUNDLE,
        ..sqe(IORING_OP_RECV)
    };
    assert!(matches!(ok(r), Request::Recv(Recv { bundle: true, .. })));
    let s = Sqe {
        opcode: IORING_OP_RECVMSG,
        ..r
    };
    assert_eq!(res(s), -libc::EINVAL);
    let s = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        ioprio: IORING_RECV_MULTISHOT,
        file_index: 1,
        ..sqe(IORING_OP_RECV)
    };
    assert!(matches!(ok(s), Request::Recv(Recv { total: 1, .. })));
    // Elsewhere optlen is refused.
    let s = Sqe { ioprio: 0, ..s };
    assert_eq!(res(s), -libc::EINVAL);
}

#[test]
fn readv_select_and_msg_ring_fields() {
    // READV with buffer select: exactly one iovec.
    let r = Sqe {
        flags: IOSQE_BUFFER_SELECT,
        len: 1,
        buf_index: 5,
        ..sqe(IORING_OP_READV)
    };
    assert!(matches!(
        ok(r),
        Request::Recv(Recv {
            kind: RecvKind::Readv,
            group: Some(5),
            ..
        })
    ));
    assert_eq!(res(Sqe { len: 2, ..r }), -libc::EINVAL);
    assert_eq!(res(Sqe { len: 0, ..r }), -libc::EINVAL);
    // MSG_RING: the command is a u32, addr3 too; buf_index and unknown
    // flags are refused at prep, the rest at issue.
    let m = Sqe {
        addr: 1 << 63,
        off: 0x77,
        len: 9,
        addr3: (1 << 32) | 3,
        file_index: 4,
        op_flags: IORING_MSG_RING_FLAGS_PASS,
        ..sqe(IORING_OP_MSG_RING)
    };
    assert_eq!(
        ok(m),
        Request::MsgRing(MsgRing {
            cmd: 0,
            user_data: 0x77,
            len: 9,
            src_fd: 3,
            dst_fd: 4,
            flags: IORING_MSG_RING_FLAGS_PASS,
        })
    );
    assert_eq!(res(Sqe { buf_index: 1, ..m }), -libc::EINVAL);
    assert_eq!(
        res(Sqe {
            op_flags: 1 << 2,
            ..m
        }),
        -libc::EINVAL
    );
    assert_eq!(res(Sqe { ioprio: 1, ..m }), -libc::EINVAL);
}
