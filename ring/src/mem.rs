//! Shared memory regions: anonymous `MAP_SHARED` mappings, optionally on 2 MiB huge pages.
//!
//! Rings live in a [`Region`]. The mapping is shared (not private), zero-filled by the
//! kernel, and prefaulted (`MAP_POPULATE`) so the hot path never takes a page fault on
//! ring memory. For an application in another process (`ringline serve`) the region is
//! a file instead ([`Region::new_file`]: a `memfd`, on hugetlbfs when huge pages are
//! available) whose descriptor is passed over a unix socket and mapped again on the
//! other side ([`Region::map_fd`]): the same pages at two addresses.

use core::fmt;
use core::ptr::NonNull;

/// Size of the huge pages ringline asks for (x86-64 and arm64 default).
pub const HUGE_PAGE_SIZE: usize = 2 * 1024 * 1024;

/// The kind of pages backing a [`Region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backing {
    /// 2 MiB huge pages (`MAP_HUGETLB`).
    HugePages,
    /// Normal pages.
    Normal,
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backing::HugePages => "hugepages",
            Backing::Normal => "normal pages",
        })
    }
}

/// Whether a [`Region`] should use huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HugePolicy {
    /// Try `MAP_HUGETLB` (length rounded up to 2 MiB); fall back to normal pages.
    #[default]
    Auto,
    /// Normal pages only.
    Never,
    /// Huge pages or an error ([`MemError::HugePagesUnavailable`]).
    Require,
}

/// Errors creating a [`Region`].
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// `HugePolicy::Require` was asked for but no huge page mapping could be made
    /// (none reserved in `/proc/sys/vm/nr_hugepages`, or the pool is exhausted).
    #[error("huge pages unavailable (reserve some in /proc/sys/vm/nr_hugepages)")]
    HugePagesUnavailable,
    /// `mmap` failed.
    #[error("mmap failed: {0}")]
    Mmap(#[source] std::io::Error),
}

/// An anonymous shared memory mapping, zero-filled, unmapped on drop.
///
/// The region hands out only a raw pointer; the rings built on it define who may
/// access which bytes and how (see [`crate::ring`] and [`crate::bufring`]).
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: a Region owns its mapping like a Box<[u8]>; mappings are process-wide and munmap may
// run on any thread, and Region never touches the memory itself (it only hands out the
// pointer), so moving it to another thread cannot create a data race.
unsafe impl Send for Region {}
// SAFETY: &Region only allows reading the pointer, length and backing, all immutable
// after construction. Accesses through the pointer are governed by the ring protocols
// of the users (atomics for shared counters, single writer per slot).
unsafe impl Sync for Region {}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let sz = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if sz > 0 {
        sz as usize
    } else {
        4096
    }
}

fn round_up(len: usize, to: usize) -> Option<usize> {
    debug_assert!(to.is_power_of_two());
    len.checked_add(to - 1).map(|l| l & !(to - 1))
}

fn mmap_anon(len: usize, extra_flags: libc::c_int) -> Result<NonNull<u8>, std::io::Error> {
    // SAFETY: an anonymous mapping at a kernel-chosen address (addr = NULL, fd = -1)
    // cannot alias any existing Rust object; the result is checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))
}

fn mmap_fd(len: usize, fd: libc::c_int) -> Result<NonNull<u8>, std::io::Error> {
    // SAFETY: a shared mapping of `fd` at a kernel-chosen address (addr = NULL) cannot alias
    // any existing Rust object; the result is checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))
}

