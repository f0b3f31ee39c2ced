"""The host side of the network ABI: the TCP connections a sandboxed `std::net::TcpStream` reaches.

WASI preview 1 has no sockets (notes/wasmtime-py.md §8), so the std facade's `net` module
(shim/rust/facade/src/net.rs) sends every `TcpStream` call and every name lookup to the imports of
`abi.NET_IMPORTS`; `define` registers them. Sockets are plain Python sockets, known to the guest as small
integer handles in a `NetTable`, one table per run. Policy:

  - a connection goes only where the crate's grant permits (`network-access`, routes "host:port", port
    may be "*"). A route naming an IP address admits that address; a route naming a host admits the
    addresses that name resolves to during the run (looked up when the guest resolves it, or at connect
    time). So `localhost:5432` and `127.0.0.1:5432` are different grants, and a granted name admits no
    address it does not resolve to. Anything else is a "network-access" denial naming `address:port`
    with the entry that would permit it, and E_DENIED for the guest;
  - a name lookup is a DNS query the host makes for the guest, so it is refused like a connection: only a
    name some granted route names for that port is looked up; any other name is denied without a query.
    IP addresses are never looked up (the facade parses them itself);
  - warn mode refuses too: it lets build scripts read any file, so letting them connect anywhere as well
    would hand them everything a native run has (the denial still carries the entry to paste);
  - every blocking call (lookup, connect, read, write) waits at most until `ctx.deadline`, the run's time
    limit, since epochs interrupt wasm code only, never a host call; the guest's own timeouts apply within
    that. At most MAX_SOCKETS open sockets per run, at most MAX_IO bytes per read or write;
  - `close_all` closes every socket when the run ends, whatever the guest left open (shim.build.run calls it
    after the guest finished, trapped or was stopped).

Listening and UDP are not offered: `TcpListener` and `UdpSocket` stay real std's, which fail with
Unsupported on wasm32-wasip1. Each permitted connection is a `runctx.Connection` in `ctx.connections`, for
the audit trail. Like every host function, these never raise into wasmtime (host_process explains why).
"""

from __future__ import annotations

import errno
import ipaddress
import math
import threading
import time
from typing import TYPE_CHECKING, Callable, Collection, Final, Mapping, NoReturn

import wasmtime

from shim.host import abi
from shim.host.context import Connection, RunContext
from shim.host.process import GuestMemory, HostCallError, ProcessTable, define_imports, guarded
from shim.record import record

if TYPE_CHECKING:  # socket is imported by the first call that needs it: most runs open none (~3 ms a run)
    import socket

if False:  # typing only: the policy package is imported only when a policy applies
    from shim.policy import Grant

MAX_SOCKETS: Final = 64  # open sockets per run
MAX_HANDLES: Final = 256  # live handles per run (try_clone shares a socket)
MAX_IO: Final = 64 << 10  # bytes per read or write call
MAX_ADDRESSES: Final = 32  # addresses one lookup answers
MAX_NAME: Final = 253  # bytes of a host name (DNS's limit)
CAPABILITY: Final = "network-access"
CONNECT_REASON: Final = "no granted route reaches this address"
RESOLVE_REASON: Final = "no granted route names this host, so it was not looked up"
_U32: Final = 0xFFFFFFFF

# errno of a failed socket call -> the ABI code the guest turns into io::ErrorKind.
ERRNO_CODES: Final[dict[int, int]] = {
    errno.ECONNREFUSED: abi.E_REFUSED,
    errno.ECONNRESET: abi.E_RESET,
    errno.ECONNABORTED: abi.E_ABORTED,
    errno.ENOTCONN: abi.E_NOT_CONNECTED,
    errno.EPIPE: abi.E_BROKEN_PIPE,
    errno.EADDRNOTAVAIL: abi.E_ADDR_NOT_AVAILABLE,
    errno.ETIMEDOUT: abi.E_TIMED_OUT,
    errno.EAGAIN: abi.E_WOULD_BLOCK,
}
# SHUT_* -> the name of socket's constant for that direction.
SHUTDOWN: Final[dict[int, str]] = {abi.SHUT_READ: "SHUT_RD", abi.SHUT_WRITE: "SHUT_WR", abi.SHUT_BOTH: "SHUT_RDWR"}

