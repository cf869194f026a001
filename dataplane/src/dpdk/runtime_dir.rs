//! The EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root):
//! DPDK creates it at init, with the `config` file whose `fcntl` write lock
//! marks the prefix as taken by a primary process, and leaves it behind at
//! exit. ringline removes it when the EAL is done (after `rte_eal_cleanup`,
//! after a failed `rte_eal_init`, and at process exit as a backstop), unless
//! another process holds that lock: then the directory is that process's.

use std::ffi::CStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ringline_dpdk_sys as sys;

/// The runtime directory this process's EAL chose, once `rte_eal_init` got
/// as far as choosing it (`None` before, or if it created none).
pub(crate) fn current() -> Option<PathBuf> {
    // SAFETY: rte_eal_get_runtime_dir returns a pointer to a static,
    // NUL-terminated buffer (empty until the EAL sets it); copied out at once.
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    let dir = dir.to_str().ok()?;
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The pid of another process holding the prefix lock in `dir` (the write
/// lock DPDK's primary process keeps on `dir/config`); `None` if no other
/// process holds it or there is no such file.
///
/// Opening and closing the file drops this process's own `fcntl` locks on
/// it (POSIX lock semantics), so call this only once the EAL is done with
/// the prefix: after a failed init, or at cleanup.
pub(crate) fn prefix_owner(dir: &Path) -> io::Result<Option<i32>> {
    let file = match File::open(dir.join("config")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: an all-zero flock is a valid value of the plain C struct.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    // The whole file: DPDK locks a range of it.
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the fd is open for the call; F_GETLK only writes into `probe`,
    // a valid flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid))
}

/// Removes the runtime directory `dir` unless another process holds its
/// prefix lock. With a `config` file (a primary process's directory) the
/// whole directory goes; without one (`--no-shconf`, where processes may
/// share a prefix), only an empty directory is removed.
pub(crate) fn remove(dir: &Path) {
    match prefix_owner(dir) {
        Ok(None) => {}
        // Another process's, or we cannot tell: leave it.
        Ok(Some(_)) | Err(_) => return,
    }
    if dir.join("config").exists() {
        let _ = fs::remove_dir_all(dir);
    } else {
        let _ = fs::remove_dir(dir);
    }
}
