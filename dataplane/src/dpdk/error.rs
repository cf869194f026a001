//! Typed errors for the DPDK layer, with the EAL's errno turned into advice.

use std::ffi::CStr;
use std::path::PathBuf;

use ringline_dpdk_sys as sys;

/// Why a DPDK call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpdkError {
    /// The EAL was already initialised (or is being initialised) in this
    /// process. DPDK allows one successful `rte_eal_init` per process, even
    /// after `rte_eal_cleanup`.
    #[error(
        "the DPDK EAL is already initialised in this process (it can be initialised only once)"
    )]
    AlreadyInitialized,
    /// An EAL argument contains a NUL byte and cannot be passed to C.
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// `rte_eal_init` rejected the arguments (`EINVAL`).
    #[error("invalid EAL arguments [{args}] (the EAL log above says which one)")]
    InvalidArguments {
        /// The arguments as passed, space separated.
        args: String,
    },
    /// `rte_eal_init` could not read hugepage information (`EACCES`).
    #[error(
        "the EAL found no usable hugepages (permission denied): reserve some \
         (echo 256 > /proc/sys/vm/nr_hugepages), mount hugetlbfs on /dev/hugepages, run as root, \
         or pass --no-huge"
    )]
    NoHugepages,
    /// The EAL could not set up its memory (`ENOMEM`): usually too few free
    /// hugepages for `-m`/`--socket-mem`.
    #[error(
        "the EAL could not set up memory ({message}): reserve more hugepages, lower -m, \
         or pass --no-huge"
    )]
    NoMemory {
        /// `rte_strerror` of the errno.
        message: String,
    },
    /// The EAL could not set up its devices (`ENODEV`): a `--vdev`/`-a`
    /// argument it cannot parse (an unknown driver name), a bus scan that
    /// failed, or its memory zones.
    #[error(
        "the EAL could not set up its devices: check the --vdev / -a arguments (is the driver \
         name right, and is its driver installed?) and the EAL log above"
    )]
    DeviceSetup,
    /// Another DPDK process runs with this file prefix: it holds the lock
    /// on the prefix's `config` file in its runtime directory.
    #[error(
        "EAL file prefix {prefix:?} is in use by another DPDK process ({}; runtime directory \
         {}): give this process its own --file-prefix, or stop that one",
        owner(.pid),
        .dir.display()
    )]
    PrefixInUse {
        /// The file prefix (the runtime directory's name).
        prefix: String,
        /// The process holding it, if the kernel tells.
        pid: Option<u32>,
        /// The prefix's runtime directory (`/var/run/dpdk/<prefix>`).
        dir: PathBuf,
    },
    /// Another ringline process drives a device these EAL arguments name
    /// (a TAP interface, a memif end, a PCI device); see `claim.rs`.
    #[error(
        "{device} is in use by another ringline process ({}; lock file {}): stop that one, \
         or give this process another device",
        owner(.pid),
        .lock.display()
    )]
    DeviceInUse {
        /// The device, for people ("the TAP interface rl0").
        device: String,
        /// The owner's pid, as written in its lock file.
        pid: Option<u32>,
        /// The lock file.
        lock: PathBuf,
    },
    /// A device's lock file could not be created or locked.
    #[error("cannot claim a device through {}: {message}", .path.display())]
    Claim {
        /// The lock file (or its directory).
        path: PathBuf,
        /// The system's error.
        message: String,
    },
    /// `rte_eal_init` could not probe the devices it found (`ENOTSUP`): a
    /// driver refused a `--vdev` or `-a` device.
    #[error(
        "the EAL could not start its devices (a --vdev / -a device failed to probe): the EAL \
         log above names the device and why"
    )]
    ProbeFailed,
    /// Any other `rte_eal_init` failure.
    #[error("rte_eal_init failed: {message} (rte_errno {errno})")]
    Eal {
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// The EAL found no Ethernet ports: bind a NIC to vfio-pci, or pass a
    /// virtual device (`--vdev=net_ring0`, `--vdev=net_tap0`, ...).
    #[error(
        "DPDK found no Ethernet ports: bind a NIC to vfio-pci or pass a virtual device \
         (--vdev=net_ring0, --vdev=net_tap0, --vdev=net_af_packet0,iface=eth0)"
    )]
    NoPorts,
    /// No port has this name (`rte_eth_dev_get_port_by_name`).
    #[error("no DPDK port named {0:?} (was its --vdev or PCI address given to the EAL?)")]
    PortNotFound(String),
    /// No port has this id.
    #[error("DPDK port {0} does not exist")]
    InvalidPort(u16),
    /// An ethdev call on a port failed.
    #[error("{op} on DPDK port {port} failed: {message} (errno {errno})")]
    Port {
        /// The port id.
        port: u16,
        /// The DPDK function that failed.
        op: &'static str,
        /// The errno it returned (positive).
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// `rte_pktmbuf_pool_create` failed.
    #[error("creating mbuf pool {name:?} failed: {message} (rte_errno {errno})")]
    Mempool {
        /// The pool name asked for.
        name: String,
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// The pool's mbufs cannot hold a full frame of the port's MTU in one
    /// segment (ringline keeps every frame contiguous).
    #[error(
        "mbuf data room of {data_room} bytes (headroom {headroom}) cannot hold a {frame}-byte \
         frame for MTU {mtu}: create the pool with a larger data room"
    )]
    BufferTooSmall {
        /// The pool's data room per mbuf.
        data_room: u32,
        /// Headroom DPDK reserves in it.
        headroom: u32,
        /// Largest frame of the port.
        frame: usize,
        /// The port's MTU.
        mtu: usize,
    },
    /// The pool has too few mbufs for the port: it needs one per RX and TX
    /// descriptor plus a full TX batch.
    #[error(
        "mbuf pool of {mbufs} mbufs is too small for the port: it needs at least {needed} \
         (RX + TX descriptors + TX batch)"
    )]
    PoolTooSmall {
        /// Mbufs in the pool.
        mbufs: u32,
        /// Mbufs the port needs.
        needed: usize,
    },
    /// Building a [`super::net_ring_pair`] failed.
    #[error("{op} for {name:?} failed: {message} (rte_errno {errno})")]
    RingPair {
        /// The ring or port being created.
        name: String,
        /// The DPDK function that failed.
        op: &'static str,
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid DPDK configuration: {0}")]
    Config(&'static str),
}

/// "pid 1234", or "pid unknown".
fn owner(pid: &Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "pid unknown".to_owned(),
    }
}

