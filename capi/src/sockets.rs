//! Socket numbers and the socket calls: which AF_INET stream sockets are
//! ringline's, the numbers they get, and `socket()`/`bind()`/`listen()`/
//! `setsockopt()`/`getsockopt()`/`getsockname()`/`getpeername()`/`close()`
//! for them.
//!
//! Every ringline socket number is a real file descriptor of the process: a
//! `F_DUPFD_CLOEXEC` copy of one `/dev/null` descriptor, held until the engine
//! closes the socket. So a ringline socket never shares its number with a kernel
//! fd, and a kernel fd (a file, a pipe, stdout, an AF_UNIX socket) never reaches
//! an engine. Calls on numbers that are not ringline's go to libc's functions
//! (`dlsym(RTLD_NEXT)`).
//!
//! A socket made with `socket()` is "pending": `bind()`/`listen()` record the
//! port and backlog here. The first ring whose engine sees its number in a
//! request (CONNECT, ACCEPT, RECV, ...) adopts it ([`stack::SocketNumbers::adopt`]);
//! from then on it belongs to that engine, and `close()` asks that engine to close
//! it: an SQPOLL engine's thread at once, an inline engine (which runs only
//! inside its ring's calls) at the ring's next submit or wait.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ringline_ring::app::Errno;
use stack::{Adopted, EngineConfig, SocketNumbers, SocketOptions};

/// First port `bind(…, port 0)` / `listen()` without `bind()` picks
/// (Linux's `ip_local_port_range`).
const EPHEMERAL_LO: u16 = 32768;
const EPHEMERAL_HI: u16 = 60999;

/// What a reserved number stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// Made by `socket()`, not yet seen by a ring; `opts` what
    /// `setsockopt()` set on top of the engine's defaults.
    Pending {
        port: u16,
        listen: Option<u32>,
        opts: SocketOptions,
    },
    /// A socket of the engine of ring `ring`, with the addresses and options
    /// the engine last reported ([`Hook::named`], [`Hook::options`]).
    Owned {
        ring: u64,
        local: Option<SocketAddrV4>,
        peer: Option<SocketAddrV4>,
        opts: SocketOptions,
        listening: bool,
    },
    /// The `ring_fd` of a ring.
    RingFd,
}

/// What a socket call on another path asks of a ring's engine, in the order
/// it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// `setsockopt()`: (fd, level, name, value), already checked.
    SetOption(i32, i32, i32, i32),
    /// `shutdown()`: (fd, how).
    Shutdown(i32, i32),
    /// `close()`.
    Close(i32),
}

/// Work for a ring from the socket calls on sockets its engine owns.
#[derive(Default)]
pub(crate) struct Mailbox {
    /// An SQPOLL engine's: the calls go straight to its thread.
    pub(crate) closer: Option<stack::SocketCloser>,
    /// Set (release) by a call after pushing to `work`; the ring's next
    /// submit or wait swaps it to false (acquire) before draining.
    pub(crate) pending: AtomicBool,
    pub(crate) work: Mutex<Vec<Work>>,
}

impl Mailbox {
    /// Queues `w` for an inline engine's next submit or wait.
    fn post(&self, w: Work) {
        self.work.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        // Release: pairs with the ring's acquire swap before it drains `work`.
        self.pending.store(true, Ordering::Release);
    }
}

#[derive(Default)]
struct Table {
    entries: HashMap<i32, Entry>,
    rings: HashMap<u64, Arc<Mailbox>>,
    next_port: u16,
    /// Pending sockets that listen, by port (`bind()` gives pending sockets
    /// distinct ports), for [`Hook::pending_listener`].
    listeners: HashMap<u16, i32>,
}

/// How many entries `Table::listeners` has. Written (release) under the
/// table's lock whenever it changes; read (acquire) by
/// [`Hook::pending_listener`] before it takes the lock, so that SYNs to closed
/// ports do not take it while no pending socket listens.
static PENDING_LISTENERS: AtomicUsize = AtomicUsize::new(0);

