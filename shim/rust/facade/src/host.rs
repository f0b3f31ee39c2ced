//! Safe wrappers over the import table: handles that release themselves, strings fetched with the
//! "copy at most cap, return the full length" convention, socket addresses as the host's records, and
//! error codes turned into `io::Error`s whose message is the host's explanation (it starts with
//! `cratecage:` and names what was refused).

use real::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use real::string::String;
use real::vec::Vec;
use real::io;

use crate::cratecage_ffi as ffi;

/// A child the host knows by a small integer. Dropping the last use tells the host to forget it.
#[derive(Debug)]
pub(crate) struct Handle(i32);

impl Handle {
    pub(crate) fn id(&self) -> i32 {
        self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe { ffi::release(self.0) };
    }
}

/// A string the host hands out: ask once with a guess, again with the full length if it was longer.
fn host_string(call: unsafe extern "C" fn(*mut u8, usize) -> i32) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    loop {
        let cap = buf.capacity();
        let full = unsafe { call(buf.as_mut_ptr(), cap) };
        if full < 0 {
            return None;
        }
        let full = full as usize;
        if full <= cap {
            unsafe { buf.set_len(full) };
            return Some(buf);
        }
        buf.reserve_exact(full);
    }
}

pub(crate) fn temp_dir() -> Option<Vec<u8>> {
    host_string(ffi::temp_dir)
}

fn kind_of(code: i32) -> io::ErrorKind {
    match code {
        ffi::E_DENIED => io::ErrorKind::PermissionDenied,
        ffi::E_NOT_FOUND => io::ErrorKind::NotFound,
        ffi::E_INVALID => io::ErrorKind::InvalidInput,
        ffi::E_UNSUPPORTED => io::ErrorKind::Unsupported,
        ffi::E_TIMED_OUT => io::ErrorKind::TimedOut,
        ffi::E_WOULD_BLOCK => io::ErrorKind::WouldBlock,
        ffi::E_REFUSED => io::ErrorKind::ConnectionRefused,
        ffi::E_RESET => io::ErrorKind::ConnectionReset,
        ffi::E_ABORTED => io::ErrorKind::ConnectionAborted,
        ffi::E_NOT_CONNECTED => io::ErrorKind::NotConnected,
        ffi::E_BROKEN_PIPE => io::ErrorKind::BrokenPipe,
        ffi::E_ADDR_NOT_AVAILABLE => io::ErrorKind::AddrNotAvailable,
        _ => io::ErrorKind::Other,
    }
}

/// A non-negative result as it is; a negative one as the error the host explained in `last_error`.
pub(crate) fn check(rc: i32) -> io::Result<usize> {
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let message = host_string(ffi::last_error)
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| real::format!("cratecage: the host refused the request (code {})", rc));
    Err(io::Error::new(kind_of(rc), message))
}

pub(crate) fn spawn(request: &[u8]) -> io::Result<Handle> {
    let rc = unsafe { ffi::spawn(request.as_ptr(), request.len()) };
    check(rc).map(|id| Handle(id as i32))
}

pub(crate) fn stdin_write(handle: &Handle, buf: &[u8]) -> io::Result<usize> {
    check(unsafe { ffi::stdin_write(handle.0, buf.as_ptr(), buf.len()) })
}

pub(crate) fn stdin_close(handle: &Handle) -> io::Result<()> {
    check(unsafe { ffi::stdin_close(handle.0) }).map(drop)
}

pub(crate) fn read(handle: &Handle, stream: i32, buf: &mut [u8]) -> io::Result<usize> {
    check(unsafe { ffi::read(handle.0, stream, buf.as_mut_ptr(), buf.len()) })
}

/// (kind, value) as the host wrote them.
fn decode_status(raw: &[u8; ffi::STATUS_SIZE]) -> (i32, i32) {
    let kind = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let value = i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    (kind, value)
}

pub(crate) fn wait(handle: &Handle) -> io::Result<(i32, i32)> {
    let mut raw = [0u8; ffi::STATUS_SIZE];
    check(unsafe { ffi::wait(handle.0, raw.as_mut_ptr()) })?;
    Ok(decode_status(&raw))
}

