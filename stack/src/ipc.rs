//! The system calls between `ringline serve` and its applications, an audited
//! opt-out from `#![deny(unsafe_code)]`: descriptors over a unix socket
//! (`SCM_RIGHTS`), shared (non-private) futexes on a word both processes map,
//! and the fixed-size messages of the attach handshake as bytes.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Most descriptors one message carries.
const MAX_FDS: usize = 4;

/// Plain message types: `#[repr(C)]`, integers only, no padding, every bit
/// pattern valid. Sealed (crate-private).
///
/// # Safety
///
/// An implementor has no padding and accepts every bit pattern.
pub(crate) unsafe trait Wire: Copy + Default {}

// SAFETY: io_uring_params is 120 bytes of u32/u64 fields with no padding (asserted
// in ringline_ring::abi); every bit pattern is a valid value.
unsafe impl Wire for ringline_ring::abi::Params {}

/// The bytes of `v`.
pub(crate) fn as_bytes<T: Wire>(v: &T) -> &[u8] {
    // SAFETY: T has no padding (Wire), so all size_of::<T>() bytes are initialised.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A `T` from exactly `size_of::<T>()` bytes; `None` for another length.
pub(crate) fn from_bytes<T: Wire>(b: &[u8]) -> Option<T> {
    if b.len() != size_of::<T>() {
        return None;
    }
    // SAFETY: b holds size_of::<T>() bytes and every bit pattern is a valid T (Wire);
    // read_unaligned has no alignment requirement.
    Some(unsafe { b.as_ptr().cast::<T>().read_unaligned() })
}

/// Sends `bytes` with `fds` attached (`SCM_RIGHTS`), whole or an error.
pub(crate) fn send_fds(sock: &UnixStream, bytes: &[u8], fds: &[&OwnedFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut cbuf = [0u64; 16];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((fds.len() * size_of::<libc::c_int>()) as u32) } as usize;
    assert!(space <= size_of_val(&cbuf));
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` writable, aligned bytes, enough for one
        // header with fds.len() descriptors (CMSG_SPACE); CMSG_FIRSTHDR/CMSG_DATA stay
        // inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * size_of::<libc::c_int>()) as u32) as usize;
            let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg names live buffers (iov over `bytes`, the control buffer) for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

/// Receives one message into `buf` and the descriptors attached to it.
/// Returns the byte count (0: the peer closed).
pub(crate) fn recv_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&cbuf);
    // SAFETY: msg names live, writable buffers for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR walk
    // only inside it, and each SCM_RIGHTS payload holds (len - CMSG_LEN(0)) / 4 new
    // descriptors that this process now owns.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                for i in 0..bytes / size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("descriptors truncated"));
    }
    Ok((n as usize, fds))
}

/// Whether the peer of `sock` is gone (EOF or error pending), without
/// blocking or consuming anything.
pub(crate) fn peer_gone(sock: &UnixStream) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte writable buffer for a non-blocking peek.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return true;
    }
    n < 0 && {
        let e = io::Error::last_os_error().raw_os_error();
        e != Some(libc::EAGAIN) && e != Some(libc::EINTR)
    }
}

/// Blocks while `*word == expected`, at most `timeout` (a shared futex: the
/// word is in memory another process maps). Spurious returns are fine.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (live for the call) and
    // sleeps; the timespec is a live relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every waiter on `word` (shared futex).
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// The shared control words at the start of an attached application's
/// buffer file (see `crate::serve`), viewed in a mapping of it.
///
/// # Safety
///
/// `base` is the start of a live mapping of at least 4096 bytes that outlives
/// `'a`, page aligned, and the words are only accessed atomically.
pub(crate) unsafe fn control<'a>(base: *mut u8) -> &'a crate::serve::Control {
    // SAFETY: the caller's contract; Control is repr(C) of AtomicU32s (valid for any
    // bit pattern, including the zeroes of a fresh file), 4-byte aligned.
    unsafe { &*base.cast::<crate::serve::Control>() }
}

/// The pid of a unix socket's peer (`SO_PEERCRED`).
pub(crate) fn peer_cred_pid(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    // SAFETY: an all-zero ucred is valid; getsockopt fills at most `len` bytes of it.
    let mut cred: libc::ucred = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live and writable for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.pid)
}

/// This process's real user id.
pub(crate) fn uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

/// A non-blocking eventfd (the daemon's doorbell: an application that
/// finds `IORING_SQ_NEED_WAKEUP` set after submitting rings it).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor
    // this process owns.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings the eventfd `fd` (adds 1; never blocks: a counter at its maximum
/// is already rung).
pub(crate) fn eventfd_ring(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of a live u64 to a descriptor we hold.
    unsafe {
        libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8);
    }
}

/// Waits until the eventfd `fd` is rung or `timeout_us` passes, then resets
/// it; whether it was rung.
pub(crate) fn eventfd_wait(fd: &OwnedFd, timeout_us: u64) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: (timeout_us / 1_000_000) as libc::time_t,
        tv_nsec: ((timeout_us % 1_000_000) * 1000) as libc::c_long,
    };
    // SAFETY: one live pollfd, a live relative timeout, no signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, core::ptr::null()) };
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64 (non-blocking: EAGAIN if not rung).
    let got = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    n > 0 || got == 8
}
