//! Where an engine's frames go: the in-memory loopback wire (the demo's
//! default) or a DPDK port, chosen with `--dpdk "<EAL args>"` or a TOML
//! config file (`--config FILE`, sample in `deploy/ringline.toml`).
//! Command-line options override the file.
//!
//! Without the cargo feature `dpdk` the command still parses every option,
//! but asking for a DPDK port is a clear error ([`TransportError::NoDpdkSupport`]),
//! and [`Device`] is an empty type, so the code that runs an engine on it
//! compiles (and is linted) in both builds.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use clap::Args;
use ringline::EngineConfig;
use ringline_dataplane::MacAddr;
use serde::Deserialize;

/// Why options or a config file do not give a usable NIC.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `--dpdk` or `--config` in a build without the `dpdk` feature.
    #[error(
        "built without DPDK support; rebuild with --features dpdk \
         (cargo build --release -p ringline-apps --features dpdk)"
    )]
    NoDpdkSupport,
    /// A lone server or client on the loopback wire would have no peer.
    #[error(
        "`ringline {0}` needs a NIC: pass --dpdk \"<EAL args>\" or --config FILE \
         (the loopback wire has no peer for a lone {0}; `ringline demo` runs both ends on it)"
    )]
    NeedsNic(&'static str),
    /// The config file cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("{path}: {message}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// Which option or key.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A required setting is in neither the options nor the file.
    #[error("missing {0}")]
    Missing(&'static str),
    /// DPDK refused (EAL, pool or port).
    #[cfg(feature = "dpdk")]
    #[error("{0}")]
    Dpdk(#[from] ringline_dataplane::dpdk::DpdkError),
}

/// Options shared by every command that opens a DPDK port on one engine
/// (`echo`, `http`, `loadgen`).
#[derive(Args, Clone, Debug, Default)]
pub struct NicArgs {
    /// Run on a DPDK port, with these EAL arguments (one string, split at
    /// whitespace), e.g. "-l 1 --file-prefix=rl -a 0000:01:00.0" or
    /// "--no-huge -m 512 --vdev=net_tap0". Needs a build with --features dpdk.
    #[arg(long, value_name = "EAL_ARGS", allow_hyphen_values = true)]
    pub dpdk: Option<String>,
    /// Read the EAL arguments, port, addresses and limits from this TOML file
    /// (see deploy/ringline.toml); the options here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The DPDK port: a name (net_tap0, 0000:01:00.0) or a port id [default: port 0].
    #[arg(long, value_name = "NAME|ID")]
    pub dpdk_port: Option<String>,
    /// This engine's IPv4 address and prefix, e.g. 10.0.0.1/24 (/24 if no prefix is given).
    #[arg(long, value_name = "ADDR[/LEN]")]
    pub ip: Option<String>,
    /// Default gateway for destinations off the subnet (resolved with ARP).
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<Ipv4Addr>,
    /// Set the port's MAC address (for devices that allow it, e.g. net_tap).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Pin the engine to this CPU (adds `-l CORE` to the EAL arguments unless they choose lcores).
    #[arg(long, value_name = "CPU", conflicts_with = "cores")]
    pub core: Option<usize>,
    /// One engine per CPU listed ("0,1" or "2-5"), each on its own thread
    /// with its own ring and its own RX/TX queue pair of the port (frames
    /// reach their flow's engine by the symmetric RSS hash, dispatched in
    /// software); the first CPU is the EAL's main lcore.
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Run the engine thread under SCHED_FIFO at this priority (1-99), so
    /// ordinary threads on its core cannot preempt the busy poll (needs
    /// CAP_SYS_NICE; isolate the core for best results, see deploy/README.md).
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub realtime: Option<u8>,
    /// Microseconds an idle engine keeps polling before it blocks
    /// (`engine.busy_poll_us`; default 1000; 18446744073709551615: always spin).
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<u64>,
}

/// The config file (`--config`); every section and key is optional.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The DPDK side.
    #[serde(default)]
    pub dpdk: DpdkSection,
    /// Addresses.
    #[serde(default)]
    pub net: NetSection,
    /// Engine placement and limits.
    #[serde(default)]
    pub engine: EngineSection,
    /// What the host should have reserved (checked by `ringline doctor`).
    #[serde(default)]
    pub hugepages: HugepagesSection,
    /// The server (`ringline echo` / `ringline http`).
    #[serde(default)]
    pub server: ServerSection,
    /// `ringline serve`: limits per attached application.
    #[serde(default)]
    // Read only by the DPDK build's `serve` (the loopback wire takes no file).
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub serve: ServeSection,
}

/// `[serve]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Application slots per NIC port (1-64).
    pub max_apps: Option<u16>,
    /// Most sockets (connections) per application.
    pub max_sockets: Option<usize>,
    /// Largest buffer region per application, MiB.
    pub max_buffer_mb: Option<usize>,
    /// Largest SQ per application.
    pub max_sq_entries: Option<u32>,
    /// How long a departed application's connections may take to close, ms.
    pub drain_ms: Option<u64>,
    /// Answer Prometheus scrapes (`GET /metrics`) on this address, e.g.
    /// `127.0.0.1:9469`.
    pub prometheus: Option<String>,
    /// Let applications wake a napping daemon (default true).
    pub wakeup: Option<bool>,
}

