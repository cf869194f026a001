//! AF_PACKET sockets for the relay: the relay's audited opt-out from
//! `#![deny(unsafe_code)]` (system calls on raw sockets through `libc`).
//!
//! One [`PacketSocket`] per interface: bound to it, promiscuous, non-blocking,
//! blind to the frames the interface sends (`PACKET_IGNORE_OUTGOING`, and
//! `PACKET_OUTGOING` is filtered too, so the relay never reads back what it
//! writes), and told for each frame whether its checksum is still to be
//! filled (`PACKET_AUXDATA`, `TP_STATUS_CSUMNOTREADY`).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `ETH_P_ALL` in network byte order, as `sockaddr_ll` and `socket` want it.
fn eth_p_all() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// One frame read by [`PacketSocket::recv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its length (at most the buffer's; see `truncated`).
    pub len: usize,
    /// The sender left its TCP/UDP checksum to offload (see
    /// [`super::frame::fill_l4_checksum`]).
    pub csum_not_ready: bool,
    /// The frame was longer than the buffer (its tail was cut off).
    pub truncated: bool,
}

/// A raw socket on one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    /// The interface, for messages.
    pub name: String,
}

/// Turns a -1 return into the thread's errno.
fn check(r: libc::c_int, what: &str, iface: &str) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{iface}: {what}: {e}")));
    }
    Ok(r)
}

/// `setsockopt` of a plain value.
fn set_opt<T>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    v: &T,
    what: &str,
    iface: &str,
) -> io::Result<()> {
    // SAFETY: `v` points to a live, initialised T and the length passed is
    // its size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(r, what, iface).map(drop)
}

impl PacketSocket {
    /// Opens a socket on interface `iface` (which must exist) with a receive
    /// buffer of `rcvbuf` bytes (forced past `rmem_max` when root).
    pub fn open(iface: &str, rcvbuf: usize) -> io::Result<PacketSocket> {
        let cname = CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {iface:?} in this network namespace"),
            ));
        }
        // Protocol 0: the socket hears nothing until it is bound to the
        // interface, so no frame of another interface slips in first.
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        let raw = check(raw, "socket(AF_PACKET)", iface)?;
        // SAFETY: `raw` is a socket just opened and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = i32::try_from(rcvbuf).unwrap_or(i32::MAX);
        if set_opt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size,
            "SO_RCVBUFFORCE",
            iface,
        )
        .is_err()
        {
            set_opt(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size,
                "SO_RCVBUF",
                iface,
            )?;
        }
        let one: libc::c_int = 1;
        set_opt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &one,
            "PACKET_AUXDATA",
            iface,
        )?;
        // Best effort (Linux 4.20+); PACKET_OUTGOING is filtered anyway.
        let _ = set_opt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
            iface,
        );
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = eth_p_all();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(r, "bind", iface)?;
        // SAFETY: packet_mreq is plain data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        set_opt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_MR_PROMISC",
            iface,
        )?;
        Ok(PacketSocket {
            fd,
            name: iface.to_owned(),
        })
    }

    /// Reads one frame into `buf`; `Ok(None)` when none is waiting. Frames
    /// the interface sent are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        loop {
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { zeroed() };
            // Room for one tpacket_auxdata control message, 8-byte aligned
            // as cmsghdr requires.
            let mut control = [0u64; 8];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: msghdr is plain data; all-zero is a valid value.
            let mut msg: libc::msghdr = unsafe { zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 8]>();
            // SAFETY: every pointer in `msg` names a live local buffer of the
            // length given with it (the frame buffer, `from`, `control`),
            // valid for the whole call.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(io::Error::new(
                        e.kind(),
                        format!("{}: recvmsg: {e}", self.name),
                    )),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut csum_not_ready = false;
            // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay
            // within msg_controllen, and the auxdata message is read
            // unaligned from its data, whose length the kernel set.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET
                        && (*c).cmsg_type == libc::PACKET_AUXDATA
                        && (*c).cmsg_len as usize
                            >= libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) as usize
                    {
                        let aux: libc::tpacket_auxdata =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        csum_not_ready = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let n = n as usize;
            return Ok(Some(Received {
                len: n.min(buf.len()),
                csum_not_ready,
                truncated: n > buf.len(),
            }));
        }
    }

    /// Writes one frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is a live buffer of the length passed. The
            // socket is bound, so no address is needed.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Frames the kernel dropped because the socket's buffer was full, since
    /// the last call (`PACKET_STATISTICS` resets on read).
    pub fn drops(&self) -> io::Result<u64> {
        // SAFETY: tpacket_stats is plain data; all-zero is a valid value.
        let mut st: libc::tpacket_stats = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid out-pointers; `len` holds st's size.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        check(r, "PACKET_STATISTICS", &self.name)?;
        Ok(u64::from(st.tp_drops))
    }
}

/// Waits until one of `socks` has a frame or `timeout` passes (µs
/// precision: a 1 ms delay must not become 2). Returns which are readable.
pub fn wait(socks: [&PacketSocket; 2], timeout: Duration) -> io::Result<[bool; 2]> {
    let mut fds = socks.map(|s| libc::pollfd {
        fd: s.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `fds` is a live array of 2 pollfds and `ts` a valid timespec;
    // no signal mask is passed.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok([false; 2]);
        }
        return Err(e);
    }
    let bad = libc::POLLERR | libc::POLLNVAL | libc::POLLHUP;
    for (f, s) in fds.iter().zip(socks) {
        if f.revents & bad != 0 && f.revents & libc::POLLIN == 0 {
            return Err(io::Error::other(format!(
                "{}: the interface went away (poll revents {:#x})",
                s.name, f.revents
            )));
        }
    }
    Ok(fds.map(|f| f.revents & libc::POLLIN != 0))
}
