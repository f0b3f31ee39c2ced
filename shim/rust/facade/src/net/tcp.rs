//! `TcpStream`: std's API over a host socket handle (shim/host/net.py decides and does the I/O). Clones
//! share the host socket, as dup'ed descriptors do: options and timeouts apply to all of them, and the
//! socket closes when the last one is dropped.

use core::fmt;
use core::time::Duration;
use real::io::{self, Read, Write};
use real::net::{Shutdown, SocketAddr};

use super::addr::ToSocketAddrs;
use crate::cratecage_ffi as ffi;
use crate::cratecage_host::{self as host, Socket};

pub struct TcpStream {
    socket: Socket,
}

fn zero_timeout() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout")
}

/// Whole milliseconds, rounded up, at most i32::MAX; 0 is "no timeout" to the host.
fn millis(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => 0,
        Some(d) => {
            let ms = d.as_micros().div_ceil(1000);
            ms.clamp(1, i32::MAX as u128) as i32
        }
    }
}

impl TcpStream {
    /// Tries each address in turn, as std does; the last failure is the error.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match host::connect(&addr, 0) {
                Ok(socket) => return Ok(TcpStream { socket }),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")
        }))
    }

    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(zero_timeout());
        }
        host::connect(addr, millis(Some(timeout))).map(|socket| TcpStream { socket })
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        host::socket_addr(&self.socket, ffi::NET_PEER)
    }

    /// The unspecified address of the peer's family, port 0 (see the module documentation).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        host::socket_addr(&self.socket, ffi::NET_LOCAL)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => ffi::SHUT_READ,
            Shutdown::Write => ffi::SHUT_WRITE,
            Shutdown::Both => ffi::SHUT_BOTH,
        };
        host::shutdown(&self.socket, how)
    }

    pub fn try_clone(&self) -> io::Result<TcpStream> {
        host::clone_socket(&self.socket).map(|socket| TcpStream { socket })
    }

    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.set_timeout(ffi::OPT_READ_TIMEOUT, dur)
    }

    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.set_timeout(ffi::OPT_WRITE_TIMEOUT, dur)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.timeout(ffi::OPT_READ_TIMEOUT)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.timeout(ffi::OPT_WRITE_TIMEOUT)
    }

    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        host::net_read(&self.socket, buf, true)
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        host::set_option(&self.socket, ffi::OPT_NODELAY, nodelay as i32)
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        host::get_option(&self.socket, ffi::OPT_NODELAY).map(|value| value != 0)
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = i32::try_from(ttl).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TTL"))?;
        host::set_option(&self.socket, ffi::OPT_TTL, ttl)
    }

    pub fn ttl(&self) -> io::Result<u32> {
        host::get_option(&self.socket, ffi::OPT_TTL).map(|value| value as u32)
    }

    /// Errors are reported by the call that met them; there is never a pending one.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        host::set_option(&self.socket, ffi::OPT_NONBLOCKING, nonblocking as i32)
    }

    fn set_timeout(&self, option: i32, dur: Option<Duration>) -> io::Result<()> {
        if dur.is_some_and(|d| d.is_zero()) {
            return Err(zero_timeout());
        }
        host::set_option(&self.socket, option, millis(dur))
    }

    fn timeout(&self, option: i32) -> io::Result<Option<Duration>> {
        let ms = host::get_option(&self.socket, option)?;
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        host::net_read(&self.socket, buf, false)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        host::net_write(&self.socket, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("TcpStream");
        if let Ok(peer) = self.peer_addr() {
            out.field("peer", &peer);
        }
        out.field("handle", &self.socket.id()).finish()
    }
}