impl Table {
    /// Pending socket `fd` listens on `port` (`on`), or no longer does.
    fn pending_listens(&mut self, port: u16, fd: i32, on: bool) {
        if on {
            self.listeners.insert(port, fd);
        } else if self.listeners.get(&port) == Some(&fd) {
            self.listeners.remove(&port);
        }
        // Release: pairs with the acquire load in `Hook::pending_listener`.
        PENDING_LISTENERS.store(self.listeners.len(), Ordering::Release);
    }
}

fn table() -> MutexGuard<'static, Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The `/dev/null` descriptor every number is a copy of.
fn devnull() -> i32 {
    static FD: OnceLock<i32> = OnceLock::new();
    *FD.get_or_init(|| {
        // SAFETY: a NUL-terminated path; open has no other precondition.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
    })
}

/// Numbers below this are marked in [`MARKS`]; above, [`is_ringline_number`]
/// asks the table.
const MARKED: usize = 1 << 20;

/// Bit `fd` set: number `fd` is reserved by this library (a socket or a
/// ring), so the data calls (`crate::stream`) refuse it without taking the
/// table's lock. Set (release) by [`reserve_number`] after the number exists,
/// cleared (release) by [`free_number`] before it goes back to the kernel;
/// read (acquire) by [`is_ringline_number`] on every `read()`/`write()`/...
/// of the process.
static MARKS: [AtomicU64; MARKED / 64] = [const { AtomicU64::new(0) }; MARKED / 64];

fn mark(fd: i32, on: bool) {
    let n = fd as usize;
    if n < MARKED {
        let bit = 1u64 << (n % 64);
        // Release: pairs with the acquire load in `is_ringline_number`.
        if on {
            MARKS[n / 64].fetch_or(bit, Ordering::Release);
        } else {
            MARKS[n / 64].fetch_and(!bit, Ordering::Release);
        }
    }
}

/// Whether `fd` is a number this library reserved (a ringline socket or a
/// ring's fd): one bit test for the numbers below 2^20.
#[inline]
pub(crate) fn is_ringline_number(fd: i32) -> bool {
    if fd < 0 {
        return false;
    }
    let n = fd as usize;
    if n < MARKED {
        // Acquire: pairs with the release in `mark`.
        return MARKS[n / 64].load(Ordering::Acquire) & (1u64 << (n % 64)) != 0;
    }
    table().entries.contains_key(&fd)
}

