//! One Ethernet port with one RX and one TX queue, behind the [`Nic`] trait.

use std::ffi::CStr;
use std::ptr::{self, NonNull};

use ringline_dpdk_sys as sys;

use super::eal::Eal;
use super::error::{port_error, DpdkError};
use super::mempool::{Mbuf, Mempool};
use super::offload::{prepare_tx_checksum, ETH_HLEN};
use crate::nic::{MacAddr, Nic, NicCaps, NicCounters, TxError, RX_BURST};

/// The only queue ringline uses on a port (one engine = one queue pair).
const QUEUE: u16 = 0;

/// Largest TX batch accepted in [`PortConfig::tx_batch`].
pub const MAX_TX_BATCH: usize = 1024;

/// How to set up a [`DpdkPort`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// RX descriptors (rounded to what the device supports).
    pub rx_descriptors: u16,
    /// TX descriptors (rounded to what the device supports).
    pub tx_descriptors: u16,
    /// Frames queued by `tx_frame` before they must be flushed (1..=[`MAX_TX_BATCH`]).
    pub tx_batch: usize,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// Use IPv4/TCP checksum offload where the device reports it.
    pub checksum_offload: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            tx_batch: 64,
            promiscuous: false,
            checksum_offload: true,
        }
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Carrier present.
    pub up: bool,
    /// Speed in Mb/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// A started DPDK Ethernet port with one RX and one TX queue.
///
/// Received frames are the mbufs themselves ([`Mbuf`], no copy); transmit
/// builds each frame straight into a fresh mbuf and batches it until
/// [`Nic::tx_flush`]. Mbufs the device does not take stay in the batch for the
/// next flush; whatever is left when the port is dropped is freed. Dropping
/// the port also drains its RX queue, stops and closes it.
pub struct DpdkPort {
    port_id: u16,
    pool: Mempool,
    caps: NicCaps,
    driver: String,
    /// Frames built and not yet accepted by `rte_eth_tx_burst`, oldest first.
    /// Owned: each pointer is an mbuf this port must send or free. The
    /// capacity is fixed at open and never grows.
    tx_batch: Vec<*mut sys::rte_mbuf>,
    tx_batch_max: usize,
    rx_checksum: bool,
    tx_checksum: bool,
    /// Frames dropped here on receive (multi-segment, bad checksum).
    sw_rx_dropped: u64,
    /// `tx_frame` calls refused (batch full, pool empty).
    sw_tx_dropped: u64,
    /// An mbuf `tx_ready` took from the pool to promise the next
    /// `tx_frame` one; `tx_frame` uses it first.
    tx_reserve: Option<Mbuf>,
    /// Keeps the EAL up while the port exists (the pool holds one too, but it
    /// may be leaked; the port's own handle documents the dependency).
    _eal: Eal,
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("port_id", &self.port_id)
            .field("driver", &self.driver)
            .field("caps", &self.caps)
            .field("pending_tx", &self.tx_batch.len())
            .finish()
    }
}

impl DpdkPort {
    /// Configures and starts port `port_id` with 1 RX + 1 TX queue, receiving
    /// into mbufs from `pool`.
    pub fn open(
        eal: &Eal,
        port_id: u16,
        pool: &Mempool,
        config: &PortConfig,
    ) -> Result<DpdkPort, DpdkError> {
        let started = start_port(eal, port_id, pool, config, 1, 0)?;
        Ok(DpdkPort {
            port_id,
            pool: pool.clone(),
            caps: started.caps,
            driver: started.driver,
            tx_batch: Vec::with_capacity(config.tx_batch),
            tx_batch_max: config.tx_batch,
            rx_checksum: started.rx_checksum,
            tx_checksum: started.tx_checksum,
            sw_rx_dropped: 0,
            tx_reserve: None,
            sw_tx_dropped: 0,
            _eal: eal.clone(),
        })
    }

