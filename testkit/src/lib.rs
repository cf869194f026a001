//! Test support shared by ringline's integration tests, the conformance
//! suite's ringline backend and the criterion benches. Not published; a
//! dev-dependency everywhere except `ringline-conformance`, whose backend
//! runs the pair at run time.
//!
//! * [`counting`] — a global allocator that counts one thread's allocations
//!   while asked to, for "the hot path allocates nothing" tests. No
//!   dependencies.
//! * [`pair`] (feature `pair`, on by default) — the deterministic two-engine
//!   pair: two ringline runtimes on one thread joined by the loopback wire
//!   (optionally through the seeded fault injector), a manual clock the test
//!   advances, CQE reaping, and the socket helpers the tests share.
//!
//! The pair depends on `ringline`, whose own integration tests depend on this
//! crate: a dev-dependency cycle cargo allows for integration tests (they link
//! the one `ringline` library this crate was built against).

#![warn(missing_docs)]

pub mod counting;
#[cfg(feature = "pair")]
pub mod pair;