/// A new reserved number (a real fd), or `None` if the process has none left.
pub(crate) fn reserve_number() -> Option<i32> {
    let base = devnull();
    if base < 0 {
        return None;
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd we own; no memory is passed.
    let fd = unsafe { libc::fcntl(base, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    mark(fd, true);
    Some(fd)
}

/// Gives number `fd` back to the kernel. The raw system call, not `close()`,
/// which this library interposes. Unmarked first: once closed, the number
/// may come back as a kernel fd.
pub(crate) fn free_number(fd: i32) {
    mark(fd, false);
    // SAFETY: closing an fd this library reserved and no longer uses.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Marks reserved number `fd` as ring `ring`'s fd, so `close()` leaves it to
/// `io_uring_queue_exit`.
pub(crate) fn adopt_ring_fd(fd: i32, ring: u64, mailbox: Arc<Mailbox>) {
    let mut t = table();
    t.entries.insert(fd, Entry::RingFd);
    t.rings.insert(ring, mailbox);
}

/// Forgets ring `ring` and its fd; the numbers of its sockets come back
/// through the engine's [`Hook::release`] when it is dropped.
pub(crate) fn forget_ring(ring: u64, ring_fd: i32) {
    let mut t = table();
    t.rings.remove(&ring);
    if t.entries.remove(&ring_fd).is_some() {
        free_number(ring_fd);
    }
}

/// The engine side: numbers for ring `ring`'s engine.
pub(crate) struct Hook {
    pub(crate) ring: u64,
}

impl SocketNumbers for Hook {
    fn reserve(&self) -> Option<i32> {
        let fd = reserve_number()?;
        table().entries.insert(
            fd,
            Entry::Owned {
                ring: self.ring,
                local: None,
                peer: None,
                opts: default_options(),
                listening: false,
            },
        );
        Some(fd)
    }

    fn release(&self, fd: i32) {
        let mut t = table();
        if matches!(t.entries.get(&fd), Some(&Entry::Owned { ring, .. }) if ring == self.ring) {
            t.entries.remove(&fd);
            drop(t);
            free_number(fd);
        }
    }

    fn is_open(&self, fd: i32) -> bool {
        // The raw system call, not `fcntl()`, which this library interposes.
        // SAFETY: F_GETFD reads a descriptor's flags; no memory is passed.
        fd >= 0 && unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFD) } >= 0
    }

    fn named(&self, fd: i32, l: SocketAddrV4, p: Option<SocketAddrV4>) {
        if let Some(Entry::Owned {
            ring, local, peer, ..
        }) = table().entries.get_mut(&fd)
        {
            if *ring == self.ring {
                *local = Some(l);
                *peer = p;
            }
        }
    }

    fn options(&self, fd: i32, o: SocketOptions, l: bool) {
        if let Some(Entry::Owned {
            ring,
            opts,
            listening,
            ..
        }) = table().entries.get_mut(&fd)
        {
            if *ring == self.ring {
                *opts = o;
                *listening = l;
            }
        }
    }

    fn adopt(&self, fd: i32) -> Option<Adopted> {
        let mut t = table();
        let e = t.entries.get_mut(&fd)?;
        let Entry::Pending { port, listen, opts } = *e else {
            return None;
        };
        if listen.is_some() {
            t.pending_listens(port, fd, false);
        }
        let e = t.entries.get_mut(&fd)?;
        *e = Entry::Owned {
            ring: self.ring,
            local: (port != 0).then(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
            peer: None,
            opts,
            listening: listen.is_some(),
        };
        let opts = Some(opts);
        Some(match listen {
            Some(backlog) => Adopted::Listener {
                port,
                backlog,
                opts,
            },
            None => Adopted::Socket { port, opts },
        })
    }

    fn pending_listener(&self, port: u16) -> Option<i32> {
        // Acquire: pairs with the release store in `Table::pending_listens`.
        if PENDING_LISTENERS.load(Ordering::Acquire) == 0 {
            return None;
        }
        table().listeners.get(&port).copied()
    }
}

/// Which `socket()` calls make ringline sockets (`RINGLINE_SOCKETS`):
/// `inet` (default) every `AF_INET` `SOCK_STREAM` socket, `off` none.
fn owns_inet() -> bool {
    static OWN: OnceLock<bool> = OnceLock::new();
    *OWN.get_or_init(|| !matches!(std::env::var("RINGLINE_SOCKETS").as_deref(), Ok("off")))
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// libc's own `name`, looked up past this library.
macro_rules! next_fn {
    ($name:expr, $ty:ty) => {{
        static F: OnceLock<usize> = OnceLock::new();
        let p = *F.get_or_init(|| {
            // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds the next
            // definition after this library (libc's).
            unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) as usize }
        });
        assert!(p != 0, concat!("libringline: libc has no ", $name));
        // SAFETY: p is libc's function of that name, whose C type is $ty.
        unsafe { core::mem::transmute::<usize, $ty>(p) }
    }};
}
pub(crate) use next_fn;

fn entry(fd: i32) -> Option<Entry> {
    table().entries.get(&fd).copied()
}

fn pick_port(t: &mut Table) -> u16 {
    let used: Vec<u16> = t
        .entries
        .values()
        .filter_map(|e| match e {
            Entry::Pending { port, .. } if *port != 0 => Some(*port),
            _ => None,
        })
        .collect();
    if t.next_port < EPHEMERAL_LO {
        t.next_port = EPHEMERAL_LO + (std::process::id() % 1000) as u16;
    }
    loop {
        let p = t.next_port;
        t.next_port = if p >= EPHEMERAL_HI {
            EPHEMERAL_LO
        } else {
            p + 1
        };
        if !used.contains(&p) {
            return p;
        }
    }
}

/// `socket(2)`: AF_INET stream sockets are ringline's (see [`owns_inet`]); the
/// rest are the kernel's.
///
/// # Safety
///
/// None beyond socket(2)'s: no pointers.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: i32, ty: i32, protocol: i32) -> i32 {
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let tcp = protocol == 0 || protocol == libc::IPPROTO_TCP;
    if domain == libc::AF_INET && base == libc::SOCK_STREAM && tcp && owns_inet() {
        let Some(fd) = reserve_number() else {
            set_errno(libc::EMFILE);
            return -1;
        };
        table().entries.insert(
            fd,
            Entry::Pending {
                port: 0,
                listen: None,
                opts: default_options(),
            },
        );
        return fd;
    }
    let f = next_fn!("socket", extern "C" fn(i32, i32, i32) -> i32);
    f(domain, ty, protocol)
}

/// `bind(2)`: a pending ringline socket records the port (`INADDR_ANY` or the
/// engine's address: the engine checks the address when it adopts it).
///
/// # Safety
///
/// `addr` points to `len` readable bytes, as bind(2) requires.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: i32, addr: *const libc::sockaddr, len: libc::socklen_t) -> i32 {
    let mut t = table();
    match t.entries.get(&fd).copied() {
        Some(Entry::Pending {
            port: 0,
            listen,
            opts,
        }) => {
            if addr.is_null() || (len as usize) < core::mem::size_of::<libc::sockaddr_in>() {
                drop(t);
                set_errno(libc::EINVAL);
                return -1;
            }
            // SAFETY: caller's contract: len >= sizeof(sockaddr_in) readable bytes.
            let sin = unsafe { addr.cast::<libc::sockaddr_in>().read_unaligned() };
            if i32::from(sin.sin_family) != libc::AF_INET {
                drop(t);
                set_errno(libc::EAFNOSUPPORT);
                return -1;
            }
            let mut port = u16::from_be(sin.sin_port);
            let taken = t
                .entries
                .values()
                .any(|e| matches!(e, Entry::Pending { port: p, .. } if *p == port && port != 0));
            if taken {
                drop(t);
                set_errno(libc::EADDRINUSE);
                return -1;
            }
            if port == 0 {
                port = pick_port(&mut t);
            }
            t.entries.insert(fd, Entry::Pending { port, listen, opts });
            0
        }
        Some(Entry::Pending { .. }) | Some(Entry::Owned { .. }) => {
            drop(t);
            set_errno(libc::EINVAL);
            -1
        }
        Some(Entry::RingFd) => {
            drop(t);
            set_errno(libc::ENOTSOCK);
            -1
        }
        None => {
            drop(t);
            let f = next_fn!(
                "bind",
                unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32
            );
            // SAFETY: the caller's bind(2) contract, passed on.
            unsafe { f(fd, addr, len) }
        }
    }
}

