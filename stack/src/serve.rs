//! `ringline serve`: one process owns the NIC ports and their engines;
//! applications in other processes attach over a unix socket
//! ([`crate::attach`]) and drive a ring in shared memory as in SQPOLL mode.
//!
//! # Shape
//!
//! Each NIC port of the daemon has up to `max_apps` application slots. An
//! attached application gets an engine of its own on that port (its
//! sockets, listeners, buffers and ring; so it cannot name another's
//! sockets), joined to its siblings as a group ([`crate::engine_group`]):
//! an active open picks a source port whose flow hashes to its slot, and
//! the neighbours one engine learns reach the others. Ingress is
//! dispatched in software ([`SlotPort`]): a TCP segment for a port some
//! engine listens on goes to that engine (the port's [`PortClaims`]), any
//! other TCP segment to the slot its flow hashes to, anything else (ARP)
//! to the first live slot. All engines of the daemon run on its one
//! thread, stepped in turn.
//!
//! # Memory
//!
//! An application's ring is a file ([`Region::new_file`]) both processes
//! map; its buffer region is a second file whose first page holds the
//! [`Control`] words and the rest is the application's to allocate its
//! buffers from. While the daemon steps an application's engine every
//! address an SQE names is resolved inside that region
//! (`usermem::with_window`); anything else completes with `-EFAULT`.
//!
//! # Waking an idle daemon
//!
//! The daemon polls while it has work and for `busy_poll_us` after, then
//! naps (50 µs doubling to 1 ms) as an SQPOLL thread sleeps. Before each
//! nap it does what Linux's SQPOLL thread does: for every attached ring it
//! sets `IORING_SQ_NEED_WAKEUP` in `sq_flags` (a SeqCst `fetch_or`; the
//! engine is that word's only writer), fences (SeqCst) and re-checks the
//! SQ tail (acquire, pairing with the application's release store of it);
//! SQEs there: it clears the flags and does not nap. An application's
//! `submit` stores its SQ tail (release), fences (SeqCst) and loads
//! `sq_flags` (`AppRing::needs_wakeup`); seeing the flag it enters with
//! `IORING_ENTER_SQ_WAKEUP`, and the attached driver rings the daemon's
//! eventfd (the doorbell, sent at attach), on which the nap waits (`ppoll`).
//! Dekker: either the daemon's re-check sees the new tail, or the
//! application sees the flag and rings; an eventfd stays readable until
//! read, so a ring between the re-check and the `ppoll` is not lost. On
//! waking the daemon reads the eventfd (resetting it) and clears the flags.
//! The nap stays bounded (1 ms: frames on a DPDK port, timers) whether or
//! not anyone rings. `wakeup: false` keeps the flags clear (naps only: up
//! to 1 ms before an idle daemon sees an SQE).
//!
//! # Lifecycle
//!
//! The unix socket stays open for as long as the application is attached;
//! the daemon checks it every millisecond or so. At EOF (exit, crash,
//! SIGKILL) the application's requests are cancelled and its sockets closed
//! as Linux closes a dead process's (RST where data is unread, else FIN);
//! the engine keeps running until those connections are gone (at most
//! `drain`), then its slot, listening ports and memory are released. When
//! the daemon stops it sets [`Control::closed`] and wakes every
//! application; an application whose daemon crashed sees EOF on the socket
//! at its next wait. Either way its `enter` answers `EOWNERDEAD`.

// Two `unsafe` uses, both audited where they stand: stepping an engine under an
// application's window (`usermem::with_window`) and the window's base pointer.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringline_dataplane::{Nic, NicCaps, NicCounters, TxError, RX_BURST};
use ringline_ring::abi::Params;
use ringline_ring::mem::{HugePolicy, Region};
use ringline_ring::ring::{new_ring_shared, RingConfig};

pub use crate::core::claims::PortClaims;

use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::group::{engine_group, GroupMember};
use crate::ipc;
use crate::statpage::apps::{AppStat, AppsPublisher, APP_NAME_LEN};
use crate::usermem::Window;

/// Bytes at the start of an application's buffer file that hold [`Control`];
/// its buffers start after them.
pub const CONTROL_LEN: usize = 4096;

/// `"RLSV"`: the first word of every attach message.
pub const MAGIC: u32 = 0x524c_5356;
/// Version of the attach messages.
pub const VERSION: u32 = 2;

