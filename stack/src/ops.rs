//! In-flight requests: a slab of [`Op`]s and intrusive FIFO lists that hang
//! them on the socket they wait for. Push, pop and unlink are O(1); the slab
//! keeps its memory, so steady-state traffic does not allocate.

/// "No op" link value.
pub const NIL: u32 = u32::MAX;

/// Where a parked op is linked, so cancel can unlink it in O(1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Not on any list (a multishot poll on a socket that never changes).
    None,
    /// A connection's receive waiters.
    Recv(u32),
    /// A connection's send waiters.
    Send(u32),
    /// A connection's pollers.
    ConnPoll(u32),
    /// A connection's pending connect.
    Connect(u32),
    /// A listener's accept waiters (listener index).
    Accept(u32),
    /// A listener's pollers.
    ListenPoll(u32),
    /// Armed timeouts.
    Timeout,
}

/// What a parked op is waiting to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// ACCEPT, single or multishot.
    Accept {
        /// `IORING_ACCEPT_MULTISHOT`.
        multishot: bool,
        /// `struct sockaddr *` to fill, or 0.
        addr: u64,
        /// `socklen_t *`, or 0.
        addrlen: u64,
    },
    /// RECV / READ.
    Recv {
        /// Buffer (0 with buffer select).
        addr: u64,
        /// Buffer length, or the per-CQE cap with buffer select (0 = none).
        len: u32,
        /// Buffer group when `IOSQE_BUFFER_SELECT`.
        group: Option<u16>,
        /// `IORING_RECV_MULTISHOT`.
        multishot: bool,
        /// `msg_flags` (`MSG_WAITALL`, `MSG_PEEK`).
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
    /// SEND / WRITE.
    Send {
        /// Data.
        addr: u64,
        /// Length.
        len: u32,
        /// Bytes already queued (MSG_WAITALL).
        done: u32,
        /// `MSG_WAITALL`: complete only when all is queued.
        waitall: bool,
        /// SEND_ZC: 0 = plain send, 1 = zero-copy send (a notification CQE
        /// follows), 2 = with `IORING_SEND_ZC_REPORT_USAGE`.
        zc: u8,
        /// SENDMSG: number of iovecs at `addr` (0 = `addr` is a flat buffer).
        iovlen: u32,
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
        /// Its clock flags (`IORING_TIMEOUT_BOOTTIME` / `_REALTIME`, 0 =
        /// MONOTONIC), for an absolute update.
        clock: u32,
    },
    /// LINK_TIMEOUT guarding the op `target`.
    LinkTimeout {
        /// Deadline, µs of engine time.
        at_us: u64,
        /// The linked request it cancels when it fires.
        target: u32,
    },
}

/// One in-flight request.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// Echoed in its CQEs.
    pub user_data: u64,
    /// The socket number it was submitted on (`-1` when none).
    pub fd: i32,
    /// `IOSQE_CQE_SKIP_SUCCESS`.
    pub skip_success: bool,
    /// What it waits for.
    pub kind: OpKind,
    /// The list it is on.
    pub owner: Owner,
    /// The SQE's `IOSQE_*` flags.
    pub sqe_flags: u8,
    /// The SQE's opcode (for `IORING_ASYNC_CANCEL_OP`).
    pub opcode: u8,
    /// The link chain it heads (`NIL` when not linked).
    pub chain: u32,
    /// Its LINK_TIMEOUT op (`NIL` when none).
    pub link_timeout: u32,
    prev: u32,
    next: u32,
    live: bool,
}

/// Head and tail of an intrusive FIFO of ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpList {
    head: u32,
    tail: u32,
}

impl OpList {
    /// The first op, if any.
    pub fn first(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }
}

impl Default for OpList {
    fn default() -> Self {
        OpList {
            head: NIL,
            tail: NIL,
        }
    }
}

impl OpList {
    /// Whether no op is on the list.
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }
    /// First op, if any.
    pub fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }
}

