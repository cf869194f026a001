//! Legacy provided buffers: PROVIDE_BUFFERS and REMOVE_BUFFERS.

use ringline_ring::opcode;

use super::{call, call_safe, pattern, R};
use crate::Ctx;

pub fn provide_recv(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = c.legacy_mem(7, 4, 128, 10);
    // SAFETY: `mem` is context memory, alive until the context drops, after the backend.
    let r = unsafe {
        call(
            c,
            "provide",
            opcode::ProvideBuffers::new(mem, 128, 4, 7, 10)
                .user_data(1)
                .build(),
        )
    }?;
    c.record(1);
    if r.res == 0 {
        c.provided(7, 10..14);
    }
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 7).user_data(2).build())?;
    c.stream(2, 7, false);
    let data = pattern(300, 20);
    c.peer_send(p, &data)?;
    c.wait_stream(2, data.len());
    c.record_stream(2, &data, false);
    Ok(())
}

pub fn remove(c: &mut Ctx) -> R {
    let mem = c.legacy_mem(8, 8, 64, 0);
    // SAFETY: `mem` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "provide 8",
            opcode::ProvideBuffers::new(mem, 64, 8, 8, 0)
                .user_data(1)
                .build(),
        )
    }?;
    call_safe(
        c,
        "remove 3",
        opcode::RemoveBuffers::new(3, 8).user_data(2).build(),
    )?;
    call_safe(
        c,
        "remove 10",
        opcode::RemoveBuffers::new(10, 8).user_data(3).build(),
    )?;
    call_safe(
        c,
        "remove 1 from the emptied group",
        opcode::RemoveBuffers::new(1, 8).user_data(4).build(),
    )?;
    call_safe(
        c,
        "remove from an unknown group",
        opcode::RemoveBuffers::new(1, 99).user_data(5).build(),
    )?;
    c.record_all(&[1, 2, 3, 4, 5]);
    Ok(())
}

pub fn provide_on_ring(c: &mut Ctx) -> R {
    c.buf_ring(9, 8, 64, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    let mem = c.legacy_mem(19, 4, 64, 0);
    // SAFETY: `mem` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "provide into ring group 9",
            opcode::ProvideBuffers::new(mem, 64, 4, 9, 0)
                .user_data(1)
                .build(),
        )
    }?;
    call_safe(
        c,
        "remove from ring group 9",
        opcode::RemoveBuffers::new(1, 9).user_data(2).build(),
    )?;
    c.record_all(&[1, 2]);
    Ok(())
}

pub fn legacy_empty(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = c.legacy_mem(11, 1, 64, 5);
    // SAFETY: `mem` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "provide 1",
            opcode::ProvideBuffers::new(mem, 64, 1, 11, 5)
                .user_data(1)
                .build(),
        )
    }?;
    c.submit_one_safe(
        "recv 1",
        opcode::Recv::new(fd, std::ptr::null_mut(), 64)
            .buf_group(11)
            .user_data(2)
            .build(),
    )?;
    c.peer_send(p, &pattern(30, 21))?;
    c.wait_final(2);
    call_safe(
        c,
        "recv 2",
        opcode::Recv::new(fd, std::ptr::null_mut(), 64)
            .buf_group(11)
            .user_data(3)
            .build(),
    )?;
    c.record_all(&[1, 2, 3]);
    Ok(())
}