/// `listen(2)`: a pending ringline socket becomes a listener when its ring
/// adopts it (a port is picked now if it was not bound).
///
/// # Safety
///
/// None beyond listen(2)'s.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: i32, backlog: i32) -> i32 {
    let mut t = table();
    match t.entries.get(&fd).copied() {
        Some(Entry::Pending { port, opts, .. }) => {
            let port = if port == 0 { pick_port(&mut t) } else { port };
            let backlog = backlog.max(1) as u32;
            t.entries.insert(
                fd,
                Entry::Pending {
                    port,
                    listen: Some(backlog),
                    opts,
                },
            );
            t.pending_listens(port, fd, true);
            0
        }
        Some(_) => {
            drop(t);
            set_errno(libc::EOPNOTSUPP);
            -1
        }
        None => {
            drop(t);
            let f = next_fn!("listen", unsafe extern "C" fn(i32, i32) -> i32);
            // SAFETY: listen(2) takes no pointers.
            unsafe { f(fd, backlog) }
        }
    }
}

/// A socket's options before its engine reports them: libringline's engines
/// run with the default configuration's.
fn default_options() -> SocketOptions {
    static D: OnceLock<SocketOptions> = OnceLock::new();
    *D.get_or_init(|| SocketOptions::from_config(&EngineConfig::default()))
}

