//! The `kernel-epoll` backend: Linux TCP over 127.0.0.1 with non-blocking
//! sockets and epoll, the way a classic event-loop server and client are
//! written. The client logic has the same shape as `loadgen` (C connections,
//! one request in flight each or a sparse cap, the same request bytes, the
//! same checks and histogram), only driven by readiness instead of
//! completions.
//!
//! Audited unsafe: every function here is a thin wrapper of one system call
//! on file descriptors this module owns, with buffers it owns.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::echo::EchoStats;
use crate::loadgen::{
    fill_request, new_histogram, LiveCounters, LoadOpts, LoadResult, Shape, StormOpts, StormResult,
    StreamOpts, StreamResult,
};

use super::kernel_uring::set_int_opt;

/// How the server registers connections with epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollMode {
    /// Registered once, level-triggered (persistent).
    Level,
    /// `EPOLLONESHOT`, re-armed with `EPOLL_CTL_MOD` after every event.
    Oneshot,
}

/// Options of the epoll server.
#[derive(Clone, Debug)]
pub struct EpollServerOpts {
    /// First port.
    pub port: u16,
    /// Listen on `port .. port + ports`.
    pub ports: u16,
    /// Registration mode of connections.
    pub mode: EpollMode,
    /// Read and drop instead of echoing.
    pub discard: bool,
}

const LISTEN_TAG: u64 = 1 << 40;

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    ringline_ring::app::sockaddr_in(ip.octets(), port)
}

fn socket_nb() -> Result<i32, String> {
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(format!("socket: errno {}", last_errno()));
    }
    Ok(fd)
}

fn close(fd: i32) {
    // SAFETY: `fd` is a socket this module opened and closes once.
    unsafe { libc::close(fd) };
}

struct Epoll {
    fd: i32,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    fn new(max_events: usize) -> Result<Self, String> {
        // SAFETY: plain system call.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: errno {}", last_errno()));
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max_events],
        })
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, data: u64) -> i32 {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is valid for the call; the kernel copies it.
        unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) }
    }

    /// Waits up to `timeout_ms`; returns how many events are in `events`.
    fn wait(&mut self, timeout_ms: i32) -> usize {
        // SAFETY: `events` holds `len` writable epoll_event slots.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        n.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is writable for its length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: `buf` is readable for its length.
    unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) }
}

/// Writes all of `buf` to a non-blocking socket, spinning on `EAGAIN`
/// (echoes are small; a full send buffer is transient). False on error.
fn write_all(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = write(fd, buf);
        if n > 0 {
            buf = &buf[n as usize..];
        } else if n < 0 && last_errno() == libc::EAGAIN {
            std::hint::spin_loop();
        } else {
            return false;
        }
    }
    true
}

