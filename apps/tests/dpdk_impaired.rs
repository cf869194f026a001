//! Bulk transfers from a Linux client to `ringline echo` through an
//! impairing relay (`ringline relay`, in user space: the kernel may lack
//! `sch_netem`), checked byte for byte.
//!
//! Two namespaces the test creates: "mid" holds `ringline echo` on a DPDK
//! `net_tap` port (kernel side `rli0`) and the relay between `rli0` and one
//! end of a veth pair; "cli" holds the other end and the client (`ringline
//! bulk`: sends a pattern, half-closes, checks every byte echoed back).
//!
//! * 2 MiB over one connection with 2% loss and 2 ms delay each way;
//! * 32 KiB over one connection with 10% loss, 25% reordering, 1 ms delay,
//!   1% duplication and 5% corruption each way: every corrupted frame
//!   toward ringline is dropped by its port (bad checksum) and counted.
//!
//! Each must arrive intact within 60 s. The sizes are small because today's
//! ringline pays at least 1 s per loss that three duplicate ACKs do not
//! reveal, and its retransmission timeout keeps doubling from one hole to
//! the next (see docs/reliability.md): 2 MiB at 2% loss takes 12-21 s, and
//! 128 KiB at 10% loss took 13-59 s, with stalls up to 30 s.
//! `scripts/impaired.sh` runs the same setup at scale, beside Linux, and
//! `docs/reliability.md` has the numbers. Needs root, /dev/net/tun and
//! iproute2; skipped otherwise.
#![cfg(feature = "dpdk")]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn usable(test: &str) -> bool {
    if !is_root() {
        skip(
            test,
            "not root (TAP devices, namespaces and raw sockets need it)",
        );
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

/// The two namespaces, joined by a veth pair: `m1` in mid, `c1`
/// (10.77.6.1/24) in cli.
fn topology(tag: &str) -> (Netns, Netns) {
    let mid = Netns::new(&format!("{tag}m")).expect("namespace");
    let cli = Netns::new(&format!("{tag}c")).expect("namespace");
    for ns in [&mid, &cli] {
        let _ = run(
            "disable IPv6",
            ns.cmd(
                "sh",
                &[
                    "-c",
                    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
                     echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
                ],
            ),
            Duration::from_secs(10),
        );
    }
    ip(&[
        "-n", &mid.0, "link", "add", "m1", "type", "veth", "peer", "name", "c1", "netns", &cli.0,
    ])
    .expect("veth pair");
    // The relay forwards frames, not GSO super-frames.
    ip(&["-n", &cli.0, "link", "set", "c1", "gso_max_segs", "1"]).expect("gso_max_segs");
    ip(&["-n", &cli.0, "addr", "add", "10.77.6.1/24", "dev", "c1"]).expect("address");
    ip(&["-n", &cli.0, "link", "set", "c1", "up"]).expect("c1 up");
    ip(&["-n", &mid.0, "link", "set", "m1", "up"]).expect("m1 up");
    (mid, cli)
}

/// The value of row `name` in the counters table `ringline echo` prints
/// on exit (`malformed`, `nic.rx_dropped`, ...).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no counter {name:?} in:\n{text}"))
}

