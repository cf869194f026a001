//! The echo server: multishot accept, multishot recv into a shared buffer
//! ring, and a SEND straight out of each received buffer (the buffer goes back
//! to the ring when its SEND completes). Runs on any [`Uring`]: ringline on any
//! NIC, or the kernel's io_uring (the benchmark's `kernel-uring` backend).
//!
//! The benchmark's variants are options: single-shot accept, single-shot
//! receives re-armed after every CQE, readiness through POLL_ADD (multishot or
//! one-shot) followed by a non-blocking receive, several listening ports, and
//! a discard mode (receive only) for bulk transfer.
//!
//! Opts out of `#![deny(unsafe_code)]` for the SQEs and provided buffers that
//! name the server's buffer arena and ready words (each `unsafe` block says
//! why the memory outlives the request): the arena lives until `serve` has
//! cancelled every request, reaped the completions and unregistered the
//! buffer ring.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ringline_ring::abi::{buffer_id, more, sock_nonempty, Cqe};
use ringline_ring::bufring::BufRing;
use ringline_ring::opcode;

use crate::sys::{push, push_safe, Uring};

/// Buffer group the server's receives draw from.
const BGID: u16 = 0;

/// User-data tags (top byte).
const T_ACCEPT: u64 = 1;
const T_RECV: u64 = 2;
const T_SEND: u64 = 3;
const T_CLOSE: u64 = 4;
const T_SETUP: u64 = 5;
const T_POLL: u64 = 6;

fn ud(tag: u64, bid: u16, fd: i32) -> u64 {
    (tag << 56) | ((bid as u64) << 32) | fd as u32 as u64
}

fn split(ud: u64) -> (u64, u16, i32) {
    (ud >> 56, (ud >> 32) as u16, ud as u32 as i32)
}

/// Server counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct EchoStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed (or received, in discard mode).
    pub bytes: u64,
    /// Errors seen in CQEs (other than EOF and expected resets).
    pub errors: u64,
}

/// How the server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AcceptMode {
    /// One multishot ACCEPT per listener (`IORING_ACCEPT_MULTISHOT`).
    #[default]
    Multishot,
    /// A single-shot ACCEPT, re-armed after each connection.
    Single,
}

/// How the server learns that a connection has data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecvMode {
    /// One multishot RECV per connection over the buffer ring.
    #[default]
    Multishot,
    /// A single-shot RECV from the buffer ring, re-armed after every CQE.
    Rearm,
    /// A multishot POLL_ADD(POLLIN) armed once; each wake-up issues a
    /// non-blocking RECV.
    PollMulti,
    /// A one-shot POLL_ADD(POLLIN), re-armed after the RECV it triggered.
    PollOneshot,
    /// ringline's coalesced persistent poll (`RINGLINE_POLL_COALESCED`, a
    /// ready word per socket, at most one CQE outstanding per socket); each
    /// CQE clears the word and issues a non-blocking RECV. ringline only.
    PollCoalesced,
}

/// Ready words of coalesced polls, indexed by socket number (ringline's
/// socket numbers are small and reused).
const READY_WORDS: usize = 1 << 18;

/// Options for the echo server.
#[derive(Clone, Debug)]
pub struct EchoOpts {
    /// First port to listen on.
    pub port: u16,
    /// Listen on `port .. port + ports` (more than one lets a single client
    /// address open more connections than there are ephemeral ports).
    pub ports: u16,
    /// Provided buffers in the ring (power of two).
    pub buffers: u32,
    /// Size of each provided buffer.
    pub buffer_size: u32,
    /// Accept mode.
    pub accept: AcceptMode,
    /// Receive mode.
    pub recv: RecvMode,
    /// Receive and drop instead of echoing (bulk transfer sink).
    pub discard: bool,
}

impl Default for EchoOpts {
    fn default() -> Self {
        EchoOpts {
            port: 7,
            ports: 1,
            buffers: 8192,
            buffer_size: 2048,
            accept: AcceptMode::Multishot,
            recv: RecvMode::Multishot,
            discard: false,
        }
    }
}