/// `setsockopt(2)` on a ringline socket: the engine's options and checks
/// (`stack::SocketOptions::set`, the same as `IORING_OP_URING_CMD`'s
/// SETSOCKOPT): `SO_REUSEADDR`, `SO_REUSEPORT`, `SO_KEEPALIVE`, `SO_RCVBUF`,
/// `SO_SNDBUF`, `TCP_NODELAY`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`; others `ENOPROTOOPT`, values out of range `EINVAL`. A
/// pending socket keeps them until its engine adopts it; an engine's socket
/// gets them at the ring's next submit or wait, before its SQEs (an SQPOLL
/// engine's thread before this returns), and `getsockopt()` reports them
/// from now on. Other fds go to libc.
///
/// # Safety
///
/// `val` points to `len` readable bytes, as setsockopt(2) requires.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: i32,
    level: i32,
    name: i32,
    val: *const libc::c_void,
    len: libc::socklen_t,
) -> i32 {
    let mut t = table();
    let Some(e) = t.entries.get(&fd).copied() else {
        drop(t);
        let f = next_fn!(
            "setsockopt",
            unsafe extern "C" fn(i32, i32, i32, *const libc::c_void, libc::socklen_t) -> i32
        );
        // SAFETY: the caller's setsockopt(2) contract, passed on.
        return unsafe { f(fd, level, name, val, len) };
    };
    let mut opts = match e {
        Entry::Pending { opts, .. } | Entry::Owned { opts, .. } => opts,
        Entry::RingFd => {
            drop(t);
            set_errno(libc::ENOTSOCK);
            return -1;
        }
    };
    // The engine's checks (SETSOCKOPT's), then the value.
    let checked = stack::setsockopt_checks(level, len as i32)
        .and_then(|()| {
            if val.is_null() {
                return Err(Errno(libc::EFAULT));
            }
            // An int, or SO_LINGER's struct linger (checked against `len`).
            let n = stack::option_len(level, name).min(len as usize);
            // SAFETY: the caller's contract: val points to len >= 4 readable
            // bytes, and n <= len.
            let bytes = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), n) };
            let v = stack::option_value(level, name, bytes)?;
            opts.set(level, name, v).map(|()| v)
        })
        .map_err(|e| e.0);
    let v = match checked {
        Ok(v) => v,
        Err(e) => {
            drop(t);
            set_errno(e);
            return -1;
        }
    };
    match t.entries.get_mut(&fd) {
        Some(Entry::Pending { opts: o, .. } | Entry::Owned { opts: o, .. }) => *o = opts,
        _ => unreachable!("the entry was read under the same lock"),
    }
    let Entry::Owned { ring, .. } = e else {
        return 0;
    };
    let Some(m) = t.rings.get(&ring).cloned() else {
        return 0;
    };
    drop(t);
    if let Some(c) = &m.closer {
        // EBADF: the engine closed the socket meanwhile (nothing to set).
        return match c.set_option(fd, level, name, v) {
            Ok(()) | Err(Errno(libc::EBADF)) => 0,
            Err(e) => {
                set_errno(e.0);
                -1
            }
        };
    }
    m.post(Work::SetOption(fd, level, name, v));
    0
}

