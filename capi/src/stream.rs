//! The byte-stream and connection calls libc has beside the ring
//! (`read(2)`, `write(2)`, `send(2)`, `recv(2)`, their vector and message
//! forms, `connect(2)`, `accept(2)`) on ringline socket numbers.
//!
//! libringline serves these sockets only through the ring. To the kernel a
//! ringline number is a copy of a `/dev/null` descriptor, so without these
//! functions `read()` would return 0 (an end of file the peer never sent),
//! `write()` `EBADF` and `connect()` `ENOTSOCK`. Here each call on a number
//! this library reserved fails with `EOPNOTSUPP`, and the first such call of
//! each kind says so on standard error, naming the socket and the ring
//! operation to use. Every other descriptor goes to libc's function after
//! one bit test ([`crate::sockets::is_ringline_number`]).
//!
//! The `_chk` forms are what `_FORTIFY_SOURCE` builds call in place of
//! `read()`, `recv()` and `recvfrom()`.

use core::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use libc::{iovec, msghdr, sockaddr, socklen_t};

use crate::sockets::{is_ringline_number, next_fn};

/// Fails a call on ringline socket `fd` with `EOPNOTSUPP`; the first time
/// for `said` (one flag per function), says why on standard error.
#[cold]
fn refuse(name: &str, instead: &str, fd: i32, said: &AtomicBool) -> i32 {
    // Relaxed: only keeps the message to one per function; no data is
    // published through it.
    if !said.swap(true, Ordering::Relaxed) {
        // `__read_chk` is the program's `read()`.
        let name = name
            .strip_prefix("__")
            .and_then(|n| n.strip_suffix("_chk"))
            .unwrap_or(name);
        eprintln!(
            "libringline: {name}() on socket {fd}, a ringline socket: not supported, \
             use the ring ({instead}); failing with EOPNOTSUPP"
        );
    }
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = libc::EOPNOTSUPP };
    -1
}

/// Defines each function: on a ringline number, [`refuse`]; else libc's.
macro_rules! ringline_refuses {
    ($(
        $(#[$m:meta])*
        fn $name:ident($fd:ident: i32 $(, $a:ident: $ty:ty)*) -> $ret:ty, instead $instead:literal;
    )*) => {$(
        $(#[$m])*
        ///
        /// # Safety
        ///
        /// The same as libc's function of this name: what it reads and
        /// writes through its pointers.
        #[no_mangle]
        pub unsafe extern "C" fn $name($fd: i32 $(, $a: $ty)*) -> $ret {
            if is_ringline_number($fd) {
                static SAID: AtomicBool = AtomicBool::new(false);
                return refuse(stringify!($name), $instead, $fd, &SAID) as $ret;
            }
            let f = next_fn!(
                stringify!($name),
                unsafe extern "C" fn(i32 $(, $ty)*) -> $ret
            );
            // SAFETY: the caller's contract for libc's function, passed on.
            unsafe { f($fd $(, $a)*) }
        }
    )*};
}

ringline_refuses! {
    /// `read(2)`.
    fn read(fd: i32, buf: *mut c_void, n: usize) -> isize, instead "IORING_OP_RECV or IORING_OP_READ";
    /// `_FORTIFY_SOURCE`'s `read(2)`.
    fn __read_chk(fd: i32, buf: *mut c_void, n: usize, buflen: usize) -> isize, instead "IORING_OP_RECV or IORING_OP_READ";
    /// `write(2)`.
    fn write(fd: i32, buf: *const c_void, n: usize) -> isize, instead "IORING_OP_SEND or IORING_OP_WRITE";
    /// `readv(2)`.
    fn readv(fd: i32, iov: *const iovec, cnt: i32) -> isize, instead "IORING_OP_READV or IORING_OP_RECVMSG";
    /// `writev(2)`.
    fn writev(fd: i32, iov: *const iovec, cnt: i32) -> isize, instead "IORING_OP_WRITEV or IORING_OP_SENDMSG";
    /// `recv(2)`.
    fn recv(fd: i32, buf: *mut c_void, n: usize, flags: i32) -> isize, instead "IORING_OP_RECV";
    /// `_FORTIFY_SOURCE`'s `recv(2)`.
    fn __recv_chk(fd: i32, buf: *mut c_void, n: usize, buflen: usize, flags: i32) -> isize, instead "IORING_OP_RECV";
    /// `send(2)`.
    fn send(fd: i32, buf: *const c_void, n: usize, flags: i32) -> isize, instead "IORING_OP_SEND";
    /// `recvfrom(2)`.
    fn recvfrom(fd: i32, buf: *mut c_void, n: usize, flags: i32, addr: *mut sockaddr, len: *mut socklen_t) -> isize, instead "IORING_OP_RECV";
    /// `_FORTIFY_SOURCE`'s `recvfrom(2)`.
    fn __recvfrom_chk(fd: i32, buf: *mut c_void, n: usize, buflen: usize, flags: i32, addr: *mut sockaddr, len: *mut socklen_t) -> isize, instead "IORING_OP_RECV";
    /// `sendto(2)`.
    fn sendto(fd: i32, buf: *const c_void, n: usize, flags: i32, addr: *const sockaddr, len: socklen_t) -> isize, instead "IORING_OP_SEND";
    /// `recvmsg(2)`.
    fn recvmsg(fd: i32, msg: *mut msghdr, flags: i32) -> isize, instead "IORING_OP_RECVMSG";
    /// `sendmsg(2)`.
    fn sendmsg(fd: i32, msg: *const msghdr, flags: i32) -> isize, instead "IORING_OP_SENDMSG";
    /// `connect(2)`.
    fn connect(fd: i32, addr: *const sockaddr, len: socklen_t) -> i32, instead "IORING_OP_CONNECT";
    /// `accept(2)`.
    fn accept(fd: i32, addr: *mut sockaddr, len: *mut socklen_t) -> i32, instead "IORING_OP_ACCEPT";
    /// `accept4(2)`.
    fn accept4(fd: i32, addr: *mut sockaddr, len: *mut socklen_t, flags: i32) -> i32, instead "IORING_OP_ACCEPT";
}
