//! CQ overflow: backlog, IORING_SQ_CQ_OVERFLOW, in-order flush, multishot ends.

use ringline_ring::opcode;

use super::R;
use crate::Ctx;

/// Pushes NOPs injecting `from..to` (user_data 200) in batches of the SQ size (4).
fn nops(c: &mut Ctx, from: i32, to: i32) -> R {
    let mut i = from;
    while i < to {
        for _ in 0..4 {
            if i < to {
                c.push_safe(
                    "nop",
                    opcode::Nop::new().inject_result(i).user_data(200).build(),
                )?;
                i += 1;
            }
        }
        c.submit();
    }
    Ok(())
}

fn record_nops(c: &mut Ctx) {
    let v: Vec<String> = c.cqes(200).iter().map(|x| x.res.to_string()).collect();
    c.line(format!("nop results in order: {}", v.join(" ")));
}

pub fn in_order(c: &mut Ctx) -> R {
    nops(c, 0, 20)?;
    c.pump();
    c.record_flags("20 NOPs, not reaped", true);
    c.settle(|l| l.iter().filter(|x| x.user_data == 200).count() >= 20);
    record_nops(c);
    c.record_flags("after reaping", false);
    Ok(())
}

pub fn new_after_backlog(c: &mut Ctx) -> R {
    nops(c, 0, 10)?;
    c.pump();
    c.record_flags("10 NOPs, not reaped", true);
    // Three slots free up, but the app does not enter: the backlog stays.
    c.reap_some(3);
    c.record_flags("3 reaped without entering", true);
    nops(c, 10, 13)?;
    c.settle(|l| l.iter().filter(|x| x.user_data == 200).count() >= 13);
    record_nops(c);
    c.record_flags("after reaping", false);
    Ok(())
}

pub fn multishot_ends(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    c.quiet();
    nops(c, 0, 10)?;
    c.pump();
    c.record_flags("10 NOPs, not reaped", true);
    c.backend().peer_connect(l)?;
    c.pump();
    c.settle(|l| {
        l.iter().filter(|x| x.user_data == 200).count() >= 10 && l.iter().any(|x| x.user_data == 1)
    });
    c.record_order(&[200, 1]);
    c.record_flags("after reaping", false);
    Ok(())
}
