//! The socket-number hook (`EngineConfig::socket_numbers`, used by
//! libringline): numbers come from the hook, an ACCEPT's CQE carries one,
//! a socket made outside the engine is adopted (bound and listening) by the
//! first request that names it (or, if it listens, by the first SYN for its
//! port), and every number goes back on close and when the engine is dropped.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ringline::{Adopted, SocketNumbers, SocketNumbersHook};
use ringline_ring::opcode;
use ringline_testkit::pair::*;

const PORT: u16 = 7100;

/// Hands out 1000, 1001, ... and records what is in use; fd 999 is a
/// listener made "outside" on PORT.
#[derive(Default)]
struct Numbers {
    next: Mutex<i32>,
    live: Mutex<BTreeSet<i32>>,
    adopted: Mutex<Vec<i32>>,
    /// Ports the engine asked `pending_listener` about.
    syn_ports: Mutex<Vec<u16>>,
}

impl SocketNumbers for Numbers {
    fn reserve(&self) -> Option<i32> {
        let mut n = self.next.lock().unwrap();
        let fd = 1000 + *n;
        *n += 1;
        self.live.lock().unwrap().insert(fd);
        Some(fd)
    }
    fn release(&self, fd: i32) {
        assert!(
            self.live.lock().unwrap().remove(&fd),
            "released {fd} twice or never reserved"
        );
    }
    fn adopt(&self, fd: i32) -> Option<Adopted> {
        if fd != 999 || self.adopted.lock().unwrap().contains(&fd) {
            return None;
        }
        self.adopted.lock().unwrap().push(fd);
        self.live.lock().unwrap().insert(fd);
        Some(Adopted::Listener {
            port: PORT,
            backlog: 16,
            opts: None,
        })
    }
    fn pending_listener(&self, port: u16) -> Option<i32> {
        self.syn_ports.lock().unwrap().push(port);
        (port == PORT && !self.adopted.lock().unwrap().contains(&999)).then_some(999)
    }
}

#[test]
fn hook_numbers_adoption_and_release() {
    let numbers = Arc::new(Numbers::default());
    let mut o = PairOpts::default();
    o.server.socket_numbers = Some(SocketNumbersHook(numbers.clone()));
    let mut p = Pair::with(o);

    // fd 999 was never created in the engine: the ACCEPT adopts it.
    push_safe(&mut p.s, opcode::AcceptMulti::new(999).user_data(1).build());
    p.run(5);
    assert_eq!(*numbers.adopted.lock().unwrap(), vec![999]);
    let clients = connect_n(&mut p, PORT, 3, 100);
    assert_eq!(clients.len(), 3);
    assert!(p.run_until(10_000, |p| p
        .s_cqes
        .iter()
        .filter(|c| c.user_data == 1)
        .count()
        == 3));
    let fds: BTreeSet<i32> = p
        .s_cqes
        .iter()
        .filter(|c| c.user_data == 1)
        .map(|c| c.res)
        .collect();
    assert_eq!(
        fds,
        BTreeSet::from([1000, 1001, 1002]),
        "ACCEPT CQEs carry the hook's numbers"
    );

    // A number the hook does not know is still EBADF.
    let c = call_safe(&mut p, true, opcode::Close::new(4242).user_data(2).build());
    assert_eq!(c.res, -libc::EBADF);

    // CLOSE gives a number back.
    let c = call_safe(&mut p, true, opcode::Close::new(1001).user_data(3).build());
    assert_eq!(c.res, 0);
    assert!(!numbers.live.lock().unwrap().contains(&1001));

    // SOCKET takes one.
    let c = call_safe(
        &mut p,
        true,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(4)
            .build(),
    );
    assert_eq!(c.res, 1003);

    // Dropping the engine returns the rest (the listener included).
    drop(p);
    assert!(
        numbers.live.lock().unwrap().is_empty(),
        "{:?}",
        numbers.live.lock().unwrap()
    );
}

/// Linux takes connections once `listen()` returns. A socket that listens
/// outside the engine (`listen()` in libringline) is adopted by the first SYN
/// for its port, before any request names it: the client connects rather
/// than being refused, and a later ACCEPT gets the connection.
#[test]
fn a_syn_adopts_a_socket_that_listens_outside_the_engine() {
    let numbers = Arc::new(Numbers::default());
    let mut o = PairOpts::default();
    o.server.socket_numbers = Some(SocketNumbersHook(numbers.clone()));
    let mut p = Pair::with(o);

    // Nothing listens on PORT + 1: refused, as before.
    let sa = sockaddr(SERVER_IP, PORT + 1);
    client_connect(&mut p, &sa, 10, 11);
    assert!(p.run_until(10_000, |p| p.c_cqes.iter().any(|c| c.user_data == 11)));
    assert_eq!(take(&mut p.c_cqes, 11).unwrap().res, -libc::ECONNREFUSED);
    assert!(numbers.adopted.lock().unwrap().is_empty());

    // No request has named fd 999; the SYN for PORT adopts it.
    let clients = connect_n(&mut p, PORT, 2, 100);
    assert_eq!(clients.len(), 2);
    assert_eq!(*numbers.adopted.lock().unwrap(), vec![999]);
    assert_eq!(
        *numbers.syn_ports.lock().unwrap(),
        vec![PORT + 1, PORT],
        "asked once per port nothing listened on, not for the second SYN"
    );

    // The ACCEPT that names it later gets the connections already made.
    push_safe(&mut p.s, opcode::AcceptMulti::new(999).user_data(1).build());
    assert!(p.run_until(10_000, |p| p
        .s_cqes
        .iter()
        .filter(|c| c.user_data == 1)
        .count()
        == 2));
    assert!(p.s_cqes.iter().all(|c| c.user_data != 1 || c.res >= 1000));
}
