//! `ringline kernel-echo`: an echo server on the kernel's TCP (`std::net`,
//! a thread per connection), the Linux side of side-by-side measurements
//! against `ringline echo`. It echoes until the client half-closes, then
//! half-closes too once everything is written back (as `ringline echo`
//! does), so a client can check that every byte came back.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

/// Options of `ringline kernel-echo`.
#[derive(Args, Clone, Debug)]
pub struct KernelEchoArgs {
    /// Where to listen: ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:7")]
    pub listen: SocketAddr,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

/// The server's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelEchoStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Connections that ended with an error (other than a reset by the client).
    pub errors: u64,
}

/// Echoes one connection until EOF, then half-closes.
fn echo_conn(mut c: TcpStream, bytes: &AtomicU64) -> std::io::Result<()> {
    c.set_nonblocking(false)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        c.write_all(&buf[..n])?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    c.shutdown(Shutdown::Write)
}

/// Serves on `l` until `stop` is set.
pub fn serve(l: TcpListener, stop: &AtomicBool) -> Result<KernelEchoStats, String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut accepted = 0;
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((c, _)) => {
                accepted += 1;
                let (bytes, errors) = (bytes.clone(), errors.clone());
                conns.push(std::thread::spawn(move || {
                    if let Err(e) = echo_conn(c, &bytes) {
                        if e.kind() != ErrorKind::ConnectionReset {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("accept: {e}")),
        }
        conns.retain(|h| !h.is_finished());
    }
    // Connections still open are left to the process's exit.
    Ok(KernelEchoStats {
        accepted,
        bytes: bytes.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    })
}

/// `ringline kernel-echo`
pub fn run(a: &KernelEchoArgs) -> Result<(), String> {
    let stop = crate::netcmd::stop_flag(a.duration)?;
    let l = TcpListener::bind(a.listen).map_err(|e| format!("bind {}: {e}", a.listen))?;
    let at = l.local_addr().map_err(|e| e.to_string())?;
    println!("kernel-echo: listening on {at}");
    let _ = std::io::stdout().flush();
    let s = serve(l, &stop)?;
    println!(
        "kernel-echo: stopped; {} connections, {} bytes echoed, {} errors",
        s.accepted, s.bytes, s.errors
    );
    Ok(())
}
