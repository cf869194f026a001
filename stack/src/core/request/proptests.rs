//! Properties: every builder's SQE decodes to what it built (and one a
//! builder calls safe, a `SafeSqe`, to a request that names no memory), and
//! the engine answers every SQE decode rejects with decode's errno.

use super::*;
use proptest::prelude::*;
use ringline_ring::opcode;
use ringline_ring::opcode::{SafeSqe, Timespec};
use std::ptr::{without_provenance, without_provenance_mut};

// ---- decode against the engine ----

/// The opcodes the engine executes, and a few it does not.
const OPCODES: &[u8] = &[
    IORING_OP_NOP,
    IORING_OP_SOCKET,
    IORING_OP_BIND,
    IORING_OP_LISTEN,
    IORING_OP_ACCEPT,
    IORING_OP_CONNECT,
    IORING_OP_RECV,
    IORING_OP_READ,
    IORING_OP_RECVMSG,
    IORING_OP_SEND,
    IORING_OP_WRITE,
    IORING_OP_SEND_ZC,
    IORING_OP_SENDMSG,
    IORING_OP_SENDMSG_ZC,
    IORING_OP_CLOSE,
    IORING_OP_SHUTDOWN,
    IORING_OP_POLL_ADD,
    IORING_OP_POLL_REMOVE,
    IORING_OP_ASYNC_CANCEL,
    IORING_OP_PROVIDE_BUFFERS,
    IORING_OP_REMOVE_BUFFERS,
    IORING_OP_TIMEOUT,
    IORING_OP_TIMEOUT_REMOVE,
    IORING_OP_LINK_TIMEOUT,
    IORING_OP_READV,
    IORING_OP_FSYNC,
    IORING_OP_LAST,
    200,
];

/// A field value: mostly the interesting ones, sometimes anything.
fn pick<T: Arbitrary + Copy + core::fmt::Debug + 'static>(
    special: &'static [T],
) -> impl Strategy<Value = T> {
    prop_oneof![
        3 => proptest::sample::select(special),
        1 => any::<T>(),
    ]
}

/// SQEs built from interesting field values. No request here makes the
/// engine touch memory: the engine has no sockets (so socket ops stop at
/// the fd lookup), and the only pointers it would read at once -- a
/// TIMEOUT's `addr`, a TIMEOUT_REMOVE update's `off`, the one iovec of a
/// READV with buffer select (read at prep, before the fd, as the kernel's
/// `io_iov_buffer_select_prep` does) -- are null.
fn arb_sqe() -> impl Strategy<Value = Sqe> {
    let header = (
        proptest::sample::select(OPCODES),
        pick(&[
            0u8,
            IOSQE_BUFFER_SELECT,
            IOSQE_CQE_SKIP_SUCCESS,
            IOSQE_ASYNC,
        ]),
        pick(&[0u16, 1, 2, 3, 4, 8, 16]),
        pick(&[0i32, -1, 1, 4, libc::AF_INET]),
        pick(&[0u16, 1]),
    );
    let body = (
        pick(&[0u64, 1, 15, 16, 65535, 65536, libc::SOCK_STREAM as u64]),
        pick(&[0u64, 4, 0x1000, 0x1002, u64::MAX - 100]),
        pick(&[0u32, 1, 2, 3, 6, 64, 1 << 15 | 1, 1 << 17]),
        pick(&[0u32, 1, 2, 4, 8, 16, 32, 64, 0x100, 0x800]),
        pick(&[0u32, 1, 64]),
    );
    (header, body).prop_map(|((opcode, flags, ioprio, fd, personality), body)| {
        let (off, addr, len, op_flags, file_index) = body;
        let mut s = Sqe {
            opcode,
            flags,
            ioprio,
            fd,
            off,
            addr,
            len,
            op_flags,
            user_data: 1,
            buf_index: 0,
            personality,
            file_index,
            ..Sqe::default()
        };
        match opcode {
            IORING_OP_TIMEOUT => s.addr = 0,
            IORING_OP_TIMEOUT_REMOVE => s.off = 0,
            IORING_OP_READV if flags & IOSQE_BUFFER_SELECT != 0 => s.addr = 0,
            _ => {}
        }
        s
    })
}

