//! Checksum offload against the Linux kernel, through DPDK's TAP device.
//!
//! `--vdev=net_tap0` creates a kernel TAP interface; the test moves it into a
//! network namespace of its own, gives the kernel side an address there, and
//! sends a TCP SYN to a closed port whose IPv4 and TCP checksums are left to
//! the port's transmit offload (net_tap reports it). The kernel drops a
//! segment with a bad checksum silently, so its RST back proves the offload
//! preparation right; the RST itself arrives flagged by the receive offload.
//!
//! Needs root, /dev/net/tun and `ip` (iproute2); skipped otherwise. All
//! traffic stays inside the namespace the test creates and deletes.
#![cfg(feature = "dpdk")]

use std::process::Command;
use std::time::Duration;

use ringline_dataplane::dpdk::{DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};
use ringline_dataplane::{MacAddr, Nic, RX_BURST};

const US: [u8; 4] = [10, 200, 0, 2];
const KERNEL: [u8; 4] = [10, 200, 0, 1];

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deletes the namespace (and the TAP interface in it) when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn usable() -> Result<(), String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err("no /dev/net/tun".into());
    }
    // Root is needed for TAP and namespaces; `ip netns list` fails without iproute2.
    ip(&["netns", "list"]).map(|_| ())?;
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        });
    if uid.as_deref() != Some("0") {
        return Err("not root".into());
    }
    Ok(())
}

fn parse_mac(s: &str) -> MacAddr {
    let mut mac = [0u8; 6];
    for (b, h) in mac.iter_mut().zip(s.trim().split(':')) {
        *b = u8::from_str_radix(h, 16).expect("hex MAC");
    }
    mac
}

/// An Ethernet + IPv4 + TCP SYN, checksums zero (left to the offload).
fn syn(buf: &mut [u8], dst_mac: MacAddr, src_mac: MacAddr) {
    buf.fill(0);
    buf[0..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut buf[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&US);
    ip[16..20].copy_from_slice(&KERNEL);
    let tcp = &mut ip[20..];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&9u16.to_be_bytes()); // discard: nothing listens
    tcp[4..8].copy_from_slice(&12345u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
}

#[test]
fn kernel_accepts_offloaded_checksums() {
    if let Err(why) = usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let pid = std::process::id();
    let iface = format!("rlt{pid}");
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix=ringline-test",
        &format!("--vdev=net_tap0,iface={iface}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL with net_tap0");
    let pool = Mempool::new(
        &eal,
        "tap",
        &MempoolConfig {
            mbufs: 4095,
            cache_size: 0,
            ..Default::default()
        },
    )
    .expect("pool");
    let mut port = DpdkPort::open_by_name(&eal, "net_tap0", &pool, &PortConfig::default())
        .expect("open net_tap0");
    let caps = port.caps();
    assert_eq!(port.driver(), "net_tap");
    assert!(
        caps.tx_checksum_offload && caps.rx_checksum_offload,
        "net_tap reports checksum offload: {caps:?}"
    );

    let ns = Netns(format!("ringline-{pid}"));
    let _ = ip(&["netns", "del", &ns.0]);
    ip(&["netns", "add", &ns.0]).expect("netns add");
    ip(&["link", "set", &iface, "netns", &ns.0]).expect("move the TAP into the namespace");
    ip(&["-n", &ns.0, "addr", "add", "10.200.0.1/24", "dev", &iface]).expect("address");
    ip(&["-n", &ns.0, "link", "set", &iface, "up"]).expect("link up");
    let our_mac = port.mac();
    let our_mac_s = our_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    ip(&[
        "-n",
        &ns.0,
        "neigh",
        "replace",
        "10.200.0.2",
        "lladdr",
        &our_mac_s,
        "dev",
        &iface,
    ])
    .expect("neighbour");
    let kernel_mac = parse_mac(
        &ip(&[
            "netns",
            "exec",
            &ns.0,
            "cat",
            &format!("/sys/class/net/{iface}/address"),
        ])
        .expect("kernel MAC"),
    );

    port.tx_frame(54, &mut |f| syn(f, kernel_mac, our_mac))
        .expect("queue the SYN");
    assert_eq!(port.tx_flush(), 1);

    let mut rx = Vec::with_capacity(RX_BURST);
    let mut rst = None;
    for _ in 0..300 {
        port.rx_burst(&mut rx, RX_BURST);
        for frame in rx.drain(..) {
            let d = frame.as_ref();
            let is_tcp_from_kernel =
                d.len() >= 54 && d[12..14] == [8, 0] && d[23] == 6 && d[26..30] == KERNEL;
            if is_tcp_from_kernel && d[47] & 0x04 != 0 {
                rst = Some(frame.ol_flags());
            }
            port.rx_release(frame);
        }
        if rst.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let flags = rst.expect("the kernel answered the SYN with an RST, so its checksums were right");
    // RTE_MBUF_F_RX_IP_CKSUM_GOOD (bit 7) and RTE_MBUF_F_RX_L4_CKSUM_GOOD (bit 8).
    assert_eq!(
        flags & (1 << 7 | 1 << 8),
        1 << 7 | 1 << 8,
        "RST flagged good: {flags:#x}"
    );
    assert_eq!(port.counters().rx_dropped, 0);
}
