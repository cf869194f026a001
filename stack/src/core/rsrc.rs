//! Registered resources: the file table (fixed files and direct
//! descriptors), registered buffers, and `io_uring_register(2)` for them and
//! for `IORING_REGISTER_PROBE`, with Linux's argument layouts and errnos
//! (`io_uring/register.c`, `rsrc.c`, `filetable.c`).
//!
//! A slot holds a socket number ([`super::fds`]); the socket lives while a
//! slot or its fd names it ([`super::fds::Hold`]). Lookups are an index;
//! `IORING_FILE_INDEX_ALLOC` finds a free slot as Linux does, in a bitmap
//! from the allocation hint (a scan of 64 slots per word, at most the table's
//! size / 64 words). The tables are sized when registered, never per SQE.

use ringline_ring::abi::*;

use super::request::Direct;
use super::Core;
use crate::errno::{self, Errno};
use crate::usermem;

/// An empty slot.
const EMPTY: i32 = -1;

/// Largest registered buffer (`SZ_1G`, io_validate_user_buf_range).
const MAX_REG_BUF: u64 = 1 << 30;

/// The registered file table (`ctx->file_table`).
#[derive(Default)]
pub(crate) struct Files {
    /// Socket number per slot, or [`EMPTY`].
    slots: Vec<i32>,
    /// One bit per slot in use.
    used: Vec<u64>,
    /// `IORING_FILE_INDEX_ALLOC` picks from `start..end`.
    start: u32,
    end: u32,
    /// Where the next search begins (`alloc_hint`).
    hint: u32,
}

impl Files {
    /// Slots in the table (0: none registered).
    #[inline]
    pub(crate) fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The socket in `slot`, if any.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<i32> {
        match self.slots.get(slot as usize) {
            Some(&s) if s != EMPTY => Some(s),
            _ => None,
        }
    }

    fn reset(&mut self, n: u32) {
        self.slots = vec![EMPTY; n as usize];
        self.used = vec![0; (n as usize).div_ceil(64)];
        (self.start, self.end, self.hint) = (0, n, 0);
    }

    /// Empties `slot`, returning what it held (`io_reset_rsrc_node` +
    /// `io_file_bitmap_clear`).
    fn take(&mut self, slot: u32) -> Option<i32> {
        let old = self.get(slot)?;
        self.slots[slot as usize] = EMPTY;
        self.used[slot as usize / 64] &= !(1 << (slot % 64));
        self.hint = slot;
        Some(old)
    }

    /// Puts `sock` into `slot`, returning what it replaced; the bitmap (and
    /// the hint) change only when the slot was empty, as in
    /// `io_install_fixed_file`.
    fn put(&mut self, slot: u32, sock: i32) -> Option<i32> {
        let old = self.get(slot);
        self.slots[slot as usize] = sock;
        if old.is_none() {
            self.used[slot as usize / 64] |= 1 << (slot % 64);
            self.hint = slot + 1;
        }
        old
    }

