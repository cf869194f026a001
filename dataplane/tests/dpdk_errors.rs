//! EAL and port failure modes: each must come back as a typed `Err`, never a
//! panic or an abort. The EAL can be initialised once per process, so every
//! scenario runs in a child process: the test re-runs this test binary with
//! `RINGLINE_DPDK_SCENARIO` set, the child runs just that scenario (the
//! `child` test) and prints its outcome, and the test checks it.
#![cfg(feature = "dpdk")]

use std::process::Command;

use ringline_dataplane::dpdk::{DpdkError, DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};

const SCENARIO_VAR: &str = "RINGLINE_DPDK_SCENARIO";
/// Marks the child's outcome among the EAL's log output.
const OUTCOME: &str = "OUTCOME:";

/// Common EAL options (no PCI, no shared config) plus `extra`.
fn args(extra: &[&str]) -> Vec<String> {
    [
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix=ringline-test",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

fn outcome<T>(r: Result<T, DpdkError>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs one scenario in this process (the child side) and describes what happened.
fn run_scenario(name: &str) -> String {
    match name {
        "bad_option" => outcome(Eal::init(&args(&[
            "--no-huge",
            "--definitely-not-an-eal-option",
        ]))),
        "unknown_vdev" => outcome(Eal::init(&args(&[
            "--no-huge",
            "-m",
            "128",
            "--vdev=net_nosuchdriver0",
        ]))),
        "no_hugepages" => outcome(Eal::init(&args(&["-m", "64"]))),
        "no_ports" => {
            let eal = Eal::init(&args(&["--no-huge", "-m", "128"])).expect("EAL without devices");
            let pool = Mempool::new(
                &eal,
                "p",
                &MempoolConfig {
                    mbufs: 511,
                    cache_size: 0,
                    ..Default::default()
                },
            )
            .expect("pool");
            let by_name = DpdkPort::open_by_name(&eal, "net_ring0", &pool, &PortConfig::default());
            let by_id = DpdkPort::open(&eal, 0, &pool, &PortConfig::default());
            format!(
                "{} {} {}",
                eal.port_count(),
                outcome(by_name),
                outcome(by_id)
            )
        }
        "bad_port" => {
            let eal =
                Eal::init(&args(&["--no-huge", "-m", "128", "--vdev=net_ring0"])).expect("EAL");
            let pool = Mempool::new(
                &eal,
                "p",
                &MempoolConfig {
                    mbufs: 511,
                    cache_size: 0,
                    ..Default::default()
                },
            )
            .expect("pool");
            let by_name = DpdkPort::open_by_name(&eal, "net_ring7", &pool, &PortConfig::default());
            let by_id = DpdkPort::open(&eal, 5, &pool, &PortConfig::default());
            let tiny = MempoolConfig {
                mbufs: 511,
                cache_size: 0,
                data_room: 1024,
                ..Default::default()
            };
            let small_pool = Mempool::new(&eal, "small", &tiny).expect("pool");
            let small = DpdkPort::open(&eal, 0, &small_pool, &PortConfig::default());
            let dup_pool = Mempool::new(&eal, "p", &MempoolConfig::default());
            // 511 mbufs cannot cover 1024 + 1024 descriptors and a batch.
            let few = DpdkPort::open(&eal, 0, &pool, &PortConfig::default());
            format!(
                "{} | {} | {} | {} | {}",
                outcome(by_name),
                outcome(by_id),
                outcome(small),
                outcome(dup_pool),
                outcome(few)
            )
        }
        "retry" => {
            let first = outcome(Eal::init(&args(&[
                "--no-huge",
                "--definitely-not-an-eal-option",
            ])));
            let second = Eal::init(&args(&["--no-huge", "-m", "128"]));
            let third = outcome(Eal::init(&args(&["--no-huge", "-m", "128"])));
            format!("{first} | {} | {third}", outcome(second))
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Runs scenario `name` in a child process and returns its outcome.
fn in_child(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_VAR, name)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {name}: the child failed\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        // The EAL's usage text goes through C's buffered stdout, so it can
        // share a line with the outcome (which is written whole).
        .find_map(|l| l.split_once(OUTCOME).map(|(_, o)| o.trim().to_owned()))
        .unwrap_or_else(|| panic!("scenario {name}: no outcome\n{stdout}\n{stderr}"))
}

/// The child side: does nothing unless started by `in_child`.
#[test]
fn child() {
    if let Ok(name) = std::env::var(SCENARIO_VAR) {
        println!("{OUTCOME} {}", run_scenario(&name));
    }
}

#[test]
fn unknown_option_is_invalid_arguments() {
    let o = in_child("bad_option");
    assert!(o.starts_with("InvalidArguments"), "{o}");
    assert!(o.contains("--definitely-not-an-eal-option"), "{o}");
}

#[test]
fn unknown_vdev_is_a_device_error() {
    assert_eq!(in_child("unknown_vdev"), "DeviceSetup");
}

#[test]
fn no_devices_means_no_ports() {
    assert_eq!(in_child("no_ports"), "0 NoPorts NoPorts");
}

#[test]
fn bad_port_and_pool_arguments() {
    let o = in_child("bad_port");
    let parts: Vec<&str> = o.split(" | ").collect();
    assert_eq!(parts[0], r#"PortNotFound("net_ring7")"#, "{o}");
    assert_eq!(parts[1], "InvalidPort(5)", "{o}");
    assert!(parts[2].starts_with("BufferTooSmall"), "{o}");
    assert!(
        parts[3].starts_with(r#"Mempool { name: "p""#),
        "a duplicate pool name: {o}"
    );
    assert!(parts[4].starts_with("PoolTooSmall { mbufs: 511"), "{o}");
}

#[test]
fn failed_init_on_bad_arguments_can_be_retried_once() {
    let o = in_child("retry");
    let parts: Vec<&str> = o.split(" | ").collect();
    assert!(parts[0].starts_with("InvalidArguments"), "{o}");
    assert_eq!(parts[1], "Ok", "{o}");
    assert_eq!(parts[2], "AlreadyInitialized", "{o}");
}

/// Without `--no-huge` and with no free hugepages the EAL must fail cleanly.
/// Where hugepages are free this scenario does not apply.
#[test]
fn no_hugepages_is_reported() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free > 0 {
        eprintln!("{free} hugepages free: the no-hugepages scenario does not apply here");
        return;
    }
    let o = in_child("no_hugepages");
    assert!(o == "NoHugepages" || o.starts_with("NoMemory"), "{o}");
}
