//! The differential conformance suite: every scenario on the kernel's io_uring
//! and on ringline, compared (see the crate docs). Fails on a mismatch in a
//! scenario expected to match, or if ringline panics; known differences and gaps
//! are listed in the summary without failing. The kernel side is skipped, with a
//! message, only where io_uring is unavailable.
//!
//! `RINGLINE_CONFORMANCE_ONLY=name[,name]` runs a subset;
//! `RINGLINE_CONFORMANCE_NO_KERNEL=1` skips the kernel side.

use std::io::Write as _;

use ringline_conformance::runner::{self, Verdict};
use ringline_conformance::scenarios;

#[test]
fn differential_suite() {
    let only = ringline_conformance::env_list("RINGLINE_CONFORMANCE_ONLY");
    let kernel = ringline_conformance::kernel_side("conformance");
    // One test runs every scenario in turn: the kernel backend closes the fds it
    // created by number, which is only safe with no other test thread opening fds.
    let reports = runner::run_all(&scenarios::all(), &only, kernel);
    // The full table is in the captured output (`-- --nocapture` shows it); the
    // summary and the scenarios that differ go straight to stderr, so they show
    // in every `cargo test` run.
    println!("{}", runner::table(&reports));
    let mut err = std::io::stderr();
    let _ = writeln!(err, "conformance: {}", runner::summary(&reports));
    for r in reports
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Match | Verdict::KernelSkipped))
    {
        let _ = writeln!(err, "  {:<34} {}", r.scenario.name, r.verdict.label());
    }
    let bad: Vec<&str> = reports
        .iter()
        .filter(|r| r.verdict == Verdict::Mismatch || r.ringline_broke())
        .map(|r| r.scenario.name)
        .collect();
    assert!(
        bad.is_empty(),
        "conformance mismatches (see the table above): {bad:?}"
    );
}