/// EAL arguments as a list or as one line split at whitespace.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum EalArgs {
    /// `["-l", "1", "--file-prefix=rl"]`
    List(Vec<String>),
    /// `"-l 1 --file-prefix=rl"`
    Line(String),
}

impl EalArgs {
    fn to_vec(&self) -> Vec<String> {
        match self {
            EalArgs::List(v) => v.clone(),
            EalArgs::Line(s) => split_eal_args(s),
        }
    }
}

/// `[dpdk]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// EAL arguments.
    pub eal_args: Option<EalArgs>,
    /// Port name or id.
    pub port: Option<PortRef>,
    /// RX/TX queue pairs: one per engine, so as many as `engine.cores`
    /// lists (1 without it).
    pub queues: Option<u16>,
    /// Mbufs in the port's pool (2^n - 1 is best).
    pub mbufs: Option<u32>,
    /// RX descriptors.
    pub rx_descriptors: Option<u16>,
    /// TX descriptors.
    pub tx_descriptors: Option<u16>,
    /// Receive frames for any MAC.
    pub promiscuous: Option<bool>,
    /// Use checksum offload where the device has it.
    pub checksum_offload: Option<bool>,
}

/// A port given by name or by id.
#[derive(Deserialize, Debug, Clone)]
// Read only by the DPDK build's `open_device`.
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
#[serde(untagged)]
pub enum PortRef {
    /// `port = 0`
    Id(u16),
    /// `port = "0000:01:00.0"`
    Name(String),
}

/// `[net]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct NetSection {
    /// `"192.0.2.10/24"`
    pub ip: Option<String>,
    /// `"192.0.2.1"`
    pub gateway: Option<Ipv4Addr>,
    /// `"02:00:00:00:00:10"`
    pub mac: Option<String>,
}

/// `[engine]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// CPU to pin the engine to.
    pub core: Option<usize>,
    /// One engine per CPU listed, each on its own queue pair (`--cores`).
    pub cores: Option<Vec<usize>>,
    /// SCHED_FIFO priority of the engine thread (1-99).
    pub realtime: Option<u8>,
    /// Most connections at once.
    pub max_connections: Option<usize>,
    /// Connections allocated up front.
    pub prealloc_connections: Option<usize>,
    /// Receive buffer per connection, bytes.
    pub rx_buffer: Option<usize>,
    /// Transmit buffer per connection, bytes.
    pub tx_buffer: Option<usize>,
    /// Most bytes queued in all socket buffers together (0: no limit;
    /// default an eighth of physical memory).
    pub buffer_budget: Option<usize>,
    /// Cap on a listener's backlog.
    pub somaxconn: Option<u32>,
    /// µs an idle engine polls before it blocks.
    pub busy_poll_us: Option<u64>,
    /// Congestion control of every connection: "rate" (the default) or
    /// "westwood".
    pub congestion: Option<String>,
    /// Publish the engine's counters for `ringline stat` (a page in
    /// /dev/shm per engine; default true).
    pub stat: Option<bool>,
    /// Most connections `ringline stat --conns` shows per engine (default 256).
    pub stat_connections: Option<usize>,
    /// How often the counters are published, ms (default 100).
    pub stat_interval_ms: Option<u64>,
}

/// `[hugepages]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct HugepagesSection {
    /// 2 MiB pages the host should have reserved (deploy/hugepages.sh N).
    pub pages: Option<u64>,
}

