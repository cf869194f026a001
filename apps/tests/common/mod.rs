//! Helpers for the tests that run the `ringline` binary: child processes
//! with captured output and deadlines, hugepage bookkeeping, network
//! namespaces, and skips with a printed reason.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn ringline() -> &'static str {
    env!("CARGO_BIN_EXE_ringline")
}

/// Every engine busy-polls a core, and the machine may have only two: tests
/// of one binary take turns.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prints why a test does not apply here and returns (the caller returns too).
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// A finished process.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Asserts a clean exit and no panic.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.assert_no_panic(what);
    }

    /// Asserts a failure exit (not a signal, not a panic) whose stderr says `msg`.
    pub fn assert_clean_failure(&self, what: &str, msg: &str) {
        assert_eq!(
            self.status.code(),
            Some(1),
            "{what}: expected exit status 1 ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.assert_no_panic(what);
        assert!(
            self.stderr.contains(msg),
            "{what}: stderr lacks {msg:?}:\n{}",
            self.stderr
        );
    }

    pub fn assert_no_panic(&self, what: &str) {
        for text in [&self.stdout, &self.stderr] {
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "{what} panicked:\n{text}"
            );
        }
    }

    /// The last line of stdout that is a JSON object.
    pub fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON line in:\n{}\n{}", self.stdout, self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line}: {e}"))
    }
}

/// A running child with its output collected by reader threads; stdout and
/// stderr lines are also sent to a channel so a test can wait for one
/// (`--json` moves a server's "listening" line to stderr). Killed (SIGKILL)
/// if dropped while running.
pub struct Proc {
    name: String,
    child: Option<Child>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: spawn {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let tx_err = tx.clone();
        let out_pipe = child.stdout.take().expect("stdout piped");
        let err_pipe = child.stderr.take().expect("stderr piped");
        let out = stdout.clone();
        let r1 = std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&line);
                out.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let err = stderr.clone();
        let r2 = std::thread::spawn(move || {
            // Line by line, but not `lines()`: the EAL's output need not be UTF-8.
            let mut r = BufReader::new(err_pipe);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                err.lock().unwrap().push_str(&line);
                let _ = tx_err.send(line.trim_end().to_owned());
                buf.clear();
            }
        });
        Proc {
            name: name.to_owned(),
            child: Some(child),
            lines,
            stdout,
            stderr,
            readers: vec![r1, r2],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for a stdout or stderr line containing `pat`; panics (with the
    /// output so far) if the process exits or `timeout` passes first.
    pub fn wait_line(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(l) if l.contains(pat) => return l,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        let name = self.name.clone();
                        let f = self.kill_and_collect();
                        panic!(
                            "{name}: no line with {pat:?} within {timeout:?}:\n{}\n{}",
                            f.stdout, f.stderr
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let name = self.name.clone();
                    let f = self.wait(Duration::from_secs(5));
                    panic!(
                        "{name} exited ({}) before printing {pat:?}:\n{}\n{}",
                        f.status, f.stdout, f.stderr
                    );
                }
            }
        }
    }

    /// Sends SIGTERM (a clean stop for ringline's servers).
    pub fn term(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`"INT"`, `"TERM"`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status();
    }

    /// Waits up to `timeout` for the exit; kills the process and panics if it
    /// does not come.
    pub fn wait(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("not yet waited");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return self.collect(status);
            }
            if Instant::now() >= deadline {
                let name = self.name.clone();
                let f = self.kill_and_collect();
                panic!(
                    "{name} did not exit within {timeout:?}:\n{}\n{}",
                    f.stdout, f.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_and_collect(&mut self) -> Finished {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let status = child.wait().expect("wait");
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Finished {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command to completion with a deadline.
pub fn run(name: &str, cmd: Command, timeout: Duration) -> Finished {
    Proc::spawn(name, cmd).wait(timeout)
}

/// `ringline <args...>` as a command.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(ringline());
    c.args(args);
    c
}

/// Runs `promtool check metrics` on `text` where Prometheus is installed
/// (asserting it passes), else says it skipped.
pub fn promtool_check(text: &str) {
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("feed promtool");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => skip(
            "promtool check",
            "promtool not installed (apt-get install prometheus)",
        ),
    }
}

/// `GET /metrics` from the server a line `... http://ADDR/metrics`
/// announced; asserts a 200 in the Prometheus text format's content type
/// and returns the body.
pub fn scrape(announce: &str) -> String {
    use std::io::{Read, Write};
    let addr = announce
        .rsplit("http://")
        .next()
        .and_then(|a| a.strip_suffix("/metrics"))
        .expect("the address")
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect to the metrics server");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).expect("response");
    let (head, body) = resp.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}\n{body}");
    assert!(head.contains("version=0.0.4"), "{head}");
    body.to_owned()
}

/// A `/proc/meminfo` value.
pub fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Free 2 MiB hugepages this process can use: a hugetlbfs mount exists and
/// we are root (DPDK needs root, or capabilities CI does not grant, to map
/// them). 0 otherwise.
pub fn hugepages_free() -> u64 {
    if hugetlbfs_mounts().is_empty() || !is_root() {
        return 0;
    }
    meminfo("HugePages_Free")
}

/// EAL lcore options for two busy-polling processes: a core each where
/// there are two.
pub fn two_lcores() -> (&'static str, &'static str) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if cpus >= 2 {
        ("-l 0", "-l 1")
    } else {
        ("-l 0", "-l 0")
    }
}

