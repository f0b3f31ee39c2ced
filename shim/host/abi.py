"""The host side of the guest/host ABI: one table, mirrored by the std facade's `ffi` module.

Sandboxed code reaches capabilities wasm32-wasip1 lacks (processes, TCP connections), and reports what it was
refused, through functions the host defines under one versioned import module, `IMPORT_MODULE`. The guest
declares the same names in `shim/rust/facade/src/ffi.rs` with `#[link(wasm_import_module = "cratecage-1")]`;
change both together and bump the version when a signature changes. Every parameter and result is an i32;
pointers and lengths refer to the guest's exported `memory`.

    name            params                                  result
    last_error      (buf, cap)                              full length of the last failure's message
    temp_dir        (buf, cap)                              full length of the per-run temp dir path
    spawn           (req, req_len)                          handle > 0, or an error code < 0
    stdin_write     (handle, buf, len)                      bytes written, or error < 0
    stdin_close     (handle)                                0, or error < 0
    read            (handle, stream, buf, cap)              bytes read (0 = end), or error < 0
    wait            (handle, status_out)                    0, or error < 0; writes STATUS_SIZE bytes
    try_wait        (handle, status_out)                    1 exited, 0 running, or error < 0
    kill            (handle)                                0, or error < 0
    release         (handle)                                0 (the guest dropped its last use)
    report          (kind, buf, len)                        0, REPORT_STOP (no more, please), or error < 0
    net_resolve     (name, name_len, port, out, cap)        full length of the ADDR_SIZE records, or error < 0
    net_connect     (addr, timeout_ms)                      socket handle > 0, or error < 0 (0 ms: no timeout)
    net_read        (handle, buf, cap, peek)                bytes read (0 = end), or error < 0
    net_write       (handle, buf, len)                      bytes written, or error < 0
    net_shutdown    (handle, how)                           0, or error < 0; how is SHUT_READ/WRITE/BOTH
    net_set_option  (handle, option, value)                 0, or error < 0; option is one of OPT_*
    net_get_option  (handle, option)                        the value (>= 0), or error < 0
    net_addr        (handle, which, out)                    0, or error < 0; writes ADDR_SIZE bytes
    net_clone       (handle)                                a new handle to the same socket, or error < 0
    net_close       (handle)                                0 (the guest dropped that handle)
    file_mode       (path, path_len, follow)                the permission bits (>= 0), or error < 0
    chmod           (path, path_len, mode)                  0, or error < 0 (E_DENIED: not the run's to change)

shim.host.process defines the process functions (`IMPORTS`), shim.host.observe defines `report`
(`OBSERVE_IMPORTS`), shim.host.net the sockets (`NET_IMPORTS`), shim.host.files the permission bits WASI lacks (`FILE_IMPORTS`:
absolute paths, resolved through the run's preopens); `ALL_IMPORTS` is the whole table. Adding imports keeps
the version: a module built before them imports a subset the host still defines.

A function that writes a string copies at most `cap` bytes and returns the full length, so the guest can
call again with a larger buffer. Errors set the message `last_error` returns.

Spawn requests are a sequence of records `[tag: u8][len: u32 little-endian][len bytes]` (`encode_request`,
`decode_request`); every stdio mode is sent explicitly, the facade having applied std's defaults (spawn and
status inherit; output pipes stdout and stderr and nulls stdin). The exit status written by wait/try_wait
is two little-endian i32s: kind (STATUS_EXITED or STATUS_SIGNALED) and the code or signal number.

Reports are observations, not requests: wasi-libc resolves paths against the preopens inside the guest, so
the host never sees a failed open, and it cannot see which environment variables the guest looked up. The
facade (src/observe.rs) wraps the libc functions behind `std::fs`, `std::env::var*` and C's stdio at link
time and reports each failure; the preopens still enforce, and the runner turns reports into denials with
the policy. `len` bytes at `buf` are the payload of a report of `kind`:

    REPORT_FS   op \0 path \0 error     a file system access that failed with an error a grant could
                                         change. op is one of FS_OPS ("read": open for reading, readlink;
                                         "write": open for writing/creating/truncating/appending, mkdir,
                                         unlink, rmdir, rename, symlink; "stat": the stat family, access,
                                         realpath; "list": opendir). path is absolute and lexically
                                         normalized by the guest (the host normalizes again). error is an
                                         errno name (REPORTED_ERRNOS) or a decimal number.
    REPORT_ENV  name                     an environment lookup (getenv) that found nothing.
    REPORT_ENV_FOUND  name               an environment lookup that found a value (warn mode only).

In warn mode (the policy's `mode = "warn"`) the runner widens reads and the environment and needs to learn
what the script used, not only what failed: it sets `OBSERVE_ENV=OBSERVE_ALL` in the guest's environment,
which the facade reads once (with the unwrapped getenv), and from then on the facade also reports each
*successful* read, stat, listing and lookup: REPORT_FS with the error field `ACCESS_OK`, and
REPORT_ENV_FOUND. Successful writes are never reported (only OUT_DIR, the temp dir and writable grants can
succeed). In enforce mode the variable is absent and the facade's cost is one flag test per call.

The host records each distinct report once and at most a fixed number per run, after which it answers
REPORT_STOP and the guest stops reporting. Strings are UTF-8 where they can be; other bytes survive as
surrogate escapes (os.fsdecode's convention). A malformed report gets E_INVALID and is ignored.

Socket addresses cross as ADDR_SIZE-byte records (`encode_addr`, `decode_addr`):

    [family: u8 (4 or 6)][0: u8][port: u16 little-endian][address: 16 bytes, an IPv4 one in the first 4]

`net_resolve` takes a host name (UTF-8, no port) and writes one record per address it resolves to.
Timeouts and the values of OPT_READ_TIMEOUT/OPT_WRITE_TIMEOUT are milliseconds, 0 meaning none.
`net_addr` answers NET_PEER (the address connected to) or NET_LOCAL (the unspecified address of the
same family, port 0: the host's own addresses are not the guest's business).
"""

