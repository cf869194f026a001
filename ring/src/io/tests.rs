//! The layer against a scripted backend: the test plays the engine (takes SQEs, posts
//! CQEs, fills provided buffers).

use std::collections::VecDeque;

use super::*;
use crate::abi::{IORING_CQE_BUFFER_SHIFT, IORING_CQE_F_BUFFER, IORING_CQE_F_MORE};
use crate::bufring::BufRingConsumer;
use crate::mem::HugePolicy;

#[derive(Default)]
struct Fake {
    /// SQEs pushed and submitted, in order.
    sqes: Vec<Sqe>,
    cq: VecDeque<Cqe>,
    groups: Vec<(u16, BufRingConsumer)>,
    unregistered: Vec<u16>,
}

impl Fake {
    fn post(&mut self, user_data: u64, res: i32, flags: u32) {
        self.cq.push_back(Cqe {
            user_data,
            res,
            flags,
        });
    }

    /// The engine's side of a receive from group `bgid`: takes a buffer, writes
    /// `data` into it, posts the CQE.
    fn recv(&mut self, user_data: u64, bgid: u16, data: &[u8], more: bool) {
        let (_, c) = self.groups.iter_mut().find(|(g, _)| *g == bgid).unwrap();
        let Some(b) = c.peek() else {
            self.post(user_data, -libc::ENOBUFS, 0);
            return;
        };
        c.consume();
        assert!(data.len() <= b.len as usize);
        // SAFETY: the test is the engine: the pool handed this buffer over through the
        // ring (published, not handed back), so writing `data.len() <= len` bytes is
        // what the engine may do.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), b.addr as *mut u8, data.len()) };
        let flags = IORING_CQE_F_BUFFER
            | (u32::from(b.bid) << IORING_CQE_BUFFER_SHIFT)
            | if more { IORING_CQE_F_MORE } else { 0 };
        self.post(user_data, data.len() as i32, flags);
    }
}

impl Backend for Fake {
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        self.sqes.push(*sqe);
        Ok(())
    }
    fn submit(&mut self) -> Result<u32, Errno> {
        Ok(0)
    }
    fn submit_and_wait_timeout(&mut self, _n: u32, _t: Duration) -> Result<u32, Errno> {
        Ok(0)
    }
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        out.extend(self.cq.drain(..));
    }
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        let (r, c) = BufRing::new(entries, HugePolicy::Never)?;
        self.groups.push((bgid, c));
        Ok(r)
    }
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.unregistered.push(bgid);
        Ok(())
    }
}

fn io() -> Io<Fake, u32> {
    Io::with_capacity(Fake::default(), 2, 16)
}

fn wait(io: &mut Io<Fake, u32>) {
    io.wait(0, Duration::ZERO).unwrap();
}

#[test]
fn send_owns_its_buffer_until_the_final_completion() {
    let mut io = io();
    let v = b"hello".to_vec();
    let ptr = v.as_ptr() as u64;
    let t = io.push(op::Send::new(3, v).range(1..5), 7).unwrap();
    let sqe = *io.backend().sqes.last().unwrap();
    assert_eq!(
        (sqe.opcode, sqe.fd, sqe.addr, sqe.len),
        (abi::IORING_OP_SEND, 3, ptr + 1, 4)
    );
    assert_eq!(sqe.user_data, t.user_data());
    assert_eq!(io.in_flight(), 1);
    io.backend_mut().post(t.user_data(), 4, 0);
    wait(&mut io);
    let mut c = io.next_completion().unwrap();
    assert_eq!(
        (c.data(), c.token(), c.result(), c.more()),
        (7, t, Ok(4), false)
    );
    assert_eq!(c.take_buf().unwrap().into_vec().unwrap(), b"hello");
    assert_eq!(io.in_flight(), 0);
    assert!(io.next_completion().is_none());
}

#[test]
fn a_stale_cqe_is_not_taken_for_the_slots_next_request() {
    let mut io = io();
    let nop = || opcode::Nop::new().build();
    let old = io.push(nop(), 1).unwrap();
    io.backend_mut().post(old.user_data(), 0, 0);
    wait(&mut io);
    assert_eq!(io.next_completion().unwrap().data(), 1);
    // Same slot, next generation.
    let new = io.push(nop(), 2).unwrap();
    assert_ne!(old, new);
    assert_eq!(old.index(), new.index());
    io.backend_mut().post(old.user_data(), 0, 0);
    io.backend_mut().post(new.user_data(), 5, 0);
    wait(&mut io);
    let c = io.next_completion().unwrap();
    assert_eq!((c.data(), c.res()), (2, 5));
    assert!(io.next_completion().is_none());
    assert_eq!(io.stats().stale, 1);
}

