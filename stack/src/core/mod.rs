//! The NIC-independent core of the engine: every table and every executor,
//! compiled once whatever the NIC. Its parts own their state and know
//! nothing of each other's internals:
//!
//! - connection slots, the 4-tuple map, timers, ready and dirty sets ([`conns`]);
//! - listeners, backlogs, accept queues ([`listen`]);
//! - socket numbers and ports ([`fds`]);
//! - registered files and buffers, `io_uring_register` ([`rsrc`]);
//! - the op slab and the per-socket op lists ([`ops`], owned by the sink);
//! - the completion sink, every way a CQE leaves ([`complete`]);
//! - link chains and drain, as a state machine ([`links`]);
//! - the TIMEOUT/LINK_TIMEOUT heap and counted timeouts ([`timeouts`]);
//! - provided-buffer groups ([`bufs`]);
//! - neighbours ([`arp`]);
//! - typed requests: every SQE field check, once ([`request`]).
//!
//! The executors (`submit`, `sockets`, `rw`, `poll`, `service`, `demux`,
//! and the timeout executors) are methods of [`Core`] that take these parts
//! by field and return outcomes; none calls back into the engine above. The
//! engine (`crate::engine`) decides the order of a step's stages, and the
//! NIC pump (`crate::net`) moves frames between the NIC and this core.

pub(crate) mod arp;
pub(crate) mod bufs;
pub(crate) mod claims;
pub(crate) mod complete;
pub(crate) mod conns;
pub(crate) mod cookies;
mod demux;
pub(crate) mod fds;
pub(crate) mod links;
pub(crate) mod listen;
mod msg;
pub(crate) mod ops;
mod poll;
pub(crate) mod recovery;
pub(crate) mod request;
pub(crate) mod rsrc;
mod rw;
mod service;
mod sockets;
pub(crate) mod sockopt;
mod submit;
pub(crate) mod timeouts;

use std::net::Ipv4Addr;

use ringline_dataplane::MacAddr;
use smoltcp::iface::Interface;
use smoltcp::time::Instant;

use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::errno::{self, Errno};
use crate::ids::{ConnId, OpId};
use crate::stats::EngineStats;

pub(crate) use demux::{peek_tuple as demux_peek_tuple, CookieSyn, CookieSynAck, Ingress};
use request::Submission;

/// Our addresses and the route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Host {
    pub(crate) ip: Ipv4Addr,
    pub(crate) mac: MacAddr,
    netmask: u32,
    gateway: Option<Ipv4Addr>,
}

impl Host {
    pub(crate) fn new(
        ip: Ipv4Addr,
        prefix_len: u8,
        mac: MacAddr,
        gateway: Option<Ipv4Addr>,
    ) -> Self {
        let netmask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - prefix_len)
        };
        Host {
            ip,
            mac,
            netmask,
            gateway,
        }
    }

    /// Whether `ip` is on our subnet.
    #[inline]
    pub(crate) fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.netmask) == (u32::from(self.ip) & self.netmask)
    }

    /// Where a packet for `ip` goes first: itself, or the gateway.
    #[inline]
    pub(crate) fn next_hop(&self, ip: Ipv4Addr) -> Ipv4Addr {
        match self.gateway {
            Some(gw) if !self.on_link(ip) => gw,
            _ => ip,
        }
    }

    /// Whether a destination off our subnet can be reached.
    pub(crate) fn has_gateway(&self) -> bool {
        self.gateway.is_some()
    }
}

/// How far a parked op got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Completed (final CQE posted, op freed).
    Done,
    /// Still waiting.
    Wait,
    /// Did its share of work this step; continue next step.
    Yield,
}

/// What an executor did with its request: `Ok(Some((res, flags)))`:
/// complete now; `Ok(None)`: parked (or completed by the executor itself);
/// `Err(errno)`: complete now with the error.
pub(crate) type OpResult = Result<Option<(i32, u32)>, Errno>;