/// Runs the echo server until `stop` is set; sets `ready` once it listens.
/// Returns its counters.
pub fn serve<R: Uring>(
    rt: &mut R,
    ip: Ipv4Addr,
    opts: &EchoOpts,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<EchoStats, String> {
    let mut stats = EchoStats::default();
    let mut ring: BufRing = rt
        .register_buf_ring(opts.buffers, BGID)
        .map_err(|e| format!("buffer ring: {e}"))?;
    let size = opts.buffer_size as usize;
    let mut mem = vec![0u8; opts.buffers as usize * size];
    let base = mem.as_mut_ptr() as u64;
    for bid in 0..opts.buffers {
        // SAFETY: `mem` is freed only at the end of `serve`, after every request
        // was cancelled and the ring unregistered; the server reads a buffer (by
        // a SEND of it) only after a CQE handed it back.
        unsafe {
            ring.add_and_advance(
                base + bid as u64 * size as u64,
                opts.buffer_size,
                bid as u16,
            )
        };
    }
    let mut free_bufs = opts.buffers as usize;
    let mut cqes: Vec<Cqe> = Vec::with_capacity(4096);

    let arm_accept = |rt: &mut R, lfd: i32| {
        let sqe = match opts.accept {
            AcceptMode::Multishot => opcode::AcceptMulti::new(lfd)
                .user_data(ud(T_ACCEPT, 0, lfd))
                .build(),
            AcceptMode::Single => opcode::AcceptNoAddr::new(lfd)
                .user_data(ud(T_ACCEPT, 0, lfd))
                .build(),
        };
        push_safe(rt, sqe);
    };
    let mut listeners = Vec::with_capacity(opts.ports as usize);
    for k in 0..opts.ports.max(1) {
        let lfd = listen_on(rt, &mut cqes, ip, opts.port + k, 65535, ud(T_SETUP, 0, 0))?;
        arm_accept(rt, lfd);
        listeners.push(lfd);
    }
    // The load may start now (pairs with the Acquire load in the caller).
    ready.store(true, Ordering::Release);

    // Arms (or re-arms) the receive side of a connection.
    let arm_recv = |rt: &mut R, fd: i32| {
        let sqe = match opts.recv {
            RecvMode::Multishot => opcode::RecvMulti::new(fd, BGID)
                .user_data(ud(T_RECV, 0, fd))
                .build(),
            RecvMode::Rearm => opcode::RecvSelect::new(fd, BGID, 0)
                .user_data(ud(T_RECV, 0, fd))
                .build(),
            RecvMode::PollMulti | RecvMode::PollOneshot | RecvMode::PollCoalesced => {
                opcode::RecvSelect::new(fd, BGID, 0)
                    .flags(libc::MSG_DONTWAIT)
                    .user_data(ud(T_RECV, 0, fd))
                    .build()
            }
        };
        push_safe(rt, sqe);
    };
    // Ready words live until after every request is cancelled (below).
    let words: Vec<AtomicU32> = if opts.recv == RecvMode::PollCoalesced {
        (0..READY_WORDS).map(|_| AtomicU32::new(0)).collect()
    } else {
        Vec::new()
    };
    let arm_poll = |rt: &mut R, fd: i32| {
        let p = opcode::PollAdd::new(fd, libc::POLLIN as u32).user_data(ud(T_POLL, 0, fd));
        let p = match opts.recv {
            RecvMode::PollMulti => p.multi(),
            RecvMode::PollCoalesced => match words.get(fd as usize) {
                Some(w) => {
                    w.store(0, Ordering::Relaxed);
                    // SAFETY: `words` is never resized and is freed only at the
                    // end of `serve`, after every request was cancelled; the
                    // server touches a word only atomically (`take_ready`).
                    unsafe { push(rt, p.ready_word(w).build()) };
                    return;
                }
                // Out of words: a plain multishot poll.
                None => p.multi(),
            },
            _ => p,
        };
        push_safe(rt, p.build());
    };
    let persistent_poll = matches!(opts.recv, RecvMode::PollMulti | RecvMode::PollCoalesced);
    let poll_mode = persistent_poll || opts.recv == RecvMode::PollOneshot;

    // Connections whose receive ended for lack of buffers.
    let mut starved: Vec<i32> = Vec::new();
    // Accepted connections not yet closed (by socket number), so shutdown
    // can close them: their clients then see FIN (or RST), not silence.
    let mut open: Vec<bool> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(5)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR || e.0 == libc::EBUSY => {}
            Err(e) => return Err(format!("enter: {e}")),
        }
        cqes.clear();
        rt.reap(&mut cqes);
        for c in &cqes {
            let (tag, bid, fd) = split(c.user_data);
            match tag {
                T_ACCEPT => {
                    if c.res >= 0 {
                        stats.accepted += 1;
                        let i = c.res as usize;
                        if open.len() <= i {
                            open.resize(i + 1, false);
                        }
                        open[i] = true;
                        rt.tune_socket(c.res, false);
                        if poll_mode {
                            arm_poll(rt, c.res);
                        } else {
                            arm_recv(rt, c.res);
                        }
                    } else if c.res != -libc::ECANCELED {
                        stats.errors += 1;
                    }
                    if !more(c.flags) && c.res != -libc::ECANCELED {
                        arm_accept(rt, fd);
                    }
                }
                T_POLL => {
                    if c.res > 0 {
                        if let Some(w) = words.get(fd as usize) {
                            // Clearing the word re-enables the next CQE; events
                            // since the CQE are in what it held.
                            ringline_ring::app::take_ready(w);
                        }
                        arm_recv(rt, fd);
                    }
                    if persistent_poll && !more(c.flags) && c.res > 0 {
                        // Ended by a full CQ: re-arm.
                        arm_poll(rt, fd);
                    }
                }
                T_RECV => {
                    if c.res > 0 {
                        let b = buffer_id(c.flags).expect("recv CQE with data has a buffer");
                        let addr = base + b as u64 * size as u64;
                        stats.bytes += c.res as u64;
                        if opts.discard {
                            // SAFETY: the CQE handed buffer `b` back and discard
                            // mode does not read it; `mem` outlives the ring (above).
                            unsafe { ring.add_and_advance(addr, opts.buffer_size, b) };
                        } else {
                            free_bufs -= 1;
                            let send = opcode::Send::new(fd, addr as *const u8, c.res as u32)
                                .flags(libc::MSG_WAITALL)
                                .user_data(ud(T_SEND, b, fd));
                            // SAFETY: the CQE handed buffer `b` back; it returns to
                            // the ring only when this SEND completes (T_SEND), and
                            // `mem` outlives every request (end of `serve`).
                            unsafe { push(rt, send.build()) };
                        }
                    }
                    if more(c.flags) {
                        continue;
                    }
                    let eof_or_error = c.res == 0
                        || (c.res < 0 && c.res != -libc::ENOBUFS && c.res != -libc::EAGAIN);
                    if eof_or_error {
                        if c.res < 0 && c.res != -libc::ECONNRESET && c.res != -libc::ECANCELED {
                            stats.errors += 1;
                        }
                        if persistent_poll {
                            push_safe(
                                rt,
                                opcode::PollRemove::new(ud(T_POLL, 0, fd))
                                    .user_data(ud(T_SETUP, 0, fd))
                                    .build(),
                            );
                        }
                        if let Some(o) = open.get_mut(fd as usize) {
                            *o = false;
                        }
                        push_safe(
                            rt,
                            opcode::Close::new(fd).user_data(ud(T_CLOSE, 0, fd)).build(),
                        );
                    } else if c.res == -libc::ENOBUFS {
                        starved.push(fd);
                    } else if poll_mode {
                        // Drain what is left, else wait for the next wake-up.
                        if c.res > 0 && sock_nonempty(c.flags) {
                            arm_recv(rt, fd);
                        } else if opts.recv == RecvMode::PollOneshot {
                            arm_poll(rt, fd);
                        }
                    } else {
                        // Multishot ended by a full CQ, or a single-shot receive.
                        arm_recv(rt, fd);
                    }
                }
                T_SEND => {
                    // The buffer is free again: back to the ring.
                    // SAFETY: the SEND of buffer `bid` completed, so nothing uses
                    // it; `mem` outlives the ring (above).
                    unsafe {
                        ring.add_and_advance(base + bid as u64 * size as u64, opts.buffer_size, bid)
                    };
                    free_bufs += 1;
                    // A SEND that fails loses echoed bytes: an error, unless the
                    // client reset or closed its side (ECONNRESET, EPIPE). CLOSE
                    // no longer cancels SENDs in flight, so ECANCELED counts.
                    if c.res < 0 && c.res != -libc::ECONNRESET && c.res != -libc::EPIPE {
                        stats.errors += 1;
                    }
                }
                _ => {}
            }
        }
        if !starved.is_empty() && free_bufs > opts.buffers as usize / 4 {
            for fd in starved.drain(..) {
                arm_recv(rt, fd);
            }
        }
    }
    // Nothing may reference `mem` after it is freed: cancel every request in
    // flight (parked SENDs point into it), let the cancellations complete,
    // and take the ring away.
    push_safe(
        rt,
        opcode::AsyncCancel::new(0)
            .any()
            .user_data(ud(T_SETUP, 0, 0))
            .build(),
    );
    for lfd in listeners {
        push_safe(
            rt,
            opcode::Close::new(lfd)
                .user_data(ud(T_CLOSE, 0, lfd))
                .build(),
        );
    }
    // Close the accepted connections too, so their clients see the end.
    for (fd, _) in open.iter().enumerate().filter(|(_, o)| **o) {
        push_safe(
            rt,
            opcode::Close::new(fd as i32)
                .user_data(ud(T_CLOSE, 0, fd as i32))
                .build(),
        );
    }
    let end = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(5));
        cqes.clear();
        rt.reap(&mut cqes);
    }
    let _ = rt.unregister_buf_ring(BGID);
    drop(mem);
    drop(words);
    Ok(stats)
}

