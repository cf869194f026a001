//! The engine: one NIC port (the [`crate::net`] pump), one ring and the
//! NIC-independent [`crate::core`]. This file is the only place that decides
//! the order of a step's stages; read [`Engine::run_step`] for all of it.

use ringline_dataplane::Nic;
use ringline_ring::bufring::BufRingConsumer;
use ringline_ring::ring::{EngineRing, RingStats};

use crate::bufmem::BufArena;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::core::complete::Completer;
use crate::core::ops::Ops;
use crate::core::Core;
use crate::errno::Errno;
use crate::net::Pump;
use crate::statpage::publish::{Publisher, Values};
use crate::stats::EngineStats;

/// Errors creating an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The NIC's MTU is too small for IPv4/TCP.
    #[error("NIC MTU {0} is too small (need at least 576)")]
    MtuTooSmall(usize),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The socket buffers' address space could not be reserved.
    #[error("cannot reserve socket buffers ({max} connections x {per} bytes): {err}")]
    Buffers {
        /// `max_connections`.
        max: usize,
        /// `rx_buffer + tx_buffer`.
        per: usize,
        /// The `mmap` error.
        err: String,
    },
    /// The shared-memory counters page (`EngineConfig::stat`) could not be
    /// created.
    #[error("cannot create the stat page in /dev/shm: {0}")]
    StatPage(String),
}

impl<N: Nic> Drop for Engine<N> {
    /// Gives the socket numbers back to the hook, if there is one: the
    /// sockets go with the engine.
    fn drop(&mut self) {
        self.core.fds.release_all();
    }
}

/// Largest socket buffer a connection may have (each way).
const MAX_BUFFER: usize = 64 << 20;

/// The engine. Generic over the NIC only through its pump.
pub(crate) struct Engine<N: Nic> {
    core: Core,
    pump: Pump<N>,
    /// The shared-memory counters page (`EngineConfig::stat`).
    stat: Option<Box<Publisher>>,
}

impl<N: Nic> Engine<N> {
    /// An engine on `nic`, completing into `ring`, with time from `clock`.
    pub(crate) fn new(
        nic: N,
        ring: EngineRing,
        cfg: EngineConfig,
        clock: Clock,
    ) -> Result<Self, EngineError> {
        let mtu = nic.caps().mtu;
        if mtu < 576 {
            return Err(EngineError::MtuTooSmall(mtu));
        }
        let buffers = 1024..=MAX_BUFFER;
        if cfg.prefix_len > 32
            || !buffers.contains(&cfg.rx_buffer)
            || !buffers.contains(&cfg.tx_buffer)
        {
            return Err(EngineError::Config(
                "prefix_len <= 32, buffers of 1024 bytes to 64 MiB",
            ));
        }
        if cfg.stat
            && (cfg.stat_interval.is_zero()
                || cfg.stat_connections > crate::statpage::MAX_CONN_ROWS)
        {
            return Err(EngineError::Config(
                "stat_interval must be > 0 and stat_connections at most 65536",
            ));
        }
        if cfg.rx_budget == 0 {
            return Err(EngineError::Config("rx_budget must be > 0"));
        }
        if let Some(gw) = cfg.gateway {
            let host = crate::core::Host::new(cfg.ip, cfg.prefix_len, [0; 6], None);
            if !host.on_link(gw) || gw == cfg.ip {
                // Linux refuses such a route too (`ip route add default via`
                // an unreachable address: "Nexthop has invalid gateway").
                return Err(EngineError::Config(
                    "the gateway must be another address on the engine's subnet",
                ));
            }
        }
        let arena =
            BufArena::new(cfg.max_connections, cfg.rx_buffer, cfg.tx_buffer).map_err(|e| {
                EngineError::Buffers {
                    max: cfg.max_connections,
                    per: cfg.rx_buffer + cfg.tx_buffer,
                    err: e.to_string(),
                }
            })?;
        let stat = if cfg.stat {
            let interval = u64::try_from(cfg.stat_interval.as_micros()).unwrap_or(u64::MAX);
            let p = Publisher::create(cfg.stat_connections, interval, (0, 1))
                .map_err(|e| EngineError::StatPage(e.to_string()))?;
            Some(Box::new(p))
        } else {
            None
        };
        let now_us = clock.now_us();
        let (pump, iface) = Pump::new(nic, &cfg, now_us);
        let ops = Ops::with_capacity(ring.sq_entries() as usize * 4);
        let cq = Completer::new(ring, ops);
        let core = Core::new(cfg, cq, iface, pump.mac(), clock, now_us, arena)
            .map_err(|_| EngineError::Config("ring_fd names a live ring of this process"))?;
        Ok(Engine { core, pump, stat })
    }

