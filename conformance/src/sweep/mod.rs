//! The generated prep-check sweep: for every opcode the kernel knows (and a few
//! past `IORING_OP_LAST`), a valid baseline SQE and that SQE with one field
//! perturbed (each SQE flag bit, each `ioprio` bit, each op-flag bit, bad and
//! wrong-kind fds, `off`, `addr`, `len`, `buf_index`, `personality`,
//! `file_index`, `addr3`, the pad), run alone on both backends and compared by
//! the CQEs it produces within a bounded wait.
//!
//! Each baseline ([`Spec`]) names the fixture it needs (a connected socket with
//! 64 bytes from the peer waiting, a listener with a connection queued, a fresh
//! socket, ...), built fresh for every case, so a case never sees another's
//! state. A request still pending after the wait (a multishot, a skipped CQE, a
//! perturbation that makes the op block) is cancelled by user_data and the
//! cancellation recorded, so every case ends.
//!
//! Memory safety: perturbed pointers are only ever values no backend can
//! dereference (below 4096 or above `isize::MAX`), lengths that describe a
//! buffer never exceed it, and filesystem ops get null path pointers (the
//! kernel answers `-EFAULT` before touching a path).
//!
//! [`run`] runs the sweep, [`classify`] sorts each difference (documented with
//! its reason in [`known`], or an op ringline does not implement), and
//! [`markdown`] writes `docs/sweep.md`. No file or buffer is registered, so
//! the cases of registered files and buffers (`IOSQE_FIXED_FILE`,
//! READ_FIXED, `IORING_RECVSEND_FIXED_BUF`, direct descriptors, ...) test
//! their paths without a table.

mod known;
mod names;
mod report;
mod specs;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use ringline_ring::abi::{self, Sqe};

use crate::backend::{Kind, RingSize};
use crate::kernel::KernelBackend;
use crate::ringline_backend::RinglineBackend;
use crate::Ctx;

pub use known::known;
pub use report::{markdown, summary, totals_markdown, Totals};
pub use specs::{specs, Fix, Spec, Support};

/// user_data of the case's request.
const CASE_UD: u64 = 0x5_0000;
/// user_data of the cancel of a case's pending request.
const CANCEL_UD: u64 = 0x6_0000;
/// user_data of fixture requests (SOCKET).
const SETUP_UD: u64 = 0x7_0000;

/// How long a case waits for its final CQE: kernel, real µs.
const KERNEL_WAIT_US: u64 = 12_000;
/// The same on ringline, in rounds (idle rounds are 2 ms of virtual time).
const RINGLINE_WAIT_ROUNDS: u64 = 60;
/// A kernel case that differs is run again alone with this wait (µs), to tell
/// a slow kernel from a real difference.
const KERNEL_RETRY_US: u64 = 300_000;

/// The bytes the peer has sent before a case on a connected socket runs.
pub const DATA_LEN: usize = 64;

/// Which fd a perturbed `fd` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFd {
    /// -1.
    Minus1,
    /// A number no socket has (100000).
    Unused,
    /// A socket of the other kind: a listener for ops on a connection, a
    /// connection otherwise.
    Other,
}

/// One field of the baseline SQE changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perturb {
    /// The baseline itself.
    Base,
    /// `flags ^= 1 << n`.
    Flag(u8),
    /// `ioprio ^= 1 << n`.
    Ioprio(u8),
    /// `op_flags ^= 1 << n` (rw_flags, msg_flags, poll32_events, ...).
    OpFlag(u8),
    /// `fd` replaced.
    Fd(BadFd),
    /// `off` (addr2) replaced.
    Off(u64),
    /// `addr` replaced.
    Addr(u64),
    /// `len` replaced.
    Len(u32),
    /// `buf_index` / `buf_group` replaced.
    BufIndex(u16),
    /// `personality` replaced.
    Personality(u16),
    /// `file_index` / `splice_fd_in` / `addr_len` replaced.
    FileIndex(u32),
    /// `addr3` replaced.
    Addr3(u64),
    /// The last 8 bytes (`__pad2`, `attr_type_mask`, the end of `cmd`) replaced.
    Pad2(u64),
}

