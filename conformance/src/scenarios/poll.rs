//! POLL_ADD (one-shot, multishot), POLL_REMOVE and its update flags.

use ringline_ring::abi;
use ringline_ring::opcode;

use super::{call_safe, R};
use crate::Ctx;

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;

pub fn oneshot_ready(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    call_safe(
        c,
        "poll(POLLOUT)",
        opcode::PollAdd::new(fd, POLLOUT).user_data(1).build(),
    )?;
    c.record(1);
    Ok(())
}

pub fn oneshot_trigger(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN)",
        opcode::PollAdd::new(fd, POLLIN).user_data(1).build(),
    )?;
    c.quiet();
    c.record(1);
    c.peer_send(p, b"ping")?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn multishot_triggers(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN, multi)",
        opcode::PollAdd::new(fd, POLLIN)
            .multi()
            .user_data(1)
            .build(),
    )?;
    c.quiet();
    c.record(1);
    for k in 1..=3 {
        c.peer_send(p, b"ping")?;
        c.wait_n(1, k);
    }
    c.record(1);
    c.submit_one_safe(
        "poll_remove",
        opcode::PollRemove::new(1).user_data(2).build(),
    )?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn multishot_ready_at_arm(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, b"ping")?;
    c.quiet();
    c.submit_one_safe(
        "poll(POLLIN, multi)",
        opcode::PollAdd::new(fd, POLLIN)
            .multi()
            .user_data(1)
            .build(),
    )?;
    c.wait_n(1, 1);
    c.record(1);
    c.peer_send(p, b"pong")?;
    c.wait_n(1, 2);
    c.record(1);
    Ok(())
}

pub fn update_events(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN)",
        opcode::PollAdd::new(fd, POLLIN).user_data(1).build(),
    )?;
    c.quiet();
    c.submit_one_safe(
        "poll_update(events=POLLOUT)",
        opcode::PollRemove::new(1)
            .update_events(POLLOUT)
            .user_data(2)
            .build(),
    )?;
    c.wait_final(2);
    c.quiet();
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn update_user_data(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN)",
        opcode::PollAdd::new(fd, POLLIN).user_data(1).build(),
    )?;
    c.alias(11, "poll(new user_data)", abi::IORING_OP_POLL_ADD);
    c.quiet();
    c.submit_one_safe(
        "poll_update(user_data)",
        opcode::PollRemove::new(1)
            .update_user_data(11)
            .user_data(2)
            .build(),
    )?;
    c.wait_final(2);
    c.peer_send(p, b"ping")?;
    c.wait_final(11);
    c.record_order(&[1, 2, 11]);
    Ok(())
}

pub fn remove_enoent(c: &mut Ctx) -> R {
    call_safe(
        c,
        "poll_remove(unknown)",
        opcode::PollRemove::new(12345).user_data(1).build(),
    )?;
    c.record(1);
    Ok(())
}

pub fn rdhup(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let ev = (libc::POLLIN | libc::POLLRDHUP) as u32;
    c.submit_one_safe(
        "poll(POLLIN|POLLRDHUP)",
        opcode::PollAdd::new(fd, ev).user_data(1).build(),
    )?;
    c.quiet();
    c.backend().peer_shutdown_write(p);
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn listener(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    c.submit_one_safe(
        "poll(listener, POLLIN)",
        opcode::PollAdd::new(l, POLLIN).user_data(1).build(),
    )?;
    c.quiet();
    c.record(1);
    c.backend().peer_connect(l)?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

/// What a POLL_ADD without POLLRDHUP reports once the peer sent FIN: one
/// armed before the FIN (POLLIN), ones armed after it (POLLIN; POLLOUT).
pub fn fin_masks(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN) before FIN",
        opcode::PollAdd::new(fd, POLLIN).user_data(1).build(),
    )?;
    c.submit_one_safe(
        "poll(POLLPRI) before FIN",
        opcode::PollAdd::new(fd, libc::POLLPRI as u32)
            .user_data(5)
            .build(),
    )?;
    c.quiet();
    c.backend().peer_shutdown_write(p);
    c.wait_finals(&[1, 5]);
    c.record(1);
    c.record(5);
    c.quiet();
    call_safe(
        c,
        "poll(POLLIN) after FIN",
        opcode::PollAdd::new(fd, POLLIN).user_data(2).build(),
    )?;
    c.record(2);
    call_safe(
        c,
        "poll(POLLOUT) after FIN",
        opcode::PollAdd::new(fd, POLLOUT).user_data(3).build(),
    )?;
    c.record(3);
    let all = (libc::POLLIN | libc::POLLOUT | libc::POLLPRI | libc::POLLRDHUP) as u32;
    call_safe(
        c,
        "poll(IN|OUT|PRI|RDHUP) after FIN",
        opcode::PollAdd::new(fd, all).user_data(4).build(),
    )?;
    c.record(4);
    Ok(())
}

