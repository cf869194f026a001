//! The EAL: DPDK's process-wide runtime (memory, lcores, buses, drivers).

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, ThreadId};

use ringline_dpdk_sys as sys;

use super::claim::{claim_all, Claim};
use super::error::{eal_init_error, last_rte_errno, DpdkError};
use super::runtime_dir;

/// No `rte_eal_init` has succeeded and none is running.
const UNINIT: u8 = 0;
/// One thread is inside `rte_eal_init`.
const BUSY: u8 = 1;
/// `rte_eal_init` succeeded (or DPDK said it cannot be called again); final.
const DONE: u8 = 2;

/// Guards the once-per-process `rte_eal_init`. `Eal::init` compare-exchanges
/// UNINIT -> BUSY (acquire/release: the winner alone calls into DPDK) and
/// store-releases DONE or, after a failure DPDK lets us retry, UNINIT.
static EAL_STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// The program name put in front of the EAL arguments (`argv[0]`).
const PROGRAM: &str = "ringline";

/// The runtime directory of the EAL this process initialised; set once, by
/// the `Eal::init` that succeeded, and read by the exit hook.
static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Process-exit backstop for the runtime directory: the EAL of a process
/// whose last handle was never dropped on the main thread (a pool kept
/// alive for stray mbufs, `std::process::exit` with a handle alive) is never
/// cleaned up, but its directory still goes. Registered with `atexit`, so
/// it runs on a normal exit, not when a signal kills the process.
extern "C" fn remove_runtime_dir_at_exit() {
    if let Some(dir) = RUNTIME_DIR.get() {
        runtime_dir::remove(dir);
    }
}

/// A handle on the initialised EAL. Cheap to clone; every [`super::Mempool`]
/// and [`super::DpdkPort`] holds one, so `rte_eal_cleanup` runs only when the
/// last of them is dropped, and never while DPDK memory is still in use.
///
/// Not `Send`: pools and ports (which hold this handle) are used from one
/// engine thread. To run engines on several threads of one process, give
/// each thread an [`EalShare`] (from [`Eal::share`]) and create that
/// thread's pool and port there from [`EalShare::attach`].
pub struct Eal {
    inner: Arc<EalInner>,
    /// Keeps `Eal` off other threads (see the type's docs).
    _not_send: PhantomData<*const ()>,
}

impl Clone for Eal {
    fn clone(&self) -> Eal {
        Eal {
            inner: self.inner.clone(),
            _not_send: PhantomData,
        }
    }
}

/// A `Send` ticket to the initialised EAL, for another thread of the same
/// process: [`EalShare::attach`] turns it into an [`Eal`] there. It keeps the
/// EAL up like any handle.
#[derive(Clone)]
pub struct EalShare {
    inner: Arc<EalInner>,
}

impl std::fmt::Debug for EalShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EalShare").finish_non_exhaustive()
    }
}

impl EalShare {
    /// An [`Eal`] handle for the calling thread, on which it may create pools
    /// and ports. DPDK lets any thread of the process use its own ports and
    /// queues; such a thread is not an EAL lcore, so its mempool operations
    /// skip the per-lcore cache (correct, slightly slower).
    pub fn attach(self) -> Eal {
        Eal {
            inner: self.inner,
            _not_send: PhantomData,
        }
    }
}

struct EalInner {
    /// The thread that ran `rte_eal_init`; cleanup happens only there.
    init_thread: ThreadId,
    /// The EAL's runtime directory, removed after cleanup.
    runtime_dir: Option<PathBuf>,
    /// The devices the EAL arguments name, claimed for this process until
    /// the EAL is gone (dropped after `drop` has run).
    _claims: Vec<Claim>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // DPDK expects rte_eal_cleanup on the thread that initialised it
        // (its main lcore). When the last handle dies elsewhere (a thread
        // that attached outlived the main one), the EAL is left up until the
        // process exits, as if cleanup had not been called.
        if thread::current().id() != self.init_thread {
            return;
        }
        // A pool that could not be freed (mbufs still out) leaks its clone on purpose, so this
        // never runs under live mbufs.
        // SAFETY: the EAL was initialised (EalInner exists only after rte_eal_init succeeded),
        // this is its main thread and the last handle (pools and ports hold clones): no DPDK
        // call follows.
        unsafe {
            sys::rte_eal_cleanup();
        }
        // rte_eal_cleanup leaves the runtime directory (the config file,
        // the fbarray files, the multi-process socket) behind.
        if let Some(dir) = &self.runtime_dir {
            runtime_dir::remove(dir);
        }
    }
}

/// Why `rte_eal_init` failed, just after it did: a file prefix another
/// process holds (DPDK says only "Cannot create lock" in its log, and sets
/// no rte_errno), or what rte_errno says. The runtime directory the attempt
/// created is of no use to anyone and is removed (one another process holds
/// is left alone; a retry in this process creates it again).
fn init_failure(args: &[String]) -> DpdkError {
    let errno = last_rte_errno();
    let Some(dir) = runtime_dir::current() else {
        return eal_init_error(errno, args);
    };
    let err = match runtime_dir::prefix_owner(&dir) {
        Ok(Some(pid)) => DpdkError::PrefixInUse {
            prefix: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: u32::try_from(pid).ok().filter(|&p| p > 0),
            dir: dir.clone(),
        },
        _ => eal_init_error(errno, args),
    };
    runtime_dir::remove(&dir);
    err
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("ports", &self.port_count())
            .finish()
    }
}

