//! The SQPOLL driver (`IORING_SETUP_SQPOLL`): the engine runs on a thread of
//! its own (pinned with `sq_thread_cpu` if asked), taking SQEs as the
//! application publishes the SQ tail, without any `enter`.
//!
//! The engine thread's loop, each iteration one engine step:
//!
//! 1. while work comes (SQEs, frames, timers, connections to serve) it spins;
//! 2. after `busy_poll_us` without work it naps: sleeps (at most 10 ms; on a
//!    NIC that cannot notify 50 µs doubling to 1 ms) that a frame
//!    ([`ringline_dataplane::Nic::rx_arm`]), the next timer or the
//!    application's next `enter` with SQEs cut short (`Shared::napping`);
//! 3. after `sq_thread_idle` without work it sets `IORING_SQ_NEED_WAKEUP`
//!    (the ring's Dekker handshake, `EngineRing::prepare_sleep`) and blocks
//!    until a frame, its next timer, or the application's `enter` with
//!    `IORING_ENTER_SQ_WAKEUP` (liburing's `submit` adds it when it reads the
//!    flag after its full fence), at most 10 ms at a time; on waking it
//!    clears the flag.
//!
//! The application's `enter` only waits: for `min_complete` CQEs with
//! `IORING_ENTER_GETEVENTS` (and a timeout), for SQ space with
//! `IORING_ENTER_SQ_WAIT`. A wait polls for `busy_poll_us`, then blocks the
//! thread (a futex wait through `std::thread::park_timeout`), which the
//! engine unparks after a step that posted CQEs or took SQEs (another Dekker
//! pair: `Shared::app_sleeping`). As in the kernel, `enter` returns
//! `to_submit`, and `-EOWNERDEAD` once the engine thread is gone.
//!
//! `io_uring_register` calls (buffer rings) and counter reads are commands
//! the engine thread runs between steps.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

use ringline_dataplane::{Nic, NicCounters};
use ringline_ring::abi::{
    IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAIT, IORING_ENTER_SQ_WAKEUP, IORING_SQ_CQ_OVERFLOW,
};
use ringline_ring::app::{Driver, Errno, Ring};
use ringline_ring::bufring::BufRingConsumer;
use ringline_ring::ring::{new_ring_sqpoll, RingConfig, RingStats, RingView};

use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::driver::Inline;
use crate::engine::{Engine, EngineError};
use crate::idle::MAX_SLEEP_US;
use crate::stats::EngineStats;
use crate::OpenError;

/// A ring whose engine polls it from its own thread.
pub type SqpollRuntime<N> = Ring<Sqpoll<N>>;

/// The SQPOLL setup parameters (`io_uring_params.sq_thread_cpu` /
/// `sq_thread_idle`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqpollConfig {
    /// Pin the engine thread to this CPU (`IORING_SETUP_SQ_AFF`); `None`:
    /// let the scheduler place it.
    pub cpu: Option<usize>,
    /// `sq_thread_idle`: time without work after which the engine sets
    /// `IORING_SQ_NEED_WAKEUP` and sleeps until the application wakes it
    /// (or a frame or timer does). Reported in the params in ms. Default
    /// 1 s, the kernel's when 0 is passed.
    pub idle: Duration,
}

impl Default for SqpollConfig {
    fn default() -> Self {
        SqpollConfig {
            cpu: None,
            idle: Duration::from_secs(1),
        }
    }
}

/// The engine's counters as the SQPOLL thread read them on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The engine's counters.
    pub stats: EngineStats,
    /// Its NIC's counters.
    pub nic: NicCounters,
    /// Its ring's statistics.
    pub ring: RingStats,
    /// CPU time the engine thread has used since it started, µs.
    pub thread_cpu_us: u64,
}

/// What the engine thread runs for the application between steps.
enum Cmd {
    Register(u16, BufRingConsumer, Sender<Result<(), Errno>>),
    Unregister(u16, Sender<Result<(), Errno>>),
    /// `io_uring_register` with an argument in application memory
    /// (opcode, arg, nr_args); see `Driver::register`.
    RegisterRaw(u32, u64, u32, Sender<Result<u32, Errno>>),
    Snapshot(Sender<Snapshot>),
    /// Close a socket; answer on the sender if there is one.
    Close(i32, Option<Sender<Result<(), Errno>>>),
    /// Set a socket option (fd, level, name, value); answered once set.
    SetOption(i32, i32, i32, i32, Sender<Result<(), Errno>>),
    /// Shut a socket down (fd, how); answered once done.
    Shutdown(i32, i32, Sender<Result<(), Errno>>),
}