impl Perturb {
    /// A short label: `flags^0x20`, `len=0`, ...
    pub fn label(self, op: u8) -> String {
        match self {
            Perturb::Base => "baseline".into(),
            Perturb::Flag(n) => format!("flags^{:#x}{}", 1u32 << n, names::sqe_flag(n)),
            Perturb::Ioprio(n) => format!("ioprio^{:#x}{}", 1u32 << n, names::ioprio(op, n)),
            Perturb::OpFlag(n) => format!("op_flags^{:#x}{}", 1u64 << n, names::op_flag(op, n)),
            Perturb::Fd(BadFd::Minus1) => "fd=-1".into(),
            Perturb::Fd(BadFd::Unused) => "fd=100000".into(),
            Perturb::Fd(BadFd::Other) => "fd=other kind".into(),
            Perturb::Off(v) => format!("off={}", hex(v)),
            Perturb::Addr(v) => format!("addr={}", hex(v)),
            Perturb::Len(v) => format!("len={}", hex(u64::from(v))),
            Perturb::BufIndex(v) => format!("buf_index={v:#x}"),
            Perturb::Personality(v) => format!("personality={v}"),
            Perturb::FileIndex(v) => format!("file_index={v:#x}"),
            Perturb::Addr3(v) => format!("addr3={}", hex(v)),
            Perturb::Pad2(v) => format!("pad2={}", hex(v)),
        }
    }
}

fn hex(v: u64) -> String {
    if v < 4096 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

/// One case: a spec and a perturbation.
#[derive(Clone, Copy)]
pub struct Case {
    /// Index into [`specs`].
    pub spec: usize,
    /// What is changed.
    pub perturb: Perturb,
}

/// Values that no backend can dereference as an address (first page, above
/// `isize::MAX`) or that overflow: safe for any pointer field.
const BAD_PTRS: [u64; 3] = [1, 1 << 63, u64::MAX];

/// Every case of `spec` (index `i`).
fn cases_of(i: usize, s: &Spec) -> Vec<Case> {
    // IO_DRAIN first (it runs on rings of its own, see `run`).
    let mut v = vec![];
    if s.op < abi::IORING_OP_LAST {
        v.push(Perturb::Flag(1));
    }
    v.push(Perturb::Base);
    if s.op < abi::IORING_OP_LAST {
        v.extend((0..8).filter(|&b| b != 1).map(Perturb::Flag));
        v.extend((0..16).map(Perturb::Ioprio));
        v.extend((0..32).map(Perturb::OpFlag));
        v.extend([BadFd::Minus1, BadFd::Unused].map(Perturb::Fd));
        // A socket of the other kind, where the op names a socket.
        if s.fixture != Fix::None {
            v.push(Perturb::Fd(BadFd::Other));
        }
        v.extend([2, 1 << 63, u64::MAX].map(Perturb::Off));
        v.extend(std::iter::once(0).chain(BAD_PTRS).map(Perturb::Addr));
        v.extend(s.lens.iter().map(|&l| Perturb::Len(l)));
        v.extend([1, 0xffff].map(Perturb::BufIndex));
        v.push(Perturb::Personality(1));
        v.extend([1, 0x1_0000, u32::MAX].map(Perturb::FileIndex));
        v.push(Perturb::Addr3(1));
        v.push(Perturb::Pad2(1));
    } else {
        v.extend(
            [0x80, 0x7f]
                .iter()
                .map(|&f: &u8| Perturb::Flag(f.trailing_zeros() as u8)),
        );
    }
    v.into_iter()
        .map(|perturb| Case { spec: i, perturb })
        .collect()
}

/// Every case of the sweep, spec by spec.
pub fn cases() -> Vec<Case> {
    specs()
        .iter()
        .enumerate()
        .flat_map(|(i, s)| cases_of(i, s))
        .collect()
}

/// What a case produced on one backend: the CQE tokens, or `None` when the
/// perturbation left the baseline SQE unchanged (not counted).
pub type Outcome = Option<String>;

/// The sockets and addresses a case's baseline names.
pub struct Fx {
    /// The fd the op works on (-1 when it needs none).
    pub fd: i32,
    /// The peer listener's address, for CONNECT.
    pub peer: *const libc::sockaddr,
    /// An address of the app's own for BIND (port 0).
    pub local: *const libc::sockaddr,
    /// A buffer-ring group with 4 buffers of [`DATA_LEN`] (0 when none).
    pub group: u16,
    /// The case's number within its spec (for unique group ids).
    pub n: u16,
}

/// Builds the fixture of `fix` on `c`.
fn fixture(c: &mut Ctx, fix: Fix, n: u16) -> Result<Fx, String> {
    let mut fx = Fx {
        fd: -1,
        peer: std::ptr::null(),
        local: std::ptr::null(),
        group: 0,
        n,
    };
    match fix {
        Fix::None => {}
        Fix::Conn | Fix::ConnGroup => fx.fd = conn_with_data(c)?,
        Fix::Listener => {
            let l = c.backend().app_listener(16)?;
            c.backend().peer_connect(l)?;
            settle(c, 10);
            fx.fd = l;
        }
        Fix::Fresh => fx.fd = fresh_socket(c)?,
        Fix::Connect => {
            fx.fd = fresh_socket(c)?;
            let (_, sa) = c.backend().peer_listen()?;
            fx.peer = c.sockaddr(sa);
        }
    }
    if fix == Fix::ConnGroup {
        fx.group = 100 + n;
        c.buf_ring(fx.group, 4, DATA_LEN, 4)
            .map_err(|e| format!("buf ring: {e}"))?;
    }
    let ip = match c.kind() {
        Kind::Kernel => [127, 0, 0, 1],
        Kind::Ringline => crate::ringline_backend::APP_IP.octets(),
    };
    fx.local = c.sockaddr(ringline_ring::app::sockaddr_in(ip, 0));
    Ok(fx)
}

/// Rounds that let the engines move frames (ringline only: the kernel's
/// loopback delivers within the system call).
fn settle(c: &mut Ctx, rounds: usize) {
    if c.kind() == Kind::Ringline {
        for _ in 0..rounds {
            c.backend().tick();
            c.reap_now();
        }
    }
}

/// A connection whose app side has [`DATA_LEN`] bytes from the peer waiting.
fn conn_with_data(c: &mut Ctx) -> Result<i32, String> {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, &crate::scenarios::pattern(DATA_LEN, 3))?;
    settle(c, 20);
    Ok(fd)
}

