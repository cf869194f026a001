//! The engine behind a ring, whatever its NIC and driver: an inline
//! [`stack::Runtime`] or an SQPOLL [`stack::SqpollRuntime`], as one trait object.

use ringline_dataplane::Nic;
use ringline_ring::app::{Driver, Errno};
use ringline_ring::ring::{AppRing, RingConfig};
use stack::{Clock, EngineConfig, EngineStats, OpenError, SocketCloser, SqpollConfig};

/// What libringline needs of a ring's engine.
pub(crate) trait Backend {
    /// `io_uring_enter` and the register calls.
    fn driver(&mut self) -> &mut dyn Driver;
    /// The application half: the params and the ring memory.
    fn app(&self) -> &AppRing;
    /// Closes socket number `fd` (libringline's `close()`).
    fn close_socket(&mut self, fd: i32) -> Result<(), Errno>;
    /// Sets an option of socket `fd` (libringline's `setsockopt()`; an
    /// SQPOLL engine's go through [`Backend::closer`]).
    fn set_socket_option(&mut self, fd: i32, level: i32, name: i32, val: i32) -> Result<(), Errno>;
    /// Shuts socket `fd` down (libringline's `shutdown()`; an SQPOLL
    /// engine's go through [`Backend::closer`]).
    fn shutdown_socket(&mut self, fd: i32, how: i32) -> Result<(), Errno>;
    /// The engine's counters.
    fn stats(&mut self) -> EngineStats;
    /// For an engine on its own thread: a handle that closes its sockets
    /// from any thread at once.
    fn closer(&self) -> Option<SocketCloser> {
        None
    }
    /// `IORING_SETUP_DEFER_TASKRUN` (an inline engine; see
    /// `stack::Inline::set_defer_taskrun`).
    fn set_defer_taskrun(&mut self, _on: bool) {}
}

impl<N: Nic> Backend for stack::Runtime<N> {
    fn driver(&mut self) -> &mut dyn Driver {
        &mut self.driver
    }
    fn app(&self) -> &AppRing {
        &self.app
    }
    fn close_socket(&mut self, fd: i32) -> Result<(), Errno> {
        self.driver.close_socket(fd)
    }
    fn stats(&mut self) -> EngineStats {
        self.driver.stats()
    }
    fn set_defer_taskrun(&mut self, on: bool) {
        self.driver.set_defer_taskrun(on);
    }
    fn set_socket_option(&mut self, fd: i32, level: i32, name: i32, val: i32) -> Result<(), Errno> {
        self.driver.set_socket_option(fd, level, name, val)
    }
    fn shutdown_socket(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        self.driver.shutdown_socket(fd, how)
    }
}

impl<N: Nic + Send + 'static> Backend for stack::SqpollRuntime<N>
where
    N::Frame: Send,
{
    fn closer(&self) -> Option<SocketCloser> {
        Some(self.driver.closer())
    }
    fn driver(&mut self) -> &mut dyn Driver {
        &mut self.driver
    }
    fn app(&self) -> &AppRing {
        &self.app
    }
    fn close_socket(&mut self, fd: i32) -> Result<(), Errno> {
        self.driver.close_socket(fd)
    }
    fn set_socket_option(&mut self, fd: i32, level: i32, name: i32, val: i32) -> Result<(), Errno> {
        self.driver.closer().set_option(fd, level, name, val)
    }
    fn shutdown_socket(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        self.driver.closer().shutdown(fd, how)
    }
    fn stats(&mut self) -> EngineStats {
        self.driver.stats()
    }
}

/// An inline engine on `nic`.
pub(crate) fn inline<N: Nic + 'static>(
    nic: N,
    ring: &RingConfig,
    cfg: EngineConfig,
) -> Result<Box<dyn Backend>, OpenError> {
    Ok(Box::new(stack::open(nic, ring, cfg, Clock::monotonic())?))
}

/// An engine on its own thread on `nic` (`IORING_SETUP_SQPOLL`).
pub(crate) fn sqpoll<N: Nic + Send + 'static>(
    nic: N,
    ring: &RingConfig,
    cfg: EngineConfig,
    sq: &SqpollConfig,
) -> Result<Box<dyn Backend>, OpenError>
where
    N::Frame: Send,
{
    Ok(Box::new(stack::open_sqpoll(
        nic,
        ring,
        cfg,
        sq,
        Clock::monotonic(),
    )?))
}
