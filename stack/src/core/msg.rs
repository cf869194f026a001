//! The MSG_RING executor: a data message to a ring of this process (this
//! one included), through [`crate::msgring`].

use ringline_ring::abi::*;

use super::request::{MsgRing, Submission};
use super::{Core, OpResult};
use crate::errno;
use crate::msgring::Msg;

impl Core {
    /// IORING_OP_MSG_RING (Linux's io_msg_ring, in its order): the fd must
    /// name a ring (a socket or a fixed slot `-EBADFD`, nothing `-EBADF`),
    /// then by command. DATA: `addr3` and flags other than `FLAGS_PASS`
    /// `-EINVAL`, a `file_index` without `FLAGS_PASS` `-EINVAL`; the target
    /// gets a CQE (user_data `off`, res `len`, flags `file_index` with
    /// `FLAGS_PASS`), the sender res 0 (`-EOVERFLOW` if the target's mailbox
    /// is full). SEND_FD: `len` or the ring itself `-EINVAL`, an empty
    /// source slot `-EBADF`, then `-EOPNOTSUPP`: a socket belongs to its
    /// engine and cannot move to another's table. Other commands `-EINVAL`.
    pub(crate) fn op_msg_ring(&mut self, sub: &Submission, m: MsgRing) -> OpResult {
        let fd = sub.fd;
        if !self.rings.is_ring(fd) {
            let open = self.fds.get(fd).is_some()
                || self
                    .cfg
                    .socket_numbers
                    .as_ref()
                    .is_some_and(|h| h.0.is_open(fd));
            return Err(if open { errno::EBADFD } else { errno::EBADF });
        }
        match m.cmd {
            IORING_MSG_DATA => {
                if m.src_fd != 0
                    || m.flags & !IORING_MSG_RING_FLAGS_PASS != 0
                    || (m.flags & IORING_MSG_RING_FLAGS_PASS == 0 && m.dst_fd != 0)
                {
                    return Err(errno::EINVAL);
                }
                let msg = Msg {
                    user_data: m.user_data,
                    res: m.len as i32,
                    flags: if m.flags & IORING_MSG_RING_FLAGS_PASS != 0 {
                        m.dst_fd
                    } else {
                        0
                    },
                };
                if fd != self.rings.number() {
                    self.rings.send(fd, msg)?;
                    return Ok(Some((0, 0)));
                }
                // To itself, as Linux 6.18 orders them on a DEFER_TASKRUN
                // ring (measured): taken from the SQ, the request's CQE, then
                // the message's; issued
                // later (released by its chain or a drain), the message's
                // first.
                if self.released || sub.flags & IOSQE_IO_DRAIN != 0 {
                    self.cq.post(msg.user_data, msg.res, msg.flags);
                    return Ok(Some((0, 0)));
                }
                self.complete(sub, 0, 0);
                self.cq.post(msg.user_data, msg.res, msg.flags);
                Ok(None)
            }
            IORING_MSG_SEND_FD => {
                if m.len != 0 || fd == self.rings.number() {
                    return Err(errno::EINVAL);
                }
                self.files.get(m.src_fd).ok_or(errno::EBADF)?;
                Err(errno::EOPNOTSUPP)
            }
            _ => Err(errno::EINVAL),
        }
    }
}
