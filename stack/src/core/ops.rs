//! In-flight requests: a slab of [`Op`]s and the intrusive FIFO lists that
//! hang them on the socket they wait for. The list heads live here too
//! (per connection: receives, sends, polls, the connect; per listener:
//! accepts, polls), so unlinking an op needs nothing but this table: the
//! completion sink finishes any op without reaching into connections or
//! listeners. Push, pop and unlink are O(1); the slab keeps its memory, so
//! steady-state traffic does not allocate.

use crate::ids::{ChainId, ConnId, OpId};
use crate::slab::Slab;

/// Where a parked op is linked, so it can be unlinked in O(1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Not on any list.
    None,
    /// A connection's receive waiters.
    Recv(ConnId),
    /// A connection's send waiters.
    Send(ConnId),
    /// A connection's pollers.
    ConnPoll(ConnId),
    /// A connection's pending connect.
    Connect(ConnId),
    /// A listener's accept waiters (listener slot).
    Accept(u32),
    /// A listener's pollers (listener slot).
    ListenPoll(u32),
    /// Armed timeouts (on the timeout heap, not on a list).
    Timeout,
}

/// What a parked op is waiting to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// ACCEPT, single or multishot.
    Accept {
        /// `IORING_ACCEPT_MULTISHOT`.
        multishot: bool,
        /// `IORING_ACCEPT_DONTWAIT`: a multishot ends with `-EAGAIN` once it
        /// has emptied the queue.
        dontwait: bool,
        /// Into a direct descriptor (see [`super::request::Accept::direct`]).
        direct: Option<super::request::Direct>,
        /// `struct sockaddr *` to fill, or 0.
        addr: u64,
        /// `socklen_t *`, or 0.
        addrlen: u64,
    },
    /// RECV / READ / READV / RECVMSG.
    Recv {
        /// Buffer (0 with buffer select).
        addr: u64,
        /// Buffer length, or the per-CQE cap with buffer select (0 = none).
        len: u32,
        /// Buffer group when `IOSQE_BUFFER_SELECT`.
        group: Option<u16>,
        /// `IORING_RECV_MULTISHOT`.
        multishot: bool,
        /// Multishot RECV: bytes left of the total cap (`optlen`); 0: none.
        total: u32,
        /// `IORING_RECVSEND_BUNDLE`: a CQE may fill several ring buffers.
        bundle: bool,
        /// `msg_flags` (`MSG_WAITALL`, `MSG_PEEK`, `MSG_DONTWAIT`).
        msg_flags: u32,
        /// Bytes already received (MSG_WAITALL).
        done: u32,
        /// RECVMSG: number of iovecs at `addr` (0 = `addr` is a flat buffer).
        iovlen: u32,
        /// RECVMSG: the application's `struct msghdr *` (0 for RECV/READ).
        msg: u64,
        /// Multishot RECVMSG: bytes reserved before the payload in each
        /// buffer (`io_uring_recvmsg_out` + name + control); 0 otherwise.
        reserve: u32,
    },
    /// SEND / WRITE / SENDMSG / SEND_ZC.
    Send {
        /// Data.
        addr: u64,
        /// Length.
        len: u32,
        /// Bytes already queued (MSG_WAITALL, or a send larger than the space).
        done: u32,
        /// `MSG_WAITALL`: complete only when all is queued.
        waitall: bool,
        /// Zero-copy: whether a notification CQE follows, and what it says.
        zc: ZeroCopy,
        /// SENDMSG: number of iovecs at `addr` (0 = `addr` is a flat buffer).
        iovlen: u32,
        /// SEND with `IORING_RECVSEND_BUNDLE` and no buffer select: a
        /// result with data is posted with `F_MORE`, then a final 0 (Linux
        /// retries the bundle with nothing left to send).
        bundle: bool,
    },
    /// SEND with `IOSQE_BUFFER_SELECT`: the data is in provided buffers of
    /// `group`, sent in rounds; a round is one buffer, or with `bundle` the
    /// buffers the group held when it began (within `cap`), and ends with
    /// a CQE (`F_MORE` while a bundle's group still has buffers).
    SendBuf {
        group: u16,
        /// `IORING_RECVSEND_BUNDLE`.
        bundle: bool,
        /// `MSG_WAITALL` (implied by `bundle`): a round ends only when its
        /// buffers are all queued.
        waitall: bool,
        /// The round's byte cap (`len`, then none for a bundle's next rounds).
        cap: u32,
        /// Buffers left in this round (0: a round begins).
        nbufs: u16,
        /// Bytes of this round's whole buffers queued.
        sent: u32,
        /// Bytes of the current buffer queued.
        off: u32,
        /// The round's CQE flags: `F_BUFFER` and its first buffer's id.
        cflags: u32,
    },
    /// CONNECT in progress.
    Connect,
    /// POLL_ADD.
    Poll {
        /// Interest mask (`POLLIN`, ...), with ERR and HUP always added.
        events: u32,
        /// `IORING_POLL_ADD_MULTI`.
        multi: bool,
        /// `RINGLINE_POLL_COALESCED`: address of the application's ready word
        /// (0 for io_uring's own poll).
        word: u64,
    },
    /// TIMEOUT (a timer, maybe with a completion count or multishot).
    Timeout {
        /// Deadline, µs of engine time.
        at_us: u64,
        /// Multishot: µs between firings; 0 for a one-shot timer.
        interval_us: u64,
        /// Multishot: firings left (0 = unlimited).
        repeats: u32,
        /// `IORING_TIMEOUT_ETIME_SUCCESS`: firing does not break its link.
        etime_success: bool,
        /// Its clock, for an absolute update.
        clock: super::request::TimeoutClock,
    },
    /// LINK_TIMEOUT guarding the op `target`.
    LinkTimeout {
        /// Deadline, µs of engine time.
        at_us: u64,
        /// The linked request it cancels when it fires.
        target: OpId,
    },
}