impl Eal {
    /// Initialises the EAL with `args`, the EAL's command-line options without
    /// the program name (for example `["--no-huge", "-m", "256",
    /// "--vdev=net_ring0", "--no-pci"]`).
    ///
    /// The calling thread becomes the EAL's main lcore: DPDK pins it to that
    /// lcore's CPU. Call it on the thread that will run the engine.
    ///
    /// Once per process: a second call, even after the first `Eal` is
    /// dropped, returns [`DpdkError::AlreadyInitialized`]. A call that failed
    /// on bad arguments may be retried; DPDK refuses a retry after most other
    /// failures, which then also reads as `AlreadyInitialized`.
    ///
    /// Before DPDK starts, the host devices the arguments name (a TAP
    /// interface by `iface=`, a memif end, a PCI address given with `-a`)
    /// are claimed for this process; one another ringline process holds is
    /// refused with [`DpdkError::DeviceInUse`] (see `claim.rs`). A file
    /// prefix another DPDK process uses is refused with
    /// [`DpdkError::PrefixInUse`]. The EAL's runtime directory
    /// (`/var/run/dpdk/<prefix>`) is removed again when the EAL is cleaned
    /// up, when init fails, and at process exit.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new(PROGRAM).expect("no NUL in the program name"));
        for arg in args {
            owned.push(
                CString::new(arg.as_str()).map_err(|_| DpdkError::NulInArgument(arg.clone()))?,
            );
        }
        let argc = c_int::try_from(owned.len())
            .map_err(|_| DpdkError::Config("too many EAL arguments"))?;
        // rte_eal_init may permute argv (getopt), so it gets its own array of
        // pointers; the strings themselves stay owned by `owned`, which
        // outlives the call (DPDK does not keep them, per rte_eal.h).
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());

        if EAL_STATE
            .compare_exchange(UNINIT, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(DpdkError::AlreadyInitialized);
        }
        let claims = match claim_all(args) {
            Ok(c) => c,
            Err(e) => {
                EAL_STATE.store(UNINIT, Ordering::Release);
                return Err(e);
            }
        };
        // Some failures of rte_eal_init leave rte_errno untouched (a prefix
        // another process holds, for one): start from 0, so a stale value
        // from an earlier call on this thread is never reported as the cause.
        // SAFETY: writes the calling thread's rte_errno; no preconditions.
        unsafe { sys::rte_errno_set(0) };
        // SAFETY: argv holds argc pointers to NUL-terminated strings that live
        // across the call, followed by NULL; EAL_STATE guarantees no other
        // thread is in rte_eal_init.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let err = init_failure(args);
            // DPDK resets its own run-once flag after some failures (bad
            // arguments) and not after others; in the latter case it reports
            // EALREADY next time, which maps to AlreadyInitialized.
            let next = if err == DpdkError::AlreadyInitialized {
                DONE
            } else {
                UNINIT
            };
            EAL_STATE.store(next, Ordering::Release);
            return Err(err);
        }
        EAL_STATE.store(DONE, Ordering::Release);
        let runtime_dir = runtime_dir::current();
        if let Some(dir) = &runtime_dir {
            // Only the one successful init gets here, so the hook is
            // registered once.
            if RUNTIME_DIR.set(dir.clone()).is_ok() {
                // SAFETY: the hook is an `extern "C" fn()` that does not
                // unwind (it only removes files, ignoring errors) and stays
                // valid for the life of the process.
                unsafe { libc::atexit(remove_runtime_dir_at_exit) };
            }
        }
        Ok(Eal {
            inner: Arc::new(EalInner {
                init_thread: thread::current().id(),
                runtime_dir,
                _claims: claims,
            }),
            _not_send: PhantomData,
        })
    }

    /// A ticket another thread of this process can [`EalShare::attach`] to
    /// get its own handle (for its own pool and port).
    pub fn share(&self) -> EalShare {
        EalShare {
            inner: self.inner.clone(),
        }
    }

    /// Number of Ethernet ports the EAL found (PCI devices bound to a DPDK
    /// driver, plus `--vdev` devices).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (self exists); no other preconditions.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The id of the port called `name` (a vdev name such as `net_ring0`, or a
    /// PCI address such as `0000:01:00.0`).
    pub fn port_by_name(&self, name: &str) -> Result<u16, DpdkError> {
        if self.port_count() == 0 {
            return Err(DpdkError::NoPorts);
        }
        let c_name = CString::new(name).map_err(|_| DpdkError::PortNotFound(name.to_owned()))?;
        let mut port_id = 0u16;
        // SAFETY: c_name is NUL-terminated and outlives the call; port_id is a
        // valid place for the result.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
        if ret != 0 {
            return Err(DpdkError::PortNotFound(name.to_owned()));
        }
        Ok(port_id)
    }
}
