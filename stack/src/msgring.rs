//! `IORING_OP_MSG_RING` between the rings of one process.
//!
//! A ring is an engine's application ring, named by a number: the ring fd
//! `libringline` reserved for it (`EngineConfig::ring_fd`), or one the
//! registry hands out (from [`FIRST_RING_NUMBER`], far above any socket
//! number). Each ring has a [`Mailbox`], registered under its number for
//! the engine's life. A MSG_RING data message to another ring goes into the
//! target's mailbox (bounded: [`MAILBOX_CAP`] messages, then the sender gets
//! `-EOVERFLOW`) and wakes the target if it sleeps; the target engine moves
//! it into its CQ at the start of its next step (one atomic load per step
//! when nothing came). A message to the ring itself is posted at once.
//!
//! Engines are shared-nothing, so what crosses is a CQE (user_data, res,
//! flags), never a socket: `IORING_MSG_SEND_FD` cannot move a socket into
//! another engine's file table (it answers `-EOPNOTSUPP` once its fields are
//! checked).
//!
//! Locks: the registry is locked when an engine starts or ends and when a
//! sender first names a target (each engine caches the targets it has
//! messaged); a mailbox is locked by its senders and by its engine when the
//! pending flag says there is something to take. No lock is taken on the
//! per-packet path or by an engine nobody messages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;

use crate::errno::{self, Errno};
use crate::fxhash::FxMap;

/// Messages waiting in one mailbox before senders get `-EOVERFLOW`.
pub(crate) const MAILBOX_CAP: usize = 4096;
/// The first ring number the registry hands out itself.
pub(crate) const FIRST_RING_NUMBER: i32 = 1 << 29;

/// One data message: the CQE it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) user_data: u64,
    pub(crate) res: i32,
    pub(crate) flags: u32,
}

/// A ring's incoming messages.
pub(crate) struct Mailbox {
    queue: Mutex<VecDeque<Msg>>,
    /// Whether `queue` may hold messages. Written by senders (release,
    /// after their push) and by the owner (cleared under the queue lock
    /// before it drains); the owner's acquire load pairs with the senders'
    /// release store.
    pending: AtomicBool,
    /// Cleared (release) when the ring's engine ends; senders that cached
    /// this mailbox load it (acquire) before each send.
    open: AtomicBool,
    /// The owner's thread waker while it sleeps (set and cleared by the
    /// owner around a sleep, read by senders after a push).
    waker: Mutex<Option<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Mailbox {
    fn new() -> Self {
        Mailbox {
            queue: Mutex::new(VecDeque::with_capacity(64)),
            pending: AtomicBool::new(false),
            open: AtomicBool::new(true),
            waker: Mutex::new(None),
        }
    }

    /// Queues `m` and wakes the owner; `EOVERFLOW` when full.
    fn send(&self, m: Msg) -> Result<(), Errno> {
        {
            let mut q = lock(&self.queue);
            if q.len() >= MAILBOX_CAP {
                return Err(errno::EOVERFLOW);
            }
            q.push_back(m);
            self.pending.store(true, Ordering::Release);
        }
        if let Some(w) = lock(&self.waker).as_ref() {
            w.wake_by_ref();
        }
        Ok(())
    }
}

/// The process's rings by number.
fn registry() -> MutexGuard<'static, FxMap<i32, Arc<Mailbox>>> {
    static REG: OnceLock<Mutex<FxMap<i32, Arc<Mailbox>>>> = OnceLock::new();
    lock(REG.get_or_init(|| Mutex::new(FxMap::default())))
}

/// The next number the registry hands out.
static NEXT_NUMBER: AtomicI32 = AtomicI32::new(FIRST_RING_NUMBER);

/// One engine's side: its own number and mailbox, and the targets it has
/// messaged.
pub(crate) struct Rings {
    me: i32,
    mailbox: Arc<Mailbox>,
    targets: FxMap<i32, Arc<Mailbox>>,
}

impl Rings {
    /// Registers a ring under `number` (`None`: one the registry picks).
    /// `EEXIST` if the number names a live ring.
    pub(crate) fn register(number: Option<i32>) -> Result<Rings, Errno> {
        let mailbox = Arc::new(Mailbox::new());
        let mut reg = registry();
        let me = match number {
            Some(n) => {
                if reg.contains_key(&n) {
                    return Err(errno::EEXIST);
                }
                n
            }
            None => loop {
                // Relaxed: only uniqueness matters, and the registry lock
                // orders the insert.
                let n = NEXT_NUMBER.fetch_add(1, Ordering::Relaxed);
                if n >= FIRST_RING_NUMBER && !reg.contains_key(&n) {
                    break n;
                }
            },
        };
        reg.insert(me, mailbox.clone());
        Ok(Rings {
            me,
            mailbox,
            targets: FxMap::default(),
        })
    }