/// The words the daemon and an application share besides the ring, at the
/// start of the application's buffer file.
#[repr(C)]
#[derive(Debug)]
pub struct Control {
    /// Bumped (release) by the daemon after a step of this application's
    /// engine that posted CQEs or took SQEs; the application futex-waits on
    /// it (shared futex) after reading it (acquire).
    pub progress: AtomicU32,
    /// Set (SeqCst) by the application before it futex-waits, then it
    /// re-checks the ring; the daemon fences after bumping `progress` and
    /// wakes the futex if it sees it set (Dekker: either the application
    /// sees the ring change or the daemon sees it waiting). Cleared by the
    /// application.
    pub app_waiting: AtomicU32,
    /// Set (release) by the daemon when it stops serving this application
    /// (shutdown); the application loads it (acquire) and answers
    /// `EOWNERDEAD`.
    pub closed: AtomicU32,
}

const _: () = {
    assert!(size_of::<Control>() == 12);
    assert!(core::mem::offset_of!(Control, progress) == 0);
    assert!(core::mem::offset_of!(Control, app_waiting) == 4);
    assert!(core::mem::offset_of!(Control, closed) == 8);
    assert!(size_of::<Control>() <= CONTROL_LEN);
};

/// Application → daemon: what it asks for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AttachRequest {
    pub(crate) magic: u32,
    pub(crate) version: u32,
    /// Which of the daemon's NIC ports.
    pub(crate) port: u32,
    /// SQ size (the CQ is twice it).
    pub(crate) sq_entries: u32,
    /// Buffer region bytes (without the control page).
    pub(crate) buffer_bytes: u64,
    /// The application's name for operators (`ringline stat`), NUL-padded
    /// (version 2).
    pub(crate) name: [u8; APP_NAME_LEN],
}

/// Daemon → application, with the ring and buffer files attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AttachReply {
    pub(crate) magic: u32,
    /// 0, or a positive errno (`EBUSY`: no free slot; `EINVAL`, `ENOMEM`:
    /// over the limits).
    pub(crate) error: u32,
    pub(crate) slot: u32,
    pub(crate) port: u32,
    pub(crate) params: Params,
}

/// Application → daemon once it mapped its buffer file: where.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mapped {
    pub(crate) magic: u32,
    pub(crate) _pad: u32,
    /// The application's address of its buffer file's first byte.
    pub(crate) buffer_addr: u64,
}

/// [`BufRingMsg::op`]: register the ring at `addr` as group `bgid`.
pub(crate) const BUF_RING_REGISTER: u32 = 1;
/// [`BufRingMsg::op`]: unregister group `bgid`.
pub(crate) const BUF_RING_UNREGISTER: u32 = 2;

/// Application → daemon while attached: a buffer ring to register
/// (`IORING_REGISTER_PBUF_RING`) or unregister. The daemon answers each
/// with a [`BufRingReply`], in order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BufRingMsg {
    pub(crate) magic: u32,
    /// [`BUF_RING_REGISTER`] or [`BUF_RING_UNREGISTER`].
    pub(crate) op: u32,
    pub(crate) bgid: u16,
    /// `IOU_PBUF_RING_INC` or 0.
    pub(crate) flags: u16,
    /// Entries (a power of two up to 32768).
    pub(crate) entries: u32,
    /// The application's address of the ring: inside its region, or `EFAULT`.
    pub(crate) addr: u64,
    /// The request's number, echoed in its reply (a reply the application
    /// gave up waiting for is not taken for the next one's).
    pub(crate) seq: u32,
    pub(crate) _pad: u32,
}

/// Daemon → application: how a [`BufRingMsg`] went.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BufRingReply {
    pub(crate) magic: u32,
    /// 0, or a positive errno (`EFAULT`, `EINVAL`, `EEXIST`, `ENOENT`...).
    pub(crate) error: u32,
    /// The request's `seq`.
    pub(crate) seq: u32,
    pub(crate) _pad: u32,
}

const _: () = {
    assert!(size_of::<BufRingMsg>() == 32);
    assert!(core::mem::offset_of!(BufRingMsg, addr) == 16);
    assert!(core::mem::offset_of!(BufRingMsg, seq) == 24);
    assert!(size_of::<BufRingReply>() == 16);
    assert!(size_of::<AttachRequest>() == 24 + APP_NAME_LEN);
    assert!(size_of::<AttachReply>() == 16 + 120);
    assert!(size_of::<Mapped>() == 16);
};

// SAFETY: repr(C), integer fields only, no padding (sizes asserted above: 4+4+4+4+8+32,
// 4*4+120 with Params 8-aligned at 16, 4+4+8); every bit pattern is valid.
unsafe impl ipc::Wire for AttachRequest {}
// SAFETY: as above.
unsafe impl ipc::Wire for AttachReply {}
// SAFETY: as above.
unsafe impl ipc::Wire for Mapped {}
// SAFETY: as above (4+4+2+2+4+8+4+4, 4*4: no padding).
unsafe impl ipc::Wire for BufRingMsg {}
// SAFETY: as above.
unsafe impl ipc::Wire for BufRingReply {}