/// What the application's driver and the engine thread share.
struct Shared {
    /// Set (release) by the driver to end the engine thread, which loads it
    /// (acquire) every iteration.
    stop: AtomicBool,
    /// Set (release) by the engine thread as it exits, panics included (a
    /// drop guard); the driver loads it (acquire) and answers `EOWNERDEAD`.
    dead: AtomicBool,
    /// Set by the engine thread while it naps without `NEED_WAKEUP`, then
    /// it fences and re-checks the SQ; the driver loads it after publishing
    /// SQEs and the full fence `Ring::submit` issues before reading the SQ
    /// flags (`AppRing::needs_wakeup`), and unparks the thread (a Dekker
    /// pair, like NEED_WAKEUP's, invisible to the application).
    napping: AtomicBool,
    /// Set by an application thread about to block for CQEs or SQ space,
    /// then it fences and re-checks the ring; the engine fences after a step
    /// that posted CQEs or took SQEs and then loads it (Dekker: either the
    /// application sees the ring change, or the engine sees the flag and
    /// unparks it). Cleared by the engine's swap or by the waking application.
    app_sleeping: AtomicBool,
    /// The application thread to unpark; locked by the application when it
    /// changes threads and by the engine only when `app_sleeping` was set.
    app_thread: Mutex<Option<Thread>>,
    /// Set (release) by the driver after queuing a command; swapped
    /// (acquire) by the engine thread before it drains the queue.
    cmd_pending: AtomicBool,
}

impl Shared {
    /// Engine side: after a step that changed the ring for the application.
    #[inline]
    fn notify_app(&self) {
        // Full fence between the ring's index stores (cq.tail / sq.head,
        // release) and the flag load; pairs with the fence in Sqpoll::wait.
        fence(Ordering::SeqCst);
        if self.app_sleeping.load(Ordering::Relaxed)
            && self.app_sleeping.swap(false, Ordering::AcqRel)
        {
            self.unpark_app();
        }
    }

    fn unpark_app(&self) {
        let t = self.app_thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = t.as_ref() {
            t.unpark();
        }
    }
}

/// Marks the engine thread dead when it ends, however it ends.
struct DeadGuard(Arc<Shared>);

impl Drop for DeadGuard {
    fn drop(&mut self) {
        // Engine-thread-only writer; pairs with the driver's acquire loads.
        self.0.dead.store(true, Ordering::Release);
        self.0.unpark_app();
    }
}

/// The SQPOLL driver: the application's half, whose `enter` only wakes the
/// engine thread and waits. Dropping it stops and joins the engine thread.
pub struct Sqpoll<N: Nic + Send + 'static>
where
    N::Frame: Send,
{
    shared: Arc<Shared>,
    view: RingView,
    engine_thread: Thread,
    join: Option<JoinHandle<Inline<N>>>,
    cmds: Sender<Cmd>,
    busy_poll_us: u64,
    /// The application thread last registered in `Shared::app_thread`.
    app_id: Option<ThreadId>,
    /// When the application last submitted or had a wait satisfied: a wait
    /// polls only within `busy_poll_us` of it, so an application waiting in
    /// short slices blocks at once when nothing has come for a while.
    last_progress: Instant,
    /// The engine's stat page, if it publishes one.
    stat_path: Option<std::path::PathBuf>,
    /// The number the ring is known by to MSG_RING.
    ring_fd: i32,
}

impl<N: Nic + Send + 'static> std::fmt::Debug for Sqpoll<N>
where
    N::Frame: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqpoll")
            .field("busy_poll_us", &self.busy_poll_us)
            .finish_non_exhaustive()
    }
}