/// The slab of ops.
#[derive(Default)]
pub struct Ops {
    slots: Vec<Op>,
    free: Vec<u32>,
    live: usize,
}

impl Ops {
    /// A slab with room for `cap` ops before it grows.
    pub fn with_capacity(cap: usize) -> Self {
        Ops {
            slots: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            live: 0,
        }
    }

    /// Number of in-flight ops.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Stores a new op (not yet on a list).
    pub fn insert(&mut self, user_data: u64, fd: i32, skip_success: bool, kind: OpKind) -> u32 {
        let op = Op {
            user_data,
            fd,
            skip_success,
            kind,
            owner: Owner::None,
            sqe_flags: 0,
            opcode: 0,
            chain: NIL,
            link_timeout: NIL,
            prev: NIL,
            next: NIL,
            live: true,
        };
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = op;
                i
            }
            None => {
                self.slots.push(op);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Whether `id` names a live op.
    pub fn is_live(&self, id: u32) -> bool {
        self.slots.get(id as usize).is_some_and(|o| o.live)
    }

    /// The op at `id`.
    pub fn get(&self, id: u32) -> &Op {
        &self.slots[id as usize]
    }

    /// Address of the op at `id` (for prefetching; `None` if out of range).
    pub fn addr(&self, id: u32) -> Option<usize> {
        self.slots.get(id as usize).map(|o| o as *const Op as usize)
    }

    /// The op at `id`, mutably.
    pub fn get_mut(&mut self, id: u32) -> &mut Op {
        &mut self.slots[id as usize]
    }

    /// Appends `id` to `list`, recording `owner`.
    pub fn push_back(&mut self, list: &mut OpList, id: u32, owner: Owner) {
        {
            let op = &mut self.slots[id as usize];
            op.owner = owner;
            op.prev = list.tail;
            op.next = NIL;
        }
        if list.tail != NIL {
            self.slots[list.tail as usize].next = id;
        } else {
            list.head = id;
        }
        list.tail = id;
    }

    /// Unlinks `id` from `list` (which must be the list it is on).
    pub fn unlink(&mut self, list: &mut OpList, id: u32) {
        let (prev, next) = {
            let op = &self.slots[id as usize];
            (op.prev, op.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            list.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            list.tail = prev;
        }
        let op = &mut self.slots[id as usize];
        op.prev = NIL;
        op.next = NIL;
        op.owner = Owner::None;
    }

    /// The op after `id` on its list.
    pub fn next_of(&self, id: u32) -> Option<u32> {
        let n = self.slots[id as usize].next;
        (n != NIL).then_some(n)
    }

    /// Frees `id` (it must be unlinked).
    pub fn remove(&mut self, id: u32) -> Op {
        let op = self.slots[id as usize];
        debug_assert!(op.live && op.owner == Owner::None);
        self.slots[id as usize].live = false;
        self.free.push(id);
        self.live -= 1;
        op
    }

    /// Ids of every live op matching `pred`, in slab order, into `out`.
    /// O(slab); used only by cancel, never on the data path.
    pub fn find_all(&self, out: &mut Vec<u32>, mut pred: impl FnMut(&Op) -> bool) {
        for (i, op) in self.slots.iter().enumerate() {
            if op.live && pred(op) {
                out.push(i as u32);
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
        let mut l = OpList::default();
        let a = ops.insert(1, 0, false, OpKind::Connect);
        let b = ops.insert(2, 0, false, OpKind::Connect);
        let c = ops.insert(3, 0, false, OpKind::Connect);
        for id in [a, b, c] {
            ops.push_back(&mut l, id, Owner::Recv(0));
        }
        ops.unlink(&mut l, b);
        assert_eq!(l.front(), Some(a));
        assert_eq!(ops.next_of(a), Some(c));
        ops.unlink(&mut l, a);
        ops.unlink(&mut l, c);
        assert!(l.is_empty());
        ops.remove(b);
        let d = ops.insert(4, 0, false, OpKind::Connect);
        assert_eq!(d, b, "slot reused");
        assert_eq!(ops.live(), 3);
    }
}