/// A `memfd` of `len` bytes (`MFD_HUGETLB` with `huge`), sealed against shrinking so the
/// other side's mapping can never lose its pages (a truncated file would `SIGBUS` it).
fn memfd(len: usize, huge: bool) -> Result<std::os::fd::OwnedFd, std::io::Error> {
    use std::os::fd::FromRawFd;
    let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    if huge {
        flags |= libc::MFD_HUGETLB;
    }
    // SAFETY: the name is a NUL-terminated static string; memfd_create has no other
    // memory-safety precondition.
    let fd = unsafe { libc::memfd_create(c"ringline".as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    // SAFETY: plain syscalls on a descriptor we own.
    if unsafe { libc::ftruncate(raw, len as libc::off_t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Hugetlbfs files cannot be sealed (EINVAL); they cannot be truncated by another
    // process either without the descriptor, which only the two parties hold.
    // SAFETY: as above.
    let sealed = unsafe {
        libc::fcntl(
            raw,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    };
    if sealed != 0 && !huge {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

impl Region {
    /// A region backed by a new `memfd` of `len` bytes (rounded as in [`Region::new`]),
    /// on hugetlbfs if the policy allows and huge pages are reserved, sealed against
    /// resizing. Returns the mapping and the descriptor, which another process maps
    /// with [`Region::map_fd`].
    pub fn new_file(
        len: usize,
        policy: HugePolicy,
    ) -> Result<(Region, std::os::fd::OwnedFd), MemError> {
        use std::os::fd::AsRawFd;
        let invalid = || MemError::Mmap(std::io::Error::from_raw_os_error(libc::EINVAL));
        if len == 0 {
            return Err(invalid());
        }
        if policy != HugePolicy::Never {
            let huge_len = round_up(len, HUGE_PAGE_SIZE).ok_or_else(invalid)?;
            let made = memfd(huge_len, true)
                .and_then(|fd| mmap_fd(huge_len, fd.as_raw_fd()).map(|p| (p, fd)));
            match made {
                Ok((ptr, fd)) => {
                    let r = Region {
                        ptr,
                        len: huge_len,
                        backing: Backing::HugePages,
                    };
                    return Ok((r, fd));
                }
                Err(_) if policy == HugePolicy::Require => {
                    return Err(MemError::HugePagesUnavailable)
                }
                Err(_) => {}
            }
        }
        let len = round_up(len, page_size()).ok_or_else(invalid)?;
        let fd = memfd(len, false).map_err(MemError::Mmap)?;
        let ptr = mmap_fd(len, fd.as_raw_fd()).map_err(MemError::Mmap)?;
        Ok((
            Region {
                ptr,
                len,
                backing: Backing::Normal,
            },
            fd,
        ))
    }

    /// Maps the file `fd` (made by [`Region::new_file`], received from another
    /// process) whole. Its length is the file's size (`fstat`), a multiple of the
    /// page size; `EINVAL` for an empty or oddly sized file.
    pub fn map_fd(fd: std::os::fd::BorrowedFd<'_>) -> Result<Region, MemError> {
        use std::os::fd::AsRawFd;
        let invalid = || MemError::Mmap(std::io::Error::from_raw_os_error(libc::EINVAL));
        // SAFETY: an all-zero stat is a valid value; fstat fills it.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `st` is a valid, writable stat buffer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(MemError::Mmap(std::io::Error::last_os_error()));
        }
        let len = usize::try_from(st.st_size).map_err(|_| invalid())?;
        if len == 0 || !len.is_multiple_of(page_size()) {
            return Err(invalid());
        }
        let ptr = mmap_fd(len, fd.as_raw_fd()).map_err(MemError::Mmap)?;
        let backing =
            if len.is_multiple_of(HUGE_PAGE_SIZE) && st.st_blksize as usize == HUGE_PAGE_SIZE {
                Backing::HugePages
            } else {
                Backing::Normal
            };
        Ok(Region { ptr, len, backing })
    }

    /// Maps `len` bytes (rounded up to the page size, or to 2 MiB for huge pages).
    ///
    /// With [`HugePolicy::Auto`] a huge page mapping is tried first and normal pages
    /// are used if it fails; the choice is visible in [`Region::backing`].
    pub fn new(len: usize, policy: HugePolicy) -> Result<Region, MemError> {
        let invalid = || MemError::Mmap(std::io::Error::from_raw_os_error(libc::EINVAL));
        if len == 0 {
            return Err(invalid());
        }
        if policy != HugePolicy::Never {
            let huge_len = round_up(len, HUGE_PAGE_SIZE).ok_or_else(invalid)?;
            match mmap_anon(huge_len, libc::MAP_HUGETLB) {
                Ok(ptr) => {
                    return Ok(Region {
                        ptr,
                        len: huge_len,
                        backing: Backing::HugePages,
                    })
                }
                Err(_) if policy == HugePolicy::Require => {
                    return Err(MemError::HugePagesUnavailable)
                }
                Err(_) => {}
            }
        }
        let len = round_up(len, page_size()).ok_or_else(invalid)?;
        let ptr = mmap_anon(len, 0).map_err(MemError::Mmap)?;
        Ok(Region {
            ptr,
            len,
            backing: Backing::Normal,
        })
    }

    /// Start of the mapping (page aligned, or 2 MiB aligned with huge pages).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes: the requested length rounded up to the page size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region is never empty (kept for the `len`/`is_empty` convention).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pages backing this region.
    pub fn backing(&self) -> Backing {
        self.backing
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned for this Region, which owns
        // the mapping; every user holds the Region (through an Arc) while it accesses
        // the memory, so nothing refers to the pages after this point.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_region_is_zeroed_and_page_rounded() {
        let r = Region::new(100, HugePolicy::Never).unwrap();
        assert_eq!(r.backing(), Backing::Normal);
        assert_eq!(r.len() % page_size(), 0);
        assert!(r.len() >= 100);
        assert_eq!(r.as_ptr() as usize % page_size(), 0);
        // SAFETY: the region is r.len() bytes, readable and writable, owned by this test.
        let bytes = unsafe { core::slice::from_raw_parts_mut(r.as_ptr(), r.len()) };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[r.len() - 1] = 7;
        assert_eq!(bytes[r.len() - 1], 7);
    }

    #[test]
    fn a_file_region_maps_the_same_pages_twice() {
        use std::os::fd::AsFd;
        let (a, fd) = Region::new_file(5000, HugePolicy::Never).unwrap();
        let b = Region::map_fd(fd.as_fd()).unwrap();
        assert_eq!(a.len(), b.len());
        assert_ne!(a.as_ptr(), b.as_ptr());
        // SAFETY: both mappings are a.len() bytes of the same file, owned by this test.
        unsafe {
            a.as_ptr().add(4097).write(42);
            assert_eq!(b.as_ptr().add(4097).read(), 42);
        }
        // Sealed: the other side's mapping cannot lose its pages.
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on our descriptor.
        assert_ne!(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) }, 0);
        let auto = Region::new_file(4096, HugePolicy::Auto).unwrap().0;
        assert!(auto.len() >= 4096);
    }

    #[test]
    fn zero_length_is_an_error() {
        assert!(matches!(
            Region::new(0, HugePolicy::Never),
            Err(MemError::Mmap(_))
        ));
    }

    #[test]
    fn huge_region_when_available() {
        // Huge pages may not be reserved on this machine: Require either succeeds with
        // a 2 MiB mapping or reports HugePagesUnavailable; Auto always succeeds.
        match Region::new(4096, HugePolicy::Require) {
            Ok(r) => {
                assert_eq!(r.backing(), Backing::HugePages);
                assert_eq!(r.len(), HUGE_PAGE_SIZE);
                assert_eq!(r.as_ptr() as usize % HUGE_PAGE_SIZE, 0);
            }
            Err(e) => assert!(matches!(e, MemError::HugePagesUnavailable)),
        }
        let r = Region::new(4096, HugePolicy::Auto).unwrap();
        match r.backing() {
            Backing::HugePages => assert_eq!(r.len(), HUGE_PAGE_SIZE),
            Backing::Normal => assert_eq!(r.len(), round_up(4096, page_size()).unwrap()),
        }
        assert_eq!(Backing::HugePages.to_string(), "hugepages");
    }
}