/// The epoll echo (or discard) server; runs until `stop`.
pub fn serve(
    ip: Ipv4Addr,
    opts: &EpollServerOpts,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<EchoStats, String> {
    let mut stats = EchoStats::default();
    let mut ep = Epoll::new(1024)?;
    let mut listeners = Vec::new();
    for k in 0..opts.ports.max(1) {
        let fd = socket_nb()?;
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        let sa = sockaddr(ip, opts.port + k);
        // SAFETY: `sa` is a valid sockaddr_in for the call.
        let r = unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if r != 0 {
            return Err(format!("bind {}: errno {}", opts.port + k, last_errno()));
        }
        // SAFETY: plain system call on our socket.
        if unsafe { libc::listen(fd, 65535) } != 0 {
            return Err(format!("listen: errno {}", last_errno()));
        }
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLIN as u32,
            LISTEN_TAG | fd as u64,
        );
        listeners.push(fd);
    }
    ready.store(true, Ordering::Release);
    let conn_events = match opts.mode {
        EpollMode::Level => libc::EPOLLIN as u32,
        EpollMode::Oneshot => (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut open: Vec<i32> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let n = ep.wait(5);
        for k in 0..n {
            let ev = ep.events[k];
            let data = ev.u64;
            if data & LISTEN_TAG != 0 {
                let lfd = (data & 0xffff_ffff) as i32;
                loop {
                    // SAFETY: null address pointers are allowed by accept4.
                    let fd = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        let e = last_errno();
                        if e != libc::EAGAIN && e != libc::ECONNABORTED {
                            stats.errors += 1;
                        }
                        break;
                    }
                    stats.accepted += 1;
                    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
                    ep.ctl(libc::EPOLL_CTL_ADD, fd, conn_events, fd as u64);
                    open.push(fd);
                }
                continue;
            }
            let fd = data as i32;
            let mut closed = false;
            loop {
                let r = read(fd, &mut buf);
                if r > 0 {
                    stats.bytes += r as u64;
                    if !opts.discard && !write_all(fd, &buf[..r as usize]) {
                        closed = true;
                        break;
                    }
                    if (r as usize) < buf.len() {
                        break;
                    }
                } else if r == 0 {
                    closed = true;
                    break;
                } else {
                    let e = last_errno();
                    if e != libc::EAGAIN {
                        if e != libc::ECONNRESET {
                            stats.errors += 1;
                        }
                        closed = true;
                    }
                    break;
                }
            }
            if closed {
                // Closing removes it from the epoll set.
                close(fd);
                if let Some(p) = open.iter().position(|&o| o == fd) {
                    open.swap_remove(p);
                }
            } else if opts.mode == EpollMode::Oneshot {
                ep.ctl(libc::EPOLL_CTL_MOD, fd, conn_events, fd as u64);
            }
        }
    }
    for fd in open.into_iter().chain(listeners) {
        close(fd);
    }
    Ok(stats)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    Idle,
    Busy,
    Dead,
}

