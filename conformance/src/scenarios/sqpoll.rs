//! `IORING_SETUP_SQPOLL` scenarios. They leave the harness's backend ring
//! (an inline ring on ringline, `DEFER_TASKRUN` on the kernel) unused: each
//! opens an SQPOLL ring of its own, the kernel's (through the `io-uring`
//! crate, whose submit logic is liburing's: a full fence, then
//! `IORING_ENTER_SQ_WAKEUP` if `IORING_SQ_NEED_WAKEUP` is set) or ringline's
//! (`open_sqpoll` on the loopback wire, on the real clock), and records what
//! the application sees: the flags it reads, what `enter` returns, the CQEs.
//! Only NOPs and TIMEOUTs, so no sockets are involved. Times are real: the
//! waits are bounded and generous (seconds) and nothing recorded depends on
//! how long a step took.

use std::time::{Duration, Instant};

use io_uring::{types, IoUring};
use ringline::{open_sqpoll, Clock, EngineConfig, SqpollConfig, SqpollRuntime};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::Cqe;
use ringline_ring::app::Timespec;
use ringline_ring::mem::HugePolicy;
use ringline_ring::opcode::{self, SafeSqe};
use ringline_ring::ring::RingConfig;

use super::R;
use crate::backend::Kind;
use crate::Ctx;

/// Longest wait for something expected.
const PATIENCE: Duration = Duration::from_secs(5);

/// An SQPOLL ring of either kind.
enum SqRing {
    Kernel(Box<IoUring>),
    /// The runtime (NOPs and TIMEOUTs only: the wire's other end is dropped).
    Ringline(Box<SqpollRuntime<LoopbackPort>>),
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl SqRing {
    fn open(kind: Kind, sq: u32, cq: u32, idle_ms: u32) -> Result<SqRing, String> {
        match kind {
            Kind::Kernel => IoUring::builder()
                .setup_sqpoll(idle_ms)
                .setup_cqsize(cq)
                .build(sq)
                .map(|r| SqRing::Kernel(Box::new(r)))
                .map_err(|e| format!("io_uring_setup(SQPOLL): {e}")),
            Kind::Ringline => {
                let (a, _peer) = LoopbackWire::pair(&WireConfig {
                    frames_per_direction: 64,
                    ..WireConfig::default()
                });
                let ring = RingConfig {
                    sq_entries: sq,
                    cq_entries: Some(cq),
                    huge: HugePolicy::Never,
                    ..RingConfig::default()
                };
                let cfg = EngineConfig {
                    rx_buffer: 4096,
                    tx_buffer: 4096,
                    max_connections: 16,
                    ..EngineConfig::default()
                };
                let sq = SqpollConfig {
                    cpu: None,
                    idle: Duration::from_millis(u64::from(idle_ms)),
                };
                let rt = open_sqpoll(a, &ring, cfg, &sq, Clock::monotonic())
                    .map_err(|e| e.to_string())?;
                Ok(SqRing::Ringline(Box::new(rt)))
            }
        }
    }

    /// (IORING_SETUP_SQPOLL reported, sq_thread_idle, IORING_FEAT_SQPOLL_NONFIXED).
    fn params(&self) -> (bool, u32, bool) {
        match self {
            SqRing::Kernel(r) => {
                let p = r.params();
                (
                    p.is_setup_sqpoll(),
                    p.sq_thread_idle(),
                    p.is_feature_sqpoll_nonfixed(),
                )
            }
            SqRing::Ringline(r) => {
                let p = r.app().params();
                (
                    p.flags & ringline_ring::abi::IORING_SETUP_SQPOLL != 0,
                    p.sq_thread_idle,
                    p.features & ringline_ring::abi::IORING_FEAT_SQPOLL_NONFIXED != 0,
                )
            }
        }
    }

    /// Writes the SQE and publishes the SQ tail, without entering. `false`
    /// if the SQ is full.
    fn push(&mut self, sqe: SafeSqe) -> bool {
        match self {
            SqRing::Kernel(r) => {
                let e = crate::kernel::to_kernel_entry(&sqe.into_sqe());
                // SAFETY: the SQE is a SafeSqe (a NOP or TIMEOUT_REMOVE-like
                // request naming no memory). Dropping the SubmissionQueue
                // handle publishes the tail.
                unsafe { r.submission().push(&e) }.is_ok()
            }
            SqRing::Ringline(r) => {
                let ok = r.push_safe(&sqe).is_ok();
                r.app_mut().flush_sq();
                ok
            }
        }
    }

    /// Pushes a TIMEOUT of `ts` (published, not entered).
    ///
    /// # Safety
    ///
    /// `ts` lives until the TIMEOUT's CQE has been reaped.
    unsafe fn push_timeout(&mut self, ts: &Timespec, ud: u64) -> bool {
        let sqe = opcode::Timeout::new(ts).user_data(ud).build();
        match self {
            SqRing::Kernel(r) => {
                let e = crate::kernel::to_kernel_entry(&sqe);
                // SAFETY: `ts` outlives the request (this function's contract).
                unsafe { r.submission().push(&e) }.is_ok()
            }
            SqRing::Ringline(r) => {
                // SAFETY: as above.
                let ok = unsafe { r.push(&sqe) }.is_ok();
                r.app_mut().flush_sq();
                ok
            }
        }
    }

    /// `io_uring_submit`: enters only when liburing would (the engine sleeps,
    /// or CQEs are held back).
    fn submit(&mut self) -> Result<u32, i32> {
        match self {
            SqRing::Kernel(r) => r.submit().map(|n| n as u32).map_err(errno),
            SqRing::Ringline(r) => r.submit().map_err(|e| e.0),
        }
    }

    /// `io_uring_submit_and_wait_timeout(n, timeout)`.
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, i32> {
        match self {
            SqRing::Kernel(r) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                r.submitter()
                    .submit_with_args(n as usize, &args)
                    .map(|n| n as u32)
                    .map_err(errno)
            }
            SqRing::Ringline(r) => r.submit_and_wait_timeout(n, timeout).map_err(|e| e.0),
        }
    }