/// A multishot POLLOUT on an idle connection: one CQE at arm; then the peer
/// sends three times and the app writes a little that the peer reads (no
/// write-space wake-up: the send buffer never filled); then the peer's FIN
/// (a state change, which wakes it); then POLL_REMOVE.
pub fn multishot_pollout_quiet(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLOUT, multi)",
        opcode::PollAdd::new(fd, POLLOUT)
            .multi()
            .user_data(1)
            .build(),
    )?;
    c.wait_n(1, 1);
    c.quiet();
    c.record(1);
    for _ in 0..3 {
        c.peer_send(p, b"ping")?;
        c.quiet();
    }
    c.backend().peer_start_reading(p);
    let d = c.bytes(b"hello");
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { super::call(c, "send", opcode::Send::new(fd, d, 5).user_data(2).build()) }?;
    c.peer_wait(p, 5);
    c.quiet();
    c.record(1);
    // The peer's FIN is a state change: it wakes the poll.
    c.backend().peer_shutdown_write(p);
    c.wait_n(1, 2);
    c.quiet();
    c.record(1);
    call_safe(
        c,
        "poll_remove",
        opcode::PollRemove::new(1).user_data(3).build(),
    )?;
    c.wait_final(1);
    c.record_order(&[1, 3]);
    Ok(())
}

/// A multishot POLLOUT, then a SEND that fills the send buffer (partial):
/// when the peer drains it, the poll fires again (a real write-space
/// wake-up), once.
pub fn multishot_pollout_space(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLOUT, multi)",
        opcode::PollAdd::new(fd, POLLOUT)
            .multi()
            .user_data(1)
            .build(),
    )?;
    c.wait_n(1, 1);
    c.quiet();
    c.record(1);
    let len = 16usize << 20;
    let data = super::pattern(len, 52);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    let r = unsafe {
        super::call(
            c,
            "send(16 MiB)",
            opcode::Send::new(fd, d, len as u32).user_data(2).build(),
        )
    }?;
    let partial = r.res > 0 && (r.res as usize) < len;
    c.line(format!("send(16 MiB): partial={partial}"));
    c.backend().peer_start_reading(p);
    c.peer_wait(p, r.res.max(0) as usize);
    c.quiet();
    c.record(1);
    call_safe(
        c,
        "poll_remove",
        opcode::PollRemove::new(1).user_data(3).build(),
    )?;
    c.wait_final(1);
    c.record_order(&[1, 3]);
    Ok(())
}

/// A multishot POLLIN on a socket whose data the app leaves unread: one CQE
/// per arrival, none for the ACKs of what the app sends meanwhile.
pub fn multishot_pollin_unread(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    c.submit_one_safe(
        "poll(POLLIN, multi)",
        opcode::PollAdd::new(fd, POLLIN)
            .multi()
            .user_data(1)
            .build(),
    )?;
    c.quiet();
    c.peer_send(p, b"ping")?;
    c.wait_n(1, 1);
    c.quiet();
    c.record(1);
    let d = c.bytes(b"hello");
    for k in 0..3u64 {
        // SAFETY: `d` is context memory, alive until the context drops, after the backend.
        unsafe {
            super::call(
                c,
                "send",
                opcode::Send::new(fd, d, 5).user_data(10 + k).build(),
            )
        }?;
        c.peer_wait(p, 5 * (k as usize + 1));
        c.quiet();
    }
    c.record(1);
    c.peer_send(p, b"pong")?;
    c.wait_n(1, 2);
    c.quiet();
    c.record(1);
    Ok(())
}
