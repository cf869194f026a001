//! `ringline http`: a minimal HTTP/1.1 server over the ring API, enough for
//! curl and wrk. `GET /` (and `HEAD /`) returns a fixed body with
//! `Content-Length`; other paths are 404, other methods on `/` 405.
//! Connections are persistent (HTTP/1.1 keep-alive, or HTTP/1.0 with
//! `Connection: keep-alive`) until the client sends `Connection: close`;
//! pipelined requests are answered in order, several per SEND. A malformed
//! request gets 400 (a too long head 431, a body too large 413, a chunked
//! body 501), then the connection is closed.
//!
//! Shape: one multishot ACCEPT; per connection, one operation at a time: a
//! RECV into the connection's 8 KiB input buffer, or a SEND
//! (`MSG_WAITALL`) of every response its buffered requests produced. Written
//! on the safe layer (`ringline_ring::io`): the buffer moves into the request
//! and comes back with its completion, so it cannot be touched (or freed)
//! while the engine uses it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ringline_ring::abi::IOSQE_IO_LINK;
use ringline_ring::io::{op, Completion, Io, Submitter};
use ringline_ring::opcode;

use crate::sys::{Layer, Uring};

/// Input buffer per connection: the longest request head (plus body) accepted.
const IN_CAP: usize = 8192;
/// Stop answering pipelined requests once this much output is waiting; the
/// rest are answered after the SEND completes.
const OUT_HIGH: usize = 64 * 1024;

/// What a request of the server was for (the token of its completions).
#[derive(Clone, Copy, Debug, Default)]
enum Ev {
    /// SOCKET, BIND, LISTEN, a RECV's LINK_TIMEOUT.
    #[default]
    Setup,
    /// The multishot ACCEPT on this listener.
    Accept(i32),
    /// The RECV of this connection.
    Recv(i32),
    /// The SEND of this connection.
    Send(i32),
}

type Sub<'a, 'r, R> = Submitter<'a, Layer<'r, R>, Ev>;

/// Options of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpOpts {
    /// Port to listen on.
    pub port: u16,
    /// The body of `GET /`.
    pub body: String,
    /// Most time a request's head may take to arrive, from its first byte
    /// (a client sending slowly, byte by byte, cannot hold a connection).
    pub header_timeout: Duration,
    /// Most time a connection may wait for the next request with nothing
    /// received (keep-alive idle).
    pub idle_timeout: Duration,
}

impl HttpOpts {
    /// The defaults of `ringline http`: 10 s for a request head, 60 s idle.
    pub fn new(port: u16, body: String) -> Self {
        HttpOpts {
            port,
            body,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Server counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct HttpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Requests answered (any status).
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 4xx/5xx responses for well-formed requests (404, 405).
    pub not_found: u64,
    /// Malformed requests (400, 413, 431, 501).
    pub bad: u64,
    /// Error CQEs other than resets and cancellations.
    pub errors: u64,
    /// Connections closed because a request head did not arrive in time
    /// (`header_timeout`) or nothing arrived while idle (`idle_timeout`).
    pub timeouts: u64,
}

/// The request methods the server tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Other,
}

/// A complete request at the front of the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Request {
    /// Bytes it occupies (leading empty lines, head, body).
    len: usize,
    method: Method,
    /// The target is `/` (optionally with a query).
    root: bool,
    /// The connection stays open after the response.
    keep_alive: bool,
    /// An HTTP/1.0 request (whose keep-alive the response must confirm).
    http10: bool,
}

