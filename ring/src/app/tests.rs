//! `Ring<D>` end to end against a fake engine that completes NOPs.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::opcode::{Nop, Recv};
use super::*;
use crate::abi::*;
use crate::mem::HugePolicy;
use crate::ring::{new_ring, EngineRing, RingConfig};

/// A stand-in engine. Consumes up to `to_submit` SQEs per enter; NOPs complete with 0
/// (or the injected result), other opcodes with -EINVAL. With `defer`, completions are
/// only posted inside a GETEVENTS enter (like `IORING_SETUP_DEFER_TASKRUN`).
struct Fake {
    eng: EngineRing,
    defer: bool,
    deferred: VecDeque<(u64, i32)>,
    enters: Vec<(u32, u32, u32, Option<Duration>)>,
    bufs: HashMap<u16, BufRingConsumer>,
}

impl Driver for Fake {
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno> {
        self.enters.push((to_submit, min_complete, flags, timeout));
        let mut n = 0;
        while n < to_submit {
            let Some(sqe) = self.eng.next_sqe() else {
                break;
            };
            n += 1;
            let res = match sqe.opcode {
                IORING_OP_NOP if sqe.op_flags & IORING_NOP_INJECT_RESULT != 0 => sqe.len as i32,
                IORING_OP_NOP => 0,
                _ => -libc::EINVAL,
            };
            self.deferred.push_back((sqe.user_data, res));
        }
        self.eng.sq_commit();
        let getevents = flags & IORING_ENTER_GETEVENTS != 0;
        if getevents {
            self.eng.flush_overflow();
        }
        if !self.defer || getevents {
            while let Some((ud, res)) = self.deferred.pop_front() {
                self.eng.post_cqe(ud, res, 0);
            }
        }
        if getevents && self.eng.cq_ready() < min_complete && timeout.is_some() {
            return Err(Errno::ETIME);
        }
        Ok(n)
    }

    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        if self.bufs.contains_key(&bgid) {
            return Err(Errno(libc::EEXIST));
        }
        self.bufs.insert(bgid, ring);
        Ok(())
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.bufs
            .remove(&bgid)
            .map(|_| ())
            .ok_or(Errno(libc::ENOENT))
    }
}

fn ring(sq: u32, cq: u32, defer: bool) -> Ring<Fake> {
    let (app, eng) = new_ring(&RingConfig {
        sq_entries: sq,
        cq_entries: Some(cq),
        clamp: false,
        huge: HugePolicy::Never,
    })
    .unwrap();
    Ring::new(
        app,
        Fake {
            eng,
            defer,
            deferred: VecDeque::new(),
            enters: vec![],
            bufs: HashMap::new(),
        },
    )
}

fn push_nop(r: &mut Ring<Fake>, ud: u64) {
    r.push_safe(&Nop::new().user_data(ud).build()).unwrap();
}

#[test]
fn submit_then_completions() {
    let mut r = ring(4, 8, false);
    for ud in 1..=3 {
        push_nop(&mut r, ud);
    }
    r.push_safe(&Nop::new().inject_result(-105).user_data(4).build())
        .unwrap();
    assert_eq!(r.push_safe(&Nop::new().build()), Err(SqFull));
    // SAFETY: a NOP names no memory (the unsafe path takes any SQE).
    assert_eq!(unsafe { r.push(&Nop::new().build()) }, Err(SqFull));
    assert_eq!(r.sq_space_left(), 0);
    assert_eq!(r.submit(), Ok(4));
    assert_eq!(r.driver().enters.last(), Some(&(4, 0, 0, None)));
    assert_eq!(r.sq_space_left(), 4);
    assert_eq!(r.cq_ready(), 4);

    let mut it = r.completions();
    assert_eq!(it.len(), 4);
    let got: Vec<(u64, i32)> = it.by_ref().map(|c| (c.user_data, c.res)).collect();
    drop(it);
    assert_eq!(got, [(1, 0), (2, 0), (3, 0), (4, -105)]);
    assert_eq!(r.cq_ready(), 0, "head advanced when the iterator dropped");
    assert_eq!(
        cqe::result(&Cqe {
            res: -105,
            ..Cqe::default()
        }),
        Err(Errno::ENOBUFS)
    );
}