pub(crate) fn try_wait(handle: &Handle) -> io::Result<Option<(i32, i32)>> {
    let mut raw = [0u8; ffi::STATUS_SIZE];
    let exited = check(unsafe { ffi::try_wait(handle.0, raw.as_mut_ptr()) })?;
    Ok(if exited == 1 { Some(decode_status(&raw)) } else { None })
}

pub(crate) fn kill(handle: &Handle) -> io::Result<()> {
    check(unsafe { ffi::kill(handle.0) }).map(drop)
}

// -- sockets ---------------------------------------------------------------------------------------------

/// A connection the host knows by a small integer. Dropping it tells the host to close that handle.
#[derive(Debug)]
pub(crate) struct Socket(i32);

impl Socket {
    pub(crate) fn id(&self) -> i32 {
        self.0
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        unsafe { ffi::net_close(self.0) };
    }
}

type AddrRecord = [u8; ffi::ADDR_SIZE];

/// `[family][0][port: u16 LE][16 address bytes]`, as shim/host/abi.py's `encode_addr`.
fn encode_addr(addr: &SocketAddr) -> AddrRecord {
    let mut raw = [0u8; ffi::ADDR_SIZE];
    raw[2..4].copy_from_slice(&addr.port().to_le_bytes());
    match addr {
        SocketAddr::V4(v4) => {
            raw[0] = ffi::FAMILY_V4;
            raw[4..8].copy_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            raw[0] = ffi::FAMILY_V6;
            raw[4..20].copy_from_slice(&v6.ip().octets());
        }
    }
    raw
}

fn decode_addr(raw: &[u8]) -> io::Result<SocketAddr> {
    let port = u16::from_le_bytes([raw[2], raw[3]]);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&raw[4..20]);
    match raw[0] {
        ffi::FAMILY_V4 => {
            let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        ffi::FAMILY_V6 => Ok(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))),
        _ => Err(io::Error::new(io::ErrorKind::Other, "cratecage: the host sent an unknown address family")),
    }
}

/// The addresses the host resolved `host` to (it refuses names the crate's routes do not name).
pub(crate) fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut raw: Vec<u8> = Vec::with_capacity(8 * ffi::ADDR_SIZE);
    loop {
        let cap = raw.capacity();
        let full = check(unsafe { ffi::net_resolve(host.as_ptr(), host.len(), port as i32, raw.as_mut_ptr(), cap) })?;
        if full <= cap {
            unsafe { raw.set_len(full) };
            return raw.chunks_exact(ffi::ADDR_SIZE).map(decode_addr).collect();
        }
        raw.reserve_exact(full);
    }
}

pub(crate) fn connect(addr: &SocketAddr, timeout_ms: i32) -> io::Result<Socket> {
    let raw = encode_addr(addr);
    check(unsafe { ffi::net_connect(raw.as_ptr(), timeout_ms) }).map(|id| Socket(id as i32))
}

pub(crate) fn net_read(socket: &Socket, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    check(unsafe { ffi::net_read(socket.0, buf.as_mut_ptr(), buf.len(), peek as i32) })
}

pub(crate) fn net_write(socket: &Socket, buf: &[u8]) -> io::Result<usize> {
    check(unsafe { ffi::net_write(socket.0, buf.as_ptr(), buf.len()) })
}

pub(crate) fn shutdown(socket: &Socket, how: i32) -> io::Result<()> {
    check(unsafe { ffi::net_shutdown(socket.0, how) }).map(drop)
}

pub(crate) fn set_option(socket: &Socket, option: i32, value: i32) -> io::Result<()> {
    check(unsafe { ffi::net_set_option(socket.0, option, value) }).map(drop)
}

pub(crate) fn get_option(socket: &Socket, option: i32) -> io::Result<i32> {
    check(unsafe { ffi::net_get_option(socket.0, option) }).map(|value| value as i32)
}

pub(crate) fn socket_addr(socket: &Socket, which: i32) -> io::Result<SocketAddr> {
    let mut raw = [0u8; ffi::ADDR_SIZE];
    check(unsafe { ffi::net_addr(socket.0, which, raw.as_mut_ptr()) })?;
    decode_addr(&raw)
}

pub(crate) fn clone_socket(socket: &Socket) -> io::Result<Socket> {
    check(unsafe { ffi::net_clone(socket.0) }).map(|id| Socket(id as i32))
}