/// Opens a ring on `nic` whose engine runs on its own thread
/// (`io_uring_setup` with `IORING_SETUP_SQPOLL`). The NIC moves to that
/// thread. Errors: the ring or engine configuration, or the thread could
/// not start or be pinned to `sq.cpu`.
pub fn open_sqpoll<N: Nic + Send + 'static>(
    nic: N,
    ring: &RingConfig,
    cfg: EngineConfig,
    sq: &SqpollConfig,
    clock: Clock,
) -> Result<SqpollRuntime<N>, OpenError>
where
    N::Frame: Send,
{
    let idle_ms = u32::try_from(sq.idle.as_millis()).unwrap_or(u32::MAX);
    let cpu = sq
        .cpu
        .map(|c| u32::try_from(c).map_err(|_| EngineError::Config("sq_thread_cpu is too large")))
        .transpose()?;
    let (app, eng) = new_ring_sqpoll(ring, cpu, idle_ms)?;
    let busy_poll_us = cfg.busy_poll_us;
    let engine = Engine::new(nic, eng, cfg, clock.clone())?;
    let stat_path = engine.stat_path().map(std::path::Path::to_owned);
    let ring_fd = engine.ring_fd();
    let inline = Inline::new(engine, clock, busy_poll_us);
    let view = app.view();
    let mut driver = Sqpoll::start(inline, sq, view)?;
    driver.stat_path = stat_path;
    driver.ring_fd = ring_fd;
    Ok(Ring::new(app, driver))
}