/// A fresh unconnected socket through IORING_OP_SOCKET.
fn fresh_socket(c: &mut Ctx) -> Result<i32, String> {
    let sqe = ringline_ring::opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
        .user_data(SETUP_UD)
        .build();
    c.submit_one_safe("setup socket", sqe)?;
    let from = c.log().len();
    wait(c, SETUP_UD, from, 1);
    c.log()[from..]
        .iter()
        .find(|q| q.user_data == SETUP_UD)
        .map(|q| q.res)
        .filter(|&r| r >= 0)
        .ok_or_else(|| "setup socket failed".to_string())
}

/// Ticks and reaps until `ud` has a final CQE at or after log index `from`, or
/// the case wait (× `scale`) is over. Returns whether the final CQE came.
fn wait(c: &mut Ctx, ud: u64, from: usize, scale: u64) -> bool {
    let start = c.backend().now();
    let limit = match c.kind() {
        Kind::Kernel => kernel_wait_us() * scale,
        Kind::Ringline => RINGLINE_WAIT_ROUNDS * scale,
    };
    loop {
        c.reap_now();
        if c.log()[from.min(c.log().len())..]
            .iter()
            .any(|q| q.user_data == ud && !abi::more(q.flags))
        {
            return true;
        }
        if c.backend().now().saturating_sub(start) >= limit {
            return false;
        }
        c.backend().tick();
    }
}

thread_local! {
    static KERNEL_WAIT: std::cell::Cell<u64> = const { std::cell::Cell::new(KERNEL_WAIT_US) };
}

fn kernel_wait_us() -> u64 {
    KERNEL_WAIT.with(|w| w.get())
}

/// Applies `p` to `sqe`; `Fd(Other)` makes the other-kind socket.
fn perturb(c: &mut Ctx, fix: Fix, sqe: &mut Sqe, p: Perturb) -> Result<(), String> {
    match p {
        Perturb::Base => {}
        Perturb::Flag(n) => sqe.flags ^= 1 << n,
        Perturb::Ioprio(n) => sqe.ioprio ^= 1 << n,
        Perturb::OpFlag(n) => sqe.op_flags ^= 1 << n,
        Perturb::Fd(BadFd::Minus1) => sqe.fd = -1,
        Perturb::Fd(BadFd::Unused) => sqe.fd = 100_000,
        Perturb::Fd(BadFd::Other) => {
            sqe.fd = match fix {
                Fix::Conn | Fix::ConnGroup => c.backend().app_listener(16)?,
                _ => c.backend().app_conn()?.0,
            }
        }
        Perturb::Off(v) => sqe.off = v,
        Perturb::Addr(v) => sqe.addr = v,
        Perturb::Len(v) => sqe.len = v,
        Perturb::BufIndex(v) => sqe.buf_index = v,
        Perturb::Personality(v) => sqe.personality = v,
        Perturb::FileIndex(v) => sqe.file_index = v,
        Perturb::Addr3(v) => sqe.addr3 = v,
        Perturb::Pad2(v) => sqe.pad2 = v,
    }
    Ok(())
}

