//! Socket numbers and the socket calls: which AF_INET stream sockets are
//! ringline's, the numbers they get, and `socket()`/`bind()`/`listen()`/
//! `setsockopt()`/`getsockopt()`/`getsockname()`/`close()` for them.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use stack::{Adopted, SocketNumbers};

/// First port `bind(…, port 0)` / `listen()` without `bind()` picks
/// (Linux's `ip_local_port_range`).
const EPHEMERAL_LO: u16 = 32768;
const EPHEMERAL_HI: u16 = 60999;

/// What a reserved number stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// Made by `socket()`, not yet seen by a ring.
    Pending { port: u16, listen: Option<u32> },
    /// A socket of the engine of ring `ring`.
    Owned { ring: u64 },
    /// The `ring_fd` of a ring.
    RingFd,
}

/// Work for a ring from other calls: sockets `close()`d that its engine owns.
#[derive(Default)]
pub(crate) struct Mailbox {
    /// An SQPOLL engine's: `close()` goes straight to its thread.
    pub(crate) closer: Option<stack::SocketCloser>,
    /// Set (release) by `close()` after pushing to `closes`; the ring's next
    /// submit or wait swaps it to false (acquire) before draining.
    pub(crate) pending: AtomicBool,
    pub(crate) closes: Mutex<Vec<i32>>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<i32, Entry>,
    rings: HashMap<u64, Arc<Mailbox>>,
    next_port: u16,
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

/// A new reserved number (a real fd), or `None` if the process has none left.
pub(crate) fn reserve_number() -> Option<i32> {
    let base = devnull();
    if base < 0 {
        return None;
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd we own; no memory is passed.
    let fd = unsafe { libc::fcntl(base, libc::F_DUPFD_CLOEXEC, 0) };
    (fd >= 0).then_some(fd)
}

/// Gives number `fd` back to the kernel. The raw system call, not `close()`,
/// which this library interposes.
pub(crate) fn free_number(fd: i32) {
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
        table().entries.insert(fd, Entry::Owned { ring: self.ring });
        Some(fd)
    }

    fn release(&self, fd: i32) {
        let mut t = table();
        if t.entries.get(&fd) == Some(&Entry::Owned { ring: self.ring }) {
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

    fn adopt(&self, fd: i32) -> Option<Adopted> {
        let mut t = table();
        let e = t.entries.get_mut(&fd)?;
        let Entry::Pending { port, listen } = *e else {
            return None;
        };
        *e = Entry::Owned { ring: self.ring };
        Some(match listen {
            Some(backlog) => Adopted::Listener { port, backlog },
            None => Adopted::Socket { port },
        })
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
    ($name:literal, $ty:ty) => {{
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
        Some(Entry::Pending { port: 0, listen }) => {
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
            t.entries.insert(fd, Entry::Pending { port, listen });
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
        Some(Entry::Pending { port, .. }) => {
            let port = if port == 0 { pick_port(&mut t) } else { port };
            let backlog = backlog.max(1) as u32;
            t.entries.insert(
                fd,
                Entry::Pending {
                    port,
                    listen: Some(backlog),
                },
            );
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

/// `setsockopt(2)`: on a ringline socket the options servers set
/// (`SO_REUSEADDR`, `SO_REUSEPORT`, `SO_KEEPALIVE`, `TCP_NODELAY`, buffer
/// sizes) are accepted and have the engine's behaviour (see docs/capi.md);
/// others fail with `ENOPROTOOPT`.
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
    if entry(fd).is_some() {
        let ok = matches!(
            (level, name),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR)
                | (libc::SOL_SOCKET, libc::SO_REUSEPORT)
                | (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
                | (libc::SOL_SOCKET, libc::SO_RCVBUF)
                | (libc::SOL_SOCKET, libc::SO_SNDBUF)
                | (libc::IPPROTO_TCP, libc::TCP_NODELAY)
        );
        if ok {
            return 0;
        }
        set_errno(libc::ENOPROTOOPT);
        return -1;
    }
    let f = next_fn!(
        "setsockopt",
        unsafe extern "C" fn(i32, i32, i32, *const libc::c_void, libc::socklen_t) -> i32
    );
    // SAFETY: the caller's setsockopt(2) contract, passed on.
    unsafe { f(fd, level, name, val, len) }
}

/// `getsockname(2)`: a pending ringline socket reports `0.0.0.0:port`; an
/// adopted one reports what it reported before it was adopted (its port).
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
    match entry(fd) {
        Some(Entry::Pending { port, .. }) => {
            if addr.is_null() || len.is_null() {
                set_errno(libc::EFAULT);
                return -1;
            }
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr { s_addr: 0 },
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
        Some(_) => {
            set_errno(libc::EOPNOTSUPP);
            -1
        }
        None => {
            let f = next_fn!(
                "getsockname",
                unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32
            );
            // SAFETY: the caller's getsockname(2) contract, passed on.
            unsafe { f(fd, addr, len) }
        }
    }
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
        Some(Entry::Pending { .. }) => {
            t.entries.remove(&fd);
            drop(t);
            free_number(fd);
            0
        }
        Some(Entry::Owned { ring }) => {
            if let Some(m) = t.rings.get(&ring).cloned() {
                drop(t);
                if let Some(c) = &m.closer {
                    c.close(fd);
                    return 0;
                }
                m.closes.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
                // Release: pairs with the ring's acquire swap before it drains `closes`.
                m.pending.store(true, Ordering::Release);
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