#[test]
fn completions_advance_only_what_was_taken() {
    let mut r = ring(4, 8, false);
    for ud in 0..3 {
        push_nop(&mut r, ud);
    }
    r.submit().unwrap();
    {
        let mut it = r.completions();
        assert_eq!(it.next().unwrap().user_data, 0);
    }
    assert_eq!(r.cq_ready(), 2);
    assert_eq!(r.peek_cqe().unwrap().user_data, 1);
    r.cqe_seen();
    assert_eq!(r.wait_cqe().unwrap().user_data, 2);
    r.cq_advance(1);
    assert_eq!(r.cq_ready(), 0);
}

#[test]
fn submit_and_wait_enters_with_getevents() {
    let mut r = ring(4, 8, true);
    push_nop(&mut r, 7);
    push_nop(&mut r, 8);
    assert_eq!(r.submit_and_wait(2), Ok(2));
    assert_eq!(
        r.driver().enters.last(),
        Some(&(2, 2, IORING_ENTER_GETEVENTS, None))
    );
    assert_eq!(r.cq_ready(), 2);
    r.cq_advance(2);

    push_nop(&mut r, 9);
    assert_eq!(
        r.submit_and_wait_timeout(1, Duration::from_millis(5)),
        Ok(1)
    );
    assert_eq!(
        r.driver().enters.last(),
        Some(&(1, 1, IORING_ENTER_GETEVENTS, Some(Duration::from_millis(5))))
    );
    assert_eq!(r.wait_cqe().unwrap().user_data, 9);
}

#[test]
fn wait_cqe_enters_until_a_cqe_arrives() {
    let mut r = ring(4, 8, true);
    push_nop(&mut r, 5);
    assert_eq!(r.submit(), Ok(1));
    assert_eq!(r.cq_ready(), 0, "deferred until GETEVENTS");
    assert_eq!(r.peek_cqe(), None, "peek does not enter without overflow");
    let c = r.wait_cqe().unwrap();
    assert_eq!(c.user_data, 5);
    assert_eq!(
        r.driver().enters.last(),
        Some(&(0, 1, IORING_ENTER_GETEVENTS, None))
    );
    // wait_cqe does not consume.
    assert_eq!(r.wait_cqe().unwrap().user_data, 5);
    r.cqe_seen();
}

#[test]
fn wait_cqe_timeout_reports_etime() {
    let mut r = ring(4, 8, true);
    assert_eq!(
        r.wait_cqe_timeout(Duration::from_millis(1)),
        Err(Errno::ETIME)
    );
    push_nop(&mut r, 1);
    r.submit().unwrap();
    assert_eq!(
        r.wait_cqe_timeout(Duration::from_secs(5))
            .unwrap()
            .user_data,
        1
    );
}

#[test]
fn overflow_makes_submit_and_peek_enter_with_getevents() {
    let mut r = ring(2, 2, false);
    for ud in 0..2 {
        push_nop(&mut r, ud);
    }
    r.submit().unwrap();
    push_nop(&mut r, 2);
    r.submit().unwrap(); // CQ full: the third goes to the backlog
    assert!(r.cq_has_overflow());
    assert_eq!(r.driver().eng.backlog_len(), 1);

    // submit adds GETEVENTS while the overflow flag is set (and the fake flushes).
    r.cq_advance(1);
    r.submit().unwrap();
    assert_eq!(
        r.driver().enters.last(),
        Some(&(0, 0, IORING_ENTER_GETEVENTS, None))
    );
    assert!(!r.cq_has_overflow());
    let got: Vec<u64> = r.completions().map(|c| c.user_data).collect();
    assert_eq!(got, [1, 2]);

    // peek_cqe: CQ empty + overflow flagged -> one GETEVENTS enter flushes it.
    for ud in 10..13 {
        r.driver.eng.post_cqe(ud, 0, 0);
    }
    r.cq_advance(2);
    assert_eq!(r.cq_ready(), 0);
    assert!(r.cq_has_overflow());
    let before = r.driver().enters.len();
    assert_eq!(r.peek_cqe().unwrap().user_data, 12);
    assert_eq!(r.driver().enters.len(), before + 1);
    assert_eq!(
        r.driver().enters.last(),
        Some(&(0, 0, IORING_ENTER_GETEVENTS, None))
    );
}

