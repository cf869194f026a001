//! SQPOLL end to end, and idle engines that block instead of spinning.
//!
//! * An echo server whose engine runs on its own thread (`open_sqpoll`): the
//!   application submits by publishing SQEs, the engine sets
//!   `IORING_SQ_NEED_WAKEUP` after `sq_thread_idle`, and both a frame and
//!   the application's `enter` with `IORING_ENTER_SQ_WAKEUP` wake it; the
//!   application's wait for completions blocks (little CPU while waiting).
//! * An inline engine idle past `busy_poll_us` blocks (counted in
//!   `idle_sleeps`), a frame from the peer wakes it (`idle_wakeups`), and
//!   the request after idle is served.
//!
//! Nothing here measures speed: CPU-time bounds are loose (half the wall
//! time of a wait that should cost well under 1%), so a busy machine cannot
//! fail them, and every wait is bounded.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ringline::{open, open_sqpoll, Clock, EngineConfig, Runtime, SqpollConfig, SqpollRuntime};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::Cqe;
use ringline_ring::app::{sockaddr_in, Driver, Ring, Timespec};
use ringline_ring::opcode::{self, SafeSqe};
use ringline_ring::ring::RingConfig;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 7;
/// Longest any step of these tests waits.
const PATIENCE: Duration = Duration::from_secs(20);
/// Idle time before each request of the inline idle test, ms.
const IDLE_MS: u64 = 50;
/// Requests after idle in the inline idle test.
const ROUNDS: usize = 3;

fn engines(busy_poll_us: u64) -> (EngineConfig, EngineConfig, LoopbackPort, LoopbackPort) {
    let wire = WireConfig::default();
    let (a, b) = LoopbackWire::pair(&wire);
    let server = EngineConfig {
        ip: SERVER_IP,
        static_neighbors: vec![(CLIENT_IP, wire.mac_b)],
        busy_poll_us,
        rx_buffer: 64 << 10,
        tx_buffer: 64 << 10,
        ..EngineConfig::default()
    };
    let client = EngineConfig {
        ip: CLIENT_IP,
        static_neighbors: vec![(SERVER_IP, wire.mac_a)],
        seed: 77,
        busy_poll_us,
        rx_buffer: 64 << 10,
        tx_buffer: 64 << 10,
        ..EngineConfig::default()
    };
    (server, client, a, b)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write; the clock id
    // is a constant every Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn push_safe<D: Driver>(r: &mut Ring<D>, sqe: SafeSqe) {
    r.push_safe(&sqe).expect("SQ room");
}

/// Takes the CQE with `ud` from `r`, entering (and waiting) as needed;
/// `poke` runs between waits (to step the other, inline, engine).
fn take<D: Driver>(r: &mut Ring<D>, ud: u64, mut poke: impl FnMut()) -> Cqe {
    let end = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        seen.extend(r.completions());
        if let Some(i) = seen.iter().position(|c| c.user_data == ud) {
            let c = seen.remove(i);
            assert!(seen.is_empty(), "unexpected CQEs {seen:?}");
            return c;
        }
        assert!(Instant::now() < end, "no CQE {ud} in {PATIENCE:?}");
        let _ = r.submit_and_wait_timeout(1, Duration::from_millis(2));
        poke();
    }
}

/// SOCKET + BIND + LISTEN on `r`; returns the listener.
fn listen<D: Driver>(r: &mut Ring<D>) -> i32 {
    push_safe(
        r,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(1)
            .build(),
    );
    let fd = take(r, 1, || {}).res;
    assert!(fd >= 0, "socket: {fd}");
    let sa = sockaddr_in(SERVER_IP.octets(), PORT);
    let sqe = opcode::Bind::new(fd, (&raw const sa).cast(), size_of_val(&sa) as u32)
        .user_data(2)
        .build();
    // SAFETY: `sa` lives until BIND's CQE, taken just below.
    unsafe { r.push(&sqe) }.expect("SQ room");
    assert_eq!(take(r, 2, || {}).res, 0, "bind");
    push_safe(r, opcode::Listen::new(fd, 16).user_data(3).build());
    assert_eq!(take(r, 3, || {}).res, 0, "listen");
    fd
}

