//! The EAL's runtime directory and file prefix: a busy prefix is refused
//! with a message naming the process that holds it (not "Success
//! (rte_errno 0)"), and the runtime directory (`/var/run/dpdk/<prefix>` for
//! root) is gone after the EAL is cleaned up, after a failed init, and
//! after an exit that never dropped the EAL. Each scenario runs in child
//! processes (the EAL starts once per process): this test binary re-run
//! with `RINGLINE_DPDK_SCENARIO` set.
#![cfg(feature = "dpdk")]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ringline_dataplane::dpdk::{Eal, Mempool, MempoolConfig};

const SCENARIO_VAR: &str = "RINGLINE_DPDK_SCENARIO";
const PREFIX_VAR: &str = "RINGLINE_DPDK_PREFIX";
/// Marks the child's outcome among the EAL's log output.
const OUTCOME: &str = "OUTCOME:";

/// EAL options with a shared config (so the prefix is locked) and `prefix`.
fn args(prefix: &str, extra: &[&str]) -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-telemetry",
        &format!("--file-prefix={prefix}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(extra.iter().map(|s| s.to_string()))
    .collect()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// Where DPDK puts the runtime directory of `prefix` (as `eal_create_runtime_dir`).
fn runtime_dir(prefix: &str) -> PathBuf {
    let base = if is_root() {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    };
    base.join("dpdk").join(prefix)
}

/// The child side of each scenario; returns its outcome.
fn run_scenario(name: &str, prefix: &str) -> String {
    match name {
        // Holds the prefix until its stdin closes, then drops the EAL.
        "hold" => {
            let eal = Eal::init(&args(prefix, &["--vdev=net_ring0"])).expect("EAL");
            let dir = runtime_dir(prefix);
            println!("{OUTCOME} READY {}", dir.join("config").exists());
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            drop(eal);
            format!("dropped; dir left: {}", dir.exists())
        }
        "second" => match Eal::init(&args(prefix, &[])) {
            Ok(_) => "Ok".to_owned(),
            Err(e) => format!("{e:?} | {e}"),
        },
        // A failure after DPDK created the directory (an unknown driver).
        "failed_init" => {
            let r = Eal::init(&args(prefix, &["--vdev=net_nosuchdriver0"]));
            format!(
                "{} | dir left: {}",
                r.err().map(|e| format!("{e:?}")).unwrap_or_default(),
                runtime_dir(prefix).exists()
            )
        }
        // The EAL kept alive past main (a leaked handle, as when a pool
        // stays up for stray mbufs): the exit hook removes the directory.
        "leak" => {
            let eal = Eal::init(&args(prefix, &["--vdev=net_ring0"])).expect("EAL");
            let pool = Mempool::new(
                &eal,
                "leak",
                &MempoolConfig {
                    mbufs: 511,
                    cache_size: 0,
                    ..Default::default()
                },
            )
            .expect("pool");
            let there = runtime_dir(prefix).join("config").exists();
            std::mem::forget(pool);
            std::mem::forget(eal);
            format!("leaked; config was there: {there}")
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// The child side: does nothing unless started by a test below.
#[test]
fn child() {
    if let Ok(name) = std::env::var(SCENARIO_VAR) {
        let prefix = std::env::var(PREFIX_VAR).expect("prefix");
        println!("{OUTCOME} {}", run_scenario(&name, &prefix));
    }
}

fn child_cmd(name: &str, prefix: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut c = Command::new(exe);
    c.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_VAR, name)
        .env(PREFIX_VAR, prefix);
    c
}

fn outcome_of(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.split_once(OUTCOME).map(|(_, o)| o.trim().to_owned()))
}

/// Runs scenario `name` in a child and returns its outcome.
fn in_child(name: &str, prefix: &str) -> String {
    let out = child_cmd(name, prefix).output().expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {name}: the child failed\n{stdout}\n{stderr}"
    );
    outcome_of(&stdout).unwrap_or_else(|| panic!("scenario {name}: no outcome\n{stdout}\n{stderr}"))
}

fn prefix(tag: &str) -> String {
    format!("rlrt{}-{tag}", std::process::id())
}

#[test]
fn a_busy_prefix_names_its_owner_and_keeps_its_directory() {
    let p = prefix("busy");
    let mut holder = child_cmd("hold", &p)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).expect("read") == 0 {
            panic!("the holder exited before it was ready");
        }
        if let Some(o) = outcome_of(&line) {
            assert_eq!(o, "READY true", "the holder's config file");
            break;
        }
    }
    let o = in_child("second", &p);
    let pid = holder.id();
    assert!(o.starts_with("PrefixInUse"), "{o}");
    assert!(o.contains(&format!("pid: Some({pid})")), "{o}");
    let shown = o.split(" | ").nth(1).unwrap_or_default();
    assert!(
        shown.contains(&format!(
            "EAL file prefix \"{p}\" is in use by another DPDK process (pid {pid}"
        )),
        "{shown}"
    );
    assert!(shown.contains("--file-prefix"), "{shown}");
    assert!(
        runtime_dir(&p).join("config").exists(),
        "the refused process removed the holder's runtime directory"
    );
    drop(holder.stdin.take());
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest);
    assert!(holder.wait().expect("wait").success(), "{rest}");
    assert_eq!(
        outcome_of(&rest).as_deref(),
        Some("dropped; dir left: false"),
        "{rest}"
    );
}

#[test]
fn a_failed_init_removes_the_directory_it_created() {
    let p = prefix("failed");
    let o = in_child("failed_init", &p);
    assert_eq!(o, "DeviceSetup | dir left: false");
    assert!(!runtime_dir(&p).exists());
}

#[test]
fn the_directory_goes_at_exit_even_when_the_eal_is_never_dropped() {
    let p = prefix("leak");
    let o = in_child("leak", &p);
    assert_eq!(o, "leaked; config was there: true");
    assert!(
        !runtime_dir(&p).exists(),
        "{} left behind",
        runtime_dir(&p).display()
    );
}