impl<N: Nic + Send + 'static> Sqpoll<N>
where
    N::Frame: Send,
{
    fn start(inline: Inline<N>, sq: &SqpollConfig, view: RingView) -> Result<Self, OpenError> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            napping: AtomicBool::new(false),
            app_sleeping: AtomicBool::new(false),
            app_thread: Mutex::new(None),
            cmd_pending: AtomicBool::new(false),
        });
        let (cmds, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let busy_poll_us = inline.idle.busy_poll_us;
        let idle_us = u64::try_from(sq.idle.as_micros()).unwrap_or(u64::MAX);
        let cpu = sq.cpu;
        let thread_shared = shared.clone();
        let join = std::thread::Builder::new()
            .name("ringline-sqpoll".into())
            .spawn(move || {
                let guard = DeadGuard(thread_shared);
                let mut inline = inline;
                let pinned = cpu.map_or(Ok(()), crate::affinity::pin_current);
                let ok = pinned.is_ok();
                let _ = started_tx.send(pinned);
                if ok {
                    run(&mut inline, &guard.0, &rx, idle_us);
                }
                inline.engine.clear_need_wakeup();
                inline
            })
            .map_err(|e| OpenError::Thread(e.to_string()))?;
        let engine_thread = join.thread().clone();
        let mut driver = Sqpoll {
            shared,
            view,
            engine_thread,
            join: Some(join),
            cmds,
            busy_poll_us,
            app_id: None,
            last_progress: Instant::now(),
            stat_path: None,
            ring_fd: -1,
        };
        match started_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(driver),
            Ok(Err(e)) => {
                driver.stop();
                Err(OpenError::Thread(e))
            }
            Err(_) => {
                driver.stop();
                Err(OpenError::Thread("the SQPOLL thread did not start".into()))
            }
        }
    }

    /// Stops the engine thread and hands the engine back, as an inline
    /// driver on the calling thread (to read its NIC, or go on inline).
    ///
    /// # Panics
    ///
    /// If the engine thread panicked (the panic is passed on).
    pub fn into_inline(mut self) -> Inline<N> {
        match self.stop() {
            Some(Ok(inline)) => inline,
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => unreachable!("the engine thread is joined only here or on drop"),
        }
    }

    /// The engine's counters, its NIC's and its ring's, read by the engine
    /// thread between two steps. `EOWNERDEAD` if the thread is gone.
    pub fn snapshot(&mut self) -> Result<Snapshot, Errno> {
        let (tx, rx) = mpsc::channel();
        self.command(Cmd::Snapshot(tx), rx)
    }

    /// Closes socket number `fd` on the engine thread, as IORING_OP_CLOSE
    /// would, without a request (`close()` in `libringline`). `EBADF` if it
    /// is not a socket of this engine, `EOWNERDEAD` if the thread is gone.
    pub fn close_socket(&mut self, fd: i32) -> Result<(), Errno> {
        let (tx, rx) = mpsc::channel();
        self.command(Cmd::Close(fd, Some(tx)), rx)?
    }

    /// A handle that closes this engine's sockets from any thread without
    /// waiting ([`SocketCloser`]).
    pub fn closer(&self) -> SocketCloser {
        SocketCloser {
            shared: self.shared.clone(),
            cmds: self.cmds.clone(),
            engine_thread: self.engine_thread.clone(),
        }
    }

    /// The number the ring is known by to `IORING_OP_MSG_RING`.
    pub fn ring_fd(&self) -> i32 {
        self.ring_fd
    }

    /// The engine's shared-memory counters page
    /// ([`crate::EngineConfig::stat`]), if it publishes one.
    pub fn stat_path(&self) -> Option<&std::path::Path> {
        self.stat_path.as_deref()
    }

    /// The engine's counters ([`Sqpoll::snapshot`]); zero if the engine
    /// thread is gone.
    pub fn stats(&mut self) -> EngineStats {
        self.snapshot().map(|s| s.stats).unwrap_or_default()
    }

    /// Whether the engine thread has ended (it stopped or panicked).
    pub fn is_dead(&self) -> bool {
        // Pairs with the engine thread's release store in DeadGuard.
        self.shared.dead.load(Ordering::Acquire)
    }

    fn command<T>(&mut self, cmd: Cmd, rx: Receiver<T>) -> Result<T, Errno> {
        if self.is_dead() || self.cmds.send(cmd).is_err() {
            return Err(Errno(libc::EOWNERDEAD));
        }
        // The engine thread swaps it (acquire) before draining the queue.
        self.shared.cmd_pending.store(true, Ordering::Release);
        self.engine_thread.unpark();
        // The engine thread looks at commands every iteration and blocks at
        // most 10 ms at a time: this wait ends unless the thread is stuck.
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| Errno(libc::EOWNERDEAD))
    }

    /// Stops and joins the engine thread (once).
    fn stop(&mut self) -> Option<std::thread::Result<Inline<N>>> {
        let join = self.join.take()?;
        // Pairs with the engine thread's acquire load at the top of its loop.
        self.shared.stop.store(true, Ordering::Release);
        self.engine_thread.unpark();
        Some(join.join())
    }

    /// Waits until `cond` holds of the ring: polls for `busy_poll_us`, then
    /// blocks in steps of at most 10 ms, unparked by the engine thread.
    /// `ETIME` at `deadline`, `EOWNERDEAD` if the engine thread is gone.
    fn wait(
        &mut self,
        cond: impl Fn(&RingView) -> bool,
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        if cond(&self.view) {
            return Ok(());
        }
        let start = self.last_progress;
        let spin =
            (self.busy_poll_us != u64::MAX).then(|| Duration::from_micros(self.busy_poll_us));
        loop {
            if cond(&self.view) {
                self.last_progress = Instant::now();
                return Ok(());
            }
            if self.is_dead() {
                return Err(Errno(libc::EOWNERDEAD));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Errno(libc::ETIME));
            }
            if spin.is_none_or(|s| now.duration_since(start) < s) {
                std::hint::spin_loop();
                continue;
            }
            self.register_app_thread();
            // Application-side store of the Dekker pair; the fence orders it
            // before the ring re-check (pairs with Shared::notify_app).
            self.shared.app_sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if cond(&self.view) {
                // Our own flag; an engine that swapped it meanwhile only made
                // a spurious unpark.
                self.shared.app_sleeping.store(false, Ordering::Relaxed);
                self.last_progress = Instant::now();
                return Ok(());
            }
            let mut nap = Duration::from_micros(MAX_SLEEP_US);
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(now));
            }
            std::thread::park_timeout(nap);
            self.shared.app_sleeping.store(false, Ordering::Relaxed);
        }
    }

    fn register_app_thread(&mut self) {
        let me = std::thread::current();
        if self.app_id != Some(me.id()) {
            self.app_id = Some(me.id());
            *self
                .shared
                .app_thread
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(me);
        }
    }
}

impl<N: Nic + Send + 'static> Drop for Sqpoll<N>
where
    N::Frame: Send,
{
    fn drop(&mut self) {
        // A panic of the engine thread was already reported by its hook.
        let _ = self.stop();
    }
}