    /// Joins a group of engines sharing a port ([`crate::open_in_group`]).
    pub(crate) fn join(&mut self, member: crate::group::GroupMember) {
        self.core.rss = (member.queue, member.queues);
        if let Some(p) = &self.stat {
            p.set_queue(member.queue, member.queues);
        }
        self.core.neigh.join(member.share);
    }

    /// Joins the engines of other applications on one port (`ringline
    /// serve`): a group member as [`Engine::join`], and the port's table of
    /// listening ports, in which this engine is `slot`.
    pub(crate) fn join_shared(
        &mut self,
        member: crate::group::GroupMember,
        table: std::sync::Arc<crate::core::claims::PortClaims>,
        slot: u8,
    ) {
        self.join(member);
        self.core.claim = Some(crate::core::claims::Claim { table, slot });
    }

    /// Leaves the group (hands back its member, for the slot's next engine)
    /// and releases every port this engine listened on.
    pub(crate) fn leave(&mut self) -> crate::group::GroupMember {
        if let Some(c) = self.core.claim.take() {
            c.table.release_all(c.slot);
        }
        let (queue, queues) = self.core.rss;
        crate::group::GroupMember {
            queue,
            queues,
            share: self.core.neigh.leave(),
        }
    }

    /// Closes everything the application had open, as Linux does when a
    /// process exits ([`Core::exit_all`]).
    pub(crate) fn exit_all(&mut self) {
        self.core.exit_all();
    }

    /// Connections still in a slot (open, closing, orphaned).
    pub(crate) fn live_conns(&self) -> usize {
        self.core.conns.live()
    }

    /// The NIC.
    pub(crate) fn nic(&self) -> &N {
        &self.pump.nic
    }