#[test]
fn unknown_opcode_result_and_get_sqe() {
    let mut r = ring(2, 4, false);
    let mut buf = [0u8; 8];
    // SAFETY: `buf` outlives the request: it lives to the end of the test, and the
    // fake engine completes the RECV (with -EINVAL) inside this submit.
    let sqe = unsafe { r.get_sqe() }.unwrap();
    *sqe = Recv::new(3, buf.as_mut_ptr(), 8).user_data(3).build();
    r.submit().unwrap();
    let c = r.wait_cqe().unwrap();
    assert_eq!((c.user_data, c.res), (3, -libc::EINVAL));
    assert_eq!(cqe::result(&c), Err(Errno::EINVAL));
    r.cqe_seen();
}

#[test]
fn buf_ring_registration() {
    let mut r = ring(2, 4, false);
    let mut br = r.register_buf_ring(8, 1).unwrap();
    assert_eq!(br.entries(), 8);
    assert_eq!(r.register_buf_ring(8, 1).unwrap_err(), Errno(libc::EEXIST));
    assert_eq!(r.register_buf_ring(3, 2).unwrap_err(), Errno::EINVAL);
    // SAFETY: the address is never dereferenced: the fake engine only peeks at the
    // entry.
    unsafe { br.add_and_advance(0x1000, 64, 5) };
    let c = r.driver_mut().bufs.get_mut(&1).unwrap();
    assert_eq!(c.available(), 1);
    assert_eq!(c.peek().unwrap().bid, 5);
    r.unregister_buf_ring(1).unwrap();
    assert_eq!(r.unregister_buf_ring(1), Err(Errno(libc::ENOENT)));
}

#[test]
fn errno_display() {
    assert_eq!(Errno(libc::ENOBUFS).to_string(), "ENOBUFS (105)");
    assert_eq!(Errno::ETIME.to_string(), "ETIME (62)");
    assert_eq!(Errno(4242).to_string(), "errno 4242");
    assert_eq!(Errno::from_res(-11), Some(Errno::EAGAIN));
    assert_eq!(Errno::from_res(0), None);
    assert_eq!(Errno::ECANCELED.as_res(), -125);
    let e: Box<dyn std::error::Error> = Box::new(Errno::EINVAL);
    assert_eq!(e.to_string(), "EINVAL (22)");
    let io: std::io::Error = Errno::ENOMEM.into();
    assert_eq!(io.raw_os_error(), Some(libc::ENOMEM));
}

#[test]
fn sockaddr_in_is_network_order() {
    let sa = sockaddr_in([10, 0, 0, 2], 0x1f90);
    assert_eq!(sa.sin_family, libc::AF_INET as libc::sa_family_t);
    assert_eq!(sa.sin_port.to_ne_bytes(), [0x1f, 0x90]);
    assert_eq!(sa.sin_addr.s_addr.to_ne_bytes(), [10, 0, 0, 2]);
    assert_eq!(sa.sin_zero, [0; 8]);
}

#[test]
fn timespec_from_duration() {
    let ts = Timespec::from(Duration::new(3, 7));
    assert_eq!((ts.tv_sec, ts.tv_nsec), (3, 7));
}

#[test]
fn take_ready_clears_the_word() {
    let w = std::sync::atomic::AtomicU32::new(0);
    w.fetch_or(libc::POLLIN as u32, std::sync::atomic::Ordering::AcqRel);
    w.fetch_or(libc::POLLOUT as u32, std::sync::atomic::Ordering::AcqRel);
    assert_eq!(take_ready(&w), (libc::POLLIN | libc::POLLOUT) as u32);
    assert_eq!(take_ready(&w), 0);
}
