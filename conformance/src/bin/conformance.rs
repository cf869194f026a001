//! Runs the differential suite and prints the table; `--write PATH` also writes
//! the Markdown report (`docs/conformance.md`) and runs the prep-check sweep,
//! writing `sweep.md` next to it and its totals into the report. `--sweep`
//! runs only the sweep (with `--only`: the baselines whose name contains it)
//! and prints every difference.
//!
//! ```text
//! ringline-conformance [--write PATH] [--only NAME]... [--no-kernel] [--sweep]
//! ```

use ringline_conformance::kernel::KernelBackend;
use ringline_conformance::runner::{self, Verdict};
use ringline_conformance::scenarios;
use ringline_conformance::sweep::{self, Class};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut write = None;
    let mut only = Vec::new();
    let mut kernel = true;
    let mut sweep_only = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--write" => write = args.next(),
            "--only" => only.extend(args.next()),
            "--no-kernel" => kernel = false,
            "--sweep" => sweep_only = true,
            "-h" | "--help" => {
                println!(
                    "ringline-conformance [--write PATH] [--only NAME]... [--no-kernel] [--sweep]"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if kernel {
        if let Err(e) = KernelBackend::probe() {
            eprintln!("kernel io_uring unavailable ({e}): running the ringline side only");
            kernel = false;
        }
    }
    if sweep_only {
        let s = sweep::run(&sweep::Options {
            only,
            no_kernel: !kernel,
        });
        let all = sweep::specs();
        for r in s.results.iter().filter(|r| r.class != Class::Match) {
            let sp = &all[r.case.spec];
            println!(
                "{:?} | {} | {} | kernel: {} | ringline: {}",
                r.class,
                sp.name,
                r.case.perturb.label(sp.op),
                r.kernel.as_deref().unwrap_or("-"),
                r.ringline
            );
        }
        println!("{}", sweep::summary(&s));
        if let Some(path) = write {
            write_file(&path, &sweep::markdown(&s, &runner::kernel_release()));
        }
        if s.results.iter().any(|r| r.class == Class::Mismatch) {
            std::process::exit(1);
        }
        return;
    }
    let reports = runner::run_all(&scenarios::all(), &only, kernel);
    print!("{}", runner::table(&reports));
    let mut failed = reports
        .iter()
        .any(|r| r.verdict == Verdict::Mismatch || r.ringline_broke());
    if let Some(path) = write {
        let mut md = runner::markdown(&reports, &runner::kernel_release());
        if only.is_empty() {
            let s = sweep::run(&sweep::Options {
                only: Vec::new(),
                no_kernel: !kernel,
            });
            println!("sweep: {}", sweep::summary(&s));
            failed |= s.results.iter().any(|r| r.class == Class::Mismatch);
            md.push('\n');
            md.push_str(&sweep::totals_markdown(&s));
            let sweep_path = std::path::Path::new(&path).with_file_name("sweep.md");
            write_file(
                &sweep_path.to_string_lossy(),
                &sweep::markdown(&s, &runner::kernel_release()),
            );
        }
        write_file(&path, &md);
    }
    if failed {
        std::process::exit(1);
    }
}

fn write_file(path: &str, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("writing {path}: {e}");
        std::process::exit(2);
    }
    println!("wrote {path}");
}
