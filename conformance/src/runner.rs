//! Runs scenarios on both backends, compares, and reports (a text table for the
//! test log, Markdown for `docs/conformance.md`).

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::backend::{Backend, Kind};
use crate::kernel::KernelBackend;
use crate::ringline_backend::RinglineBackend;
use crate::{Ctx, Expect, Scenario};

/// The comparison's result for one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same lines on both backends.
    Match,
    /// Different, as documented ([`Expect::Known`]).
    Known,
    /// Different: ringline lacks the feature ([`Expect::Gap`]).
    Gap,
    /// Different, and the scenario expects a match: a bug (fails the test).
    Mismatch,
    /// Marked Known/Gap but now the same: the marker is stale (does not fail).
    NowMatches,
    /// The kernel side could not run (io_uring unavailable); ringline ran alone.
    KernelSkipped,
}

impl Verdict {
    /// The label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Known => "known difference",
            Verdict::Gap => "gap",
            Verdict::Mismatch => "MISMATCH",
            Verdict::NowMatches => "matches (marker stale)",
            Verdict::KernelSkipped => "kernel skipped",
        }
    }
}

/// The result of one scenario.
#[derive(Clone)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// The kernel's lines (`None` when skipped).
    pub kernel: Option<Vec<String>>,
    /// ringline's lines.
    pub ringline: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Remarks (a kernel retry, a panic).
    pub note: Option<String>,
}

impl Report {
    /// Whether ringline's run crashed or its script failed.
    pub fn ringline_broke(&self) -> bool {
        self.ringline
            .iter()
            .any(|l| l.starts_with("PANIC") || l.starts_with("SCRIPT ERROR"))
    }
}

/// Runs `sc` on one backend; `Err` if that backend cannot be created.
pub fn run_on(kind: Kind, sc: &Scenario) -> Result<Vec<String>, String> {
    let b: Box<dyn Backend> = match kind {
        Kind::Kernel => Box::new(KernelBackend::new(sc.ring)?),
        Kind::Ringline => Box::new(RinglineBackend::new(sc.ring)?),
    };
    let mut ctx = Ctx::new(b);
    let r = catch_unwind(AssertUnwindSafe(|| (sc.run)(&mut ctx)));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => ctx.line(format!("SCRIPT ERROR: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            ctx.line(format!("PANIC: {msg}"));
        }
    }
    Ok(ctx.finish())
}

/// Runs one scenario on both backends (the kernel only if `kernel` is true) and
/// compares. A kernel run that differs is repeated once, to tell a timing
/// accident from a real difference.
pub fn run_scenario(sc: &Scenario, kernel: bool) -> Report {
    let ringline =
        run_on(Kind::Ringline, sc).unwrap_or_else(|e| vec![format!("SCRIPT ERROR: backend: {e}")]);
    if !kernel {
        return Report {
            scenario: *sc,
            kernel: None,
            ringline,
            verdict: Verdict::KernelSkipped,
            note: None,
        };
    }
    let mut note = None;
    let mut k = match run_on(Kind::Kernel, sc) {
        Ok(k) => k,
        Err(e) => {
            return Report {
                scenario: *sc,
                kernel: None,
                ringline,
                verdict: Verdict::KernelSkipped,
                note: Some(format!("kernel backend unavailable: {e}")),
            }
        }
    };
    if k != ringline {
        if let Ok(k2) = run_on(Kind::Kernel, sc) {
            if k2 != k {
                note = Some("the kernel's outcome varied between two runs (timing); the second run is shown".into());
            }
            k = k2;
        }
    }
    let same = k == ringline;
    let verdict = match (sc.expect, same) {
        (Expect::Match, true) => Verdict::Match,
        (Expect::Match, false) => Verdict::Mismatch,
        (Expect::Known(_), false) => Verdict::Known,
        (Expect::Gap(_), false) => Verdict::Gap,
        (_, true) => Verdict::NowMatches,
    };
    Report {
        scenario: *sc,
        kernel: Some(k),
        ringline,
        verdict,
        note,
    }
}

/// Runs `scenarios` (all of them when `only` is empty, else those named).
pub fn run_all(scenarios: &[Scenario], only: &[String], kernel: bool) -> Vec<Report> {
    scenarios
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| s.name.contains(o.as_str())))
        .map(|s| run_scenario(s, kernel))
        .collect()
}

fn count(reports: &[Report], v: Verdict) -> usize {
    reports.iter().filter(|r| r.verdict == v).count()
}

/// One line: `N scenarios: a match, b known, c gap, d MISMATCH ...`.
pub fn summary(reports: &[Report]) -> String {
    format!(
        "{} scenarios: {} match, {} known difference, {} gap, {} MISMATCH, {} marker stale, {} kernel skipped",
        reports.len(),
        count(reports, Verdict::Match),
        count(reports, Verdict::Known),
        count(reports, Verdict::Gap),
        count(reports, Verdict::Mismatch),
        count(reports, Verdict::NowMatches),
        count(reports, Verdict::KernelSkipped),
    )
}