from __future__ import annotations

import ipaddress
import struct

from shim.host.context import Observation
from shim.lexical import normal_path
from shim.record import factory, record

IMPORT_MODULE = "cratecage-1"

# name -> (number of i32 params, number of i32 results)
IMPORTS: dict[str, tuple[int, int]] = {
    "last_error": (2, 1),
    "temp_dir": (2, 1),
    "spawn": (2, 1),
    "stdin_write": (3, 1),
    "stdin_close": (1, 1),
    "read": (4, 1),
    "wait": (2, 1),
    "try_wait": (2, 1),
    "kill": (1, 1),
    "release": (1, 1),
}
# The reports of what the guest was refused (shim.host.observe).
OBSERVE_IMPORTS: dict[str, tuple[int, int]] = {
    "report": (3, 1),
}
# TCP connections to granted routes (shim.host.net).
NET_IMPORTS: dict[str, tuple[int, int]] = {
    "net_resolve": (5, 1),
    "net_connect": (2, 1),
    "net_read": (4, 1),
    "net_write": (3, 1),
    "net_shutdown": (2, 1),
    "net_set_option": (3, 1),
    "net_get_option": (2, 1),
    "net_addr": (3, 1),
    "net_clone": (1, 1),
    "net_close": (1, 1),
}
# Permission bits of files the run may read, chmod of files it may write (shim.host.files).
FILE_IMPORTS: dict[str, tuple[int, int]] = {
    "file_mode": (3, 1),
    "chmod": (3, 1),
}
# The whole table, in the order of the facade's ffi.rs.
ALL_IMPORTS: dict[str, tuple[int, int]] = {**IMPORTS, **OBSERVE_IMPORTS, **NET_IMPORTS, **FILE_IMPORTS}

# Error codes (negative results). The guest maps them to io::ErrorKind.
E_DENIED = -1  # PermissionDenied: the policy does not allow it; last_error says what would
E_NOT_FOUND = -2  # NotFound: no such program
E_INVALID = -3  # InvalidInput: malformed request or bad handle
E_IO = -4  # Other: the host failed to do it
E_UNSUPPORTED = -5  # Unsupported
E_TIMED_OUT = -6  # TimedOut: a connect timeout, or the run's time limit
E_WOULD_BLOCK = -7  # WouldBlock: a read or write timeout (as std on Linux reports it), or nonblocking
E_REFUSED = -8  # ConnectionRefused
E_RESET = -9  # ConnectionReset
E_ABORTED = -10  # ConnectionAborted
E_NOT_CONNECTED = -11  # NotConnected
E_BROKEN_PIPE = -12  # BrokenPipe
E_ADDR_NOT_AVAILABLE = -13  # AddrNotAvailable