/// SOCKET + CONNECT on the inline client `c` (the server's engine runs by
/// itself); returns the socket.
fn connect(c: &mut Runtime<LoopbackPort>) -> i32 {
    push_safe(
        c,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(11)
            .build(),
    );
    let fd = take(c, 11, || {}).res;
    assert!(fd >= 0, "socket: {fd}");
    let sa = sockaddr_in(SERVER_IP.octets(), PORT);
    let sqe = opcode::Connect::new(fd, (&raw const sa).cast(), size_of_val(&sa) as u32)
        .user_data(12)
        .build();
    // SAFETY: `sa` lives until CONNECT's CQE, taken just below.
    unsafe { c.push(&sqe) }.expect("SQ room");
    assert_eq!(take(c, 12, || {}).res, 0, "connect");
    fd
}

/// One echo round trip: the client sends `msg` on `cfd`; the server, whose
/// RECV (`ud` 20) into `sbuf` is already armed, echoes it back.
fn round_trip<D: Driver>(
    s: &mut Ring<D>,
    c: &mut Runtime<LoopbackPort>,
    sfd: i32,
    cfd: i32,
    sbuf: &mut [u8],
    msg: &[u8],
) {
    let sqe = opcode::Send::new(cfd, msg.as_ptr(), msg.len() as u32)
        .user_data(30)
        .build();
    // SAFETY: `msg` outlives the SEND, whose CQE is taken below.
    unsafe { c.push(&sqe) }.expect("SQ room");
    assert_eq!(take(c, 30, || {}).res as usize, msg.len());
    let got = take(s, 20, || {
        let _ = c.submit();
    });
    assert_eq!(&sbuf[..got.res as usize], msg, "server received");
    let sqe = opcode::Send::new(sfd, sbuf.as_ptr(), got.res as u32)
        .user_data(21)
        .build();
    // SAFETY: `sbuf` is neither freed nor written until this SEND's CQE, taken below.
    unsafe { s.push(&sqe) }.expect("SQ room");
    // SQPOLL: publishing the tail is the whole submission.
    s.submit().expect("submit");
    let mut cbuf = [0u8; 256];
    let sqe = opcode::Recv::new(cfd, cbuf.as_mut_ptr(), cbuf.len() as u32)
        .user_data(31)
        .build();
    // SAFETY: `cbuf` lives until the RECV's CQE, taken below.
    unsafe { c.push(&sqe) }.expect("SQ room");
    let back = take(c, 31, || {});
    assert_eq!(&cbuf[..back.res as usize], msg, "echoed");
    assert_eq!(take(s, 21, || {}).res as usize, msg.len());
}

/// Arms the server's RECV (`ud` 20) into `sbuf`.
fn arm_recv<D: Driver>(s: &mut Ring<D>, sfd: i32, sbuf: &mut [u8]) {
    let sqe = opcode::Recv::new(sfd, sbuf.as_mut_ptr(), sbuf.len() as u32)
        .user_data(20)
        .build();
    // SAFETY: the callers keep `sbuf` alive and untouched until RECV 20's CQE.
    unsafe { s.push(&sqe) }.expect("SQ room");
    s.submit().expect("submit");
}

