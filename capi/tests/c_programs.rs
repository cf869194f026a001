//! C programs written against liburing's API (tests/c/*.c), compiled with gcc
//! against the system's liburing headers (Debian's `liburing-dev`) and linked to
//! libringline, and the same sources linked to the kernel's liburing (`-luring`):
//! both must print the same lines. Skipped, with a message, where gcc or the
//! headers are missing; the kernel runs are skipped where io_uring is not
//! permitted (a sandbox, `io_uring_disabled`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code, missing_docs)]
#[path = "../src/uring.rs"]
mod uring;

/// Every program must finish within this (they take well under a second).
const LIMIT: Duration = Duration::from_secs(60);

fn src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// Where cargo put libringline.so: the test binary is target/<profile>/deps/x.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A directory with libringline.so and its SONAME link (libringline.so.0)
/// pointing at cargo's build, for -L and the run path.
fn linked_lib_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let built = lib_dir().join("libringline.so");
        assert!(
            built.exists(),
            "{} missing: `cargo test` does not build the C library; run `cargo build -p ringline-capi` first (scripts/test.sh does)",
            built.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["libringline.so", "libringline.so.0"] {
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&built, &link).unwrap();
        }
        dir
    })
    .clone()
}

fn have_toolchain() -> bool {
    let gcc = Command::new("gcc")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !matches!(gcc, Ok(s) if s.success()) {
        eprintln!("SKIP: gcc not found (apt-get install gcc)");
        return false;
    }
    if !Path::new("/usr/include/liburing.h").exists() {
        eprintln!("SKIP: /usr/include/liburing.h missing (apt-get install liburing-dev)");
        return false;
    }
    true
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Ringline,
    Kernel,
}

/// Compiles `file` into an executable linked to `link`, once per test run
/// (tests run in parallel and share the executables: building one while
/// another test runs it would fail with ETXTBSY).
fn build(file: &str, link: Link) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<(String, bool), PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (file.to_string(), link == Link::Kernel);
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let p = compile(file, link, &[]);
    built.insert(key, p.clone());
    p
}