/// Runs one case on `c`.
fn run_case(c: &mut Ctx, s: &Spec, p: Perturb, n: u16) -> Result<Outcome, String> {
    let fx = fixture(c, s.fixture, n)?;
    let base = (s.build)(c, &fx, s.op);
    let mut sqe = base;
    perturb(c, s.fixture, &mut sqe, p)?;
    if p != Perturb::Base && sqe == base {
        return Ok(None);
    }
    let ud = CASE_UD + u64::from(n);
    sqe.user_data = ud;
    let from = c.log().len();
    // SAFETY: the baseline names only context memory (`Ctx::mem`, `bytes`, `keep`,
    // `sockaddr`, a group's buffers), live until the context drops; perturbed pointers are
    // never dereferenced (below 4096 or past isize::MAX), perturbed lengths stay in bounds.
    unsafe { c.push(s.name, sqe) }?;
    c.submit();
    let done = wait(c, ud, from, 1);
    let toks = |c: &Ctx, from: usize, ud: u64| -> Vec<String> {
        c.log()[from..]
            .iter()
            .filter(|q| q.user_data == ud)
            .map(|q| c.token(q))
            .collect()
    };
    let mut out = collapse(toks(c, from, ud));
    if out.is_empty() {
        out.push("(none)".into());
    }
    let mut line = out.join(", ");
    if !done {
        let cud = CANCEL_UD + u64::from(n);
        let cancel = ringline_ring::opcode::AsyncCancel::new(ud)
            .user_data(cud)
            .build();
        let mid = c.log().len();
        c.submit_one_safe("cancel", cancel)?;
        wait(c, cud, mid, 1);
        wait(c, ud, mid, 1);
        line.push_str(&format!(
            " | pending; cancel: {}; then: {}",
            toks(c, mid, cud).join(", "),
            {
                let t = toks(c, mid, ud);
                if t.is_empty() {
                    "(none)".to_string()
                } else {
                    t.join(", ")
                }
            }
        ));
    }
    Ok(Some(line))
}

/// Runs of one token become `tok (repeated)`: how many times a repeating
/// timer fired within the wait depends on the clock, not on io_uring.
fn collapse(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in v {
        let rep = format!("{t} (repeated)");
        match out.last_mut() {
            Some(l) if *l == t || *l == rep => *l = rep,
            _ => out.push(t),
        }
    }
    out
}

/// Runs `cases` (all of one spec) on a fresh backend of `kind`. A case whose
/// script fails records `SCRIPT ERROR`; a panic records `PANIC` for it and
/// the spec's remaining cases.
fn run_spec(kind: Kind, s: &Spec, cases: &[(usize, Perturb)]) -> Vec<Outcome> {
    let size = RingSize { sq: 64, cq: 256 };
    let made: Result<Box<dyn crate::Backend>, String> = match kind {
        Kind::Kernel => KernelBackend::new(size).map(|b| Box::new(b) as _),
        Kind::Ringline => RinglineBackend::new(size).map(|b| Box::new(b) as _),
    };
    let b = match made {
        Ok(b) => b,
        Err(e) => {
            return cases
                .iter()
                .map(|_| Some(format!("SCRIPT ERROR: {e}")))
                .collect()
        }
    };
    let mut c = Ctx::new(b);
    let mut out = Vec::with_capacity(cases.len());
    let r = catch_unwind(AssertUnwindSafe(|| {
        for &(n, p) in cases {
            let o = run_case(&mut c, s, p, n as u16)
                .unwrap_or_else(|e| Some(format!("SCRIPT ERROR: {e}")));
            out.push(o);
        }
    }));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        while out.len() < cases.len() {
            out.push(Some(format!("PANIC: {msg}")));
        }
    }
    drop(c);
    out
}

/// The result of one case on both backends.
#[derive(Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// The kernel's outcome (`None` for the whole report when skipped).
    pub kernel: Option<String>,
    /// ringline's outcome.
    pub ringline: String,
    /// How the comparison is classed.
    pub class: Class,
}