/// Waits (bounded) until the SQPOLL engine has set NEED_WAKEUP.
fn wait_need_wakeup<N>(s: &SqpollRuntime<N>)
where
    N: ringline_dataplane::Nic + Send + 'static,
    N::Frame: Send,
{
    let end = Instant::now() + PATIENCE;
    while !s.app().needs_wakeup() {
        assert!(Instant::now() < end, "NEED_WAKEUP never set");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sqpoll_echo_sleeps_with_need_wakeup_and_wakes_on_enter_and_frames() {
    let (scfg, ccfg, a, b) = engines(200);
    let sq = SqpollConfig {
        cpu: None,
        idle: Duration::from_millis(20),
    };
    let mut s = open_sqpoll(a, &RingConfig::default(), scfg, &sq, Clock::monotonic()).unwrap();
    let p = s.app().params();
    assert_ne!(p.flags & ringline_ring::abi::IORING_SETUP_SQPOLL, 0);
    assert_eq!(p.sq_thread_idle, 20);
    let mut c = open(b, &RingConfig::default(), ccfg, Clock::monotonic()).unwrap();

    let l = listen(&mut s);
    push_safe(&mut s, opcode::AcceptNoAddr::new(l).user_data(4).build());
    s.submit().unwrap();
    let cfd = connect(&mut c);
    let sfd = take(&mut s, 4, || {
        let _ = c.submit();
    })
    .res;
    assert!(sfd >= 0, "accept: {sfd}");

    let mut sbuf = vec![0u8; 256];
    arm_recv(&mut s, sfd, &mut sbuf);
    round_trip(&mut s, &mut c, sfd, cfd, &mut sbuf, b"before idle");

    // Idle: the engine sets NEED_WAKEUP and sleeps. A frame wakes it (the
    // RECV armed before the idle completes), without any enter.
    arm_recv(&mut s, sfd, &mut sbuf);
    wait_need_wakeup(&s);
    let before = s.driver_mut().stats();
    assert!(before.idle_sleeps > 0, "{before:?}");
    round_trip(&mut s, &mut c, sfd, cfd, &mut sbuf, b"woken by a frame");

    // Idle again; now an SQE wakes it: liburing's submit reads NEED_WAKEUP
    // and enters with IORING_ENTER_SQ_WAKEUP.
    wait_need_wakeup(&s);
    push_safe(&mut s, opcode::Nop::new().user_data(40).build());
    s.submit().unwrap();
    assert_eq!(take(&mut s, 40, || {}).res, 0);

    // A wait for a completion blocks rather than spins: a 200 ms TIMEOUT
    // waited for with submit_and_wait costs the application thread little CPU.
    let ts = Timespec::from(Duration::from_millis(200));
    let sqe = opcode::Timeout::new(&ts).user_data(41).build();
    // SAFETY: `ts` outlives the TIMEOUT, whose CQE is taken inside the wait below.
    unsafe { s.push(&sqe) }.expect("SQ room");
    let (t0, cpu0) = (Instant::now(), thread_cpu());
    s.submit_and_wait(1).unwrap();
    let (wall, cpu) = (t0.elapsed(), thread_cpu() - cpu0);
    assert!(
        wall >= Duration::from_millis(190),
        "TIMEOUT fired after {wall:?}"
    );
    assert!(cpu < wall / 2, "waiting cost {cpu:?} of CPU in {wall:?}");
    assert_eq!(take(&mut s, 41, || {}).res, -libc::ETIME);
    // A wait with a timeout and nothing coming ends with ETIME.
    assert_eq!(
        s.submit_and_wait_timeout(1, Duration::from_millis(20))
            .map_err(|e| e.0),
        Err(libc::ETIME)
    );

    let after = s.driver_mut().stats();
    assert!(after.idle_wakeups > before.idle_wakeups, "{after:?}");

    // The engine comes back to this thread as an inline driver.
    let Ring { app, driver } = s;
    let inline = driver.into_inline();
    assert_eq!(inline.stats().sqes, after.sqes);
    assert!(!Ring::new(app, inline).app().needs_wakeup());
}

/// SQ_WAIT waits for SQ space while the engine drains it; buffer rings
/// register through the engine thread.
#[test]
fn sqpoll_sq_wait_and_buffer_rings() {
    let (scfg, _, a, _b) = engines(100);
    let ring = RingConfig {
        sq_entries: 4,
        ..RingConfig::default()
    };
    let sq = SqpollConfig {
        cpu: Some(0),
        idle: Duration::from_millis(5),
    };
    let mut s = open_sqpoll(a, &ring, scfg, &sq, Clock::monotonic()).unwrap();
    let mut done = 0;
    for i in 0..64u64 {
        while s.sq_space_left() == 0 {
            s.sqring_wait().expect("SQ_WAIT");
        }
        push_safe(&mut s, opcode::Nop::new().user_data(i).build());
        s.submit().unwrap();
        done += s.completions().count();
    }
    while done < 64 {
        s.submit_and_wait_timeout(1, PATIENCE)
            .expect("NOPs complete");
        done += s.completions().count();
    }
    let br = s.register_buf_ring(8, 3).expect("register");
    assert_eq!(
        s.register_buf_ring(8, 3).map(|_| ()).map_err(|e| e.0),
        Err(libc::EEXIST)
    );
    s.unregister_buf_ring(3).expect("unregister");
    drop(br);
    assert_eq!(s.unregister_buf_ring(3).map_err(|e| e.0), Err(libc::ENOENT));
    // A CPU that does not exist is refused at open with a clear error.
    let (scfg, _, a, _b) = engines(100);
    let bad = SqpollConfig {
        cpu: Some(100_000),
        ..SqpollConfig::default()
    };
    let Err(err) = open_sqpoll(a, &RingConfig::default(), scfg, &bad, Clock::monotonic()) else {
        panic!("CPU 100000 accepted");
    };
    assert!(err.to_string().contains("CPU"), "{err}");
}

/// An inline engine idle past busy_poll_us blocks; the peer's frame wakes it
/// and the request after idle is served.
#[test]
fn idle_inline_engine_blocks_and_serves_the_request_after_idle() {
    let (scfg, ccfg, a, b) = engines(100);
    let server = std::thread::spawn(move || {
        let mut s = open(a, &RingConfig::default(), scfg, Clock::monotonic()).unwrap();
        let l = listen(&mut s);
        push_safe(&mut s, opcode::AcceptNoAddr::new(l).user_data(4).build());
        let sfd = take(&mut s, 4, || {}).res;
        assert!(sfd >= 0, "accept: {sfd}");
        let mut buf = vec![0u8; 256];
        let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let sqe = opcode::Recv::new(sfd, buf.as_mut_ptr(), 256)
                .user_data(20)
                .build();
            // SAFETY: `buf` lives until the RECV's CQE, taken below.
            unsafe { s.push(&sqe) }.expect("SQ room");
            let (t0, cpu0) = (Instant::now(), thread_cpu());
            let n = take(&mut s, 20, || {}).res;
            cpu += thread_cpu() - cpu0;
            wall += t0.elapsed();
            assert!(n > 0, "recv: {n}");
            let sqe = opcode::Send::new(sfd, buf.as_ptr(), n as u32)
                .user_data(21)
                .build();
            // SAFETY: `buf` is untouched until the SEND's CQE, taken below.
            unsafe { s.push(&sqe) }.expect("SQ room");
            assert_eq!(take(&mut s, 21, || {}).res, n);
        }
        (s.driver().stats(), cpu, wall)
    });
    let mut c = open(b, &RingConfig::default(), ccfg, Clock::monotonic()).unwrap();
    let end = Instant::now() + PATIENCE;
    let cfd = loop {
        // The server thread may not listen yet: retry refused connects.
        push_safe(
            &mut c,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(11)
                .build(),
        );
        let fd = take(&mut c, 11, || {}).res;
        let sa = sockaddr_in(SERVER_IP.octets(), PORT);
        let sqe = opcode::Connect::new(fd, (&raw const sa).cast(), size_of_val(&sa) as u32)
            .user_data(12)
            .build();
        // SAFETY: `sa` lives until CONNECT's CQE, taken just below.
        unsafe { c.push(&sqe) }.expect("SQ room");
        if take(&mut c, 12, || {}).res == 0 {
            break fd;
        }
        push_safe(&mut c, opcode::Close::new(fd).user_data(13).build());
        take(&mut c, 13, || {});
        assert!(Instant::now() < end, "never connected");
        std::thread::sleep(Duration::from_millis(5));
    };
    for i in 0..ROUNDS {
        // Let the server go idle (well past its 100 µs busy poll).
        std::thread::sleep(Duration::from_millis(IDLE_MS));
        let msg = format!("after idle {i}").into_bytes();
        let sqe = opcode::Send::new(cfd, msg.as_ptr(), msg.len() as u32)
            .user_data(30)
            .build();
        // SAFETY: `msg` outlives the SEND, whose CQE is taken below.
        unsafe { c.push(&sqe) }.expect("SQ room");
        assert_eq!(take(&mut c, 30, || {}).res as usize, msg.len());
        let mut cbuf = [0u8; 256];
        let sqe = opcode::Recv::new(cfd, cbuf.as_mut_ptr(), 256)
            .user_data(31)
            .build();
        // SAFETY: `cbuf` lives until the RECV's CQE, taken below.
        unsafe { c.push(&sqe) }.expect("SQ room");
        let n = take(&mut c, 31, || {}).res;
        assert_eq!(&cbuf[..n as usize], &msg[..], "served after idle");
    }
    let (stats, cpu, wall) = server.join().expect("server thread");
    assert!(stats.idle_sleeps > 0, "{stats:?}");
    assert!(
        stats.idle_wakeups > 0,
        "no frame woke the engine: {stats:?}"
    );
    assert!(
        stats.idle_sleep_us > 0 && cpu < wall / 2,
        "waiting for requests cost {cpu:?} of CPU in {wall:?}"
    );
}

/// A NIC like DPDK's: it cannot say whether a frame waits (`rx_pending` is
/// always "maybe") nor notify (`rx_arm` unsupported).
struct Deaf(LoopbackPort);

impl ringline_dataplane::Nic for Deaf {
    type Frame = <LoopbackPort as ringline_dataplane::Nic>::Frame;
    fn caps(&self) -> ringline_dataplane::NicCaps {
        self.0.caps()
    }
    fn rx_burst(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize {
        self.0.rx_burst(out, max)
    }
    fn rx_release(&mut self, frame: Self::Frame) {
        self.0.rx_release(frame)
    }
    fn tx_frame(
        &mut self,
        len: usize,
        build: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ringline_dataplane::TxError> {
        self.0.tx_frame(len, build)
    }
    fn tx_flush(&mut self) -> usize {
        self.0.tx_flush()
    }
    fn counters(&self) -> ringline_dataplane::NicCounters {
        self.0.counters()
    }
}

/// On a NIC that can neither tell nor notify, an idle engine still sleeps
/// (in backed-off steps) and its timer still fires: a 100 ms TIMEOUT waited
/// for costs the thread well under half its wall time.
#[test]
fn idle_engine_on_a_nic_without_notification_backs_off() {
    let (cfg, _, a, _b) = engines(100);
    let mut rt = open(Deaf(a), &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let ts = Timespec::from(Duration::from_millis(100));
    let sqe = opcode::Timeout::new(&ts).user_data(1).build();
    // SAFETY: `ts` outlives the TIMEOUT, whose CQE is taken inside the wait below.
    unsafe { rt.push(&sqe) }.expect("SQ room");
    let (t0, cpu0) = (Instant::now(), thread_cpu());
    rt.submit_and_wait(1).unwrap();
    let (wall, cpu) = (t0.elapsed(), thread_cpu() - cpu0);
    assert_eq!(take(&mut rt, 1, || {}).res, -libc::ETIME);
    assert!(
        wall >= Duration::from_millis(99),
        "TIMEOUT fired after {wall:?}"
    );
    let s = rt.driver().stats();
    assert!(s.idle_sleeps > 0, "{s:?}");
    assert!(cpu < wall / 2, "waiting cost {cpu:?} of CPU in {wall:?}");
}
