//! Operations that fail loudly (issue 11): each runs the `ringline` binary
//! as child processes.
//!
//! * A second instance on a TAP interface another instance drives is refused
//!   with a message naming the first's pid, and the first keeps working; a
//!   lock file left by a dead process does not block.
//! * The EAL's runtime directory (`/var/run/dpdk/<prefix>`) is gone after
//!   every exit: `--duration`, SIGTERM, SIGINT, an error after the EAL
//!   started, an interrupted `loadgen`; with and without hugepages.
//! * A file prefix another process holds is refused with a message naming
//!   it and the pid, not "Success (rte_errno 0)".
//! * `loadgen` against a closed port reports its failed connects as errors,
//!   by cause (ECONNREFUSED).
//! * `echo --json` and `http --json` report every engine counter.
//!
//! The TAP scenarios need root, /dev/net/tun and iproute2 and are skipped,
//! with a message, where those are missing.
#![cfg(feature = "dpdk")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn tap_usable(test: &str) -> bool {
    if !is_root() {
        skip(test, "not root (TAP devices and namespaces need it)");
        return false;
    }
    if !Path::new("/dev/net/tun").exists() {
        skip(test, "no /dev/net/tun");
        return false;
    }
    if ip(&["netns", "list"]).is_err() {
        skip(test, "no `ip` (iproute2)");
        return false;
    }
    true
}

/// EAL arguments for a TAP `iface` with file prefix `p` on lcore `lcore`.
fn tap_eal(p: &EalPrefix, iface: &str, lcore: &str) -> String {
    format!(
        "{lcore} --no-huge -m 256 --no-pci --no-telemetry --file-prefix={p} \
         --vdev=net_tap0,iface={iface}"
    )
}

/// The lock file ringline keeps for the interface `iface` of namespace `ns`
/// (named by the namespace's inode).
fn tap_lock(ns: &Netns, iface: &str) -> std::path::PathBuf {
    let out = ns
        .cmd("readlink", &["/proc/self/ns/net"])
        .output()
        .expect("readlink");
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let inode = link
        .strip_prefix("net:[")
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or_else(|| panic!("netns link {link:?}"));
    Path::new("/run/ringline").join(format!("iface-{iface}@netns-{inode}.lock"))
}

/// One echo round trip from the kernel side of `ns` to `addr`:7 (bash's
/// /dev/tcp, so no extra tool is needed).
fn kernel_echo(ns: &Netns, addr: &str) -> Result<(), String> {
    let script =
        format!("exec 3<>/dev/tcp/{addr}/7 && printf ping >&3 && head -c 4 <&3 && exec 3>&-");
    let out = ns
        .cmd("timeout", &["20", "bash", "-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    let got = String::from_utf8_lossy(&out.stdout);
    if got == "ping" {
        Ok(())
    } else {
        Err(format!(
            "echo from {addr}: {got:?} ({}; {})",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_second_instance_on_the_same_tap_is_refused() {
    if !tap_usable("a second instance on the same TAP") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("claim").expect("namespace");
    let (pa, pb) = (prefix("claim-a"), prefix("claim-b"));
    let (la, lb) = two_lcores();
    let mut first = Proc::spawn(
        "first echo",
        ns.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                &tap_eal(&pa, "rlk0", la),
                "--ip",
                "10.77.5.2/24",
            ],
        ),
    );
    first.wait_line("listening on 10.77.5.2:7", Duration::from_secs(60));
    ns.configure("rlk0", "10.77.5.1/24", Duration::from_secs(10))
        .expect("configure the TAP");
    kernel_echo(&ns, "10.77.5.2").expect("the first instance echoes");
    let lock = tap_lock(&ns, "rlk0");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap_or_default().trim(),
        first.pid().to_string(),
        "the lock file holds the owner's pid"
    );

    // Same interface, another file prefix: refused before DPDK touches it.
    let second = run(
        "second echo",
        ns.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                &tap_eal(&pb, "rlk0", lb),
                "--ip",
                "10.77.5.3/24",
                "--duration",
                "5",
            ],
        ),
        Duration::from_secs(60),
    );
    second.assert_clean_failure(
        "second echo",
        &format!(
            "the TAP interface rlk0 is in use by another ringline process (pid {}",
            first.pid()
        ),
    );
    assert!(
        second.stderr.contains(&lock.display().to_string()),
        "{}",
        second.stderr
    );
    assert!(
        !pb.runtime_dir().exists(),
        "the refused instance left {}",
        pb.runtime_dir().display()
    );
    // The first is untouched: still reachable, still the owner.
    kernel_echo(&ns, "10.77.5.2").expect("the first instance still echoes");

    first.term();
    let f = first.wait(Duration::from_secs(30));
    f.assert_ok("first echo");
    assert!(!lock.exists(), "the claim outlived its owner");
    assert!(
        !pa.runtime_dir().exists(),
        "{} left",
        pa.runtime_dir().display()
    );

    // A lock file a dead process left (nobody holds its lock) does not block.
    std::fs::write(&lock, "999999\n").expect("write a stale lock file");
    let mut again = Proc::spawn(
        "echo over a stale lock",
        ns.cmd(
            ringline(),
            &[
                "echo",
                "--dpdk",
                &tap_eal(&pb, "rlk0", lb),
                "--ip",
                "10.77.5.2/24",
            ],
        ),
    );
    again.wait_line("listening on 10.77.5.2:7", Duration::from_secs(60));
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap_or_default().trim(),
        again.pid().to_string()
    );
    again.term();
    again
        .wait(Duration::from_secs(30))
        .assert_ok("echo over a stale lock");
    assert!(!lock.exists());
}