/// Why a request cannot be answered normally: the status to send before
/// closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bad(u16);

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the request at the front of `buf`: `Ok(None)` if it is not all
/// there yet.
fn parse(buf: &[u8]) -> Result<Option<Request>, Bad> {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let Some(head_len) = find(&buf[start..], b"\r\n\r\n") else {
        return if buf.len() >= IN_CAP {
            Err(Bad(431))
        } else {
            Ok(None)
        };
    };
    let head = &buf[start..start + head_len];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(Bad(400))?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad(400));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || target.is_empty() {
        return Err(Bad(400));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(Bad(400)),
    };
    let mut close = false;
    let mut keep = false;
    let mut content_length: Option<usize> = None;
    let mut host = false;
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            // Obsolete line folding.
            return Err(Bad(400));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(Bad(400))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Bad(400));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Bad(400));
            }
            let n = value
                .iter()
                .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
            if content_length.is_some_and(|m| m != n) {
                return Err(Bad(400));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Bad(501));
        } else if name.eq_ignore_ascii_case(b"host") {
            host = true;
        }
    }
    if http11 && !host {
        // RFC 9112 3.2: a 1.1 request without Host is answered with 400.
        return Err(Bad(400));
    }
    let len = start + head_len + 4 + content_length.unwrap_or(0);
    if len > IN_CAP {
        return Err(Bad(413));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let root = target == b"/" || target.starts_with(b"/?");
    let keep_alive = !close && (http11 || keep);
    Ok(Some(Request {
        len,
        method,
        root,
        keep_alive,
        http10: !http11,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Error",
    }
}

/// Appends one response to `out`.
fn respond(
    out: &mut Vec<u8>,
    status: u16,
    body: &[u8],
    head_only: bool,
    close: bool,
    http10_keep: bool,
) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: ringline\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10_keep {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// One connection. At most one operation is in flight on it: while a RECV
/// holds `input` or a SEND holds `out`, the field is empty (the request owns
/// the buffer) and comes back with the completion.
struct Conn {
    input: Vec<u8>,
    in_len: usize,
    out: Vec<u8>,
    close_after_send: bool,
    /// When the first byte of the request being read arrived.
    head_since: Option<Instant>,
}

/// What a connection does next.
enum Next {
    Send,
    Recv,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            input: vec![0u8; IN_CAP],
            in_len: 0,
            out: Vec::with_capacity(4096),
            close_after_send: false,
            head_since: None,
        }
    }

    /// How long the next RECV may wait: what is left of the head's time if
    /// part of a request is in, else the idle time.
    fn recv_timeout(&mut self, opts: &Timeouts) -> Duration {
        if self.in_len == 0 {
            self.head_since = None;
            return opts.idle;
        }
        let since = *self.head_since.get_or_insert_with(Instant::now);
        opts.header
            .saturating_sub(since.elapsed())
            .max(Duration::from_millis(1))
    }

    /// Answers every complete request in the input buffer (up to
    /// [`OUT_HIGH`] of output) and says whether to send or receive next.
    fn advance(&mut self, body: &[u8], stats: &mut HttpStats) -> Next {
        while !self.close_after_send && self.out.len() < OUT_HIGH {
            match parse(&self.input[..self.in_len]) {
                Ok(Some(req)) => {
                    stats.requests += 1;
                    let http10_keep = req.keep_alive && req.http10;
                    let (status, payload): (u16, &[u8]) = match (req.root, req.method) {
                        (true, Method::Get | Method::Head) => (200, body),
                        (true, Method::Other) => (405, b"method not allowed\n"),
                        (false, _) => (404, b"not found\n"),
                    };
                    if status == 200 {
                        stats.ok += 1;
                    } else {
                        stats.not_found += 1;
                    }
                    respond(
                        &mut self.out,
                        status,
                        payload,
                        req.method == Method::Head,
                        !req.keep_alive,
                        http10_keep,
                    );
                    self.input.copy_within(req.len..self.in_len, 0);
                    self.in_len -= req.len;
                    self.close_after_send = !req.keep_alive;
                }
                Ok(None) => break,
                Err(Bad(status)) => {
                    stats.requests += 1;
                    stats.bad += 1;
                    respond(&mut self.out, status, b"bad request\n", false, true, false);
                    self.in_len = 0;
                    self.close_after_send = true;
                }
            }
        }
        if self.out.is_empty() {
            Next::Recv
        } else {
            Next::Send
        }
    }
}

/// The two timeouts of [`HttpOpts`].
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// The server's state between completions.
struct Server<'a> {
    conns: HashMap<i32, Conn>,
    body: &'a [u8],
    stats: HttpStats,
    timeouts: Timeouts,
}

