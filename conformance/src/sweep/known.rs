//! The sweep's documented differences: each case where ringline answers
//! differently on purpose, with the reason (shown in `docs/sweep.md`).

use super::Perturb;

/// The reason ringline differs on `spec` with `p`, if it does on purpose.
pub fn known(spec: &str, p: Perturb) -> Option<&'static str> {
    Some(match (spec, p) {
        ("SOCKET", Perturb::Off(2)) => {
            "SOCK_DGRAM: ringline has TCP only; a UDP socket is -EPROTONOSUPPORT (Linux creates one)"
        }
        ("SEND_ZC" | "SENDMSG_ZC", Perturb::Flag(1)) => {
            "IO_DRAIN on a zero-copy send: Linux 6.18 does not complete it (measured: alone on \
             a fresh ring, no CQE within 300 ms, and every later SQE, a cancel included, waits \
             behind it); ringline sends, posts both CQEs and goes on: it does not reproduce a \
             request that never completes"
        }
        _ => return None,
    })
}
