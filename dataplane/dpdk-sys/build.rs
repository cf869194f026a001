//! Finds the system libdpdk with pkg-config, compiles the C shim over DPDK's
//! static inline functions, and generates bindings for an explicit allowlist.
//!
//! Nothing DPDK is bundled: the crate builds against whatever `libdpdk.pc`
//! describes (Debian 12: `libdpdk-dev`, DPDK 22.11). bindgen needs libclang
//! (`clang`, `libclang-dev`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Oldest DPDK whose API (the `RTE_ETH_*` names, `rxmode.mtu`) this crate binds.
const MIN_DPDK: &str = "22.11";

/// Non-inline DPDK functions bound directly.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_get_runtime_dir",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_mtu",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_dev_info_get",
    "rte_eth_promiscuous_enable",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_get_port_by_name",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_strerror",
    "rte_socket_id",
    "rte_eth_dev_default_mac_addr_set",
    // A pair of net_ring ports joined by two rte_rings (two engines in one
    // process); rte_eth_from_rings lives in the net_ring driver library.
    "rte_ring_create",
    "rte_ring_free",
    "rte_eth_from_rings",
    // The shim (shim/shim.h); re-exported under DPDK's names in lib.rs.
    "ringline_.*",
];

/// Types the wrappers read or build field by field.
const TYPES: &[&str] = &[
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_stats",
    "rte_ether_addr",
    "rte_eth_link",
    "rte_eth_rxconf",
    "rte_eth_txconf",
];

/// Types the wrappers only hold pointers to: bound as opaque blobs, so none
/// of their (large, union- and bitfield-heavy) internals reach Rust.
const OPAQUE: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_device",
    "rte_eth_dev_portconf",
    "rte_ring",
];

/// Constants taken as they are (plain integer macros).
const VARS: &[&str] = &[
    "RTE_ETHER_ADDR_LEN",
    "RTE_ETHER_HDR_LEN",
    "RTE_ETHER_MTU",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MAX_ETHPORTS",
    "RTE_ETH_LINK_UP",
    "RTE_ETH_LINK_DOWN",
    "RTE_ETH_LINK_FULL_DUPLEX",
    "SOCKET_ID_ANY",
    "RING_F_SP_ENQ",
    "RING_F_SC_DEQ",
    // errno values rte_eal_init and friends report (via <errno.h>).
    "EACCES",
    "EAGAIN",
    "EALREADY",
    "EBUSY",
    "EEXIST",
    "EFAULT",
    "EINVAL",
    "ENODEV",
    "ENOEXEC",
    "ENOMEM",
    "ENOSPC",
    "ENOTSUP",
    "EPROTO",
];

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let shim_dir = manifest.join("shim");
    for f in ["shim.c", "shim.h", "wrapper.h"] {
        println!("cargo:rerun-if-changed={}", shim_dir.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    // Locate libdpdk without emitting link flags yet: the shim archive must
    // come before the shared DPDK libraries on the link line, or `--as-needed`
    // drops the libraries only the shim uses.
    let lib = pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "ringline-dpdk-sys needs the system DPDK (>= {MIN_DPDK}) described by libdpdk.pc.\n\
                 On Debian/Ubuntu: apt-get install libdpdk-dev pkg-config clang libclang-dev\n\
                 (a DPDK installed elsewhere: set PKG_CONFIG_PATH to its lib/pkgconfig).\n\
                 pkg-config said: {e}"
            )
        });

    // The pkg-config crate keeps only -I and -D from Cflags, but DPDK's
    // headers also need the rest (`-include rte_config.h`, and `-march=...`
    // because inline functions such as rte_memcpy use SSE4/AVX intrinsics).
    let cflags = raw_cflags();

    let mut shim = cc::Build::new();
    shim.file(shim_dir.join("shim.c"))
        .include(&shim_dir)
        .warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("ringline_dpdk_shim");

    // Now the DPDK libraries, after the shim. With a shared DPDK the poll-mode
    // drivers (net_ring, net_memif, net_tap, ...) are not on this list: the
    // EAL dlopen()s them at init from its driver directory (RTE_EAL_PMD_PATH,
    // on Debian /usr/lib/<triple>/dpdk/pmds-<abi>), or from `-d <dir>`.
    pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .probe("libdpdk")
        .expect("libdpdk was found a moment ago");
    // `rte_eth_from_rings` is exported by the net_ring driver, which
    // libdpdk.pc does not list (drivers are plugins). Linking it is harmless:
    // the EAL's later dlopen of the same file from its driver directory finds
    // it already loaded.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let include_paths: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "cargo:include={}",
        env::join_paths(&lib.include_paths)
            .expect("include paths")
            .to_string_lossy()
    );
    println!("cargo:version={}", lib.version);

    let mut builder = bindgen::Builder::default()
        .header(shim_dir.join("wrapper.h").display().to_string())
        .clang_arg(format!("-I{}", shim_dir.display()))
        .clang_args(cflags.iter().cloned())
        .clang_args(include_paths.iter().map(|p| format!("-I{p}")))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_recursively(true)
        .generate_comments(false)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts);
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for t in OPAQUE {
        builder = builder.opaque_type(t);
    }
    // The anonymous unions and structs inside the opaque types would still be
    // emitted (unused); leave them out.
    builder = builder.blocklist_type("rte_mbuf_.+|rte_mempool_.+");
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on the DPDK headers (is libclang installed? apt-get install clang libclang-dev): {e}")
    });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

/// `pkg-config --cflags libdpdk`, split into arguments, honouring `$PKG_CONFIG`
/// as the pkg-config crate does.
fn raw_cflags() -> Vec<String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&program)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running {program} --cflags libdpdk: {e}"));
    assert!(
        output.status.success(),
        "{program} --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config prints UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
