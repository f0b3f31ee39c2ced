"""Seccomp filters for confined children: TCP sockets only (UDP with routes), no other syscall ABI; and,
where no mount namespace can be made, no metadata changes.

Landlock (shim.confine.landlock) decides which files a granted program reads and which TCP ports it reaches, but
connecting to an existing Unix socket by path is not a file access it governs (a compiler made to load a
build script's plugin could talk to /var/run/docker.sock or an ssh agent), and it does not restrict UDP,
raw or netlink sockets at all. So the launcher (shim.confine.landlock_exec) also installs this filter, after
Landlock and before exec:

  - socket() succeeds only for AF_INET/AF_INET6 stream sockets, whose connects Landlock limits to the
    crate's route ports, and datagram sockets when the crate has routes (name resolution); anything else
    (AF_UNIX, netlink, packet, raw) fails with EACCES. socketpair, which connects nothing outside, is
    allowed; glibc's nscd lookups fall back to files when their socket fails;
  - a syscall made through another ABI (i386's int 0x80, with its socketcall; x32 numbers) kills the
    process, so the socket check cannot be sidestepped.

The second filter, `refuse_metadata`, is the fallback of shim.confine.mountns: Landlock does not govern chmod,
chown, utimes/touch or extended attributes, and where the launcher cannot make a private mount namespace
(user namespaces disabled, no CAP_SYS_ADMIN) nothing else would refuse them outside the write set. Seccomp
cannot see which file a call names (a path argument is a pointer it may not follow), so this filter refuses
every call of `METADATA_SYSCALLS`, inside the write set too, with EPERM: path-based (chmod, fchmodat,
fchmodat2, chown, lchown, fchownat, utime, utimes, futimesat, utimensat, setxattr, lsetxattr, removexattr,
lremovexattr, setxattrat, removexattrat) and fd-based (fchmod, fchown, fsetxattr, fremovexattr; futimens is
utimensat with a NULL path). An fd-based call is no narrower: a read-only descriptor of any readable file
is enough to change its mode. What still works: creating files with a mode (open/mkdir take it, under the
umask), so compilers, `ar` and linkers, which set their outputs' mode at creation, keep working; `ld`
chmods an executable it links only when the umask took bits away, and `ar`/`ranlib`/`cp -p`/`install -m`/
`touch` on an existing file fail with EPERM (tests/host/test_spawn.py builds libz-sys and zstd-sys this way).

The third filter, `refuse_host_calls`, is installed on every confined child (the launcher's and
shim.intercept.confined's): the calls of `REFUSED`, each with the errno its table row gives. They are the
ways a program could undo the rest of the confinement or reach the host around it (red team round 4):
io_uring (its IORING_OP_SOCKET makes any socket without a socket() call this filter could see), the mount
API (mount_setattr and open_tree re-enable writes in the read-only namespace of shim.confine.mountns and have no
LSM hook Landlock could use), new namespaces (unshare, setns, clone with a CLONE_NEW* flag, clone3, whose
flags sit in memory seccomp cannot read), the kernel keyring, bpf, perf_event_open, fallocate (a burst of
gigabytes between two polls of the disk limit, shim.sandbox.usage) and memfd_create (memory in no process's RSS, so
the child-memory limit never sees it). The errno is the one a library takes for "not here" and falls back
from: ENOSYS for io_uring, clone3 (glibc then uses clone), memfd_create and the keyring; EOPNOTSUPP for
fallocate (glibc's posix_fallocate then writes the blocks, which RLIMIT_FSIZE and the poll see); EPERM for
the rest. The capabilities those calls would need are dropped too (shim.confine.caps); the filter also holds where
a user namespace gives them back.

Why a list of refusals rather than a list of what is allowed: the children are arbitrary native programs
(compilers, linkers, pkg-config, interpreters a crate's owner granted), and an allowlist that every one of
them, on every libc and kernel, stays inside is a larger and riskier change than this round had time to
test; the refusals close the escapes found, and everything else stays under Landlock, the read-only mounts,
the namespaces and the dropped capabilities.

Classic BPF through prctl(PR_SET_SECCOMP), with ctypes; it needs PR_SET_NO_NEW_PRIVS, which
landlock.restrict has set. Only x86_64 and aarch64 are known; elsewhere the filters raise.
"""

from __future__ import annotations

import ctypes
import os
import struct

if False:  # typing only: landlock_exec imports this module, and starts faster without typing and re
    from typing import Final