/// Where the unix socket of instance `name` lives: `name` itself if it has a
/// `/`; else `<dir>/<name>.sock` with `<dir>` `$RINGLINE_RUN_DIR`, or
/// `$XDG_RUNTIME_DIR/ringline`, or `/run/ringline` for root, or
/// `/tmp/ringline-<uid>`.
pub fn socket_path(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let dir = if let Some(d) = std::env::var_os("RINGLINE_RUN_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(d).join("ringline")
    } else if ipc::uid() == 0 {
        PathBuf::from("/run/ringline")
    } else {
        PathBuf::from(format!("/tmp/ringline-{}", ipc::uid()))
    };
    dir.join(format!("{name}.sock"))
}

/// The daemon's limits and timing (the `[serve]` table of the config).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The unix socket applications attach on ([`socket_path`]).
    pub socket: PathBuf,
    /// Application slots per NIC port (1 to 64).
    pub max_apps: u16,
    /// Largest buffer region an application may ask for, bytes.
    pub max_buffer_bytes: usize,
    /// Largest SQ an application may ask for.
    pub max_sq_entries: u32,
    /// Most sockets (connections) per application: its engine's
    /// `max_connections`.
    pub max_sockets: usize,
    /// How long a departed application's connections may take to close
    /// before its engine is dropped anyway.
    pub drain: Duration,
    /// How long the daemon polls without work before it naps (50 µs
    /// doubling to 1 ms between polls).
    pub busy_poll_us: u64,
    /// Huge pages for rings and buffer regions.
    pub huge: HugePolicy,
    /// Publish the applications for `ringline stat` in
    /// `/dev/shm/ringline.<pid>.apps` ([`crate::statpage::apps`]), every
    /// `stat_interval`.
    pub stat: bool,
    /// How often the applications page is rewritten.
    pub stat_interval: Duration,
    /// Let applications wake a napping daemon (`IORING_SQ_NEED_WAKEUP` and
    /// the doorbell; see the module docs). Off: it naps only.
    pub wakeup: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            socket: socket_path("ringline"),
            max_apps: 8,
            max_buffer_bytes: 256 << 20,
            max_sq_entries: 4096,
            max_sockets: 4096,
            drain: Duration::from_secs(2),
            busy_poll_us: crate::config::DEFAULT_BUSY_POLL_US,
            huge: HugePolicy::Auto,
            stat: false,
            stat_interval: Duration::from_millis(100),
            wakeup: true,
        }
    }
}

/// Frames waiting for a slot's engine, per slot: beyond it they are dropped
/// (and counted), as a full RX ring drops.
const SLOT_QUEUE: usize = 4096;

/// One NIC port shared by the engines of its slots: the software dispatch.
struct Demux<N: Nic> {
    nic: N,
    queues: Vec<VecDeque<N::Frame>>,
    live: Vec<bool>,
    claims: Arc<PortClaims>,
    scratch: Vec<N::Frame>,
    /// Frames no live engine could take.
    dropped: u64,
}

impl<N: Nic> Demux<N> {
    /// Takes a burst from the NIC and hands each frame to its slot.
    fn pull(&mut self) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.nic.rx_burst(&mut scratch, RX_BURST);
        for f in scratch.drain(..) {
            let slot = self.slot_of(f.as_ref());
            match slot {
                Some(s) if self.live[s] && self.queues[s].len() < SLOT_QUEUE => {
                    self.queues[s].push_back(f)
                }
                _ => {
                    self.dropped += 1;
                    self.nic.rx_release(f);
                }
            }
        }
        self.scratch = scratch;
    }

    /// The slot a frame belongs to: the owner of a listening port, else the
    /// flow's hash; a frame that is not IPv4/TCP to the first live slot.
    #[inline]
    fn slot_of(&self, f: &[u8]) -> Option<usize> {
        let queues = self.queues.len() as u16;
        if f.len() >= 14 + 20 && f[12..14] == [0x08, 0x00] && f[14 + 9] == 6 {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let l4 = 14 + ihl;
            if f.len() >= l4 + 4 {
                let dport = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
                if let Some(s) = self.claims.owner(dport) {
                    return Some(usize::from(s));
                }
                return Some(usize::from(ringline_dataplane::rss::dispatch(f, queues)));
            }
        }
        self.live.iter().position(|&l| l)
    }
}

/// The NIC an application's engine sees: its slot of a shared port. Frames
/// come from the slot's queue (the dispatch fills it from the port);
/// transmits go straight to the port.
pub struct SlotPort<N: Nic> {
    demux: Rc<RefCell<Demux<N>>>,
    slot: usize,
}