    /// [`DpdkPort::open`] on the port called `name` (`net_ring0`, a PCI address, ...).
    pub fn open_by_name(
        eal: &Eal,
        name: &str,
        pool: &Mempool,
        config: &PortConfig,
    ) -> Result<DpdkPort, DpdkError> {
        let port_id = eal.port_by_name(name)?;
        Self::open(eal, port_id, pool, config)
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`);
    /// [`Nic::caps`] reports it from then on. Set it before an engine is
    /// opened on the port: the engine reads the MAC once.
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<(), DpdkError> {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(DpdkError::Config(
                "a port MAC must be a non-zero unicast address",
            ));
        }
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is valid and started; addr is a live rte_ether_addr.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.port_id, &mut addr) };
        if ret != 0 {
            return Err(port_error(
                self.port_id,
                "rte_eth_dev_default_mac_addr_set",
                ret,
            ));
        }
        self.caps.mac = mac;
        Ok(())
    }

    /// The NUMA socket of port `port_id`, `None` if unknown or if there is no
    /// such port (create the port's pool there for locality).
    pub fn socket_of(port_id: u16) -> Option<u32> {
        // SAFETY: any port id may be asked about.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            // DPDK 22.11's rte_eth_dev_socket_id dereferences the port's data
            // without checking it: on a port id that was never allocated
            // (e.g. port 0 when the EAL found no device) it crashes.
            return None;
        }
        // SAFETY: the port exists (checked above), so its data is allocated.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        u32::try_from(socket).ok()
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The driver's name (`net_ring`, `net_ixgbe`, ...).
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.caps.mac
    }

    /// The mbuf pool the port receives into and transmits from.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Frames built by `tx_frame` and not yet taken by the device.
    pub fn pending_tx(&self) -> usize {
        self.tx_batch.len()
    }

    /// The link state, without waiting for autonegotiation.
    pub fn link(&self) -> LinkStatus {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: the port is valid; link is writable.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.port_id, &mut link) };
        if ret != 0 {
            return LinkStatus {
                up: false,
                speed_mbps: 0,
                full_duplex: false,
            };
        }
        LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        }
    }

    /// The device's statistics (`rte_eth_stats_get`).
    pub fn stats(&self) -> Result<sys::rte_eth_stats, DpdkError> {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: the port is valid; stats is writable.
        let ret = unsafe { sys::rte_eth_stats_get(self.port_id, &mut stats) };
        if ret != 0 {
            return Err(port_error(self.port_id, "rte_eth_stats_get", ret));
        }
        Ok(stats)
    }

    /// True if a received mbuf may go to the engine: one contiguous segment,
    /// and no checksum the device found bad.
    fn accept(&self, mbuf: &Mbuf) -> bool {
        if mbuf.segments() != 1 || mbuf.pkt_len() != mbuf.len() {
            return false;
        }
        if self.rx_checksum {
            let bad = sys::RTE_MBUF_F_RX_IP_CKSUM_BAD | sys::RTE_MBUF_F_RX_L4_CKSUM_BAD;
            if mbuf.ol_flags() & bad != 0 {
                return false;
            }
        }
        true
    }
}

impl Nic for DpdkPort {
    type Frame = Mbuf;

    fn caps(&self) -> NicCaps {
        self.caps
    }

    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let want = max.min(RX_BURST).min(out.capacity() - out.len());
        if want == 0 {
            return 0;
        }
        let mut raw = [ptr::null_mut::<sys::rte_mbuf>(); RX_BURST];
        let (port, dst, want16) = (self.port_id, raw.as_mut_ptr(), want as u16);
        // SAFETY: the port is started with RX queue 0; `raw` has room for `want` <= RX_BURST
        // pointers; this thread is the queue's only user (not Send or Sync, and &mut self).
        let n = unsafe { sys::rte_eth_rx_burst(port, QUEUE, dst, want16) };
        let mut taken = 0;
        for &m in &raw[..usize::from(n)] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: rte_eth_rx_burst hands each returned mbuf to the caller:
            // direct, refcnt 1, from this port's pool, which outlives it.
            let mbuf = unsafe { Mbuf::from_raw(m) };
            if self.accept(&mbuf) {
                out.push(mbuf);
                taken += 1;
            } else {
                self.sw_rx_dropped += 1;
            }
        }
        taken
    }

    fn rx_release(&mut self, frame: Mbuf) {
        drop(frame);
    }

    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError> {
        if len > self.caps.mtu + ETH_HLEN {
            return Err(TxError::TooBig(len));
        }
        if self.tx_batch.len() == self.tx_batch_max {
            self.tx_flush();
            if self.tx_batch.len() == self.tx_batch_max {
                self.sw_tx_dropped += 1;
                return Err(TxError::Full);
            }
        }
        let Some(mut mbuf) = self.tx_reserve.take().or_else(|| self.pool.alloc()) else {
            self.sw_tx_dropped += 1;
            return Err(TxError::Full);
        };
        // The pool's data room holds mtu + 14 (checked at open), so this only
        // fails if that invariant is broken; report it as the frame's size.
        let Some(data) = mbuf.append(len) else {
            return Err(TxError::TooBig(len));
        };
        build(data);
        if self.tx_checksum {
            if let Some(off) = prepare_tx_checksum(mbuf.data_mut()) {
                mbuf.set_tx_offload(off.ol_flags, off.l2_len, off.l3_len);
            }
        }
        self.tx_batch.push(mbuf.into_raw().as_ptr());
        Ok(())
    }

    /// Room for one more frame: the batch has a free slot (after pushing it
    /// to the device if it was full) and an mbuf is in hand (taken from the
    /// pool now and kept for `tx_frame`, so an empty pool says no here
    /// instead of refusing a segment smoltcp has already built).
    fn tx_ready(&mut self) -> bool {
        if self.tx_batch.len() == self.tx_batch_max {
            self.tx_flush();
        }
        if self.tx_reserve.is_none() {
            self.tx_reserve = self.pool.alloc();
        }
        self.tx_batch.len() < self.tx_batch_max && self.tx_reserve.is_some()
    }

    fn tx_flush(&mut self) -> usize {
        if self.tx_batch.is_empty() {
            return 0;
        }
        let n = self.tx_batch.len() as u16;
        let (port, batch) = (self.port_id, self.tx_batch.as_mut_ptr());
        // SAFETY: the port is started with TX queue 0; tx_batch holds n owned mbufs, the device
        // takes the first `sent` and the rest stay ours; only this thread uses the queue.
        let sent = unsafe { sys::rte_eth_tx_burst(port, QUEUE, batch, n) };
        // Drop the pointers the device now owns and keep the rest in order
        // (a memmove, no allocation).
        self.tx_batch.drain(..usize::from(sent));
        usize::from(sent)
    }

    fn counters(&self) -> NicCounters {
        let hw = self.stats().unwrap_or_default();
        NicCounters {
            rx_frames: hw.ipackets,
            rx_bytes: hw.ibytes,
            tx_frames: hw.opackets,
            tx_bytes: hw.obytes,
            rx_dropped: hw.imissed + hw.ierrors + hw.rx_nombuf + self.sw_rx_dropped,
            tx_dropped: hw.oerrors + self.sw_tx_dropped,
            rx_handed_over: 0,
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        // Back to the pool now: fields drop in declaration order, `pool`
        // before `tx_reserve`, and a pool that finds an mbuf still out
        // keeps itself, and the EAL, alive for good (no rte_eal_cleanup).
        drop(self.tx_reserve.take());
        for m in self.tx_batch.drain(..) {
            // SAFETY: every pointer in tx_batch is an mbuf this port owns and
            // the device never took; each is freed once.
            unsafe { sys::rte_pktmbuf_free(m) };
        }
        // Return frames still waiting in the RX queue to the pool, so they are
        // not stranded in the device (some virtual devices do not free them on
        // close). Bounded: a device that keeps receiving cannot hold us here.
        let mut raw = [ptr::null_mut::<sys::rte_mbuf>(); RX_BURST];
        for _ in 0..1024 {
            // SAFETY: the port is started with RX queue 0; raw has RX_BURST slots.
            let n = unsafe {
                sys::rte_eth_rx_burst(self.port_id, QUEUE, raw.as_mut_ptr(), RX_BURST as u16)
            };
            if n == 0 {
                break;
            }
            for &m in &raw[..usize::from(n)] {
                // SAFETY: received mbufs are owned by the caller; freed once.
                unsafe { sys::rte_pktmbuf_free(m) };
            }
        }
        // SAFETY: the port is valid and started; nothing uses it after this.
        // Errors are ignored: there is nothing left to do about them.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
    }
}

/// What [`start_port`] found out about the port it started.
pub(crate) struct Started {
    pub(crate) caps: NicCaps,
    pub(crate) driver: String,
    pub(crate) rx_checksum: bool,
    pub(crate) tx_checksum: bool,
}

/// Configures port `port_id` with `queues` RX and TX queue pairs (each RX
/// queue receiving into `pool`), and starts it. `extra_mbufs` are mbufs the
/// caller may hold beyond the device's descriptors and the TX batches (the
/// multi-queue port's hand-over queues), for the pool size check.
pub(crate) fn start_port(
    eal: &Eal,
    port_id: u16,
    pool: &Mempool,
    config: &PortConfig,
    queues: u16,
    extra_mbufs: usize,
) -> Result<Started, DpdkError> {
    if config.tx_batch == 0 || config.tx_batch > MAX_TX_BATCH {
        return Err(DpdkError::Config("tx_batch must be in 1..=1024"));
    }
    if eal.port_count() == 0 {
        return Err(DpdkError::NoPorts);
    }
    // SAFETY: the EAL is initialised; any port id may be asked about.
    if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
        return Err(DpdkError::InvalidPort(port_id));
    }

    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: port_id is valid; info is a writable rte_eth_dev_info.
    let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
    if ret != 0 {
        return Err(port_error(port_id, "rte_eth_dev_info_get", ret));
    }
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null driver_name is a NUL-terminated string owned
        // by the driver, alive while the EAL is; copied out at once.
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned()
    };

    if queues == 0 || queues > info.max_rx_queues || queues > info.max_tx_queues {
        return Err(DpdkError::Config(
            "the device has fewer RX/TX queue pairs than engines were asked for",
        ));
    }

    // The MTU is known before configuration (RTE_ETHER_MTU unless set),
    // so a pool too small for it is refused before the device is touched.
    let mut mtu = 0u16;
    // SAFETY: port_id is valid; mtu is writable.
    let ret = unsafe { sys::rte_eth_dev_get_mtu(port_id, &mut mtu) };
    let mtu = if ret == 0 && mtu != 0 {
        usize::from(mtu)
    } else {
        sys::RTE_ETHER_MTU as usize
    };
    let data_room = u32::from(pool.data_room());
    let frame = mtu + ETH_HLEN;
    if (data_room.saturating_sub(sys::RTE_PKTMBUF_HEADROOM) as usize) < frame {
        return Err(DpdkError::BufferTooSmall {
            data_room,
            headroom: sys::RTE_PKTMBUF_HEADROOM,
            frame,
            mtu,
        });
    }

    let rx_csum = sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | sys::RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    let tx_csum = sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    let rx_checksum = config.checksum_offload && info.rx_offload_capa & rx_csum == rx_csum;
    let tx_checksum = config.checksum_offload && info.tx_offload_capa & tx_csum == tx_csum;

    let mut conf = sys::rte_eth_conf::default();
    if rx_checksum {
        conf.rxmode.offloads |= rx_csum;
    }
    if tx_checksum {
        conf.txmode.offloads |= tx_csum;
    }
    // SAFETY: port_id is valid; conf is a fully initialised rte_eth_conf
    // (zeroed = defaults) that DPDK copies.
    let ret = unsafe { sys::rte_eth_dev_configure(port_id, queues, queues, &conf) };
    if ret != 0 {
        return Err(port_error(port_id, "rte_eth_dev_configure", ret));
    }

    let (mut rxd, mut txd) = (config.rx_descriptors, config.tx_descriptors);
    // SAFETY: port_id is valid and configured; rxd/txd are writable.
    let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rxd, &mut txd) };
    if ret != 0 {
        return Err(port_error(port_id, "rte_eth_dev_adjust_nb_rx_tx_desc", ret));
    }
    // The device keeps an mbuf posted in every RX descriptor and may hold
    // one per TX descriptor until it reclaims them; with fewer mbufs than
    // that plus a full TX batch, transmit would starve for good.
    let needed =
        (usize::from(rxd) + usize::from(txd) + config.tx_batch) * usize::from(queues) + extra_mbufs;
    if (pool.capacity() as usize) < needed {
        return Err(DpdkError::PoolTooSmall {
            mbufs: pool.capacity(),
            needed,
        });
    }
    let socket = DpdkPort::socket_of(port_id).unwrap_or(sys::SOCKET_ID_ANY as u32);
    for queue in 0..queues {
        // The pool outlives the queue: the port, or the multi-queue port,
        // holds a handle to it.
        // SAFETY: port_id is valid and configured with `queues` RX queues;
        // NULL rxconf selects the driver's defaults; the pool is live.
        let ret = unsafe {
            sys::rte_eth_rx_queue_setup(port_id, queue, rxd, socket, ptr::null(), pool.as_ptr())
        };
        if ret != 0 {
            return Err(port_error(port_id, "rte_eth_rx_queue_setup", ret));
        }
        // SAFETY: as above, for the TX queue of the pair; NULL txconf = defaults.
        let ret = unsafe { sys::rte_eth_tx_queue_setup(port_id, queue, txd, socket, ptr::null()) };
        if ret != 0 {
            return Err(port_error(port_id, "rte_eth_tx_queue_setup", ret));
        }
    }

    if config.promiscuous {
        // SAFETY: port_id is valid.
        let ret = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        if ret != 0 {
            return Err(port_error(port_id, "rte_eth_promiscuous_enable", ret));
        }
    }

    // SAFETY: port_id is valid, configured, with both queues set up.
    let ret = unsafe { sys::rte_eth_dev_start(port_id) };
    if ret != 0 {
        return Err(port_error(port_id, "rte_eth_dev_start", ret));
    }

    let mut mac = sys::rte_ether_addr::default();
    // SAFETY: port_id is valid; mac is writable.
    let ret = unsafe { sys::rte_eth_macaddr_get(port_id, &mut mac) };
    if ret != 0 {
        // SAFETY: the port was started just above and is not used after.
        unsafe { sys::rte_eth_dev_stop(port_id) };
        return Err(port_error(port_id, "rte_eth_macaddr_get", ret));
    }

    Ok(Started {
        caps: NicCaps {
            mtu,
            mac: mac.addr_bytes,
            rx_checksum_offload: rx_checksum,
            tx_checksum_offload: tx_checksum,
        },
        driver,
        rx_checksum,
        tx_checksum,
    })
}
