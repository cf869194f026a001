//! `ringline doctor`: checks what running on DPDK needs on this host
//! (hugepages, a hugetlbfs mount, the DPDK libraries, IOMMU and vfio-pci,
//! NICs bound to it, device permissions, privileges) and prints, for each
//! thing missing, the command that fixes it.
//!
//! It reports; it does not fail: the exit status is 0 whenever the command
//! itself works, because the loopback mode (`ringline demo`) needs none of
//! this. Everything is read from /proc and /sys; nothing is changed.

use std::fs;
use std::path::Path;
use std::process::Command;

use clap::Args;

/// Options of `ringline doctor`.
#[derive(Args, Clone, Debug)]
pub struct DoctorArgs {
    /// Also check the host against this config file (hugepages it asks for,
    /// its PCI port bound to vfio-pci).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Fine.
    Ok,
    /// Not needed for every setup (virtual devices, no PCI NIC); worth knowing.
    Note,
    /// Missing for DPDK on a physical NIC.
    Missing,
}

struct Check {
    status: Status,
    what: String,
    fix: Vec<String>,
}

impl Check {
    fn ok(what: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            what: what.into(),
            fix: Vec::new(),
        }
    }
    fn note(what: impl Into<String>, fix: &[&str]) -> Check {
        Check {
            status: Status::Note,
            what: what.into(),
            fix: fix.iter().map(|s| s.to_string()).collect(),
        }
    }
    fn missing(what: impl Into<String>, fix: &[&str]) -> Check {
        Check {
            status: Status::Missing,
            what: what.into(),
            fix: fix.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `Key:   123 kB` from /proc/meminfo.
fn meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn hugepages(want: Option<u64>) -> Vec<Check> {
    let mut out = Vec::new();
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = meminfo(&text, "HugePages_Total").unwrap_or(0);
    let free = meminfo(&text, "HugePages_Free").unwrap_or(0);
    let size_kb = meminfo(&text, "Hugepagesize").unwrap_or(2048);
    let want = want.unwrap_or(256);
    if total == 0 {
        out.push(Check::missing(
            format!("hugepages: none reserved ({size_kb} kB pages); DPDK runs without them only with --no-huge"),
            &[&format!("sudo deploy/hugepages.sh {want}"), &format!("(or: echo {want} | sudo tee /proc/sys/vm/nr_hugepages)")],
        ));
    } else if total < want {
        out.push(Check::missing(
            format!("hugepages: {total} x {size_kb} kB reserved ({free} free), fewer than the {want} wanted"),
            &[&format!("sudo deploy/hugepages.sh {want}")],
        ));
    } else if free == 0 {
        out.push(Check::missing(
            format!("hugepages: {total} x {size_kb} kB reserved but none free (another DPDK process, or files left in the hugetlbfs mount)"),
            &["ls -l /dev/hugepages   # remove stale rtemap / <prefix>map_* files of processes that are gone"],
        ));
    } else {
        out.push(Check::ok(format!(
            "hugepages: {total} x {size_kb} kB reserved, {free} free"
        )));
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let huge: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "hugetlbfs").then(|| f[1])
        })
        .collect();
    if huge.is_empty() {
        out.push(Check::missing(
            "hugetlbfs: not mounted (the EAL maps hugepages through it)",
            &[
                "sudo mkdir -p /dev/hugepages && sudo mount -t hugetlbfs nodev /dev/hugepages",
                "(deploy/hugepages.sh does this too)",
            ],
        ));
    } else {
        out.push(Check::ok(format!(
            "hugetlbfs: mounted on {}",
            huge.join(", ")
        )));
    }
    out
}

fn dpdk_version() -> Vec<Check> {
    let mut out = Vec::new();
    let built = if cfg!(feature = "dpdk") {
        "this ringline was built with DPDK support (--features dpdk)"
    } else {
        "this ringline was built WITHOUT DPDK support: --dpdk and --config will refuse to run"
    };
    out.push(if cfg!(feature = "dpdk") {
        Check::ok(built)
    } else {
        Check::missing(
            built,
            &["cargo build --release -p ringline-apps --features dpdk"],
        )
    });
    let pc = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    // The runtime library, whichever way DPDK was installed.
    let lib = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/local/lib",
        "/usr/local/lib64",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .find_map(|d| {
        fs::read_dir(d).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("librte_eal.so.")
                .then(|| format!("{d}/{name}"))
        })
    });
    match (pc, lib) {
        (Some(v), Some(l)) => {
            let major = v.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
            if major >= 22 {
                out.push(Check::ok(format!("DPDK {v} (pkg-config), runtime {l}")));
            } else {
                out.push(Check::missing(
                    format!("DPDK {v} is older than 22.11, which ringline needs"),
                    &["sudo apt-get install -y libdpdk-dev   # Debian 12 / Ubuntu 23.04+: 22.11"],
                ));
            }
        }
        (None, Some(l)) => out.push(Check::note(
            format!("DPDK runtime {l} found, but no libdpdk.pc (needed only to build with --features dpdk)"),
            &["sudo apt-get install -y libdpdk-dev pkg-config clang libclang-dev"],
        )),
        (_, None) => out.push(Check::missing(
            "DPDK: no librte_eal runtime library found",
            &["sudo apt-get install -y libdpdk-dev pkg-config clang libclang-dev"],
        )),
    }
    out
}