impl<N: Nic + Send + 'static> Driver for Sqpoll<N>
where
    N::Frame: Send,
{
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno> {
        if self.is_dead() {
            return Err(Errno(libc::EOWNERDEAD));
        }
        if to_submit > 0 {
            self.last_progress = Instant::now();
        }
        // The engine set NEED_WAKEUP (and the application saw it), or it naps
        // between SQ polls: unpark it.
        let napping = to_submit > 0 && {
            // Full fence between the application's sq.tail store and this
            // load (Ring::submit already issued one; a caller of enter may
            // not have); pairs with the engine's fence after it sets napping.
            fence(Ordering::SeqCst);
            self.shared.napping.load(Ordering::Relaxed)
        };
        if flags & IORING_ENTER_SQ_WAKEUP != 0 || napping {
            self.engine_thread.unpark();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        if flags & IORING_ENTER_SQ_WAIT != 0 {
            // Space frees as the engine takes SQEs; a refused submission
            // (full overflow backlog) frees none until the application reaps.
            self.wait(
                |v| v.sq_space() > 0 || v.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0,
                deadline,
            )?;
        }
        if flags & IORING_ENTER_GETEVENTS != 0 {
            if self.view.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0 {
                // The engine moves the backlog as the application reaps; make
                // sure it is awake to do so, and let the move land (the kernel
                // flushes inside this enter).
                self.engine_thread.unpark();
                let r = self.wait(
                    |v| {
                        v.sq_flags() & IORING_SQ_CQ_OVERFLOW == 0
                            || v.cq_ready() >= v.cq_entries()
                            || v.cq_ready() >= min_complete.max(1)
                    },
                    deadline,
                );
                if let Err(e) = r {
                    return if to_submit > 0 { Ok(to_submit) } else { Err(e) };
                }
            }
            if min_complete > 0 {
                if let Err(e) = self.wait(|v| v.cq_ready() >= min_complete, deadline) {
                    // As the kernel: an error of the wait is returned only
                    // when nothing was submitted.
                    return if to_submit > 0 { Ok(to_submit) } else { Err(e) };
                }
            }
        }
        Ok(to_submit)
    }

    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        let (tx, rx) = mpsc::channel();
        self.command(Cmd::Register(bgid, ring, tx), rx)?
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        let (tx, rx) = mpsc::channel();
        self.command(Cmd::Unregister(bgid, tx), rx)?
    }

    // The trait method is `unsafe` (the caller vouches for `arg`); this body
    // does nothing unsafe: the engine thread reads `arg` through `usermem`
    // only, before this call returns.
    #[allow(unsafe_code)]
    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> Result<u32, Errno> {
        let (tx, rx) = mpsc::channel();
        if self.is_dead()
            || self
                .cmds
                .send(Cmd::RegisterRaw(opcode, arg, nr_args, tx))
                .is_err()
        {
            return Err(Errno(libc::EOWNERDEAD));
        }
        // The engine thread swaps it (acquire) before draining the queue.
        self.shared.cmd_pending.store(true, Ordering::Release);
        self.engine_thread.unpark();
        // No timeout, unlike `command`: `arg` is valid only during this call,
        // so the call must not return before the engine is done with it. The
        // reply comes, or the engine thread ended and dropped the sender.
        rx.recv().map_err(|_| Errno(libc::EOWNERDEAD))?
    }
}