/// `getsockopt(2)` on a ringline socket: SOL_SOCKET's and IPPROTO_TCP's
/// options the engine keeps (`setsockopt()` above, or SETSOCKOPT through the
/// ring, which the engine reports), and `SO_TYPE`, `SO_PROTOCOL`,
/// `SO_DOMAIN`, `SO_ERROR` (0: a connection's error is reported by the
/// request it fails) and `SO_ACCEPTCONN`; others `ENOPROTOOPT`. An int's
/// bytes, cut to `*len`, as Linux. Other fds go to libc.
///
/// # Safety
///
/// `val` and `len` as getsockopt(2) requires.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: i32,
    level: i32,
    name: i32,
    val: *mut libc::c_void,
    len: *mut libc::socklen_t,
) -> i32 {
    let (opts, listening) = match entry(fd) {
        Some(Entry::Pending { opts, listen, .. }) => (opts, listen.is_some()),
        Some(Entry::Owned {
            opts, listening, ..
        }) => (opts, listening),
        Some(Entry::RingFd) => {
            set_errno(libc::ENOTSOCK);
            return -1;
        }
        None => {
            let f = next_fn!(
                "getsockopt",
                unsafe extern "C" fn(i32, i32, i32, *mut libc::c_void, *mut libc::socklen_t) -> i32
            );
            // SAFETY: the caller's getsockopt(2) contract, passed on.
            return unsafe { f(fd, level, name, val, len) };
        }
    };
    let v = opts.get(level, name).or_else(|| {
        (level == libc::SOL_SOCKET)
            .then(|| stack::socket_constant(name, listening))
            .flatten()
    });
    let Some(v) = v else {
        set_errno(libc::ENOPROTOOPT);
        return -1;
    };
    if len.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    // SAFETY: the caller's contract: len is readable and writable.
    let have = unsafe { len.read() } as i32;
    if have < 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    // An int, or SO_LINGER's struct linger, cut to *len.
    let (bytes, full) = stack::option_bytes(level, name, v);
    let n = (have as usize).min(full);
    if n > 0 && val.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    // SAFETY: the caller's contract: val has room for *len >= n bytes, len is writable.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), val.cast::<u8>(), n);
        len.write(n as libc::socklen_t);
    }
    0
}

