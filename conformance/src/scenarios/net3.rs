//! The socket data path, wide (part 2): RECV/RECVMSG variants and POLL masks.