/// Sends `bytes` over `conns` connections to `ringline echo` through a relay
/// impairing both directions with `spec`; asserts every byte came back
/// within 60 s. Returns the relay's JSON report and the echo's output.
fn impaired_echo(
    tag: &str,
    spec: &str,
    seed: u64,
    bytes: &str,
    conns: usize,
) -> (serde_json::Value, String) {
    let (mid, cli) = topology(tag);
    let p = prefix(tag);
    let eal = format!(
        "-l 0 --no-huge -m 256 --no-pci --no-telemetry --file-prefix={p} --vdev=net_tap0,iface=rli0"
    );
    let mut server = Proc::spawn(
        "ringline echo",
        mid.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                &eal,
                "--ip",
                "10.77.6.2/24",
                "--listen",
                "7",
            ],
        ),
    );
    server.wait_line("listening on 10.77.6.2:7", Duration::from_secs(60));
    ip(&["-n", &mid.0, "link", "set", "rli0", "up"]).expect("rli0 up");
    let seed = seed.to_string();
    let mut relay = Proc::spawn(
        "ringline relay",
        mid.cmd(
            ringline(),
            &[
                "relay",
                "--a",
                "rli0",
                "--b",
                "m1",
                "--impair",
                spec,
                "--seed",
                &seed,
                "--duration",
                "120",
                "--json",
            ],
        ),
    );
    relay.wait_line("relay: ready", Duration::from_secs(10));
    let conns_arg = conns.to_string();
    let t0 = Instant::now();
    let client = run(
        "ringline bulk",
        cli.cmd(
            ringline(),
            &[
                "bulk",
                "--connect",
                "10.77.6.2:7",
                "--bytes",
                bytes,
                "--connections",
                &conns_arg,
                "--timeout",
                "60",
                "--json",
            ],
        ),
        Duration::from_secs(90),
    );
    let took = t0.elapsed();
    relay.term();
    let r = relay.wait(Duration::from_secs(10));
    r.assert_ok("ringline relay");
    let rj = r.json();
    server.term();
    let s = server.wait(Duration::from_secs(30));
    s.assert_ok("ringline echo");
    client.assert_ok("ringline bulk");
    let j = client.json();
    eprintln!(
        "{tag}: {spec}, {conns} x {bytes} in {took:?}: {j}\nrelay: {rj}\n{}",
        s.stdout
    );
    assert_eq!(j["pass"], true, "{j}");
    assert_eq!(
        j["received"].as_u64(),
        Some(j["bytes_per_conn"].as_u64().unwrap_or(0) * conns as u64),
        "{j}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The impairment did happen, both ways.
    for dir in ["a_to_b", "b_to_a"] {
        assert!(rj[dir]["dropped"].as_u64().unwrap_or(0) > 0, "{rj}");
        assert_eq!(rj[dir]["socket_drops"], 0, "{rj}");
    }
    assert!(s.stdout.contains(" 0 errors"), "{}", s.stdout);
    assert_eq!(huge_files(&p), Vec::<String>::new());
    (rj, s.stdout)
}

#[test]
fn two_mib_through_two_percent_loss_and_2ms_delay() {
    if !usable("2 MiB through 2% loss") {
        return;
    }
    let _g = serial();
    impaired_echo("imp2", "loss=2,delay=2", 1, "2M", 1);
}

#[test]
fn loss_reordering_duplication_and_corruption() {
    if !usable("10% loss, reordering, duplication, corruption") {
        return;
    }
    let _g = serial();
    // Seed 3 corrupts frames 7, 10, 14 and 16 toward ringline (a fate
    // depends only on the seed and the frame's number), well inside the
    // transfer whatever the timing.
    let (rj, echo_out) = impaired_echo(
        "imp10",
        "loss=10,reorder=25,delay=1,dup=1,corrupt=5",
        3,
        "32K",
        1,
    );
    let to_ringline = &rj["b_to_a"];
    let corrupted = to_ringline["corrupted"].as_u64().unwrap_or(0);
    assert!(corrupted > 0, "{rj}");
    assert!(
        to_ringline["duplicated"].as_u64().unwrap_or(0)
            + rj["a_to_b"]["duplicated"].as_u64().unwrap_or(0)
            > 0
            || to_ringline["reordered"].as_u64().unwrap_or(0) > 0,
        "{rj}"
    );
    // Every corrupted frame was dropped and counted, by the port (bad
    // checksum) or the engine (malformed); nothing else was lost on receive.
    let dropped = counter(&echo_out, "nic.rx_dropped");
    let malformed = counter(&echo_out, "malformed");
    assert_eq!(dropped + malformed, corrupted, "{echo_out}\n{rj}");
}