/// See the module docs.
pub(crate) struct Core {
    pub(crate) cfg: EngineConfig,
    /// Engine time of the current step, µs.
    pub(crate) now_us: u64,
    /// When the buffer reclaimer next runs ([`Core::reclaim_buffers`]).
    pub(crate) reclaim_due_us: u64,
    /// Where absolute TIMEOUT times are read (the driver's clock).
    pub(crate) clock: Clock,
    /// smoltcp's interface: IP configuration and the TCP context.
    pub(crate) iface: Interface,
    pub(crate) host: Host,
    pub(crate) cq: complete::Completer,
    pub(crate) conns: conns::Conns,
    pub(crate) listeners: listen::Listeners,
    pub(crate) fds: fds::Fds,
    pub(crate) files: rsrc::Files,
    pub(crate) regbufs: rsrc::RegBufs,
    pub(crate) links: links::Links,
    pub(crate) timeouts: timeouts::Timeouts,
    pub(crate) bufs: bufs::BufGroups,
    pub(crate) neigh: arp::Neighbors,
    /// This engine's queue and the number of queues (engines) on its port:
    /// `(0, 1)` alone, else set by `Engine::join`. An active open's source
    /// port is picked so its flow hashes to this queue.
    pub(crate) rss: (u16, u16),
    /// Engines sharing a port with other applications' (`ringline serve`):
    /// the table of listening ports across them. `None` alone.
    pub(crate) claim: Option<claims::Claim>,
    /// The SYN cookie key.
    pub(crate) cookies: cookies::SynCookies,
    /// Counters of the core's own events (the sink and the connection
    /// table count theirs; [`Core::stats`] adds them up).
    pub(crate) stats: EngineStats,
    /// Scratch list for cancel's matches.
    found: Vec<OpId>,
    /// The generations of `found`'s ops, for a caller that completes them
    /// one by one (completing one can end others: a linked timeout, the
    /// rest of a chain; their slots may even be reused meanwhile).
    found_gen: Vec<u32>,
    /// Connections and listeners whose socket numbers were closed with
    /// requests still in flight: closed when their last request completes
    /// (as Linux keeps a file open while io_uring requests hold it).
    closing: Vec<ConnId>,
    closing_listeners: Vec<crate::ids::ListenerId>,
    /// This ring among the process's rings (`IORING_OP_MSG_RING`).
    pub(crate) rings: crate::msgring::Rings,
    /// Scratch list for the messages other rings sent.
    msgs: Vec<crate::msgring::Msg>,
    /// Whether the request being issued was released by its chain or a
    /// drain barrier rather than taken from the SQ (Linux issues those
    /// from task work; MSG_RING to itself orders its CQEs by it).
    pub(crate) released: bool,
    /// An SQE of this submission that links to no next one failed its prep
    /// checks (a lone SQE, or a chain's last): without
    /// `EngineConfig::submit_all` the submission stops after it.
    pub(crate) prep_failed: bool,
}

impl Core {
    pub(crate) fn new(
        cfg: EngineConfig,
        cq: complete::Completer,
        iface: Interface,
        mac: MacAddr,
        clock: Clock,
        now_us: u64,
        arena: crate::bufmem::BufArena,
    ) -> Result<Self, Errno> {
        // This ring among the process's (EEXIST: `ring_fd` names a live one).
        let rings = crate::msgring::Rings::register(cfg.ring_fd)?;
        let n = cfg.prealloc_connections.min(cfg.max_connections);
        Ok(Core {
            now_us,
            reclaim_due_us: now_us,
            clock,
            iface,
            host: Host::new(cfg.ip, cfg.prefix_len, mac, cfg.gateway),
            cq,
            conns: conns::Conns::new(&cfg, now_us, arena),
            listeners: listen::Listeners::default(),
            fds: {
                let mut f = fds::Fds::new(cfg.seed, n, cfg.socket_numbers.as_ref());
                f.default_opts = sockopt::SockOpts::from_config(&cfg);
                f
            },
            files: rsrc::Files::default(),
            regbufs: rsrc::RegBufs::default(),
            links: links::Links::default(),
            timeouts: timeouts::Timeouts::default(),
            bufs: bufs::BufGroups::default(),
            neigh: arp::Neighbors::new(&cfg.static_neighbors),
            rss: (0, 1),
            claim: None,
            cookies: cookies::SynCookies::default(),
            stats: EngineStats::default(),
            found: Vec::new(),
            found_gen: Vec::new(),
            closing: Vec::new(),
            closing_listeners: Vec::new(),
            rings,
            msgs: Vec::new(),
            released: false,
            prep_failed: false,
            cfg,
        })
    }

    /// smoltcp's time for this step.
    #[inline]
    pub(crate) fn instant(&self) -> Instant {
        Instant::from_micros(self.now_us as i64)
    }

