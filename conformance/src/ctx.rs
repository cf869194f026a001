//! The scenario script API and the normalisation of what comes out.
//!
//! A scenario pushes raw SQEs (built with ringline's `opcode` builders, so the
//! same 64 bytes go to both backends), drives the peer, waits, and records
//! *lines*: normalised observations that must be identical on both backends.
//!
//! Normalisation (what legitimately differs is removed, the rest is kept exact):
//! - socket numbers (kernel fds vs ringline's small integers) become `fd`;
//! - `IORING_CQE_F_SOCK_NONEMPTY` is masked (it depends on how the kernel's
//!   loopback batched the data, not on io_uring's rules);
//! - stream data: consecutive data CQEs of one request with the same flags are
//!   merged into one `data(N B)` token (total bytes exact, split not compared);
//!   the content is checked against what the peer sent, every CQE against its
//!   buffer size, and buffer ids against the order the buffers were provided
//!   (in CQE order across the requests sharing a group);
//! - poll results are shown as `POLL*` names; everything else (results, errnos,
//!   `F_MORE`, `F_BUFFER` + buffer id, which CQE is final, CQE order when asked,
//!   `IORING_SQ_CQ_OVERFLOW`) is compared exactly.

use std::collections::{HashMap, VecDeque};

use ringline_ring::abi::{self, Cqe, Sqe};
use ringline_ring::bufring::BufRing;
use ringline_ring::opcode::SafeSqe;

use crate::backend::{Backend, Budget, Kind, PeerId, PeerRx};
use crate::errno_name;

/// Fewest ticks in a quiet period, whatever the clock says.
const MIN_TICKS: usize = 5;

/// A provided-buffer group the scenario set up (ring or legacy).
struct Group {
    ring: Option<BufRing>,
    mem: Box<[u8]>,
    size: usize,
    /// The buffer id of the first buffer in `mem`.
    base: u16,
    /// Buffer ids in the order the backend should hand them out.
    order: VecDeque<u16>,
}

/// Per-request stream bookkeeping (see [`Ctx::stream`]).
#[derive(Default)]
struct Stream {
    /// Index in the CQE log of the first entry not yet looked at.
    processed: usize,
    bytes: Vec<u8>,
    tokens: Vec<String>,
    /// (merged data CQEs, their bytes, flags class) being accumulated.
    run: Option<(usize, usize, String)>,
    problems: Vec<String>,
    recycle: bool,
    group: u16,
}

/// The context a scenario runs in: one backend plus the recorded lines.
///
/// Field order matters: the backend is dropped first (cancelling everything in
/// flight), then the memory its requests may name.
pub struct Ctx {
    b: Box<dyn Backend>,
    log: Vec<Cqe>,
    names: HashMap<u64, (String, u8)>,
    lines: Vec<String>,
    streams: HashMap<u64, Stream>,
    groups: HashMap<u16, Group>,
    mem: Vec<Box<[u8]>>,
    objs: Vec<Box<dyn std::any::Any>>,
}

impl Ctx {
    /// A context on `b`.
    pub fn new(b: Box<dyn Backend>) -> Ctx {
        Ctx {
            b,
            log: Vec::new(),
            names: HashMap::new(),
            lines: Vec::new(),
            streams: HashMap::new(),
            groups: HashMap::new(),
            mem: Vec::new(),
            objs: Vec::new(),
        }
    }

    /// The recorded lines so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Ends the run: tears the backend down and returns the lines.
    pub fn finish(mut self) -> Vec<String> {
        self.b.teardown();
        std::mem::take(&mut self.lines)
    }

    /// Which backend this is (scenarios must not branch on it except to explain
    /// setup differences, never to change what they record).
    pub fn kind(&self) -> Kind {
        self.b.kind()
    }

    /// The backend.
    pub fn backend(&mut self) -> &mut dyn Backend {
        &mut *self.b
    }

    // ------------------------------------------------------------------
    // SQEs and memory
    // ------------------------------------------------------------------