/// What a fresh engine answers to `sqe` alone (`None`: no CQE).
///
/// `sqe` must name no memory the engine would touch (as `arb_sqe`'s do).
#[allow(unsafe_code)] // Any SQE: only the unsafe path takes one.
fn engine_res(sqe: Sqe) -> Option<i32> {
    use ringline_dataplane::{LoopbackWire, WireConfig};
    use ringline_ring::ring::{new_ring, RingConfig};
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let (mut app, eng) = new_ring(&RingConfig::default()).unwrap();
    let clock = crate::Clock::manual().0;
    let mut e =
        crate::engine::Engine::new(nic, eng, crate::EngineConfig::default(), clock).unwrap();
    // This engine has no sockets, so socket ops stop at the fd lookup; the
    // pointers it would read at once are null; PROVIDE_BUFFERS only records its
    // addresses, and no receive can take a buffer without a socket.
    // SAFETY: so `arb_sqe` SQEs make the engine touch no memory (see there).
    *unsafe { app.get_sqe() }.unwrap() = sqe;
    app.flush_sq();
    e.step(0);
    app.peek_cqe().map(|c| c.res)
}

proptest! {
    /// Every SQE decode rejects, the engine rejects with the same errno;
    /// for every SQE decode accepts, the engine does not reject for a field.
    #[test]
    fn decode_agrees_with_the_engine(sqe in arb_sqe()) {
        let got = engine_res(sqe);
        match Request::decode(&sqe) {
            // Decode is the engine's only field check: the engine answers
            // with decode's errno, before it looks at any state or memory.
            Err(e) => prop_assert_eq!(got, Some(e.as_res()), "{:?}", sqe),
            Ok(req) => {
                let field_errnos = [
                    libc::EOPNOTSUPP,
                    libc::EAFNOSUPPORT,
                    libc::EPROTONOSUPPORT,
                    libc::EISCONN,
                    libc::E2BIG,
                    libc::EOVERFLOW,
                ];
                let res = got.unwrap_or(0);
                prop_assert!(!field_errnos.contains(&-res), "{sqe:?}: {req:?} vs {res}");
                // A standalone LINK_TIMEOUT is the engine's -EINVAL.
                if res == -libc::EINVAL {
                    prop_assert_eq!(sqe.opcode, IORING_OP_LINK_TIMEOUT);
                }
            }
        }
    }
}

// ---- every builder in ring/src/app/opcode.rs decodes to what it built ----

/// IOSQE flags any request may carry (no FIXED_FILE, no BUFFER_SELECT).
const FREE_FLAGS: u8 =
    IOSQE_IO_DRAIN | IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_ASYNC | IOSQE_CQE_SKIP_SUCCESS;

fn flags() -> impl Strategy<Value = u8> {
    any::<u8>().prop_map(|f| f & FREE_FLAGS)
}

fn mut_ptr<T>(a: u64) -> *mut T {
    without_provenance_mut(a as usize)
}

fn ptr<T>(a: u64) -> *const T {
    without_provenance(a as usize)
}

/// What a builder returns: a [`SafeSqe`] (the builder says the request names no
/// memory; `Ring::push_safe` takes it) or a plain [`Sqe`] (`Ring::push` only).
trait Built {
    fn sqe(&self) -> Sqe;
    fn says_safe(&self) -> bool;
}

impl Built for Sqe {
    fn sqe(&self) -> Sqe {
        *self
    }
    fn says_safe(&self) -> bool {
        false
    }
}

impl Built for SafeSqe {
    fn sqe(&self) -> Sqe {
        *self.sqe()
    }
    fn says_safe(&self) -> bool {
        true
    }
}

/// The application addresses executing `req` may make the engine read or write
/// (through `usermem`), zeros left out. Exhaustive, so a new request kind has to
/// say what it names.
fn memory_named(req: &Request) -> Vec<u64> {
    let addrs = match req {
        Request::Nop { .. }
        | Request::Socket { .. }
        | Request::Listen { .. }
        | Request::Close { .. }
        | Request::Shutdown { .. }
        | Request::PollRemove { .. }
        | Request::Cancel(_)
        | Request::MsgRing(_)
        | Request::RemoveBuffers { .. } => vec![],
        Request::Bind { addr, .. } | Request::Connect { addr, .. } => vec![*addr],
        Request::Accept(a) => vec![a.addr, a.addrlen],
        Request::RwFixed(f) => vec![f.addr],
        Request::SockCmd(c) => vec![c.optval],
        // With a group the buffer is a provided one (handed over by an unsafe
        // call), but `addr` still matters to RECVMSG (its msghdr): list it.
        Request::Recv(r) => vec![r.addr],
        Request::Send(s) => vec![s.addr],
        Request::PollAdd { mode, .. } => match mode {
            PollMode::Coalesced { word } => vec![*word],
            PollMode::OneShot | PollMode::Multi => vec![],
        },
        Request::ProvideBuffers { addr, .. } => vec![*addr],
        Request::Timeout(t) | Request::LinkTimeout(t) => vec![t.ts_addr],
        Request::TimeoutRemove { update, .. } => update.iter().map(|u| u.ts_addr).collect(),
    };
    addrs.into_iter().filter(|&a| a != 0).collect()
}

