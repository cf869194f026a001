//! The two-engine echo suite (ringline's echo server and load generator,
//! bytes checked on every round trip) on DPDK instead of the loopback wire:
//!
//! * two engines in one process on a `net_ring` pair (`ringline demo --dpdk`),
//! * a server and a client in two processes joined by `net_memif`
//!   (`ringline echo` and `ringline loadgen`),
//!
//! each with `--no-huge` and with hugepages (skipped, with a message, where
//! too few are free). After every run no hugepage file of the run is left.
#![cfg(feature = "dpdk")]

mod common;

use std::time::Duration;

use common::*;

/// Checks a load generator's JSON report: every connection up, round trips
/// done, no error (a wrong or short echo counts as one).
fn check_report(f: &Finished, transport: &str, connections: u64) {
    let j = f.json();
    assert_eq!(j["transport"], transport, "{j}");
    assert_eq!(j["connections"], connections, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    assert!(j["requests"].as_u64().unwrap_or(0) > connections, "{j}");
    // The client engine's counters: every one, and its connects.
    let client = &j["engines"]["client"];
    for (name, _) in ringline::EngineStats::default().fields() {
        assert!(client["stats"][name].is_u64(), "{name} missing: {j}");
    }
    assert_eq!(client["stats"]["connects"], connections, "{j}");
    assert_eq!(client["stats"]["malformed"], 0, "{j}");
    eprintln!("{transport}: {j}");
}

fn net_ring_pair(huge: bool) {
    let p = prefix(if huge { "ring-huge" } else { "ring-nohuge" });
    let mem = if huge { "" } else { "--no-huge -m 768" };
    let eal = format!("{mem} --no-pci --no-telemetry --file-prefix={p}");
    let f = run(
        "demo --dpdk",
        cmd(&[
            "demo",
            "--dpdk",
            &eal,
            "--connections",
            "64",
            "--duration",
            "1",
            "--json",
        ]),
        Duration::from_secs(180),
    );
    f.assert_ok("demo --dpdk");
    check_report(&f, "dpdk:net_ring", 64);
    assert_eq!(huge_files(&p), Vec::<String>::new(), "hugepage files left");
}

#[test]
fn echo_suite_on_a_net_ring_pair_without_hugepages() {
    let _g = serial();
    net_ring_pair(false);
}

#[test]
fn echo_suite_on_a_net_ring_pair_with_hugepages() {
    let _g = serial();
    let free = hugepages_free();
    // Two pools of 32767 mbufs (about 80 MB each) and the EAL's own memory.
    if free < 120 {
        return skip(
            "net_ring pair with hugepages",
            &format!("{free} usable hugepages free, 120 needed"),
        );
    }
    net_ring_pair(true);
}

fn memif_two_processes(huge: bool) {
    let tag = if huge { "memif-huge" } else { "memif-nohuge" };
    let (ps, pc) = (prefix(&format!("{tag}-s")), prefix(&format!("{tag}-c")));
    let sock = format!("/tmp/{}.sock", prefix(tag));
    let _ = std::fs::remove_file(&sock);
    let mem = if huge { "" } else { "--no-huge -m 256" };
    // Each process busy-polls its own core.
    let (ls, lc) = two_lcores();
    let server_eal = format!(
        "{mem} {ls} --no-pci --no-telemetry --file-prefix={ps} --vdev=net_memif0,role=server,socket={sock}"
    );
    let client_eal = format!(
        "{mem} {lc} --no-pci --no-telemetry --file-prefix={pc} --vdev=net_memif0,role=client,socket={sock}"
    );
    let mut server = Proc::spawn(
        "echo (memif server)",
        cmd(&[
            "echo",
            "--dpdk",
            &server_eal,
            "--ip",
            "10.0.0.1/24",
            "--listen",
            "7",
        ]),
    );
    server.wait_line("listening on 10.0.0.1:7", Duration::from_secs(60));
    let mut client = Proc::spawn(
        "loadgen (memif client)",
        cmd(&[
            "loadgen",
            "--dpdk",
            &client_eal,
            "--ip",
            "10.0.0.2/24",
            "--connect",
            "10.0.0.1:7",
            "--connections",
            "32",
            "--duration",
            "2",
            "--json",
        ]),
    );
    // While the load runs, `ringline stat` reads the server's engine live:
    // once its 32 connections are up, frames and a connection's bytes move
    // between two reads.
    let spid = server.pid().to_string();
    let stat = |args: &[&str]| {
        let mut a = vec!["stat", spid.as_str(), "--json"];
        a.extend_from_slice(args);
        let f = run("stat", cmd(&a), Duration::from_secs(30));
        f.assert_ok("stat of the echo server");
        f
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stat(&[]).json()["engines"][0]["counters"]["engine"]["conns_live"] != 32 {
        assert!(
            std::time::Instant::now() < deadline,
            "the connections never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = stat(&["--conns", "--watch=0.3", "--count", "2"]);
    let reads: Vec<serde_json::Value> = f
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let (a, b) = (&reads[0]["engines"][0], &reads[1]["engines"][0]);
    let frames = |e: &serde_json::Value| e["counters"]["engine"]["rx_frames"].as_u64().unwrap();
    assert!(frames(b) > frames(a), "rx_frames did not move:\n{a}\n{b}");
    let bytes = |e: &serde_json::Value| -> u64 {
        e["connections"]["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["bytes_in"].as_u64().unwrap())
            .sum()
    };
    assert!(
        bytes(b) > bytes(a),
        "no connection's bytes moved:\n{a}\n{b}"
    );
    // An orderly stop: DPDK's memif driver unmaps the shared memory when
    // the peer disconnects, without a lock against a burst in progress, so
    // neither side may poll while the other closes. The load generator
    // prints its report, stops polling and keeps its end open until the
    // server, stopped now, has closed its own (`wait_for_memif_peer`).
    client.wait_line("\"transport\"", Duration::from_secs(180));
    server.term();
    let s = server.wait(Duration::from_secs(30));
    let f = client.wait(Duration::from_secs(30));
    f.assert_ok("loadgen over memif");
    check_report(&f, "dpdk:net_memif", 32);
    s.assert_ok("echo over memif");
    let page = format!("{}/ringline.{spid}.0", ringline::statpage::STAT_DIR);
    assert!(
        !std::path::Path::new(&page).exists(),
        "{page} outlived echo"
    );
    assert!(s.stdout.contains("stopped; 32 connections"), "{}", s.stdout);
    assert!(s.stdout.contains(" 0 errors"), "{}", s.stdout);
    // On exit the server prints its engine's counters.
    for counter in ["engine counters", "syn_dropped", "nic.rx_dropped"] {
        assert!(s.stdout.contains(counter), "{counter}: {}", s.stdout);
    }
    assert_eq!(
        huge_files(&ps),
        Vec::<String>::new(),
        "server's hugepage files left"
    );
    assert_eq!(
        huge_files(&pc),
        Vec::<String>::new(),
        "client's hugepage files left"
    );
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn echo_suite_over_memif_between_two_processes_without_hugepages() {
    let _g = serial();
    memif_two_processes(false);
}

#[test]
fn echo_suite_over_memif_between_two_processes_with_hugepages() {
    let _g = serial();
    let free = hugepages_free();
    if free < 64 {
        return skip(
            "memif with hugepages",
            &format!("{free} hugepages free, 64 needed"),
        );
    }
    memif_two_processes(true);
}