impl Server<'_> {
    /// Starts the next operation of connection `fd` (which has none in flight).
    fn next<R: Uring>(&mut self, sub: &mut Sub<'_, '_, R>, fd: i32) {
        let Some(c) = self.conns.get_mut(&fd) else {
            return;
        };
        let pushed = match c.advance(self.body, &mut self.stats) {
            Next::Send => {
                let out = core::mem::take(&mut c.out);
                let send = op::Send::new(fd, out).flags(libc::MSG_WAITALL);
                sub.push(send, Ev::Send(fd)).is_ok()
            }
            Next::Recv => {
                // The RECV is linked to a LINK_TIMEOUT: a client that sends
                // nothing, or a request head too slowly, is closed.
                let timeout = c.recv_timeout(&self.timeouts);
                let input = core::mem::take(&mut c.input);
                let recv = op::Recv::new(fd, input)
                    .range(c.in_len..IN_CAP)
                    .sqe_flags(IOSQE_IO_LINK);
                sub.push(recv, Ev::Recv(fd)).is_ok()
                    && sub.push(op::LinkTimeout::new(timeout), Ev::Setup).is_ok()
            }
        };
        if !pushed {
            // The layer's slot table is full: give up on this connection.
            self.stats.errors += 1;
            self.close(sub, fd);
        }
    }

    /// Closes `fd` and forgets it.
    fn close<R: Uring>(&mut self, sub: &mut Sub<'_, '_, R>, fd: i32) {
        self.conns.remove(&fd);
        sub.push_detached(opcode::Close::new(fd).build());
    }

    fn on_completion<R: Uring>(&mut self, sub: &mut Sub<'_, '_, R>, mut c: Completion<Ev>) {
        let res = c.res();
        match c.data() {
            Ev::Accept(lfd) => {
                if res >= 0 {
                    self.stats.accepted += 1;
                    self.conns.insert(res, Conn::new());
                    self.next(sub, res);
                } else if res != -libc::ECANCELED {
                    self.stats.errors += 1;
                }
                // A multishot accept is re-armed by the layer while it can be.
                if !c.more() && res != -libc::ECANCELED {
                    let accept = opcode::AcceptMulti::new(lfd).build();
                    if sub.push(accept, Ev::Accept(lfd)).is_err() {
                        self.stats.errors += 1;
                    }
                }
            }
            Ev::Recv(fd) => {
                let Some(conn) = self.conns.get_mut(&fd) else {
                    return;
                };
                if let Some(input) = c.take_buf().and_then(|b| b.into_vec()) {
                    conn.input = input;
                }
                if res > 0 {
                    conn.in_len += res as usize;
                    self.next(sub, fd);
                } else {
                    if res == -libc::ECANCELED {
                        // Its LINK_TIMEOUT fired.
                        self.stats.timeouts += 1;
                    } else if res < 0 && res != -libc::ECONNRESET {
                        self.stats.errors += 1;
                    }
                    self.close(sub, fd);
                }
            }
            Ev::Send(fd) => {
                let Some(conn) = self.conns.get_mut(&fd) else {
                    return;
                };
                if let Some(out) = c.take_buf().and_then(|b| b.into_vec()) {
                    conn.out = out;
                }
                let complete = res >= 0 && res as usize == conn.out.len();
                conn.out.clear();
                if !complete {
                    if res < 0
                        && res != -libc::ECONNRESET
                        && res != -libc::EPIPE
                        && res != -libc::ECANCELED
                    {
                        self.stats.errors += 1;
                    }
                    self.close(sub, fd);
                } else if conn.close_after_send {
                    self.close(sub, fd);
                } else {
                    self.next(sub, fd);
                }
            }
            Ev::Setup => {}
        }
    }
}