Resolver = Callable[[str, int], list[str]]


def lookup(name: str, port: int) -> list[str]:
    """The addresses `name` resolves to for a TCP connection, in the resolver's order, without repeats."""
    import socket

    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def route_text(host: str, port: int) -> str:
    from shim.policy.capabilities import format_route

    return format_route(host, str(port))


def _denied(grant: Grant, host: str, port: int) -> bool:
    """Whether a deny item of the grant matches host:port (deny wins, also over a name that resolved here)."""
    from shim.policy.capabilities import ROUTE

    request = route_text(host, port)
    return "network-access" in grant.denied_all or any(
        ROUTE.matches(item, request) for item in grant.denies.get("network-access.routes", ()))


def granted_names(grant: Grant, port: int) -> list[str]:
    """Host names (not addresses) of the granted routes that include `port`."""
    from shim.policy.capabilities import parse_route

    names = []
    for route in grant.routes:
        host, granted_port = parse_route(route)
        if not is_ip(host) and granted_port in ("*", str(port)) and grant.allows_route(host, port):
            names.append(host)
    return names


def admitting_route(grant: Grant, ip: str, port: int, resolved: Mapping[str, Collection[str]]) -> str | None:
    """The route ("host:port") that admits a connection to ip:port, or None: the address itself when it is
    granted, else a granted name that resolved to it (`resolved`: this run's lookups)."""
    if _denied(grant, ip, port):
        return None
    if grant.allows_route(ip, port):
        return route_text(ip, port)
    for name, addresses in resolved.items():
        if ip in addresses and grant.allows_route(name, port):
            return route_text(name, port)
    return None


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(1, math.ceil(seconds * 1000))


def _seconds(ms: int) -> float | None:
    if ms < 0:
        raise HostCallError(abi.E_INVALID, "cratecage: a timeout cannot be negative")
    return ms / 1000 if ms else None


@record
class Socket:
    """One open connection; `handles` counts the guest's handles to it (try_clone adds one)."""

    sock: socket.socket
    peer: tuple[str, int]
    read_timeout: float | None = None
    write_timeout: float | None = None
    nonblocking: bool = False
    handles: int = 1

    def close(self) -> None:
        try:
            self.sock.shutdown(_socket_constant("SHUT_RDWR"))  # wakes a call blocked on it in another thread
        except OSError:
            pass
        self.sock.close()


def _socket_constant(name: str) -> int:
    """socket's constant `name`, imported at the first use."""
    import socket

    return getattr(socket, name)


def _sockopt(level: str, name: str) -> tuple[Callable[[Socket], int], Callable[[Socket, int], None]]:
    """Get and set of socket option `name` at `level`, both named as socket's constants."""
    return (lambda s: s.sock.getsockopt(_socket_constant(level), _socket_constant(name)),
            lambda s, value: s.sock.setsockopt(_socket_constant(level), _socket_constant(name), value))


# OPT_* -> (get, set): what `net_get_option`/`net_set_option` read and change.
OPTIONS: Final[dict[int, tuple[Callable[[Socket], int], Callable[[Socket, int], None]]]] = {
    abi.OPT_READ_TIMEOUT: (lambda s: _ms(s.read_timeout), lambda s, v: setattr(s, "read_timeout", _seconds(v))),
    abi.OPT_WRITE_TIMEOUT: (lambda s: _ms(s.write_timeout), lambda s, v: setattr(s, "write_timeout", _seconds(v))),
    abi.OPT_NODELAY: _sockopt("IPPROTO_TCP", "TCP_NODELAY"),
    abi.OPT_TTL: _sockopt("IPPROTO_IP", "IP_TTL"),
    abi.OPT_NONBLOCKING: (lambda s: int(s.nonblocking), lambda s, v: setattr(s, "nonblocking", bool(v))),
}