/// PCI network devices: (address, driver, interface names).
fn pci_nics() -> Vec<(String, Option<String>, Vec<String>)> {
    let mut nics = Vec::new();
    let Ok(dir) = fs::read_dir("/sys/bus/pci/devices") else {
        return nics;
    };
    for e in dir.flatten() {
        let p = e.path();
        let class = fs::read_to_string(p.join("class")).unwrap_or_default();
        // 0x02xxxx: network controller.
        if !class.trim().starts_with("0x02") {
            continue;
        }
        let driver = fs::read_link(p.join("driver"))
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
        // Interface names; virtio NICs have theirs under virtioN/net.
        let mut ifaces: Vec<String> = Vec::new();
        let mut net_dirs = vec![p.join("net")];
        if let Ok(sub) = fs::read_dir(&p) {
            net_dirs.extend(
                sub.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("virtio"))
                    .map(|e| e.path().join("net")),
            );
        }
        for d in net_dirs {
            if let Ok(d) = fs::read_dir(d) {
                ifaces.extend(
                    d.flatten()
                        .map(|i| i.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        nics.push((e.file_name().to_string_lossy().into_owned(), driver, ifaces));
    }
    nics.sort();
    nics
}

fn vfio(config_port: Option<String>) -> Vec<Check> {
    let mut out = Vec::new();
    let groups = fs::read_dir("/sys/kernel/iommu_groups")
        .map(|d| d.count())
        .unwrap_or(0);
    let noiommu = fs::read_to_string("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false);
    if groups > 0 {
        out.push(Check::ok(format!("IOMMU: on ({groups} groups)")));
    } else if noiommu {
        out.push(Check::note(
            "IOMMU: off, vfio no-IOMMU mode enabled (works, but without DMA protection)",
            &[],
        ));
    } else {
        out.push(Check::missing(
            "IOMMU: off (no /sys/kernel/iommu_groups); vfio-pci needs it for physical NICs",
            &[
                "add intel_iommu=on iommu=pt (AMD: amd_iommu=on iommu=pt) to GRUB_CMDLINE_LINUX in /etc/default/grub, then: sudo update-grub && sudo reboot",
                "(VMs without a virtual IOMMU: sudo modprobe vfio enable_unsafe_noiommu_mode=1)",
            ],
        ));
    }
    let vfio_pci = Path::new("/sys/bus/pci/drivers/vfio-pci").exists()
        || Path::new("/sys/module/vfio_pci").exists();
    if vfio_pci {
        out.push(Check::ok("vfio-pci: driver loaded"));
    } else {
        out.push(Check::missing(
            "vfio-pci: driver not loaded",
            &[
                "sudo modprobe vfio-pci",
                "(at boot: echo vfio-pci | sudo tee /etc/modules-load.d/vfio-pci.conf)",
            ],
        ));
    }
    let nics = pci_nics();
    let bound: Vec<&String> = nics
        .iter()
        .filter(|(_, d, _)| d.as_deref() == Some("vfio-pci"))
        .map(|(a, _, _)| a)
        .collect();
    if !bound.is_empty() {
        let list: Vec<&str> = bound.iter().map(|s| s.as_str()).collect();
        out.push(Check::ok(format!(
            "NICs bound to vfio-pci: {}",
            list.join(", ")
        )));
    } else if nics.is_empty() {
        out.push(Check::note(
            "NICs: no PCI network device on this host; DPDK can still use virtual devices",
            &["--dpdk \"--vdev=net_tap0\" (a TAP the kernel sees), --vdev=net_af_packet0,iface=eth0, --vdev=net_memif0"],
        ));
    } else {
        let list: Vec<String> = nics
            .iter()
            .map(|(a, d, i)| {
                format!(
                    "{a} ({}{})",
                    d.as_deref().unwrap_or("no driver"),
                    if i.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", i.join(" "))
                    }
                )
            })
            .collect();
        out.push(Check::missing(
            format!("NICs: none bound to vfio-pci; PCI NICs: {}", list.join("; ")),
            &["sudo deploy/bind-nic.sh <PCI address>   # takes the NIC away from the kernel; bind-nic.sh --restore gives it back"],
        ));
    }
    if let Some(port) = config_port {
        if port.contains(':') && port.contains('.') {
            let driver = fs::read_link(format!("/sys/bus/pci/devices/{port}/driver"))
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
            match driver.as_deref() {
                Some("vfio-pci") => {
                    out.push(Check::ok(format!("config port {port}: bound to vfio-pci")))
                }
                other => out.push(Check::missing(
                    format!("config port {port}: driver {}", other.unwrap_or("none")),
                    &[&format!("sudo deploy/bind-nic.sh {port}")],
                )),
            }
        }
    }
    if Path::new("/dev/vfio/vfio").exists() {
        let groups: Vec<String> = fs::read_dir("/dev/vfio")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "vfio")
                    .collect()
            })
            .unwrap_or_default();
        if bound.is_empty() || is_root() {
            out.push(Check::ok(format!(
                "/dev/vfio: present{}",
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(", groups {}", groups.join(" "))
                }
            )));
        } else {
            let unreadable: Vec<&String> = groups
                .iter()
                .filter(|g| {
                    fs::OpenOptions::new()
                        .read(true)
                        .open(format!("/dev/vfio/{g}"))
                        .is_err()
                })
                .collect();
            if unreadable.is_empty() {
                out.push(Check::ok("/dev/vfio: group devices accessible"));
            } else {
                out.push(Check::missing(
                    format!("/dev/vfio: no access to group(s) {:?} as this user", unreadable),
                    &["run as root, or: sudo chown $USER /dev/vfio/<group> (and raise the memlock limit: ulimit -l unlimited)"],
                ));
            }
        }
    } else if !bound.is_empty() {
        out.push(Check::missing(
            "/dev/vfio/vfio: missing although NICs are bound",
            &["sudo modprobe vfio-pci"],
        ));
    }
    if Path::new("/dev/net/tun").exists() {
        out.push(Check::ok(
            "/dev/net/tun: present (net_tap virtual devices work)",
        ));
    } else {
        out.push(Check::note(
            "/dev/net/tun: missing (needed only for --vdev=net_tap)",
            &["sudo modprobe tun"],
        ));
    }
    out
}

