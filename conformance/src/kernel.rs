//! The reference backend: Linux io_uring (the `io-uring` crate) with real TCP
//! sockets on 127.0.0.1.
//!
//! The app ring is created with `IORING_SETUP_DEFER_TASKRUN | SINGLE_ISSUER |
//! SUBMIT_ALL` (and `CQSIZE`): completions are generated only while the app is in
//! `io_uring_enter` with `GETEVENTS`, the closest kernel analogue of ringline's
//! inline engine, and a bad SQE does not stop the rest of its batch (ringline
//! consumes every SQE). The peer is plain non-blocking std sockets driven from the
//! same thread.
//!
//! SQEs are ringline's own [`Sqe`] bytes, copied verbatim into the kernel's SQ
//! ([`to_kernel_entry`]), so both backends see exactly the same 64 bytes.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use io_uring::{squeue, types, IoUring};
use ringline_ring::abi::{self, Cqe, Sqe};
use ringline_ring::bufring::{BufRing, BufRingConsumer};
use ringline_ring::mem::HugePolicy;

use crate::backend::{Backend, Budget, Kind, PeerId, PeerListenerId, PeerRx, RingSize};

/// user_data of the harness's own SQEs (teardown); never shown to scenarios.
const HIDDEN: u64 = 0xfff0_0000_0000_0000;

/// How long an expected event may take on the kernel (real time).
const EXPECT_US: u64 = 5_000_000;
/// A quiet period on the kernel: loopback delivery is synchronous with the
/// sender's system call, so 60 ms without a CQE means none is coming.
const QUIET_US: u64 = 60_000;

/// Copies a ringline SQE into an `io-uring` crate SQ entry, byte for byte.
pub(crate) fn to_kernel_entry(sqe: &Sqe) -> squeue::Entry {
    const _: () = assert!(size_of::<Sqe>() == size_of::<squeue::Entry>());
    // SAFETY: both are `#[repr(C)]` images of the kernel's 64-byte `io_uring_sqe` (integers
    // only: every bit pattern is valid; sizes asserted equal above, offsets in
    // `ringline_ring::abi`), and `transmute_copy` reads from a reference.
    unsafe { std::mem::transmute_copy::<Sqe, squeue::Entry>(sqe) }
}

struct KPeer {
    stream: Option<TcpStream>,
    out: VecDeque<u8>,
    reading: bool,
    rx: PeerRx,
}

/// Linux io_uring as a [`Backend`].
pub struct KernelBackend {
    ring: IoUring,
    /// user_data → (opcode, fd) of pushed SQEs, to track which fds the app owns.
    ops: HashMap<u64, (u8, i32)>,
    /// Fds created for or by the app (listeners, SOCKET and ACCEPT results) and
    /// not closed by a successful CLOSE; closed at teardown.
    owned: BTreeSet<i32>,
    ports: HashMap<i32, u16>,
    peers: Vec<KPeer>,
    peer_listeners: Vec<TcpListener>,
    /// Keeps the registered buffer-ring memory alive as long as the ring.
    bufrings: Vec<BufRingConsumer>,
    start: Instant,
    torn_down: bool,
    /// The second ring (MSG_RING scenarios): a plain ring.
    second: Option<IoUring>,
}