    /// `io_uring_sqring_wait`: enter with `IORING_ENTER_SQ_WAIT`.
    fn sq_wait(&mut self) -> Result<(), i32> {
        match self {
            SqRing::Kernel(r) => r.submitter().squeue_wait().map(drop).map_err(errno),
            SqRing::Ringline(r) => r.sqring_wait().map_err(|e| e.0),
        }
    }

    /// `IORING_SQ_NEED_WAKEUP`, read after a full fence as liburing does.
    fn need_wakeup(&mut self) -> bool {
        match self {
            SqRing::Kernel(r) => {
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                r.submission().need_wakeup()
            }
            SqRing::Ringline(r) => r.app().needs_wakeup(),
        }
    }

    /// `IORING_SQ_CQ_OVERFLOW`.
    fn cq_overflow(&mut self) -> bool {
        match self {
            SqRing::Kernel(r) => r.submission().cq_overflow(),
            SqRing::Ringline(r) => r.cq_has_overflow(),
        }
    }

    /// Free SQ slots (the engine's head against the published tail).
    fn sq_space(&mut self) -> u32 {
        match self {
            SqRing::Kernel(r) => {
                let sq = r.submission();
                (sq.capacity() - sq.len()) as u32
            }
            SqRing::Ringline(r) => r.sq_space_left(),
        }
    }

    fn cq_ready(&mut self) -> u32 {
        match self {
            SqRing::Kernel(r) => r.completion().len() as u32,
            SqRing::Ringline(r) => r.cq_ready(),
        }
    }

    /// Consumes every CQE in the CQ, without entering.
    fn reap(&mut self) -> Vec<Cqe> {
        match self {
            SqRing::Kernel(r) => r
                .completion()
                .map(|e| Cqe {
                    user_data: e.user_data(),
                    res: e.result(),
                    flags: e.flags(),
                })
                .collect(),
            SqRing::Ringline(r) => r.completions().collect(),
        }
    }