/// Opens a listening socket on `ip:port` synchronously (SOCKET, BIND, LISTEN,
/// each waited for), tagging the SQEs with `setup_ud`. `cqes` is scratch space.
/// Shared by the echo and HTTP servers.
pub fn listen_on<R: Uring + ?Sized>(
    rt: &mut R,
    cqes: &mut Vec<Cqe>,
    ip: Ipv4Addr,
    port: u16,
    backlog: i32,
    setup_ud: u64,
) -> Result<i32, String> {
    let socket = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).user_data(setup_ud);
    // SAFETY: a SOCKET names no memory.
    let lfd = unsafe { run_setup_op(rt, cqes, socket.build().into_sqe()) }?;
    rt.tune_socket(lfd, true);
    let mut sa = rt.mem(size_of::<libc::sockaddr_in>());
    sa.sockaddrs()[0] = ringline_ring::app::sockaddr_in(ip.octets(), port);
    let sa_ptr = sa.as_ptr() as *const libc::sockaddr;
    let bind = opcode::Bind::new(lfd, sa_ptr, 16).user_data(setup_ud);
    // SAFETY: `sa` is the ring's memory and freed only once the BIND is done: when
    // run_setup_op returns `Ok` its CQE came; on an error it may not have, and
    // `sa` is leaked instead (below).
    let bound = unsafe { run_setup_op(rt, cqes, bind.build()) };
    if bound.is_err() {
        // The engine may not have read the address yet: keep it.
        std::mem::forget(sa);
    }
    bound?;
    let listen = opcode::Listen::new(lfd, backlog).user_data(setup_ud);
    // SAFETY: a LISTEN names no memory.
    unsafe { run_setup_op(rt, cqes, listen.build().into_sqe()) }?;
    Ok(lfd)
}

/// Submits one setup SQE and waits (at most 5 s) for its CQE; a negative
/// result is an error. Nothing else may be in flight on `rt`.
///
/// # Safety
///
/// As [`push`]: the memory `sqe` names stays valid until its CQE, which has
/// come when this returns `Ok` (and may not have on an error).
unsafe fn run_setup_op<R: Uring + ?Sized>(
    rt: &mut R,
    cqes: &mut Vec<Cqe>,
    sqe: ringline_ring::abi::Sqe,
) -> Result<i32, String> {
    // SAFETY: the caller upholds the push contract (this function's).
    unsafe { push(rt, sqe) };
    let t0 = Instant::now();
    loop {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(100)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR => {}
            Err(e) => return Err(e.to_string()),
        }
        cqes.clear();
        rt.reap(cqes);
        if let Some(c) = cqes.first() {
            if c.res < 0 {
                return Err(format!(
                    "setup op failed: {}",
                    ringline_ring::app::Errno(-c.res)
                ));
            }
            return Ok(c.res);
        }
        if t0.elapsed() > Duration::from_secs(5) {
            return Err("setup op timed out".into());
        }
    }
}
