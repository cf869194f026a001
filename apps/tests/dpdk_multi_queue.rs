//! The multi-queue suite on a DPDK virtual device: `net_tap` with two RX/TX
//! queue pairs, one ringline engine on each (`--cores 0,1`), the Linux
//! kernel as the peer inside a network namespace the test creates.
//!
//! The kernel picks the TAP queue of each frame by its own flow hash, not by
//! ringline's symmetric Toeplitz hash, so frames arrive on the wrong queue
//! about half the time and are handed over to the right engine in software.
//!
//! * `ringline echo --cores 0,1`: 32 Linux connections, 50 checked round
//!   trips each: both engines accept connections (each the flows that hash to
//!   it), frames were handed over between the queues, engine 1 knows the
//!   kernel's MAC from engine 0 (ARP arrives on queue 0), 0 errors;
//! * `ringline loadgen --cores 0,1` against a Linux echo server: both
//!   engines' active opens come back to them, both complete requests;
//! * `ringline http --cores 0,1`: 30 curl processes, every one answered,
//!   both engines answering some.
//!
//! The TAP tests need root, /dev/net/tun and iproute2 (skipped otherwise).
//! `demo --dpdk --engines 2` runs two engines a side on a `net_ring` pair
//! with two queue pairs a port, in one process, without root.
#![cfg(feature = "dpdk")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const ROLE: &str = "RINGLINE_MQ_PEER_ROLE";

fn usable(test: &str) -> bool {
    if !is_root() {
        skip(test, "not root (TAP devices and namespaces need it)");
        return false;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        skip(test, "no /dev/net/tun");
        return false;
    }
    if ip(&["netns", "list"]).is_err() {
        skip(test, "no `ip` (iproute2)");
        return false;
    }
    true
}

fn eal(tag: &str, iface: &str) -> (String, EalPrefix) {
    let p = prefix(tag);
    (
        format!("-l 0 --no-huge -m 256 --no-pci --no-telemetry --file-prefix={p} --vdev=net_tap0,iface={iface}"),
        p,
    )
}

