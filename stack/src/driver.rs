//! The inline driver: `io_uring_enter` for a ringline ring. Like io_uring with
//! `DEFER_TASKRUN`, the engine runs on the application's thread, inside
//! submit and wait; nothing else touches the NIC. It owns the clock: time
//! is read here, once per step, and passed to the engine. (The other driver,
//! [`crate::Sqpoll`], runs the engine on a thread of its own.)
//!
//! A wait for completions polls for `busy_poll_us` after the engine last had
//! work, then blocks the thread until a frame, the next timer or the wait's
//! timeout ([`crate::idle`]).

use std::time::Duration;

use ringline_dataplane::Nic;
use ringline_ring::abi::IORING_ENTER_GETEVENTS;
use ringline_ring::app::{Driver, Errno};
use ringline_ring::bufring::BufRingConsumer;
use ringline_ring::ring::RingStats;

use crate::clock::Clock;
use crate::engine::Engine;
use crate::idle::Idle;
use crate::stats::EngineStats;

/// Quiet checks between full engine steps in the wait loop: a few hundred
/// nanoseconds, far below the timer wheel's 1 ms tick.
const IDLE_SPINS: u32 = 32;

/// An engine driven from the application's own thread (the driver of a
/// [`crate::Runtime`]).
pub struct Inline<N: Nic> {
    pub(crate) engine: Engine<N>,
    pub(crate) clock: Clock,
    pub(crate) idle: Idle,
    /// When (engine µs) the engine last had work, across calls: an
    /// application that waits in short slices (5 ms) still lets an idle
    /// engine block after `busy_poll_us`, instead of spinning at the start
    /// of every slice.
    last_work_us: u64,
    /// The ring was set up with `IORING_SETUP_DEFER_TASKRUN`: an enter
    /// without `IORING_ENTER_GETEVENTS` takes no frames
    /// ([`Engine::step_with`]).
    defer_taskrun: bool,
}

impl<N: Nic> Inline<N> {
    pub(crate) fn new(engine: Engine<N>, clock: Clock, busy_poll_us: u64) -> Self {
        let last_work_us = clock.now_us();
        Inline {
            engine,
            clock,
            idle: Idle::new(busy_poll_us),
            last_work_us,
            defer_taskrun: false,
        }
    }

    /// Whether the ring behaves as one set up with
    /// `IORING_SETUP_DEFER_TASKRUN`: what arriving frames complete is
    /// posted only inside an `enter` that asks for events (a wait, a peek),
    /// never inside a plain submit. Off by default: a plain submit also
    /// takes frames, as the kernel's task work runs at any system call.
    pub fn set_defer_taskrun(&mut self, on: bool) {
        self.defer_taskrun = on;
    }

    /// Runs one engine step now; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let now = self.clock.now_us();
        self.engine.step(now)
    }

    /// One step of the wait loop for `want` CQEs: like [`Inline::step`], but
    /// returns before timers and egress once the CQ holds `want` (see
    /// `DEFER_TASKRUN`; the next step runs them).
    pub fn step_wait(&mut self, want: u32) -> bool {
        let now = self.clock.now_us();
        self.engine.step_wait(now, want)
    }

    /// The number this ring is known by to `IORING_OP_MSG_RING` (the fd
    /// another ring's MSG_RING names it by; `EngineConfig::ring_fd`).
    pub fn ring_fd(&self) -> i32 {
        self.engine.ring_fd()
    }

    /// Closes socket number `fd` as IORING_OP_CLOSE would, without a
    /// request: `close()` of a socket in `libringline`. `EBADF` if `fd` is
    /// not a socket of this engine.
    pub fn close_socket(&mut self, fd: i32) -> Result<(), Errno> {
        self.engine.close_socket(fd)
    }

    /// Shuts socket `fd` down as SHUTDOWN would (`shutdown()` in
    /// `libringline`).
    pub fn shutdown_socket(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        self.engine.shutdown_socket(fd, how)
    }

    /// Sets option `level`/`name` of socket `fd` to `val`, as SETSOCKOPT
    /// would after its argument checks: `setsockopt()` in `libringline`,
    /// which checks the arguments with [`crate::SocketOptions::set`] first.
    pub fn set_socket_option(
        &mut self,
        fd: i32,
        level: i32,
        name: i32,
        val: i32,
    ) -> Result<(), Errno> {
        self.engine.set_socket_option(fd, level, name, val)
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// The engine's shared-memory counters page
    /// ([`crate::EngineConfig::stat`]), if it publishes one.
    pub fn stat_path(&self) -> Option<&std::path::Path> {
        self.engine.stat_path()
    }

    /// The ring's statistics (memory backing, overflow backlog).
    pub fn ring_stats(&self) -> RingStats {
        self.engine.ring_stats()
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        self.engine.nic()
    }

    /// The NIC, mutably (for tests that reach into the wire).
    pub fn nic_mut(&mut self) -> &mut N {
        self.engine.nic_mut()
    }

    /// Whether connections wait for service or egress (a step now would
    /// do more than look at timers).
    pub fn has_pending_work(&self) -> bool {
        self.engine.has_pending_work()
    }

    /// When the engine next has timer work, in µs of this driver's clock
    /// (`None`: only a frame or an SQE can bring work).
    pub fn next_deadline_us(&self) -> Option<u64> {
        self.engine.next_deadline()
    }
}