/// Decodes `built` and checks it against the expected header and request; a
/// [`SafeSqe`] must also decode to a request that names no memory.
fn check(
    built: impl Built,
    ud: u64,
    fd: i32,
    flags: u8,
    req: Request,
) -> Result<(), TestCaseError> {
    let sqe = built.sqe();
    let want = Submission {
        user_data: ud,
        fd,
        opcode: sqe.opcode,
        flags,
        req,
    };
    let got = Submission::decode(&sqe);
    prop_assert_eq!(got, Ok(want));
    if built.says_safe() {
        prop_assert_eq!(memory_named(&want.req), vec![], "a SafeSqe names memory");
    }
    Ok(())
}

proptest! {
    #[test]
    fn nop_socket_listen_close(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), v in any::<i32>(),
        inject in any::<bool>(), nb in any::<bool>(), ce in any::<bool>(),
        tcp in any::<bool>(),
    ) {
        let b = opcode::Nop::new().user_data(ud).sqe_flags(f);
        let b = if inject { b.inject_result(v) } else { b };
        check(b.build(), ud, -1, f, Request::Nop { inject: inject.then_some(v), file: false, fixed_file: false, buf: None })?;

        let ty = libc::SOCK_STREAM
            | if nb { libc::SOCK_NONBLOCK } else { 0 }
            | if ce { libc::SOCK_CLOEXEC } else { 0 };
        let proto = if tcp { libc::IPPROTO_TCP } else { 0 };
        let s = opcode::Socket::new(libc::AF_INET, ty, proto).user_data(ud).sqe_flags(f);
        check(s.build(), ud, libc::AF_INET, f, Request::Socket { nonblock: nb, cloexec: ce, direct: None })?;

        let s = opcode::Listen::new(fd, v).user_data(ud).sqe_flags(f);
        check(s.build(), ud, fd, f, Request::Listen { backlog: v as u32 })?;

        let s = opcode::Close::new(fd).user_data(ud).sqe_flags(f);
        check(s.build(), ud, fd, f, Request::Close { slot: 0 })?;
    }

    #[test]
    fn bind_connect(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), a in any::<u64>(),
        len in 16u32..=128,
    ) {
        let s = opcode::Bind::new(fd, ptr(a), len).user_data(ud).sqe_flags(f);
        check(s.build(), ud, fd, f, Request::Bind { addr: a, addrlen: len.into() })?;
        let s = opcode::Connect::new(fd, ptr(a), len).user_data(ud).sqe_flags(f);
        check(s.build(), ud, fd, f, Request::Connect { addr: a, addrlen: len.into() })?;
    }

    #[test]
    fn accept(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), a in any::<u64>(),
        l in any::<u64>(), multi in any::<bool>(), nb in any::<bool>(), ce in any::<bool>(),
    ) {
        let af = if nb { libc::SOCK_NONBLOCK } else { 0 } | if ce { libc::SOCK_CLOEXEC } else { 0 };
        let b = opcode::Accept::new(fd, mut_ptr(a), mut_ptr(l)).flags(af).user_data(ud).sqe_flags(f);
        let b = if multi { b.multishot() } else { b };
        let want = Accept {
            addr: a, addrlen: l, multishot: multi, dontwait: false, poll_first: false,
            nonblock: nb, cloexec: ce, direct: None,
        };
        check(b.build(), ud, fd, f, Request::Accept(want))?;
        let b = opcode::AcceptNoAddr::new(fd).flags(af).user_data(ud).sqe_flags(f);
        let b = if multi { b.multishot() } else { b };
        let want = Accept { addr: 0, addrlen: 0, ..want };
        check(b.build(), ud, fd, f, Request::Accept(want))?;
        let b = opcode::AcceptMulti::new(fd).flags(af).user_data(ud).sqe_flags(f);
        let want = Accept { multishot: true, ..want };
        check(b.build(), ud, fd, f, Request::Accept(want))?;
    }

    #[test]
    fn recv_send(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), a in any::<u64>(),
        len in 0..=i32::MAX as u32, mf in any::<i32>(), group in proptest::option::of(any::<u16>()),
    ) {
        // Flags answered at issue whatever the socket holds (urgent data, the
        // error queue, Fast Open): see the unit tests.
        let mf = mf & !(libc::MSG_OOB | libc::MSG_ERRQUEUE | libc::MSG_FASTOPEN);
        let b = opcode::Recv::new(fd, mut_ptr(a), len).flags(mf).user_data(ud).sqe_flags(f);
        let want = Recv {
            kind: RecvKind::Recv, addr: a, len, msg_flags: mf as u32, group,
            multishot: false, total: 0, bundle: false, poll_first: false, issue_err: None,
        };
        match group {
            Some(g) => {
                let want = Recv { addr: 0, ..want };
                let sf = f | IOSQE_BUFFER_SELECT;
                check(b.buf_group(g).build(), ud, fd, sf, Request::Recv(want))?;
                let b = opcode::RecvSelect::new(fd, g, len).flags(mf).user_data(ud).sqe_flags(f);
                check(b.build(), ud, fd, sf, Request::Recv(want))?;
            }
            None => check(b.build(), ud, fd, f, Request::Recv(want))?,
        }

        let g = group.unwrap_or(0);
        let mf = mf & !libc::MSG_WAITALL;
        let b = opcode::RecvMulti::new(fd, g).flags(mf).user_data(ud).sqe_flags(f);
        let want = Recv {
            kind: RecvKind::Recv, addr: 0, len: 0, msg_flags: mf as u32, group: Some(g),
            multishot: true, total: 0, bundle: false, poll_first: false, issue_err: None,
        };
        check(b.build(), ud, fd, f | IOSQE_BUFFER_SELECT, Request::Recv(want))?;

        let b = opcode::Send::new(fd, ptr(a), len).flags(mf).user_data(ud).sqe_flags(f);
        let want = Send {
            kind: SendKind::Send, addr: a, len, msg_flags: mf as u32,
            poll_first: false, report_usage: false, data: SendData::User, bundle: false, issue_err: None,
        };
        check(b.build(), ud, fd, f, Request::Send(want))?;
    }

    #[test]
    fn shutdown(ud in any::<u64>(), f in flags(), fd in any::<i32>(), how in 0..3i32) {
        let b = opcode::Shutdown::new(fd, how).user_data(ud).sqe_flags(f);
        let how = [ShutdownHow::Read, ShutdownHow::Write, ShutdownHow::Both][how as usize];
        check(b.build(), ud, fd, f, Request::Shutdown { how })?;
    }

    #[test]
    fn poll_add(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), ev in any::<u32>(),
        word in any::<u64>(), mode in 0..4u8,
    ) {
        let word = word & !3;
        // EPOLLONESHOT makes a MULTI poll one-shot (see the unit tests).
        let ev = ev & !(1 << 30);
        let b = opcode::PollAdd::new(fd, ev).user_data(ud);
        // A persistent poll may not skip its CQEs.
        let pf = f & !IOSQE_CQE_SKIP_SUCCESS;
        let add = |mode| Request::PollAdd { events: ev, mode };
        match mode {
            0 => check(b.sqe_flags(f).build(), ud, fd, f, add(PollMode::OneShot))?,
            1 => check(b.multi().sqe_flags(pf).build(), ud, fd, pf, add(PollMode::Multi))?,
            2 => {
                let b = b.ready_word(ptr(word)).sqe_flags(pf);
                check(b.build(), ud, fd, pf, add(PollMode::Coalesced { word }))?;
            }
            // Coalesced without its word: safe, the engine answers -EFAULT.
            _ => {
                let b = b.multi().coalesced().sqe_flags(pf);
                check(b.build(), ud, fd, pf, add(PollMode::Coalesced { word: 0 }))?;
            }
        }
    }

    #[test]
    fn poll_remove(
        ud in any::<u64>(), f in flags(), target in any::<u64>(),
        ev in proptest::option::of(any::<u32>()), nud in proptest::option::of(any::<u64>()),
    ) {
        let mut b = opcode::PollRemove::new(target).user_data(ud).sqe_flags(f);
        if let Some(ev) = ev {
            b = b.update_events(ev);
        }
        if let Some(nud) = nud {
            b = b.update_user_data(nud);
        }
        let want = Request::PollRemove {
            target,
            new_events: ev.map(|events| PollEvents { events, multi: false }),
            new_user_data: nud,
        };
        check(b.build(), ud, -1, f, want)?;
    }

    #[test]
    fn cancel(
        ud in any::<u64>(), f in flags(), fd in any::<i32>(), key in any::<u64>(),
        all in any::<bool>(), anyf in any::<bool>(),
    ) {
        let mut b = opcode::AsyncCancel::new(key).user_data(ud).sqe_flags(f);
        if all {
            b = b.all();
        }
        if anyf {
            b = b.any();
        }
        let want = CancelMatch {
            user_data: (!anyf).then_some(key), fd: None, fd_fixed: false, opcode: None,
            any: anyf, all: all || anyf,
        };
        check(b.build(), ud, -1, f, Request::Cancel(want))?;

        let b = opcode::AsyncCancelFd::new(fd).user_data(ud).sqe_flags(f);
        let b = if all { b.all() } else { b };
        let want = CancelMatch {
            user_data: None, fd: Some(fd), fd_fixed: false, opcode: None, any: false, all,
        };
        check(b.build(), ud, fd, f, Request::Cancel(want))?;
    }

    #[test]
    fn provide_remove_buffers(
        ud in any::<u64>(), f in flags(), a in 0..1u64 << 46, len in 1u32..=1 << 20,
        first in any::<u16>(), n in 1u32..=65536, group in any::<u16>(), rn in 1..=65536u32,
    ) {
        let n = n.min(65536 - u32::from(first));
        // Within user space (`access_ok`): 2^46 + 2^20 * 2^16 < 2^47 - 4096.
        let b = opcode::ProvideBuffers::new(mut_ptr(a), len, n, group, first)
            .user_data(ud)
            .sqe_flags(f);
        let want = Request::ProvideBuffers { addr: a, len, count: n, group, first_bid: first };
        check(b.build(), ud, n as i32, f, want)?;

        let b = opcode::RemoveBuffers::new(rn, group).user_data(ud).sqe_flags(f);
        check(b.build(), ud, rn as i32, f, Request::RemoveBuffers { count: rn, group })?;
    }

    #[test]
    fn timeouts(
        ud in any::<u64>(), f in flags(), ts in any::<u64>(), count in any::<u64>(),
        abs in any::<bool>(), clock in 0..3usize, etime in any::<bool>(), multi in any::<bool>(),
    ) {
        let multi = multi && !abs;
        let clocks = [TimeoutClock::Monotonic, TimeoutClock::Boottime, TimeoutClock::Realtime];
        let tf = clocks[clock].flags()
            | if abs { IORING_TIMEOUT_ABS } else { 0 }
            | if etime { IORING_TIMEOUT_ETIME_SUCCESS } else { 0 }
            | if multi { IORING_TIMEOUT_MULTISHOT } else { 0 };
        let spec = TimeoutSpec {
            ts_addr: ts, abs, clock: clocks[clock], multishot: multi,
            etime_success: etime, count,
        };
        let b = opcode::Timeout::new(ptr::<Timespec>(ts)).count(count).flags(tf)
            .user_data(ud).sqe_flags(f);
        check(b.build(), ud, -1, f, Request::Timeout(spec))?;

        let tf = tf & !IORING_TIMEOUT_MULTISHOT;
        let b = opcode::LinkTimeout::new(ptr::<Timespec>(ts)).flags(tf).user_data(ud).sqe_flags(f);
        let spec = TimeoutSpec { multishot: false, count: 0, ..spec };
        check(b.build(), ud, -1, f, Request::LinkTimeout(spec))?;
    }

    #[test]
    fn timeout_remove_update(
        ud in any::<u64>(), f in flags(), target in any::<u64>(), ts in any::<u64>(),
        abs in any::<bool>(), link in any::<bool>(),
    ) {
        let b = opcode::TimeoutRemove::new(target).user_data(ud).sqe_flags(f);
        check(b.build(), ud, -1, f, Request::TimeoutRemove { target, update: None })?;

        let mut b = opcode::TimeoutUpdate::new(target, ptr::<Timespec>(ts)).user_data(ud).sqe_flags(f);
        if abs {
            b = b.abs();
        }
        if link {
            b = b.link();
        }
        let update = Some(TimeoutUpdate { ts_addr: ts, abs, link });
        check(b.build(), ud, -1, f, Request::TimeoutRemove { target, update })?;
    }
}
