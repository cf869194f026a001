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
