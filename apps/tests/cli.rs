//! The command's behaviour that needs no DPDK: clear errors for commands
//! that need a NIC, for `--dpdk` in a build without DPDK support and for bad
//! config files; `ringline doctor` reports and exits 0; `ringline demo`
//! reports both engines' counters.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn servers_and_clients_need_a_nic() {
    for args in [
        vec!["echo", "--ip", "10.0.0.1/24"],
        vec!["http", "--ip", "10.0.0.1/24"],
        vec!["loadgen", "--ip", "10.0.0.2/24", "--connect", "10.0.0.1:7"],
    ] {
        let f = run("no nic", cmd(&args), Duration::from_secs(30));
        f.assert_clean_failure(&args.join(" "), "needs a NIC: pass --dpdk");
    }
}

#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_without_the_feature_says_how_to_get_it() {
    for args in [
        vec![
            "echo",
            "--dpdk",
            "--no-huge --vdev=net_tap0",
            "--ip",
            "10.0.0.1/24",
        ],
        vec!["demo", "--dpdk", "--no-huge -m 512"],
    ] {
        let f = run("no dpdk", cmd(&args), Duration::from_secs(30));
        f.assert_clean_failure(
            &args.join(" "),
            "built without DPDK support; rebuild with --features dpdk",
        );
    }
}

#[test]
fn bad_config_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(&*prefix("cli-cfg"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[net]\nip = \"10.0.0.1/24\"\nbogus = 3\n").expect("write");
    let f = run(
        "bad config",
        cmd(&["echo", "--config", bad.to_str().expect("UTF-8")]),
        Duration::from_secs(30),
    );
    if cfg!(feature = "dpdk") {
        f.assert_clean_failure("unknown key", "unknown field `bogus`");
    } else {
        f.assert_clean_failure("no dpdk", "rebuild with --features dpdk");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn doctor_reports_and_exits_zero() {
    let f = run("doctor", cmd(&["doctor"]), Duration::from_secs(30));
    f.assert_ok("ringline doctor");
    for what in [
        "loopback mode",
        "hugepages",
        "hugetlbfs",
        "DPDK",
        "IOMMU",
        "vfio-pci",
        "privileges",
    ] {
        assert!(
            f.stdout.contains(what),
            "doctor says nothing about {what}:\n{}",
            f.stdout
        );
    }
    // The sample configs parse, and doctor checks the host against them.
    for sample in [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ringline.toml"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/serve.toml"),
    ] {
        let f = run(
            "doctor --config",
            cmd(&["doctor", "--config", sample]),
            Duration::from_secs(30),
        );
        f.assert_ok(&format!("ringline doctor --config {sample}"));
    }
}

#[test]
fn demo_runs_its_engines_under_sched_fifo_or_says_why_not() {
    let args = [
        "demo",
        "--connections",
        "10",
        "--duration",
        "0.5",
        "--json",
        "--realtime",
        "5",
    ];
    let f = run("demo realtime", cmd(&args), Duration::from_secs(60));
    if f.status.success() {
        let j = f.json();
        assert_eq!(j["errors"], 0, "{j}");
        assert!(j["requests"].as_u64().unwrap_or(0) > 0, "{j}");
    } else {
        // Without CAP_SYS_NICE the command refuses cleanly.
        f.assert_clean_failure("demo --realtime", "not permitted");
    }
    let f = run(
        "bad priority",
        cmd(&["demo", "--realtime", "0"]),
        Duration::from_secs(30),
    );
    assert!(!f.status.success(), "priority 0 accepted");
    assert!(f.stderr.contains("--realtime"), "{}", f.stderr);
}

#[test]
fn demo_reports_every_counter_of_both_engines() {
    let args = ["demo", "--connections", "8", "--duration", "0.3", "--json"];
    let f = run("demo --json", cmd(&args), Duration::from_secs(120));
    f.assert_ok("demo --json");
    let j = f.json();
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["error_causes"], serde_json::json!({}), "{j}");
    for role in ["server", "client"] {
        let e = &j["engines"][role];
        for (name, _) in ringline::EngineStats::default().fields() {
            assert!(e["stats"][name].is_u64(), "{role}: {name} missing: {j}");
        }
        for (name, _) in ringline_dataplane::NicCounters::default().fields() {
            assert!(e["nic"][name].is_u64(), "{role}: nic {name} missing: {j}");
        }
    }
    assert_eq!(j["engines"]["server"]["stats"]["accepted"], 8, "{j}");
    assert_eq!(j["engines"]["client"]["stats"]["connects"], 8, "{j}");
    // Without --json: the same counters as a table, a column per engine.
    let f = run(
        "demo",
        cmd(&["demo", "--connections", "8", "--duration", "0.3"]),
        Duration::from_secs(120),
    );
    f.assert_ok("demo");
    let header = f
        .stdout
        .lines()
        .find(|l| l.starts_with("engine counters"))
        .unwrap_or_else(|| panic!("no counters table:\n{}", f.stdout));
    assert!(
        header.contains("server") && header.contains("client"),
        "{header}"
    );
    assert!(f.stdout.contains("\nsyn_dropped "), "{}", f.stdout);
}