pub fn hugetlbfs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "hugetlbfs").then(|| f[1].to_owned())
        })
        .collect()
}

/// Files DPDK left in any hugetlbfs mount for EAL file prefix `prefix`.
pub fn huge_files(prefix: &str) -> Vec<String> {
    // The file names are <prefix>map_<n>; match that exactly, so that one
    // test's prefix is never mistaken for the start of another's.
    let prefix = &format!("{prefix}map_");
    let mut v = Vec::new();
    for m in hugetlbfs_mounts() {
        if let Ok(d) = std::fs::read_dir(&m) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(prefix) {
                    v.push(format!("{m}/{n}"));
                }
            }
        }
    }
    v
}

/// A unique EAL file prefix for this test process. The EAL's runtime
/// directory for it (`/var/run/dpdk/<prefix>`: ringline removes it on exit,
/// DPDK alone would leave it behind) is removed when the returned guard is
/// dropped, should a failed test leave it.
pub fn prefix(tag: &str) -> EalPrefix {
    EalPrefix(format!("rlt{}-{tag}", std::process::id()))
}

/// An EAL file prefix; removes its runtime directory on drop.
pub struct EalPrefix(pub String);

impl std::ops::Deref for EalPrefix {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EalPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl EalPrefix {
    /// Where DPDK puts this prefix's runtime directory (as
    /// `eal_create_runtime_dir`: `/var/run` for root, else
    /// `$XDG_RUNTIME_DIR` or `/tmp`, then `dpdk/<prefix>`).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        let base = if is_root() {
            std::path::PathBuf::from("/var/run")
        } else {
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from("/tmp"))
        };
        base.join("dpdk").join(&self.0)
    }
}

impl Drop for EalPrefix {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.runtime_dir());
    }
}

/// True if we are root (TAP devices, namespaces).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// `ip <args>`; Err with stderr on failure.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace the test created; deleted (with every interface in
/// it) when dropped. Nothing in it reaches the outside.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("rlt{}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A command run inside the namespace (`ip netns exec`, which execs, so
    /// the child's pid is the program's).
    pub fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]).args(args);
        c
    }

    /// Waits for interface `dev` to appear in the namespace, then gives the
    /// kernel side `addr` and brings it up.
    pub fn configure(&self, dev: &str, addr: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while ip(&["-n", &self.0, "link", "show", dev]).is_err() {
            if Instant::now() >= deadline {
                return Err(format!("{dev} never appeared in {}", self.0));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        ip(&["-n", &self.0, "addr", "add", addr, "dev", dev])?;
        ip(&["-n", &self.0, "link", "set", dev, "up"])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}