/// `rte_strerror(errno)` as an owned string.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror takes any errno and returns a NUL-terminated string, static or in a
    // per-thread buffer valid until the next call on this thread; it is copied out at once.
    unsafe {
        let msg = sys::rte_strerror(errno);
        if msg.is_null() {
            format!("errno {errno}")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        }
    }
}

/// The `rte_errno` of the calling thread.
pub(crate) fn last_rte_errno() -> i32 {
    // SAFETY: reads the calling thread's rte_errno; no preconditions.
    unsafe { sys::rte_errno() }
}

/// A failed ethdev call (`ret < 0` is `-errno`) as a [`DpdkError::Port`].
pub(crate) fn port_error(port: u16, op: &'static str, ret: i32) -> DpdkError {
    let errno = ret.saturating_abs();
    DpdkError::Port {
        port,
        op,
        errno,
        message: strerror(errno),
    }
}

/// Maps `rte_eal_init`'s `rte_errno` to an error with advice.
pub(crate) fn eal_init_error(errno: i32, args: &[String]) -> DpdkError {
    let errno_u = u32::try_from(errno).unwrap_or(u32::MAX);
    match errno_u {
        sys::EALREADY => DpdkError::AlreadyInitialized,
        sys::EINVAL => DpdkError::InvalidArguments {
            args: args.join(" "),
        },
        sys::EACCES => DpdkError::NoHugepages,
        sys::ENOMEM => DpdkError::NoMemory {
            message: strerror(errno),
        },
        sys::ENODEV => DpdkError::DeviceSetup,
        sys::ENOTSUP => DpdkError::ProbeFailed,
        // Some failures set no rte_errno (rte_errno_set(0) ran before the
        // call): rte_strerror(0) would say "Success".
        0 => DpdkError::Eal {
            errno,
            message: "the EAL gave no error code; its log above names the step that failed"
                .to_owned(),
        },
        _ => DpdkError::Eal {
            errno,
            message: strerror(errno),
        },
    }
}
