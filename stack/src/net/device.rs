//! The smoltcp device over the NIC: at most one received IP packet (the one
//! being fed), and transmit straight into the NIC's frame buffer behind our
//! Ethernet header. smoltcp runs with `Medium::Ip`; L2 is ours.

use ringline_dataplane::{MacAddr, Nic, TxError};
use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::l2::{self, ETH_HDR};

/// Transmit counters of the device.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TxCounters {
    /// Segments handed to the NIC.
    pub(crate) segments: u64,
    /// Segments the NIC could not take (lost; TCP retransmits them).
    pub(crate) dropped: u64,
    /// Times egress stopped because the NIC was full.
    pub(crate) full: u64,
}

/// The device smoltcp sees, borrowing the pump's parts for one call.
pub(crate) struct Port<'a, N: Nic> {
    pub(crate) nic: &'a mut N,
    pub(crate) rx: Option<&'a [u8]>,
    pub(crate) dst_mac: MacAddr,
    pub(crate) src_mac: MacAddr,
    pub(crate) caps: &'a DeviceCapabilities,
    pub(crate) scratch: &'a mut [u8],
    pub(crate) tx: &'a mut TxCounters,
}

pub(crate) struct RxTok<'a>(&'a [u8]);

impl RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

pub(crate) struct TxTok<'b, N: Nic> {
    nic: &'b mut N,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    scratch: &'b mut [u8],
    tx: &'b mut TxCounters,
}

impl<N: Nic> TxToken for TxTok<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        let (dst, src) = (self.dst_mac, self.src_mac);
        let mut build = |buf: &mut [u8]| {
            l2::write_eth(buf, dst, src, l2::ETHERTYPE_IPV4);
            if let Some(f) = f.take() {
                out = Some(f(&mut buf[ETH_HDR..]));
            }
        };
        let mut r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        if r == Err(TxError::Full) {
            self.nic.tx_flush();
            r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        }
        match out {
            Some(v) if r.is_ok() => {
                self.tx.segments += 1;
                v
            }
            _ => {
                // The NIC cannot take the frame: smoltcp must still be given a
                // buffer; the segment is lost and TCP will retransmit it.
                self.tx.dropped += 1;
                let f = f.take().expect("builder not called when tx_frame fails");
                f(&mut self.scratch[..len])
            }
        }
    }
}

impl<N: Nic> Device for Port<'_, N> {
    type RxToken<'b>
        = RxTok<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxTok<'b, N>
    where
        Self: 'b;

    fn receive(&mut self, _ts: Instant) -> Option<(RxTok<'_>, TxTok<'_, N>)> {
        let pkt = self.rx.take()?;
        Some((
            RxTok(pkt),
            TxTok {
                nic: self.nic,
                dst_mac: self.dst_mac,
                src_mac: self.src_mac,
                scratch: self.scratch,
                tx: self.tx,
            },
        ))
    }

    fn transmit(&mut self, _ts: Instant) -> Option<TxTok<'_, N>> {
        // A full NIC makes smoltcp stop (Exhausted) with the data still in the
        // socket; the connection stays dirty and egress resumes next step.
        if !self.nic.tx_ready() {
            self.tx.full += 1;
            return None;
        }
        Some(TxTok {
            nic: self.nic,
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            scratch: self.scratch,
            tx: self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