_PR_SET_SECCOMP: Final = 22
_SECCOMP_MODE_FILTER: Final = 2
_RET_KILL_PROCESS: Final = 0x80000000
_RET_ERRNO: Final = 0x00050000
_RET_ALLOW: Final = 0x7FFF0000
_EACCES: Final = 13
_EPERM: Final = 1
_ENOSYS: Final = 38
_EOPNOTSUPP: Final = 95
_AF_INET, _AF_INET6, _SOCK_STREAM, _SOCK_DGRAM = 2, 10, 1, 2
_LD_ABS_W, _JEQ_K, _JGE_K, _JSET_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x54, 0x06
_X32_SYSCALL_BIT: Final = 0x40000000
# machine -> (AUDIT_ARCH_*, __NR_socket, whether the x32 bit must be refused)
_ARCHES: Final = {"x86_64": (0xC000003E, 41, True), "amd64": (0xC000003E, 41, True),
                  "aarch64": (0xC00000B7, 198, False), "arm64": (0xC00000B7, 198, False)}


# The metadata calls `refuse_metadata` refuses, per machine: name -> number (aarch64 has only the *at and
# fd forms: no chmod, chown, lchown, utime, utimes, futimesat).
_METADATA_X86_64: Final = {
    "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "utime": 132, "setxattr": 188,
    "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
    "utimes": 235, "fchownat": 260, "futimesat": 261, "fchmodat": 268, "utimensat": 280, "fchmodat2": 452,
    "setxattrat": 463, "removexattrat": 466}
_METADATA_GENERIC: Final = {
    "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16,
    "fchmod": 52, "fchmodat": 53, "fchownat": 54, "fchown": 55, "utimensat": 88, "fchmodat2": 452,
    "setxattrat": 463, "removexattrat": 466}
METADATA_SYSCALLS: Final = {"x86_64": _METADATA_X86_64, "amd64": _METADATA_X86_64,
                            "aarch64": _METADATA_GENERIC, "arm64": _METADATA_GENERIC}


# The calls `refuse_host_calls` refuses: name -> (errno, what it would let a confined program do).
REFUSED: Final = {
    "io_uring_setup": (_ENOSYS, "io_uring: its ops (IORING_OP_SOCKET, ...) never pass this filter"),
    "io_uring_enter": (_ENOSYS, "io_uring"),
    "io_uring_register": (_ENOSYS, "io_uring"),
    "mount": (_EPERM, "remount the read-only namespace writable"),
    "umount2": (_EPERM, "uncover what a read-only bind mount hides"),
    "pivot_root": (_EPERM, "change the root"),
    "mount_setattr": (_EPERM, "clear MOUNT_ATTR_RDONLY (no LSM hook: Landlock does not see it)"),
    "open_tree": (_EPERM, "a detached, writable copy of a mount"),
    "open_tree_attr": (_EPERM, "open_tree with mount attributes"),
    "move_mount": (_EPERM, "attach a mount"),
    "fsopen": (_EPERM, "a new filesystem"),
    "fsconfig": (_EPERM, "a new filesystem"),
    "fsmount": (_EPERM, "a new filesystem"),
    "fspick": (_EPERM, "reconfigure a mounted filesystem"),
    "unshare": (_EPERM, "a new user namespace gives back every capability"),
    "setns": (_EPERM, "enter another namespace"),
    "clone3": (_ENOSYS, "its flags are in memory the filter cannot read (glibc falls back to clone)"),
    "keyctl": (_ENOSYS, "the kernel keyring, shared with the host and outliving the run"),
    "add_key": (_ENOSYS, "the kernel keyring"),
    "request_key": (_ENOSYS, "the kernel keyring (and its upcall to a host helper)"),
    "bpf": (_EPERM, "BPF maps and programs"),
    "perf_event_open": (_EPERM, "perf events: host-wide observation"),
    "fallocate": (_EOPNOTSUPP, "gigabytes between two polls of the disk limit"),
    "memfd_create": (_ENOSYS, "memory in no process's RSS: past CRATECAGE_LIMIT_CHILD_MEMORY"),
    "open_by_handle_at": (_EPERM, "opens a file by inode handle, around every path rule"),
    "name_to_handle_at": (_EPERM, "the handles open_by_handle_at takes"),
}
# clone itself stays (fork, threads, posix_spawn); with any of these flags in args[0] it fails with EPERM.
CLONE_NEW_FLAGS: Final = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
                          "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                          "CLONE_NEWNET": 0x40000000}
_REFUSED_X86_64: Final = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "mount": 165, "umount2": 166,
    "pivot_root": 155, "mount_setattr": 442, "open_tree": 428, "open_tree_attr": 467, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "unshare": 272, "setns": 308,
    "clone3": 435, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "fallocate": 285, "memfd_create": 319, "open_by_handle_at": 304, "name_to_handle_at": 303, "clone": 56}
_REFUSED_GENERIC: Final = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "mount": 40, "umount2": 39,
    "pivot_root": 41, "mount_setattr": 442, "open_tree": 428, "open_tree_attr": 467, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "unshare": 97, "setns": 268,
    "clone3": 435, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
    "fallocate": 47, "memfd_create": 279, "open_by_handle_at": 265, "name_to_handle_at": 264, "clone": 220}