#[test]
fn the_slab_grows_when_every_slot_is_busy() {
    let mut io = io();
    let tokens: Vec<Token> = (0..10)
        .map(|i| io.push(opcode::Nop::new().build(), i).unwrap())
        .collect();
    assert_eq!(io.in_flight(), 10);
    for t in &tokens {
        io.backend_mut().post(t.user_data(), 0, 0);
    }
    wait(&mut io);
    let got: Vec<u32> = core::iter::from_fn(|| io.next_completion())
        .map(|c| c.data())
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn pool_buffers_go_back_to_the_ring_when_dropped() {
    let mut io = io();
    let pool = io.register_pool(4, 4, 64).unwrap();
    assert_eq!(pool.available(), 4);
    let t = io
        .push(opcode::RecvMulti::new(5, pool.bgid()).build(), 9)
        .unwrap();
    io.backend_mut().recv(t.user_data(), 4, b"abc", true);
    io.backend_mut().recv(t.user_data(), 4, b"defg", true);
    wait(&mut io);
    let a = io.next_completion().unwrap();
    let b = io.next_completion().unwrap();
    assert!(a.more() && b.more());
    assert_eq!(&a.buf().unwrap()[..], b"abc");
    assert_eq!(&b.buf().unwrap()[..], b"defg");
    assert_eq!(pool.available(), 2);
    drop(a);
    assert_eq!(pool.available(), 3);
    // A late CQE after the stream ended (a closed connection) still returns its buffer.
    io.backend_mut().post(t.user_data(), 0, 0);
    wait(&mut io);
    let end = io.next_completion().unwrap();
    assert!(!end.more());
    io.backend_mut().recv(t.user_data(), 4, b"late", true);
    wait(&mut io);
    assert!(io.next_completion().is_none());
    assert_eq!(io.stats().stale, 1);
    drop(b);
    assert_eq!(pool.available(), 4);
    drop(io);
    assert_eq!(pool.available(), 4);
}

#[test]
fn a_buffer_handed_back_twice_makes_no_second_handle() {
    let mut io = io();
    let pool = io.register_pool(0, 2, 16).unwrap();
    let t = io.push(opcode::RecvMulti::new(5, 0).build(), 0).unwrap();
    io.backend_mut().recv(t.user_data(), 0, b"x", true);
    let dup = *io.backend().cq.back().unwrap();
    io.backend_mut().cq.push_back(dup);
    wait(&mut io);
    let a = io.next_completion().unwrap();
    let b = io.next_completion().unwrap();
    assert!(a.buf().is_some());
    assert!(b.buf().is_none());
    assert_eq!(io.stats().bad_buffers, 1);
    drop((a, b));
    assert_eq!(pool.available(), 2);
}

#[test]
fn multishot_is_rearmed_when_the_engine_ends_it_early() {
    let mut io = io();
    let acc = io.push(opcode::AcceptMulti::new(1).build(), 1).unwrap();
    let pushed = io.backend().sqes.len();
    // Ended by a full CQ: a connection, no F_MORE.
    io.backend_mut().post(acc.user_data(), 8, 0);
    wait(&mut io);
    let c = io.next_completion().unwrap();
    assert_eq!((c.res(), c.more()), (8, true));
    io.submit().unwrap();
    assert_eq!(io.backend().sqes.len(), pushed + 1, "re-armed");
    let again = *io.backend().sqes.last().unwrap();
    assert_eq!(again.user_data, acc.user_data());
    assert_eq!(again.ioprio, abi::IORING_ACCEPT_MULTISHOT);
    assert_eq!(io.stats().rearmed, 1);
    // Cancelled: the final completion ends it for good.
    io.cancel(acc);
    io.backend_mut().post(acc.user_data(), -libc::ECANCELED, 0);
    wait(&mut io);
    let c = io.next_completion().unwrap();
    assert_eq!((c.res(), c.more()), (-libc::ECANCELED, false));
    io.submit().unwrap();
    assert_eq!(io.in_flight(), 0);
}

#[test]
fn a_starved_receive_waits_for_buffers_then_resumes() {
    let mut io = io();
    let pool = io.register_pool(0, 4, 16).unwrap();
    let t = io.push(opcode::RecvMulti::new(5, 0).build(), 3).unwrap();
    for _ in 0..4 {
        io.backend_mut().recv(t.user_data(), 0, b"z", true);
    }
    io.backend_mut().recv(t.user_data(), 0, b"z", true); // ENOBUFS, final
    wait(&mut io);
    let held: Vec<_> = core::iter::from_fn(|| io.next_completion()).collect();
    assert_eq!(held.len(), 4, "the ENOBUFS end is not shown");
    assert!(held.iter().all(|c| c.more()));
    assert_eq!(io.stats().starved, 1);
    let n = io.backend().sqes.len();
    io.submit().unwrap();
    assert_eq!(io.backend().sqes.len(), n, "no buffers: not re-armed yet");
    drop(held);
    assert_eq!(pool.available(), 4);
    io.submit().unwrap();
    assert_eq!(io.backend().sqes.len(), n + 1, "re-armed");
    assert_eq!(io.backend().sqes.last().unwrap().user_data, t.user_data());
}

#[test]
fn cancelling_a_starved_receive_ends_it() {
    let mut io = io();
    let _pool = io.register_pool(0, 1, 16).unwrap();
    let t = io.push(opcode::RecvMulti::new(5, 0).build(), 3).unwrap();
    io.backend_mut().recv(t.user_data(), 0, b"z", true);
    io.backend_mut().recv(t.user_data(), 0, b"z", true);
    wait(&mut io);
    let first = io.next_completion().unwrap();
    assert!(io.next_completion().is_none());
    io.cancel(t);
    let c = io.next_completion().unwrap();
    assert_eq!((c.res(), c.more()), (-libc::ECANCELED, false));
    assert_eq!(io.in_flight(), 0);
    drop(first);
}

#[test]
fn split_pushes_while_reading_completions() {
    let mut io = io();
    let pool = io.register_pool(0, 4, 16).unwrap();
    let t = io.push(opcode::RecvMulti::new(5, 0).build(), 0).unwrap();
    io.backend_mut().recv(t.user_data(), 0, b"ping", true);
    wait(&mut io);
    let (mut sub, cq) = io.split();
    let mut sends = Vec::new();
    for mut c in cq {
        if let Some(buf) = c.take_buf() {
            sends.push(sub.push(op::Send::new(5, buf), 1).unwrap());
        }
    }
    assert_eq!(pool.available(), 3, "the buffer is owned by the send");
    let send = *io.backend().sqes.last().unwrap();
    assert_eq!(send.len, 4);
    io.backend_mut().post(sends[0].user_data(), 4, 0);
    wait(&mut io);
    let c = io.next_completion().unwrap();
    assert_eq!(c.data(), 1);
    drop(c);
    assert_eq!(pool.available(), 4);
}

#[test]
fn shutdown_leaks_what_the_engine_may_still_use() {
    let mut io = io();
    let _t = io.push(op::Recv::new(3, vec![0; 32]), 0).unwrap();
    let done = io.push(opcode::Nop::new().build(), 1).unwrap();
    io.backend_mut().post(done.user_data(), 0, 0);
    assert_eq!(io.shutdown(Duration::ZERO), 1);
    assert_eq!(io.stats().leaked, 1);
    assert_eq!(io.in_flight(), 0);
    let cancel = io.backend().sqes.last().unwrap();
    assert_eq!(cancel.opcode, abi::IORING_OP_ASYNC_CANCEL);
}

#[test]
fn call_waits_for_its_own_completion() {
    let mut io = io();
    let other = io.push(opcode::Nop::new().build(), 1).unwrap();
    io.backend_mut().post(other.user_data(), 0, 0);
    wait(&mut io);
    // The fake completes the next NOP's token right away (the next slot, generation 0).
    let next = Token::new(1, 0, 0);
    io.backend_mut().post(next.user_data(), 42, 0);
    let c = io
        .call(opcode::Nop::new().build(), 2, Duration::from_millis(10))
        .unwrap();
    assert_eq!((c.data(), c.res()), (2, 42));
    assert_eq!(
        io.next_completion().unwrap().data(),
        1,
        "the other completion waits"
    );
}

#[test]
fn unregisters_pools_on_drop() {
    let mut io = io();
    let pool = io.register_pool(7, 2, 16).unwrap();
    assert!(io.register_pool(7, 2, 16).is_err(), "one pool per group");
    io.shutdown(Duration::ZERO);
    assert_eq!(io.backend().unregistered, vec![7]);
    drop(pool);
}

#[test]
fn timeouts_point_into_their_slot_and_receives_into_their_range() {
    let mut io = io();
    let t = io
        .push(op::LinkTimeout::new(Duration::from_millis(1500)), 0)
        .unwrap();
    let sqe = *io.backend().sqes.last().unwrap();
    assert_eq!(sqe.opcode, abi::IORING_OP_LINK_TIMEOUT);
    // Grow the table while the timeout is in flight: its timespec must not move.
    for i in 0..8 {
        io.push(opcode::Nop::new().build(), i).unwrap();
    }
    // SAFETY: the test is the engine reading the timespec the SQE names; the slot's
    // cell lives in a chunk that the table never moves or frees while the request
    // is in flight.
    let ts = unsafe { (sqe.addr as *const Timespec).read() };
    assert_eq!((ts.tv_sec, ts.tv_nsec), (1, 500_000_000));
    io.backend_mut().post(t.user_data(), -libc::ETIME, 0);

    let v = vec![0u8; 100];
    let base = v.as_ptr() as u64;
    io.push(
        op::Recv::new(3, v)
            .range(40..100)
            .sqe_flags(abi::IOSQE_IO_LINK),
        9,
    )
    .unwrap();
    let sqe = *io.backend().sqes.last().unwrap();
    assert_eq!(
        (sqe.addr, sqe.len, sqe.flags),
        (base + 40, 60, abi::IOSQE_IO_LINK)
    );
}
