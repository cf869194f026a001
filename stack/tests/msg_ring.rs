//! IORING_OP_MSG_RING between two engines on two threads: the target waits
//! in `submit_and_wait_timeout` (its engine sleeping between steps) while
//! the other ring sends it data messages; each arrives as a CQE with the
//! sender's user_data, res and passed flags. A message to a ring that has
//! gone is `-EBADF` (its number names nothing now).

use std::sync::mpsc;
use std::time::Duration;

use ringline_dataplane::WireConfig;
use ringline_ring::abi::{self, Sqe};
use ringline_testkit::pair::lone_runtime;

fn msg(fd: i32, ud: u64, target_ud: u64, res: u32, flags: u32) -> Sqe {
    Sqe {
        opcode: abi::IORING_OP_MSG_RING,
        fd,
        user_data: ud,
        off: target_ud,
        len: res,
        op_flags: if flags != 0 {
            abi::IORING_MSG_RING_FLAGS_PASS
        } else {
            0
        },
        file_index: flags,
        ..Sqe::default()
    }
}

#[test]
fn messages_cross_threads_to_a_waiting_engine() {
    let (mut b, _pb) = lone_runtime(&WireConfig::default());
    let (tx, rx) = mpsc::channel();
    let target = std::thread::spawn(move || {
        let (mut a, _pa) = lone_runtime(&WireConfig::default());
        tx.send(a.driver().ring_fd()).expect("send fd");
        let mut got = Vec::new();
        for _ in 0..200 {
            let _ = a.submit_and_wait_timeout(1, Duration::from_millis(50));
            got.extend(a.completions());
            if got.len() == 3 {
                break;
            }
        }
        got
    });
    let fd = rx.recv().expect("target's ring fd");
    for (i, flags) in [0u32, abi::IORING_CQE_F_MORE, 0].into_iter().enumerate() {
        // Let the target fall asleep in its wait between messages.
        std::thread::sleep(Duration::from_millis(20));
        let sqe = msg(fd, i as u64, 0x100 + i as u64, 7 + i as u32, flags);
        // SAFETY: a MSG_RING names no memory.
        unsafe { b.push(&sqe) }.expect("SQ room");
        b.submit_and_wait(1).expect("wait");
        let c: Vec<_> = b.completions().collect();
        assert_eq!((c[0].user_data, c[0].res), (i as u64, 0));
    }
    let got = target.join().expect("target thread");
    let seen: Vec<_> = got.iter().map(|c| (c.user_data, c.res, c.flags)).collect();
    assert_eq!(
        seen,
        vec![
            (0x100, 7, 0),
            (0x101, 8, abi::IORING_CQE_F_MORE),
            (0x102, 9, 0)
        ]
    );
    // The target ring is gone with its thread.
    // SAFETY: a MSG_RING names no memory.
    unsafe { b.push(&msg(fd, 9, 1, 0, 0)) }.expect("SQ room");
    b.submit_and_wait(1).expect("wait");
    let c: Vec<_> = b.completions().collect();
    assert_eq!(c[0].res, -libc::EBADF);
}
