//! Blocking an idle engine: what both drivers do once `busy_poll_us` has
//! passed without work. The thread that runs the engine parks (a futex wait,
//! through `std::thread::park_timeout`) until the first of:
//!
//! * the engine's next timer ([`Engine::next_deadline`]), so timers fire on
//!   time;
//! * a frame: the NIC is armed ([`Nic::rx_arm`]) with a waker that unparks
//!   this thread (the loopback wire's sender rings it); a NIC that cannot
//!   notify (DPDK today) gets sleeps that back off from 50 µs to 1 ms instead;
//! * the application (SQPOLL: `IORING_ENTER_SQ_WAKEUP` unparks the engine
//!   thread);
//! * the caller's own limit (a wait's timeout), and at most
//!   [`MAX_SLEEP_US`] in any case: every wait is bounded.

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::{Thread, ThreadId};
use std::time::Duration;

use ringline_dataplane::{Nic, RxArm};

use crate::clock::Clock;
use crate::engine::Engine;

/// First sleep on a NIC that cannot notify, µs.
pub(crate) const BACKOFF_MIN_US: u64 = 50;
/// Longest sleep on a NIC that cannot notify (and between SQ polls when the
/// application has not been asked to wake the engine), µs.
pub(crate) const BACKOFF_MAX_US: u64 = 1000;
/// Longest single block, even with everything armed, µs.
pub(crate) const MAX_SLEEP_US: u64 = 10_000;

/// Unparks one thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks `thread`.
pub(crate) fn thread_waker(thread: Thread) -> Waker {
    Waker::from(Arc::new(ThreadWaker(thread)))
}

/// The idle state of one driver: its back-off and the waker of the thread
/// that runs the engine (made once per thread, so sleeping does not allocate).
pub(crate) struct Idle {
    /// `EngineConfig::busy_poll_us`.
    pub(crate) busy_poll_us: u64,
    backoff_us: u64,
    waker: Option<(ThreadId, Waker)>,
}

impl Idle {
    pub(crate) fn new(busy_poll_us: u64) -> Self {
        Idle {
            busy_poll_us,
            backoff_us: BACKOFF_MIN_US,
            waker: None,
        }
    }

    /// Work happened: the next idle period starts its back-off from the
    /// shortest sleep.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.backoff_us = BACKOFF_MIN_US;
    }

    /// Whether an engine idle since `since_us` has polled long enough at `now_us`.
    #[inline]
    pub(crate) fn should_block(&self, since_us: u64, now_us: u64) -> bool {
        self.busy_poll_us != u64::MAX && now_us.saturating_sub(since_us) >= self.busy_poll_us
    }

    fn waker(&mut self) -> Waker {
        let me = std::thread::current();
        match &self.waker {
            Some((id, w)) if *id == me.id() => w.clone(),
            _ => {
                let w = thread_waker(me.clone());
                self.waker = Some((me.id(), w.clone()));
                w
            }
        }
    }

    /// Blocks the calling thread, which runs `engine`, until a frame, an
    /// unpark, the engine's next timer or `limit_us` (engine µs), whichever
    /// is first (and [`MAX_SLEEP_US`] at most). `others_wake` says whether
    /// everything else that can bring work (the application's SQEs) will
    /// unpark this thread; if not, the sleep is also capped by the back-off.
    /// Counts the sleep in the engine's stats.
    pub(crate) fn sleep<N: Nic>(
        &mut self,
        engine: &mut Engine<N>,
        clock: &Clock,
        limit_us: Option<u64>,
        others_wake: bool,
    ) {
        let now = clock.now_us();
        let mut until = now.saturating_add(MAX_SLEEP_US);
        if let Some(d) = engine.next_deadline() {
            until = until.min(d);
        }
        if let Some(l) = limit_us {
            until = until.min(l);
        }
        if until <= now {
            return;
        }
        let waker = self.waker();
        if engine.arm_messages(&waker) {
            // A MSG_RING came meanwhile.
            engine.disarm_messages();
            return;
        }
        let armed = engine.nic_mut().rx_arm(&waker);
        let capped = match armed {
            RxArm::Pending => {
                engine.disarm_messages();
                return;
            }
            RxArm::Armed => !others_wake,
            RxArm::Unsupported => true,
        };
        if capped {
            until = until.min(now + self.backoff_us);
            self.backoff_us = (self.backoff_us * 2).min(BACKOFF_MAX_US);
        }
        std::thread::park_timeout(Duration::from_micros(until - now));
        engine.disarm_messages();
        if armed == RxArm::Armed {
            engine.nic_mut().rx_disarm();
        }
        let end = clock.now_us();
        // Woken: back before the time we slept for (park may also return
        // spuriously; counted as a wake-up all the same, harmlessly).
        engine.note_sleep(end.saturating_sub(now), end < until);
    }
}