/// What a SEND_ZC's notification says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZeroCopy {
    /// A plain send: no notification.
    No,
    /// A zero-copy send: a notification CQE follows the request's.
    Notify,
    /// `IORING_SEND_ZC_REPORT_USAGE`: the notification says the data was copied.
    ReportUsage,
}

/// One in-flight request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op {
    /// Echoed in its CQEs.
    pub(crate) user_data: u64,
    /// The socket number it was submitted on (`-1` when none).
    pub(crate) fd: i32,
    /// What it waits for.
    pub(crate) kind: OpKind,
    /// The list it is on.
    pub(crate) owner: Owner,
    /// The SQE's `IOSQE_*` flags.
    pub(crate) sqe_flags: u8,
    /// The SQE's opcode (for `IORING_ASYNC_CANCEL_OP`).
    pub(crate) opcode: u8,
    /// The link chain it heads.
    pub(crate) chain: Option<ChainId>,
    /// Its LINK_TIMEOUT op.
    pub(crate) link_timeout: Option<OpId>,
    prev: Option<OpId>,
    next: Option<OpId>,
    live: bool,
    /// Bumped each time the slot is reused, so a record that outlives its op
    /// (a counted TIMEOUT's entry) cannot mistake the slot's next op for it.
    gen: u32,
}

/// Head and tail of an intrusive FIFO of ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpList {
    head: Option<OpId>,
    tail: Option<OpId>,
}

impl OpList {
    /// Whether no op is on the list.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }
    /// First op, if any.
    pub(crate) fn front(&self) -> Option<OpId> {
        self.head
    }
}

/// The ops waiting on one connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnOps {
    /// Receives, in submission order.
    pub(crate) recv: OpList,
    /// Sends, in submission order.
    pub(crate) send: OpList,
    /// Polls.
    pub(crate) poll: OpList,
    /// The pending CONNECT.
    pub(crate) connect: Option<OpId>,
}

impl ConnOps {
    /// Any op still waiting on the connection.
    pub(crate) fn any(&self) -> Option<OpId> {
        self.recv
            .front()
            .or(self.send.front())
            .or(self.poll.front())
            .or(self.connect)
    }
}