class NetTable:
    """The sockets and name lookups of one run. Methods named `abi_<import>` are the host functions;
    `define` wraps each so that nothing raises into wasmtime."""

    def __init__(self, ctx: RunContext, resolver: Resolver = lookup) -> None:
        self.ctx = ctx
        self.resolver = resolver
        self.handles: dict[int, Socket] = {}
        self.resolved: dict[str, frozenset[str]] = {}  # name -> addresses, this run's lookups
        self._next_handle = 1

    # -- the imports ---------------------------------------------------------------------------------------

    def abi_net_resolve(self, mem: GuestMemory, name: int, name_len: int, port: int, out: int, cap: int) -> int:
        if name_len & _U32 > MAX_NAME:
            raise HostCallError(abi.E_INVALID, "cratecage: host name too long")
        records = b"".join(abi.encode_addr(ip, port) for ip in self.addresses(mem.read(name, name_len), port))
        room = (cap & _U32) // abi.ADDR_SIZE * abi.ADDR_SIZE
        mem.write(out, records[:room])
        return len(records)

    def abi_net_connect(self, mem: GuestMemory, addr: int, timeout_ms: int) -> int:
        ip, port = self._addr(mem.read(addr, abi.ADDR_SIZE))
        route = self.admit(ip, port)
        if len({id(s) for s in self.handles.values()}) >= MAX_SOCKETS:
            raise HostCallError(abi.E_IO, f"cratecage: more than {MAX_SOCKETS} open sockets")
        import socket

        sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        opened = Socket(sock, (ip, port))
        try:
            self._io(opened, _seconds(timeout_ms), lambda: sock.connect((ip, port)), abi.E_TIMED_OUT, "connect")
        except BaseException:
            sock.close()
            raise
        self.ctx.connections.append(Connection(route, route_text(ip, port)))
        return self._add(opened)

    def abi_net_read(self, mem: GuestMemory, handle: int, buf: int, cap: int, peek: int) -> int:
        s = self._socket(handle)
        size = min(cap & _U32, MAX_IO)
        mem.check(buf, size)
        if size == 0:
            return 0
        data = self._io(s, s.read_timeout, lambda: s.sock.recv(size, _socket_constant("MSG_PEEK") if peek else 0),
                        abi.E_WOULD_BLOCK, "read")
        mem.write(buf, data)
        return len(data)

    def abi_net_write(self, mem: GuestMemory, handle: int, buf: int, length: int) -> int:
        s = self._socket(handle)
        data = mem.read(buf, min(length & _U32, MAX_IO))
        if not data:
            return 0
        return int(self._io(s, s.write_timeout, lambda: s.sock.send(data), abi.E_WOULD_BLOCK, "write"))

    def abi_net_shutdown(self, mem: GuestMemory, handle: int, how: int) -> int:
        s = self._socket(handle)
        if how not in SHUTDOWN:
            raise HostCallError(abi.E_INVALID, f"cratecage: unknown shutdown direction {how}")
        self._io(s, None, lambda: s.sock.shutdown(_socket_constant(SHUTDOWN[how])), abi.E_IO, "shutdown")
        return 0

    def abi_net_set_option(self, mem: GuestMemory, handle: int, option: int, value: int) -> int:
        s = self._socket(handle)
        _get, put = self._option(option)
        self._io(s, None, lambda: put(s, value), abi.E_IO, "set option")
        return 0

    def abi_net_get_option(self, mem: GuestMemory, handle: int, option: int) -> int:
        s = self._socket(handle)
        get, _put = self._option(option)
        return int(self._io(s, None, lambda: get(s), abi.E_IO, "get option"))

    def abi_net_addr(self, mem: GuestMemory, handle: int, which: int, out: int) -> int:
        s = self._socket(handle)
        if which == abi.NET_PEER:
            mem.write(out, abi.encode_addr(*s.peer))
        elif which == abi.NET_LOCAL:  # never the host's own address
            mem.write(out, abi.encode_addr("::" if ":" in s.peer[0] else "0.0.0.0", 0))
        else:
            raise HostCallError(abi.E_INVALID, f"cratecage: unknown address kind {which}")
        return 0

    def abi_net_clone(self, mem: GuestMemory, handle: int) -> int:
        s = self._socket(handle)
        new = self._add(s)
        s.handles += 1
        return new

    def abi_net_close(self, mem: GuestMemory, handle: int) -> int:
        s = self._socket(handle)
        del self.handles[handle]
        s.handles -= 1
        if s.handles == 0:
            s.close()
        return 0

    # -- the run ends --------------------------------------------------------------------------------------

    def close_all(self) -> None:
        """Close every socket the guest left open (after the run: it may have trapped or leaked them)."""
        sockets = {id(s): s for s in self.handles.values()}
        self.handles.clear()
        for s in sockets.values():
            s.close()

    # -- policy --------------------------------------------------------------------------------------------

    def addresses(self, name: bytes, port: int) -> Collection[str]:
        """The addresses a host name the guest asked about resolves to; a name no granted route names is
        refused (a denial, E_DENIED) before any lookup. An IP address is its own answer."""
        literal = name.decode("ascii", "replace")
        if is_ip(literal) and 0 <= port <= 0xFFFF:  # the facade parses these itself; answered all the same
            return [literal]
        host = self._host_name(name, port)
        if not (self.ctx.grant is not None and self.ctx.grant.allows_route(host, port)):
            self._refuse(route_text(host, port), RESOLVE_REASON)
        return self._lookup(host, port)

    def admit(self, ip: str, port: int) -> str:
        """The granted route a connection to ip:port uses; refuses (a denial, E_DENIED) when there is none."""
        grant = self.ctx.grant
        if grant is not None:
            route = admitting_route(grant, ip, port, self.resolved)
            if route is None and not _denied(grant, ip, port):
                for name in granted_names(grant, port):
                    if name not in self.resolved:
                        try:
                            self._lookup(name, port)
                        except HostCallError:
                            self.resolved[name] = frozenset()  # unresolvable: admits nothing this run
                route = admitting_route(grant, ip, port, self.resolved)
            if route is not None:
                return route
        return self._refuse(route_text(ip, port), CONNECT_REASON)

    def _refuse(self, target: str, reason: str) -> NoReturn:
        """A "network-access" denial with the entry that would permit `target`; the guest gets E_DENIED (in
        warn mode too: see the module docstring)."""
        from shim.policy import suggest_entry

        denial = self.ctx.deny(CAPABILITY, target, reason,
                               suggest_entry(self.ctx.kind, self.ctx.crate, CAPABILITY, target))
        raise HostCallError(abi.E_DENIED, denial.render(self.ctx.crate, self.ctx.version))

    def _lookup(self, name: str, port: int) -> frozenset[str]:
        """The addresses of a granted name, looked up once per run, and never past the run's deadline (in a
        thread of its own, since getaddrinfo takes no timeout)."""
        if name in self.resolved:
            return self.resolved[name]
        answer: list[object] = []

        def work() -> None:
            try:
                answer.append([ip for ip in self.resolver(name, port) if is_ip(ip)][:MAX_ADDRESSES])
            except OSError as err:
                answer.append(err)

        worker = threading.Thread(target=work, name="cratecage-lookup", daemon=True)
        worker.start()
        worker.join(self._budget(None))
        if not answer:
            raise HostCallError(abi.E_TIMED_OUT, f"cratecage: looking up {name} took past the run's time limit")
        if isinstance(answer[0], OSError):
            raise HostCallError(abi.E_IO, f"cratecage: could not look up {name}: {answer[0]}")
        self.resolved[name] = frozenset(answer[0])  # type: ignore[arg-type]
        return self.resolved[name]

    # -- sockets -------------------------------------------------------------------------------------------

    def _budget(self, wanted: float | None) -> float | None:
        """How long a blocking call may wait: the guest's timeout, capped at the time left in the run."""
        left = self.ctx.deadline - time.monotonic()
        if left <= 0:
            raise HostCallError(abi.E_TIMED_OUT, "cratecage: the build script's time limit is reached")
        if math.isinf(left):
            return wanted
        return left if wanted is None else min(wanted, left)

    def _io(self, s: Socket, wanted: float | None, op: Callable[[], object], timeout_code: int, what: str):  # type: ignore[no-untyped-def]
        """Run one socket call within the budget; every failure becomes an ABI error."""
        budget = self._budget(wanted)
        s.sock.settimeout(0.0 if s.nonblocking else budget)
        try:
            return op()
        except TimeoutError:  # socket.timeout
            if wanted is not None and budget == wanted:
                raise HostCallError(timeout_code, f"cratecage: {what} timed out") from None
            raise HostCallError(abi.E_TIMED_OUT, f"cratecage: {what} was stopped at the build script's time "
                                                 "limit (CRATECAGE_LIMIT_TIME)") from None
        except BlockingIOError:
            raise HostCallError(abi.E_WOULD_BLOCK, f"cratecage: {what} would block") from None
        except OSError as err:
            code = ERRNO_CODES.get(err.errno or 0, abi.E_IO)
            raise HostCallError(code, f"cratecage: {what} failed: {err.strerror or err}") from None

    def _add(self, s: Socket) -> int:
        if len(self.handles) >= MAX_HANDLES:
            raise HostCallError(abi.E_IO, f"cratecage: more than {MAX_HANDLES} live socket handles")
        handle = self._next_handle
        self._next_handle += 1
        self.handles[handle] = s
        return handle

    def _socket(self, handle: int) -> Socket:
        s = self.handles.get(handle)
        if s is None:
            raise HostCallError(abi.E_INVALID, f"cratecage: no socket with handle {handle}")
        return s

    @staticmethod
    def _option(option: int) -> tuple[Callable[[Socket], int], Callable[[Socket, int], None]]:
        if option not in OPTIONS:
            raise HostCallError(abi.E_INVALID, f"cratecage: unknown socket option {option}")
        return OPTIONS[option]

    @staticmethod
    def _addr(raw: bytes) -> tuple[str, int]:
        try:
            return abi.decode_addr(raw)
        except abi.AddrError as err:
            raise HostCallError(abi.E_INVALID, f"cratecage: malformed socket address: {err}") from None

    @staticmethod
    def _host_name(raw: bytes, port: int) -> str:
        """The canonical host name the guest asked to look up (shim.policy.capabilities.parse_route's form)."""
        from shim.policy.capabilities import parse_route

        try:
            host, _port = parse_route(f"{raw.decode('ascii')}:{port}")
        except (UnicodeDecodeError, ValueError):
            raise HostCallError(abi.E_INVALID, "cratecage: not a host name and port a route can name: "
                                               f"{raw.decode('utf-8', 'replace')!r}:{port}") from None
        return host


def define(linker: wasmtime.Linker, ctx: RunContext, processes: ProcessTable) -> NetTable:
    """Define the imports of `abi.NET_IMPORTS` in `linker` for one run; failures explain themselves through
    `processes`' last_error. Returns the run's table (the runner closes its sockets when the run ends)."""
    table = NetTable(ctx)
    define_imports(linker, abi.NET_IMPORTS, lambda name: guarded(processes, name, table))
    return table