    /// The NIC, mutably (for tests that reach into the wire).
    pub(crate) fn nic_mut(&mut self) -> &mut N {
        &mut self.pump.nic
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> EngineStats {
        stats_of(&self.core, &self.pump)
    }

    /// The shared-memory counters page, if the engine publishes one.
    pub(crate) fn stat_path(&self) -> Option<&std::path::Path> {
        self.stat.as_deref().map(Publisher::path)
    }

    /// Whether submission is refused: the CQ overflow backlog is at its cap
    /// and SQEs wait.
    pub(crate) fn submit_refused(&self) -> bool {
        self.core.backlog_full() && self.core.cq.ring.sq_ready() > 0
    }

    /// SQEs consumed so far.
    #[inline]
    pub(crate) fn sqes(&self) -> u64 {
        self.core.stats.sqes
    }

    /// CQEs posted so far (64-bit).
    pub(crate) fn stats_cqes(&self) -> u64 {
        self.core.cq.cqes
    }

    /// Ring statistics (memory backing, overflow backlog).
    pub(crate) fn ring_stats(&self) -> RingStats {
        self.core.cq.ring.stats()
    }

    /// What an operator sees of the engine's application (`ringline serve`'s
    /// per-application view): listeners, requests in flight, ring indices.
    /// A few loads; no scan.
    pub(crate) fn app_view(&self) -> AppView {
        AppView {
            listeners: self.core.listeners.len(),
            in_flight: self.core.cq.ops.live(),
            ring: self.core.cq.ring.positions(),
            cq_overflowed: self.core.cq.ring.stats().overflowed_total,
            max_sockets: self.core.cfg.max_connections,
        }
    }

    /// CQEs posted and not yet consumed by the application.
    pub(crate) fn cq_ready(&self) -> u32 {
        self.core.cq.ring.cq_ready()
    }

    /// Registers a provided-buffer ring for group `bgid`
    /// (`IORING_REGISTER_PBUF_RING`). `EEXIST` if the group exists.
    pub(crate) fn register_buf_ring(
        &mut self,
        bgid: u16,
        ring: BufRingConsumer,
    ) -> Result<(), Errno> {
        self.core.bufs.register(bgid, ring)
    }

    /// Closes socket number `fd` as IORING_OP_CLOSE would (the socket
    /// closes once its requests in flight complete). `EBADF` if it is not
    /// a socket of this engine.
    pub(crate) fn close_socket(&mut self, fd: i32) -> Result<(), Errno> {
        self.core.close_fd(fd).map(|_| ())
    }

    /// Shuts socket `fd` down as SHUTDOWN would (`shutdown()` in
    /// `libringline`): `EINVAL` for an unknown `how`, `ENOTCONN` for a socket
    /// that is not connected, `EBADF` if `fd` is not a socket of this engine.
    pub(crate) fn shutdown_socket(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        let how = crate::core::request::ShutdownHow::from_raw(how).ok_or(Errno(libc::EINVAL))?;
        self.core.shutdown_fd(fd, how).map(|_| ())
    }

    /// Sets option `level`/`name` of socket `fd` to `val`, as SETSOCKOPT
    /// would after its argument checks (`setsockopt()` in `libringline`).
    /// `EBADF` if `fd` is not a socket of this engine.
    pub(crate) fn set_socket_option(
        &mut self,
        fd: i32,
        level: i32,
        name: i32,
        val: i32,
    ) -> Result<(), Errno> {
        let what = self.core.fds.get(fd).ok_or(Errno(libc::EBADF))?;
        self.core.set_option(fd, what, level, name, val)
    }

    /// `io_uring_register(2)` for registered files and buffers and the
    /// probe (see `Driver::register`; `arg` is application memory, read
    /// through `usermem`).
    pub(crate) fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> Result<u32, Errno> {
        self.core.register(opcode, arg, nr_args)
    }

    /// Unregisters group `bgid`'s buffer ring: `ENOENT` if there is no such
    /// group, `EINVAL` if it is a legacy one (Linux's errnos).
    pub(crate) fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.core.bufs.unregister(bgid)
    }

    /// Runs one iteration at engine time `now_us` (µs, monotonic). Returns
    /// whether anything happened (SQEs taken, frames received or sent,
    /// connections sent for) or work is still queued.
    pub(crate) fn step(&mut self, now_us: u64) -> bool {
        self.run_step(now_us, None, true)
    }

    /// [`Engine::step`] with `rx`. Without it, the step for an
    /// `io_uring_enter` without `IORING_ENTER_GETEVENTS` on a ring set up
    /// with `IORING_SETUP_DEFER_TASKRUN`: the SQEs are issued (those that
    /// can complete at once do, as the kernel's inline issue), timers and
    /// egress run, but no frame is taken from the NIC. In the kernel, what
    /// arriving data completes (a multishot receive taking a provided
    /// buffer, a poll firing) is task work that such a ring runs only when
    /// the application asks for events; a program that submits while it
    /// walks its CQEs relies on that (a new receive cannot take a buffer
    /// that the CQEs it has not yet handled will give back).
    #[inline]
    pub(crate) fn step_with(&mut self, now_us: u64, rx: bool) -> bool {
        self.run_step(now_us, None, rx)
    }

    /// One step for a caller waiting for `want` CQEs (the inline driver's
    /// wait loop). It takes SQEs, frames and the completions they cause as
    /// [`Engine::step`] does; if that brings the CQ to `want`, it returns
    /// there and leaves timers and egress to the next step, which the
    /// caller's next `enter` runs, as io_uring's `DEFER_TASKRUN` leaves task
    /// work to the next `io_uring_enter`. Frames that input itself produced
    /// (replies paired with received frames) still go out now.
    ///
    /// The completion reaches the application one egress pass sooner, and the
    /// egress for the delayed ACK merges with the egress of the reply the
    /// application is about to send: one pass over the connection, not two.
    pub(crate) fn step_wait(&mut self, now_us: u64, want: u32) -> bool {
        self.run_step(now_us, Some(want), true)
    }