/// The ops waiting on one listener.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ListenerOps {
    /// Accepts, in submission order.
    pub(crate) accept: OpList,
    /// Polls.
    pub(crate) poll: OpList,
}

/// The op slab and every op list.
#[derive(Default)]
pub(crate) struct Ops {
    slab: Slab<Op>,
    conns: Vec<ConnOps>,
    listeners: Vec<ListenerOps>,
}

impl Ops {
    /// A slab with room for `cap` ops before it grows.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Ops {
            slab: Slab::with_capacity(cap),
            conns: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// Number of in-flight ops.
    pub(crate) fn live(&self) -> usize {
        self.slab.live()
    }

    /// Stores a new op (not yet on a list).
    #[inline]
    pub(crate) fn insert(&mut self, user_data: u64, fd: i32, kind: OpKind) -> OpId {
        let op = Op {
            user_data,
            fd,
            kind,
            owner: Owner::None,
            sqe_flags: 0,
            opcode: 0,
            chain: None,
            link_timeout: None,
            prev: None,
            next: None,
            live: true,
            gen: 0,
        };
        let i = self.slab.insert_with(|old| Op {
            gen: old.map_or(0, |o| o.gen.wrapping_add(1)),
            ..op
        });
        OpId::from_index(i)
    }

    /// The generation of `id`'s slot: with the id, it names one op for good.
    pub(crate) fn gen(&self, id: OpId) -> u32 {
        self.get(id).gen
    }

    /// Whether `id` names a live op.
    pub(crate) fn is_live(&self, id: OpId) -> bool {
        self.slab.get(id.index()).is_some_and(|o| o.live)
    }

    /// The op at `id`.
    #[inline]
    pub(crate) fn get(&self, id: OpId) -> &Op {
        self.slab.at(id.index())
    }