/// Runs the HTTP server on `ip:opts.port` until `stop` is set; sets `ready`
/// once it listens. Returns its counters.
pub fn serve<R: Uring>(
    rt: &mut R,
    ip: Ipv4Addr,
    opts: &HttpOpts,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<HttpStats, String> {
    let mut io: Io<_, Ev> = Io::with_capacity(Layer(rt), 4096, 4096);
    let lfd = crate::echo::listen(&mut io, ip, opts.port, 4096)?;
    io.push(opcode::AcceptMulti::new(lfd).build(), Ev::Accept(lfd))
        .map_err(|e| format!("accept: {e}"))?;
    ready.store(true, Ordering::Release);

    let mut server = Server {
        conns: HashMap::new(),
        body: opts.body.as_bytes(),
        stats: HttpStats::default(),
        timeouts: Timeouts {
            header: opts.header_timeout,
            idle: opts.idle_timeout,
        },
    };
    while !stop.load(Ordering::Relaxed) {
        io.wait(1, Duration::from_millis(5))
            .map_err(|e| format!("enter: {e}"))?;
        let (mut sub, completions) = io.split();
        for c in completions {
            server.on_completion(&mut sub, c);
        }
    }
    // Close every connection and the listener; dropping `io` cancels what
    // is still in flight and keeps (leaks) any buffer the engine may still
    // use.
    for &fd in server.conns.keys() {
        io.push_detached(opcode::Close::new(fd).build());
    }
    io.push_detached(opcode::Close::new(lfd).build());
    let _ = io.submit();
    Ok(server.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<Request>, Bad> {
        parse(s.as_bytes())
    }

    #[test]
    fn parses_get_head_keep_alive_and_close() {
        let r = req("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (r.method, r.root, r.keep_alive, r.len),
            (Method::Get, true, true, 27)
        );
        let r = req("HEAD /?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.method, r.root, r.keep_alive),
            (Method::Head, true, false)
        );
        let r = req("GET /x HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.root, r.keep_alive), (false, false));
        let r = req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.keep_alive);
        let r = req("\r\nPOST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET")
            .unwrap()
            .unwrap();
        assert_eq!((r.method, r.len), (Method::Other, 2 + 47 + 3));
    }

    #[test]
    fn incomplete_requests_wait() {
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(req(""), Ok(None));
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"),
            Ok(None)
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for (s, status) in [
            ("GET /\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n",
                413,
            ),
        ] {
            assert_eq!(req(s), Err(Bad(status)), "{s:?}");
        }
        let long = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}", "a".repeat(IN_CAP));
        assert_eq!(req(&long), Err(Bad(431)));
    }

    #[test]
    fn pipelined_requests_get_responses_in_order_then_close() {
        let mut c = Conn::new();
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n";
        c.input[..input.len()].copy_from_slice(input);
        c.in_len = input.len();
        let mut stats = HttpStats::default();
        assert!(matches!(c.advance(b"hi", &mut stats), Next::Send));
        let out = String::from_utf8(c.out.clone()).unwrap();
        let statuses: Vec<&str> = out.matches("HTTP/1.1 ").map(|_| "").collect();
        assert_eq!(statuses.len(), 3, "{out}");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("Content-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found"),
            "{out}"
        );
        assert!(out.ends_with("Connection: close\r\n\r\nhi"), "{out}");
        assert!(c.close_after_send);
        assert_eq!((stats.requests, stats.ok, stats.not_found), (3, 2, 1));
    }

    #[test]
    fn head_has_length_but_no_body_and_bad_requests_close() {
        let mut c = Conn::new();
        let input = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n";
        c.input[..input.len()].copy_from_slice(input);
        c.in_len = input.len();
        let mut stats = HttpStats::default();
        c.advance(b"hello", &mut stats);
        let out = String::from_utf8(c.out.clone()).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("Content-Length: 5\r\n\r\nHTTP/1.1 400 Bad Request\r\n"),
            "{out}"
        );
        assert!(
            out.ends_with("Connection: close\r\n\r\nbad request\n"),
            "{out}"
        );
        assert!(c.close_after_send);
        assert_eq!(stats.bad, 1);
    }
}

/// The header and idle timeouts, end to end on the loopback wire: a client
/// that sends half a request head and stops, and one that sends nothing,
/// are both closed (the server counts them), while a prompt request is
/// answered. The test's client names its buffers in raw SQEs (audited
/// `unsafe`, as in the testkit); the server under test is safe.
#[cfg(test)]
#[allow(unsafe_code)]
mod timeout_tests {
    use super::*;
    use ringline::{Clock, Runtime};
    use ringline_dataplane::LoopbackPort;
    use ringline_ring::abi::Cqe;
    use ringline_testkit::pair::{
        open_engines, push as tpush, push_safe as push_safe_t, reap, sockaddr, take, PairOpts,
        SERVER_IP,
    };
    use std::sync::Arc;