/// Compiles `file` linked to `link` with `-O1` and then the `extra` flags
/// (which name the output too).
fn compile(file: &str, link: Link, extra: &[&str]) -> PathBuf {
    let tag = match link {
        Link::Ringline => "rl",
        Link::Kernel => "k",
    };
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{file}{}.{tag}", extra.concat()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-Wall", "-Werror", "-O1", "-pthread"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(src(file));
    match link {
        Link::Ringline => {
            let dir = linked_lib_dir();
            cmd.arg(format!("-L{}", dir.display()))
                .arg("-lringline")
                .arg(format!("-Wl,-rpath,{}", dir.display()));
        }
        Link::Kernel => {
            cmd.arg("-luring");
        }
    }
    let o = cmd.output().expect("run gcc");
    assert!(
        o.status.success(),
        "gcc {file}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A port for a test's listener (`offset` apart for each use), from the
/// process id: in 10000-29999, below Linux's ephemeral range (32768-60999),
/// so no client socket of a test running beside it on the kernel holds it.
/// (In 40000-59999 a kernel run once failed to bind: CI.)
fn test_port(offset: u32) -> u32 {
    10000 + (std::process::id() + offset) % 20000
}

/// Runs `exe args`, killed after [`LIMIT`]; returns (success, stdout, stderr).
fn run(exe: &Path, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(exe)
        .args(args)
        .env_remove("RINGLINE_CONFIG")
        .env_remove("RINGLINE_DPDK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > LIMIT {
            child.kill().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether this machine lets a process use the kernel's io_uring (checked
/// once).
fn kernel_io_uring() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(probe_kernel_io_uring)
}

fn probe_kernel_io_uring() -> bool {
    let exe = build("nop.c", Link::Kernel);
    let (ok, out, err) = run(&exe, &[]);
    if !ok && out.is_empty() {
        eprintln!(
            "SKIP kernel runs: io_uring unavailable here ({})",
            err.trim()
        );
        return false;
    }
    true
}

/// Runs `file` linked to libringline with `rl_args` (it must succeed and
/// print lines starting with `expect`), then, where the kernel's io_uring
/// is usable, the same source linked to `-luring` with `k_args`, which must
/// print the same. Returns ringline's output.
fn same_on_both(file: &str, rl_args: &[&str], k_args: &[&str], expect: &str) -> String {
    let (ok, out, err) = run(&build(file, Link::Ringline), rl_args);
    assert!(ok, "{file} {rl_args:?} on ringline: {out}{err}");
    assert!(out.starts_with(expect), "{file} on ringline: {out}");
    if kernel_io_uring() {
        let (kok, kout, kerr) = run(&build(file, Link::Kernel), k_args);
        assert!(kok, "{file} {k_args:?} on the kernel: {kout}{kerr}");
        assert_eq!(
            out, kout,
            "{file}: the same program prints the same on ringline and on the kernel"
        );
    }
    out
}

#[test]
fn struct_io_uring_layout_matches_the_header() {
    if !have_toolchain() {
        return;
    }
    use core::mem::{offset_of, size_of};
    use ringline_ring::abi::{Probe, ProbeOp};
    use uring::*;
    // layout.c needs no library: link it to nothing but libc.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("layout");
    let o = Command::new("gcc")
        .arg("-o")
        .arg(&out)
        .arg(src("layout.c"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, text, err) = run(&out, &[]);
    assert!(ok, "{err}");
    let want: &[(&str, usize)] = &[
        ("sq.size", size_of::<IoUringSq>()),
        ("sq.sqes", offset_of!(IoUringSq, sqes)),
        ("sq.sqe_head", offset_of!(IoUringSq, sqe_head)),
        ("sq.sqe_tail", offset_of!(IoUringSq, sqe_tail)),
        ("sq.ring_sz", offset_of!(IoUringSq, ring_sz)),
        ("sq.ring_ptr", offset_of!(IoUringSq, ring_ptr)),
        ("sq.ring_mask", offset_of!(IoUringSq, ring_mask)),
        ("sq.pad", offset_of!(IoUringSq, pad)),
        ("cq.size", size_of::<IoUringCq>()),
        ("cq.cqes", offset_of!(IoUringCq, cqes)),
        ("cq.ring_mask", offset_of!(IoUringCq, ring_mask)),
        ("cq.pad", offset_of!(IoUringCq, pad)),
        ("ring.size", size_of::<IoUring>()),
        ("ring.cq", offset_of!(IoUring, cq)),
        ("ring.flags", offset_of!(IoUring, flags)),
        ("ring.ring_fd", offset_of!(IoUring, ring_fd)),
        ("ring.features", offset_of!(IoUring, features)),
        ("ring.enter_ring_fd", offset_of!(IoUring, enter_ring_fd)),
        ("ring.int_flags", offset_of!(IoUring, int_flags)),
        ("ring.pad2", offset_of!(IoUring, pad2)),
        ("probe_op.size", size_of::<ProbeOp>()),
        ("probe.size", size_of::<Probe>()),
    ];
    let got: Vec<(String, usize)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{text}");
    for ((gk, gv), (wk, wv)) in got.iter().zip(want) {
        assert_eq!(
            (gk.as_str(), *gv),
            (*wk, *wv),
            "C header vs capi/src/uring.rs"
        );
    }
}

/// Registered files and buffers and the probe through liburing's register
/// calls: the same answers on ringline and on the kernel.
#[test]
fn registered_files_buffers_and_probe() {
    if !have_toolchain() {
        return;
    }
    let out = same_on_both("register.c", &[], &[], "unregister files, none: ");
    assert!(out.ends_with("exit ok\n"), "{out}");
}

#[test]
fn nop_batches_timeouts_probe_and_fds() {
    if !have_toolchain() {
        return;
    }
    let out = same_on_both("nop.c", &[], &[], "init sq=64 cq=128\n");
    assert!(out.ends_with("exit ok\n"), "{out}");
}

/// IORING_OP_MSG_RING between two rings of one process (each an engine on
/// ringline): data messages both ways, to itself, the target checks; the
/// same output on the kernel.
#[test]
fn msg_ring_between_two_rings() {
    if !have_toolchain() {
        return;
    }
    let out = same_on_both(
        "msg_ring.c",
        &[],
        &[],
        "a->b: 0\nb got ud=0x1234 res=77 flags=0\n",
    );
    assert!(out.ends_with("exit ok\n"), "{out}");
}

#[test]
fn echo_is_byte_identical_on_ringline_and_on_the_kernel() {
    if !have_toolchain() {
        return;
    }
    same_on_both(
        "echo.c",
        &["10.0.0.1", "8", "60"],
        &["127.0.0.1", "8", "60"],
        "echo ok conns=8 msgs=60 ",
    );
}

#[test]
fn a_configuration_this_build_cannot_serve_is_a_clear_error() {
    if !have_toolchain() {
        return;
    }
    let exe = build("nop.c", Link::Ringline);
    let o = Command::new(&exe)
        .env("RINGLINE_DPDK", "-l 0 --vdev=net_tap0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    // Which message depends on the library cargo last built (with or without
    // `--features dpdk`, which share target/debug/libringline.so): both are clear.
    let err = String::from_utf8_lossy(&o.stderr);
    let with_dpdk = err.contains("libringline: RINGLINE_DPDK is set but RINGLINE_IP is not");
    assert!(
        with_dpdk || (err.contains("libringline: RINGLINE_DPDK=") && err.contains("without DPDK")),
        "{err}"
    );
    // A malformed address is refused before DPDK starts.
    let o = Command::new(&exe)
        .env("RINGLINE_DPDK", "-l 0")
        .env("RINGLINE_IP", "10.0.0.300/24")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    if with_dpdk {
        assert!(
            err.contains("RINGLINE_IP=10.0.0.300/24: expected an IPv4 address"),
            "{err}"
        );
    }
    let o = Command::new(&exe)
        .env("RINGLINE_BUSY_POLL_US", "soon")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("RINGLINE_BUSY_POLL_US=soon: expected microseconds"),
        "{err}"
    );
}

#[test]
fn install_script_and_pkg_config() {
    if !have_toolchain() {
        return;
    }
    if !matches!(Command::new("pkg-config").arg("--version").output(), Ok(o) if o.status.success())
    {
        eprintln!("SKIP: pkg-config not found");
        return;
    }
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-capi.sh");
    let o = Command::new("bash")
        .arg(script)
        .env("PREFIX", &prefix)
        .env("BUILT_DIR", lib_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "ringline"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .unwrap();
    assert!(
        pc.status.success(),
        "{}",
        String::from_utf8_lossy(&pc.stderr)
    );
    let flags = String::from_utf8(pc.stdout).unwrap();
    assert!(flags.contains("-lringline"), "{flags}");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats");
    let o = Command::new("gcc")
        .arg("-o")
        .arg(&exe)
        .arg(src("stats.c"))
        .args(flags.split_whitespace())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(&exe)
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out, "stats ok sqes=3 cqes=3\n");
}

#[test]
fn echo_with_sqpoll_rings() {
    if !have_toolchain() {
        return;
    }
    same_on_both(
        "echo.c",
        &["10.0.0.1", "4", "40", "sqpoll"],
        &["127.0.0.1", "4", "40", "sqpoll"],
        "echo ok conns=4 msgs=40 ",
    );
}

/// A binary linked to the kernel's liburing (`-luring`, NEEDED
/// liburing.so.2) runs on ringline when the loader finds libringline under
/// that name.
#[test]
fn a_binary_linked_to_liburing_runs_on_ringline_through_the_loader() {
    if !have_toolchain() {
        return;
    }
    let exe = build("echo.c", Link::Kernel);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dropin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("liburing.so.2");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(lib_dir().join("libringline.so"), &link).unwrap();
    let o = Command::new(&exe)
        .args(["10.0.0.1", "2", "20"])
        .env("LD_LIBRARY_PATH", &dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    // 10.0.0.1 exists only on ringline's loopback wire: an echo there ran on ringline.
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("echo ok conns=2 msgs=20 "), "{out}");
}

#[test]
fn sockets_made_through_the_ring() {
    if !have_toolchain() {
        return;
    }
    let port = test_port(0).to_string();
    let (ok, out, err) = run(&build("socket_ops.c", Link::Ringline), &["10.0.0.1", &port]);
    assert!(ok, "ringline: {out}{err}");
    assert!(out.ends_with("close ok\n"), "{out}");
    if kernel_io_uring() {
        let (kok, kout, kerr) = run(&build("socket_ops.c", Link::Kernel), &["127.0.0.1", &port]);
        if !kok && !kout.starts_with("socket bind listen ok") && kerr.contains("BIND: -22") {
            eprintln!("SKIP kernel run: IORING_OP_BIND needs Linux 6.11");
            return;
        }
        assert!(kok, "kernel: {kout}{kerr}");
        assert_eq!(out, kout);
    }
}

#[test]
fn proxy_relays_byte_identical_inline_and_sqpoll() {
    if !have_toolchain() {
        return;
    }
    for mode in [None, Some("sqpoll")] {
        let mut args = vec!["10.0.0.1", "10.0.0.2", "4", "40"];
        let mut kargs = vec!["127.0.0.1", "127.0.0.1", "4", "40"];
        args.extend(mode);
        kargs.extend(mode);
        same_on_both("proxy.c", &args, &kargs, "proxy ok conns=4 msgs=40 ");
    }
}

#[test]
fn liburing_2_4_to_2_9_functions_and_defer_taskrun() {
    if !have_toolchain() {
        return;
    }
    let port = test_port(7).to_string();
    let (ok, out, err) = run(&build("newer_api.c", Link::Ringline), &["10.0.0.1", &port]);
    assert!(ok, "ringline: {out}{err}");
    assert!(out.ends_with("newer api ok\n"), "{out}");
    assert!(
        err.contains("api: library"),
        "libringline's own functions ran: {err}"
    );
    if kernel_io_uring() {
        let (kok, kout, kerr) = run(&build("newer_api.c", Link::Kernel), &["127.0.0.1", &port]);
        assert!(kok, "kernel: {kout}{kerr}");
        assert_eq!(
            out, kout,
            "the same program prints the same on ringline and on the kernel"
        );
    }
}

#[test]
fn socket_options_and_names_around_the_ring() {
    if !have_toolchain() {
        return;
    }
    for (i, mode) in ["inline", "sqpoll"].into_iter().enumerate() {
        // Each run listens on `port` and `port + 1`.
        let port = test_port(13 + 2 * i as u32).to_string();
        same_on_both(
            "sockopts.c",
            &["10.0.0.1", &port, mode],
            &["127.0.0.1", &port, mode],
            "set SO_REUSEADDR = 1 (len 4): 0\n",
        );
    }
}

/// libc's read(), write(), send(), recv(), connect(), accept() and the rest on
/// a ringline socket fail with EOPNOTSUPP and a message, rather than reaching
/// the kernel's /dev/null behind the number (read() used to return 0, an end
/// of file the peer never sent); the connection is untouched and other
/// descriptors still work. Also built with `_FORTIFY_SOURCE`, whose read()
/// is `__read_chk()`.
#[test]
fn stream_calls_on_a_ringline_socket_are_refused_clearly() {
    if !have_toolchain() {
        return;
    }
    let refused = [
        "connect",
        "read",
        "read again",
        "readv",
        "recv",
        "recvfrom",
        "recvmsg",
        "write",
        "writev",
        "send",
        "sendto",
        "sendmsg",
        "accept",
        "accept4",
        "connect again",
    ];
    let mut expect: String = refused
        .iter()
        .map(|c| format!("{c}: -1 Operation not supported\n"))
        .collect();
    expect += "ring recv: 5 hello\npipe write: 3 \npipe read: 3 \nstream calls ok\n";
    for (i, extra) in [&[][..], &["-O2", "-D_FORTIFY_SOURCE=2"][..]]
        .into_iter()
        .enumerate()
    {
        let exe = compile("stream_calls.c", Link::Ringline, extra);
        let port = test_port(17 + i as u32).to_string();
        let (ok, out, err) = run(&exe, &["10.0.0.1", &port]);
        assert!(ok, "{extra:?}: {out}{err}");
        assert_eq!(out, expect, "{extra:?}");
        // One message per function, naming the ring's operation.
        assert_eq!(
            err.matches("libringline: read() on socket").count(),
            1,
            "{err}"
        );
        assert!(
            err.contains("a ringline socket: not supported, use the ring (IORING_OP_CONNECT)"),
            "{err}"
        );
        if extra.is_empty() {
            continue;
        }
        let nm = Command::new("nm").arg("-D").arg(&exe).output();
        if let Ok(nm) = nm {
            assert!(
                String::from_utf8_lossy(&nm.stdout).contains("__read_chk"),
                "the fortified build calls __read_chk"
            );
        }
    }
}

/// A process with many rings (a thread-per-core server): sized by the fd
/// limit, 100 rings fit with a soft RLIMIT_NOFILE of 4096 (before, each
/// reserved address space for a million connections and about 15 fitted),
/// and each one works.
#[test]
fn many_rings_in_one_process() {
    if !have_toolchain() {
        return;
    }
    let (ok, out, err) = run(&build("many_rings.c", Link::Ringline), &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "rings with a 4096-fd limit: 100\nNOPs through them: 100\nmany rings ok\n"
    );
}

/// The dynamic symbols of a library (`nm -D --defined-only`), without
/// version suffixes; `None` without `nm`.
fn defined_symbols(lib: &Path) -> Option<std::collections::BTreeSet<String>> {
    let o = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .ok()?;
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .map(|s| s.split('@').next().unwrap_or(s).to_string())
            .collect()
    })
}

/// Every function the installed liburing exports, libringline exports too,
/// so a program linked to liburing.so.2 runs on libringline through the
/// loader without an undefined symbol (liburing's own test suite found
/// `io_uring_register_buffers_sparse` missing).
#[test]
fn every_function_the_installed_liburing_exports_is_exported() {
    if !have_toolchain() {
        return;
    }
    let o = Command::new("gcc")
        .arg("-print-file-name=liburing.so")
        .output()
        .unwrap();
    let sys = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let (Some(theirs), Some(ours)) = (
        defined_symbols(&sys),
        defined_symbols(&lib_dir().join("libringline.so")),
    ) else {
        eprintln!("SKIP: nm or {} unavailable", sys.display());
        return;
    };
    let missing: Vec<&String> = theirs
        .iter()
        .filter(|s| s.contains("io_uring") && !ours.contains(*s))
        .collect();
    assert!(
        theirs.iter().any(|s| s.starts_with("io_uring_")),
        "{} lists no io_uring functions",
        sys.display()
    );
    assert!(
        missing.is_empty(),
        "not exported by libringline: {missing:?}"
    );
}