    /// Reaps (without entering) until `n` CQEs were taken or [`PATIENCE`] passes.
    fn reap_until(&mut self, n: usize) -> Vec<Cqe> {
        let end = Instant::now() + PATIENCE;
        let mut v = Vec::new();
        while v.len() < n && Instant::now() < end {
            v.extend(self.reap());
            if v.len() < n {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        v
    }

    /// Waits (polling the flag, without entering) until the engine sets
    /// `IORING_SQ_NEED_WAKEUP`, at most [`PATIENCE`].
    fn wait_need_wakeup(&mut self) -> bool {
        let end = Instant::now() + PATIENCE;
        while Instant::now() < end {
            if self.need_wakeup() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }
}

fn cqe_line(c: &Cqe) -> String {
    format!("ud {} res {} flags {:#x}", c.user_data, c.res, c.flags)
}

fn nop(ud: u64) -> SafeSqe {
    opcode::Nop::new().user_data(ud).build()
}

fn res_line(r: Result<u32, i32>) -> String {
    match r {
        Ok(n) => format!("Ok({n})"),
        Err(e) => format!("-{}", crate::errno_name(e)),
    }
}

/// What setup reports.
pub fn setup(c: &mut Ctx) -> R {
    let ring = SqRing::open(c.kind(), 8, 16, 50)?;
    let (sqpoll, idle, nonfixed) = ring.params();
    c.line(format!(
        "params: IORING_SETUP_SQPOLL {sqpoll}, sq_thread_idle {idle} ms"
    ));
    c.line(format!("features: IORING_FEAT_SQPOLL_NONFIXED {nonfixed}"));
    Ok(())
}

/// SQEs published while the engine polls complete without any enter.
pub fn submit_without_enter(c: &mut Ctx) -> R {
    let mut ring = SqRing::open(c.kind(), 8, 16, 2000)?;
    for ud in 1..=3 {
        if !ring.push(nop(ud)) {
            return Err("SQ full".into());
        }
    }
    let inject = opcode::Nop::new().inject_result(42).user_data(4).build();
    ring.push(inject);
    let got = ring.reap_until(4);
    c.line(format!("CQEs without io_uring_enter: {}", got.len()));
    for cqe in &got {
        c.line(cqe_line(cqe));
    }
    Ok(())
}

/// After sq_thread_idle the engine sets NEED_WAKEUP; liburing's submit then
/// enters with SQ_WAKEUP and the request completes; the flag is clear again
/// once the engine runs.
pub fn need_wakeup(c: &mut Ctx) -> R {
    let mut ring = SqRing::open(c.kind(), 8, 16, 20)?;
    ring.push(nop(1));
    let first = ring.reap_until(1);
    c.line(format!(
        "first NOP: {}",
        first.iter().map(cqe_line).collect::<Vec<_>>().join(", ")
    ));
    c.line(format!(
        "IORING_SQ_NEED_WAKEUP after sq_thread_idle: {}",
        ring.wait_need_wakeup()
    ));
    ring.push(nop(2));
    c.line(format!(
        "submit (enters with SQ_WAKEUP): {}",
        res_line(ring.submit())
    ));
    let got = ring.reap_until(1);
    c.line(format!(
        "woken NOP: {}",
        got.iter().map(cqe_line).collect::<Vec<_>>().join(", ")
    ));
    c.line(format!(
        "IORING_SQ_NEED_WAKEUP once the engine ran: {}",
        ring.need_wakeup()
    ));
    // Asleep again, a wait for a completion wakes it too (the TIMEOUT is
    // taken after the SQ_WAKEUP enter) and blocks until the TIMEOUT fires.
    c.line(format!(
        "IORING_SQ_NEED_WAKEUP after idle again: {}",
        ring.wait_need_wakeup()
    ));
    let ts = Timespec::from(Duration::from_millis(20));
    // SAFETY: `ts` lives to the end of this function, after the TIMEOUT's CQE
    // is reaped below (or the ring is dropped, which stops the engine).
    unsafe { ring.push_timeout(&ts, 3) };
    let r = ring.submit_and_wait_timeout(1, PATIENCE);
    c.line(format!(
        "submit_and_wait(1) for a 20 ms TIMEOUT: {}",
        res_line(r)
    ));
    let got = ring.reap_until(1);
    c.line(format!(
        "TIMEOUT: {}",
        got.iter().map(cqe_line).collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

/// A wait for a completion that cannot come ends at its timeout.
pub fn wait_timeout(c: &mut Ctx) -> R {
    let mut ring = SqRing::open(c.kind(), 8, 16, 1000)?;
    let r = ring.submit_and_wait_timeout(1, Duration::from_millis(20));
    c.line(format!(
        "submit_and_wait_timeout(1, 20 ms), nothing in flight: {}",
        res_line(r)
    ));
    c.line(format!("CQEs: {}", ring.cq_ready()));
    Ok(())
}

/// SQ_WAIT returns once the engine has taken SQEs from a full SQ (after
/// the submit that publishes them, as liburing programs do).
pub fn sq_wait(c: &mut Ctx) -> R {
    let mut ring = SqRing::open(c.kind(), 4, 16, 1000)?;
    let mut pushed = 0;
    for ud in 1..=4 {
        pushed += u32::from(ring.push(nop(ud)));
    }
    c.line(format!("NOPs pushed into an SQ of 4: {pushed}"));
    // As a program does: io_uring_submit publishes them (and wakes the
    // poller if it sleeps: the kernel's may not have started polling yet
    // on a loaded machine), then waits for SQ space.
    ring.submit().map_err(|e| format!("submit: {e}"))?;
    let r = ring.sq_wait();
    c.line(format!(
        "io_uring_sqring_wait: {}, SQ space after it: {}",
        res_line(r.map(|()| 0)),
        ring.sq_space() > 0
    ));
    let got = ring.reap_until(4);
    c.line(format!(
        "CQEs: {}",
        got.iter()
            .map(|c| c.user_data.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Ok(())
}

/// 20 NOPs into a CQ of 8 without reaping: the backlog and
/// `IORING_SQ_CQ_OVERFLOW`, then every CQE in order as the application reaps
/// and enters.
pub fn overflow(c: &mut Ctx) -> R {
    let mut ring = SqRing::open(c.kind(), 4, 8, 1000)?;
    let end = Instant::now() + PATIENCE;
    let mut next = 1;
    while next <= 20 && Instant::now() < end {
        if ring.push(nop(next)) {
            next += 1;
        } else {
            // Published (and the poller woken if it sleeps), then wait.
            let _ = ring.submit();
            let _ = ring.sq_wait();
        }
    }
    // Every SQE taken (the SQ empty again), the CQ full.
    while (ring.sq_space() < 4 || ring.cq_ready() < 8) && Instant::now() < end {
        std::thread::sleep(Duration::from_micros(200));
    }
    // The engine posts into the backlog as it takes the SQEs; let it finish.
    while !ring.cq_overflow() && Instant::now() < end {
        std::thread::sleep(Duration::from_micros(200));
    }
    c.line(format!(
        "after 20 NOPs: CQ ready {}, IORING_SQ_CQ_OVERFLOW {}",
        ring.cq_ready(),
        ring.cq_overflow()
    ));
    let mut order = Vec::new();
    while order.len() < 20 && Instant::now() < end {
        order.extend(ring.reap().iter().map(|c| c.user_data));
        // io_uring_get_events-like: submit enters with GETEVENTS while the
        // overflow flag is set, which flushes the backlog.
        let _ = ring.submit();
    }
    c.line(format!(
        "reaped in order 1..=20: {}",
        order == (1..=20).collect::<Vec<u64>>()
    ));
    c.line(format!(
        "IORING_SQ_CQ_OVERFLOW at the end: {}",
        ring.cq_overflow()
    ));
    Ok(())
}