#[test]
fn demo_with_two_engines_serves_on_both_and_each_gets_its_own_connections() {
    let args = ["demo", "--engines", "2", "--duration", "3", "--json"];
    let f = run("demo --engines 2", cmd(&args), Duration::from_secs(180));
    f.assert_ok("demo --engines 2");
    let j = f.json();
    assert_eq!(j["errors"], 0, "{j}");
    let per = j["per_engine"].as_array().expect("per_engine");
    assert_eq!(per.len(), 4, "{j}");
    for e in per {
        assert!(e["requests"].as_u64().unwrap() > 0, "an idle engine: {e}");
        assert!(e["connections"].as_u64().unwrap() > 0, "{e}");
    }
    let stat = |role: &str, name: &str| j["engines"][role]["stats"][name].as_u64().unwrap();
    for i in 0..2 {
        let (s, c) = (format!("server.{i}"), format!("client.{i}"));
        // The load generator's engine i picked ports that hash to queue i,
        // so server engine i accepted exactly its connections, and nothing
        // reached an engine without its connection.
        assert_eq!(stat(&s, "accepted"), stat(&c, "connects"), "{j}");
        assert_eq!(stat(&s, "no_socket") + stat(&c, "no_socket"), 0, "{j}");
    }
    // The role's row is the sum of its engines.
    assert_eq!(
        stat("server", "accepted"),
        stat("server.0", "accepted") + stat("server.1", "accepted")
    );
    assert_eq!(stat("server", "accepted"), 1000);
    // A CPU that is not online is a clear error.
    let f = run(
        "demo --cores",
        cmd(&[
            "demo",
            "--engines",
            "2",
            "--cores",
            "0,4096",
            "--duration",
            "0.1",
        ]),
        Duration::from_secs(60),
    );
    f.assert_clean_failure("demo --cores 0,4096", "not online");
}

/// `demo --sqpoll`: the server's engine on its own thread (SQPOLL), echo with
/// 0 errors, and the SQPOLL engine's counters (and its thread's CPU time) in
/// the JSON.
#[test]
fn demo_sqpoll_serves_without_errors() {
    let args = [
        "demo",
        "--sqpoll",
        "--sq-thread-idle",
        "5",
        "--connections",
        "8",
        "--duration",
        "0.3",
        "--json",
    ];
    let f = run("demo --sqpoll", cmd(&args), Duration::from_secs(120));
    f.assert_ok("demo --sqpoll");
    let j = f.json();
    assert_eq!(j["errors"], 0, "{j}");
    assert!(j["requests"].as_u64().is_some_and(|n| n > 0), "{j}");
    let s = &j["engines"]["server"]["stats"];
    assert_eq!(s["accepted"], 8, "{j}");
    assert!(s["sqpoll_thread_cpu_us"].is_u64(), "{j}");
    assert!(s["idle_sleeps"].is_u64(), "{j}");
}