    /// All counters.
    /// The buffer reclaimer's turn (once a millisecond; see
    /// `Conns::reclaim_some`): 16 connection slots looked at.
    #[cold]
    #[inline(never)]
    pub(crate) fn reclaim_buffers(&mut self) {
        self.reclaim_due_us = self.now_us + 1000;
        let (trimmed, forced) = self.conns.reclaim_some(self.now_us, 16);
        self.stats.buffer_trims += trimmed;
        self.stats.buffer_pressure_trims += forced;
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.cqes = self.cq.cqes;
        s.op_errors = self.cq.op_errors;
        s.op_cancelled = self.cq.op_cancelled;
        s.op_timeouts = self.cq.op_timeouts;
        s.conns_created = self.conns.created;
        s.conns_freed = self.conns.freed;
        s.conns_live = self.conns.live() as u64;
        s.ops_in_flight = self.cq.ops.live() as u64;
        s.arp_shared = self.neigh.shared_in;
        s.buffer_queued = self.conns.queued as u64;
        s.buffer_queued_peak = self.conns.queued_peak as u64;
        s.buffer_committed = self.conns.committed as u64;
        s
    }

    /// Takes the neighbours sibling engines learned, waking the connections
    /// that waited for one.
    pub(crate) fn take_shared_neighbors(&mut self) {
        if self.neigh.take_shared(self.now_us) {
            let wake = self.neigh.take_waiting();
            for &cid in &wake {
                self.conns.mark_dirty(cid);
            }
            self.neigh.done_waking(wake);
        }
    }

    /// Posts what other rings sent with MSG_RING (one atomic load when
    /// nothing came). Returns how many.
    #[inline]
    pub(crate) fn take_messages(&mut self) -> usize {
        self.rings.take(&mut self.msgs);
        for m in &self.msgs {
            self.cq.post(m.user_data, m.res, m.flags);
        }
        self.msgs.len()
    }

    /// Whether the CQ overflow backlog reached `max_cq_backlog`.
    #[inline]
    pub(crate) fn backlog_full(&self) -> bool {
        self.cq.ring.backlog_len() >= self.cfg.max_cq_backlog
    }

    /// Whether connections wait for service or egress.
    pub(crate) fn has_pending_work(&self) -> bool {
        self.conns.has_work()
    }

    /// The connection socket number `fd` names.
    pub(crate) fn conn_of(&self, fd: i32) -> Result<ConnId, Errno> {
        match self.fds.get(fd) {
            None => Err(errno::EBADF),
            Some(fds::Fd::Conn(cid)) => Ok(cid),
            Some(_) => Err(errno::ENOTCONN),
        }
    }

    /// Finishes every op waiting on `cid` with `-errno`.
    pub(crate) fn cancel_conn_ops(&mut self, cid: ConnId, e: Errno) {
        while let Some(id) = self.cq.ops.conn(cid).any() {
            self.cq.fail(id, e);
        }
    }

    /// Frees connection `cid`: its ops are cancelled first, then the slot
    /// (tuple, timer, socket) goes.
    pub(crate) fn release_conn(&mut self, cid: ConnId) {
        if !self.conns.is_live(cid) {
            return;
        }
        self.cancel_conn_ops(cid, errno::ECANCELED);
        self.conns.free(cid);
    }
}

impl Core {
    /// The first live op matching `pred`, in slab order (O(ops): cancel
    /// and timeout removal only, never the data path).
    pub(crate) fn find_op(&mut self, pred: impl FnMut(&ops::Op) -> bool) -> Option<OpId> {
        self.found.clear();
        self.cq.ops.find_all(&mut self.found, pred);
        self.found.first().copied()
    }

    /// Completes the request being issued now (it never became an op).
    pub(crate) fn complete(&mut self, sub: &Submission, res: i32, flags: u32) {
        let chain = self.links.issuing();
        self.cq
            .complete_now(sub.user_data, sub.flags, chain, res, flags);
    }

    /// Turns the request being issued into an op waiting on `owner`'s list;
    /// it heads its chain if it runs in one.
    #[inline]
    pub(crate) fn park(&mut self, sub: &Submission, kind: ops::OpKind, owner: ops::Owner) -> OpId {
        let ops = &mut self.cq.ops;
        let id = ops.insert(sub.user_data, sub.fd, kind);
        let op = ops.get_mut(id);
        op.sqe_flags = sub.flags;
        op.opcode = sub.opcode;
        op.chain = self.links.issuing();
        ops.push(id, owner);
        self.links.parked(id);
        id
    }
}