impl<N: Nic> Nic for SlotPort<N> {
    type Frame = N::Frame;

    fn caps(&self) -> NicCaps {
        self.demux.borrow().nic.caps()
    }

    fn rx_burst(&mut self, out: &mut Vec<N::Frame>, max: usize) -> usize {
        let mut d = self.demux.borrow_mut();
        if d.queues[self.slot].is_empty() {
            d.pull();
        }
        let q = &mut d.queues[self.slot];
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        n
    }

    fn rx_pending(&self) -> bool {
        let d = self.demux.borrow();
        !d.queues[self.slot].is_empty() || d.nic.rx_pending()
    }

    fn rx_release(&mut self, frame: N::Frame) {
        self.demux.borrow_mut().nic.rx_release(frame);
    }

    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError> {
        self.demux.borrow_mut().nic.tx_frame(len, build)
    }

    fn tx_ready(&mut self) -> bool {
        self.demux.borrow_mut().nic.tx_ready()
    }

    fn tx_flush(&mut self) -> usize {
        self.demux.borrow_mut().nic.tx_flush()
    }

    fn counters(&self) -> NicCounters {
        self.demux.borrow().nic.counters()
    }
}

/// Where an application is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppState {
    /// Attached: its engine runs its SQEs.
    Live,
    /// Gone (socket EOF): its connections are closing.
    Draining,
}

/// What `ringline stat` (or a test) can learn of an attached application.
#[derive(Clone, Debug)]
pub struct AppInfo {
    /// NIC port index.
    pub port: usize,
    /// Slot on the port.
    pub slot: usize,
    /// Its process id (`SO_PEERCRED`), 0 if unknown.
    pub pid: i32,
    /// Live or closing.
    pub state: AppState,
    /// Connections in its engine.
    pub sockets: usize,
    /// Its buffer region, bytes.
    pub buffer_bytes: usize,
    /// SQ entries of its ring.
    pub sq_entries: u32,
    /// SQEs its engine took.
    pub sqes: u64,
    /// The name it attached with.
    pub name: String,
}

/// Field order matters: `engine` (whose buffer rings point into `buf`) is
/// dropped before `buf` is unmapped.
struct App<N: Nic> {
    engine: Engine<SlotPort<N>>,
    sock: UnixStream,
    pid: i32,
    /// The daemon's mapping of the application's buffer file (held for as
    /// long as the engine may touch it).
    buf: Region,
    window: Window,
    state: AppState,
    /// Engine time when draining must end.
    drain_until_us: u64,
    sq_entries: u32,
    /// Its name (NUL-padded), from the attach request or its process name.
    name: [u8; APP_NAME_LEN],
    /// A [`BufRingMsg`] being read from the socket, and how much of it came.
    inbox: [u8; size_of::<BufRingMsg>()],
    inbox_len: usize,
}

impl<N: Nic> App<N> {
    fn control(&self) -> &Control {
        // SAFETY: buf is a live mapping of CONTROL_LEN+ bytes, page aligned, held by
        // self; the control words are only accessed atomically.
        unsafe { ipc::control(self.buf.as_ptr()) }
    }

