//! Two `net_ring` ports joined back to back inside one process: what one
//! transmits the other receives. DPDK's `--vdev=net_ring0` alone loops a
//! port's TX into its own RX; a pair needs two rings crossed, which only
//! `rte_eth_from_rings` can build.

use std::ffi::CString;

use ringline_dpdk_sys as sys;

use super::eal::Eal;
use super::error::{last_rte_errno, strerror, DpdkError};

/// Longest `name` accepted by [`net_ring_pair`]: DPDK ring names hold 31
/// bytes (`RTE_RING_NAMESIZE` - 1) and ours add a 4-byte suffix.
pub const MAX_PAIR_NAME: usize = 20;

/// Creates two ethdev ports, `net_ring_<name>_a` and `net_ring_<name>_b`,
/// whose TX queue feeds the other's RX queue, and returns their port ids
/// (open each with [`super::DpdkPort::open`], on the thread that will drive
/// it: each ring has one producer and one consumer thread).
///
/// `slots` is the capacity of each direction's ring (a power of two, at
/// least 64); a TX burst that finds the ring full is taken only in part, and
/// the port keeps the rest. The rings live as long as the EAL.
pub fn net_ring_pair(eal: &Eal, name: &str, slots: u32) -> Result<[u16; 2], DpdkError> {
    net_ring_pair_queues(eal, name, slots, 1)
}

/// [`net_ring_pair`] with `queues` RX/TX queue pairs on each port (1..=10):
/// TX queue `i` of one port feeds RX queue `i` of the other, as a sender's
/// queue picks the receiver's on `net_memif`. Open the ports with
/// [`super::MultiPort::open`] and as many queues. With more than one queue
/// `name` may have at most [`MAX_PAIR_NAME`] - 1 characters.
pub fn net_ring_pair_queues(
    eal: &Eal,
    name: &str,
    slots: u32,
    queues: u16,
) -> Result<[u16; 2], DpdkError> {
    // The Eal handle proves rte_eal_init succeeded; nothing else is needed.
    let _ = eal;
    if name.is_empty() || name.len() > MAX_PAIR_NAME || !name.is_ascii() {
        return Err(DpdkError::Config(
            "ring pair name must be 1..=20 ASCII characters",
        ));
    }
    if !(1..=10).contains(&queues) || (queues > 1 && name.len() == MAX_PAIR_NAME) {
        return Err(DpdkError::Config(
            "a ring pair has 1..=10 queues (and a name of at most 19 characters with several)",
        ));
    }
    if !slots.is_power_of_two() || slots < 64 {
        return Err(DpdkError::Config(
            "ring pair slots must be a power of two of at least 64",
        ));
    }
    let ring = |suffix: &str| -> Result<*mut sys::rte_ring, DpdkError> {
        let ring_name = format!("{name}_{suffix}");
        let c_name = CString::new(ring_name.as_str())
            .map_err(|_| DpdkError::Config("ring pair name contains NUL"))?;
        // SAFETY: the EAL is initialised; c_name is NUL-terminated and DPDK copies it. SP/SC: each
        // ring is written by one port's TX queue and read by the other's RX queue, one thread each.
        let r = unsafe {
            sys::rte_ring_create(
                c_name.as_ptr(),
                slots,
                sys::SOCKET_ID_ANY,
                sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
            )
        };
        if r.is_null() {
            let errno = last_rte_errno();
            return Err(DpdkError::RingPair {
                name: ring_name,
                op: "rte_ring_create",
                errno,
                message: strerror(errno),
            });
        }
        Ok(r)
    };
    // SAFETY: no preconditions; the calling thread's NUMA socket.
    let socket = unsafe { sys::rte_socket_id() };
    // Rings "ab"/"ba" for queue 0 (the names of the one-queue pair), then
    // "ab1"/"ba1", ...: one digit more than the one-queue names.
    let q = usize::from(queues);
    let mut ab = Vec::with_capacity(q);
    let mut ba = Vec::with_capacity(q);
    for i in 0..q {
        let tag = if i == 0 { String::new() } else { i.to_string() };
        let made = ring(&format!("ab{tag}")).and_then(|x| match ring(&format!("ba{tag}")) {
            Ok(y) => Ok((x, y)),
            Err(e) => {
                // SAFETY: x was created just above and nothing refers to it.
                unsafe { sys::rte_ring_free(x) };
                Err(e)
            }
        });
        match made {
            Ok((x, y)) => {
                ab.push(x);
                ba.push(y);
            }
            Err(e) => {
                for r in ab.drain(..).chain(ba.drain(..)) {
                    // SAFETY: created above; no port refers to them yet.
                    unsafe { sys::rte_ring_free(r) };
                }
                return Err(e);
            }
        }
    }
    let port = |suffix: &str, rx: &[*mut sys::rte_ring], tx: &[*mut sys::rte_ring]| {
        let port_name = format!("{name}_{suffix}");
        let c_name = CString::new(port_name.as_str())
            .map_err(|_| DpdkError::Config("ring pair name contains NUL"))?;
        // The driver copies the ring pointers; the rings live as long as the EAL.
        // SAFETY: the EAL is initialised; c_name is NUL-terminated; the two
        // slices each hold `queues` live rings and outlive the call.
        let id = unsafe {
            sys::rte_eth_from_rings(
                c_name.as_ptr(),
                rx.as_ptr(),
                u32::from(queues),
                tx.as_ptr(),
                u32::from(queues),
                socket,
            )
        };
        u16::try_from(id).map_err(|_| {
            let errno = last_rte_errno();
            DpdkError::RingPair {
                name: format!("net_ring_{port_name}"),
                op: "rte_eth_from_rings",
                errno,
                message: strerror(errno),
            }
        })
    };
    // A failure past this point leaves the rings to the EAL's teardown: a
    // port created from them may already exist.
    let a = port("a", &ba, &ab)?;
    let b = port("b", &ab, &ba)?;
    Ok([a, b])
}