    type Rt = Runtime<LoopbackPort>;

    /// Runs `cli` until the CQE `ud` arrives; its result and the wait.
    fn wait(cli: &mut Rt, ud: u64, cqes: &mut Vec<Cqe>) -> (i32, Duration) {
        let t = Instant::now();
        loop {
            let _ = cli.submit();
            reap(cli, cqes);
            if let Some(c) = take(cqes, ud) {
                return (c.res, t.elapsed());
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no CQE {ud}");
        }
    }

    fn connect(cli: &mut Rt, sa: &libc::sockaddr_in, ud: u64, cqes: &mut Vec<Cqe>) -> i32 {
        push_safe_t(
            cli,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(ud)
                .build(),
        );
        let fd = wait(cli, ud, cqes).0;
        assert!(fd >= 0);
        let p = sa as *const libc::sockaddr_in as *const libc::sockaddr;
        // SAFETY: the address is read when the CONNECT starts, before the
        // wait below returns; `sa` outlives it.
        unsafe { tpush(cli, opcode::Connect::new(fd, p, 16).user_data(ud).build()) };
        assert_eq!(wait(cli, ud, cqes).0, 0, "connect");
        fd
    }

    #[test]
    fn slow_and_idle_clients_are_closed_prompt_ones_answered() {
        let (mut srv, mut cli) =
            open_engines::<LoopbackPort>(PairOpts::default(), Clock::monotonic()).expect("engines");
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (ready.clone(), stop.clone());
        let server = std::thread::spawn(move || {
            let opts = HttpOpts {
                header_timeout: Duration::from_millis(300),
                idle_timeout: Duration::from_millis(600),
                ..HttpOpts::new(80, "hi\n".into())
            };
            serve(&mut srv, SERVER_IP, &opts, &r2, &s2)
        });
        while !ready.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let mut cqes = Vec::new();
        let sa = sockaddr(SERVER_IP, 80);
        let slow = connect(&mut cli, &sa, 1, &mut cqes);
        let idle = connect(&mut cli, &sa, 2, &mut cqes);
        let prompt = connect(&mut cli, &sa, 3, &mut cqes);
        let half = b"GET / HTTP/1.1\r\nHo";
        let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut bufs = vec![[0u8; 256]; 3];
        // SAFETY: the requests are static strings; `bufs` is not resized and
        // outlives the RECVs, whose CQEs the test waits for below.
        unsafe {
            tpush(
                &mut cli,
                opcode::Send::new(slow, half.as_ptr(), half.len() as u32)
                    .user_data(10)
                    .build(),
            );
            tpush(
                &mut cli,
                opcode::Send::new(prompt, full.as_ptr(), full.len() as u32)
                    .user_data(11)
                    .build(),
            );
            for (i, fd) in [slow, idle, prompt].into_iter().enumerate() {
                tpush(
                    &mut cli,
                    opcode::Recv::new(fd, bufs[i].as_mut_ptr(), 256)
                        .user_data(20 + i as u64)
                        .build(),
                );
            }
        }
        let (res, _) = wait(&mut cli, 22, &mut cqes);
        assert!(res > 0 && bufs[2].starts_with(b"HTTP/1.1 200"), "answered");
        let (res, slow_t) = wait(&mut cli, 20, &mut cqes);
        assert_eq!(res, 0, "the slow client is closed (EOF)");
        let (res, idle_t) = wait(&mut cli, 21, &mut cqes);
        assert_eq!(res, 0, "the idle client is closed (EOF)");
        assert!(slow_t < Duration::from_secs(2) && idle_t < Duration::from_secs(3));
        stop.store(true, Ordering::Release);
        let stats = server.join().unwrap().expect("serve");
        // The slow and the idle one; the prompt one too if its own idle
        // time ran out before the server stopped.
        assert!((2..=3).contains(&stats.timeouts), "{stats:?}");
        assert_eq!(stats.ok, 1, "{stats:?}");
    }
}