    /// Reads the requests the application sent on its socket (buffer rings)
    /// and answers each; `false` at EOF or on a broken request (the
    /// application is then treated as gone). Non-blocking; at most a few
    /// requests per call.
    fn serve_requests(&mut self) -> bool {
        for _ in 0..16 {
            match (&self.sock).read(&mut self.inbox[self.inbox_len..]) {
                Ok(0) => return false,
                Ok(n) => self.inbox_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
            if self.inbox_len < self.inbox.len() {
                continue;
            }
            self.inbox_len = 0;
            let Some(msg) = ipc::from_bytes::<BufRingMsg>(&self.inbox) else {
                return false;
            };
            if msg.magic != MAGIC {
                return false;
            }
            let error = match self.buf_ring(&msg) {
                Ok(()) => 0,
                Err(e) => e.0 as u32,
            };
            let reply = BufRingReply {
                magic: MAGIC,
                error,
                seq: msg.seq,
                _pad: 0,
            };
            // The socket is non-blocking and the reply 16 bytes: it fits unless
            // the application stopped reading its socket, and then it is its loss.
            if (&self.sock).write_all(ipc::as_bytes(&reply)).is_err() {
                return false;
            }
        }
        true
    }

    /// Registers or unregisters a buffer ring. The ring must lie inside the
    /// application's region (checked once, here: the daemon's mapping of it
    /// is fixed for the engine's life); the buffers its entries name are
    /// checked on every use, as every address an SQE names, when the engine
    /// reaches them through the window (`usermem`): the application may
    /// rewrite an entry at any time.
    fn buf_ring(&mut self, m: &BufRingMsg) -> Result<(), ringline_ring::app::Errno> {
        use ringline_ring::app::Errno;
        match m.op {
            BUF_RING_UNREGISTER => return self.engine.unregister_buf_ring(m.bgid),
            BUF_RING_REGISTER => {}
            _ => return Err(Errno(libc::EINVAL)),
        }
        let inc = ringline_ring::bufring::incremental_flag(m.flags).ok_or(Errno(libc::EINVAL))?;
        let entries = m.entries;
        if entries == 0
            || !entries.is_power_of_two()
            || entries > ringline_ring::bufring::MAX_BUF_RING_ENTRIES
        {
            return Err(Errno(libc::EINVAL));
        }
        let bytes = u64::from(entries) * 16;
        let w = self.window;
        let inside = m.addr >= w.lo && m.addr.checked_add(bytes).is_some_and(|end| end <= w.hi);
        if !inside {
            return Err(Errno(libc::EFAULT));
        }
        // The application may write the ring's bytes at any time; the consumer reads
        // and writes them only with atomics: wrong entries, never a data race.
        // SAFETY: addr..addr+bytes lies in the window (checked above): inside `self.buf`,
        // which outlives the engine holding the consumer (App drops `engine` first).
        let consumer = unsafe {
            let at = w.base.add((m.addr - w.lo) as usize);
            ringline_ring::bufring::BufRingConsumer::from_raw(at, entries)
        };
        let mut consumer = consumer.map_err(|_| Errno(libc::EINVAL))?;
        if inc {
            consumer.set_incremental();
        }
        self.engine.register_buf_ring(m.bgid, consumer)
    }

    /// Its name up to the first NUL.
    fn name(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(APP_NAME_LEN);
        &self.name[..end]
    }

    /// Its row in the applications page.
    fn stat(&self, port: usize, slot: usize) -> AppStat {
        let v = self.engine.app_view();
        let engine = self
            .engine
            .stat_path()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse().ok())
            .unwrap_or(u64::MAX);
        AppStat {
            name: String::new(),
            port: port as u64,
            slot: slot as u64,
            pid: self.pid.max(0) as u64,
            state: u64::from(self.state == AppState::Draining),
            sockets: self.engine.live_conns() as u64,
            sockets_limit: v.max_sockets as u64,
            listeners: v.listeners as u64,
            region_bytes: (self.buf.len() - CONTROL_LEN) as u64,
            ring_bytes: v.ring.ring_bytes as u64,
            sq_entries: u64::from(self.sq_entries),
            sq_head: u64::from(v.ring.sq_head),
            sq_tail: u64::from(v.ring.sq_tail),
            cq_head: u64::from(v.ring.cq_head),
            cq_tail: u64::from(v.ring.cq_tail),
            cq_overflowed: v.cq_overflowed,
            cqes: self.engine.stats_cqes(),
            sqes: self.engine.sqes(),
            in_flight: v.in_flight as u64,
            engine,
        }
    }

    /// One engine step under the application's window; tells the
    /// application if it changed its ring.
    fn step(&mut self, now_us: u64) -> bool {
        let posted = self.engine.cq_posted();
        let sqes = self.engine.sqes();
        let engine = &mut self.engine;
        // SAFETY: the window is this application's buffer region as the daemon maps it
        // (self.buf, alive as long as self); see usermem::with_window.
        let work = unsafe { crate::usermem::with_window(self.window, || engine.step(now_us)) };
        if self.state == AppState::Live
            && (self.engine.cq_posted() != posted || self.engine.sqes() != sqes)
        {
            let c = self.control();
            // Pairs with the application's acquire load before it waits.
            c.progress.fetch_add(1, Ordering::Release);
            // Dekker with the application's app_waiting store (see Control).
            fence(Ordering::SeqCst);
            if c.app_waiting.load(Ordering::Relaxed) != 0 {
                ipc::futex_wake(&c.progress);
            }
        }
        work
    }
}

struct Port<N: Nic> {
    demux: Rc<RefCell<Demux<N>>>,
    cfg: EngineConfig,
    claims: Arc<PortClaims>,
    /// Group members of the free slots.
    members: Vec<Option<GroupMember>>,
    apps: Vec<Option<App<N>>>,
}