/// Writes `a` to the caller's `addr`/`len` as getsockname(2) and
/// getpeername(2) do (truncated to `*len`, `*len` set to the full size).
///
/// # Safety
///
/// `addr` and `len` as getsockname(2) requires (null: `EFAULT`).
unsafe fn write_name(a: SocketAddrV4, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> i32 {
    if addr.is_null() || len.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: len points to the caller's buffer size; addr to that many bytes.
    unsafe {
        let n = (*len as usize).min(core::mem::size_of::<libc::sockaddr_in>());
        core::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            addr.cast::<u8>(),
            n,
        );
        *len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    0
}

/// `getsockname(2)`: a pending ringline socket reports `0.0.0.0:port` (its
/// `bind()`, 0 if none); one of an engine the address the engine gave it
/// (an accepted or connecting socket: the engine's address and its port; a
/// listener: what it was bound to), `0.0.0.0:0` before it has one. A ring's
/// fd is not a socket (`ENOTSOCK`). Other fds go to libc.
///
/// # Safety
///
/// `addr` and `len` as getsockname(2) requires.
#[no_mangle]
pub unsafe extern "C" fn getsockname(
    fd: i32,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> i32 {
    let unbound = |port: u16| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let name = match entry(fd) {
        Some(Entry::Pending { port, .. }) => unbound(port),
        Some(Entry::Owned { local, .. }) => local.unwrap_or(unbound(0)),
        Some(Entry::RingFd) => {
            set_errno(libc::ENOTSOCK);
            return -1;
        }
        None => {
            let f = next_fn!(
                "getsockname",
                unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32
            );
            // SAFETY: the caller's getsockname(2) contract, passed on.
            return unsafe { f(fd, addr, len) };
        }
    };
    // SAFETY: the caller's contract.
    unsafe { write_name(name, addr, len) }
}

/// `getpeername(2)`: a connected ringline socket (accepted, or connecting
/// through the ring) reports its peer; any other ringline socket `ENOTCONN`,
/// as Linux; a ring's fd `ENOTSOCK`. Other fds go to libc.
///
/// # Safety
///
/// `addr` and `len` as getpeername(2) requires.
#[no_mangle]
pub unsafe extern "C" fn getpeername(
    fd: i32,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> i32 {
    match entry(fd) {
        Some(Entry::Owned {
            peer: Some(peer), ..
        }) => {
            // SAFETY: the caller's contract.
            unsafe { write_name(peer, addr, len) }
        }
        Some(Entry::Pending { .. } | Entry::Owned { .. }) => {
            set_errno(libc::ENOTCONN);
            -1
        }
        Some(Entry::RingFd) => {
            set_errno(libc::ENOTSOCK);
            -1
        }
        None => {
            let f = next_fn!(
                "getpeername",
                unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32
            );
            // SAFETY: the caller's getpeername(2) contract, passed on.
            unsafe { f(fd, addr, len) }
        }
    }
}

/// `shutdown(2)` on a ringline socket, as SHUTDOWN through the ring: an
/// unknown `how` is `EINVAL`; a pending socket that does not listen
/// `ENOTCONN`, one that listens stops listening for `SHUT_RD`/`SHUT_RDWR`
/// (Linux's `tcp_disconnect`); an engine's socket is shut down by its engine
/// at the ring's next submit or wait, before its SQEs (`ENOTCONN` at once if
/// it is neither connected nor listening), an SQPOLL engine's before this
/// returns, with its answer. Other fds go to libc.
///
/// # Safety
///
/// None beyond shutdown(2)'s.
#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: i32, how: i32) -> i32 {
    let mut t = table();
    let Some(e) = t.entries.get_mut(&fd) else {
        drop(t);
        let f = next_fn!("shutdown", unsafe extern "C" fn(i32, i32) -> i32);
        // SAFETY: shutdown(2) takes no pointers.
        return unsafe { f(fd, how) };
    };
    let fail = |e: i32| {
        set_errno(e);
        -1
    };
    if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
        return fail(libc::EINVAL);
    }
    let ring = match e {
        Entry::RingFd => return fail(libc::ENOTSOCK),
        Entry::Pending { listen: None, .. } => return fail(libc::ENOTCONN),
        Entry::Pending { listen, port, .. } => {
            if how != libc::SHUT_WR {
                *listen = None;
                let port = *port;
                t.pending_listens(port, fd, false);
            }
            return 0;
        }
        Entry::Owned {
            peer: None,
            listening: false,
            ..
        } => return fail(libc::ENOTCONN),
        Entry::Owned {
            ring, listening, ..
        } => {
            // A listener shut for reading stops listening (Linux's
            // tcp_disconnect): so it reads at once, though an inline engine
            // does it at the ring's next call.
            if how != libc::SHUT_WR {
                *listening = false;
            }
            *ring
        }
    };
    let Some(m) = t.rings.get(&ring).cloned() else {
        return 0;
    };
    drop(t);
    if let Some(c) = &m.closer {
        return match c.shutdown(fd, how) {
            Ok(()) => 0,
            Err(e) => fail(e.0),
        };
    }
    m.post(Work::Shutdown(fd, how));
    0
}

/// `close(2)`: a pending ringline socket is forgotten and its number freed; an
/// adopted one is closed by its engine at the ring's next submit or wait (the
/// number stays reserved until then); a ring fd is left to
/// `io_uring_queue_exit`. Other fds go to libc.
///
/// # Safety
///
/// None beyond close(2)'s.
#[no_mangle]
pub unsafe extern "C" fn close(fd: i32) -> i32 {
    let mut t = table();
    match t.entries.get(&fd).copied() {
        Some(Entry::Pending { port, listen, .. }) => {
            t.entries.remove(&fd);
            if listen.is_some() {
                t.pending_listens(port, fd, false);
            }
            drop(t);
            free_number(fd);
            0
        }
        Some(Entry::Owned { ring, .. }) => {
            if let Some(m) = t.rings.get(&ring).cloned() {
                drop(t);
                if let Some(c) = &m.closer {
                    c.close(fd);
                    return 0;
                }
                m.post(Work::Close(fd));
            }
            0
        }
        Some(Entry::RingFd) => 0,
        None => {
            drop(t);
            let f = next_fn!("close", unsafe extern "C" fn(i32) -> i32);
            // SAFETY: close(2) takes no pointers.
            unsafe { f(fd) }
        }
    }
}
