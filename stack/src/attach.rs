//! The application side of `ringline serve` ([`crate::serve`]): attach to a
//! running daemon by instance name and drive a ring in shared memory exactly
//! as an SQPOLL ring ([`attach`]).
//!
//! ```no_run
//! let (mut ring, region) = ringline::attach("ringline", &ringline::AttachConfig::default()).unwrap();
//! let buf = region.alloc(4096, 64).expect("region has room");
//! // SQEs may name only memory from `region`: anything else completes with -EFAULT.
//! # let _ = (&mut ring, buf);
//! ```

// One `unsafe` use, audited where it stands: the view of the control words.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringline_ring::abi::{
    IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAIT, IORING_ENTER_SQ_WAKEUP, IORING_SQ_CQ_OVERFLOW,
};
use ringline_ring::app::{Driver, Errno, Ring};
use ringline_ring::bufring::{BufRing, BufRingConsumer};
use ringline_ring::mem::Region;
use ringline_ring::ring::{AppRing, RingView};

use crate::ipc;
use crate::serve::{
    socket_path, AttachReply, AttachRequest, BufRingMsg, BufRingReply, Control, Mapped,
    BUF_RING_REGISTER, BUF_RING_UNREGISTER, CONTROL_LEN, MAGIC, VERSION,
};

/// What an application asks of the daemon.
#[derive(Clone, Debug)]
pub struct AttachConfig {
    /// Which of the daemon's NIC ports (loopback wire: 0 is side A, 1 side B).
    pub port: u32,
    /// SQ entries (the CQ has twice as many).
    pub sq_entries: u32,
    /// Bytes of buffer region to allocate buffers from.
    pub buffer_bytes: usize,
    /// How long a wait polls before it blocks on the futex.
    pub busy_poll_us: u64,
    /// Its name for operators (`ringline stat`), at most 32 bytes; empty:
    /// the process's name.
    pub name: String,
}

impl Default for AttachConfig {
    fn default() -> Self {
        AttachConfig {
            port: 0,
            sq_entries: 256,
            buffer_bytes: 16 << 20,
            busy_poll_us: crate::config::DEFAULT_BUSY_POLL_US,
            name: String::new(),
        }
    }
}

/// Why [`attach`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The daemon's socket could not be reached or the handshake broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The daemon refused: `EBUSY` no free slot, `ENOMEM`/`EINVAL` over its
    /// limits, `ENODEV` no such port.
    #[error("the daemon refused: {0}")]
    Refused(Errno),
    /// The ring it sent does not check out.
    #[error("bad ring from the daemon: {0}")]
    Ring(#[from] ringline_ring::ring::SetupError),
    /// The memory it sent could not be mapped.
    #[error("cannot map the daemon's memory: {0}")]
    Mem(#[from] ringline_ring::mem::MemError),
}

/// A ring attached to `ringline serve`.
pub type AttachedRing = Ring<Attached>;

/// The application's buffer region: SQEs may name only memory inside it.
/// A bump allocator; memory is given back when the application detaches.
#[derive(Debug)]
pub struct AppRegion {
    buf: Arc<Region>,
    /// The bump, shared with the driver (its buffer rings come from the
    /// region too).
    next: Arc<AtomicUsize>,
}

/// Takes `len` bytes aligned to `align` (a power of two) from the bump
/// `next` of a region of `cap` bytes; their offset, or `None` when full.
fn bump(next: &AtomicUsize, cap: usize, len: usize, align: usize) -> Option<usize> {
    if !align.is_power_of_two() {
        return None;
    }
    let mut start = 0;
    // Only the application's threads move the bump; relaxed: it orders no
    // other memory (the bytes it hands out are zero from the start).
    next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        start = n.checked_add(align - 1)? & !(align - 1);
        start.checked_add(len).filter(|&end| end <= cap)
    })
    .ok()?;
    Some(start)
}

impl AppRegion {
    /// `len` bytes aligned to `align` (a power of two), or `None` when the
    /// region is full. The memory is zeroed and lives as long as the region.
    pub fn alloc(&self, len: usize, align: usize) -> Option<*mut u8> {
        let start = bump(&self.next, self.buf.len(), len, align)?;
        Some(self.buf.as_ptr().wrapping_add(start))
    }