REFUSED_SYSCALLS: Final = {"x86_64": _REFUSED_X86_64, "amd64": _REFUSED_X86_64,
                           "aarch64": _REFUSED_GENERIC, "arm64": _REFUSED_GENERIC}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(machine: str | None = None, *, udp: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for `machine` (default: this one). Jump offsets count
    from the next instruction; DENY is 13, ALLOW 14."""
    arch, nr_socket, x32 = _ARCHES[(machine or os.uname().machine).lower()]
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


def metadata_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The metadata filter for `machine`: EPERM for each of METADATA_SYSCALLS, the same ABI checks as
    `program`. With n calls: 5 + n is ALLOW, 6 + n DENY (a jump at j to t has offset t - j - 1)."""
    machine = (machine or os.uname().machine).lower()
    arch, _nr_socket, x32 = _ARCHES[machine]
    numbers = sorted(METADATA_SYSCALLS[machine].values())
    n = len(numbers)
    return [
        (_LD_ABS_W, 0, 0, 4),                                 # 0: A = seccomp_data.arch
        (_JEQ_K, 1, 0, arch),                                 # 1: our ABI? -> 3
        (_RET_K, 0, 0, _RET_KILL_PROCESS),                    # 2: another ABI: kill
        (_LD_ABS_W, 0, 0, 0),                                 # 3: A = seccomp_data.nr
        (_JGE_K, n + 1, 0, _X32_SYSCALL_BIT) if x32 else (_JGE_K, 0, 0, 0xFFFFFFFF),  # 4: x32 -> DENY
        *((_JEQ_K, n - i, 0, nr) for i, nr in enumerate(numbers)),  # 5 + i: a metadata call -> DENY
        (_RET_K, 0, 0, _RET_ALLOW),                           # 5 + n: ALLOW
        (_RET_K, 0, 0, _RET_ERRNO | _EPERM),                  # 6 + n: DENY
    ]


def host_calls_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The `refuse_host_calls` filter for `machine`: one comparison per call of REFUSED (sorted by number),
    each jumping to the return of its errno; clone's jumps to a test of its flags. Layout:

        0-4    the ABI checks of `program` (another ABI: kill; an x32 number: EPERM)
        5..    JEQ nr -> its return                (one per REFUSED call, and clone -> CLONE)
               RET ALLOW
        CLONE  A = args[0]; JSET CLONE_NEW* -> EPERM; RET ALLOW
               RET ERRNO|e                         (one per distinct errno, ascending)
    """
    machine = (machine or os.uname().machine).lower()
    arch, _nr_socket, x32 = _ARCHES[machine]
    numbers = REFUSED_SYSCALLS[machine]
    rows = sorted((nr, name) for name, nr in numbers.items())
    errnos = sorted({e for e, _why in REFUSED.values()} | {_EPERM})
    clone_at = 5 + len(rows) + 1
    ret_at = {e: clone_at + 3 + i for i, e in enumerate(errnos)}
    insns: list[tuple[int, int, int, int]] = [
        (_LD_ABS_W, 0, 0, 4),                                 # 0: A = seccomp_data.arch
        (_JEQ_K, 1, 0, arch),                                 # 1: our ABI? -> 3
        (_RET_K, 0, 0, _RET_KILL_PROCESS),                    # 2: another ABI: kill
        (_LD_ABS_W, 0, 0, 0),                                 # 3: A = seccomp_data.nr
        (_JGE_K, ret_at[_EPERM] - 5, 0, _X32_SYSCALL_BIT) if x32 else (_JGE_K, 0, 0, 0xFFFFFFFF),  # 4: x32
    ]
    for nr, name in rows:
        target = clone_at if name == "clone" else ret_at[REFUSED[name][0]]
        insns.append((_JEQ_K, target - len(insns) - 1, 0, nr))
    insns.append((_RET_K, 0, 0, _RET_ALLOW))
    insns += [(_LD_ABS_W, 0, 0, 16),                        # CLONE: A = args[0] (low half): the flags
              (_JSET_K, ret_at[_EPERM] - clone_at - 2, 0, sum(CLONE_NEW_FLAGS.values())),
              (_RET_K, 0, 0, _RET_ALLOW)]
    insns += [(_RET_K, 0, 0, _RET_ERRNO | e) for e in errnos]
    return insns


def restrict_sockets(*, udp: bool = False) -> None:
    """Install the socket filter on this thread (and what it execs). Raises OSError when it cannot."""
    _check_machine()
    _install(program(udp=udp))


def refuse_metadata() -> None:
    """Install the metadata filter on this thread (and what it execs). Raises OSError when it cannot."""
    _check_machine()
    _install(metadata_program())


def refuse_host_calls() -> None:
    """Install the REFUSED filter on this thread (and what it execs). Raises OSError when it cannot."""
    _check_machine()
    _install(host_calls_program())


def _check_machine() -> None:
    if os.uname().machine.lower() not in _ARCHES:
        raise OSError(0, f"seccomp filter: unknown architecture {os.uname().machine}")


def _install(insns: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"seccomp filter: prctl(PR_SET_SECCOMP) failed (errno {errno})")