/// EAL arguments on a `net_ring` device (no root, no TAP), without
/// hugepages or with them.
fn ring_eal(p: &EalPrefix, huge: bool) -> String {
    let mem = if huge { "" } else { "--no-huge -m 256" };
    format!("-l 0 {mem} --no-pci --no-telemetry --file-prefix={p} --vdev=net_ring0")
}

fn assert_cleaned(p: &EalPrefix, what: &str) {
    assert!(
        !p.runtime_dir().exists(),
        "{what}: {} left behind",
        p.runtime_dir().display()
    );
    assert_eq!(
        huge_files(p),
        Vec::<String>::new(),
        "{what}: hugepage files left"
    );
}

fn runtime_dir_goes_on_every_exit(huge: bool) {
    let m = if huge { "huge" } else { "nohuge" };
    let echo = |p: &EalPrefix, extra: &[&str]| {
        let eal = ring_eal(p, huge);
        let mut args = vec!["echo", "--dpdk", &eal, "--ip", "10.0.0.1/24"];
        args.extend_from_slice(extra);
        cmd(&args)
    };

    // A normal exit (--duration).
    let p = prefix(&format!("dur-{m}"));
    let f = run(
        "echo --duration",
        echo(&p, &["--duration", "1"]),
        Duration::from_secs(60),
    );
    f.assert_ok("echo --duration");
    assert_cleaned(&p, "echo --duration");

    // SIGTERM and SIGINT; the runtime directory exists while it runs.
    for sig in ["TERM", "INT"] {
        let p = prefix(&format!("{sig}-{m}"));
        let mut s = Proc::spawn("echo", echo(&p, &[]));
        s.wait_line("listening on 10.0.0.1:7", Duration::from_secs(60));
        assert!(
            p.runtime_dir().join("config").exists(),
            "no runtime directory while running"
        );
        s.signal(sig);
        s.wait(Duration::from_secs(30))
            .assert_ok(&format!("echo, SIG{sig}"));
        assert_cleaned(&p, &format!("echo stopped by SIG{sig}"));
    }

    // An error after the EAL started (no such port).
    let p = prefix(&format!("err-{m}"));
    let f = run(
        "echo on a missing port",
        echo(&p, &["--dpdk-port", "net_ring7"]),
        Duration::from_secs(60),
    );
    f.assert_clean_failure("echo on a missing port", "no DPDK port named \"net_ring7\"");
    assert_cleaned(&p, "echo that failed after EAL init");

    // An error inside rte_eal_init (an unknown driver).
    let p = prefix(&format!("init-{m}"));
    let eal = format!("{} --vdev=net_nosuchdriver0", ring_eal(&p, huge));
    let f = run(
        "echo with a bad vdev",
        cmd(&["echo", "--dpdk", &eal, "--ip", "10.0.0.1/24"]),
        Duration::from_secs(60),
    );
    f.assert_clean_failure("echo with a bad vdev", "could not set up its devices");
    assert_cleaned(&p, "echo whose EAL init failed");

    // loadgen stopped by SIGTERM while its connects wait for ARP.
    let p = prefix(&format!("load-{m}"));
    let eal = ring_eal(&p, huge);
    let mut l = Proc::spawn(
        "loadgen",
        cmd(&[
            "loadgen",
            "--dpdk",
            &eal,
            "--ip",
            "10.0.0.2/24",
            "--connect",
            "10.0.0.9:7",
            "--connections",
            "4",
            "--duration",
            "30",
        ]),
    );
    l.wait_line(
        "ringline loadgen: 10.0.0.2 -> 10.0.0.9:7",
        Duration::from_secs(60),
    );
    l.term();
    let f = l.wait(Duration::from_secs(30));
    f.assert_no_panic("loadgen, SIGTERM");
    assert!(
        f.stdout.contains("interrupted"),
        "{}\n{}",
        f.stdout,
        f.stderr
    );
    assert_cleaned(&p, "loadgen stopped by SIGTERM");
}

