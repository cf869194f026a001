//! The generated prep-check sweep (see `ringline_conformance::sweep`): every
//! opcode's baseline SQE and each single-field perturbation of it, on the
//! kernel's io_uring and on ringline, compared. Fails on an undocumented
//! difference or a ringline panic. The kernel side is skipped, with a
//! message, only where io_uring is unavailable.
//!
//! `RINGLINE_SWEEP_ONLY=NAME[,NAME]` runs the baselines whose name contains one
//! of them; `RINGLINE_CONFORMANCE_NO_KERNEL=1` skips the kernel side.

use std::io::Write as _;

use ringline_conformance::sweep::{self, Class, Options};

#[test]
fn prep_check_sweep() {
    let only = ringline_conformance::env_list("RINGLINE_SWEEP_ONLY");
    let no_kernel = !ringline_conformance::kernel_side("sweep");
    let mut err = std::io::stderr();
    let s = sweep::run(&Options { only, no_kernel });
    let _ = writeln!(err, "sweep: {}", sweep::summary(&s));
    let bad: Vec<String> = s
        .results
        .iter()
        .filter(|r| r.class == Class::Mismatch || r.ringline.starts_with("PANIC"))
        .map(|r| {
            let sp = &sweep::specs()[r.case.spec];
            format!(
                "{} {}: kernel {} / ringline {}",
                sp.name,
                r.case.perturb.label(sp.op),
                r.kernel.as_deref().unwrap_or("-"),
                r.ringline
            )
        })
        .collect();
    for b in &bad {
        let _ = writeln!(err, "  MISMATCH {b}");
    }
    assert!(
        bad.is_empty(),
        "{} sweep mismatches (listed above)",
        bad.len()
    );
}