/// How a case's comparison is classed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Same CQEs.
    Match,
    /// Different, documented with its reason ([`known`]).
    Documented(&'static str),
    /// Different: an op ringline does not implement (it answers
    /// `-EOPNOTSUPP` after the checks every SQE gets).
    Unsupported,
    /// Different and not documented: a bug (fails the test).
    Mismatch,
    /// The kernel side did not run.
    KernelSkipped,
}

/// Classes one comparison.
pub fn classify(s: &Spec, p: Perturb, kernel: &Option<String>, ringline: &str) -> Class {
    let Some(k) = kernel else {
        return Class::KernelSkipped;
    };
    if k == ringline {
        return Class::Match;
    }
    if ringline.starts_with("PANIC") || ringline.starts_with("SCRIPT ERROR") {
        return Class::Mismatch;
    }
    if let Some(why) = known(s.name, p) {
        return Class::Documented(why);
    }
    if s.support == Support::Unsupported {
        return Class::Unsupported;
    }
    Class::Mismatch
}

/// Options of a sweep run.
#[derive(Clone, Default)]
pub struct Options {
    /// Run only specs whose name contains one of these (all when empty).
    pub only: Vec<String>,
    /// Skip the kernel side.
    pub no_kernel: bool,
}

/// The sweep's results with its run time.
pub struct Sweep {
    /// Every counted case.
    pub results: Vec<CaseResult>,
    /// Wall time of the run, seconds.
    pub secs: f64,
}

/// Runs the sweep.
pub fn run(o: &Options) -> Sweep {
    let t0 = Instant::now();
    let all = specs();
    let mut results = Vec::new();
    for (i, s) in all.iter().enumerate() {
        if !o.only.is_empty() && !o.only.iter().any(|x| s.name.contains(x.as_str())) {
            continue;
        }
        let cs: Vec<(usize, Perturb)> = cases_of(i, s)
            .into_iter()
            .enumerate()
            .map(|(n, c)| (n, c.perturb))
            .collect();
        // IO_DRAIN alone on its own rings: a drained request holds every
        // later SQE until it completes, and a multishot one never does.
        let (alone, rest): (Vec<_>, Vec<_>) = cs.iter().partition(|(_, p)| *p == Perturb::Flag(1));
        let both = |kind: Kind| -> Vec<Outcome> {
            let mut a = run_spec(kind, s, &alone);
            a.extend(run_spec(kind, s, &rest));
            a
        };
        let cs: Vec<(usize, Perturb)> = alone.iter().chain(&rest).copied().collect();
        let t = Instant::now();
        let r = both(Kind::Ringline);
        let tr = t.elapsed();
        let k: Vec<Option<Outcome>> = if o.no_kernel {
            cs.iter().map(|_| None).collect()
        } else {
            both(Kind::Kernel).into_iter().map(Some).collect()
        };
        if std::env::var_os("RINGLINE_SWEEP_TIMES").is_some() {
            eprintln!(
                "sweep: {:<28} {:>3} cases: ringline {:>6.0} ms, kernel {:>6.0} ms",
                s.name,
                cs.len(),
                tr.as_secs_f64() * 1e3,
                (t.elapsed() - tr).as_secs_f64() * 1e3
            );
        }
        for (j, &(n, p)) in cs.iter().enumerate() {
            let (ro, ko) = (&r[j], &k[j]);
            // Not counted: the perturbation left the SQE as the baseline.
            if ro.is_none() && matches!(ko, None | Some(None)) {
                continue;
            }
            let ring = ro.clone().unwrap_or_else(|| "(baseline)".into());
            let mut kern = ko.clone().map(|x| x.unwrap_or_else(|| "(baseline)".into()));
            if kern.as_deref().is_some_and(|x| x != ring)
                && classify(s, p, &kern, &ring) == Class::Mismatch
            {
                // Once more alone with a long wait: a slow kernel is not a difference.
                KERNEL_WAIT.with(|w| w.set(KERNEL_RETRY_US));
                let again = run_spec(Kind::Kernel, s, &[(n, p)]);
                KERNEL_WAIT.with(|w| w.set(KERNEL_WAIT_US));
                if let Some(Some(a)) = again.into_iter().next() {
                    kern = Some(a);
                }
            }
            let case = Case {
                spec: i,
                perturb: p,
            };
            let class = classify(s, p, &kern, &ring);
            results.push(CaseResult {
                case,
                kernel: kern,
                ringline: ring,
                class,
            });
        }
    }
    Sweep {
        results,
        secs: t0.elapsed().as_secs_f64(),
    }
}