    /// Queues `sqe` under `name` (its user_data names the request in the record).
    ///
    /// # Safety
    ///
    /// Every buffer and address `sqe` names stays valid until the context is
    /// dropped: memory from [`Ctx::mem`], [`Ctx::bytes`], [`Ctx::keep`],
    /// [`Ctx::sockaddr`] and the `timespec_*` helpers does (the context drops
    /// it after the backend), as does a buffer group's.
    pub unsafe fn push(&mut self, name: &str, sqe: Sqe) -> Result<(), String> {
        // A direct descriptor's result is a slot (or 0), shown as a number.
        let direct = sqe.file_index != 0
            && matches!(sqe.opcode, abi::IORING_OP_ACCEPT | abi::IORING_OP_SOCKET);
        let op = if direct {
            abi::IORING_OP_NOP
        } else {
            sqe.opcode
        };
        self.names.insert(sqe.user_data, (name.to_string(), op));
        // SAFETY: the memory `sqe` names lives until this context drops, after
        // the backend (this function's contract and the field order).
        unsafe { self.b.push(&sqe) }
    }

    /// [`Ctx::push`] for an SQE that names no memory.
    pub fn push_safe(&mut self, name: &str, sqe: SafeSqe) -> Result<(), String> {
        // SAFETY: a SafeSqe names no memory.
        unsafe { self.push(name, sqe.into_sqe()) }
    }

    /// Names a user_data that only appears in CQEs (e.g. after a poll update).
    pub fn alias(&mut self, user_data: u64, name: &str, opcode: u8) {
        self.names.insert(user_data, (name.to_string(), opcode));
    }

    /// `io_uring_register(2)` on the app ring (the result or `-errno`).
    ///
    /// # Safety
    ///
    /// As [`Backend::register`]: `arg` from [`Ctx::mem`], [`Ctx::keep`] or
    /// [`Ctx::bytes`] (living until the context drops) always qualifies.
    pub unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> i32 {
        // SAFETY: the caller upholds the register contract (this function's).
        unsafe { self.b.register(opcode, arg, nr_args) }
    }

    /// Registers, and records `label: result` (errno names for failures).
    ///
    /// # Safety
    ///
    /// As [`Ctx::register`].
    pub unsafe fn register_line(&mut self, label: &str, opcode: u32, arg: u64, nr: u32) -> i32 {
        // SAFETY: as this function's contract.
        let r = unsafe { self.register(opcode, arg, nr) };
        let tok = if r < 0 {
            format!("-{}", errno_name(-r))
        } else {
            r.to_string()
        };
        self.lines.push(format!("{label}: {tok}"));
        r
    }

    /// [`Ctx::push`] then [`Ctx::submit`].
    ///
    /// # Safety
    ///
    /// As [`Ctx::push`].
    pub unsafe fn submit_one(&mut self, name: &str, sqe: Sqe) -> Result<(), String> {
        // SAFETY: the caller upholds `push`'s contract (this function's).
        unsafe { self.push(name, sqe) }?;
        self.submit();
        Ok(())
    }

    /// [`Ctx::push_safe`] then [`Ctx::submit`].
    pub fn submit_one_safe(&mut self, name: &str, sqe: SafeSqe) -> Result<(), String> {
        self.push_safe(name, sqe)?;
        self.submit();
        Ok(())
    }

    /// Publishes and enters once (`io_uring_submit`).
    pub fn submit(&mut self) {
        self.b.submit();
    }

    /// `len` zeroed bytes that live until the backend is gone.
    pub fn mem(&mut self, len: usize) -> *mut u8 {
        let mut m = vec![0u8; len.max(1)].into_boxed_slice();
        let p = m.as_mut_ptr();
        self.mem.push(m);
        p
    }

    /// A copy of `data` that lives until the backend is gone.
    pub fn bytes(&mut self, data: &[u8]) -> *const u8 {
        let p = self.mem(data.len());
        // SAFETY: `p` points at a fresh allocation of at least `data.len()` bytes
        // that nothing else references.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        p
    }

    /// Reads `len` bytes of scenario memory at `p` (from [`Ctx::mem`]).
    pub fn read_mem(&self, p: *const u8, len: usize) -> Vec<u8> {
        for m in &self.mem {
            let base = m.as_ptr() as usize;
            if (p as usize) >= base && (p as usize) + len <= base + m.len() {
                let off = p as usize - base;
                return m[off..off + len].to_vec();
            }
        }
        Vec::new()
    }