/// `[server]`
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `80` or `"0.0.0.0:80"`.
    pub listen: Option<ListenRef>,
    /// The body `ringline http` serves on `GET /`.
    pub body: Option<String>,
}

/// A listening port, alone or with an address.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum ListenRef {
    /// `listen = 80`
    Port(u16),
    /// `listen = "0.0.0.0:80"`
    Addr(String),
}

impl ListenRef {
    /// As the `--listen` option would spell it.
    pub fn as_arg(&self) -> String {
        match self {
            ListenRef::Port(p) => p.to_string(),
            ListenRef::Addr(s) => s.clone(),
        }
    }
}

/// Everything needed to open one DPDK port.
#[derive(Clone, Debug)]
// Read only by the DPDK build's `open_device`.
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub struct DeviceSettings {
    /// EAL arguments (without the program name).
    pub eal_args: Vec<String>,
    /// Port name or id; `None` = port 0.
    pub port: Option<PortRef>,
    /// MAC to set on the port.
    pub mac: Option<MacAddr>,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// RX descriptors.
    pub rx_descriptors: u16,
    /// TX descriptors.
    pub tx_descriptors: u16,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Checksum offload where available.
    pub checksum_offload: bool,
    /// RX/TX queue pairs (engines).
    pub queues: u16,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            eal_args: Vec::new(),
            port: None,
            mac: None,
            mbufs: 8191,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: false,
            checksum_offload: true,
            queues: 1,
        }
    }
}

/// A single-engine command's resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The port.
    pub device: DeviceSettings,
    /// The engine (address, gateway, limits).
    pub engine: EngineConfig,
    /// The `[server]` section, for the defaults of `--listen` and `--body`.
    pub server: ServerSection,
    /// SCHED_FIFO priority for the engine thread, if any.
    pub realtime: Option<u8>,
    /// One engine per CPU (`--cores`, `engine.cores`); empty: one engine,
    /// on the EAL's main lcore.
    pub cores: Vec<usize>,
}

/// Parses a CPU list (`--cores`): numbers and ranges joined by commas.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, TransportError> {
    crate::demo::parse_cores(s).map_err(|_| TransportError::Invalid {
        what: "--cores",
        value: s.to_owned(),
        why: "expected online CPUs, e.g. 0,1 or 0-3",
    })
}

/// Splits an EAL argument line at whitespace (no quoting: EAL arguments
/// never need spaces).
pub fn split_eal_args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Adds ringline's default EAL arguments to `args`: `--huge-unlink`, unless
/// the arguments choose otherwise (`--huge-unlink=...`, `--no-huge`,
/// `--in-memory`, or a secondary process).
///
/// Why: DPDK keeps a file in the hugetlbfs mount for every hugepage it maps
/// and deletes it when the page is freed; but `rte_eal_cleanup` does not free
/// everything (with any device probed, the ethdev shared-data memzone
/// stays), so even a clean exit leaves a `<prefix>map_N` file, and a killed
/// process leaves them all, holding hugepages until someone deletes them.
/// Unlinked right after mapping, no file can outlive the process. The cost
/// is DPDK's multi-process mode (secondaries attach through those files),
/// which ringline does not use.
pub fn with_default_eal_args(mut args: Vec<String>) -> Vec<String> {
    let chooses = args.iter().any(|a| {
        a.starts_with("--huge-unlink")
            || a == "--no-huge"
            || a == "--in-memory"
            || a.starts_with("--proc-type")
    });
    if !chooses {
        args.push("--huge-unlink".to_owned());
    }
    args
}

