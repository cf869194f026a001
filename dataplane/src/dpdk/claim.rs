//! Claims on the host devices the EAL's arguments name, so that two ringline
//! processes never drive the same one.
//!
//! DPDK keeps processes with different file prefixes out of each other's
//! memory, not off each other's devices. A second process given
//! `--vdev=net_tap0,iface=rl0` while another drives `rl0` attaches one more
//! queue to the same TAP interface: the kernel spreads the first process's
//! traffic over both, and when the second process exits the interface is
//! torn down under the first, which is unreachable from then on. So before
//! the EAL starts, [`claim_all`] takes an exclusive `flock` on one lock file
//! per device the arguments name, in [`lock_dir`], and writes its pid in it;
//! a device whose file another process has locked is refused with
//! [`DpdkError::DeviceInUse`], which names that process.
//!
//! The kernel drops a `flock` when its holder exits, however it exits, so a
//! file left behind by a dead process never blocks anyone: the next claim
//! takes it over. A claim being released unlinks its file while it still
//! holds the lock; a process that opened the old file in the meantime sees,
//! once it has the lock, that the path now names another file (or none),
//! and tries again.
//!
//! What is claimed:
//!
//! | EAL argument | lock file | the device |
//! |---|---|---|
//! | `--vdev=net_tap…,iface=NAME` (and `net_tun`, `net_af_packet`, `net_af_xdp`) | `iface-NAME@netns-N.lock` | kernel interface NAME in network namespace N |
//! | `--vdev=net_memif…[,socket=S][,role=R][,id=I]` | `memif-S-R-I@netns-N.lock` | one end of a memif link |
//! | `-a ADDR` / `--allow=ADDR` | `pci-ADDR.lock` | a PCI device |
//!
//! A TAP without `iface=` gets a fresh name from the kernel (`dtap0`,
//! `dtap1`, ...), so it needs no claim; nor do `net_ring` and other devices
//! that live inside the process. PCI devices probed without `-a` are not
//! claimed here: VFIO already lets only one process open a device's group.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::DpdkError;

/// A device an EAL argument names, as far as claims go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Device {
    /// The device for people: "the TAP interface rl0".
    pub what: String,
    /// Its lock file's name in [`lock_dir`].
    pub file: String,
}

/// The kind of host device a vdev driver drives, by driver-name prefix (the
/// vdev bus matches a device to the driver whose name starts its name).
const IFACE_DRIVERS: &[(&str, &str)] = &[
    ("net_tap", "the TAP interface"),
    ("eth_tap", "the TAP interface"),
    ("net_tun", "the TUN interface"),
    ("net_af_packet", "the interface (AF_PACKET)"),
    ("eth_af_packet", "the interface (AF_PACKET)"),
    ("net_af_xdp", "the interface (AF_XDP)"),
];

/// Where the lock files live: `/run/ringline` for root; otherwise
/// `$XDG_RUNTIME_DIR/ringline`, or `/tmp/ringline-<uid>` (as DPDK chooses
/// its own runtime directory).
pub fn lock_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/ringline");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("ringline"),
        _ => PathBuf::from(format!("/tmp/ringline-{uid}")),
    }
}

/// The calling process's network namespace, as the inode number the kernel
/// shows in `/proc/self/ns/net` (`net:[4026531840]`). Interface names (and
/// abstract sockets) are per namespace, so claims on them carry it.
pub(crate) fn netns_id() -> String {
    fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            let inner = s.strip_prefix("net:[")?.strip_suffix(']')?.to_owned();
            Some(inner)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The devices `args` (EAL arguments) name that need a claim, in order,
/// without duplicates. `netns` is [`netns_id`].
pub(crate) fn devices(args: &[String], netns: &str) -> Vec<Device> {
    let mut out: Vec<Device> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if arg.starts_with("--") => (o, Some(v)),
            _ => (arg.as_str(), None),
        };
        let (is_vdev, value) = match opt {
            "--vdev" | "--allow" | "-a" => (
                opt == "--vdev",
                inline.map(str::to_owned).or_else(|| it.next().cloned()),
            ),
            // `-a0000:01:00.0`: getopt's attached short-option value.
            _ if opt.starts_with("-a") && !opt.starts_with("--") => {
                (false, Some(arg[2..].to_owned()))
            }
            _ => continue,
        };
        let Some(value) = value else { continue };
        let dev = if is_vdev {
            vdev(&value, netns)
        } else {
            pci(&value)
        };
        if let Some(d) = dev {
            if !out.iter().any(|o| o.file == d.file) {
                out.push(d);
            }
        }
    }
    out
}

/// The device a `--vdev` argument (`net_tap0,iface=rl0,...`) names.
fn vdev(spec: &str, netns: &str) -> Option<Device> {
    let mut parts = spec.split(',');
    let name = parts.next()?.trim();
    let kv: Vec<(&str, &str)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |key: &str| kv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some((_, what)) = IFACE_DRIVERS.iter().find(|(p, _)| name.starts_with(p)) {
        let iface = get("iface").filter(|i| !i.is_empty())?;
        return Some(Device {
            what: format!("{what} {iface}"),
            file: format!("iface-{}@netns-{netns}.lock", escape(iface)),
        });
    }
    if name.starts_with("net_memif") {
        // DPDK's defaults: socket /run/memif.sock, role client, id 0.
        let socket = get("socket").unwrap_or("/run/memif.sock");
        let role = match get("role") {
            Some("server") | Some("master") => "server",
            _ => "client",
        };
        let id: u32 = get("id").and_then(|i| i.parse().ok()).unwrap_or(0);
        return Some(Device {
            what: format!("the memif {role} end with id {id} on socket {socket}"),
            file: format!("memif-{}-{role}-{id}@netns-{netns}.lock", escape(socket)),
        });
    }
    None
}

