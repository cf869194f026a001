//! DPDK poll-mode ports behind the [`Nic`](crate::Nic) trait (feature `dpdk`).
//!
//! Safe wrappers over `ringline-dpdk-sys`:
//!
//! * [`Eal`]: the EAL, initialised once per process ([`Eal::init`]); cleaned
//!   up when the last handle (held by every pool and port) is dropped, and
//!   its runtime directory (`/var/run/dpdk/<file-prefix>`) removed. Before it
//!   starts, the host devices its arguments name are claimed for this
//!   process (a lock file each in [`lock_dir`]), so a second ringline
//!   process on the same TAP interface, memif end or PCI device is refused.
//! * [`Mempool`]: a pool of packet buffers; [`Mbuf`]: one owned buffer, freed
//!   on drop, with [`Mbuf::into_raw`] to hand it to the device.
//! * [`EalShare`]: a `Send` ticket that lets another thread of the process
//!   get its own [`Eal`] handle, to run its own pool and port there.
//! * [`net_ring_pair`]: two `net_ring` ports joined back to back (two
//!   engines in one process, no device needed).
//! * [`DpdkPort`]: one port, one RX and one TX queue, implementing `Nic` with
//!   no copies: received frames *are* the mbufs, transmitted frames are built
//!   in place in fresh mbufs and sent in bursts; a partial burst keeps the
//!   unsent mbufs for the next flush.
//!
//! Everything here is single-threaded (neither `Send` nor `Sync`): one engine
//! thread owns its EAL handle, its pool and its port. Create them on that
//! thread (other threads get their handle through [`Eal::share`]).
//!
//! Drivers: with a shared DPDK (Debian's `libdpdk-dev`), the EAL loads the
//! poll-mode drivers from its driver directory at init (Debian:
//! `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`); pass `-d <dir>` for another.
//! Virtual devices for tests: `--vdev=net_ring0` (its TX feeds its own RX),
//! `net_memif`, `net_tap0`, `net_af_packet0,iface=veth0`; `--no-huge -m 256`
//! runs without hugepages.
//!
//! Sizing: a port needs a pool of at least RX + TX descriptors + TX batch
//! mbufs (the device keeps one posted per descriptor), and a data room of at
//! least MTU + 14 + headroom; [`DpdkPort::open`] refuses smaller ones.
//!
//! Limits: frames are single-segment (no scatter, no LRO; the pool's data
//! room must hold MTU + 14). Checksum offload is used only where the device
//! reports IPv4 + TCP checksum capability (net_ring and net_memif do not);
//! received frames whose checksum the device marks bad are dropped and
//! counted in `rx_dropped`.

mod claim;
mod eal;
mod error;
mod mempool;
mod multi;
mod offload;
mod port;
mod ring_pair;
mod runtime_dir;

pub use claim::lock_dir;
pub use eal::{Eal, EalShare};
pub use error::DpdkError;
pub use mempool::{Mbuf, Mempool, MempoolConfig};
pub use multi::{DpdkQueue, MultiPort, HANDOFF_SLOTS};
pub use port::{DpdkPort, LinkStatus, PortConfig, MAX_TX_BATCH};
pub use ring_pair::{net_ring_pair, net_ring_pair_queues, MAX_PAIR_NAME};
pub use ringline_dpdk_sys as sys;