    /// A value (a `msghdr`, an `iovec`, ...) that lives until the backend is gone.
    pub fn keep<T: 'static>(&mut self, v: T) -> *mut T {
        let mut b = Box::new(v);
        let p: *mut T = &mut *b;
        self.objs.push(b);
        p
    }

    /// A `sockaddr_in` that lives until the backend is gone.
    pub fn sockaddr(&mut self, sa: libc::sockaddr_in) -> *const libc::sockaddr {
        self.keep(sa).cast_const().cast()
    }

    /// A timespec `ms` ms from now on the backend's absolute-timeout clock.
    pub fn timespec_abs_ms(&mut self, ms: u64) -> *const ringline_ring::app::Timespec {
        let us = self.backend().timeout_clock_us() + ms * 1000;
        self.keep(ringline_ring::app::Timespec {
            tv_sec: (us / 1_000_000) as i64,
            tv_nsec: ((us % 1_000_000) * 1000) as i64,
        })
        .cast_const()
    }

    /// A timespec of `ms` milliseconds that lives until the backend is gone.
    pub fn timespec_ms(&mut self, ms: u64) -> *const ringline_ring::app::Timespec {
        self.keep(ringline_ring::app::Timespec {
            tv_sec: (ms / 1000) as i64,
            tv_nsec: ((ms % 1000) * 1_000_000) as i64,
        })
        .cast_const()
    }

    // ------------------------------------------------------------------
    // Buffer groups
    // ------------------------------------------------------------------

    /// Registers a buffer ring `bgid` of `entries` and adds `fill` buffers of
    /// `size` bytes (bids 0..fill). `Err(-errno)` if registration fails.
    pub fn buf_ring(&mut self, bgid: u16, entries: u32, size: usize, fill: u16) -> Result<(), i32> {
        let ring = self.b.register_buf_ring(entries, bgid)?;
        let g = Group {
            ring: Some(ring),
            mem: vec![0u8; size * entries as usize].into_boxed_slice(),
            size,
            base: 0,
            order: VecDeque::new(),
        };
        self.groups.insert(bgid, g);
        for bid in 0..fill {
            self.give(bgid, bid);
        }
        Ok(())
    }

    /// Adds buffer `bid` of ring group `bgid` (back) to its ring.
    pub fn give(&mut self, bgid: u16, bid: u16) {
        let g = self.groups.get_mut(&bgid).expect("unknown group");
        let addr = g.mem.as_mut_ptr() as u64 + u64::from(bid) * g.size as u64;
        let size = g.size as u32;
        if let Some(r) = g.ring.as_mut() {
            // SAFETY: the group's memory lives until this context drops, after
            // the backend; the harness reads a buffer only after a CQE hands it
            // back (`service_streams`), and gives it again only after that.
            unsafe { r.add_and_advance(addr, size, bid) };
        }
        g.order.push_back(bid);
    }

    /// Memory for a legacy group `bgid` of `n` buffers of `size` bytes with ids
    /// `first_bid..`; the scenario provides it with PROVIDE_BUFFERS itself and
    /// calls [`Ctx::provided`] when that succeeded.
    pub fn legacy_mem(&mut self, bgid: u16, n: usize, size: usize, first_bid: u16) -> *mut u8 {
        let mut g = Group {
            ring: None,
            mem: vec![0u8; n * size].into_boxed_slice(),
            size,
            base: first_bid,
            order: VecDeque::new(),
        };
        let p = g.mem.as_mut_ptr();
        self.groups.insert(bgid, g);
        p
    }

    /// Records that legacy group `bgid` now holds `bids` at its back (after a
    /// successful PROVIDE_BUFFERS). Buffer `bid` is at `(bid - first_bid) * size`.
    pub fn provided(&mut self, bgid: u16, bids: impl IntoIterator<Item = u16>) {
        let g = self.groups.get_mut(&bgid).expect("unknown group");
        g.order.extend(bids);
    }

    // ------------------------------------------------------------------
    // Waiting
    // ------------------------------------------------------------------

    /// Reaps what is in the CQ now (no entering) into the log.
    pub fn reap_now(&mut self) -> usize {
        let v = self.b.reap();
        let n = v.len();
        self.log.extend(v);
        self.service_streams();
        n
    }

    /// Reaps at most `n` CQEs (no entering) into the log.
    pub fn reap_some(&mut self, n: usize) -> usize {
        let v = self.b.reap_n(n);
        let k = v.len();
        self.log.extend(v);
        self.service_streams();
        k
    }

    /// Ticks and reaps until `pred(log)` holds (or the expect budget runs out),
    /// then for a quiet period. Returns whether `pred` held.
    pub fn settle(&mut self, mut pred: impl FnMut(&[Cqe]) -> bool) -> bool {
        let start = self.b.now();
        let mut ok = pred(&self.log);
        while !ok && !self.b.expired(start, Budget::Expect) {
            self.b.tick();
            self.reap_now();
            ok = pred(&self.log);
        }
        self.quiet();
        ok
    }

    /// Ticks and reaps for a quiet period.
    pub fn quiet(&mut self) {
        let start = self.b.now();
        // At least a few ticks even if the thread was descheduled for the whole
        // period: each kernel tick enters with GETEVENTS, which is what runs work.
        let mut n = 0;
        while n < MIN_TICKS || !self.b.expired(start, Budget::Quiet) {
            self.b.tick();
            self.reap_now();
            n += 1;
        }
    }

    /// Ticks for a quiet period without reaping (the CQ fills up).
    pub fn pump(&mut self) {
        let start = self.b.now();
        let mut n = 0;
        while n < MIN_TICKS || !self.b.expired(start, Budget::Quiet) {
            self.b.tick();
            n += 1;
        }
    }

    /// Ticks without reaping until `pred(backend)` holds (expect budget).
    pub fn pump_until(&mut self, mut pred: impl FnMut(&mut dyn Backend) -> bool) -> bool {
        let start = self.b.now();
        loop {
            if pred(&mut *self.b) {
                return true;
            }
            if self.b.expired(start, Budget::Expect) {
                return false;
            }
            self.b.tick();
        }
    }

    /// Settles until `ud` has at least `n` CQEs.
    pub fn wait_n(&mut self, ud: u64, n: usize) -> bool {
        self.settle(|l| l.iter().filter(|c| c.user_data == ud).count() >= n)
    }

    /// Settles until `ud` has a final CQE (one without `F_MORE`).
    pub fn wait_final(&mut self, ud: u64) -> bool {
        self.settle(|l| l.iter().any(|c| c.user_data == ud && !abi::more(c.flags)))
    }

    /// Settles until every one of `uds` has a final CQE.
    pub fn wait_finals(&mut self, uds: &[u64]) -> bool {
        self.settle(|l| {
            uds.iter()
                .all(|&u| l.iter().any(|c| c.user_data == u && !abi::more(c.flags)))
        })
    }

    /// The CQEs of `ud` reaped so far.
    pub fn cqes(&self, ud: u64) -> Vec<Cqe> {
        self.log
            .iter()
            .filter(|c| c.user_data == ud)
            .copied()
            .collect()
    }

    /// The first CQE of `ud`, if any.
    pub fn first(&self, ud: u64) -> Option<Cqe> {
        self.log.iter().find(|c| c.user_data == ud).copied()
    }

    /// Every CQE reaped so far, in order.
    pub fn log(&self) -> &[Cqe] {
        &self.log
    }

    /// The SQ ring flags.
    pub fn sq_flags(&mut self) -> u32 {
        self.b.sq_flags()
    }

    /// CQEs waiting in the CQ.
    pub fn cq_ready(&mut self) -> u32 {
        self.b.cq_ready()
    }

    // ------------------------------------------------------------------
    // Peer
    // ------------------------------------------------------------------

    /// The peer sends `data`; waits until it is all written.
    pub fn peer_send(&mut self, p: PeerId, data: &[u8]) -> Result<(), String> {
        self.b.peer_send(p, data);
        let start = self.b.now();
        while !self.b.peer_sent_all(p) {
            if self.b.expired(start, Budget::Expect) {
                return Err("peer send never finished".into());
            }
            self.b.tick();
            self.reap_now();
        }
        Ok(())
    }

    /// Waits (reaping) until the reading peer got `n` bytes, EOF or an error.
    pub fn peer_wait(&mut self, p: PeerId, n: usize) -> PeerRx {
        let start = self.b.now();
        loop {
            let rx = self.b.peer_rx(p);
            if rx.data.len() >= n
                || rx.eof
                || rx.error.is_some()
                || self.b.expired(start, Budget::Expect)
            {
                return rx;
            }
            self.b.tick();
            self.reap_now();
        }
    }

    /// Waits (reaping) for the reading peer to see EOF or an error, then returns
    /// what it saw.
    pub fn peer_wait_end(&mut self, p: PeerId) -> PeerRx {
        self.peer_wait(p, usize::MAX)
    }

    // ------------------------------------------------------------------
    // Recording
    // ------------------------------------------------------------------

    /// Adds a line to the outcome.
    pub fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    fn name(&self, ud: u64) -> String {
        match self.names.get(&ud) {
            Some((n, _)) => n.clone(),
            None => format!("ud{ud:#x}"),
        }
    }

    /// The normalised token of one CQE.
    pub fn token(&self, c: &Cqe) -> String {
        let op = self.names.get(&c.user_data).map(|n| n.1);
        let mut s = if c.flags & abi::IORING_CQE_F_NOTIF != 0 && c.res != 0 {
            // A notification's res is flags (IORING_NOTIF_USAGE_ZC_COPIED).
            format!("{:#x}", c.res as u32)
        } else if c.res < 0 {
            format!("-{}", errno_name(-c.res))
        } else if matches!(op, Some(abi::IORING_OP_ACCEPT | abi::IORING_OP_SOCKET)) {
            "fd".to_string()
        } else if op == Some(abi::IORING_OP_POLL_ADD) {
            poll_mask(c.res as u32)
        } else {
            c.res.to_string()
        };
        s.push_str(&flags_token(c.flags));
        s
    }

    /// Records `name: tok, tok, ...` for every CQE of `ud` (or `(none)`).
    pub fn record(&mut self, ud: u64) {
        let toks: Vec<String> = self.cqes(ud).iter().map(|c| self.token(c)).collect();
        let l = format!(
            "{}: {}",
            self.name(ud),
            if toks.is_empty() {
                "(none)".into()
            } else {
                toks.join(", ")
            }
        );
        self.lines.push(l);
    }

    /// Records several requests, one line each.
    pub fn record_all(&mut self, uds: &[u64]) {
        for &u in uds {
            self.record(u);
        }
    }

    /// Records the order of the CQEs of `uds` in the log: `order: a:tok b:tok ...`.
    pub fn record_order(&mut self, uds: &[u64]) {
        let toks: Vec<String> = self
            .log
            .iter()
            .filter(|c| uds.contains(&c.user_data))
            .map(|c| format!("{}:{}", self.name(c.user_data), self.token(c)))
            .collect();
        self.lines.push(format!(
            "order: {}",
            if toks.is_empty() {
                "(none)".into()
            } else {
                toks.join(" ")
            }
        ));
    }

    /// Records `IORING_SQ_CQ_OVERFLOW` (and `cq_ready` when asked) under `label`.
    pub fn record_flags(&mut self, label: &str, with_ready: bool) {
        let f = self.b.sq_flags() & abi::IORING_SQ_CQ_OVERFLOW != 0;
        let mut l = format!("{label}: CQ_OVERFLOW={}", if f { "set" } else { "clear" });
        if with_ready {
            let r = self.b.cq_ready();
            l.push_str(&format!(" cq_ready={r}"));
        }
        self.lines.push(l);
    }

    // ------------------------------------------------------------------
    // Streams (buffer-select receives)
    // ------------------------------------------------------------------

    /// Treats `ud` as a buffer-select receive from group `bgid`: its data CQEs
    /// are copied out of the buffers as they are reaped and, if `recycle`, each
    /// buffer goes straight back to the ring.
    pub fn stream(&mut self, ud: u64, bgid: u16, recycle: bool) {
        self.streams_of(&[ud], bgid, recycle);
    }

    /// [`Ctx::stream`] for several requests sharing group `bgid`, registered
    /// together so that the CQEs they already have are taken in CQE order.
    pub fn streams_of(&mut self, uds: &[u64], bgid: u16, recycle: bool) {
        for &ud in uds {
            let s = self.streams.entry(ud).or_default();
            s.recycle = recycle;
            s.group = bgid;
        }
        self.service_streams();
    }

    /// Takes the streams' new CQEs in true CQE order across every stream (a
    /// buffer group's id order is checked as the CQEs arrived, even when
    /// several requests share the group).
    fn service_streams(&mut self) {
        let Some(start) = self.streams.values().map(|s| s.processed).min() else {
            return;
        };
        for i in start..self.log.len() {
            let c = self.log[i];
            let Some(mut s) = self.streams.remove(&c.user_data) else {
                continue;
            };
            if i >= s.processed {
                s.processed = i + 1;
                self.stream_cqe(&mut s, &c);
            }
            self.streams.insert(c.user_data, s);
        }
    }

    fn stream_cqe(&mut self, s: &mut Stream, c: &Cqe) {
        let bid = abi::buffer_id(c.flags);
        if c.res > 0 {
            if let Some(bid) = bid {
                let g = self.groups.get_mut(&s.group).expect("stream group");
                match g.order.pop_front() {
                    Some(want) if want == bid => {}
                    Some(want) => s
                        .problems
                        .push(format!("bid {bid} out of order (want {want})")),
                    None => s.problems.push(format!("bid {bid} never provided")),
                }
                let n = c.res as usize;
                if n > g.size {
                    s.problems.push(format!("CQE of {n} B > buffer {}", g.size));
                }
                let off = (bid.wrapping_sub(g.base) as usize * g.size).min(g.mem.len());
                let end = (off + n).min(g.mem.len());
                s.bytes.extend_from_slice(&g.mem[off..end]);
                if s.recycle && g.ring.is_some() {
                    self.give(s.group, bid);
                }
            } else {
                s.problems.push("data CQE without F_BUFFER".into());
            }
            let class = flags_token(c.flags & !(0xffff << 16) & !abi::IORING_CQE_F_BUFFER);
            if abi::more(c.flags) {
                match &mut s.run {
                    Some((k, b, cl)) if *cl == class => {
                        *k += 1;
                        *b += c.res as usize;
                    }
                    _ => {
                        flush_run(s);
                        s.run = Some((1, c.res as usize, class));
                    }
                }
                return;
            }
            flush_run(s);
            s.tokens.push(format!(
                "data({} B){}+B",
                c.res,
                flags_token(c.flags & !0xffff_0000 & !abi::IORING_CQE_F_BUFFER)
            ));
            return;
        }
        flush_run(s);
        s.tokens.push(self.token(c));
    }

    /// Records the stream of `ud`: `name: data(N B)+M+B, ...` then a content line
    /// comparing the bytes with `expect` (a prefix when the stream is incomplete)
    /// and any per-CQE problems. With `exact`, each merged run also shows its CQE
    /// count (only for scenarios where the split is deterministic on both).
    pub fn record_stream(&mut self, ud: u64, expect: &[u8], exact: bool) {
        self.service_streams();
        let name = self.name(ud);
        let Some(s) = self.streams.get_mut(&ud) else {
            self.lines.push(format!("{name}: (not a stream)"));
            return;
        };
        let mut toks = s.tokens.clone();
        if let Some((k, b, cl)) = &s.run {
            toks.push(run_token(*k, *b, cl));
        }
        if !exact {
            toks = toks.into_iter().map(|t| strip_count(&t)).collect();
        }
        let got = s.bytes.clone();
        let problems = s.problems.clone();
        self.lines.push(format!(
            "{name}: {}",
            if toks.is_empty() {
                "(none)".into()
            } else {
                toks.join(", ")
            }
        ));
        let content = if got.len() > expect.len() {
            format!("{} B, more than the {} B sent", got.len(), expect.len())
        } else if expect[..got.len()] == got[..] {
            format!("{} B, matching what the peer sent", got.len())
        } else {
            let at = got
                .iter()
                .zip(expect)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            format!(
                "{} B, differ from what the peer sent at byte {at}",
                got.len()
            )
        };
        self.lines.push(format!("{name} content: {content}"));
        if !problems.is_empty() {
            self.lines
                .push(format!("{name} problems: {}", problems.join("; ")));
        }
    }

    /// Ticks and reaps until stream `ud` has received `n` bytes or ended, then a
    /// quiet period. Returns whether the bytes arrived.
    pub fn wait_stream(&mut self, ud: u64, n: usize) -> bool {
        let start = self.b.now();
        loop {
            if self.stream_bytes(ud) >= n
                || self
                    .log
                    .iter()
                    .any(|c| c.user_data == ud && !abi::more(c.flags))
                || self.b.expired(start, Budget::Expect)
            {
                break;
            }
            self.b.tick();
            self.reap_now();
        }
        self.quiet();
        self.stream_bytes(ud) >= n
    }

    /// A copy of the bytes received so far by stream `ud`.
    pub fn stream_data(&mut self, ud: u64) -> Vec<u8> {
        self.service_streams();
        self.streams
            .get(&ud)
            .map(|s| s.bytes.clone())
            .unwrap_or_default()
    }

    /// The bytes received so far by stream `ud`.
    pub fn stream_bytes(&mut self, ud: u64) -> usize {
        self.service_streams();
        self.streams.get(&ud).map_or(0, |s| s.bytes.len())
    }
}