impl KernelBackend {
    /// A kernel ring of `size`; `Err` (with the reason) when io_uring is unavailable.
    ///
    /// With `RINGLINE_CONFORMANCE_KERNEL_TASKRUN=default` in the environment the
    /// ring is set up without `DEFER_TASKRUN | SINGLE_ISSUER` (completions then run
    /// as task work on any return to user space), to check that an outcome does not
    /// depend on that choice.
    pub fn new(size: RingSize) -> Result<KernelBackend, String> {
        let mut b = IoUring::builder();
        b.setup_cqsize(size.cq).setup_submit_all();
        if std::env::var("RINGLINE_CONFORMANCE_KERNEL_TASKRUN").as_deref() != Ok("default") {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        let ring = b
            .build(size.sq)
            .map_err(|e| format!("io_uring_setup: {e}"))?;
        Ok(KernelBackend {
            ring,
            ops: HashMap::new(),
            owned: BTreeSet::new(),
            ports: HashMap::new(),
            peers: Vec::new(),
            peer_listeners: Vec::new(),
            bufrings: Vec::new(),
            start: Instant::now(),
            torn_down: false,
            second: None,
        })
    }

    /// Whether io_uring works here (a ring can be created), or why not.
    pub fn probe() -> Result<(), String> {
        KernelBackend::new(RingSize::default()).map(drop)
    }

    fn track(&mut self, c: &Cqe) {
        let Some(&(op, fd)) = self.ops.get(&c.user_data) else {
            return;
        };
        match op {
            abi::IORING_OP_SOCKET | abi::IORING_OP_ACCEPT if c.res >= 0 => {
                self.owned.insert(c.res);
            }
            abi::IORING_OP_CLOSE if c.res == 0 => {
                self.owned.remove(&fd);
            }
            _ => {}
        }
    }

    /// Moves queued peer data and reads for reading peers (non-blocking).
    fn move_peers(&mut self) {
        for p in &mut self.peers {
            let Some(s) = p.stream.as_mut() else { continue };
            while !p.out.is_empty() {
                let (a, _) = p.out.as_slices();
                match s.write(a) {
                    Ok(0) => break,
                    Ok(n) => {
                        p.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        p.rx.error
                            .get_or_insert(e.raw_os_error().unwrap_or(libc::EIO));
                        p.out.clear();
                    }
                }
            }
            if p.reading && !p.rx.eof && p.rx.error.is_none() {
                let mut buf = [0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            p.rx.eof = true;
                            break;
                        }
                        Ok(n) => p.rx.data.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            p.rx.error = Some(e.raw_os_error().unwrap_or(libc::EIO));
                            break;
                        }
                    }
                }
            }
        }
    }

    fn listener(&mut self, backlog: i32) -> Result<(TcpListener, u16), String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        // SAFETY: `l` is a valid listening socket owned by this function; listen(2)
        // on it only changes its backlog.
        let r = unsafe { libc::listen(l.as_raw_fd(), backlog) };
        if r != 0 {
            return Err(format!("listen: {}", std::io::Error::last_os_error()));
        }
        Ok((l, port))
    }

    fn add_peer(&mut self, s: TcpStream) -> PeerId {
        let _ = s.set_nodelay(true);
        let _ = s.set_nonblocking(true);
        self.peers.push(KPeer {
            stream: Some(s),
            out: VecDeque::new(),
            reading: false,
            rx: PeerRx::default(),
        });
        PeerId(self.peers.len() - 1)
    }
}

fn sockaddr_of(port: u16) -> libc::sockaddr_in {
    ringline_ring::app::sockaddr_in([127, 0, 0, 1], port)
}

impl Backend for KernelBackend {
    fn kind(&self) -> Kind {
        Kind::Kernel
    }

    unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), String> {
        // A direct descriptor's result (SOCKET, ACCEPT with file_index) and
        // a fixed file's fd are slots, not fds: not the backend's to close.
        let direct = sqe.file_index != 0 || sqe.flags & abi::IOSQE_FIXED_FILE != 0;
        let op = if direct {
            abi::IORING_OP_NOP
        } else {
            sqe.opcode
        };
        self.ops.insert(sqe.user_data, (op, sqe.fd));
        let e = to_kernel_entry(sqe);
        // SAFETY: the caller keeps every buffer the SQE names valid until this
        // backend drops (the trait method's contract); dropping it cancels all
        // requests and closes the ring.
        unsafe { self.ring.submission().push(&e) }.map_err(|_| "SQ full".to_string())
    }

    fn submit(&mut self) {
        // io_uring_submit: adds GETEVENTS itself when IORING_SQ_CQ_OVERFLOW is set.
        let _ = self.ring.submit();
    }

    fn tick(&mut self) {
        self.move_peers();
        let (ready, cap) = {
            let cq = self.ring.completion();
            (cq.len(), cq.capacity())
        };
        let ts = types::Timespec::new().nsec(2_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        // GETEVENTS (want >= 1) runs the deferred task work and flushes the
        // overflow backlog; errors (ETIME, EINTR, EBUSY) only mean "nothing new".
        let _ = self
            .ring
            .submitter()
            .submit_with_args((ready + 1).min(cap), &args);
        if ready >= cap {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.move_peers();
    }

    fn expired(&self, start: u64, budget: Budget) -> bool {
        let limit = match budget {
            Budget::Expect => EXPECT_US,
            Budget::Quiet => QUIET_US,
        };
        self.now().saturating_sub(start) >= limit
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn timeout_clock_us(&self) -> u64 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for clock_gettime to write.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
    }

    fn reap(&mut self) -> Vec<Cqe> {
        self.reap_n(usize::MAX)
    }

    fn reap_n(&mut self, n: usize) -> Vec<Cqe> {
        let v: Vec<Cqe> = self
            .ring
            .completion()
            .take(n)
            .map(|e| Cqe {
                user_data: e.user_data(),
                res: e.result(),
                flags: e.flags(),
            })
            .collect();
        for c in &v {
            self.track(c);
        }
        v.into_iter().filter(|c| c.user_data < HIDDEN).collect()
    }

    fn sq_flags(&mut self) -> u32 {
        let sq = self.ring.submission();
        let mut f = 0;
        if sq.cq_overflow() {
            f |= abi::IORING_SQ_CQ_OVERFLOW;
        }
        if sq.taskrun() {
            f |= abi::IORING_SQ_TASKRUN;
        }
        f
    }

    fn cq_ready(&mut self) -> u32 {
        self.ring.completion().len() as u32
    }

    fn register_buf_ring_flags(
        &mut self,
        entries: u32,
        bgid: u16,
        flags: u16,
    ) -> Result<BufRing, i32> {
        let (ring, consumer) = BufRing::new(entries, HugePolicy::Never).map_err(|e| e.errno())?;
        // SAFETY: the ring memory (entries × 16 bytes, page aligned) stays mapped
        // while `consumer` (which shares it) lives in `self.bufrings`, i.e. until
        // this backend, and with it the io_uring instance, is dropped.
        let r = unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.as_ptr() as u64,
                entries as u16,
                bgid,
                flags,
            )
        };
        r.map_err(|e| -e.raw_os_error().unwrap_or(libc::EINVAL))?;
        self.bufrings.push(consumer);
        Ok(ring)
    }

    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> i32 {
        // SAFETY: io_uring_register on our ring fd; `arg` is valid as the
        // caller promised (this method's contract). The kernel checks the rest.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.ring.as_raw_fd(),
                opcode,
                arg,
                nr_args,
            )
        };
        if r < 0 {
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
        } else {
            r as i32
        }
    }

    fn app_listener(&mut self, backlog: i32) -> Result<i32, String> {
        let (l, port) = self.listener(backlog)?;
        let fd = l.into_raw_fd();
        self.owned.insert(fd);
        self.ports.insert(fd, port);
        Ok(fd)
    }

    fn app_conn(&mut self) -> Result<(i32, PeerId), String> {
        let (l, port) = self.listener(16)?;
        let s =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("peer connect: {e}"))?;
        let (a, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
        let fd = a.into_raw_fd();
        self.owned.insert(fd);
        Ok((fd, self.add_peer(s)))
    }

    fn peer_connect(&mut self, listener: i32) -> Result<PeerId, String> {
        let port = *self
            .ports
            .get(&listener)
            .ok_or("peer_connect: not an app listener")?;
        let addr = SocketAddr::V4(SocketAddrV4::new([127, 0, 0, 1].into(), port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("peer connect: {e}"))?;
        Ok(self.add_peer(s))
    }

    fn peer_send(&mut self, p: PeerId, data: &[u8]) {
        self.peers[p.0].out.extend(data);
        self.move_peers();
    }

    fn peer_sent_all(&self, p: PeerId) -> bool {
        self.peers[p.0].out.is_empty()
    }

    fn peer_start_reading(&mut self, p: PeerId) {
        self.peers[p.0].reading = true;
        self.move_peers();
    }

    fn peer_rx(&self, p: PeerId) -> PeerRx {
        self.peers[p.0].rx.clone()
    }

    fn peer_shutdown_write(&mut self, p: PeerId) {
        self.move_peers();
        if let Some(s) = &self.peers[p.0].stream {
            let _ = s.shutdown(Shutdown::Write);
        }
    }

    fn peer_close(&mut self, p: PeerId) {
        self.move_peers();
        self.peers[p.0].stream = None;
    }

    fn peer_listen(&mut self) -> Result<(PeerListenerId, libc::sockaddr_in), String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("peer bind: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        self.peer_listeners.push(l);
        Ok((
            PeerListenerId(self.peer_listeners.len() - 1),
            sockaddr_of(port),
        ))
    }

    fn peer_accept(&mut self, l: PeerListenerId) -> Option<PeerId> {
        let (s, _) = self.peer_listeners[l.0].accept().ok()?;
        Some(self.add_peer(s))
    }

    fn refused_addr(&mut self) -> libc::sockaddr_in {
        // A port that was just free: bind, note it, close. Nothing listens there
        // afterwards (an ephemeral port is not handed out again at once).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        sockaddr_of(port)
    }

    fn ring_fd(&mut self) -> i32 {
        self.ring.as_raw_fd()
    }

    fn second_ring(&mut self) -> Result<i32, String> {
        if self.second.is_none() {
            self.second = Some(IoUring::new(16).map_err(|e| format!("second ring: {e}"))?);
        }
        Ok(self.second.as_ref().map_or(-1, |r| r.as_raw_fd()))
    }

    unsafe fn second_submit(&mut self, sqe: &Sqe) -> Result<(), String> {
        let r = self.second.as_mut().ok_or("no second ring")?;
        let e = to_kernel_entry(sqe);
        // SAFETY: the caller keeps what the SQE names valid (the trait's contract).
        unsafe { r.submission().push(&e) }.map_err(|_| "SQ full".to_string())?;
        r.submit().map_err(|e| format!("second ring submit: {e}"))?;
        Ok(())
    }

    fn second_reap(&mut self) -> Vec<Cqe> {
        let Some(r) = self.second.as_mut() else {
            return Vec::new();
        };
        r.completion()
            .map(|c| Cqe {
                user_data: c.user_data(),
                res: c.result(),
                flags: c.flags(),
            })
            .collect()
    }

    fn app_bind_addr(&mut self) -> libc::sockaddr_in {
        // As refused_addr: a port that was just free.
        self.refused_addr()
    }

    fn adopt_listener(&mut self, fd: i32, sa: &libc::sockaddr_in) {
        self.ports.insert(fd, u16::from_be(sa.sin_port));
    }

    fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        // Cancel everything still in flight, so no request touches scenario memory
        // after the harness frees it.
        let mut c = Sqe {
            opcode: abi::IORING_OP_ASYNC_CANCEL,
            fd: -1,
            op_flags: abi::IORING_ASYNC_CANCEL_ANY,
            user_data: HIDDEN,
            ..Sqe::default()
        };
        c.flags = 0;
        // Make room in the CQ first (the backlog is dropped with the ring).
        let _ = self.reap();
        // SAFETY: an ASYNC_CANCEL names no memory (its addr would be a user_data).
        if unsafe { self.push(&c) }.is_ok() {
            let start = self.now();
            while !self.expired(start, Budget::Quiet) {
                self.tick();
                let _ = self.reap();
            }
        }
        self.peers.clear();
        self.peer_listeners.clear();
    }
}

impl Drop for KernelBackend {
    fn drop(&mut self) {
        self.teardown();
        for &fd in &self.owned {
            // SAFETY: `fd` was created for this backend and no successful CLOSE of it was seen;
            // scenarios run one at a time on one thread, so nobody else reused the number.
            unsafe { libc::close(fd) };
        }
    }
}