/// 32 connections at once, 50 round trips on each, every byte checked.
fn many_clients(addr: &str) -> Result<(), String> {
    let mut conns = Vec::new();
    for i in 0..32 {
        let s = TcpStream::connect_timeout(
            &addr.parse().map_err(|e| format!("{e}"))?,
            Duration::from_secs(10),
        )
        .map_err(|e| format!("connect {i}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        conns.push(s);
    }
    let mut got = vec![0u8; 2048];
    for round in 0..50 {
        for (i, s) in conns.iter_mut().enumerate() {
            let len = 1 + (round * 131 + i * 17) % 1400;
            let msg: Vec<u8> = (0..len).map(|k| (round + i * 7 + k) as u8).collect();
            s.write_all(&msg)
                .map_err(|e| format!("conn {i} round {round}: write: {e}"))?;
            s.read_exact(&mut got[..len])
                .map_err(|e| format!("conn {i} round {round}: read: {e}"))?;
            if got[..len] != msg[..] {
                return Err(format!("conn {i} round {round}: the echo differs"));
            }
        }
    }
    Ok(())
}

/// A `std::net` echo server that ends by itself after `life`.
fn echo_server(port: u16, life: Duration) -> Result<(), String> {
    let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    println!("PEER LISTENING");
    let _ = std::io::stdout().flush();
    let end = Instant::now() + life;
    while Instant::now() < end {
        match l.accept() {
            Ok((mut c, _)) => {
                std::thread::spawn(move || {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_nodelay(true);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(())
}

/// The peer side: does nothing unless this binary was re-run with `ROLE`.
#[test]
fn peer() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let r = match role.as_str() {
        "clients" => many_clients("10.77.5.2:7"),
        "echo-server" => echo_server(7007, Duration::from_secs(90)),
        other => Err(format!("unknown role {other}")),
    };
    match r {
        Ok(()) => println!("PEER OK"),
        Err(e) => println!("PEER FAILED: {e}"),
    }
}

fn peer_in(ns: &Netns, role: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut c = ns.cmd(
        exe.to_str().expect("UTF-8 path"),
        &["peer", "--exact", "--nocapture", "--test-threads=1"],
    );
    c.env(ROLE, role);
    c
}

fn stat(j: &serde_json::Value, role: &str, part: &str, name: &str) -> u64 {
    j["engines"][role][part][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {role}.{part}.{name}: {j}"))
}

#[test]
fn two_engines_on_two_tap_queues_serve_linux_clients() {
    if !usable("echo --cores 0,1 on a two-queue TAP") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("mqecho").expect("namespace");
    let (eal, p) = eal("mqecho", "rlq0");
    let mut server = Proc::spawn(
        "ringline echo --cores 0,1",
        ns.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                &eal,
                "--cores",
                "0,1",
                "--ip",
                "10.77.5.2/24",
                "--listen",
                "7",
                "--json",
            ],
        ),
    );
    server.wait_line(
        "listening on 10.77.5.2:7 (2 engines)",
        Duration::from_secs(60),
    );
    ns.configure("rlq0", "10.77.5.1/24", Duration::from_secs(10))
        .expect("configure the TAP");
    let client = run(
        "32 Linux clients",
        peer_in(&ns, "clients"),
        Duration::from_secs(300),
    );
    assert!(
        client.stdout.contains("PEER OK"),
        "{}\n{}",
        client.stdout,
        client.stderr
    );
    server.term();
    let f = server.wait(Duration::from_secs(30));
    f.assert_ok("ringline echo --cores 0,1");
    let j = f.json();
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["accepted"], 32, "{j}");
    let per = j["per_engine"].as_array().expect("per_engine");
    assert_eq!(per.len(), 2, "{j}");
    for e in per {
        assert!(
            e["accepted"].as_u64().unwrap() > 0,
            "an engine got no connection: {j}"
        );
    }
    for r in ["server.0", "server.1"] {
        assert_eq!(
            stat(&j, r, "stats", "no_socket"),
            0,
            "{r} saw another's flow: {j}"
        );
        assert_eq!(stat(&j, r, "stats", "malformed"), 0, "{j}");
    }
    assert_eq!(
        stat(&j, "server", "stats", "accepted"),
        stat(&j, "server.0", "stats", "accepted") + stat(&j, "server.1", "stats", "accepted")
    );
    // The kernel's queue choice is not ringline's: frames crossed over.
    assert!(stat(&j, "server", "nic", "rx_handed_over") > 0, "{j}");
    // ARP arrives on queue 0; engine 1 knows the kernel's MAC from engine 0.
    assert!(stat(&j, "server.0", "stats", "arp_rx") >= 1, "{j}");
    assert!(stat(&j, "server.1", "stats", "arp_shared") >= 1, "{j}");
    assert_eq!(huge_files(&p), Vec::<String>::new());
}

#[test]
fn two_load_engines_get_their_own_connections_back_from_linux() {
    if !usable("loadgen --cores 0,1 on a two-queue TAP") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("mqload").expect("namespace");
    let mut peer = Proc::spawn("std::net echo server", peer_in(&ns, "echo-server"));
    peer.wait_line("PEER LISTENING", Duration::from_secs(30));
    let (eal, p) = eal("mqload", "rlq1");
    let mut load = Proc::spawn(
        "ringline loadgen --cores 0,1",
        ns.cmd(
            ringline(),
            &[
                "loadgen",
                "--dpdk",
                &eal,
                "--cores",
                "0,1",
                "--ip",
                "10.77.6.2/24",
                "--connect",
                "10.77.6.1:7007",
                "--connections",
                "20",
                "--duration",
                "2",
                "--json",
            ],
        ),
    );
    ns.configure("rlq1", "10.77.6.1/24", Duration::from_secs(60))
        .expect("configure the TAP");
    let f = load.wait(Duration::from_secs(180));
    f.assert_ok("ringline loadgen --cores 0,1");
    let j = f.json();
    assert_eq!(j["transport"], "dpdk:net_tap", "{j}");
    assert_eq!(j["connections"], 20, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    let per = j["per_engine"].as_array().expect("per_engine");
    assert_eq!(per.len(), 2, "{j}");
    for e in per {
        assert_eq!(e["connections"], 10, "{j}");
        assert!(
            e["requests"].as_u64().unwrap() > 0,
            "an engine completed nothing: {j}"
        );
    }
    for r in ["client.0", "client.1"] {
        assert_eq!(stat(&j, r, "stats", "connects"), 10, "{j}");
        assert_eq!(
            stat(&j, r, "stats", "no_socket"),
            0,
            "{r}: a reply reached the wrong engine: {j}"
        );
    }
    assert_eq!(huge_files(&p), Vec::<String>::new());
    drop(peer);
}

#[test]
fn curl_is_answered_by_both_http_engines() {
    if !usable("http --cores 0,1 on a two-queue TAP") {
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        return skip(
            "http --cores 0,1 on a two-queue TAP",
            "curl is not installed",
        );
    }
    let _g = serial();
    let ns = Netns::new("mqhttp").expect("namespace");
    let (eal, p) = eal("mqhttp", "rlq2");
    let mut server = Proc::spawn(
        "ringline http --cores 0,1",
        ns.cmd(
            ringline(),
            &[
                "http",
                "--dpdk",
                &eal,
                "--cores",
                "0,1",
                "--ip",
                "10.77.7.2/24",
                "--listen",
                "80",
                "--json",
            ],
        ),
    );
    server.wait_line(
        "listening on 10.77.7.2:80 (2 engines)",
        Duration::from_secs(60),
    );
    ns.configure("rlq2", "10.77.7.1/24", Duration::from_secs(10))
        .expect("configure the TAP");
    // 30 curl processes: 30 connections from the kernel's ephemeral ports.
    for i in 0..30 {
        let out = ns
            .cmd("curl", &["-sS", "--fail", "-m", "10", "http://10.77.7.2/"])
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl #{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from ringline\n",
            "curl #{i}"
        );
    }
    server.term();
    let f = server.wait(Duration::from_secs(30));
    f.assert_ok("ringline http --cores 0,1");
    let j = f.json();
    assert_eq!(j["requests"], 30, "{j}");
    assert_eq!(j["ok"], 30, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    let per = j["per_engine"].as_array().expect("per_engine");
    assert_eq!(per.len(), 2, "{j}");
    for e in per {
        assert!(
            e["requests"].as_u64().unwrap() > 0,
            "an engine answered nothing: {j}"
        );
    }
    assert_eq!(huge_files(&p), Vec::<String>::new());
}

/// `demo --dpdk --engines 2`: a `net_ring` pair with two queue pairs a
/// port, two server and two load generator engines in one process, no
/// static neighbours: every engine serves, ARP requests from queue 1 (if
/// any) are handed to queue 0, and the engines of queue 1 learn the peer's
/// MAC from their sibling. No root needed.
#[test]
fn demo_with_two_engines_a_side_on_a_two_queue_net_ring_pair() {
    let p = prefix("ring-mq");
    let eal = format!("--no-huge -m 768 --no-pci --no-telemetry --file-prefix={p}");
    let f = run(
        "demo --dpdk --engines 2",
        cmd(&[
            "demo",
            "--dpdk",
            &eal,
            "--engines",
            "2",
            "--connections",
            "64",
            "--duration",
            "1",
            "--json",
        ]),
        Duration::from_secs(180),
    );
    f.assert_ok("demo --dpdk --engines 2");
    let j = f.json();
    assert_eq!(j["transport"], "dpdk:net_ring", "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["connections"], 64, "{j}");
    let per = j["per_engine"].as_array().expect("per_engine");
    assert_eq!(per.len(), 4, "{j}");
    for e in per {
        assert!(e["requests"].as_u64().unwrap() > 0, "an idle engine: {e}");
    }
    for i in 0..2 {
        let (s, c) = (format!("server.{i}"), format!("client.{i}"));
        assert_eq!(
            stat(&j, &s, "stats", "accepted"),
            stat(&j, &c, "stats", "connects"),
            "{j}"
        );
        assert_eq!(stat(&j, &s, "stats", "no_socket"), 0, "{j}");
    }
    // Client engine 1 asks ARP itself only if its sibling has not shared
    // the answer yet (timing: idle engines sleep); a request it sent is
    // handed from the server's queue 1 to queue 0.
    let asked = stat(&j, "client.1", "stats", "arp_tx");
    assert!(
        stat(&j, "server.1", "nic", "rx_handed_over") >= asked.min(1),
        "{j}"
    );
    assert!(stat(&j, "client.1", "stats", "arp_shared") >= 1, "{j}");
    assert_eq!(stat(&j, "client.1", "stats", "arp_rx"), 0, "{j}");
    assert_eq!(huge_files(&p), Vec::<String>::new());
}
