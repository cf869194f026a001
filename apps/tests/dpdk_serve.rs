//! `ringline serve` on DPDK's TAP device, with the Linux TCP stack as the
//! clients (issue 13): the daemon owns `net_tap0` inside a network namespace
//! the test creates, two applications in other processes (`serve-echo`)
//! attach to it and serve ports 7 and 8, and `ringline bulk` (kernel
//! sockets, inside the namespace) checks every echoed byte on both. Then one
//! application is killed (SIGKILL) while both ports carry transfers: its
//! clients' connections end (reset or EOF, as when a Linux process dies),
//! and the other port's transfer passes, byte for byte.
//! Needs root, /dev/net/tun and iproute2; skipped otherwise.
#![cfg(feature = "dpdk")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const TEST: &str = "serve on net_tap with Linux clients";

/// `ringline bulk` inside `ns` against `10.77.0.2:port`.
fn bulk(ns: &Netns, port: u16, bytes: &str) -> Command {
    let target = format!("10.77.0.2:{port}");
    ns.cmd(
        ringline(),
        &[
            "bulk",
            "--connect",
            &target,
            "--bytes",
            bytes,
            "--connections",
            "4",
            "--timeout",
            "40",
        ],
    )
}

/// An attached echo on `port`, its daemon found through `run_dir`.
fn serve_echo(run_dir: &std::path::Path, name: &str, port: u16) -> Proc {
    let mut c = cmd(&[
        "serve-echo",
        "--name",
        name,
        "--listen",
        &port.to_string(),
        "--duration",
        "90",
    ]);
    c.env("RINGLINE_RUN_DIR", run_dir);
    Proc::spawn(&format!("serve-echo :{port}"), c)
}

#[test]
fn two_attached_apps_serve_linux_clients_and_a_killed_one_leaves_the_other_serving() {
    if !is_root() {
        return skip(TEST, "not root (TAP devices and namespaces need it)");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return skip(TEST, "no /dev/net/tun");
    }
    if ip(&["netns", "list"]).is_err() {
        return skip(TEST, "no `ip` (iproute2)");
    }
    let _g = serial();
    let ns = Netns::new("serve").expect("namespace");
    let p = prefix("serve");
    let eal = format!(
        "-l 0 --no-huge -m 256 --no-pci --no-telemetry --file-prefix={p} --vdev=net_tap0,iface=rls0"
    );
    let run_dir = std::env::temp_dir().join(format!("ringline-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let name = "tap";
    let mut d = ns.cmd(
        ringline(),
        &[
            "serve",
            "--name",
            name,
            "--dpdk",
            &eal,
            "--ip",
            "10.77.0.2/24",
            "--duration",
            "120",
        ],
    );
    d.env("RINGLINE_RUN_DIR", &run_dir);
    let mut daemon = Proc::spawn("ringline serve", d);
    daemon.wait_line("on DPDK port", Duration::from_secs(60));
    ns.configure("rls0", "10.77.0.1/24", Duration::from_secs(10))
        .expect("configure the TAP");

    let mut a = serve_echo(&run_dir, name, 7);
    daemon.wait_line("attached: pid", Duration::from_secs(20));
    let mut b = serve_echo(&run_dir, name, 8);
    daemon.wait_line("attached: pid", Duration::from_secs(20));

    // Both applications serve Linux clients, every byte checked.
    for port in [7, 8] {
        let f = run(
            &format!("bulk :{port}"),
            bulk(&ns, port, "4M"),
            Duration::from_secs(60),
        );
        f.assert_ok(&format!("bulk to the application on port {port}"));
        assert!(f.stdout.contains("PASS"), "port {port}: {}", f.stdout);
    }

    // Kill the application on port 8 while both ports carry transfers.
    let long_a = Proc::spawn("bulk :7 (long)", bulk(&ns, 7, "32M"));
    let long_b = Proc::spawn("bulk :8 (long)", bulk(&ns, 8, "32M"));
    std::thread::sleep(Duration::from_millis(1500));
    b.signal("KILL");
    let _ = b.wait(Duration::from_secs(10));
    daemon.wait_line("gone: pid", Duration::from_secs(10));
    let mut long_a = long_a;
    let fa = long_a.wait(Duration::from_secs(60));
    fa.assert_ok("the other application's transfer");
    assert!(
        fa.stdout.contains("PASS"),
        "port 7 after the kill: {}",
        fa.stdout
    );
    let mut long_b = long_b;
    let fb = long_b.wait(Duration::from_secs(60));
    assert!(
        !fb.status.success(),
        "the killed application's transfer cannot complete: {}{}",
        fb.stdout,
        fb.stderr
    );
    let out = format!("{}{}", fb.stdout, fb.stderr);
    assert!(
        out.contains("reset by peer") || out.contains("eof true"),
        "the killed application's clients see its sockets close (RST or FIN): {out}"
    );

    // Port 7 still serves after the kill.
    let f = run(
        "bulk :7 (after)",
        bulk(&ns, 7, "1M"),
        Duration::from_secs(60),
    );
    f.assert_ok("bulk to the surviving application");
    a.term();
    let _ = a.wait(Duration::from_secs(10));
    daemon.term();
    let _ = daemon.wait(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&run_dir);
}