    /// This ring's number (the fd a MSG_RING names it by).
    pub(crate) fn number(&self) -> i32 {
        self.me
    }

    /// Whether `fd` names a live ring of the process (this one included).
    pub(crate) fn is_ring(&mut self, fd: i32) -> bool {
        fd == self.me || self.target(fd).is_some()
    }

    /// The mailbox of ring `fd` (not this one), if it is live.
    fn target(&mut self, fd: i32) -> Option<Arc<Mailbox>> {
        if let Some(m) = self.targets.get(&fd) {
            if m.open.load(Ordering::Acquire) {
                return Some(m.clone());
            }
            self.targets.remove(&fd);
        }
        let m = registry().get(&fd).cloned()?;
        self.targets.insert(fd, m.clone());
        Some(m)
    }

    /// Sends `m` to ring `fd` (not this one); `EBADFD` if it is not a live
    /// ring, `EOVERFLOW` if its mailbox is full.
    pub(crate) fn send(&mut self, fd: i32, m: Msg) -> Result<(), Errno> {
        let t = self.target(fd).ok_or(errno::EBADFD)?;
        t.send(m)
    }

    /// Takes what other rings sent, in order, into `out` (cleared first).
    /// One atomic load when nothing came.
    #[inline]
    pub(crate) fn take(&self, out: &mut Vec<Msg>) {
        out.clear();
        if !self.mailbox.pending.load(Ordering::Acquire) {
            return;
        }
        let mut q = lock(&self.mailbox.queue);
        self.mailbox.pending.store(false, Ordering::Relaxed);
        out.extend(q.drain(..));
    }

    /// Before the owner sleeps: senders will wake `w`. Returns whether
    /// messages are already waiting (then the owner should not sleep).
    pub(crate) fn arm(&self, w: &Waker) -> bool {
        *lock(&self.mailbox.waker) = Some(w.clone());
        self.mailbox.pending.load(Ordering::Acquire)
    }

    /// After the owner's sleep.
    pub(crate) fn disarm(&self) {
        *lock(&self.mailbox.waker) = None;
    }
}

impl Drop for Rings {
    fn drop(&mut self) {
        self.mailbox.open.store(false, Ordering::Release);
        let mut reg = registry();
        if reg
            .get(&self.me)
            .is_some_and(|m| Arc::ptr_eq(m, &self.mailbox))
        {
            reg.remove(&self.me);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_take_and_unregister() {
        let a = Rings::register(None).unwrap();
        let mut b = Rings::register(None).unwrap();
        assert_ne!(a.number(), b.number());
        assert!(a.number() >= FIRST_RING_NUMBER);
        let m = Msg {
            user_data: 7,
            res: 42,
            flags: 0,
        };
        b.send(a.number(), m).unwrap();
        let mut out = Vec::new();
        a.take(&mut out);
        assert_eq!(out, vec![m]);
        a.take(&mut out);
        assert!(out.is_empty());
        assert!(b.is_ring(a.number()));
        let n = a.number();
        drop(a);
        assert_eq!(b.send(n, m), Err(errno::EBADFD));
        assert!(!b.is_ring(n));
        // A number taken twice.
        let c = Rings::register(Some(1 << 28)).unwrap();
        assert_eq!(Rings::register(Some(1 << 28)).err(), Some(errno::EEXIST));
        drop(c);
    }

    #[test]
    fn full_mailbox_overflows() {
        let a = Rings::register(None).unwrap();
        let mut b = Rings::register(None).unwrap();
        let m = Msg {
            user_data: 1,
            res: 0,
            flags: 0,
        };
        for _ in 0..MAILBOX_CAP {
            b.send(a.number(), m).unwrap();
        }
        assert_eq!(b.send(a.number(), m), Err(errno::EOVERFLOW));
        let mut out = Vec::new();
        a.take(&mut out);
        assert_eq!(out.len(), MAILBOX_CAP);
        b.send(a.number(), m).unwrap();
    }
}