    /// One step, every stage in order:
    ///
    /// 1. flush the CQ overflow backlog; take the SQEs and issue them
    ///    (`Core::process_sqes`), then what a drain barrier releases;
    /// 2. take up to `rx_budget` frames from the NIC and feed each to its
    ///    connection's socket (`Pump::poll_rx`; not without `rx`, see
    ///    [`Engine::step_with`]);
    /// 3. service the connections the frames touched (`Core::run_ready`:
    ///    accepts, receives, sends, polls, connects);
    /// 4. (waiting for `want` CQEs: advance chains and drain, and if the CQ
    ///    now has `want`, stop here, flushing what input produced; see
    ///    [`Engine::step_wait`]);
    /// 5. fire due timers: per-connection (the wheel) and TIMEOUTs; close
    ///    the sockets CLOSE left open whose last request has completed;
    /// 6. egress for the dirty connections (`Pump::run_egress`), service
    ///    what egress changed;
    /// 7. advance link chains and drain, counted TIMEOUTs;
    /// 8. one TX burst; flush the overflow backlog again.
    fn run_step(&mut self, now_us: u64, want: Option<u32>, rx: bool) -> bool {
        let Engine { core, pump, stat } = self;
        core.now_us = now_us.max(core.now_us);
        core.stats.steps += 1;
        // The only per-step cost of the stat page: one comparison.
        if let Some(p) = stat {
            if core.now_us >= p.due_us {
                publish_stat(p, core, pump);
            }
        }
        core.cq.ring.flush_overflow();
        if core.neigh.shared_pending() {
            core.take_shared_neighbors();
        }
        let msgs = core.take_messages();
        let sqes = core.process_sqes() + msgs;
        core.run_drain();
        let frames = if rx { pump.poll_rx(core) } else { 0 };
        core.run_ready();
        if let Some(want) = want {
            // Requests completed by this input may release linked or drained
            // SQEs; settle them before judging whether the caller has enough.
            core.pump_chains();
            core.run_drain();
            if core.cq.ring.cq_ready() >= want {
                core.stats.deferred_egress += 1;
                pump.nic.tx_flush();
                return true;
            }
        }
        core.conns.expire_timers(core.now_us);
        if core.now_us >= core.reclaim_due_us {
            core.reclaim_buffers();
        }
        core.expire_timeouts();
        core.finish_closes();
        let egressed = pump.run_egress(core);
        core.run_ready();
        core.pump_chains();
        core.run_drain();
        if core.timeouts.has_counted() {
            core.check_counted_timeouts();
            core.pump_chains();
        }
        let sent = pump.nic.tx_flush();
        core.cq.ring.flush_overflow();
        sqes + frames + egressed + sent > 0 || core.has_pending_work()
    }

    /// The number this engine's ring is known by to MSG_RING.
    pub(crate) fn ring_fd(&self) -> i32 {
        self.core.rings.number()
    }

    /// Before a sleep: MSG_RING senders will wake `w`. Returns whether a
    /// message is already waiting (then do not sleep).
    pub(crate) fn arm_messages(&self, w: &std::task::Waker) -> bool {
        self.core.rings.arm(w)
    }

    /// After a sleep.
    pub(crate) fn disarm_messages(&self) {
        self.core.rings.disarm();
    }

    /// Whether the engine has immediate work queued (ready or dirty connections).
    pub(crate) fn has_pending_work(&self) -> bool {
        self.core.has_pending_work()
    }

    /// Whether a step now would have nothing to do but look at the timers:
    /// no frame waiting at the NIC (as far as [`Nic::rx_pending`] can tell),
    /// no SQE, no connection to service or send, no CQE in the overflow
    /// backlog. A few loads; the driver's wait loop asks it between steps.
    pub(crate) fn quiet(&self) -> bool {
        let ring = &self.core.cq.ring;
        !self.has_pending_work()
            && !self.pump.nic.rx_pending()
            && ring.sq_ready() == 0
            && ring.backlog_len() == 0
            && !self.core.neigh.shared_pending()
    }