impl<N: Nic> Driver for Inline<N> {
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno> {
        let before = self.engine.sqes();
        let now = self.clock.now_us();
        // Frames are taken unless a DEFER_TASKRUN ring only submits
        // (Engine::step_with).
        let rx = flags & IORING_ENTER_GETEVENTS != 0 || !self.defer_taskrun;
        let worked = self.engine.step_with(now, rx);
        if worked || to_submit > 0 {
            self.last_work_us = now;
        }
        if self.engine.submit_refused() {
            // The overflow backlog is full: as io_uring answers when its
            // overflowed CQ cannot take more, the application must reap first.
            return Err(Errno(libc::EBUSY));
        }
        if flags & IORING_ENTER_GETEVENTS != 0 && self.engine.cq_ready() < min_complete {
            if self.clock.is_manual() {
                // Virtual time does not move by itself: waiting would spin
                // forever. Deterministic tests step explicitly.
                return Err(Errno(libc::ETIME));
            }
            // One clock read per step serves both the engine and the timeout.
            let deadline = timeout.map(|t| {
                self.clock
                    .now_us()
                    .saturating_add(t.as_micros().min(u64::MAX as u128) as u64)
            });
            // While the engine is quiet, only a frame (or time) can bring
            // work: spin on the cheap `quiet` check instead of running whole
            // steps, which gets to an arriving frame sooner; every
            // IDLE_SPINS spins a full step still runs for the timers and the
            // deadline.
            //
            // Once `busy_poll_us` has passed since the engine last had work,
            // the thread blocks instead (see `crate::idle`): only a frame or
            // time can bring work to an inline engine, and both wake it.
            let mut idle = 0;
            while self.engine.cq_ready() < min_complete {
                if idle < IDLE_SPINS && self.engine.quiet() {
                    idle += 1;
                    std::hint::spin_loop();
                    continue;
                }
                idle = 0;
                let now = self.clock.now_us();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(Errno(libc::ETIME));
                }
                if self.engine.step_wait(now, min_complete) || !self.engine.sleepable() {
                    self.last_work_us = now;
                    self.idle.reset();
                } else if self.idle.should_block(self.last_work_us, now) {
                    self.idle
                        .sleep(&mut self.engine, &self.clock, deadline, true);
                }
            }
        }
        Ok((self.engine.sqes() - before) as u32)
    }

    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        self.engine.register_buf_ring(bgid, ring)
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.engine.unregister_buf_ring(bgid)
    }

    // The trait method is `unsafe` (the caller vouches for `arg`); this body
    // does nothing unsafe: the engine reads `arg` through `usermem` only.
    #[allow(unsafe_code)]
    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> Result<u32, Errno> {
        self.engine.register(opcode, arg, nr_args)
    }
}
