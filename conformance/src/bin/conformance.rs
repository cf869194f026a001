//! Runs the differential suite and prints the table; `--write PATH` also writes
//! the Markdown report (`docs/conformance.md`).
//!
//! ```text
//! ringline-conformance [--write PATH] [--only NAME]... [--no-kernel]
//! ```

use ringline_conformance::kernel::KernelBackend;
use ringline_conformance::runner::{self, Verdict};
use ringline_conformance::scenarios;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut write = None;
    let mut only = Vec::new();
    let mut kernel = true;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--write" => write = args.next(),
            "--only" => only.extend(args.next()),
            "--no-kernel" => kernel = false,
            "-h" | "--help" => {
                println!("ringline-conformance [--write PATH] [--only NAME]... [--no-kernel]");
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
    let reports = runner::run_all(&scenarios::all(), &only, kernel);
    print!("{}", runner::table(&reports));
    if let Some(path) = write {
        let md = runner::markdown(&reports, &runner::kernel_release());
        if let Err(e) = std::fs::write(&path, md) {
            eprintln!("writing {path}: {e}");
            std::process::exit(2);
        }
        println!("wrote {path}");
    }
    if reports
        .iter()
        .any(|r| r.verdict == Verdict::Mismatch || r.ringline_broke())
    {
        std::process::exit(1);
    }
}
