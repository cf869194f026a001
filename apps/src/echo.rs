//! The echo server: multishot accept, multishot recv into a buffer pool, and
//! a SEND of each received buffer itself (the buffer goes back to the pool
//! when its SEND completes). Written on the safe layer (`ringline_ring::io`):
//! requests own their buffers, the pool's buffers are handles, completions
//! carry an [`Ev`] instead of packed `user_data`. Runs on any [`Uring`]:
//! ringline on any NIC, or the kernel's io_uring (the benchmark's
//! `kernel-uring` backend).
//!
//! The benchmark's variants are options: single-shot accept, single-shot
//! receives re-armed after every CQE, readiness through POLL_ADD (multishot,
//! one-shot or coalesced) followed by a non-blocking receive, several
//! listening ports, and a discard mode (receive only) for bulk transfer.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ringline_ring::abi::sock_nonempty;
use ringline_ring::io::{op, Io, ReadyWords, Token};
use ringline_ring::opcode::{self, SafeSqe};

use crate::sys::{Layer, Uring};

/// Buffer group the server's receives draw from.
const BGID: u16 = 0;

/// What a request of the server was for (the token of its completions).
#[derive(Clone, Copy, Debug, Default)]
enum Ev {
    /// SOCKET, BIND, LISTEN.
    #[default]
    Setup,
    /// An ACCEPT on this listener.
    Accept(i32),
    /// A receive on this connection.
    Recv(i32),
    /// A readiness poll on this connection.
    Poll(i32),
    /// A SEND of echoed bytes.
    Send,
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
    // A slot per buffer (a SEND holds one) and room for connections.
    let mut io: Io<_, Ev> = Io::with_capacity(Layer(rt), opts.buffers + 4096, 4096);
    let pool = io
        .register_pool(BGID, opts.buffers, opts.buffer_size)
        .map_err(|e| format!("buffer ring: {e}"))?;

    let accept = |lfd: i32| match opts.accept {
        AcceptMode::Multishot => opcode::AcceptMulti::new(lfd).build(),
        AcceptMode::Single => opcode::AcceptNoAddr::new(lfd).build(),
    };
    let mut listeners = Vec::with_capacity(opts.ports as usize);
    for k in 0..opts.ports.max(1) {
        let lfd = listen(&mut io, ip, opts.port + k, 65535)?;
        io.push(accept(lfd), Ev::Accept(lfd))
            .map_err(|e| format!("accept: {e}"))?;
        listeners.push(lfd);
    }
    // The load may start now (pairs with the Acquire load in the caller).
    ready.store(true, Ordering::Release);

    // The receive of a connection, armed (or re-armed) by its events.
    let recv = |fd: i32| -> SafeSqe {
        match opts.recv {
            RecvMode::Multishot => opcode::RecvMulti::new(fd, BGID).build(),
            RecvMode::Rearm => opcode::RecvSelect::new(fd, BGID, 0).build(),
            RecvMode::PollMulti | RecvMode::PollOneshot | RecvMode::PollCoalesced => {
                opcode::RecvSelect::new(fd, BGID, 0)
                    .flags(libc::MSG_DONTWAIT)
                    .build()
            }
        }
    };
    let words = ReadyWords::new(if opts.recv == RecvMode::PollCoalesced {
        READY_WORDS
    } else {
        0
    });
    let persistent_poll = matches!(opts.recv, RecvMode::PollMulti | RecvMode::PollCoalesced);
    let poll_mode = persistent_poll || opts.recv == RecvMode::PollOneshot;