/// The engine thread's loop (see the module docs), until `stop`.
fn run<N: Nic>(inline: &mut Inline<N>, shared: &Shared, cmds: &Receiver<Cmd>, idle_us: u64) {
    let Inline {
        engine,
        clock,
        idle,
        ..
    } = inline;
    let mut last_work = clock.now_us();
    let mut posted = engine.cq_posted();
    let mut taken = engine.sqes();
    loop {
        // Pairs with the driver's release store in Sqpoll::stop.
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if shared.cmd_pending.load(Ordering::Relaxed)
            && shared.cmd_pending.swap(false, Ordering::Acquire)
        {
            while let Ok(cmd) = cmds.try_recv() {
                run_command(engine, cmd);
            }
        }
        let now = clock.now_us();
        let worked = engine.step(now);
        let (p, t) = (engine.cq_posted(), engine.sqes());
        if p != posted || t != taken {
            posted = p;
            taken = t;
            shared.notify_app();
        }
        if worked || !engine.sleepable() {
            last_work = now;
            idle.reset();
            continue;
        }
        if now.saturating_sub(last_work) >= idle_us {
            if engine.prepare_sleep() {
                // NEED_WAKEUP is set and the SQ was still empty after the
                // fence: the application will enter with SQ_WAKEUP.
                idle.sleep(engine, clock, None, true);
                engine.clear_need_wakeup();
            }
        } else if idle.should_block(last_work, now) {
            // Engine-only writer; the driver's load after publishing SQEs
            // decides whether to unpark (see Shared::napping).
            shared.napping.store(true, Ordering::SeqCst);
            // Pairs with the application's fence between its tail store and
            // its load of `napping`: either it sees the flag, or we see its SQEs.
            fence(Ordering::SeqCst);
            if engine.sleepable() {
                idle.sleep(engine, clock, None, true);
            }
            shared.napping.store(false, Ordering::Relaxed);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Closes sockets of an SQPOLL engine from any thread, without waiting for
/// the engine thread (`close()` in `libringline`, which the kernel does at
/// once): the engine thread closes the socket between two steps, as
/// IORING_OP_CLOSE would. `Send + Sync + Clone`.
#[derive(Clone)]
pub struct SocketCloser {
    shared: Arc<Shared>,
    cmds: Sender<Cmd>,
    engine_thread: Thread,
}

impl SocketCloser {
    /// Asks the engine thread to close socket number `fd`; `false` if the
    /// thread is gone.
    pub fn close(&self, fd: i32) -> bool {
        self.send(Cmd::Close(fd, None))
    }

    /// Has the engine thread set option `level`/`name` of socket `fd` to
    /// `val` (checked by the caller with [`crate::SocketOptions::set`]) and
    /// waits until it has, as setsockopt(2) returns once the option is set:
    /// SQEs the caller publishes afterwards see it. `EOWNERDEAD` if the
    /// thread is gone or does not answer within 30 s.
    pub fn set_option(&self, fd: i32, level: i32, name: i32, val: i32) -> Result<(), Errno> {
        self.call(|tx| Cmd::SetOption(fd, level, name, val, tx))
    }

    /// Has the engine thread shut socket `fd` down as SHUTDOWN would
    /// (`shutdown()` in `libringline`) and waits for its answer, as
    /// shutdown(2) returns it.
    pub fn shutdown(&self, fd: i32, how: i32) -> Result<(), Errno> {
        self.call(|tx| Cmd::Shutdown(fd, how, tx))
    }

    /// Sends the command `make` builds and waits for its answer.
    /// `EOWNERDEAD` if the thread is gone or does not answer within 30 s.
    fn call(&self, make: impl FnOnce(Sender<Result<(), Errno>>) -> Cmd) -> Result<(), Errno> {
        let (tx, rx) = mpsc::channel();
        if !self.send(make(tx)) {
            return Err(Errno(libc::EOWNERDEAD));
        }
        // The engine thread looks at commands every iteration and blocks at
        // most 10 ms at a time: this wait ends unless the thread is stuck.
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| Errno(libc::EOWNERDEAD))?
    }

    fn send(&self, cmd: Cmd) -> bool {
        if self.cmds.send(cmd).is_err() {
            return false;
        }
        // The engine thread swaps it (acquire) before draining the queue.
        self.shared.cmd_pending.store(true, Ordering::Release);
        self.engine_thread.unpark();
        true
    }
}

fn run_command<N: Nic>(engine: &mut Engine<N>, cmd: Cmd) {
    // A requester that gave up (its receiver dropped) is simply not answered.
    match cmd {
        Cmd::Register(bgid, ring, reply) => {
            let _ = reply.send(engine.register_buf_ring(bgid, ring));
        }
        Cmd::Unregister(bgid, reply) => {
            let _ = reply.send(engine.unregister_buf_ring(bgid));
        }
        Cmd::Close(fd, reply) => {
            let r = engine.close_socket(fd);
            if let Some(reply) = reply {
                let _ = reply.send(r);
            }
        }
        Cmd::SetOption(fd, level, name, val, reply) => {
            let _ = reply.send(engine.set_socket_option(fd, level, name, val));
        }
        Cmd::Shutdown(fd, how, reply) => {
            let _ = reply.send(engine.shutdown_socket(fd, how));
        }
        Cmd::RegisterRaw(opcode, arg, nr_args, reply) => {
            let _ = reply.send(engine.register(opcode, arg, nr_args));
        }
        Cmd::Snapshot(reply) => {
            let _ = reply.send(Snapshot {
                stats: engine.stats(),
                nic: engine.nic().counters(),
                ring: engine.ring_stats(),
                thread_cpu_us: crate::clock::thread_cpu_us(),
            });
        }
    }
}