/// The device an `-a` argument (`0000:01:00.0[,devargs]`) names.
fn pci(spec: &str) -> Option<Device> {
    let addr = spec.split(',').next()?.trim().to_ascii_lowercase();
    if addr.is_empty() {
        return None;
    }
    // `01:00.0` is domain 0000's.
    let addr = if addr.matches(':').count() == 1 {
        format!("0000:{addr}")
    } else {
        addr
    };
    Some(Device {
        what: format!("the PCI device {addr}"),
        file: format!("pci-{}.lock", escape(&addr)),
    })
}

/// `s` as one file name: `%` and every byte outside `[A-Za-z0-9._:-]`
/// percent-encoded (so `/tmp/a_b` and `/tmp/a/b` stay apart).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// An exclusive claim on one device: held until dropped, or until the
/// process exits, however it exits.
#[derive(Debug)]
pub(crate) struct Claim {
    path: PathBuf,
    /// Holds the `flock`; closing it releases the claim.
    _file: File,
}

impl Claim {
    /// Claims `dev` with a lock file in `dir` (created if missing).
    pub(crate) fn take(dir: &Path, dev: &Device) -> Result<Claim, DpdkError> {
        let path = dir.join(&dev.file);
        let fail = |e: std::io::Error| DpdkError::Claim {
            path: path.clone(),
            message: e.to_string(),
        };
        fs::create_dir_all(dir).map_err(|e| DpdkError::Claim {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
        // A few rounds at most: each retry means an owner released the
        // claim between our open and our lock.
        for _ in 0..16 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(fail)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(DpdkError::DeviceInUse {
                        device: dev.what.clone(),
                        pid: read_pid(&file),
                        lock: path,
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(fail(e)),
            }
            let ours = file.metadata().map_err(fail)?;
            let at_path = fs::metadata(&path);
            if !matches!(&at_path, Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino()) {
                continue;
            }
            file.set_len(0).map_err(fail)?;
            (&file)
                .write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(fail)?;
            return Ok(Claim { path, _file: file });
        }
        Err(fail(std::io::Error::other(
            "the lock file kept changing under us",
        )))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Unlinked while the lock is still held (the file closes after
        // this): see the module docs for why a waiter then retries.
        let _ = fs::remove_file(&self.path);
    }
}

/// The pid an owner wrote in its lock file (`None` if it has not yet, or
/// the file is not ours).
fn read_pid(mut file: &File) -> Option<u32> {
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Claims every device in `args` (EAL arguments), in order; on a refusal
/// the claims already taken are released.
pub(crate) fn claim_all(args: &[String]) -> Result<Vec<Claim>, DpdkError> {
    let devs = devices(args, &netns_id());
    if devs.is_empty() {
        return Ok(Vec::new());
    }
    let dir = lock_dir();
    devs.iter().map(|d| Claim::take(&dir, d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn files(line: &str) -> Vec<String> {
        devices(&args(line), "7")
            .into_iter()
            .map(|d| d.file)
            .collect()
    }

    #[test]
    fn devices_named_by_eal_arguments() {
        assert_eq!(
            files("--no-huge --vdev=net_tap0,iface=rl0 --vdev net_tap1,iface=a/b"),
            ["iface-rl0@netns-7.lock", "iface-a%2fb@netns-7.lock"]
        );
        // A TAP without iface= gets a kernel-chosen name; in-process devices need nothing.
        assert!(files("--vdev=net_tap0 --vdev=net_ring0 --vdev=net_null0").is_empty());
        assert_eq!(
            files("--vdev=net_af_packet0,iface=eth0 --vdev=eth_tap3,iface=eth0"),
            ["iface-eth0@netns-7.lock"],
            "one interface, one claim"
        );
        assert_eq!(
            files("-a 01:00.0 -a0000:02:00.1,foo=1 --allow=0000:03:00.0"),
            [
                "pci-0000:01:00.0.lock",
                "pci-0000:02:00.1.lock",
                "pci-0000:03:00.0.lock"
            ]
        );
        assert_eq!(
            files("--vdev=net_memif0,role=server,socket=/tmp/x.sock --vdev=net_memif1"),
            [
                "memif-%2ftmp%2fx.sock-server-0@netns-7.lock",
                "memif-%2frun%2fmemif.sock-client-0@netns-7.lock"
            ]
        );
        let d = devices(&args("--vdev=net_tap0,iface=rl0"), "7");
        assert_eq!(d[0].what, "the TAP interface rl0");
        assert_ne!(netns_id(), "unknown", "/proc/self/ns/net is readable");
    }

    #[test]
    fn a_claim_is_exclusive_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("ringline-claim-{}", std::process::id()));
        let dev = Device {
            what: "the TAP interface t0".into(),
            file: "iface-t0@netns-7.lock".into(),
        };
        let first = Claim::take(&dir, &dev).expect("first claim");
        let path = dir.join(&dev.file);
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to the open file: a second open, even in this
        // process, is refused, and the refusal names the owner.
        match Claim::take(&dir, &dev) {
            Err(DpdkError::DeviceInUse { device, pid, lock }) => {
                assert_eq!(device, "the TAP interface t0");
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(lock, path);
            }
            other => panic!("second claim: {other:?}"),
        }
        drop(first);
        assert!(!path.exists(), "released claims remove their file");
        // A file left by a dead owner (no lock held) does not block.
        fs::write(&path, "999999999\n").unwrap();
        let again = Claim::take(&dir, &dev).expect("stale file taken over");
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(again);
        fs::remove_dir_all(&dir).unwrap();
    }
}