/// Effective capabilities of this process (CapEff in /proc/self/status).
fn cap_eff() -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

fn privileges() -> Vec<Check> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_IPC_LOCK: u32 = 14;
    const CAP_SYS_ADMIN: u32 = 21;
    let caps = cap_eff();
    let has = |c: u32| caps & (1 << c) != 0;
    if is_root() {
        return vec![Check::ok("privileges: running as root")];
    }
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_IPC_LOCK, "CAP_IPC_LOCK"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .iter()
    .filter(|(c, _)| !has(*c))
    .map(|(_, n)| *n)
    .collect();
    if missing.is_empty() {
        vec![Check::ok(
            "privileges: CAP_NET_ADMIN, CAP_IPC_LOCK, CAP_SYS_ADMIN",
        )]
    } else {
        vec![Check::missing(
            format!("privileges: not root, lacking {}", missing.join(", ")),
            &["run as root (sudo), or grant them: sudo setcap cap_net_admin,cap_ipc_lock,cap_sys_admin+ep $(command -v ringline)", "(deploy/ringline.service runs it as root)"],
        )]
    }
}

/// Runs every check and prints the report. Always succeeds unless the
/// config file given cannot be read.
pub fn run(a: &DoctorArgs) -> Result<(), String> {
    let (want_pages, port) = match &a.config {
        Some(p) => {
            let c = crate::transport::load_config(p).map_err(|e| e.to_string())?;
            let port = match c.dpdk.port {
                Some(crate::transport::PortRef::Name(n)) => Some(n),
                _ => None,
            };
            (c.hugepages.pages, port)
        }
        None => (None, None),
    };
    let mut checks = Vec::new();
    checks.push(Check::ok("loopback mode: always available (ringline demo)"));
    checks.extend(hugepages(want_pages));
    checks.extend(dpdk_version());
    checks.extend(vfio(port));
    checks.extend(privileges());

    println!("ringline doctor: what DPDK needs on this host\n");
    for c in &checks {
        let tag = match c.status {
            Status::Ok => "  ok  ",
            Status::Note => " note ",
            Status::Missing => "MISSING",
        };
        println!("[{tag:^7}] {}", c.what);
        for f in &c.fix {
            println!("          fix: {f}");
        }
    }
    let missing = checks
        .iter()
        .filter(|c| c.status == Status::Missing)
        .count();
    println!();
    if missing == 0 {
        println!("everything DPDK needs is in place.");
    } else {
        println!(
            "{missing} item(s) missing for DPDK on a physical NIC. Virtual devices (net_tap, net_memif, \
             net_ring) need only the DPDK libraries, and --no-huge runs without hugepages."
        );
    }
    println!("(doctor reports only; it exits 0. See deploy/README.md.)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values() {
        let t = "MemTotal: 100 kB\nHugePages_Total:     256\nHugePages_Free:      12\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo(t, "HugePages_Total"), Some(256));
        assert_eq!(meminfo(t, "HugePages_Free"), Some(12));
        assert_eq!(meminfo(t, "Hugepagesize"), Some(2048));
        assert_eq!(meminfo(t, "HugePages_Rsvd"), None);
    }

    #[test]
    fn the_report_runs_here() {
        assert!(run(&DoctorArgs { config: None }).is_ok());
    }
}
