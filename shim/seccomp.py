"""A seccomp filter for confined children: no Unix-domain sockets, no other syscall ABI.

Landlock (shim.landlock) decides which files a granted program reads and which TCP ports it reaches, but
connecting to an existing Unix socket by path is not a file access it governs: a compiler made to load a
build script's plugin could talk to /var/run/docker.sock or an ssh agent. So the launcher
(shim.landlock_exec) also installs this filter, after Landlock and before exec:

  - socket(AF_UNIX, ...) fails with EACCES (socketpair, which connects nothing outside, is allowed; glibc's
    nscd lookups fall back to files when the socket fails);
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
_AF_UNIX: Final = 1
_LD_ABS_W, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_X32_SYSCALL_BIT: Final = 0x40000000
# machine -> (AUDIT_ARCH_*, __NR_socket, whether the x32 bit must be refused)
_ARCHES: Final = {"x86_64": (0xC000003E, 41, True), "amd64": (0xC000003E, 41, True),
                  "aarch64": (0xC00000B7, 198, False), "arm64": (0xC00000B7, 198, False)}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for `machine` (default: this one)."""
    arch, nr_socket, x32 = _ARCHES[(machine or platform.machine()).lower()]
    return [
        (_LD_ABS_W, 0, 0, 4),                                 # 0: A = seccomp_data.arch
        (_JEQ_K, 1, 0, arch),                                 # 1: our ABI? -> 3
        (_RET_K, 0, 0, _RET_KILL_PROCESS),                    # 2: another ABI: kill
        (_LD_ABS_W, 0, 0, 0),                                 # 3: A = seccomp_data.nr
        (_JGE_K, 3, 0, _X32_SYSCALL_BIT) if x32 else (_JGE_K, 0, 0, 0xFFFFFFFF),  # 4: x32 -> 8
        (_JEQ_K, 0, 3, nr_socket),                            # 5: socket? else -> 9
        (_LD_ABS_W, 0, 0, 16),                                # 6: A = args[0] (low half): the domain
        (_JEQ_K, 0, 1, _AF_UNIX),                             # 7: AF_UNIX? else -> 9
        (_RET_K, 0, 0, _RET_ERRNO | _EACCES),                 # 8: refuse
        (_RET_K, 0, 0, _RET_ALLOW),                           # 9: allow
    ]


def deny_unix_sockets() -> None:
    """Install the filter on this thread (and what it execs). Raises OSError when it cannot."""
    if platform.machine().lower() not in _ARCHES:
        raise OSError(0, f"seccomp filter: unknown architecture {platform.machine()}")
    insns = program()
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"seccomp filter: prctl(PR_SET_SECCOMP) failed (errno {errno})")