/// `ringline stat` on a running `ringline demo` (two engines, loopback
/// wire): the instance is listed; `--json --conns --watch` twice shows every
/// engine's frame counters and the connections' bytes moving between the
/// reads; `--prometheus` passes the exposition-format check; the pages go
/// when the demo exits; a page of a dead process is removed by the listing.
#[test]
fn stat_reads_a_running_demo_while_it_serves() {
    const CONNS: u64 = 8;
    // A page of a process that does not exist (pids stop far below this).
    let stale = std::path::Path::new(ringline::statpage::STAT_DIR).join("ringline.4000000000.0");
    std::fs::write(&stale, b"junk").expect("write a stale page");
    let mut demo = Proc::spawn(
        "demo",
        cmd(&[
            "demo",
            "--connections",
            &CONNS.to_string(),
            "--duration",
            "10",
            "--json",
        ]),
    );
    let pid = demo.pid().to_string();
    let read = |args: &[&str]| {
        let mut a = vec!["stat", pid.as_str()];
        a.extend_from_slice(args);
        run("stat", cmd(&a), Duration::from_secs(60))
    };
    // Wait for both engines to have every connection up.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let f = read(&["--json"]);
        if f.status.success() {
            let j = f.json();
            let e = j["engines"].as_array().expect("engines").clone();
            if e.len() == 2
                && e.iter()
                    .all(|e| e["counters"]["engine"]["conns_live"] == CONNS)
            {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no engines up: {}",
            f.stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!stale.exists(), "the listing left a dead process's page");
    let list = run("stat list", cmd(&["stat"]), Duration::from_secs(30));
    list.assert_ok("stat");
    assert!(
        list.stdout.contains(&format!("ringline.{pid}.0")),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!("ringline.{pid}.1")),
        "{}",
        list.stdout
    );

    let f = read(&["--json", "--conns", "--watch=0.5", "--count", "2"]);
    f.assert_ok("stat --json --conns --watch");
    let reads: Vec<serde_json::Value> = f
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(reads.len(), 2, "{}", f.stdout);
    for (e, (a, b)) in [0, 1]
        .map(|e| (&reads[0]["engines"][e], &reads[1]["engines"][e]))
        .into_iter()
        .enumerate()
    {
        assert_eq!(a["engine"], b["engine"]);
        for (g, c) in [
            ("engine", "rx_frames"),
            ("engine", "tx_segments"),
            ("nic", "rx_bytes"),
        ] {
            let (x, y) = (
                a["counters"][g][c].as_u64().expect("counter"),
                b["counters"][g][c].as_u64().expect("counter"),
            );
            assert!(y > x, "engine {e} {g}.{c}: {x} -> {y}");
        }
        assert!(
            b["rates"]["engine"]["rx_frames"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
            "{b}"
        );
        let rows =
            |v: &serde_json::Value| v["connections"]["rows"].as_array().expect("rows").clone();
        let (ra, rb) = (rows(a), rows(b));
        assert_eq!(ra.len() as u64, CONNS, "{a}");
        assert_eq!(a["connections"]["live"], CONNS);
        // The same connection (by its remote address) moved bytes both ways.
        let mut moved = 0;
        for r in &ra {
            let later = rb
                .iter()
                .find(|x| x["remote"] == r["remote"] && x["local"] == r["local"]);
            let later = later.expect("the connection in the second read");
            assert_eq!(r["state"], "ESTAB", "{r}");
            if later["bytes_in"].as_u64() > r["bytes_in"].as_u64()
                && later["bytes_out"].as_u64() > r["bytes_out"].as_u64()
            {
                moved += 1;
            }
        }
        assert!(moved > 0, "no connection of engine {e} moved:\n{a}\n{b}");
    }

    let p = read(&["--prometheus"]);
    p.assert_ok("stat --prometheus");
    let samples = ringline::statpage::prom::check_exposition(&p.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.stdout));
    assert!(samples > 100, "{samples} samples");
    assert!(
        p.stdout.contains(&format!(
            "ringline_engine_rx_frames_total{{pid=\"{pid}\",process=\"ringline\",engine=\"0\""
        )),
        "{}",
        p.stdout
    );
    // promtool's own check (lint included) where Prometheus is installed.
    promtool_check(&p.stdout);
    // The same text over HTTP for a scraper (one request, then it exits).
    let mut server = Proc::spawn(
        "stat --listen",
        cmd(&["stat", &pid, "--listen", "127.0.0.1:0", "--count", "1"]),
    );
    let line = server.wait_line("serving Prometheus metrics on", Duration::from_secs(30));
    let body = scrape(&line);
    ringline::statpage::prom::check_exposition(&body).unwrap_or_else(|e| panic!("{e}"));
    server
        .wait(Duration::from_secs(30))
        .assert_ok("stat --listen --count 1");

    let human = read(&["--conns"]);
    human.assert_ok("stat --conns");
    for what in [
        "rx_frames",
        "bad_checksum",
        "cq_overflowed",
        "bufring_empty",
        "ESTAB",
    ] {
        assert!(human.stdout.contains(what), "no {what}:\n{}", human.stdout);
    }

    let done = demo.wait(Duration::from_secs(120));
    done.assert_ok("demo");
    for e in 0..2 {
        let page =
            std::path::Path::new(ringline::statpage::STAT_DIR).join(format!("ringline.{pid}.{e}"));
        assert!(!page.exists(), "{} outlived the demo", page.display());
    }
    read(&[]).assert_clean_failure("stat of an exited demo", "no running ringline engine");
}
