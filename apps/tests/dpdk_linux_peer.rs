//! ringline against the Linux TCP stack, through DPDK's TAP device.
//!
//! Each scenario runs `ringline` inside a network namespace the test creates
//! (`ip netns exec`), on `--vdev=net_tap0`: the TAP interface appears in that
//! namespace, the test gives the kernel side an address there, and the
//! kernel is the peer. Nothing leaves the machine: the namespace has no
//! other interface and is deleted at the end.
//!
//! * `ringline http`: `curl` fetches `/` 100 times in 100 processes, then
//!   100 times over one keep-alive connection;
//! * `ringline echo`: a `std::net` client (this test binary, re-run inside
//!   the namespace) does 10,000 round trips of varying sizes, bytes checked;
//! * `ringline loadgen` against a `std::net` echo server in the namespace.
//!
//! ARP goes both ways: the kernel resolves ringline's address (its neighbour
//! entry is checked), and ringline resolves the kernel's (or it could not
//! connect). Needs root, /dev/net/tun and iproute2; skipped otherwise.
#![cfg(feature = "dpdk")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const ROLE: &str = "RINGLINE_PEER_ROLE";
const BODY: &str = "hello from ringline over a TAP\n";

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

/// The kernel's neighbour entry for `addr` in `ns` is resolved.
fn assert_kernel_resolved(ns: &Netns, addr: &str) {
    let neigh = ip(&["-n", &ns.0, "neigh", "show", addr]).unwrap_or_default();
    assert!(
        neigh.contains("lladdr") && !neigh.contains("FAILED") && !neigh.contains("INCOMPLETE"),
        "the kernel did not resolve {addr} with ARP: {neigh:?}"
    );
}

#[test]
fn curl_fetches_from_ringline_http() {
    if !usable("curl against ringline http") {
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        return skip("curl against ringline http", "curl is not installed");
    }
    let _g = serial();
    let ns = Netns::new("http").expect("namespace");
    let (eal, p) = eal("http", "rlh0");
    let mut server = Proc::spawn(
        "ringline http",
        ns.cmd(
            ringline(),
            &[
                "http",
                "--dpdk",
                &eal,
                "--ip",
                "10.77.0.2/24",
                "--listen",
                "80",
                "--body",
                BODY,
            ],
        ),
    );
    server.wait_line("listening on 10.77.0.2:80", Duration::from_secs(60));
    ns.configure("rlh0", "10.77.0.1/24", Duration::from_secs(10))
        .expect("configure the TAP");

    let t0 = Instant::now();
    for i in 0..100 {
        let out = ns
            .cmd("curl", &["-sS", "--fail", "-m", "10", "http://10.77.0.2/"])
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl #{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), BODY, "curl #{i}");
    }
    let separate = t0.elapsed();
    // 100 requests on one keep-alive connection: one connect, then reuse.
    let urls: Vec<&str> = std::iter::repeat_n("http://10.77.0.2/", 100).collect();
    let mut args = vec!["-sS", "--fail", "-m", "30", "-w", "[%{num_connects}]"];
    args.extend(urls);
    let out = ns.cmd("curl", &args).output().expect("run curl");
    assert!(
        out.status.success(),
        "keep-alive curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(BODY).count(), 100, "{text}");
    assert_eq!(
        text.matches("[1]").count(),
        1,
        "one connection for 100 requests: {text}"
    );
    assert_eq!(text.matches("[0]").count(), 99, "{text}");
    // A 404 and a malformed request over the same server.
    let out = ns
        .cmd(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://10.77.0.2/nope",
            ],
        )
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    assert_kernel_resolved(&ns, "10.77.0.2");

    server.term();
    let f = server.wait(Duration::from_secs(30));
    f.assert_ok("ringline http");
    assert!(
        f.stdout
            .contains("201 requests (200 ok, 1 not found, 0 bad), 0 timeouts, 0 errors"),
        "{}",
        f.stdout
    );
    assert_eq!(huge_files(&p), Vec::<String>::new());
    eprintln!(
        "curl: 100 separate fetches in {separate:?}, 100 keep-alive fetches in one connection"
    );
}

/// `ringline echo` on 10.77.1.2:7 inside `ns`, up and listening.
fn spawn_echo(ns: &Netns, eal: &str) -> Proc {
    let mut server = Proc::spawn(
        "ringline echo",
        ns.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                eal,
                "--ip",
                "10.77.1.2/24",
                "--listen",
                "7",
            ],
        ),
    );
    server.wait_line("listening on 10.77.1.2:7", Duration::from_secs(60));
    server
}

/// The `std::net` echo client, run inside the namespace by `linux_client_echoes`.
fn echo_client(addr: &str, rounds: usize) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(10),
    )
    .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut got = vec![0u8; 4096];
    for i in 0..rounds {
        // Sizes from 1 to 3000 bytes: some fit one segment, some need three.
        let len = 1 + (i * 7919) % 3000;
        let msg: Vec<u8> = (0..len).map(|k| (i * 31 + k * 7) as u8).collect();
        s.write_all(&msg)
            .map_err(|e| format!("round {i}: write: {e}"))?;
        s.read_exact(&mut got[..len])
            .map_err(|e| format!("round {i}: read: {e}"))?;
        if got[..len] != msg[..] {
            return Err(format!("round {i}: the echo differs"));
        }
    }
    Ok(())
}

/// A `std::net` client that echoes once, says so, then waits for the
/// server to end the connection (EOF or reset) within 30 s.
fn echo_hold(addr: &str) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(10),
    )
    .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping").map_err(|e| format!("write: {e}"))?;
    let mut got = [0u8; 4];
    s.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
    println!("PEER CONNECTED");
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => println!("PEER SAW END: EOF"),
        Ok(n) => return Err(format!("{n} unexpected bytes")),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            println!("PEER SAW END: reset")
        }
        Err(e) => return Err(format!("no end of the connection: {e}")),
    }
    Ok(())
}