#[test]
fn the_runtime_directory_goes_on_every_exit_without_hugepages() {
    let _g = serial();
    runtime_dir_goes_on_every_exit(false);
}

#[test]
fn the_runtime_directory_goes_on_every_exit_with_hugepages() {
    let _g = serial();
    let free = hugepages_free();
    if free < 32 {
        return skip(
            "the runtime directory with hugepages",
            &format!("{free} usable hugepages free, 32 needed"),
        );
    }
    runtime_dir_goes_on_every_exit(true);
}

#[test]
fn a_busy_file_prefix_names_the_process_that_holds_it() {
    let _g = serial();
    let p = prefix("busy");
    let eal = ring_eal(&p, false);
    let mut first = Proc::spawn(
        "first echo",
        cmd(&["echo", "--dpdk", &eal, "--ip", "10.0.0.1/24"]),
    );
    first.wait_line("listening on 10.0.0.1:7", Duration::from_secs(60));
    let f = run(
        "second echo, same prefix",
        cmd(&[
            "echo",
            "--dpdk",
            &eal,
            "--ip",
            "10.0.0.1/24",
            "--duration",
            "5",
        ]),
        Duration::from_secs(60),
    );
    f.assert_clean_failure(
        "second echo, same prefix",
        &format!(
            "EAL file prefix \"{p}\" is in use by another DPDK process (pid {}",
            first.pid()
        ),
    );
    assert!(!f.stderr.contains("Success"), "{}", f.stderr);
    assert!(f.stderr.contains("--file-prefix"), "{}", f.stderr);
    assert!(
        p.runtime_dir().join("config").exists(),
        "the refused process removed the runtime directory of the one holding the prefix"
    );
    first.term();
    first.wait(Duration::from_secs(30)).assert_ok("first echo");
    assert_cleaned(&p, "first echo");
}