/// The daemon: its NIC ports, their application engines, the unix socket.
pub struct Daemon<N: Nic> {
    ports: Vec<Port<N>>,
    listener: UnixListener,
    cfg: ServeConfig,
    clock: Clock,
    /// Applications refused (limits, no free slot, bad handshake).
    pub refused: u64,
    /// The applications page (`cfg.stat`) and when it is next due.
    apps_page: Option<AppsPublisher>,
    apps_due_us: u64,
    /// The eventfd applications ring to wake a napping daemon (a copy is
    /// sent to each at attach).
    doorbell: std::os::fd::OwnedFd,
    /// Naps and the naps cut short by the doorbell.
    pub naps: u64,
    /// Naps the doorbell ended early.
    pub woken: u64,
}

impl<N: Nic> Daemon<N> {
    /// A daemon on `ports` (each a NIC and its engine configuration: the
    /// address every engine on it has), listening on `cfg.socket` (made
    /// with its directory; a stale socket file is replaced).
    pub fn new(
        ports: Vec<(N, EngineConfig)>,
        cfg: ServeConfig,
        clock: Clock,
    ) -> io::Result<Daemon<N>> {
        let n = cfg.max_apps;
        if !(1..=ringline_dataplane::rss::MAX_QUEUES).contains(&n) {
            return Err(io::Error::other("max_apps must be 1 to 64"));
        }
        if let Some(dir) = cfg.socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if UnixStream::connect(&cfg.socket).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is served by a running daemon", cfg.socket.display()),
            ));
        }
        let _ = std::fs::remove_file(&cfg.socket);
        let listener = UnixListener::bind(&cfg.socket)?;
        listener.set_nonblocking(true)?;
        let ports: Vec<Port<N>> = ports
            .into_iter()
            .map(|(nic, ecfg)| {
                let claims = PortClaims::new();
                let n = usize::from(n);
                Port {
                    demux: Rc::new(RefCell::new(Demux {
                        nic,
                        queues: (0..n)
                            .map(|_| VecDeque::with_capacity(SLOT_QUEUE))
                            .collect(),
                        live: vec![false; n],
                        claims: claims.clone(),
                        scratch: Vec::with_capacity(RX_BURST),
                        dropped: 0,
                    })),
                    cfg: ecfg,
                    claims,
                    members: engine_group(n as u16).into_iter().map(Some).collect(),
                    apps: (0..n).map(|_| None).collect(),
                }
            })
            .collect();
        let apps_page = if cfg.stat {
            let rows = usize::from(n) * ports.len();
            Some(AppsPublisher::create(rows)?)
        } else {
            None
        };
        Ok(Daemon {
            ports,
            listener,
            cfg,
            clock,
            refused: 0,
            apps_page,
            apps_due_us: 0,
            doorbell: ipc::eventfd()?,
            naps: 0,
            woken: 0,
        })
    }

    /// The unix socket's path.
    pub fn socket(&self) -> &Path {
        &self.cfg.socket
    }

    /// The attached (and draining) applications.
    pub fn apps(&self) -> Vec<AppInfo> {
        let mut out = Vec::new();
        for (p, port) in self.ports.iter().enumerate() {
            for (s, a) in port.apps.iter().enumerate() {
                if let Some(a) = a {
                    out.push(AppInfo {
                        port: p,
                        slot: s,
                        pid: a.pid,
                        state: a.state,
                        sockets: a.engine.live_conns(),
                        buffer_bytes: a.buf.len() - CONTROL_LEN,
                        sq_entries: a.sq_entries,
                        sqes: a.engine.sqes(),
                        name: String::from_utf8_lossy(a.name()).into_owned(),
                    });
                }
            }
        }
        out
    }

    /// The applications page's path, if the daemon publishes one.
    pub fn apps_page(&self) -> Option<&Path> {
        self.apps_page.as_ref().map(AppsPublisher::path)
    }

    /// Rewrites the applications page when due (from `admin`; no
    /// allocation).
    fn publish_apps(&mut self, now_us: u64) {
        let Some(page) = self.apps_page.as_mut() else {
            return;
        };
        if now_us < self.apps_due_us {
            return;
        }
        self.apps_due_us = now_us + self.cfg.stat_interval.as_micros().max(1) as u64;
        let ports = &self.ports;
        page.publish(|row| {
            for (p, port) in ports.iter().enumerate() {
                for (s, a) in port.apps.iter().enumerate() {
                    if let Some(a) = a {
                        row(&a.stat(p, s), a.name());
                    }
                }
            }
        });
    }

    /// Frames the dispatch dropped per port (no live engine for them, or
    /// its queue full).
    pub fn dispatch_drops(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|p| p.demux.borrow().dropped)
            .collect()
    }

    /// Runs until `stop` is set (checked every iteration), then tells every
    /// application the daemon is gone. `log` hears of every application
    /// attached, refused, gone and released (never called on the data path).
    pub fn run(&mut self, stop: &AtomicBool, log: &mut dyn FnMut(String)) {
        let mut last_work = self.clock.now_us();
        let mut last_admin = 0;
        let mut nap_us = 50;
        // Set by the signal handler or the caller's thread; acquire pairs with its store.
        while !stop.load(Ordering::Acquire) {
            let now = self.clock.now_us();
            let mut work = false;
            for port in &mut self.ports {
                for app in port.apps.iter_mut().flatten() {
                    work |= app.step(now);
                }
            }
            if work {
                last_work = now;
                nap_us = 50;
            }
            if !work || now.saturating_sub(last_admin) >= 1000 {
                last_admin = now;
                self.admin(now, log);
            }
            if !work && now.saturating_sub(last_work) >= self.cfg.busy_poll_us {
                self.nap(nap_us);
                nap_us = (nap_us * 2).min(1000);
            }
        }
        self.shutdown();
    }

    /// Sleeps up to `us` µs, or until an application rings the doorbell
    /// (see the module docs for the handshake).
    fn nap(&mut self, us: u64) {
        self.naps += 1;
        if !self.cfg.wakeup {
            std::thread::sleep(Duration::from_micros(us));
            return;
        }
        let mut idle = true;
        for app in self.live_apps() {
            // Sets NEED_WAKEUP (SeqCst), fences, re-checks the SQ tail (acquire);
            // false: SQEs came meanwhile (the flag is withdrawn).
            if !app.engine.prepare_sleep() {
                idle = false;
                break;
            }
        }
        if idle && ipc::eventfd_wait(&self.doorbell, us) {
            self.woken += 1;
        }
        for app in self.live_apps() {
            app.engine.clear_need_wakeup();
        }
    }

    fn live_apps(&self) -> impl Iterator<Item = &App<N>> {
        self.ports
            .iter()
            .flat_map(|p| p.apps.iter().flatten())
            .filter(|a| a.state == AppState::Live)
    }

    /// Tells every attached application the daemon stops.
    fn shutdown(&mut self) {
        for port in &mut self.ports {
            for app in port.apps.iter().flatten() {
                let c = app.control();
                // Pairs with the application's acquire load.
                c.closed.store(1, Ordering::Release);
                ipc::futex_wake(&c.progress);
            }
        }
        let _ = std::fs::remove_file(&self.cfg.socket);
    }

    /// Between steps: new applications, departed ones, finished drains.
    fn admin(&mut self, now_us: u64, log: &mut dyn FnMut(String)) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let pid = peer_pid(&sock);
                    match self.attach(sock, now_us) {
                        Ok((p, s)) => {
                            let a = self.ports[p].apps[s].as_ref().expect("just attached");
                            log(format!(
                                "attached: pid {pid} on port {p} slot {s} (SQ {}, region {} KiB)",
                                a.sq_entries,
                                (a.buf.len() - CONTROL_LEN) >> 10
                            ));
                        }
                        Err(e) => {
                            self.refused += 1;
                            log(format!("refused: pid {pid}: {e}"));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        self.publish_apps(now_us);
        let drain_us = self.cfg.drain.as_micros() as u64;
        for port in &mut self.ports {
            for s in 0..port.apps.len() {
                let Some(app) = port.apps[s].as_mut() else {
                    continue;
                };
                if app.state == AppState::Live && !app.serve_requests() {
                    log(format!(
                        "gone: pid {} (slot {s}): closing its {} connections",
                        app.pid,
                        app.engine.live_conns()
                    ));
                    app.state = AppState::Draining;
                    app.drain_until_us = now_us + drain_us;
                    let engine = &mut app.engine;
                    // SAFETY: as in App::step.
                    unsafe { crate::usermem::with_window(app.window, || engine.exit_all()) };
                }
                if app.state == AppState::Draining
                    && (app.engine.live_conns() == 0 || now_us >= app.drain_until_us)
                {
                    let mut app = port.apps[s].take().expect("checked above");
                    log(format!(
                        "released: slot {s} of pid {} ({} connections left)",
                        app.pid,
                        app.engine.live_conns()
                    ));
                    port.members[s] = Some(app.engine.leave());
                    let mut d = port.demux.borrow_mut();
                    d.live[s] = false;
                    while let Some(f) = d.queues[s].pop_front() {
                        d.nic.rx_release(f);
                    }
                    drop(d);
                    drop(app);
                    self.apps_due_us = 0;
                }
            }
        }
    }

    /// The attach handshake on a new connection (bounded: 1 s per read).
    fn attach(&mut self, sock: UnixStream, now_us: u64) -> io::Result<(usize, usize)> {
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))?;
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        let mut b = [0u8; size_of::<AttachRequest>()];
        (&sock).read_exact(&mut b)?;
        let req: AttachRequest = ipc::from_bytes(&b).ok_or_else(|| io::Error::other("size"))?;
        let refuse = |errno: i32| {
            let r = AttachReply {
                magic: MAGIC,
                error: errno as u32,
                ..AttachReply::default()
            };
            let _ = (&sock).write_all(ipc::as_bytes(&r));
            Err::<(usize, usize), _>(io::Error::from_raw_os_error(errno))
        };
        if req.magic != MAGIC || req.version != VERSION {
            return refuse(libc::EPROTO);
        }
        let Some(port) = self.ports.get_mut(req.port as usize) else {
            return refuse(libc::ENODEV);
        };
        if req.sq_entries == 0 || req.sq_entries > self.cfg.max_sq_entries {
            return refuse(libc::EINVAL);
        }
        if req.buffer_bytes == 0 || req.buffer_bytes > self.cfg.max_buffer_bytes as u64 {
            return refuse(libc::ENOMEM);
        }
        let Some(slot) = port.apps.iter().position(Option::is_none) else {
            return refuse(libc::EBUSY);
        };
        let ring_cfg = RingConfig {
            sq_entries: req.sq_entries,
            cq_entries: None,
            clamp: false,
            huge: self.cfg.huge,
        };
        let Ok((app_half, eng_half, ring_fd)) = new_ring_shared(&ring_cfg, 0) else {
            return refuse(libc::ENOMEM);
        };
        let params = app_half.params();
        drop(app_half);
        let Ok((buf, buf_fd)) =
            Region::new_file(CONTROL_LEN + req.buffer_bytes as usize, self.cfg.huge)
        else {
            return refuse(libc::ENOMEM);
        };
        let mut ecfg = port.cfg.clone();
        ecfg.max_connections = self.cfg.max_sockets;
        ecfg.prealloc_connections = ecfg.prealloc_connections.min(ecfg.max_connections);
        let nic = SlotPort {
            demux: port.demux.clone(),
            slot,
        };
        let mut engine = match Engine::new(nic, eng_half, ecfg, self.clock.clone()) {
            Ok(e) => e,
            Err(_) => return refuse(libc::ENOMEM),
        };
        let member = port.members[slot]
            .take()
            .expect("a free slot keeps its member");
        engine.join_shared(member, port.claims.clone(), slot as u8);
        let reply = AttachReply {
            magic: MAGIC,
            error: 0,
            slot: slot as u32,
            port: req.port,
            params,
        };
        let sent = ipc::send_fds(
            &sock,
            ipc::as_bytes(&reply),
            &[&ring_fd, &buf_fd, &self.doorbell],
        );
        let mut m = [0u8; size_of::<Mapped>()];
        let mapped = sent
            .and_then(|()| (&sock).read_exact(&mut m))
            .ok()
            .and_then(|()| ipc::from_bytes::<Mapped>(&m))
            .filter(|m| m.magic == MAGIC);
        let Some(mapped) = mapped else {
            port.members[slot] = Some(engine.leave());
            return Err(io::Error::other("attach handshake failed"));
        };
        let len = buf.len() as u64;
        let lo = mapped
            .buffer_addr
            .checked_add(CONTROL_LEN as u64)
            .filter(|_| mapped.buffer_addr.checked_add(len).is_some());
        let Some(lo) = lo else {
            port.members[slot] = Some(engine.leave());
            return Err(io::Error::other("bad buffer address"));
        };
        let window = Window {
            lo,
            hi: mapped.buffer_addr + len,
            // SAFETY: CONTROL_LEN < buf.len(): inside the mapping.
            base: unsafe { buf.as_ptr().add(CONTROL_LEN) },
        };
        sock.set_nonblocking(true)?;
        let pid = peer_pid(&sock);
        let mut name = req.name;
        if name[0] == 0 {
            // No name given: the process's.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            for (d, b) in name.iter_mut().zip(comm.trim_end().bytes()) {
                *d = b;
            }
        }
        port.demux.borrow_mut().live[slot] = true;
        port.apps[slot] = Some(App {
            engine,
            sock,
            pid,
            buf,
            window,
            state: AppState::Live,
            drain_until_us: now_us,
            sq_entries: params.sq_entries,
            name,
            inbox: [0; size_of::<BufRingMsg>()],
            inbox_len: 0,
        });
        // The page shows it at the next admin.
        self.apps_due_us = 0;
        Ok((req.port as usize, slot))
    }
}

/// The peer's pid (`SO_PEERCRED`), 0 if unknown.
fn peer_pid(sock: &UnixStream) -> i32 {
    ipc::peer_cred_pid(sock.as_fd()).unwrap_or(0)
}
