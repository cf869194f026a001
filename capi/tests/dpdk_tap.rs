//! libringline on a DPDK port with Linux as the peer: the C echo server
//! (`capi/tests/c/echo.c serve`, liburing's API, linked to libringline built
//! with `--features dpdk`) on `net_tap` inside a network namespace the test
//! creates, and the same source linked to the kernel's liburing as the client
//! (`echo.c connect`) on the kernel's side of the TAP interface. The client's
//! line (bytes and checksum of every echo, checked byte for byte as they come)
//! must equal the one it prints against the same server source on the kernel
//! (127.0.0.1). Needs root, /dev/net/tun, iproute2, gcc and liburing-dev;
//! skipped otherwise.
#![cfg(feature = "dpdk")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn skip(why: &str) {
    eprintln!("SKIP libringline on net_tap: {why}");
}

fn ip(args: &[&str]) -> Result<String, String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn gcc(out: &Path, link: &[String]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/echo.c");
    let o = Command::new("gcc")
        .args(["-O1", "-pthread", "-o"])
        .arg(out)
        .arg(src)
        .args(link)
        .output()
        .expect("gcc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Waits for `child` with a deadline; kills it past the deadline.
fn finish(mut child: Child, limit: Duration) -> (bool, String, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn c_echo_server_on_net_tap_serves_a_linux_client() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("not root (TAP devices and namespaces need it)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    if ip(&["netns", "list"]).is_err() {
        return skip("no `ip` (iproute2)");
    }
    if !Path::new("/usr/include/liburing.h").exists()
        || Command::new("gcc").arg("--version").output().is_err()
    {
        return skip("gcc or liburing-dev missing");
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let lib: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let libdir = tmp.join("lib-dpdk");
    std::fs::create_dir_all(&libdir).unwrap();
    for name in ["libringline.so", "libringline.so.0"] {
        let _ = std::fs::remove_file(libdir.join(name));
        std::os::unix::fs::symlink(lib.join("libringline.so"), libdir.join(name)).unwrap();
    }
    let server_exe = tmp.join("echo-dpdk.rl");
    gcc(
        &server_exe,
        &[
            format!("-L{}", libdir.display()),
            "-lringline".into(),
            format!("-Wl,-rpath,{}", libdir.display()),
        ],
    );
    let client_exe = tmp.join("echo-dpdk.k");
    gcc(&client_exe, &["-luring".into()]);

    // The reference: the same server source on the kernel, in this namespace.
    let reference = Command::new(&client_exe)
        .args(["127.0.0.1", "4", "50"])
        .output()
        .unwrap();
    if !reference.status.success() {
        return skip("kernel io_uring unavailable for the Linux peer");
    }
    let want = String::from_utf8_lossy(&reference.stdout).into_owned();

    let ns = Netns(format!("rlc{}", std::process::id()));
    ip(&["netns", "add", &ns.0]).expect("netns add");
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]).unwrap();
    let prefix = format!("rlcapi{}", std::process::id());
    let eal = format!("-l 0 --no-huge -m 256 --no-pci --no-telemetry --file-prefix={prefix} --vdev=net_tap0,iface=rlc0");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&server_exe)
        .args(["serve", "7070", "4"])
        .env("RINGLINE_DPDK", &eal)
        .env("RINGLINE_IP", "10.78.0.2/24")
        .env("RINGLINE_BUSY_POLL_US", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let (tx, rx) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines.join("\n")
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(l) if l.starts_with("listening on 7070") => {}
        other => {
            server.kill().ok();
            let (_, _, err) = finish(server, Duration::from_secs(5));
            panic!("server did not start: {other:?}\n{err}");
        }
    }
    // The TAP interface appears in the namespace when the port starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ip(&["-n", &ns.0, "link", "show", "rlc0"]).is_err() {
        assert!(Instant::now() < deadline, "rlc0 never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    ip(&["-n", &ns.0, "addr", "add", "10.78.0.1/24", "dev", "rlc0"]).unwrap();
    ip(&["-n", &ns.0, "link", "set", "rlc0", "up"]).unwrap();

    let client = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&client_exe)
        .args(["connect", "10.78.0.2", "7070", "4", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (cok, cout, cerr) = finish(client, Duration::from_secs(60));
    let (sok, _, serr) = finish(server, Duration::from_secs(30));
    let sout = reader.join().unwrap();
    assert!(cok, "Linux client: {cout}{cerr}\nserver: {sout}\n{serr}");
    assert_eq!(
        cout, want,
        "the same echoes through ringline on net_tap as through the kernel"
    );
    assert!(sok, "server: {sout}\n{serr}");
    assert!(sout.ends_with("served conns=4"), "{sout}");
}