fn run_token(k: usize, b: usize, class: &str) -> String {
    format!("data({b} B in {k}){class}+B")
}

fn flush_run(s: &mut Stream) {
    if let Some((k, b, cl)) = s.run.take() {
        s.tokens.push(run_token(k, b, &cl));
    }
}

/// `data(N B in K)` → `data(N B)` (drops the CQE count).
fn strip_count(t: &str) -> String {
    match (t.find(" B in "), t.find(')')) {
        (Some(i), Some(j)) if t.starts_with("data(") && i < j => {
            format!("{} B{}", &t[..i], &t[j..])
        }
        _ => t.to_string(),
    }
}

/// `+M`, `+B<bid>`, ... for the CQE flags (F_SOCK_NONEMPTY masked).
pub fn flags_token(flags: u32) -> String {
    let mut s = String::new();
    if flags & abi::IORING_CQE_F_MORE != 0 {
        s.push_str("+M");
    }
    if flags & abi::IORING_CQE_F_BUFFER != 0 {
        s.push_str(&format!("+B{}", flags >> abi::IORING_CQE_BUFFER_SHIFT));
    }
    if flags & abi::IORING_CQE_F_NOTIF != 0 {
        s.push_str("+NOTIF");
    }
    if flags & abi::IORING_CQE_F_BUF_MORE != 0 {
        s.push_str("+BUF_MORE");
    }
    let known = abi::IORING_CQE_F_MORE
        | abi::IORING_CQE_F_BUFFER
        | abi::IORING_CQE_F_NOTIF
        | abi::IORING_CQE_F_BUF_MORE
        | abi::IORING_CQE_F_SOCK_NONEMPTY;
    let other = if flags & abi::IORING_CQE_F_BUFFER != 0 {
        flags & 0xffff & !known
    } else {
        flags & !known
    };
    if other != 0 {
        s.push_str(&format!("+{other:#x}"));
    }
    s
}

/// A poll mask as `POLLIN|POLLOUT`.
pub fn poll_mask(m: u32) -> String {
    let names: [(u32, &str); 9] = [
        (libc::POLLIN as u32, "POLLIN"),
        (libc::POLLPRI as u32, "POLLPRI"),
        (libc::POLLOUT as u32, "POLLOUT"),
        (libc::POLLERR as u32, "POLLERR"),
        (libc::POLLHUP as u32, "POLLHUP"),
        (libc::POLLRDNORM as u32, "POLLRDNORM"),
        (libc::POLLWRNORM as u32, "POLLWRNORM"),
        (libc::POLLRDHUP as u32, "POLLRDHUP"),
        (libc::POLLWRBAND as u32, "POLLWRBAND"),
    ];
    let mut v: Vec<String> = names
        .iter()
        .filter(|(b, _)| m & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let rest = names.iter().fold(m, |acc, (b, _)| acc & !b);
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}