    /// The op at `id`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: OpId) -> &mut Op {
        self.slab.at_mut(id.index())
    }

    /// Address of the op at `id` (for prefetching; `None` if out of range).
    pub(crate) fn addr(&self, id: OpId) -> Option<usize> {
        self.slab.get(id.index()).map(|o| o as *const Op as usize)
    }

    /// The ops waiting on connection `cid`.
    #[inline]
    pub(crate) fn conn(&self, cid: ConnId) -> &ConnOps {
        const NONE: ConnOps = ConnOps {
            recv: OpList {
                head: None,
                tail: None,
            },
            send: OpList {
                head: None,
                tail: None,
            },
            poll: OpList {
                head: None,
                tail: None,
            },
            connect: None,
        };
        self.conns.get(cid.index()).unwrap_or(&NONE)
    }

    /// Address of `cid`'s list heads (for prefetching).
    pub(crate) fn conn_addr(&self, cid: ConnId) -> Option<usize> {
        self.conns
            .get(cid.index())
            .map(|c| c as *const ConnOps as usize)
    }

    /// The ops waiting on listener slot `slot`.
    pub(crate) fn listener(&self, slot: u32) -> ListenerOps {
        self.listeners
            .get(slot as usize)
            .copied()
            .unwrap_or_default()
    }

    #[inline]
    fn conn_mut(&mut self, cid: ConnId) -> &mut ConnOps {
        let i = cid.index();
        if self.conns.len() <= i {
            self.grow_conns(i);
        }
        &mut self.conns[i]
    }

    /// Grows the per-connection list heads to cover slot `i` (a new
    /// connection slot; not on the data path).
    #[cold]
    fn grow_conns(&mut self, i: usize) {
        self.conns.resize(i + 1, ConnOps::default());
    }

    fn listener_mut(&mut self, slot: u32) -> &mut ListenerOps {
        let i = slot as usize;
        if self.listeners.len() <= i {
            self.listeners.resize(i + 1, ListenerOps::default());
        }
        &mut self.listeners[i]
    }

    /// The list `owner` names (none for a connect, an armed timeout or no
    /// owner).
    #[inline(always)]
    fn list_mut(&mut self, owner: Owner) -> Option<&mut OpList> {
        match owner {
            Owner::None | Owner::Timeout | Owner::Connect(_) => None,
            Owner::Recv(c) => Some(&mut self.conn_mut(c).recv),
            Owner::Send(c) => Some(&mut self.conn_mut(c).send),
            Owner::ConnPoll(c) => Some(&mut self.conn_mut(c).poll),
            Owner::Accept(l) => Some(&mut self.listener_mut(l).accept),
            Owner::ListenPoll(l) => Some(&mut self.listener_mut(l).poll),
        }
    }

    /// Puts `id` on the list `owner` names (at the back), or records it as
    /// a connection's connect or an armed timeout.
    #[inline]
    pub(crate) fn push(&mut self, id: OpId, owner: Owner) {
        if let Owner::Connect(c) = owner {
            self.conn_mut(c).connect = Some(id);
        }
        let list = self.list_mut(owner);
        let prev = list.and_then(|list| {
            let prev = list.tail;
            if prev.is_none() {
                list.head = Some(id);
            }
            list.tail = Some(id);
            prev
        });
        if let Some(p) = prev {
            self.get_mut(p).next = Some(id);
        }
        let op = self.get_mut(id);
        op.owner = owner;
        op.prev = prev;
        op.next = None;
    }

    /// Takes `id` off whatever list owns it, keeping it (tests: the engine
    /// finishes ops with [`Ops::take`]).
    #[cfg(test)]
    pub(crate) fn unlink(&mut self, id: OpId) {
        let Op {
            owner, prev, next, ..
        } = *self.get(id);
        self.detach(owner, prev, next);
        let op = self.get_mut(id);
        op.prev = None;
        op.next = None;
        op.owner = Owner::None;
    }

    /// Takes the op with neighbours `prev`/`next` off `owner`'s list.
    #[inline(always)]
    fn detach(&mut self, owner: Owner, prev: Option<OpId>, next: Option<OpId>) {
        if let Owner::Connect(c) = owner {
            self.conn_mut(c).connect = None;
        }
        if let Some(list) = self.list_mut(owner) {
            if prev.is_none() {
                list.head = next;
            }
            if next.is_none() {
                list.tail = prev;
            }
            if let Some(p) = prev {
                self.get_mut(p).next = next;
            }
            if let Some(n) = next {
                self.get_mut(n).prev = prev;
            }
        }
    }

    /// Unlinks and frees `id` in one go, returning it (the completion
    /// path: one copy of the op instead of one per step).
    pub(crate) fn take(&mut self, id: OpId) -> Op {
        let op = *self.get(id);
        debug_assert!(op.live);
        self.detach(op.owner, op.prev, op.next);
        self.get_mut(id).live = false;
        self.slab.release(id.index());
        op
    }

    /// The application closed the socket number the ops waiting on `cid`
    /// were submitted on: they keep running, but forget the number, so a
    /// later `IORING_ASYNC_CANCEL_FD` on it (perhaps a new socket by then)
    /// does not find them, as Linux matches the file, not the number.
    pub(crate) fn forget_fd_of_conn(&mut self, cid: ConnId) {
        let c = self.conn(cid);
        let (heads, connect) = ([c.recv.head, c.send.head, c.poll.head], c.connect);
        for head in heads {
            self.forget_fd_from(head);
        }
        if let Some(id) = connect {
            self.get_mut(id).fd = -1;
        }
    }

    /// As [`Ops::forget_fd_of_conn`], for a listener's ops.
    pub(crate) fn forget_fd_of_listener(&mut self, slot: u32) {
        let l = self.listener(slot);
        self.forget_fd_from(l.accept.head);
        self.forget_fd_from(l.poll.head);
    }

    fn forget_fd_from(&mut self, mut cur: Option<OpId>) {
        while let Some(id) = cur {
            let op = self.get_mut(id);
            op.fd = -1;
            cur = op.next;
        }
    }

    /// The op after `id` on its list.
    pub(crate) fn next_of(&self, id: OpId) -> Option<OpId> {
        self.get(id).next
    }

    /// Frees `id` (it must be unlinked; tests: see [`Ops::take`]).
    #[cfg(test)]
    pub(crate) fn remove(&mut self, id: OpId) -> Op {
        let op = *self.get(id);
        debug_assert!(op.live && op.owner == Owner::None);
        self.get_mut(id).live = false;
        self.slab.release(id.index());
        op
    }

    /// Ids of every live op matching `pred`, in slab order, into `out`.
    /// O(slab); for cancel, POLL_REMOVE and TIMEOUT_REMOVE, never on the
    /// data path.
    pub(crate) fn find_all(&self, out: &mut Vec<OpId>, mut pred: impl FnMut(&Op) -> bool) {
        for (i, op) in self.slab.iter() {
            if op.live && pred(op) {
                out.push(OpId::from_index(i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_unlink() {
        let mut ops = Ops::default();
        let c = ConnId::from_index(0);
        let a = ops.insert(1, 0, OpKind::Connect);
        let b = ops.insert(2, 0, OpKind::Connect);
        let d = ops.insert(3, 0, OpKind::Connect);
        for id in [a, b, d] {
            ops.push(id, Owner::Recv(c));
        }
        ops.unlink(b);
        assert_eq!(ops.conn(c).recv.front(), Some(a));
        assert_eq!(ops.next_of(a), Some(d));
        ops.unlink(a);
        ops.unlink(d);
        assert!(ops.conn(c).recv.is_empty());
        ops.remove(b);
        let e = ops.insert(4, 0, OpKind::Connect);
        assert_eq!(e, b, "slot reused");
        assert_eq!(ops.live(), 3);
    }

    #[test]
    fn a_reused_slot_has_a_new_generation() {
        let mut ops = Ops::default();
        let a = ops.insert(1, 0, OpKind::Connect);
        let g = ops.gen(a);
        ops.remove(a);
        let b = ops.insert(2, 0, OpKind::Connect);
        assert_eq!(a, b);
        assert_ne!(ops.gen(b), g);
    }

    #[test]
    fn take_unlinks_and_frees_in_one_go() {
        let mut ops = Ops::default();
        let c = ConnId::from_index(0);
        let ids: Vec<_> = (0..3)
            .map(|i| {
                let id = ops.insert(i, 0, OpKind::Connect);
                ops.push(id, Owner::Send(c));
                id
            })
            .collect();
        assert_eq!(ops.take(ids[1]).user_data, 1);
        assert_eq!(ops.next_of(ids[0]), Some(ids[2]));
        assert_eq!(ops.take(ids[0]).user_data, 0);
        assert_eq!(ops.conn(c).send.front(), Some(ids[2]));
        ops.take(ids[2]);
        assert!(ops.conn(c).send.is_empty());
        assert_eq!(ops.live(), 0);
        assert!(!ops.is_live(ids[1]));
    }

    #[test]
    fn every_owner_unlinks_without_the_socket() {
        let mut ops = Ops::default();
        let c = ConnId::from_index(3);
        let owners = [
            Owner::Recv(c),
            Owner::Send(c),
            Owner::ConnPoll(c),
            Owner::Connect(c),
            Owner::Accept(2),
            Owner::ListenPoll(2),
            Owner::Timeout,
        ];
        let ids: Vec<_> = owners
            .iter()
            .map(|&o| {
                let id = ops.insert(0, 0, OpKind::Connect);
                ops.push(id, o);
                id
            })
            .collect();
        assert_eq!(ops.conn(c).any(), Some(ids[0]));
        assert_eq!(ops.conn(c).connect, Some(ids[3]));
        assert_eq!(ops.listener(2).accept.front(), Some(ids[4]));
        for id in ids {
            ops.unlink(id);
            assert_eq!(ops.get(id).owner, Owner::None);
            ops.remove(id);
        }
        assert_eq!(ops.conn(c).any(), None);
        assert!(ops.listener(2).poll.is_empty());
        assert_eq!(ops.live(), 0);
    }
}
