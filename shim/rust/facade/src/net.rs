//! `std::net` for the sandbox: the real module, except `TcpStream` and `ToSocketAddrs`, whose connections
//! and name lookups go to the host (import table in ffi.rs, contract in shim/host/abi.py, policy in
//! shim/host/net.py). WASI preview 1 has no sockets of its own.
//!
//! A local item shadows the glob import, so `IpAddr`, `SocketAddr`, `Shutdown`, `AddrParseError`, ... are
//! the real std's, and `TcpStream`/`ToSocketAddrs` are ours. The host connects only to the crate's
//! granted `network-access` routes and looks up only names those routes name; a refusal is
//! `io::ErrorKind::PermissionDenied` with a message that starts with `cratecage:` and holds the policy
//! entry that would permit it.
//!
//! Sandbox differences, each the nearest thing std's documentation allows:
//! - `TcpListener` and `UdpSocket` stay the real std's, which fail with `Unsupported` on wasm32-wasip1:
//!   a build script may not listen or send datagrams. Since they take the real `ToSocketAddrs`, generic
//!   code that passes its own `A: std::net::ToSocketAddrs` to them does not compile (their calls would
//!   fail anyway); passing a string or an address works, and fails at run time.
//! - `TcpStream::local_addr` is the unspecified address of the peer's family with port 0: the host's own
//!   addresses are not the build script's business.
//! - Timeouts are rounded up to whole milliseconds, and no call outlives the run's time limit. A read or
//!   write timeout fails with `WouldBlock`, as std on Linux reports it; a connect timeout with `TimedOut`.
//! - There are no file descriptors: `AsRawFd`/`AsFd` and the conversions from them are not provided.

pub use real::net::*;

mod addr;
mod tcp;

pub use self::addr::ToSocketAddrs;
pub use self::tcp::TcpStream;
