//! The `ringline` command.
#![deny(unsafe_code)]

mod demo;
mod echo;
mod loadgen;
mod sys;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ringline", version, about = "A kernel-bypass TCP stack driven through an io_uring-compatible ring")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo server and load generator, each on its own engine and thread,
    /// joined by the in-memory loopback wire (no NIC, no DPDK).
    Demo(demo::DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo::run(&a),
    };
    if let Err(e) = r {
        eprintln!("ringline: {e}");
        std::process::exit(1);
    }
}