# Record tags of a spawn request.
TAG_PROGRAM = 1
TAG_ARG = 2
TAG_ENV_SET = 3  # key \0 value
TAG_ENV_REMOVE = 4  # key
TAG_ENV_CLEAR = 5  # empty
TAG_CWD = 6
TAG_STDIN = 7  # one byte: a STDIO_* mode
TAG_STDOUT = 8
TAG_STDERR = 9

STDIO_INHERIT = 0
STDIO_PIPED = 1
STDIO_NULL = 2

STREAM_STDOUT = 1
STREAM_STDERR = 2

STATUS_EXITED = 0
STATUS_SIGNALED = 1
STATUS_SIZE = 8

# Kinds of report, and the result that tells the guest to stop reporting.
REPORT_FS = 1
REPORT_ENV = 2
REPORT_ENV_FOUND = 3
REPORT_STOP = 1

# Sockets: address records, shutdown directions (std::net::Shutdown's order), options, net_addr's which.
ADDR_SIZE = 20
FAMILY_V4 = 4
FAMILY_V6 = 6
SHUT_READ = 0
SHUT_WRITE = 1
SHUT_BOTH = 2
OPT_READ_TIMEOUT = 1  # milliseconds, 0: none
OPT_WRITE_TIMEOUT = 2  # milliseconds, 0: none
OPT_NODELAY = 3  # 0 or 1
OPT_TTL = 4
OPT_NONBLOCKING = 5  # 0 or 1
NET_PEER = 0
NET_LOCAL = 1

FS_OPS: frozenset[str] = frozenset({"read", "write", "stat", "list"})
# Errors the guest reports: those a grant could change (WASI errno names).
REPORTED_ERRNOS: frozenset[str] = frozenset({"ENOENT", "EACCES", "EPERM", "EROFS", "ENOTCAPABLE"})
# The error field of a REPORT_FS that says the access succeeded (warn mode; runctx.Observation.errno too).
ACCESS_OK = "OK"
# The guest variable that asks the facade to report successes too, and its one value.
OBSERVE_ENV = "CRATECAGE_OBSERVE"
OBSERVE_ALL = "all"
MAX_REPORT = 16 << 10  # bytes; a larger report is malformed


class RequestError(ValueError):
    """A spawn request that does not decode."""


class ReportError(ValueError):
    """A report that does not decode."""


class AddrError(ValueError):
    """A socket address record that does not decode."""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def decode_report(kind: int, data: bytes) -> Observation:
    """The observation a report describes; raises ReportError."""
    if len(data) > MAX_REPORT:
        raise ReportError("report too large")
    if kind in (REPORT_ENV, REPORT_ENV_FOUND):
        if not data or b"\0" in data or b"=" in data:
            raise ReportError("bad variable name")
        return Observation("env", "get", _text(data), ACCESS_OK if kind == REPORT_ENV_FOUND else "")
    if kind != REPORT_FS:
        raise ReportError(f"unknown report kind {kind}")
    parts = data.split(b"\0")
    if len(parts) != 3:
        raise ReportError("a file system report has three fields")
    op, path, error = (_text(p) for p in parts)
    if op not in FS_OPS:
        raise ReportError(f"unknown operation {op!r}")
    if not path.startswith("/"):
        raise ReportError("the path is not absolute")
    if not (error in REPORTED_ERRNOS or error == ACCESS_OK
            or (error.isascii() and error.isdigit() and len(error) <= 5)):
        raise ReportError("bad error")
    return Observation("fs", op, normal_path(path), error)


def encode_report(report: Observation) -> tuple[int, bytes]:
    """The inverse of decode_report (the guest's encoder is the facade's; this one serves tests)."""
    if report.kind == "env":
        return (REPORT_ENV_FOUND if report.succeeded else REPORT_ENV), report.target.encode("utf-8", "surrogateescape")
    raw = "\0".join((report.op, report.target, report.errno))
    return REPORT_FS, raw.encode("utf-8", "surrogateescape")