/// Starts a non-blocking connect to `sa`; registers it for `EPOLLOUT`.
fn connect_nb(ep: &Epoll, sa: &libc::sockaddr_in, data: u64) -> Result<i32, i32> {
    let fd = socket_nb().map_err(|_| last_errno())?;
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    // SAFETY: `sa` is a valid sockaddr_in for the call.
    let r = unsafe {
        libc::connect(
            fd,
            (sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r != 0 && last_errno() != libc::EINPROGRESS {
        let e = last_errno();
        close(fd);
        return Err(e);
    }
    ep.ctl(
        libc::EPOLL_CTL_ADD,
        fd,
        (libc::EPOLLOUT | libc::EPOLLIN) as u32,
        data,
    );
    Ok(fd)
}

fn so_error(fd: i32) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the right size.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    v
}

/// The epoll version of `loadgen::run_shaped`.
pub fn load(ip: Ipv4Addr, opts: &LoadOpts, shape: &Shape, live: &LiveCounters) -> LoadResult {
    let n = opts.connections;
    let size = opts.size.max(16);
    let ports = shape.ports.max(1) as usize;
    let cap = shape.in_flight.unwrap_or(n).clamp(1, n.max(1));
    let piece = size.div_ceil(shape.segments.clamp(1, size));
    let mut tx = vec![0u8; n * size];
    let mut rx = vec![0u8; n * size];
    let mut got = vec![0usize; n];
    let mut seq = vec![0u64; n];
    let mut t0 = vec![Instant::now(); n];
    let mut st = vec![St::Dead; n];
    let mut fds = vec![-1i32; n];
    let mut hist = new_histogram();
    let (mut errors, mut requests, mut connected, mut settled, mut in_flight) =
        (0u64, 0u64, 0usize, 0usize, 0usize);
    let Ok(mut ep) = Epoll::new(1024) else {
        return LoadResult {
            requests: 0,
            errors: 1,
            error_causes: [("epoll_create failed".to_owned(), 1)].into(),
            duration_s: 0.0,
            hist,
            connected: 0,
            connect_s: 0.0,
            interrupted: false,
        };
    };
    let addrs: Vec<libc::sockaddr_in> = (0..ports)
        .map(|k| sockaddr(ip, opts.port + k as u16))
        .collect();
    for i in 0..n {
        match connect_nb(&ep, &addrs[i % ports], i as u64) {
            Ok(fd) => {
                fds[i] = fd;
                st[i] = St::Connecting;
            }
            Err(_) => {
                errors += 1;
                settled += 1;
            }
        }
    }
    let start = Instant::now();
    let mut load_start: Option<Instant> = None;
    let mut measure_start: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let mut cursor = 0usize;
    let mut warmed = vec![false; n];
    let mut n_warmed = 0usize;
    let start_request = |i: usize,
                         seq: &mut [u64],
                         tx: &mut [u8],
                         got: &mut [usize],
                         t0: &mut [Instant],
                         st: &mut [St]|
     -> bool {
        seq[i] += 1;
        let buf = &mut tx[i * size..(i + 1) * size];
        fill_request(buf, i, seq[i]);
        got[i] = 0;
        t0[i] = Instant::now();
        st[i] = St::Busy;
        // One write per piece: as many segments as the ring clients send.
        buf.chunks(piece).all(|p| write_all(fds[i], p))
    };
    loop {
        let now = Instant::now();
        if let (Some(ls), None) = (load_start, measure_start) {
            let waited = now.duration_since(ls);
            let warm = shape.warmup.is_zero()
                || cap < n
                || n_warmed >= connected
                || waited > 2 * shape.warmup + Duration::from_secs(20);
            if warm && waited >= shape.warmup {
                live.mark(false);
                let now = Instant::now();
                measure_start = Some(now);
                deadline = Some(now + opts.duration);
            }
        }
        if load_start.is_none()
            && (settled == n || now.duration_since(start) > opts.connect_timeout)
        {
            load_start = Some(now);
            for i in 0..n {
                if in_flight < cap && st[i] == St::Idle {
                    if start_request(i, &mut seq, &mut tx, &mut got, &mut t0, &mut st) {
                        in_flight += 1;
                    } else {
                        errors += 1;
                        st[i] = St::Dead;
                    }
                    cursor = i;
                }
            }
        }
        let past = deadline.is_some_and(|d| now >= d);
        if past && live.measuring.load(Ordering::Relaxed) == 1 {
            live.mark(true);
        }
        if past && (in_flight == 0 || now > deadline.unwrap() + crate::loadgen::grace(&hist)) {
            break;
        }
        let k = ep.wait(10);
        for e in 0..k {
            let ev = ep.events[e];
            let i = ev.u64 as usize;
            match st[i] {
                St::Connecting => {
                    if ev.events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                        continue;
                    }
                    settled += 1;
                    if so_error(fds[i]) != 0
                        || ev.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
                    {
                        errors += 1;
                        st[i] = St::Dead;
                        ep.ctl(libc::EPOLL_CTL_DEL, fds[i], 0, 0);
                        continue;
                    }
                    connected += 1;
                    live.connected.store(connected as u64, Ordering::Relaxed);
                    ep.ctl(libc::EPOLL_CTL_MOD, fds[i], libc::EPOLLIN as u32, i as u64);
                    st[i] = St::Idle;
                    if load_start.is_some() && !past && in_flight < cap {
                        if start_request(i, &mut seq, &mut tx, &mut got, &mut t0, &mut st) {
                            in_flight += 1;
                        } else {
                            errors += 1;
                            st[i] = St::Dead;
                        }
                    }
                }
                St::Busy => {
                    let r = read(fds[i], &mut rx[i * size + got[i]..(i + 1) * size]);
                    if r <= 0 {
                        if r < 0 && last_errno() == libc::EAGAIN {
                            continue;
                        }
                        errors += 1;
                        in_flight -= 1;
                        st[i] = St::Dead;
                        ep.ctl(libc::EPOLL_CTL_DEL, fds[i], 0, 0);
                        continue;
                    }
                    got[i] += r as usize;
                    if got[i] < size {
                        continue;
                    }
                    in_flight -= 1;
                    if rx[i * size..(i + 1) * size] != tx[i * size..(i + 1) * size] {
                        errors += 1;
                        st[i] = St::Dead;
                        continue;
                    }
                    if !warmed[i] {
                        warmed[i] = true;
                        n_warmed += 1;
                    }
                    if measure_start.is_some() && !past {
                        let _ = hist.record(t0[i].elapsed().as_nanos() as u64);
                        requests += 1;
                    }
                    st[i] = St::Idle;
                    if !past {
                        let next = if cap < n {
                            let mut found = None;
                            for _ in 0..n {
                                cursor = (cursor + 1) % n;
                                if st[cursor] == St::Idle {
                                    found = Some(cursor);
                                    break;
                                }
                            }
                            found
                        } else {
                            Some(i)
                        };
                        if let Some(j) = next {
                            if start_request(j, &mut seq, &mut tx, &mut got, &mut t0, &mut st) {
                                in_flight += 1;
                            } else {
                                errors += 1;
                                st[j] = St::Dead;
                            }
                        }
                    }
                }
                St::Idle | St::Dead => {
                    // EOF or error on an idle connection.
                    if ev.events & (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0
                    {
                        ep.ctl(libc::EPOLL_CTL_DEL, fds[i], 0, 0);
                        if st[i] == St::Idle {
                            errors += 1;
                            st[i] = St::Dead;
                        }
                    }
                }
            }
        }
        live.requests.store(requests, Ordering::Relaxed);
        live.errors.store(errors, Ordering::Relaxed);
    }
    let measured = measure_start
        .map(|s| s.elapsed().min(opts.duration))
        .unwrap_or_default();
    errors += in_flight as u64;
    for &fd in fds.iter().filter(|&&fd| fd >= 0) {
        close(fd);
    }
    LoadResult {
        requests,
        errors,
        // The kernel backends of the benchmark count errors without causes.
        error_causes: [("kernel-epoll client".to_owned(), errors)]
            .into_iter()
            .filter(|e| e.1 > 0)
            .collect(),
        duration_s: measured.as_secs_f64(),
        hist,
        connected,
        connect_s: load_start
            .map(|m| m.duration_since(start).as_secs_f64())
            .unwrap_or(0.0),
        interrupted: false,
    }
}

/// The epoll version of `loadgen::storm`.
pub fn storm(ip: Ipv4Addr, opts: &StormOpts, live: &LiveCounters) -> StormResult {
    let slots = opts.concurrency.clamp(1, opts.clients.max(1));
    let size = opts.size.max(16);
    let ports = opts.ports.max(1) as usize;
    let addrs: Vec<libc::sockaddr_in> = (0..ports)
        .map(|k| sockaddr(ip, opts.port + k as u16))
        .collect();
    let mut hist = new_histogram();
    let Ok(mut ep) = Epoll::new(1024) else {
        return StormResult {
            completed: 0,
            errors: 1,
            duration_s: 0.0,
            hist,
        };
    };
    let mut tx = vec![0u8; size];
    let mut rx = vec![0u8; slots * size];
    let mut got = vec![0usize; slots];
    let mut fds = vec![-1i32; slots];
    let mut client = vec![0usize; slots];
    let mut t0 = vec![Instant::now(); slots];
    // false: connecting; true: request sent, reading the echo.
    let mut sent = vec![false; slots];
    let (mut next, mut completed, mut errors, mut closed) = (0usize, 0u64, 0u64, 0usize);
    live.mark(false);
    let start = Instant::now();
    let begin = |ep: &Epoll,
                 s: usize,
                 next: &mut usize,
                 fds: &mut [i32],
                 client: &mut [usize],
                 t0: &mut [Instant],
                 sent: &mut [bool],
                 got: &mut [usize]|
     -> bool {
        client[s] = *next;
        *next += 1;
        t0[s] = Instant::now();
        sent[s] = false;
        got[s] = 0;
        match connect_nb(ep, &addrs[client[s] % ports], s as u64) {
            Ok(fd) => {
                fds[s] = fd;
                true
            }
            Err(_) => {
                fds[s] = -1;
                false
            }
        }
    };
    let mut live_slots = 0usize;
    for s in 0..slots.min(opts.clients) {
        if begin(
            &ep,
            s,
            &mut next,
            &mut fds,
            &mut client,
            &mut t0,
            &mut sent,
            &mut got,
        ) {
            live_slots += 1;
        } else {
            errors += 1;
            closed += 1;
        }
    }
    while closed < opts.clients && start.elapsed() < opts.timeout && live_slots > 0 {
        let k = ep.wait(10);
        for e in 0..k {
            let ev = ep.events[e];
            let s = ev.u64 as usize;
            let fd = fds[s];
            if fd < 0 {
                continue;
            }
            let mut done = None;
            if !sent[s] {
                if ev.events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                    continue;
                }
                if so_error(fd) != 0 || ev.events & libc::EPOLLERR as u32 != 0 {
                    done = Some(false);
                } else {
                    fill_request(&mut tx, client[s], 1);
                    if write_all(fd, &tx) {
                        sent[s] = true;
                        ep.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, s as u64);
                    } else {
                        done = Some(false);
                    }
                }
            } else {
                let r = read(fd, &mut rx[s * size + got[s]..(s + 1) * size]);
                if r > 0 {
                    got[s] += r as usize;
                    if got[s] == size {
                        fill_request(&mut tx, client[s], 1);
                        let ok = rx[s * size..(s + 1) * size] == tx[..];
                        if ok {
                            let _ = hist.record(t0[s].elapsed().as_nanos() as u64);
                        }
                        done = Some(ok);
                    }
                } else if !(r < 0 && last_errno() == libc::EAGAIN) {
                    done = Some(false);
                }
            }
            if let Some(ok) = done {
                if ok {
                    completed += 1;
                } else {
                    errors += 1;
                }
                close(fd);
                fds[s] = -1;
                closed += 1;
                live_slots -= 1;
                if next < opts.clients {
                    if begin(
                        &ep,
                        s,
                        &mut next,
                        &mut fds,
                        &mut client,
                        &mut t0,
                        &mut sent,
                        &mut got,
                    ) {
                        live_slots += 1;
                    } else {
                        errors += 1;
                        closed += 1;
                    }
                }
            }
        }
        live.requests.store(completed, Ordering::Relaxed);
        live.connected.store(closed as u64, Ordering::Relaxed);
        live.errors.store(errors, Ordering::Relaxed);
    }
    let duration = start.elapsed();
    live.mark(true);
    for &fd in fds.iter().filter(|&&fd| fd >= 0) {
        errors += 1;
        close(fd);
    }
    StormResult {
        completed,
        errors,
        duration_s: duration.as_secs_f64(),
        hist,
    }
}