/// Reads and parses a config file.
pub fn load_config(path: &Path) -> Result<FileConfig, TransportError> {
    let text = std::fs::read_to_string(path).map_err(|source| TransportError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| TransportError::ParseConfig {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Parses `a.b.c.d/len` (or `a.b.c.d`, taken as /24).
pub fn parse_ip_prefix(s: &str) -> Result<(Ipv4Addr, u8), TransportError> {
    let bad = |why| TransportError::Invalid {
        what: "IPv4 address",
        value: s.to_owned(),
        why,
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (
            a,
            l.parse::<u8>()
                .map_err(|_| bad("prefix length is not a number"))?,
        ),
        None => (s, 24),
    };
    if !(1..=32).contains(&len) {
        return Err(bad("prefix length must be 1..=32"));
    }
    let ip: Ipv4Addr = addr.parse().map_err(|_| bad("expected a.b.c.d[/len]"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(bad("not a unicast address"));
    }
    Ok((ip, len))
}

/// Parses `02:00:00:00:00:01` (also with `-`).
pub fn parse_mac(s: &str) -> Result<MacAddr, TransportError> {
    let bad = |why| TransportError::Invalid {
        what: "MAC address",
        value: s.to_owned(),
        why,
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad("expected six hex bytes, e.g. 02:00:00:00:00:01"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad("expected six hex bytes, e.g. 02:00:00:00:00:01"));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(bad("must be a non-zero unicast address"));
    }
    Ok(mac)
}

/// Parses `--listen`: `PORT` or `ADDR:PORT`, where ADDR is 0.0.0.0 or `ip`.
pub fn parse_listen(s: &str, ip: Ipv4Addr) -> Result<u16, TransportError> {
    let bad = |why| TransportError::Invalid {
        what: "listen address",
        value: s.to_owned(),
        why,
    };
    let port = match s.parse::<u16>() {
        Ok(p) => p,
        Err(_) => {
            let sa: SocketAddrV4 = s.parse().map_err(|_| bad("expected PORT or ADDR:PORT"))?;
            if !sa.ip().is_unspecified() && *sa.ip() != ip {
                return Err(bad("the address must be 0.0.0.0 or this engine's --ip"));
            }
            sa.port()
        }
    };
    if port == 0 {
        return Err(bad("port 0"));
    }
    Ok(port)
}

/// Parses `--connect ADDR:PORT`.
pub fn parse_connect(s: &str) -> Result<SocketAddrV4, TransportError> {
    let sa: SocketAddrV4 = s.parse().map_err(|_| TransportError::Invalid {
        what: "server address",
        value: s.to_owned(),
        why: "expected ADDR:PORT, e.g. 10.0.0.1:7",
    })?;
    if sa.port() == 0 || sa.ip().is_unspecified() {
        return Err(TransportError::Invalid {
            what: "server address",
            value: s.to_owned(),
            why: "needs a unicast address and a non-zero port",
        });
    }
    Ok(sa)
}

/// True if the EAL arguments already choose the lcores.
fn chooses_lcores(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-l"
            || a == "-c"
            || a.starts_with("--lcores")
            || (a.starts_with("-l") && !a.starts_with("--"))
            || (a.starts_with("-c") && !a.starts_with("--"))
    })
}

/// Resolves a single-engine command's options (and config file) into
/// [`Settings`]. `cmd` names the command in errors.
pub fn resolve(args: &NicArgs, cmd: &'static str) -> Result<Settings, TransportError> {
    if args.dpdk.is_none() && args.config.is_none() {
        return Err(TransportError::NeedsNic(cmd));
    }
    if !cfg!(feature = "dpdk") {
        return Err(TransportError::NoDpdkSupport);
    }
    let file = match &args.config {
        Some(p) => load_config(p)?,
        None => FileConfig::default(),
    };
    let d = &file.dpdk;
    let cores = match (&args.cores, &file.engine.cores) {
        (Some(list), _) => parse_cores(list)?,
        (None, Some(list)) => list.clone(),
        (None, None) => Vec::new(),
    };
    if args.cores.is_none() && file.engine.cores.as_ref().is_some_and(Vec::is_empty) {
        return Err(TransportError::Invalid {
            what: "engine.cores",
            value: "[]".into(),
            why: "list at least one CPU",
        });
    }
    if cores.len() > usize::from(ringline_dataplane::rss::MAX_QUEUES) {
        return Err(TransportError::Invalid {
            what: "--cores",
            value: format!("{cores:?}"),
            why: "at most 64 engines",
        });
    }
    let queues = cores.len().max(1) as u16;
    if let Some(q) = d.queues {
        if q != queues {
            return Err(TransportError::Invalid {
                what: "dpdk.queues",
                value: q.to_string(),
                why: "must equal the number of engines (the CPUs in --cores / engine.cores, 1 without)",
            });
        }
    }
    let eal_args = match (&args.dpdk, &d.eal_args) {
        (Some(line), _) => split_eal_args(line),
        (None, Some(a)) => a.to_vec(),
        (None, None) => Vec::new(),
    };
    let mut eal_args = with_default_eal_args(eal_args);
    let core = args.core.or(cores.first().copied()).or(file.engine.core);
    if let Some(core) = core {
        if !chooses_lcores(&eal_args) {
            eal_args.insert(0, core.to_string());
            eal_args.insert(0, "-l".to_owned());
        }
    }
    let port = match &args.dpdk_port {
        Some(p) => Some(match p.parse::<u16>() {
            Ok(id) => PortRef::Id(id),
            Err(_) => PortRef::Name(p.clone()),
        }),
        None => d.port.clone(),
    };
    let mac = match args.mac.as_deref().or(file.net.mac.as_deref()) {
        Some(m) => Some(parse_mac(m)?),
        None => None,
    };
    let defaults = DeviceSettings::default();
    let device = DeviceSettings {
        eal_args,
        port,
        mac,
        mbufs: d.mbufs.unwrap_or(defaults.mbufs),
        rx_descriptors: d.rx_descriptors.unwrap_or(defaults.rx_descriptors),
        tx_descriptors: d.tx_descriptors.unwrap_or(defaults.tx_descriptors),
        promiscuous: d.promiscuous.unwrap_or(defaults.promiscuous),
        checksum_offload: d.checksum_offload.unwrap_or(defaults.checksum_offload),
        queues,
    };
    let ip_arg = args
        .ip
        .as_deref()
        .or(file.net.ip.as_deref())
        .ok_or(TransportError::Missing(
            "the engine's address: pass --ip ADDR/LEN or set net.ip in the config",
        ))?;
    let (ip, prefix_len) = parse_ip_prefix(ip_arg)?;
    let gateway = args.gateway.or(file.net.gateway);
    let e = &file.engine;
    let base = EngineConfig::default();
    let engine = EngineConfig {
        ip,
        prefix_len,
        gateway,
        // A real peer is found with ARP; static neighbours are for the loopback wire.
        static_neighbors: Vec::new(),
        max_connections: e.max_connections.unwrap_or(65_536),
        prealloc_connections: e.prealloc_connections.unwrap_or(256),
        rx_buffer: e.rx_buffer.unwrap_or(base.rx_buffer),
        tx_buffer: e.tx_buffer.unwrap_or(base.tx_buffer),
        buffer_budget: e.buffer_budget.unwrap_or(base.buffer_budget),
        somaxconn: e.somaxconn.unwrap_or(base.somaxconn),
        busy_poll_us: args
            .busy_poll_us
            .or(e.busy_poll_us)
            .unwrap_or(base.busy_poll_us),
        congestion: match e.congestion.as_deref() {
            None | Some("rate") => ringline::Congestion::Rate,
            Some("westwood") => ringline::Congestion::Westwood,
            Some(other) => {
                return Err(TransportError::Invalid {
                    what: "engine.congestion",
                    value: other.to_owned(),
                    why: "expected \"rate\" or \"westwood\"",
                })
            }
        },
        stat: e.stat.unwrap_or(true),
        stat_connections: e.stat_connections.unwrap_or(base.stat_connections),
        stat_interval: e
            .stat_interval_ms
            .map_or(base.stat_interval, std::time::Duration::from_millis),
        ..base
    };
    if engine.stat_interval.is_zero() || engine.stat_connections > ringline::statpage::MAX_CONN_ROWS
    {
        return Err(TransportError::Invalid {
            what: "engine.stat_interval_ms / engine.stat_connections",
            value: format!(
                "{} ms / {}",
                engine.stat_interval.as_millis(),
                engine.stat_connections
            ),
            why: "the interval must be > 0 and at most 65536 connections shown",
        });
    }
    let realtime = args.realtime.or(e.realtime);
    if let Some(p) = realtime {
        if !(1..=99).contains(&p) {
            return Err(TransportError::Invalid {
                what: "engine.realtime",
                value: p.to_string(),
                why: "a SCHED_FIFO priority is 1..=99",
            });
        }
    }
    if engine.prealloc_connections > engine.max_connections {
        return Err(TransportError::Invalid {
            what: "engine.prealloc_connections",
            value: engine.prealloc_connections.to_string(),
            why: "more than engine.max_connections",
        });
    }
    Ok(Settings {
        device,
        engine,
        server: file.server,
        realtime,
        cores,
    })
}

/// The NIC of a single-engine command: a DPDK port.
#[cfg(feature = "dpdk")]
pub type Device = ringline_dataplane::dpdk::DpdkPort;

/// The NIC of a single-engine command. This build has no DPDK support, so
/// there is none: the type is empty, and [`open_device`] always fails.
#[cfg(not(feature = "dpdk"))]
pub enum Device {}

#[cfg(not(feature = "dpdk"))]
impl ringline_dataplane::Nic for Device {
    type Frame = Box<[u8]>;

    fn caps(&self) -> ringline_dataplane::NicCaps {
        match *self {}
    }

    fn rx_burst(&mut self, _out: &mut Vec<Box<[u8]>>, _max: usize) -> usize {
        match *self {}
    }

    fn rx_release(&mut self, _frame: Box<[u8]>) {
        match *self {}
    }

    fn tx_frame(
        &mut self,
        _len: usize,
        _build: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ringline_dataplane::TxError> {
        match *self {}
    }

    fn tx_flush(&mut self) -> usize {
        match *self {}
    }

    fn counters(&self) -> ringline_dataplane::NicCounters {
        match *self {}
    }
}

/// One line describing an open device, for the command's start-up message.
#[cfg(feature = "dpdk")]
pub fn describe(dev: &Device) -> String {
    use ringline_dataplane::Nic;
    let link = dev.link();
    format!(
        "DPDK port {} ({}), MAC {}, link {}{}",
        dev.port_id(),
        dev.driver(),
        format_mac(dev.caps().mac),
        if link.up { "up" } else { "down" },
        if link.speed_mbps > 0 {
            format!(" {} Mb/s", link.speed_mbps)
        } else {
            String::new()
        }
    )
}

/// One line describing an open device, for the command's start-up message.
#[cfg(not(feature = "dpdk"))]
pub fn describe(dev: &Device) -> String {
    match *dev {}
}

/// The device's driver (`net_tap`, `net_memif`, `net_ixgbe`, ...).
#[cfg(feature = "dpdk")]
pub fn driver_name(dev: &Device) -> String {
    dev.driver().to_owned()
}

/// The device's driver.
#[cfg(not(feature = "dpdk"))]
pub fn driver_name(dev: &Device) -> String {
    match *dev {}
}

/// `aa:bb:cc:dd:ee:ff`
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub fn format_mac(mac: MacAddr) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Initialises the EAL on the calling thread (which becomes the engine
/// thread, pinned by the EAL to its first lcore), creates the mbuf pool and
/// opens and starts the port.
#[cfg(feature = "dpdk")]
pub fn open_device(s: &DeviceSettings) -> Result<Device, TransportError> {
    use ringline_dataplane::dpdk::{DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};

    let eal = Eal::init(&s.eal_args)?;
    let port_id = match &s.port {
        Some(PortRef::Id(id)) => *id,
        Some(PortRef::Name(name)) => eal.port_by_name(name)?,
        None => 0,
    };
    let socket = DpdkPort::socket_of(port_id);
    let pool = Mempool::new(
        &eal,
        "ringline",
        &MempoolConfig {
            mbufs: s.mbufs,
            // DPDK refuses a per-lcore cache above 2/3 of the pool.
            cache_size: (s.mbufs / 3 * 2).min(256),
            socket,
            ..MempoolConfig::default()
        },
    )?;
    let mut port = DpdkPort::open(
        &eal,
        port_id,
        &pool,
        &PortConfig {
            rx_descriptors: s.rx_descriptors,
            tx_descriptors: s.tx_descriptors,
            promiscuous: s.promiscuous,
            checksum_offload: s.checksum_offload,
            ..PortConfig::default()
        },
    )?;
    if let Some(mac) = s.mac {
        port.set_mac(mac)?;
    }
    Ok(port)
}

/// Like [`open_device`], for `s.queues` engines: the port with one RX/TX
/// queue pair per engine ([`MultiPort`]), its pool sized for all of them.
#[cfg(feature = "dpdk")]
pub fn open_multi(s: &DeviceSettings) -> Result<MultiPort, TransportError> {
    use ringline_dataplane::dpdk::{DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};

    let eal = Eal::init(&s.eal_args)?;
    let port_id = match &s.port {
        Some(PortRef::Id(id)) => *id,
        Some(PortRef::Name(name)) => eal.port_by_name(name)?,
        None => 0,
    };
    let q = u32::from(s.queues);
    let config = PortConfig {
        rx_descriptors: s.rx_descriptors,
        tx_descriptors: s.tx_descriptors,
        promiscuous: s.promiscuous,
        checksum_offload: s.checksum_offload,
        ..PortConfig::default()
    };
    // Every queue's descriptors and batch, the hand-over queues, and room.
    let needed =
        (u32::from(s.rx_descriptors) + u32::from(s.tx_descriptors) + config.tx_batch as u32) * q
            + q * q.saturating_sub(1) * ringline_dataplane::dpdk::HANDOFF_SLOTS as u32
            + 2048;
    let mbufs = s.mbufs.max(needed.next_power_of_two() - 1);
    let pool = Mempool::new(
        &eal,
        "ringline",
        &MempoolConfig {
            mbufs,
            // Engine threads other than the main one are not EAL lcores and
            // get no cache; the main lcore's is not shared.
            cache_size: (mbufs / 3 * 2).min(256),
            socket: DpdkPort::socket_of(port_id),
            ..MempoolConfig::default()
        },
    )?;
    let mut port = MultiPort::open(&eal, port_id, &pool, &config, s.queues)?;
    if let Some(mac) = s.mac {
        port.set_mac(mac)?;
    }
    Ok(port)
}

/// Longest wait of [`wait_for_memif_peer`] for the peer to close its end.
#[cfg(feature = "dpdk")]
pub const MEMIF_PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// On a `net_memif` port whose link is up, waits (without polling the port)
/// until the peer has closed its end, at most [`MEMIF_PEER_WAIT`]; returns
/// at once on any other device. Call it after the engine's last step and
/// before the port is dropped, on the side that finishes first.
///
/// Why: DPDK's memif driver handles the peer's disconnect on the EAL's
/// interrupt thread, which unmaps the shared rings and buffers with no
/// lock against `rte_eth_rx_burst`/`tx_burst` on the engine thread. A peer
/// that closes while this side still polls can make this side read
/// unmapped memory (SIGSEGV in the driver's receive path); so the side
/// that finishes first stops polling and keeps its end open until the
/// other side, no longer polling either, has closed. Our own close then
/// runs the driver's disconnect a second time, which must not overlap the
/// interrupt thread's: the link goes down at the start of that handler,
/// so we give it a moment to finish.
#[cfg(feature = "dpdk")]
pub fn wait_for_memif_peer(dev: &Device) -> bool {
    use std::time::{Duration, Instant};
    if !dev.driver().starts_with("net_memif") || !dev.link().up {
        return true;
    }
    let deadline = Instant::now() + MEMIF_PEER_WAIT;
    while dev.link().up {
        if Instant::now() >= deadline {
            eprintln!(
                "ringline: the memif peer is still connected after {} s; closing anyway",
                MEMIF_PEER_WAIT.as_secs()
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // The interrupt thread's disconnect (close the control channel and the
    // queues' event fds, unmap the regions) takes microseconds.
    std::thread::sleep(Duration::from_millis(100));
    true
}

/// Without DPDK support there is no device.
#[cfg(not(feature = "dpdk"))]
pub fn wait_for_memif_peer(dev: &Device) -> bool {
    match *dev {}
}

/// The multi-queue port (DPDK builds only).
#[cfg(feature = "dpdk")]
pub use ringline_dataplane::dpdk::{DpdkQueue, MultiPort};

/// Without DPDK support there is no device to open.
#[cfg(not(feature = "dpdk"))]
pub fn open_device(_s: &DeviceSettings) -> Result<Device, TransportError> {
    Err(TransportError::NoDpdkSupport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_bad_ones_are_errors() {
        assert_eq!(
            parse_ip_prefix("10.1.2.3/16").unwrap(),
            (Ipv4Addr::new(10, 1, 2, 3), 16)
        );
        assert_eq!(parse_ip_prefix("10.1.2.3").unwrap().1, 24);
        for bad in [
            "10.1.2.3/33",
            "10.1.2/24",
            "0.0.0.0",
            "x",
            "10.0.0.1/x",
            "224.0.0.1",
        ] {
            assert!(parse_ip_prefix(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        for bad in [
            "01:00:00:00:00:01",
            "00:00:00:00:00:00",
            "02:00:00:00:00",
            "zz:00:00:00:00:00",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(parse_listen("80", ip).unwrap(), 80);
        assert_eq!(parse_listen("0.0.0.0:8080", ip).unwrap(), 8080);
        assert_eq!(parse_listen("10.0.0.1:7", ip).unwrap(), 7);
        assert!(parse_listen("10.0.0.2:7", ip).is_err());
        assert!(parse_listen("0", ip).is_err());
        assert!(parse_connect("10.0.0.1:7").is_ok());
        assert!(parse_connect("10.0.0.1").is_err());
    }

    #[test]
    fn without_a_nic_the_error_says_what_to_pass() {
        let e = resolve(&NicArgs::default(), "echo").unwrap_err();
        assert!(e.to_string().contains("--dpdk"), "{e}");
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn dpdk_without_the_feature_is_a_clear_error() {
        let args = NicArgs {
            dpdk: Some("--no-huge".into()),
            ip: Some("10.0.0.1/24".into()),
            ..NicArgs::default()
        };
        let e = resolve(&args, "echo").unwrap_err();
        assert!(
            e.to_string().contains("rebuild with --features dpdk"),
            "{e}"
        );
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn options_override_the_file_and_core_becomes_an_lcore() {
        let dir = std::env::temp_dir().join(format!("ringline-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.toml");
        std::fs::write(
            &path,
            r#"
[dpdk]
eal_args = "--no-huge --vdev=net_tap0"
port = "net_tap0"
mbufs = 4095
[net]
ip = "10.9.0.2/24"
gateway = "10.9.0.1"
[engine]
core = 1
max_connections = 1000
[server]
listen = 8080
"#,
        )
        .unwrap();
        let args = NicArgs {
            config: Some(path.clone()),
            ip: Some("10.9.0.3/16".into()),
            ..NicArgs::default()
        };
        let s = resolve(&args, "http").unwrap();
        assert_eq!(
            s.device.eal_args,
            ["-l", "1", "--no-huge", "--vdev=net_tap0"]
        );
        assert_eq!(
            with_default_eal_args(split_eal_args("-a 0000:01:00.0")),
            ["-a", "0000:01:00.0", "--huge-unlink"]
        );
        assert_eq!(
            with_default_eal_args(split_eal_args("--huge-unlink=never")),
            ["--huge-unlink=never"]
        );
        assert!(matches!(s.device.port, Some(PortRef::Name(ref n)) if n == "net_tap0"));
        assert_eq!(s.device.mbufs, 4095);
        assert_eq!(s.engine.ip, Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(s.engine.prefix_len, 16);
        assert_eq!(s.engine.gateway, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(s.engine.max_connections, 1000);
        assert_eq!(s.server.listen.unwrap().as_arg(), "8080");

        std::fs::write(&path, "[dpdk]\nqueues = 4\n").unwrap();
        let e = resolve(&args, "http").unwrap_err();
        assert!(
            e.to_string().contains("must equal the number of engines"),
            "{e}"
        );
        // engine.cores: one engine (and queue pair) per CPU, the first the
        // EAL's main lcore.
        std::fs::write(
            &path,
            "[dpdk]\neal_args = \"--no-huge\"\nqueues = 2\n[net]\nip = \"10.0.0.1\"\n[engine]\ncores = [1, 0]\n",
        )
        .unwrap();
        let s = resolve(&args, "echo").unwrap();
        assert_eq!(s.cores, [1, 0]);
        assert_eq!(s.device.queues, 2);
        assert_eq!(&s.device.eal_args[..2], ["-l", "1"]);
        std::fs::write(&path, "[engine]\ncores = []\n").unwrap();
        let e = resolve(&args, "echo").unwrap_err();
        assert!(e.to_string().contains("at least one CPU"), "{e}");
        // engine.congestion: the controller, and a clear error otherwise.
        std::fs::write(
            &path,
            "[net]\nip = \"10.0.0.1\"\n[engine]\ncongestion = \"westwood\"\n",
        )
        .unwrap();
        let s = resolve(&args, "echo").unwrap();
        assert_eq!(s.engine.congestion, ringline::Congestion::Westwood);
        std::fs::write(
            &path,
            "[net]\nip = \"10.0.0.1\"\n[engine]\ncongestion = \"cubic\"\n",
        )
        .unwrap();
        let e = resolve(&args, "echo").unwrap_err();
        assert!(e.to_string().contains("engine.congestion"), "{e}");
        std::fs::write(&path, "[dpdk]\nunknown_key = 1\n").unwrap();
        let e = resolve(&args, "http").unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
