//! The inline driver: `io_uring_enter` for a ringline ring. Like io_uring with
//! `DEFER_TASKRUN`, the engine runs on the application's thread, inside
//! submit and wait; nothing else touches the NIC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringline_dataplane::Nic;
use ringline_ring::abi::IORING_ENTER_GETEVENTS;
use ringline_ring::app::{Driver, Errno};
use ringline_ring::bufring::BufRingConsumer;

use crate::engine::Engine;

/// Where engine time comes from. Read once per engine step.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Monotonic time since an origin, read from the CPU's invariant TSC
    /// (about 14 ns here, against 40 ns for `clock_gettime`), calibrated
    /// against CLOCK_MONOTONIC; where the TSC is not usable, CLOCK_MONOTONIC
    /// itself.
    Monotonic(Monotonic),
    /// A virtual clock in µs that tests advance by hand; shared by the engines
    /// of one deterministic test.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A monotonic clock starting now.
    pub fn monotonic() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        Clock::Monotonic(Monotonic { clock, origin })
    }

    /// A manual clock at 0 µs, and the handle that advances it.
    pub fn manual() -> (Self, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(0));
        (Clock::Manual(t.clone()), t)
    }

    /// Current engine time in µs.
    pub fn now_us(&self) -> u64 {
        match self {
            Clock::Monotonic(m) => m.clock.delta_as_nanos(m.origin, m.clock.raw()) / 1000,
            // The test thread stores the time; the engine reads it. Both are the
            // same thread in deterministic tests, so Relaxed suffices.
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// A calibrated TSC reading and the raw count at the clock's origin.
#[derive(Clone, Debug)]
pub struct Monotonic {
    clock: quanta::Clock,
    origin: u64,
}

/// Quiet checks between full engine steps in the wait loop: a few hundred
/// nanoseconds, far below the timer wheel's 1 ms tick.
const IDLE_SPINS: u32 = 32;

/// An engine driven from the application's own thread.
pub struct Inline<N: Nic> {
    engine: Engine<N>,
    clock: Clock,
}

impl<N: Nic> Inline<N> {
    /// Wraps an engine and its clock.
    pub fn new(engine: Engine<N>, clock: Clock) -> Self {
        Inline { engine, clock }
    }
    /// The engine.
    pub fn engine(&self) -> &Engine<N> {
        &self.engine
    }
    /// The engine, mutably.
    pub fn engine_mut(&mut self) -> &mut Engine<N> {
        &mut self.engine
    }
    /// Runs one engine step now; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let now = self.clock.now_us();
        self.engine.step(now)
    }
}

impl<N: Nic> Driver for Inline<N> {
    fn enter(
        &mut self,
        _to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno> {
        let before = self.engine.stats().sqes;
        self.step();
        if flags & IORING_ENTER_GETEVENTS != 0 && self.engine.cq_ready() < min_complete {
            match &self.clock {
                Clock::Manual(_) => {
                    // Virtual time does not move by itself: waiting would spin
                    // forever. Deterministic tests step explicitly.
                    if self.engine.cq_ready() < min_complete {
                        return Err(Errno(libc::ETIME));
                    }
                }
                Clock::Monotonic(_) => {
                    // One clock read per step serves both the engine and the timeout.
                    let deadline = timeout.map(|t| {
                        self.clock
                            .now_us()
                            .saturating_add(t.as_micros().min(u64::MAX as u128) as u64)
                    });
                    // While the engine is quiet, only a frame (or time) can
                    // bring work: spin on the cheap `quiet` check instead of
                    // running whole steps, which gets to an arriving frame
                    // sooner; every IDLE_SPINS spins a full step still runs
                    // for the timers and the deadline.
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
                        self.engine.step_wait(now, min_complete);
                    }
                }
            }
        }
        Ok((self.engine.stats().sqes - before) as u32)
    }

    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        self.engine
            .register_buf_ring(bgid, ring)
            .map_err(|e| Errno(-e))
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.engine.unregister_buf_ring(bgid).map_err(|e| Errno(-e))
    }
}