/// The first line where the two outcomes differ: (kernel, ringline).
fn first_difference(k: &[String], r: &[String]) -> (String, String) {
    let n = k.len().max(r.len());
    for i in 0..n {
        let a = k.get(i).cloned().unwrap_or_else(|| "(no line)".into());
        let b = r.get(i).cloned().unwrap_or_else(|| "(no line)".into());
        if a != b {
            return (a, b);
        }
    }
    (String::new(), String::new())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// A text table for the test log: scenario, kernel outcome, ringline outcome,
/// verdict (outcomes: the first differing line, or the first line when equal),
/// then the full outcomes of every scenario that differs.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<38} {:<44} {:<44} verdict",
        "scenario", "kernel", "ringline"
    );
    let _ = writeln!(s, "{}", "-".repeat(150));
    for r in reports {
        let (k, g) = match &r.kernel {
            Some(k) if *k != r.ringline => first_difference(k, &r.ringline),
            Some(k) => (k.first().cloned().unwrap_or_default(), "same".into()),
            None => (
                "(skipped)".into(),
                r.ringline.first().cloned().unwrap_or_default(),
            ),
        };
        let _ = writeln!(
            s,
            "{:<38} {:<44} {:<44} {}",
            r.scenario.name,
            clip(&k, 44),
            clip(&g, 44),
            r.verdict.label()
        );
    }
    let _ = writeln!(s, "{}", summary(reports));
    for r in reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Mismatch | Verdict::Gap | Verdict::Known))
    {
        let _ = writeln!(
            s,
            "\n== {} ({}): {}",
            r.scenario.name,
            r.verdict.label(),
            r.scenario.about
        );
        match r.scenario.expect {
            Expect::Known(why) | Expect::Gap(why) => {
                let _ = writeln!(s, "   why: {why}");
            }
            Expect::Match => {}
        }
        if let Some(n) = &r.note {
            let _ = writeln!(s, "   note: {n}");
        }
        let k = r.kernel.clone().unwrap_or_default();
        let n = k.len().max(r.ringline.len());
        for i in 0..n {
            let a = k.get(i).map(String::as_str).unwrap_or("");
            let b = r.ringline.get(i).map(String::as_str).unwrap_or("");
            let mark = if a == b { " " } else { "≠" };
            let _ = writeln!(s, " {mark} kernel:   {a}");
            if a != b {
                let _ = writeln!(s, "   ringline: {b}");
            }
        }
    }
    s
}

fn md_cell(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.replace('|', "\\|").replace('<', "&lt;"))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// `docs/conformance.md`.
pub fn markdown(reports: &[Report], kernel_release: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# io_uring conformance: Linux vs ringline\n");
    let _ = writeln!(
        s,
        "Generated by `cargo run -p ringline-conformance -- --write docs/conformance.md` \
         (the differential suite `conformance/`, also run by `cargo test`). Kernel: Linux {kernel_release}.\n"
    );
    let _ = writeln!(
        s,
        "Each scenario is a short script (`conformance/src/scenarios/`) run on two backends: the \
         kernel's io_uring (the `io-uring` crate, real TCP sockets on 127.0.0.1, ring set up with \
         `DEFER_TASKRUN | SINGLE_ISSUER | SUBMIT_ALL`, the peer being kernel sockets) and ringline (the app \
         engine plus a peer engine on the loopback wire, manual clock). Both get the same SQE bytes, built \
         with `ringline_ring::opcode`; the same `BufRing` code fills both backends' provided-buffer rings.\n"
    );
    let _ = writeln!(
        s,
        "Normalised before comparing: socket numbers (`fd`); `IORING_CQE_F_SOCK_NONEMPTY` (masked: it \
         depends on how loopback batched the data); the split of a byte stream across CQEs (consecutive data \
         CQEs with equal flags merge into one `data(N B)`; the content is checked against what the peer sent, \
         every CQE against its buffer size, and buffer ids against the order the buffers were provided, in CQE order across every request that shares the group). \
         Compared exactly: results and errnos per request, `F_MORE`, `F_BUFFER` with the buffer id, which CQE \
         ends a request, CQE order where a scenario records it (`order:`), and `IORING_SQ_CQ_OVERFLOW`. \
         Tokens: `+M` = `F_MORE`, `+B3` = `F_BUFFER` with buffer id 3, `+NOTIF` = `F_NOTIF`.\n"
    );
    let _ = writeln!(s, "**{}**\n", summary(reports));
    let _ = writeln!(s, "| # | scenario | area | verdict | what it does |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | [`{}`](#{}) | {} | {} | {} |",
            i + 1,
            r.scenario.name,
            r.scenario.name,
            r.scenario.area,
            r.verdict.label(),
            r.scenario.about
        );
    }
    let _ = writeln!(s, "\n## Outcomes\n");
    let _ = writeln!(s, "| scenario | kernel | ringline | verdict |");
    let _ = writeln!(s, "|---|---|---|---|");
    for r in reports {
        let k = r.kernel.clone().unwrap_or_else(|| vec!["(not run)".into()]);
        let g = if r.kernel.as_ref() == Some(&r.ringline) {
            vec!["same".to_string()]
        } else {
            r.ringline.clone()
        };
        let mut v = r.verdict.label().to_string();
        match r.scenario.expect {
            Expect::Known(why) | Expect::Gap(why) => {
                v.push_str(": ");
                v.push_str(&why.replace('|', "\\|"));
            }
            Expect::Match => {}
        }
        if let Some(n) = &r.note {
            v.push_str(&format!(" ({n})"));
        }
        let _ = writeln!(
            s,
            "| <a id=\"{}\"></a>`{}` | {} | {} | {} |",
            r.scenario.name,
            r.scenario.name,
            md_cell(&k),
            md_cell(&g),
            v
        );
    }
    s
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