@record
class SpawnRequest:
    """What the guest asked `Command` to run, after std's defaults were applied by the facade."""

    program: str = ""
    args: list[str] = factory(list)
    # Environment edits in order: ("set", k, v), ("remove", k, None), ("clear", None, None).
    env_ops: list[tuple[str, str | None, str | None]] = factory(list)
    cwd: str | None = None
    stdin: int = STDIO_INHERIT
    stdout: int = STDIO_INHERIT
    stderr: int = STDIO_INHERIT

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """The child's environment if it started from `base` (the guest's own environment)."""
        env = dict(base)
        for op, key, value in self.env_ops:
            if op == "clear":
                env.clear()
            elif op == "remove":
                env.pop(key or "", None)
            else:
                env[key or ""] = value or ""
        return env


def decode_request(data: bytes) -> SpawnRequest:
    req = SpawnRequest()
    seen_program = False
    pos = 0
    while pos < len(data):
        if pos + 5 > len(data):
            raise RequestError("truncated record header")
        tag, length = struct.unpack_from("<BI", data, pos)
        pos += 5
        if pos + length > len(data):
            raise RequestError("truncated record")
        raw = data[pos:pos + length]
        pos += length
        if tag in (TAG_STDIN, TAG_STDOUT, TAG_STDERR):
            if length != 1 or raw[0] not in (STDIO_INHERIT, STDIO_PIPED, STDIO_NULL):
                raise RequestError("bad stdio mode")
            setattr(req, {TAG_STDIN: "stdin", TAG_STDOUT: "stdout", TAG_STDERR: "stderr"}[tag], raw[0])
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("a spawn request string is not UTF-8") from None
        if tag == TAG_PROGRAM:
            req.program, seen_program = text, True
        elif tag == TAG_ARG:
            req.args.append(text)
        elif tag == TAG_ENV_SET:
            key, sep, value = text.partition("\0")
            if not sep or not key or "=" in key:
                raise RequestError("bad environment variable")
            req.env_ops.append(("set", key, value))
        elif tag == TAG_ENV_REMOVE:
            req.env_ops.append(("remove", text, None))
        elif tag == TAG_ENV_CLEAR:
            req.env_ops.append(("clear", None, None))
        elif tag == TAG_CWD:
            req.cwd = text
        else:
            raise RequestError(f"unknown record tag {tag}")
    if not seen_program or not req.program:
        raise RequestError("no program")
    return req


def encode_request(req: SpawnRequest) -> bytes:
    """The inverse of decode_request (the guest's encoder is the facade's; this one serves tests)."""
    out = bytearray()

    def rec(tag: int, raw: bytes) -> None:
        out.extend(struct.pack("<BI", tag, len(raw)))
        out.extend(raw)

    rec(TAG_PROGRAM, req.program.encode())
    for a in req.args:
        rec(TAG_ARG, a.encode())
    for op, key, value in req.env_ops:
        if op == "clear":
            rec(TAG_ENV_CLEAR, b"")
        elif op == "remove":
            rec(TAG_ENV_REMOVE, (key or "").encode())
        else:
            rec(TAG_ENV_SET, f"{key}\0{value}".encode())
    if req.cwd is not None:
        rec(TAG_CWD, req.cwd.encode())
    rec(TAG_STDIN, bytes([req.stdin]))
    rec(TAG_STDOUT, bytes([req.stdout]))
    rec(TAG_STDERR, bytes([req.stderr]))
    return bytes(out)


def encode_status(kind: int, value: int) -> bytes:
    return struct.pack("<ii", kind, value)


def encode_addr(ip: str, port: int) -> bytes:
    """The ADDR_SIZE-byte record of an IP address and port."""
    addr = ipaddress.ip_address(ip)
    family = FAMILY_V4 if addr.version == 4 else FAMILY_V6
    return struct.pack("<BBH16s", family, 0, port, addr.packed)


def decode_addr(raw: bytes) -> tuple[str, int]:
    """(IP address text, port) of a record; raises AddrError."""
    if len(raw) != ADDR_SIZE:
        raise AddrError("an address record is 20 bytes")
    family, pad, port, packed = struct.unpack("<BBH16s", raw)
    if pad != 0 or family not in (FAMILY_V4, FAMILY_V6):
        raise AddrError(f"unknown address family {family}")
    if family == FAMILY_V4:
        if any(packed[4:]):
            raise AddrError("an IPv4 address record has bytes after the address")
        return str(ipaddress.IPv4Address(packed[:4])), port
    return str(ipaddress.IPv6Address(packed)), port
