"""A seccomp filter for confined children: TCP sockets only (UDP with routes), no other syscall ABI.

Landlock (shim.landlock) decides which files a granted program reads and which TCP ports it reaches, but
connecting to an existing Unix socket by path is not a file access it governs (a compiler made to load a
build script's plugin could talk to /var/run/docker.sock or an ssh agent), and it does not restrict UDP,
raw or netlink sockets at all. So the launcher (shim.landlock_exec) also installs this filter, after
Landlock and before exec:

  - socket() succeeds only for AF_INET/AF_INET6 stream sockets, whose connects Landlock limits to the
    crate's route ports, and datagram sockets when the crate has routes (name resolution); anything else
    (AF_UNIX, netlink, packet, raw) fails with EACCES. socketpair, which connects nothing outside, is
    allowed; glibc's nscd lookups fall back to files when their socket fails;
  - a syscall made through another ABI (i386's int 0x80, with its socketcall; x32 numbers) kills the
    process, so the socket check cannot be sidestepped.

Classic BPF through prctl(PR_SET_SECCOMP), with ctypes; it needs PR_SET_NO_NEW_PRIVS, which
landlock.restrict has set. Only x86_64 and aarch64 are known; elsewhere `deny_unix_sockets` raises.
"""

from __future__ import annotations

import ctypes
import platform
import struct
from typing import Final

_PR_SET_SECCOMP: Final = 22
_SECCOMP_MODE_FILTER: Final = 2
_RET_KILL_PROCESS: Final = 0x80000000
_RET_ERRNO: Final = 0x00050000
_RET_ALLOW: Final = 0x7FFF0000
_EACCES: Final = 13
_AF_INET, _AF_INET6, _SOCK_STREAM, _SOCK_DGRAM = 2, 10, 1, 2
_LD_ABS_W, _JEQ_K, _JGE_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x54, 0x06
_X32_SYSCALL_BIT: Final = 0x40000000
# machine -> (AUDIT_ARCH_*, __NR_socket, whether the x32 bit must be refused)
_ARCHES: Final = {"x86_64": (0xC000003E, 41, True), "amd64": (0xC000003E, 41, True),
                  "aarch64": (0xC00000B7, 198, False), "arm64": (0xC00000B7, 198, False)}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(machine: str | None = None, *, udp: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for `machine` (default: this one). Jump offsets count
    from the next instruction; DENY is 13, ALLOW 14."""
    arch, nr_socket, x32 = _ARCHES[(machine or platform.machine()).lower()]
    return [
        (_LD_ABS_W, 0, 0, 4),                                 # 0: A = seccomp_data.arch
        (_JEQ_K, 1, 0, arch),                                 # 1: our ABI? -> 3
        (_RET_K, 0, 0, _RET_KILL_PROCESS),                    # 2: another ABI: kill
        (_LD_ABS_W, 0, 0, 0),                                 # 3: A = seccomp_data.nr
        (_JGE_K, 8, 0, _X32_SYSCALL_BIT) if x32 else (_JGE_K, 0, 0, 0xFFFFFFFF),  # 4: x32 -> DENY
        (_JEQ_K, 0, 8, nr_socket),                            # 5: socket()? else -> ALLOW
        (_LD_ABS_W, 0, 0, 16),                                # 6: A = args[0] (low half): the domain
        (_JEQ_K, 1, 0, _AF_INET),                             # 7: AF_INET -> 9
        (_JEQ_K, 0, 4, _AF_INET6),                            # 8: AF_INET6 -> 9, else -> DENY
        (_LD_ABS_W, 0, 0, 24),                                # 9: A = args[1] (low half): the type
        (_AND_K, 0, 0, 0xF),                                  # 10: without SOCK_NONBLOCK/CLOEXEC
        (_JEQ_K, 2, 0, _SOCK_STREAM),                         # 11: TCP -> ALLOW (Landlock has its ports)
        (_JEQ_K, 1 if udp else 0, 0, _SOCK_DGRAM),            # 12: UDP -> ALLOW only with routes
        (_RET_K, 0, 0, _RET_ERRNO | _EACCES),                 # 13: DENY
        (_RET_K, 0, 0, _RET_ALLOW),                           # 14: ALLOW
    ]


def restrict_sockets(*, udp: bool = False) -> None:
    """Install the filter on this thread (and what it execs). Raises OSError when it cannot."""
    if platform.machine().lower() not in _ARCHES:
        raise OSError(0, f"seccomp filter: unknown architecture {platform.machine()}")
    insns = program(udp=udp)
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"seccomp filter: prctl(PR_SET_SECCOMP) failed (errno {errno})")