    /// The first free slot in `from..to`.
    fn next_free(&self, from: u32, to: u32) -> Option<u32> {
        let mut i = from;
        while i < to {
            let word = !self.used[i as usize / 64] >> (i % 64);
            if word != 0 {
                let s = i + word.trailing_zeros();
                return (s < to).then_some(s);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// A free slot for `IORING_FILE_INDEX_ALLOC` (`io_file_bitmap_get`): from
    /// the hint to the range's end, then from its start to the hint. A hint
    /// outside the range (a slot below it was freed) starts at the range's
    /// start, as Linux 6.18 answers.
    fn alloc(&mut self) -> Result<u32, Errno> {
        if self.slots.is_empty() {
            return Err(errno::ENFILE);
        }
        if self.hint < self.start || self.hint >= self.end {
            self.hint = self.start;
        }
        let mut to = self.end;
        loop {
            if let Some(s) = self.next_free(self.hint, to) {
                return Ok(s);
            }
            if self.hint == self.start {
                return Err(errno::ENFILE);
            }
            to = self.hint;
            self.hint = self.start;
        }
    }
}

/// The registered buffers (`ctx->buf_table`): `(addr, len)` each; a null
/// entry (registered as `{NULL, 0}`) is empty.
#[derive(Default)]
pub(crate) struct RegBufs {
    bufs: Vec<(u64, u64)>,
}

impl RegBufs {
    /// Whether registered buffer `index` exists (`io_find_buf_node`: in the
    /// table and not an empty entry).
    #[inline]
    pub(crate) fn exists(&self, index: u16) -> bool {
        self.bufs
            .get(index as usize)
            .is_some_and(|&(base, _)| base != 0)
    }

    /// `-EFAULT` unless `addr..addr + len` lies in registered buffer `index`
    /// (`io_import_reg_buf`: a missing buffer, an overflow or a range outside
    /// it).
    #[inline]
    pub(crate) fn check(&self, index: u16, addr: u64, len: u32) -> Result<(), Errno> {
        let &(base, size) = self.bufs.get(index as usize).ok_or(errno::EFAULT)?;
        let end = addr.checked_add(u64::from(len)).ok_or(errno::EFAULT)?;
        if base == 0 || addr < base || end > base + size {
            return Err(errno::EFAULT);
        }
        Ok(())
    }
}

impl Core {
    /// `io_uring_register(2)` for the opcodes of this module (see
    /// `ringline_ring::app::Driver::register`); `EINVAL` for any other.
    pub(crate) fn register(&mut self, opcode: u32, arg: u64, nr: u32) -> Result<u32, Errno> {
        match opcode {
            IORING_REGISTER_FILES => {
                if arg == 0 {
                    return Err(errno::EFAULT);
                }
                self.register_files(Some(arg), nr, 0)
            }
            IORING_REGISTER_FILES2 => {
                if nr as usize != core::mem::size_of::<RsrcRegister>() {
                    return Err(errno::EINVAL);
                }
                let rr: RsrcRegister = usermem::read(arg)?;
                if rr.nr == 0 || rr.resv2 != 0 || rr.flags & !IORING_RSRC_REGISTER_SPARSE != 0 {
                    return Err(errno::EINVAL);
                }
                let sparse = rr.flags & IORING_RSRC_REGISTER_SPARSE != 0;
                if sparse && rr.data != 0 {
                    return Err(errno::EINVAL);
                }
                let data = (rr.data != 0).then_some(rr.data);
                self.register_files(data, rr.nr, rr.tags)
            }
            IORING_UNREGISTER_FILES => {
                if arg != 0 || nr != 0 {
                    return Err(errno::EINVAL);
                }
                if self.files.len() == 0 {
                    return Err(errno::ENXIO);
                }
                for slot in 0..self.files.len() {
                    self.clear_slot(slot);
                }
                self.files = Files::default();
                Ok(0)
            }
            IORING_REGISTER_FILES_UPDATE => {
                if nr == 0 {
                    return Err(errno::EINVAL);
                }
                let up: RsrcUpdate = usermem::read(arg)?;
                if up.resv != 0 {
                    return Err(errno::EINVAL);
                }
                self.update_files(up.offset, up.data, nr, 0)
            }
            IORING_REGISTER_FILES_UPDATE2 => {
                if nr as usize != core::mem::size_of::<RsrcUpdate2>() {
                    return Err(errno::EINVAL);
                }
                let up: RsrcUpdate2 = usermem::read(arg)?;
                if up.nr == 0 || up.resv != 0 || up.resv2 != 0 {
                    return Err(errno::EINVAL);
                }
                self.update_files(up.offset, up.data, up.nr, up.tags)
            }
            IORING_REGISTER_FILE_ALLOC_RANGE => {
                if arg == 0 || nr != 0 {
                    return Err(errno::EINVAL);
                }
                let r: FileIndexRange = usermem::read(arg)?;
                let end = r.off.checked_add(r.len).ok_or(errno::EOVERFLOW)?;
                if r.resv != 0 || end > self.files.len() {
                    return Err(errno::EINVAL);
                }
                (self.files.start, self.files.end, self.files.hint) = (r.off, end, r.off);
                Ok(0)
            }
            IORING_REGISTER_BUFFERS => {
                if arg == 0 {
                    return Err(errno::EFAULT);
                }
                self.register_buffers(arg, nr)
            }
            IORING_UNREGISTER_BUFFERS => {
                if arg != 0 || nr != 0 {
                    return Err(errno::EINVAL);
                }
                if self.regbufs.bufs.is_empty() {
                    return Err(errno::ENXIO);
                }
                self.regbufs = RegBufs::default();
                Ok(0)
            }
            IORING_UNREGISTER_PBUF_RING => {
                // io_unregister_pbuf_ring: an `io_uring_buf_reg` (ring_addr,
                // ring_entries, bgid, flags, 3 reserved words); flags must be
                // 0 (Linux 6.18 does not look at the reserved words:
                // `bufring_unregister_in_use`); only the group id counts.
                if arg == 0 || nr != 1 {
                    return Err(errno::EINVAL);
                }
                let reg: [u64; 5] = usermem::read(arg)?;
                let (bgid, flags) = ((reg[1] >> 32) as u16, (reg[1] >> 48) as u16);
                if flags != 0 {
                    return Err(errno::EINVAL);
                }
                self.bufs.unregister(bgid).map(|()| 0)
            }
            IORING_REGISTER_SYNC_CANCEL => {
                if arg == 0 || nr != 1 {
                    return Err(errno::EINVAL);
                }
                self.sync_cancel(arg)
            }
            IORING_REGISTER_PBUF_STATUS => {
                // io_register_pbuf_status: `io_uring_buf_status` (group,
                // head out, 8 reserved words that must be 0); the group must
                // be a buffer ring; its head (buffers consumed) is written.
                if arg == 0 || nr != 1 {
                    return Err(errno::EINVAL);
                }
                let st: [u32; 10] = usermem::read(arg)?;
                if st[2..].iter().any(|&w| w != 0) {
                    return Err(errno::EINVAL);
                }
                let head = u16::try_from(st[0])
                    .ok()
                    .and_then(|g| self.bufs.ring_status(g))
                    .ok_or(errno::ENOENT)??;
                usermem::write(arg + 4, u32::from(head))?;
                Ok(0)
            }
            IORING_REGISTER_PROBE => {
                if arg == 0 || nr > 256 {
                    return Err(errno::EINVAL);
                }
                probe(arg, nr)
            }
            _ => Err(errno::EINVAL),
        }
    }

    /// `IORING_REGISTER_SYNC_CANCEL` (`io_sync_cancel`) of the
    /// `io_uring_sync_cancel_reg` at `arg` (64 B: `addr`, `fd`, `flags`,
    /// a timeout, `opcode`, 7 + 24 pad bytes that must be 0): unknown flags
    /// `-EINVAL`; with FD a socket that is not open `-EBADF` (a slot with
    /// FD_FIXED: empty `-EBADF`); then the requests are cancelled as by an
    /// ASYNC_CANCEL with those keys, their `-ECANCELED` CQEs posted before
    /// the call returns: 0, `-ENOENT` when nothing matched, with ALL or ANY
    /// the count. Nothing in ringline runs where a cancel cannot reach it,
    /// so the timeout (how long Linux waits for `-EALREADY` requests) is
    /// never needed.
    fn sync_cancel(&mut self, arg: u64) -> Result<u32, Errno> {
        let w: [u64; 8] = usermem::read(arg)?;
        let (fd, flags) = (w[1] as u32 as i32, (w[1] >> 32) as u32);
        let opcode = w[4] as u8;
        if flags & !super::request::CANCEL_FLAGS != 0 || w[4] >> 8 != 0 || w[5..] != [0; 3] {
            return Err(errno::EINVAL);
        }
        let m = super::request::cancel_keys(flags, w[0], fd, opcode, false);
        let mut m = self.cancel_file(m)?;
        if m.any {
            // ANY matches every request, whatever the fd named.
            m.fd = None;
        }
        let n = self.cancel_where(m, |_, _| {});
        match (n, m.all) {
            (_, true) => Ok(n as u32),
            (0, false) => Err(errno::ENOENT),
            _ => Ok(0),
        }
    }

    /// `io_sqe_files_register`: `n` slots from the fds at `data` (-1: empty),
    /// or all empty without `data`. All or nothing.
    fn register_files(&mut self, data: Option<u64>, n: u32, tags: u64) -> Result<u32, Errno> {
        if self.files.len() != 0 {
            return Err(errno::EBUSY);
        }
        if n == 0 {
            return Err(errno::EINVAL);
        }
        if n > IORING_MAX_FIXED_FILES {
            return Err(errno::EMFILE);
        }
        if tags != 0 {
            // Resource tags (a CQE when a slot's file is released): not supported.
            return Err(errno::EINVAL);
        }
        if let Some(data) = data {
            usermem::check(data, n as usize * 4)?;
            for i in 0..n {
                let fd: i32 = usermem::read(data + u64::from(i) * 4)?;
                // A socket made outside the engine (libringline's `socket()`)
                // becomes this engine's when a registration names it, as when
                // a request does; one it cannot take stays unknown: EBADF.
                let _ = self.adopt_fd(fd);
                if fd != -1 && !self.fds.visible(fd) {
                    return Err(errno::EBADF);
                }
            }
        }
        self.files.reset(n);
        if let Some(data) = data {
            for i in 0..n {
                let fd: i32 = usermem::read(data + u64::from(i) * 4)?;
                if fd != -1 {
                    self.files.put(i, fd);
                    self.fds.hold_mut(fd).slots += 1;
                }
            }
            self.files.hint = 0;
        }
        Ok(0)
    }

    /// `__io_sqe_files_update`: slots `off..off + n` from the fds at `data`
    /// (-1 empties a slot, `IORING_REGISTER_FILES_SKIP` leaves it). Returns
    /// how many were done, or the error if none was.
    fn update_files(&mut self, off: u32, data: u64, n: u32, tags: u64) -> Result<u32, Errno> {
        if self.files.len() == 0 {
            return Err(errno::ENXIO);
        }
        if u64::from(off) + u64::from(n) > u64::from(self.files.len()) {
            return Err(errno::EINVAL);
        }
        if tags != 0 {
            return Err(errno::EINVAL);
        }
        let mut done = 0;
        let mut err = None;
        for i in 0..n {
            let fd = match usermem::read::<i32>(data.wrapping_add(u64::from(i) * 4)) {
                Ok(fd) => fd,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            if fd != IORING_REGISTER_FILES_SKIP {
                let slot = off + i;
                let _ = self.adopt_fd(fd);
                if fd != -1 && !self.fds.visible(fd) {
                    // Linux empties the slot before it looks the new fd up.
                    self.clear_slot(slot);
                    err = Some(errno::EBADF);
                    break;
                }
                self.clear_slot(slot);
                if fd != -1 {
                    self.files.put(slot, fd);
                    self.fds.hold_mut(fd).slots += 1;
                }
            }
            done += 1;
        }
        match (done, err) {
            (0, Some(e)) => Err(e),
            _ => Ok(done),
        }
    }

    /// `io_sqe_buffers_register`: `n` iovecs at `arg`; `{NULL, 0}` is an
    /// empty entry. All or nothing.
    fn register_buffers(&mut self, arg: u64, n: u32) -> Result<u32, Errno> {
        if !self.regbufs.bufs.is_empty() {
            return Err(errno::EBUSY);
        }
        if n == 0 || n > IORING_MAX_REG_BUFFERS {
            return Err(errno::EINVAL);
        }
        let iov_size = core::mem::size_of::<libc::iovec>() as u64;
        let mut bufs = Vec::with_capacity(n as usize);
        for i in 0..u64::from(n) {
            let iov: libc::iovec = usermem::read(arg + i * iov_size)?;
            let (base, len) = (iov.iov_base as u64, iov.iov_len as u64);
            if base == 0 {
                if len != 0 {
                    return Err(errno::EFAULT);
                }
            } else {
                // io_validate_user_buf_range, then pinning the pages.
                if len == 0 || len > MAX_REG_BUF {
                    return Err(errno::EFAULT);
                }
                let pages = len.next_multiple_of(4096);
                if base.checked_add(pages).is_none() {
                    return Err(errno::EOVERFLOW);
                }
                usermem::check_mapped(base, len as usize)?;
            }
            bufs.push((base, len));
        }
        self.regbufs.bufs = bufs;
        Ok(0)
    }

    /// Empties `slot`, closing the socket if nothing else names it.
    fn clear_slot(&mut self, slot: u32) {
        if let Some(sock) = self.files.take(slot) {
            self.release_slot_hold(sock);
        }
    }

    fn release_slot_hold(&mut self, sock: i32) {
        let h = self.fds.hold_mut(sock);
        h.slots -= 1;
        if h.slots == 0 && h.hidden {
            // An in-use socket always closes (Ok).
            let _ = self.close_socket(sock);
        }
    }

    /// Installs socket `sock` as a direct descriptor (`__io_fixed_fd_install`):
    /// the CQE result (the slot for `IORING_FILE_INDEX_ALLOC`, else 0). On
    /// failure the caller closes the socket.
    pub(crate) fn install_direct(&mut self, d: Direct, sock: i32) -> Result<i32, Errno> {
        let (slot, res) = match d {
            Direct::Alloc => {
                let s = self.files.alloc()?;
                (s, s as i32)
            }
            Direct::Slot(s) => (s, 0),
        };
        if self.files.len() == 0 {
            return Err(errno::ENXIO);
        }
        if slot >= self.files.len() {
            return Err(errno::EINVAL);
        }
        let h = self.fds.hold_mut(sock);
        h.hidden = true;
        h.slots += 1;
        if let Some(old) = self.files.put(slot, sock) {
            self.release_slot_hold(old);
        }
        Ok(res)
    }

    /// CLOSE of slot `slot` (0-based; `io_fixed_fd_remove`).
    pub(crate) fn close_slot(&mut self, slot: u32) -> Result<(), Errno> {
        if self.files.len() == 0 {
            return Err(errno::ENXIO);
        }
        if slot >= self.files.len() {
            return Err(errno::EINVAL);
        }
        if self.files.get(slot).is_none() {
            return Err(errno::EBADF);
        }
        self.clear_slot(slot);
        Ok(())
    }
}

/// `io_probe`: fills the application's `io_uring_probe` with `nr` entries
/// (at most `IORING_OP_LAST`); the memory must be zeroed.
fn probe(arg: u64, nr: u32) -> Result<u32, Errno> {
    let nr = nr.min(u32::from(IORING_OP_LAST)) as usize;
    let size = 16 + nr * core::mem::size_of::<ProbeOp>();
    let mem = usermem::slice_mut(arg, size)?;
    if mem.iter().any(|&b| b != 0) {
        return Err(errno::EINVAL);
    }
    mem[0] = IORING_OP_LAST - 1;
    mem[1] = nr as u8;
    for op in 0..nr {
        let e = &mut mem[16 + op * 8..16 + op * 8 + 8];
        e[0] = op as u8;
        if super::request::supported(op as u8) {
            e[2..4].copy_from_slice(&IO_URING_OP_SUPPORTED.to_ne_bytes());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_follows_the_hint_and_wraps() {
        let mut f = Files::default();
        assert_eq!(f.alloc(), Err(errno::ENFILE), "no table");
        f.reset(130);
        assert_eq!(f.alloc(), Ok(0));
        f.put(0, 7);
        assert_eq!(f.alloc(), Ok(1));
        f.put(1, 8);
        f.put(64, 9);
        f.take(0);
        assert_eq!(f.alloc(), Ok(0), "a freed slot becomes the hint");
        f.hint = 63;
        assert_eq!(f.alloc(), Ok(63));
        f.put(63, 3);
        assert_eq!(f.alloc(), Ok(65), "skips the used slot across a word");
        (f.start, f.end, f.hint) = (128, 130, 128);
        f.put(128, 1);
        f.put(129, 2);
        assert_eq!(f.alloc(), Err(errno::ENFILE), "range full");
    }

    #[test]
    fn reg_buf_ranges() {
        let b = RegBufs {
            bufs: vec![(0x10000, 100), (0, 0)],
        };
        assert_eq!(b.check(0, 0x10000, 100), Ok(()));
        assert_eq!(b.check(0, 0x10010, 0), Ok(()));
        assert_eq!(b.check(0, 0x10000, 101), Err(errno::EFAULT));
        assert_eq!(b.check(0, 0xffff, 1), Err(errno::EFAULT));
        assert_eq!(b.check(1, 0x10000, 1), Err(errno::EFAULT), "empty entry");
        assert_eq!(b.check(2, 0x10000, 1), Err(errno::EFAULT), "no such buffer");
        assert_eq!(b.check(0, u64::MAX, 1), Err(errno::EFAULT));
        let exists: Vec<bool> = (0..3).map(|i| b.exists(i)).collect();
        assert_eq!(exists, [true, false, false], "NOP_FIXED_BUFFER's lookup");
    }
}