    // Connections whose single-shot receive ended for lack of buffers (a
    // multishot receive waits for buffers inside the layer).
    let mut starved: Vec<i32> = Vec::new();
    // Accepted connections not yet closed, by socket number, with their
    // persistent poll: shutdown closes them, so their clients see FIN (or
    // RST), not silence.
    let mut conns: Vec<Option<Option<Token>>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        io.wait(1, Duration::from_millis(5))
            .map_err(|e| format!("enter: {e}"))?;
        let (mut sub, completions) = io.split();
        // Every push below either succeeds or the layer's slot table is at its
        // limit: counted as an error (the connection stalls, the server goes on).
        let arm = |sub: &mut ringline_ring::io::Submitter<'_, _, Ev>,
                   conns: &mut Vec<Option<Option<Token>>>,
                   stats: &mut EchoStats,
                   fd: i32,
                   poll: bool| {
            let pushed = if !poll {
                sub.push(recv(fd), Ev::Recv(fd))
            } else if let Some(p) =
                op::PollAddWord::new(fd, libc::POLLIN as u32, &words, fd as usize)
                    .filter(|_| opts.recv == RecvMode::PollCoalesced)
            {
                sub.push(p, Ev::Poll(fd))
            } else {
                let p = opcode::PollAdd::new(fd, libc::POLLIN as u32);
                let p = if persistent_poll { p.multi() } else { p };
                sub.push(p.build(), Ev::Poll(fd))
            };
            match pushed {
                Ok(t) if poll && persistent_poll => {
                    if let Some(Some(c)) = conns.get_mut(fd as usize) {
                        *c = Some(t);
                    }
                }
                Ok(_) => {}
                Err(_) => stats.errors += 1,
            }
        };
        for mut c in completions {
            match c.data() {
                Ev::Accept(lfd) => {
                    if c.res() >= 0 {
                        stats.accepted += 1;
                        let fd = c.res();
                        let i = fd as usize;
                        if conns.len() <= i {
                            conns.resize(i + 1, None);
                        }
                        conns[i] = Some(None);
                        sub.backend().0.tune_socket(fd, false);
                        arm(&mut sub, &mut conns, &mut stats, fd, poll_mode);
                    } else if c.res() != -libc::ECANCELED {
                        stats.errors += 1;
                    }
                    // A multishot accept is re-armed by the layer.
                    if !c.more()
                        && c.res() != -libc::ECANCELED
                        && sub.push(accept(lfd), Ev::Accept(lfd)).is_err()
                    {
                        stats.errors += 1;
                    }
                }
                Ev::Poll(fd) => {
                    if c.res() > 0 {
                        // Clearing the word re-enables the next CQE; events
                        // since the CQE are in what it held.
                        words.take(fd as usize);
                        arm(&mut sub, &mut conns, &mut stats, fd, false);
                    }
                    if persistent_poll && !c.more() && c.res() > 0 {
                        // A coalesced poll ended by a full CQ: re-arm (a
                        // multishot poll is re-armed by the layer).
                        arm(&mut sub, &mut conns, &mut stats, fd, true);
                    }
                }
                Ev::Recv(fd) => {
                    let res = c.res();
                    if res > 0 {
                        stats.bytes += res as u64;
                        // Discard mode drops the buffer: back to the pool.
                        if let Some(data) = c.take_buf().filter(|_| !opts.discard) {
                            let send = op::Send::new(fd, data).flags(libc::MSG_WAITALL);
                            if sub.push(send, Ev::Send).is_err() {
                                stats.errors += 1;
                            }
                        }
                    }
                    if c.more() {
                        continue;
                    }
                    let eof_or_error =
                        res == 0 || (res < 0 && res != -libc::ENOBUFS && res != -libc::EAGAIN);
                    if eof_or_error {
                        if res < 0 && res != -libc::ECONNRESET && res != -libc::ECANCELED {
                            stats.errors += 1;
                        }
                        if let Some(Some(poll)) = conns.get_mut(fd as usize).and_then(Option::take)
                        {
                            let remove = opcode::PollRemove::new(poll.user_data());
                            sub.push_detached(remove.build());
                        }
                        sub.push_detached(opcode::Close::new(fd).build());
                    } else if res == -libc::ENOBUFS {
                        starved.push(fd);
                    } else if poll_mode {
                        // Drain what is left, else wait for the next wake-up.
                        if res > 0 && sock_nonempty(c.flags()) {
                            arm(&mut sub, &mut conns, &mut stats, fd, false);
                        } else if opts.recv == RecvMode::PollOneshot {
                            arm(&mut sub, &mut conns, &mut stats, fd, true);
                        }
                    } else {
                        // A single-shot receive (a multishot one is re-armed by
                        // the layer).
                        arm(&mut sub, &mut conns, &mut stats, fd, false);
                    }
                }
                Ev::Send => {
                    // Dropping the completion gives the buffer back to the pool.
                    // A SEND that fails loses echoed bytes: an error, unless the
                    // client reset or closed its side (ECONNRESET, EPIPE). CLOSE
                    // no longer cancels SENDs in flight, so ECANCELED counts.
                    let res = c.res();
                    if res < 0 && res != -libc::ECONNRESET && res != -libc::EPIPE {
                        stats.errors += 1;
                    }
                }
                Ev::Setup => {}
            }
        }
        if !starved.is_empty() && pool.available() > opts.buffers / 4 {
            for fd in starved.drain(..) {
                arm(&mut sub, &mut conns, &mut stats, fd, false);
            }
        }
    }
    // Close the listeners and the accepted connections, so clients see the
    // end, and give the engine a moment to send the FINs. Dropping `io` then
    // cancels what is left in flight and waits for it (memory the engine
    // may still use is the layer's to keep, not this function's).
    for lfd in listeners {
        io.push_detached(opcode::Close::new(lfd).build());
    }
    for (fd, _) in conns.iter().enumerate().filter(|(_, c)| c.is_some()) {
        io.push_detached(opcode::Close::new(fd as i32).build());
    }
    let end = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        let _ = io.wait(1, Duration::from_millis(5));
        while io.next_completion().is_some() {}
    }
    Ok(stats)
}

/// Opens a listening socket on `ip:port` through the safe layer (SOCKET, BIND,
/// LISTEN, each waited for at most 5 s). Other requests may be in flight.
pub fn listen<R: Uring + ?Sized, T: Copy + Default>(
    io: &mut Io<Layer<'_, R>, T>,
    ip: Ipv4Addr,
    port: u16,
    backlog: i32,
) -> Result<i32, String> {
    let wait = Duration::from_secs(5);
    let socket = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();
    let lfd = io
        .call(socket, T::default(), wait)
        .and_then(|c| c.result())
        .map_err(|e| format!("socket: {e}"))? as i32;
    io.backend_mut().0.tune_socket(lfd, true);
    let bind = op::Bind::new(lfd, SocketAddrV4::new(ip, port));
    io.call(bind, T::default(), wait)
        .and_then(|c| c.result())
        .map_err(|e| format!("bind {ip}:{port}: {e}"))?;
    let listen = opcode::Listen::new(lfd, backlog).build();
    io.call(listen, T::default(), wait)
        .and_then(|c| c.result())
        .map_err(|e| format!("listen: {e}"))?;
    Ok(lfd)
}
