//! The smoltcp device over the NIC: at most one received IP packet (the one
//! being fed), and transmit straight into the NIC's frame buffer behind our
//! Ethernet header. smoltcp runs with `Medium::Ip`; L2 is ours.

use ringline_dataplane::{MacAddr, Nic, TxError};
use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::core::recovery::Sent;
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
    /// The data segments sent, for loss recovery.
    pub(crate) sent: &'a mut Sent,
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
    sent: &'b mut Sent,
}

/// Records the data segment (if it is one) in IP packet `ip` into `sent`.
#[inline]
fn note_sent(ip: &[u8], sent: &mut Sent) {
    if ip.len() < 40 {
        return;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let Some(t) = ip.get(ihl..total) else { return };
    if t.len() < 20 {
        return;
    }
    let doff = usize::from(t[12] >> 4) * 4;
    let flags = t[13];
    let payload = t.len().saturating_sub(doff) as u32;
    // FIN counts one in sequence space; SYNs are not tracked.
    let len = payload + u32::from(flags & 0x01);
    if len > 0 && flags & 0x02 == 0 {
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        sent.record(seq, len, payload);
    }
}

impl<N: Nic> TxToken for TxTok<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        let (dst, src) = (self.dst_mac, self.src_mac);
        let sent = self.sent;
        let mut build = |buf: &mut [u8]| {
            l2::write_eth(buf, dst, src, l2::ETHERTYPE_IPV4);
            if let Some(f) = f.take() {
                out = Some(f(&mut buf[ETH_HDR..]));
                note_sent(&buf[ETH_HDR..], sent);
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
                let v = f(&mut self.scratch[..len]);
                note_sent(&self.scratch[..len], sent);
                v
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
                sent: self.sent,
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
            sent: self.sent,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