#[test]
fn loadgen_against_a_closed_port_reports_econnrefused() {
    if !tap_usable("loadgen against a closed port") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("refused").expect("namespace");
    let p = prefix("refused");
    let mut load = Proc::spawn(
        "loadgen",
        ns.cmd(
            ringline(),
            &[
                "loadgen",
                "--dpdk",
                &tap_eal(&p, "rlr0", "-l 0"),
                "--ip",
                "10.77.6.2/24",
                // Nothing listens on this port in the namespace: the kernel
                // answers each SYN with a RST.
                "--connect",
                "10.77.6.1:7009",
                "--connections",
                "5",
                "--duration",
                "1",
                "--json",
            ],
        ),
    );
    ns.configure("rlr0", "10.77.6.1/24", Duration::from_secs(60))
        .expect("configure the TAP");
    let f = load.wait(Duration::from_secs(120));
    f.assert_clean_failure(
        "loadgen against a closed port",
        "no connection to 10.77.6.1:7009 came up: 5 connect ECONNREFUSED (Connection refused)",
    );
    let j = f.json();
    assert_eq!(j["connections"], 0, "{j}");
    assert_eq!(j["errors"], 5, "{j}");
    assert_eq!(
        j["error_causes"]["connect ECONNREFUSED (Connection refused)"], 5,
        "{j}"
    );
    // The engine saw the RSTs and failed the connects.
    let stats = &j["engines"]["client"]["stats"];
    assert_eq!(stats["connects"], 5, "{j}");
    assert!(stats["rx_frames"].as_u64().unwrap_or(0) >= 5, "{j}");
    assert_cleaned(&p, "loadgen against a closed port");
}

/// Every field of `EngineStats` and of `NicCounters` is in `engine`
/// (one engine's `{"stats": ..., "nic": ...}`).
fn assert_every_counter(engine: &serde_json::Value) {
    for (name, _) in ringline::EngineStats::default().fields() {
        assert!(
            engine["stats"][name].is_u64(),
            "engine counter {name} missing: {engine}"
        );
    }
    for (name, _) in ringline_dataplane::NicCounters::default().fields() {
        assert!(
            engine["nic"][name].is_u64(),
            "NIC counter {name} missing: {engine}"
        );
    }
}

#[test]
fn echo_and_http_json_include_every_engine_counter() {
    if !tap_usable("echo --json and http --json with a Linux client") {
        return;
    }
    let _g = serial();
    let ns = Netns::new("json").expect("namespace");
    for (cmd_name, port) in [("echo", "7"), ("http", "80")] {
        let p = prefix(&format!("json-{cmd_name}"));
        let iface = format!("rlj{}", if cmd_name == "echo" { 0 } else { 1 });
        let mut server = Proc::spawn(
            cmd_name,
            ns.cmd(
                ringline(),
                &[
                    cmd_name,
                    "--dpdk",
                    &tap_eal(&p, &iface, "-l 0"),
                    "--ip",
                    "10.77.7.2/24",
                    "--listen",
                    port,
                    "--json",
                ],
            ),
        );
        // With --json the listening line is on stderr.
        server.wait_line("listening on 10.77.7.2", Duration::from_secs(60));
        ns.configure(&iface, "10.77.7.1/24", Duration::from_secs(10))
            .expect("configure the TAP");
        if cmd_name == "echo" {
            kernel_echo(&ns, "10.77.7.2").expect("echo");
        } else {
            let script = "exec 3<>/dev/tcp/10.77.7.2/80 && \
                printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && cat <&3";
            let out = ns
                .cmd("timeout", &["20", "bash", "-c", script])
                .output()
                .expect("bash");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
        server.term();
        let f = server.wait(Duration::from_secs(30));
        f.assert_ok(cmd_name);
        let lines: Vec<&str> = f.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{cmd_name} --json: stdout is the report alone:\n{}",
            f.stdout
        );
        let j = f.json();
        assert_eq!(j["command"], cmd_name, "{j}");
        assert_eq!(j["accepted"], 1, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
        let server_engine = &j["engines"]["server"];
        assert_every_counter(server_engine);
        assert_eq!(server_engine["stats"]["accepted"], 1, "{j}");
        assert!(
            server_engine["stats"]["rx_frames"].as_u64().unwrap_or(0) > 2,
            "{j}"
        );
        assert!(
            server_engine["stats"]["arp_rx"].as_u64().unwrap_or(0) >= 1,
            "{j}"
        );
        assert!(
            server_engine["nic"]["rx_frames"].as_u64().unwrap_or(0) > 2,
            "{j}"
        );
        assert_cleaned(&p, cmd_name);
    }
}