/// A `std::net` echo server, run inside the namespace by
/// `ringline_loadgen_against_linux`; it ends by itself after `life`.
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
        "echo-client" => echo_client("10.77.1.2:7", 10_000),
        "echo-server" => echo_server(7007, Duration::from_secs(60)),
        "echo-hold" => echo_hold("10.77.1.2:7"),
        other => Err(format!("unknown role {other}")),
    };
    match r {
        Ok(()) => println!("PEER OK"),
        Err(e) => println!("PEER FAILED: {e}"),
    }
}

/// This test binary re-run inside `ns` as the peer `role`.
fn peer_in(ns: &Netns, role: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut c = ns.cmd(
        exe.to_str().expect("UTF-8 path"),
        &["peer", "--exact", "--nocapture", "--test-threads=1"],
    );
    c.env(ROLE, role);
    c
}

#[test]
fn linux_client_echoes_10000_round_trips() {
    if !usable("Linux client against ringline echo") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("echo").expect("namespace");
    let (eal, p) = eal("echo", "rle0");
    let mut server = spawn_echo(&ns, &eal);
    ns.configure("rle0", "10.77.1.1/24", Duration::from_secs(10))
        .expect("configure the TAP");
    let t0 = Instant::now();
    let client = run(
        "std::net client",
        peer_in(&ns, "echo-client"),
        Duration::from_secs(300),
    );
    let took = t0.elapsed();
    assert!(
        client.stdout.contains("PEER OK"),
        "{}\n{}",
        client.stdout,
        client.stderr
    );
    assert_kernel_resolved(&ns, "10.77.1.2");
    server.term();
    let f = server.wait(Duration::from_secs(30));
    f.assert_ok("ringline echo");
    assert!(f.stdout.contains("stopped; 1 connections"), "{}", f.stdout);
    assert!(f.stdout.contains(" 0 errors"), "{}", f.stdout);
    // The engine's counters, printed on exit: ARP went both ways.
    let counter = |name: &str| -> u64 {
        f.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no counter {name}:\n{}", f.stdout))
    };
    assert!(
        counter("arp_rx") >= 1 && counter("arp_tx") >= 1,
        "{}",
        f.stdout
    );
    assert_eq!(counter("accepted"), 1, "{}", f.stdout);
    assert_eq!(counter("malformed"), 0, "{}", f.stdout);
    assert_eq!(huge_files(&p), Vec::<String>::new());
    eprintln!("std::net client: 10,000 echo round trips in {took:?}");
}

/// `ringline echo` stopped by SIGTERM closes the connections it accepted:
/// a Linux client holding one open sees the end (FIN), not silence.
#[test]
fn echo_closes_its_connections_on_shutdown() {
    if !usable("ringline echo shutdown with a Linux client") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("echoend").expect("namespace");
    let (eal, p) = eal("echoend", "rle2");
    let mut server = spawn_echo(&ns, &eal);
    ns.configure("rle2", "10.77.1.1/24", Duration::from_secs(10))
        .expect("configure the TAP");
    let mut client = Proc::spawn("std::net client", peer_in(&ns, "echo-hold"));
    client.wait_line("PEER CONNECTED", Duration::from_secs(60));
    server.term();
    let f = server.wait(Duration::from_secs(30));
    f.assert_ok("ringline echo");
    let c = client.wait(Duration::from_secs(60));
    assert!(
        c.stdout.contains("PEER SAW END"),
        "{}\n{}",
        c.stdout,
        c.stderr
    );
    assert!(f.stdout.contains(" 0 errors"), "{}", f.stdout);
    assert_eq!(huge_files(&p), Vec::<String>::new());
}

#[test]
fn ringline_loadgen_against_a_linux_echo_server() {
    if !usable("ringline loadgen against Linux") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("load").expect("namespace");
    let mut peer = Proc::spawn("std::net echo server", peer_in(&ns, "echo-server"));
    peer.wait_line("PEER LISTENING", Duration::from_secs(30));
    let (eal, p) = eal("load", "rll0");
    let mut load = Proc::spawn(
        "ringline loadgen",
        ns.cmd(
            ringline(),
            &[
                "loadgen",
                "--dpdk",
                &eal,
                "--ip",
                "10.77.2.2/24",
                "--connect",
                "10.77.2.1:7007",
                "--connections",
                "20",
                "--duration",
                "2",
                "--json",
            ],
        ),
    );
    // The TAP appears when the EAL starts; ringline's first ARP requests
    // may go unanswered until the kernel side is configured: it retries.
    ns.configure("rll0", "10.77.2.1/24", Duration::from_secs(60))
        .expect("configure the TAP");
    // The kernel learns ringline's address while the load runs (the TAP,
    // and its neighbour table, go when ringline exits).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut neigh = String::new();
    while Instant::now() < deadline {
        neigh = ip(&["-n", &ns.0, "neigh", "show", "10.77.2.2"]).unwrap_or_default();
        if neigh.contains("lladdr") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let f = load.wait(Duration::from_secs(180));
    f.assert_ok("ringline loadgen");
    let j = f.json();
    assert_eq!(j["transport"], "dpdk:net_tap", "{j}");
    assert_eq!(j["connections"], 20, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    assert!(j["requests"].as_u64().unwrap_or(0) > 100, "{j}");
    assert!(
        neigh.contains("lladdr") && !neigh.contains("FAILED"),
        "the kernel did not resolve 10.77.2.2 with ARP: {neigh:?}"
    );
    assert_eq!(huge_files(&p), Vec::<String>::new());
    eprintln!("ringline loadgen against Linux: {j}");
    drop(peer);
}
