//! `ringline serve` end to end, on the loopback wire (no DPDK, no root):
//! applications in other processes attach to the daemon, serve their own
//! ports and are isolated from one another; one killed mid-stream closes
//! its connections and the others keep serving; a daemon that dies is
//! noticed by its applications. Every process is bounded in time.

mod common;

use std::time::Duration;

use common::*;

/// A private run directory (the daemon's socket lives there) for one
/// test, removed when the test ends (passed or not).
struct RunDir(String);

impl std::ops::Deref for RunDir {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_dir(tag: &str) -> RunDir {
    let d = std::env::temp_dir().join(format!("ringline-serve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    RunDir(d.to_string_lossy().into_owned())
}

fn with_dir(mut c: std::process::Command, dir: &str) -> std::process::Command {
    c.env("RINGLINE_RUN_DIR", dir);
    c
}

fn daemon(dir: &str, secs: &str) -> Proc {
    let mut d = spawn_daemon(dir, secs, &[]);
    d.wait_line("ringline serve:", Duration::from_secs(30));
    d
}

/// `ringline serve --name t --duration SECS EXTRA...`, not waited for.
fn spawn_daemon(dir: &str, secs: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["serve", "--name", "t", "--duration", secs];
    args.extend_from_slice(extra);
    Proc::spawn("serve", with_dir(cmd(&args), dir))
}

fn echo(dir: &str, port: u16, secs: &str) -> Proc {
    let p = port.to_string();
    let mut e = Proc::spawn(
        "serve-echo",
        echo_cmd(dir, &["--listen", &p, "--duration", secs]),
    );
    e.wait_line("listening on port", Duration::from_secs(30));
    e
}

/// `ringline serve-echo --name t ARGS`.
fn echo_cmd(dir: &str, args: &[&str]) -> std::process::Command {
    let mut all = vec!["serve-echo", "--name", "t"];
    all.extend_from_slice(args);
    with_dir(cmd(&all), dir)
}

fn load(dir: &str, port: u16, conns: usize, secs: &str) -> Proc {
    let to = format!("10.0.0.1:{port}");
    let c = conns.to_string();
    Proc::spawn(
        "serve-load",
        with_dir(
            cmd(&[
                "serve-load",
                "--name",
                "t",
                "--nic-port",
                "1",
                "--connect",
                &to,
                "--connections",
                &c,
                "--duration",
                secs,
            ]),
            dir,
        ),
    )
}

#[test]
fn two_apps_serve_their_ports_and_a_killed_one_leaves_the_other_unharmed() {
    let _g = serial();
    let dir = run_dir("two");
    let mut d = daemon(&dir, "60");
    let mut a = echo(&dir, 7, "50");
    let mut b = echo(&dir, 8, "50");

    // A port another application holds: -EADDRINUSE.
    let third = run(
        "serve-echo 7 again",
        echo_cmd(&dir, &["--listen", "7", "--duration", "5"]),
        Duration::from_secs(30),
    );
    third.assert_clean_failure("a second listener on 7", "EADDRINUSE");

    // Both serve; every echo byte-identical (serve-load checks each).
    for port in [7, 8] {
        let f = load(&dir, port, 8, "1").wait(Duration::from_secs(60));
        f.assert_ok(&format!("load on {port}"));
        let j = f.json();
        assert_eq!(j["errors"], 0, "{j}");
        assert!(j["requests"].as_u64().unwrap() > 0, "{j}");
    }

    // A hostile third application: every out-of-region address is -EFAULT.
    let f = run(
        "serve-fault",
        with_dir(cmd(&["serve-fault", "--name", "t", "--port", "9"]), &dir),
        Duration::from_secs(60),
    );
    f.assert_ok("serve-fault");
    let j = f.json();
    assert_eq!(j["efault"], 14, "{j}");
    // Buffer rings: one outside the region refused (twice: the ring API and
    // io_uring_register with an io_uring_buf_reg), an entry naming the heap
    // -EFAULT (nothing written), a multishot RECV into one in the region.
    assert_eq!(j["bufring_efault"], 3, "{j}");
    assert_eq!(j["multishot_bytes"], 3000, "{j}");
    assert_eq!(j["outside_written"], 0, "{j}");

    // Kill B mid-stream: its clients see the connections end; A's see nothing.
    let la = load(&dir, 7, 8, "4");
    let lb = load(&dir, 8, 8, "4");
    std::thread::sleep(Duration::from_millis(2500));
    b.signal("KILL");
    let fb = b.wait(Duration::from_secs(10));
    assert!(!fb.status.success(), "B was killed");
    let mut la = la;
    let fa = la.wait(Duration::from_secs(90));
    fa.assert_ok("load on A while B died");
    let ja = fa.json();
    assert_eq!(ja["errors"], 0, "A's clients saw errors: {ja}");
    let mut lb = lb;
    let fbl = lb.wait(Duration::from_secs(90));
    let jb = fbl.json();
    assert!(
        jb["errors"].as_u64().unwrap() > 0,
        "B's clients did not see their connections end: {jb}"
    );

    // B's port and slot are released: a new application takes port 8.
    std::thread::sleep(Duration::from_secs(3));
    let mut b2 = echo(&dir, 8, "30");
    let f = load(&dir, 8, 4, "1").wait(Duration::from_secs(60));
    f.assert_ok("load on the new B");
    assert_eq!(f.json()["errors"], 0);

    // A and the new B counted no errors of their own.
    a.term();
    b2.term();
    for (name, p) in [("A", &mut a), ("new B", &mut b2)] {
        let f = p.wait(Duration::from_secs(30));
        f.assert_ok(name);
        assert_eq!(f.json()["errors"], 0, "{name}: {}", f.stdout);
    }
    d.term();
    d.wait(Duration::from_secs(30)).assert_ok("serve");
}

#[test]
fn applications_notice_the_daemon_dying() {
    let _g = serial();
    let dir = run_dir("dies");
    let mut d = daemon(&dir, "60");
    let mut a = echo(&dir, 7, "60");
    d.signal("KILL");
    let _ = d.wait(Duration::from_secs(10));
    let t0 = std::time::Instant::now();
    let f = a.wait(Duration::from_secs(20));
    f.assert_clean_failure("echo after the daemon died", "EOWNERDEAD");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "noticed in {:?}",
        t0.elapsed()
    );
}

#[test]
fn attach_without_a_daemon_is_a_clear_error() {
    let dir = run_dir("none");
    let f = run(
        "serve-echo alone",
        echo_cmd(&dir, &["--duration", "1"]),
        Duration::from_secs(30),
    );
    f.assert_clean_failure("attach with no daemon", "attach t:");
}

#[test]
fn limits_refuse_applications_clearly() {
    let _g = serial();
    let dir = run_dir("limits");
    let mut d = spawn_daemon(&dir, "30", &["--max-apps", "1", "--max-buffer-mb", "8"]);
    d.wait_line("ringline serve:", Duration::from_secs(30));
    // More memory than the limit: ENOMEM.
    let f = run(
        "serve-echo big",
        echo_cmd(&dir, &["--buffer-mb", "16", "--duration", "1"]),
        Duration::from_secs(30),
    );
    f.assert_clean_failure("a region over max_buffer_mb", "ENOMEM");
    // The one slot taken: EBUSY for the next.
    let mut a = Proc::spawn(
        "serve-echo",
        echo_cmd(
            &dir,
            &[
                "--buffer-mb",
                "4",
                "--connections",
                "16",
                "--duration",
                "20",
            ],
        ),
    );
    a.wait_line("listening on port", Duration::from_secs(30));
    let f = run(
        "serve-echo second",
        echo_cmd(
            &dir,
            &["--buffer-mb", "4", "--listen", "8", "--duration", "1"],
        ),
        Duration::from_secs(30),
    );
    f.assert_clean_failure("a second application with max_apps 1", "EBUSY");
    a.term();
    a.wait(Duration::from_secs(30)).assert_ok("serve-echo");
    d.term();
    d.wait(Duration::from_secs(30)).assert_ok("serve");
}

/// `ringline stat --json` of the daemon: its `serve` entry's applications.
fn apps_of(dir: &str, daemon: &str) -> Vec<serde_json::Value> {
    let f = run(
        "stat --json",
        with_dir(cmd(&["stat", daemon, "--json"]), dir),
        Duration::from_secs(30),
    );
    f.assert_ok("stat --json");
    let j = f.json();
    j["serve"][0]["apps"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn app<'a>(apps: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    apps.iter().find(|a| a["name"] == name)
}

/// `ringline stat` shows each attached application (name, pid, sockets,
/// listeners, memory, ring, requests) with counts that move under load; one
/// that detaches disappears; `serve --prometheus` answers a scraper with
/// the same text, `app`-labelled, in the exposition format.
#[test]
fn stat_shows_each_application_and_serve_answers_prometheus() {
    let _g = serial();
    let dir = run_dir("stat");
    let mut d = spawn_daemon(&dir, "90", &["--prometheus", "127.0.0.1:0"]);
    let metrics = d.wait_line("Prometheus metrics on", Duration::from_secs(30));
    d.wait_line("on the loopback wire", Duration::from_secs(30));
    let dpid = d.pid().to_string();
    let start = |port: &str, name: &str| {
        let mut e = Proc::spawn(
            name,
            echo_cmd(
                &dir,
                &["--listen", port, "--app-name", name, "--duration", "60"],
            ),
        );
        e.wait_line("listening on port", Duration::from_secs(30));
        e
    };
    let mut a = start("7", "echo-a");
    let mut b = start("8", "echo-b");
    let mut la = load(&dir, 7, 4, "5");
    let mut lb = load(&dir, 8, 4, "5");
    std::thread::sleep(Duration::from_millis(1500));

    let first = apps_of(&dir, &dpid);
    std::thread::sleep(Duration::from_millis(700));
    let second = apps_of(&dir, &dpid);
    for (name, p) in [("echo-a", &a), ("echo-b", &b)] {
        let x = app(&first, name).unwrap_or_else(|| panic!("{name} missing: {first:?}"));
        let y = app(&second, name).unwrap_or_else(|| panic!("{name} missing: {second:?}"));
        assert_eq!(y["pid"], p.pid(), "{y}");
        assert_eq!(y["state"], "attached", "{y}");
        assert_eq!(y["listeners"], 1, "{y}");
        assert!(y["sockets"].as_u64().unwrap() >= 4, "{y}");
        assert_eq!(y["sockets_limit"], 4096, "{y}");
        // Asked for 64 MiB; the mapping is rounded up to its page size.
        assert!(y["region_bytes"].as_u64().unwrap() >= 64 << 20, "{y}");
        assert!(y["ring_bytes"].as_u64().unwrap() > 0, "{y}");
        assert_eq!(y["sq_entries"], 1024, "{y}");
        assert!(y["in_flight"].as_u64().unwrap() >= 1, "{y}");
        for c in ["sqes", "cqes", "sq_head", "cq_tail"] {
            assert!(
                y[c].as_u64().unwrap() > x[c].as_u64().unwrap(),
                "{name} {c} did not move: {x} -> {y}"
            );
        }
        assert!(y["sqes_per_s"].as_f64().is_none_or(|r| r > 0.0), "{y}");
    }
    // The load generators are applications too (named after their process).
    assert!(second.len() >= 4, "{second:?}");

    // The text and Prometheus views, and the daemon's own scrape endpoint.
    let w = run(
        "stat --watch",
        with_dir(cmd(&["stat", &dpid, "--watch=0.3", "--count", "2"]), &dir),
        Duration::from_secs(30),
    );
    w.assert_ok("stat --watch");
    for want in ["echo-a", "echo-b", "sqes/s", "applications"] {
        assert!(w.stdout.contains(want), "{want}:\n{}", w.stdout);
    }
    let p = run(
        "stat --prometheus",
        with_dir(cmd(&["stat", &dpid, "--prometheus"]), &dir),
        Duration::from_secs(30),
    );
    p.assert_ok("stat --prometheus");
    ringline::statpage::prom::check_exposition(&p.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.stdout));
    assert!(p.stdout.contains("app=\"echo-a\""), "{}", p.stdout);
    promtool_check(&p.stdout);
    let body = scrape(&metrics);
    let n =
        ringline::statpage::prom::check_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert!(n > 100, "{n} samples:\n{body}");
    for want in [
        "ringline_app_sqes_total{",
        "app=\"echo-b\"",
        "ringline_engine_rx_frames_total{",
    ] {
        assert!(body.contains(want), "{want}:\n{body}");
    }
    promtool_check(&body);

    for (what, l) in [("load on 7", &mut la), ("load on 8", &mut lb)] {
        let f = l.wait(Duration::from_secs(60));
        f.assert_ok(what);
    }
    // B detaches: it disappears once its connections are closed.
    b.term();
    b.wait(Duration::from_secs(30)).assert_ok("echo-b");
    let t0 = std::time::Instant::now();
    loop {
        let now = apps_of(&dir, &dpid);
        if app(&now, "echo-b").is_none() {
            assert!(app(&now, "echo-a").is_some(), "{now:?}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "echo-b still listed: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.term();
    a.wait(Duration::from_secs(30)).assert_ok("echo-a");
    d.term();
    d.wait(Duration::from_secs(30)).assert_ok("serve");
}

/// After an idle spell the daemon naps; an application's submit wakes it
/// (`IORING_SQ_NEED_WAKEUP` and the doorbell) instead of waiting out the
/// nap. `serve-bench --gaps` does round trips after silences: every one
/// completes, and the daemon counts naps the doorbell cut short; with
/// `--no-wakeup` none are. (Latency is measured by the bench, not here.)
#[test]
fn an_application_wakes_a_napping_daemon() {
    let _g = serial();
    for (flag, woken) in [(None, true), (Some("--no-wakeup"), false)] {
        let dir = run_dir("wake");
        let extra: Vec<&str> = flag.into_iter().collect();
        let mut d = spawn_daemon(&dir, "60", &extra);
        d.wait_line("on the loopback wire", Duration::from_secs(30));
        let b = run(
            "serve-bench --gaps",
            with_dir(
                cmd(&[
                    "serve-bench",
                    "--name",
                    "t",
                    "--gaps",
                    "8",
                    "--gap-ms",
                    "10",
                ]),
                &dir,
            ),
            Duration::from_secs(60),
        );
        b.assert_ok("serve-bench --gaps");
        assert_eq!(b.json()["round_trips"], 8, "{}", b.stdout);
        d.term();
        let f = d.wait(Duration::from_secs(30));
        f.assert_ok("serve");
        let line = f
            .stderr
            .lines()
            .find(|l| l.contains("cut short"))
            .unwrap_or_else(|| panic!("no nap count:\n{}", f.stderr))
            .to_owned();
        let n: u64 = line
            .split(", ")
            .nth(1)
            .and_then(|w| w.split(' ').next())
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(n > 0, woken, "{flag:?}: {line}");
    }
}