    /// Whether a driver may block now, right after a step that did nothing:
    /// no connection to serve or send for, no SQE, and no CQE in the overflow
    /// backlog unless the CQ is full (only the application's reaping can
    /// move those, and it enters to do so). The NIC is not asked
    /// ([`Nic::rx_pending`] says "maybe" on a NIC that cannot tell, DPDK's):
    /// the step just found no frame, and [`Nic::rx_arm`] checks again.
    pub(crate) fn sleepable(&self) -> bool {
        let ring = &self.core.cq.ring;
        !self.has_pending_work()
            && ring.sq_ready() == 0
            && (ring.backlog_len() == 0 || ring.cq_space() == 0)
    }

    /// CQEs published to the CQ so far (free-running): a driver compares two
    /// readings to learn whether a step completed anything.
    #[inline]
    pub(crate) fn cq_posted(&self) -> u32 {
        self.core.cq.ring.cq_posted()
    }

    /// SQPOLL, before sleeping: sets `IORING_SQ_NEED_WAKEUP` and re-checks the
    /// SQ (the ring's Dekker handshake); `false` if SQEs arrived meanwhile.
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.core.cq.ring.prepare_sleep()
    }

    /// SQPOLL, on waking: clears `IORING_SQ_NEED_WAKEUP`.
    pub(crate) fn clear_need_wakeup(&self) {
        self.core
            .cq
            .ring
            .clear_sq_flag(ringline_ring::abi::IORING_SQ_NEED_WAKEUP);
    }

    /// Counts one blocked sleep of `us` µs, `woken` early or not.
    pub(crate) fn note_sleep(&mut self, us: u64, woken: bool) {
        let s = &mut self.core.stats;
        s.idle_sleeps += 1;
        s.idle_sleep_us += us;
        s.idle_wakeups += u64::from(woken);
    }

    /// When the engine next has timer work (engine µs), if it has nothing to
    /// do now: the earliest connection timer or TIMEOUT; the current time if
    /// it has work now (connections to serve or send for, SQEs; see
    /// [`Engine::sleepable`]: whether a frame waits at the NIC is the NIC's
    /// to say when the driver arms it); `None` if only a frame or an SQE can
    /// wake it. A driver may sleep (or block on the NIC) until then. Not for
    /// the hot path: it scans the timer wheel's slots.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if !self.sleepable() {
            return Some(self.core.now_us);
        }
        let wheel = self.core.conns.timers.next_deadline_us();
        let heap = self.core.timeouts.next_at();
        match (wheel, heap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// [`Engine::app_view`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AppView {
    pub(crate) listeners: usize,
    pub(crate) in_flight: usize,
    pub(crate) ring: ringline_ring::ring::RingPositions,
    pub(crate) cq_overflowed: u64,
    pub(crate) max_sockets: usize,
}

/// The engine's counters from its core and its pump.
fn stats_of<N: Nic>(core: &Core, pump: &Pump<N>) -> EngineStats {
    let mut s = core.stats();
    s.rx_frames = pump.rx_frames;
    s.tx_segments = pump.tx.segments;
    s.tx_dropped = pump.tx.dropped;
    s.tx_full = pump.tx.full;
    s.resends_skipped = pump.tx.skipped;
    s.resends_trimmed = pump.tx.trimmed;
    s.sack_blocks_added = pump.tx.sack_blocks_added;
    s.dsacks_sent = pump.tx.dsacks;
    s.arp_tx = pump.arp_tx;
    s
}

/// The stat page's work when due (see `statpage::publish`): the counters
/// every `stat_interval`, a look for a connection-table request every
/// millisecond, and while a walk is on, up to `WALK_PER_STEP` connection
/// slots. Out of line: most steps only compare the due time.
#[cold]
#[inline(never)]
fn publish_stat<N: Nic>(p: &mut Publisher, core: &Core, pump: &Pump<N>) {
    let now = core.now_us;
    if p.counters_due(now) {
        let stats = stats_of(core, pump);
        let nic = pump.nic.counters();
        let ring = core.cq.ring.stats();
        let values = Values {
            stats: &stats,
            nic: &nic,
            ring: &ring,
        };
        p.publish_counters(&values, now, crate::clock::thread_cpu_us());
    }
    if p.poll_request(now) {
        let ip = core.host.ip;
        p.walk(core.conns.slots(), core.conns.live(), now, |slot| {
            core.conns.describe(slot, ip, now)
        });
    }
    p.reschedule(now);
}
