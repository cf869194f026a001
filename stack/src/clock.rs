//! Time at the edge: where engine time comes from, and how absolute times on
//! the machine's clocks (an `IORING_TIMEOUT_ABS` TIMEOUT) become engine time.
//! The driver reads the clock once per engine step and passes the time in;
//! the engine reads the machine's clocks only through [`Clock`], so a test's
//! virtual clock makes every time virtual.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where engine time comes from. Read once per engine step.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Monotonic time since an origin, read from the CPU's invariant TSC
    /// (about 14 ns here, against 40 ns for `clock_gettime`), calibrated
    /// against CLOCK_MONOTONIC; where the TSC is not usable, CLOCK_MONOTONIC
    /// itself.
    Monotonic(Monotonic),
    /// A virtual clock in µs that tests advance by hand; shared by the engines
    /// of one deterministic test. Absolute TIMEOUT times on any clock are
    /// read as engine µs.
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
            // Written by the test thread with a plain store; the engine reads it
            // on the same thread in deterministic tests, so Relaxed suffices.
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Whether this is a test's virtual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// The engine time of `abs_us`, an absolute time on the machine clock
    /// `clock` (CLOCK_MONOTONIC, BOOTTIME or REALTIME), with engine time
    /// `now_us` now. The machine clock is read now (a vDSO call, off the
    /// data path); a time already past maps to now. On a virtual clock the
    /// time is taken as engine time.
    pub(crate) fn engine_time_of(&self, clock: libc::clockid_t, abs_us: u64, now_us: u64) -> u64 {
        match self {
            Clock::Manual(_) => abs_us,
            Clock::Monotonic(_) => {
                now_us.saturating_add(abs_us.saturating_sub(sysclock::now_us(clock)))
            }
        }
    }
}

/// CPU time of the calling thread, µs (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_us() -> u64 {
    sysclock::now_us(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// A calibrated TSC reading and the raw count at the clock's origin.
#[derive(Clone, Debug)]
pub struct Monotonic {
    clock: quanta::Clock,
    origin: u64,
}

mod sysclock {
    //! Reading the machine's clocks by id. One of the crate's opt-outs
    //! from `#![deny(unsafe_code)]` (with `usermem` and `hint`): one
    //! `clock_gettime` call, which std offers for no clock but through
    //! `Instant` (opaque) and `SystemTime` (REALTIME only).
    #![allow(unsafe_code)]

    /// Now on `clock`, in µs.
    pub(super) fn now_us(clock: libc::clockid_t) -> u64 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec that outlives the call;
        // clock_gettime writes only it. The ids passed are constants every Linux
        // has, so the call cannot fail (and on failure `now` stays zero).
        unsafe { libc::clock_gettime(clock, &mut now) };
        now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn clocks_agree_with_std() {
            let real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64;
            let ours = super::now_us(libc::CLOCK_REALTIME);
            assert!(ours.abs_diff(real) < 1_000_000, "{ours} vs {real}");
            let a = super::now_us(libc::CLOCK_MONOTONIC);
            std::thread::sleep(std::time::Duration::from_millis(5));
            let b = super::now_us(libc::CLOCK_MONOTONIC);
            assert!(b >= a + 5_000, "monotonic advanced {} µs", b - a);
            assert!(
                super::now_us(libc::CLOCK_BOOTTIME) >= a,
                "boottime >= monotonic"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_times_map_to_engine_time() {
        let (manual, _) = Clock::manual();
        assert_eq!(manual.engine_time_of(libc::CLOCK_REALTIME, 777, 5), 777);
        let mono = Clock::monotonic();
        let now = sysclock::now_us(libc::CLOCK_MONOTONIC);
        let t = mono.engine_time_of(libc::CLOCK_MONOTONIC, now + 1_000_000, 50);
        assert!((50 + 900_000..=50 + 1_000_000).contains(&t), "{t}");
        assert_eq!(
            mono.engine_time_of(libc::CLOCK_MONOTONIC, 1, 50),
            50,
            "past: now"
        );
    }
}
