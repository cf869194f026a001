//! Reading the machine's clocks by id. The crate's third opt-out from
//! `#![deny(unsafe_code)]` (after `usermem` and `hint`): one `clock_gettime`
//! call, which std offers for no clock but through `Instant` (opaque) and
//! `SystemTime` (REALTIME only). Used for absolute TIMEOUTs, off the data
//! path.
#![allow(unsafe_code)]

/// The clock `clock` (`libc::CLOCK_MONOTONIC`, `_BOOTTIME`, `_REALTIME`) now,
/// in µs since its epoch.
pub fn now_us(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec that outlives the call;
    // clock_gettime writes only it. The ids passed are constants every Linux
    // has, so the call cannot fail (and on failure `now` stays zero).
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_agree_with_std() {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let ours = super::now_us(libc::CLOCK_REALTIME);
        assert!(ours.abs_diff(real) < 1_000_000, "{ours} vs {real}");
        let a = super::now_us(libc::CLOCK_MONOTONIC);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = super::now_us(libc::CLOCK_MONOTONIC);
        assert!(b >= a + 5_000, "monotonic advanced {} µs", b - a);
        assert!(
            super::now_us(libc::CLOCK_BOOTTIME) >= a,
            "boottime >= monotonic"
        );
    }
}