    /// First byte of the region that SQEs may name.
    pub fn base(&self) -> *mut u8 {
        self.buf.as_ptr().wrapping_add(CONTROL_LEN)
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.buf.len() - CONTROL_LEN
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The driver of an attached ring: `enter` only waits (the daemon polls the
/// SQ); a wait polls for `busy_poll_us`, then sleeps on the shared futex in
/// slices of at most 10 ms, checking at each whether the daemon is gone.
pub struct Attached {
    sock: UnixStream,
    view: RingView,
    buf: Arc<Region>,
    busy_poll_us: u64,
    last_progress: Instant,
    slot: u32,
    /// The region's bump ([`AppRegion`]'s).
    next: Arc<AtomicUsize>,
    /// The daemon's eventfd: rung when a submit finds `IORING_SQ_NEED_WAKEUP`.
    doorbell: std::os::fd::OwnedFd,
    /// The number of the last buffer-ring request.
    seq: u32,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// Attaches to the daemon of instance `name` ([`crate::serve::socket_path`]).
pub fn attach(name: &str, cfg: &AttachConfig) -> Result<(AttachedRing, AppRegion), AttachError> {
    let sock = UnixStream::connect(socket_path(name))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    let req = AttachRequest {
        magic: MAGIC,
        version: VERSION,
        port: cfg.port,
        sq_entries: cfg.sq_entries,
        buffer_bytes: cfg.buffer_bytes as u64,
        name: [0; crate::statpage::apps::APP_NAME_LEN],
    };
    let mut req = req;
    for (d, b) in req.name.iter_mut().zip(cfg.name.bytes()) {
        *d = b;
    }
    (&sock).write_all(ipc::as_bytes(&req))?;
    let mut b = [0u8; size_of::<AttachReply>()];
    let (n, fds) = ipc::recv_fds(&sock, &mut b)?;
    let short = || std::io::Error::other("short reply from the daemon");
    if n < 8 {
        return Err(short().into());
    }
    if n < b.len() {
        // A refusal may come without the params; read the rest.
        (&sock).read_exact(&mut b[n..])?;
    }
    let reply: AttachReply = ipc::from_bytes(&b).ok_or_else(short)?;
    if reply.magic != MAGIC {
        return Err(std::io::Error::other("not a ringline daemon").into());
    }
    if reply.error != 0 {
        return Err(AttachError::Refused(Errno(reply.error as i32)));
    }
    let [ring_fd, buf_fd, doorbell] = <[_; 3]>::try_from(fds).map_err(|_| short())?;
    let ring_region = Region::map_fd(ring_fd.as_fd())?;
    let buf = Arc::new(Region::map_fd(buf_fd.as_fd())?);
    let app = AppRing::attach(ring_region, &reply.params)?;
    let mapped = Mapped {
        magic: MAGIC,
        _pad: 0,
        buffer_addr: buf.as_ptr().expose_provenance() as u64,
    };
    (&sock).write_all(ipc::as_bytes(&mapped))?;
    sock.set_read_timeout(None)?;
    let view = app.view();
    let next = Arc::new(AtomicUsize::new(CONTROL_LEN));
    let region = AppRegion {
        buf: buf.clone(),
        next: next.clone(),
    };
    let driver = Attached {
        sock,
        view,
        buf,
        busy_poll_us: cfg.busy_poll_us,
        last_progress: Instant::now(),
        slot: reply.slot,
        next,
        doorbell,
        seq: 0,
    };
    Ok((Ring::new(app, driver), region))
}

impl Attached {
    fn control(&self) -> &Control {
        // SAFETY: buf is a live mapping of at least CONTROL_LEN bytes held by self,
        // page aligned; its control words are only accessed atomically.
        unsafe { ipc::control(self.buf.as_ptr()) }
    }

    /// The slot the daemon gave this application on its port.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// One buffer-ring request to the daemon and its answer (5 s at most:
    /// the daemon reads requests every millisecond or so).
    fn buf_ring_call(
        &mut self,
        op: u32,
        bgid: u16,
        flags: u16,
        entries: u32,
        addr: u64,
    ) -> Result<(), Errno> {
        let gone = Errno(libc::EOWNERDEAD);
        if self.daemon_gone() {
            return Err(gone);
        }
        self.seq = self.seq.wrapping_add(1);
        let msg = BufRingMsg {
            magic: MAGIC,
            op,
            bgid,
            flags,
            entries,
            addr,
            seq: self.seq,
            _pad: 0,
        };
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|_| gone)?;
        (&self.sock)
            .write_all(ipc::as_bytes(&msg))
            .map_err(|_| gone)?;
        // Replies come in order; one to an earlier request this side gave up
        // on is skipped (at most a few: each wait is bounded).
        let reply = loop {
            let mut b = [0u8; size_of::<BufRingReply>()];
            if let Err(e) = (&self.sock).read_exact(&mut b) {
                let _ = self.sock.set_read_timeout(None);
                let timed_out = e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut;
                return Err(if timed_out {
                    Errno(libc::ETIMEDOUT)
                } else {
                    gone
                });
            }
            let reply: BufRingReply = ipc::from_bytes(&b).ok_or(gone)?;
            if reply.magic != MAGIC {
                let _ = self.sock.set_read_timeout(None);
                return Err(Errno(libc::EPROTO));
            }
            if reply.seq == self.seq {
                break reply;
            }
        };
        let _ = self.sock.set_read_timeout(None);
        match reply.error {
            0 => Ok(()),
            e => Err(Errno(e as i32)),
        }
    }

    /// Whether the daemon is gone: it said so, or its end of the socket closed.
    pub fn daemon_gone(&self) -> bool {
        // Pairs with the daemon's release store at shutdown.
        self.control().closed.load(Ordering::Acquire) != 0 || ipc::peer_gone(&self.sock)
    }

    fn wait(
        &mut self,
        cond: impl Fn(&RingView) -> bool,
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        let start = self.last_progress;
        let spin = Duration::from_micros(self.busy_poll_us);
        loop {
            if cond(&self.view) {
                self.last_progress = Instant::now();
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Errno(libc::ETIME));
            }
            if now.duration_since(start) < spin {
                std::hint::spin_loop();
                continue;
            }
            if self.daemon_gone() {
                return Err(Errno(libc::EOWNERDEAD));
            }
            let c = self.control();
            // Pairs with the daemon's release bump after a step.
            let seen = c.progress.load(Ordering::Acquire);
            // Dekker with the daemon's fence after the bump (see Control).
            c.app_waiting.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !cond(&self.view) {
                let mut nap = Duration::from_millis(10);
                if let Some(d) = deadline {
                    nap = nap.min(d.saturating_duration_since(now));
                }
                ipc::futex_wait(&c.progress, seen, nap);
            }
            // Our own flag.
            c.app_waiting.store(0, Ordering::Relaxed);
        }
    }
}

impl Driver for Attached {
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno> {
        // Pairs with the daemon's release store at shutdown.
        if self.control().closed.load(Ordering::Acquire) != 0 {
            return Err(Errno(libc::EOWNERDEAD));
        }
        if to_submit > 0 {
            self.last_progress = Instant::now();
        }
        if flags & IORING_ENTER_SQ_WAKEUP != 0 {
            // The ring saw IORING_SQ_NEED_WAKEUP after publishing the SQ tail and a
            // full fence (Ring::wakeup_flags): the daemon naps or is about to; the
            // eventfd stays rung until it reads it (see crate::serve).
            ipc::eventfd_ring(&self.doorbell);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        if flags & IORING_ENTER_SQ_WAIT != 0 {
            self.wait(
                |v| v.sq_space() > 0 || v.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0,
                deadline,
            )?;
        }
        if flags & IORING_ENTER_GETEVENTS != 0 && min_complete > 0 {
            self.wait(|v| v.cq_ready() >= min_complete, deadline)?;
        }
        Ok(to_submit)
    }

    /// From the region: the daemon reaches only that.
    fn new_buf_ring(&mut self, entries: u32) -> Result<(BufRing, BufRingConsumer), Errno> {
        let bytes = (entries as usize).saturating_mul(16);
        let off = bump(&self.next, self.buf.len(), bytes, 64).ok_or(Errno(libc::ENOMEM))?;
        Ok(BufRing::in_region(self.buf.clone(), off, entries)?)
    }

    /// Sends the ring's address to the daemon, which registers it if it lies
    /// in the region (`EFAULT` if not). The consumer here is dropped: the
    /// daemon's engine consumes through its own mapping.
    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        let flags = if ring.incremental() {
            ringline_ring::abi::IOU_PBUF_RING_INC
        } else {
            0
        };
        self.buf_ring_call(BUF_RING_REGISTER, bgid, flags, ring.entries(), ring.addr())
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.buf_ring_call(BUF_RING_UNREGISTER, bgid, 0, 0, 0)
    }

    /// `IORING_REGISTER_PBUF_RING` / `IORING_UNREGISTER_PBUF_RING` with a
    /// `struct io_uring_buf_reg` (as liburing programs call it): the ring at
    /// `ring_addr` must lie in the region. Other opcodes: `EINVAL`.
    unsafe fn register(&mut self, opcode: u32, arg: u64, _nr_args: u32) -> Result<u32, Errno> {
        use ringline_ring::abi::{
            IoUringBufReg, IORING_REGISTER_PBUF_RING, IORING_UNREGISTER_PBUF_RING,
        };
        if opcode != IORING_REGISTER_PBUF_RING && opcode != IORING_UNREGISTER_PBUF_RING {
            return Err(Errno::EINVAL);
        }
        if arg == 0 {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller's contract (Driver::register): `arg` is a readable
        // io_uring_buf_reg of this process for the call; read unaligned, a plain copy.
        let reg = unsafe { (arg as *const IoUringBufReg).read_unaligned() };
        if reg.resv != [0; 5] || reg.flags & !ringline_ring::abi::IOU_PBUF_RING_INC != 0 {
            return Err(Errno::EINVAL);
        }
        let op = if opcode == IORING_REGISTER_PBUF_RING {
            BUF_RING_REGISTER
        } else {
            BUF_RING_UNREGISTER
        };
        self.buf_ring_call(op, reg.bgid, reg.flags, reg.ring_entries, reg.ring_addr)
            .map(|()| 0)
    }
}
