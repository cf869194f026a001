//! Bad configurations end with a clear message and exit status 1: no panic,
//! no hang, and no hugepage file left behind. Each runs `ringline echo` (or
//! `http`) as a child process, once without hugepages and, where hugepages
//! are free, once with them.
#![cfg(feature = "dpdk")]

mod common;

use std::time::Duration;

use common::*;

/// Runs `ringline echo` with EAL arguments `eal` (plus a unique file prefix)
/// and `extra` options; expects a clean failure saying `msg`.
fn fails(tag: &str, eal: &str, extra: &[&str], msg: &str) {
    let p = prefix(tag);
    let eal = format!("{eal} --no-pci --no-telemetry --file-prefix={p}");
    let mut args = vec!["echo", "--dpdk", &eal, "--ip", "10.0.0.1/24"];
    args.extend_from_slice(extra);
    let f = run(tag, cmd(&args), Duration::from_secs(60));
    f.assert_clean_failure(tag, msg);
    assert_eq!(
        huge_files(&p),
        Vec::<String>::new(),
        "{tag}: hugepage files left"
    );
}

/// The memory options to try: no hugepages, and hugepages when some are free.
fn memory_modes() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("nohuge", "--no-huge -m 256")];
    if hugepages_free() >= 32 {
        v.push(("huge", ""));
    } else {
        skip("the hugepage variants", "fewer than 32 hugepages free");
    }
    v
}

#[test]
fn a_vdev_that_does_not_exist() {
    let _g = serial();
    for (m, mem) in memory_modes() {
        fails(
            &format!("novdev-{m}"),
            &format!("{mem} --vdev=net_nosuchdriver0"),
            &[],
            "the EAL could not set up its devices",
        );
    }
}

#[test]
fn no_hugepages() {
    let _g = serial();
    // CI reserves hugepages, so "none" is simulated by pointing the EAL at a
    // directory that is no hugetlbfs mount.
    fails(
        "nohugedir",
        "--huge-dir=/nonexistent-ringline --vdev=net_ring0",
        &[],
        "no usable hugepages",
    );
    if hugepages_free() > 0 {
        // More memory than is reserved.
        fails(
            "toomuch",
            "-m 1000000 --vdev=net_ring0",
            &[],
            "could not set up memory",
        );
    }
}

#[test]
fn an_unknown_eal_option_and_no_port_at_all() {
    let _g = serial();
    fails(
        "badopt",
        "--no-huge --not-an-eal-option",
        &[],
        "invalid EAL arguments",
    );
    for (m, mem) in memory_modes() {
        fails(
            &format!("noports-{m}"),
            mem,
            &[],
            "DPDK found no Ethernet ports",
        );
    }
}

#[test]
fn ports_that_fail_to_come_up() {
    let _g = serial();
    let dir = std::env::temp_dir().join(&*prefix("badcfg"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let small_pool = dir.join("small-pool.toml");
    std::fs::write(&small_pool, "[dpdk]\nmbufs = 255\n").expect("write config");
    let small_pool = small_pool.to_str().expect("UTF-8").to_owned();
    for (m, mem) in memory_modes() {
        let ring = format!("{mem} --vdev=net_ring0");
        fails(
            &format!("noport-{m}"),
            &ring,
            &["--dpdk-port", "net_ring7"],
            "no DPDK port named \"net_ring7\"",
        );
        fails(
            &format!("badid-{m}"),
            &ring,
            &["--dpdk-port", "9"],
            "DPDK port 9 does not exist",
        );
        // The port is opened and started, then refuses the MAC: it must be
        // stopped, closed and its memory given back.
        fails(
            &format!("mac-{m}"),
            &ring,
            &["--mac", "02:00:00:00:00:01"],
            "rte_eth_dev_default_mac_addr_set on DPDK port 0 failed",
        );
        fails(
            &format!("pool-{m}"),
            &ring,
            &["--config", &small_pool],
            "too small for the port",
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_are_refused_before_dpdk_starts() {
    let _g = serial();
    for (args, msg) in [
        (
            vec!["echo", "--dpdk", "--no-huge", "--ip", "10.0.0.1/40"],
            "prefix length must be 1..=32",
        ),
        (
            vec!["echo", "--dpdk", "--no-huge"],
            "missing the engine's address",
        ),
        (
            vec![
                "echo",
                "--dpdk",
                "--no-huge",
                "--ip",
                "10.0.0.1",
                "--listen",
                "10.0.0.2:7",
            ],
            "must be 0.0.0.0 or this engine's --ip",
        ),
        (
            vec![
                "http",
                "--dpdk",
                "--no-huge",
                "--ip",
                "10.0.0.1",
                "--mac",
                "01:00:00:00:00:01",
            ],
            "non-zero unicast",
        ),
        (
            vec![
                "loadgen",
                "--dpdk",
                "--no-huge",
                "--ip",
                "10.0.0.1",
                "--connect",
                "10.0.0.2",
            ],
            "expected ADDR:PORT",
        ),
        (
            vec!["http", "--config", "/nonexistent/ringline.toml"],
            "cannot read /nonexistent/ringline.toml",
        ),
    ] {
        let f = run("bad option", cmd(&args), Duration::from_secs(30));
        f.assert_clean_failure(&args.join(" "), msg);
    }
}