/// The epoll version of `loadgen::stream`: one blocking socket, `write`s of
/// `chunk` bytes until the deadline.
pub fn stream(ip: Ipv4Addr, opts: &StreamOpts, live: &LiveCounters) -> StreamResult {
    let mut hist = new_histogram();
    let fail = |hist| StreamResult {
        bytes: 0,
        duration_s: 0.0,
        errors: 1,
        hist,
    };
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return fail(hist);
    }
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    let sa = sockaddr(ip, opts.port);
    // SAFETY: `sa` is a valid sockaddr_in for the call.
    let r = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r != 0 {
        close(fd);
        return fail(hist);
    }
    live.connected.store(1, Ordering::Relaxed);
    let buf: Vec<u8> = (0..opts.chunk.max(1)).map(|i| i as u8).collect();
    let mut bytes = 0u64;
    let mut errors = 0u64;
    live.mark(false);
    let start = Instant::now();
    let deadline = start + opts.duration;
    loop {
        let t = Instant::now();
        if t >= deadline {
            break;
        }
        let n = write(fd, &buf);
        if n <= 0 {
            errors += 1;
            break;
        }
        bytes += n as u64;
        let _ = hist.record(t.elapsed().as_nanos() as u64);
        live.requests.store(bytes, Ordering::Relaxed);
    }
    let duration = start.elapsed().min(opts.duration);
    live.mark(true);
    close(fd);
    StreamResult {
        bytes,
        duration_s: duration.as_secs_f64(),
        errors,
        hist,
    }
}
