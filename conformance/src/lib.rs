//! # ringline-conformance
//!
//! A differential test of ringline against the Linux kernel's io_uring: the same
//! scenario (a short script that sets up sockets and buffer rings, submits SQEs,
//! has a peer connect, send and close, and reaps CQEs) runs on two backends:
//!
//! - [`kernel::KernelBackend`]: Linux io_uring (the `io-uring` crate) with real TCP
//!   sockets on 127.0.0.1, the peer being plain kernel sockets;
//! - [`ringline_backend::RinglineBackend`]: a ringline engine with a second engine
//!   as the peer, joined by the loopback wire, on a manual clock.
//!
//! Both receive the very same SQE bytes (built with `ringline_ring::opcode`).
//! What comes out is normalised ([`ctx`]) and compared line by line
//! ([`runner`]). A scenario that differs on purpose says so ([`Expect::Known`]),
//! as does one that hits a feature ringline lacks yet ([`Expect::Gap`]); any
//! other difference is a mismatch and fails `cargo test`.
//!
//! `cargo run -p ringline-conformance -- --write docs/conformance.md` regenerates
//! the conformance report.
#![warn(missing_docs)]

pub mod backend;
pub mod ctx;
pub mod kernel;
pub mod ringline_backend;
pub mod runner;
pub mod scenarios;
pub mod sweep;

pub use backend::{Backend, Kind, PeerId, RingSize};
pub use ctx::Ctx;

/// `ECANCELED` for errno 125, `errno 4242` for unknown values.
pub fn errno_name(errno: i32) -> String {
    match ringline_ring::Errno(errno).name() {
        Some(n) => n.to_string(),
        None => match errno {
            libc::EIO => "EIO".into(),
            libc::EBADMSG => "EBADMSG".into(),
            libc::E2BIG => "E2BIG".into(),
            libc::ESPIPE => "ESPIPE".into(),
            libc::EPERM => "EPERM".into(),
            libc::EBADFD => "EBADFD".into(),
            // Kernel-internal (include/linux/errno.h), not meant to reach userspace.
            512 => "ERESTARTSYS".into(),
            _ => format!("errno{errno}"),
        },
    }
}

/// What a scenario expects of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Both backends must produce the same lines.
    Match,
    /// ringline differs on purpose; the reason is documented.
    Known(&'static str),
    /// A feature ringline does not have yet; the difference is reported, not failed.
    Gap(&'static str),
}

/// One scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Short unique name.
    pub name: &'static str,
    /// Area (accept, recv, poll, ...), for grouping in the report.
    pub area: &'static str,
    /// What it does, one sentence.
    pub about: &'static str,
    /// The app ring's size.
    pub ring: RingSize,
    /// What the comparison should show.
    pub expect: Expect,
    /// The script.
    pub run: fn(&mut Ctx) -> Result<(), String>,
}

/// Whether to run the kernel side: not when `RINGLINE_CONFORMANCE_NO_KERNEL`
/// is set or io_uring is unavailable (each says so on stderr, prefixed with
/// `tag`).
pub fn kernel_side(tag: &str) -> bool {
    use std::io::Write as _;
    if std::env::var_os("RINGLINE_CONFORMANCE_NO_KERNEL").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "{tag}: SKIPPING the kernel side (RINGLINE_CONFORMANCE_NO_KERNEL)"
        );
        return false;
    }
    match kernel::KernelBackend::probe() {
        Ok(()) => true,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "{tag}: SKIPPING the kernel side: io_uring is unavailable here ({e}); running ringline only"
            );
            false
        }
    }
}

/// The comma-separated names in environment variable `var` (none when unset).
pub fn env_list(var: &str) -> Vec<String> {
    std::env::var(var)
        .map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
