"""Landlock, through ctypes: confine a process (and everything it later runs) to a few directory trees.

Why: whatever native program the host runs for a guest (a rustc probe, later a granted `cc`) acts on
guest-chosen input. A probe whose source says `include_bytes!("/home/me/.ssh/id_ed25519")` plus a
`const` assert on one bit compiles or not depending on that bit; a throwaway output directory does not
stop that, confining what the child can *read* does (notes/sandbox-experiments.md §7). Landlock is
unprivileged, applies to the calling process and its descendants, and cannot be lifted.

`restrict(read, write)` allows reading/executing under `read`, everything under `write` but creating
FIFOs, sockets and device nodes, and nothing else on the filesystem; with ABI >= 4 it also refuses every TCP bind/connect except `allow_connect_ports`, and
with ABI >= 6 signals and abstract unix sockets that leave the domain. Rights the running kernel does not
know are simply not handled (best effort, as the kernel documentation recommends): the caller reports
`abi_version()` so a person knows what they got. Paths that do not exist are skipped.

It must run in the child between fork and exec. We do that in a tiny re-exec launcher (shim.confine.landlock_exec)
rather than subprocess's `preexec_fn`: the runner process has a wasmtime thread pool and a watchdog thread,
and Python documents `preexec_fn` as unsafe with threads (the child may deadlock on a lock another thread
held at fork). The launcher is a fresh single-threaded interpreter that restricts itself, then execs.

`loader_files(program)` answers the other half of "what may it read": the shared libraries the dynamic
loader maps for a program, so those files can be granted one by one instead of all of /usr/lib.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys

if False:  # typing only: shim.intercept.confined imports this module on a rustc call's path
    from typing import Final, Iterable

__all__ = ["LandlockError", "abi_version", "loader_files", "restrict", "unavailable_reason"]

# Landlock got the same numbers on every architecture that uses the unified table (x86_64, aarch64, ...).
_SYSCALLS: Final = {"x86_64": (444, 445, 446), "amd64": (444, 445, 446), "aarch64": (444, 445, 446),
                    "arm64": (444, 445, 446), "riscv64": (444, 445, 446)}
_CREATE_RULESET_VERSION: Final = 1
_RULE_PATH_BENEATH: Final = 1
_PR_SET_NO_NEW_PRIVS: Final = 38

# Filesystem rights by the ABI version that introduced them (include/uapi/linux/landlock.h).
_FS_RIGHTS_BY_ABI: Final = ((1, (1 << 13) - 1),  # EXECUTE .. MAKE_SYM
                            (2, 1 << 13),  # REFER
                            (3, 1 << 14),  # TRUNCATE
                            (5, 1 << 15))  # IOCTL_DEV
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FILE_ONLY_RIGHTS: Final = _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14) | (1 << 15)
_READ_RIGHTS: Final = _EXECUTE | _READ_FILE | _READ_DIR
# Never granted, not even under `write`: a FIFO left in OUT_DIR blocks the next rustc that opens it, a
# socket or device node there is a door to something else. Directories, regular files and symlinks only.
_MAKE_SPECIAL: Final = (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11)  # MAKE_CHAR, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK
_NET_BIND_TCP, _NET_CONNECT_TCP, _RULE_NET_PORT = 1 << 0, 1 << 1, 2
_SCOPES_ABI6: Final = (1 << 0) | (1 << 1)  # abstract unix sockets, signals


class LandlockError(OSError):
    """Landlock is there but refused what we asked; the caller must not run the child unconfined."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(index: int, *args: object) -> int:
    if not sys.platform.startswith("linux"):
        raise OSError(0, f"Landlock is Linux-only (this is {sys.platform})")
    machine = os.uname().machine
    numbers = _SYSCALLS.get(machine.lower())
    if numbers is None:
        raise OSError(0, f"no Landlock syscall numbers known for {machine}")
    result = _libc.syscall(ctypes.c_long(numbers[index]), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable (not built, disabled, not Linux)."""
    try:
        return _query_version()
    except OSError:
        return 0


def unavailable_reason() -> str:
    """Why Landlock cannot be used here, or "" when it can."""
    try:
        _query_version()
    except OSError as err:
        known = {errno.ENOSYS: "the kernel has no Landlock (ENOSYS)",
                 errno.EOPNOTSUPP: "Landlock is disabled at boot (EOPNOTSUPP)"}
        return known.get(err.errno or 0, str(err.strerror))
    return ""


def _query_version() -> int:
    return _syscall(0, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))


def restrict(read: Iterable[str], write: Iterable[str], *, allow_connect_ports: Iterable[int] = (),
             execute: Iterable[str] | None = None, handle_tcp: bool = True, list_only: Iterable[str] = ()) -> None:
    """Confine this process for good. Raises LandlockError if Landlock is unavailable or refuses.

    With `execute` (a granted program's own files and its profile), only those trees may be executed
    and read; `read` and `write` then grant no execution, so a program cannot run what a build script
    wrote (a `-B` into OUT_DIR). Without it, `read` and `write` include execution (a rustc probe).
    `handle_tcp=False` leaves TCP as it is (shim.intercept.confined: proc macros inside rustc still connect).
    `list_only` directories may be listed, nothing more: the files in them that may be read are granted
    one by one in `read` (a directory of crates whose neighbours are other crates' dep-info)."""
    abi = abi_version()
    if abi == 0:
        raise LandlockError(0, f"Landlock unavailable: {unavailable_reason()}")
    handled = sum(bits for since, bits in _FS_RIGHTS_BY_ABI if abi >= since)
    attr = _RulesetAttr(handled, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 and handle_tcp else 0,
                        _SCOPES_ABI6 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct as that ABI knows it
    try:
        fd = _syscall(0, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    except OSError as err:
        raise LandlockError(err.errno, f"landlock_create_ruleset: {err.strerror}") from None
    try:
        no_exec = ~_EXECUTE if execute is not None else ~0
        for path in read:
            _add_path(fd, path, _READ_RIGHTS & handled & no_exec)
        for path in write:
            _add_path(fd, path, handled & no_exec & ~_MAKE_SPECIAL)
        for path in execute or ():
            _add_path(fd, path, _READ_RIGHTS & handled)
        for path in list_only:
            _add_path(fd, path, _READ_DIR & handled)
        for port in allow_connect_ports if abi >= 4 and handle_tcp else ():
            rule = _NetPortAttr(_NET_CONNECT_TCP, port)
            _syscall(1, fd, ctypes.c_int(_RULE_NET_PORT), ctypes.byref(rule), ctypes.c_uint32(0))
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _syscall(2, fd, ctypes.c_uint32(0))
    except OSError as err:
        raise LandlockError(err.errno, f"Landlock: {err.strerror}") from None
    finally:
        os.close(fd)


def _add_path(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_ONLY_RIGHTS  # the kernel refuses directory rights on a file
        rule = _PathBeneathAttr(rights, fd)
        _syscall(1, ruleset_fd, ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)


def loader_files(program: str, env: dict[str, str] | None = None) -> list[str] | None:
    """The files the dynamic loader maps to start `program` (itself, the ELF interpreter, its libraries and
    /etc/ld.so.cache), as real paths; None when the loader will not say (static, musl, not ELF).
    Asks glibc's loader the way ldd does, `<interpreter> --list <program>`: the program itself never runs.
    `env` should carry the LD_LIBRARY_PATH the program will run with."""
    import subprocess

    interp = _elf_interpreter(program)
    if interp is None:
        return None
    try:
        out = subprocess.run([interp, "--list", program], env={**(env or {})}, capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    found = [program, interp, "/etc/ld.so.cache"]
    for line in out.stdout.splitlines():
        words = line.split()
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/"):
            found.append(path)
    return sorted({os.path.realpath(p) for p in found if os.path.exists(p)})


def _elf_interpreter(program: str) -> str | None:
    """The PT_INTERP of an ELF executable (e.g. /lib64/ld-linux-x86-64.so.2); None if it has none."""
    import struct

    try:
        with open(program, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return None
            o = "<" if head[5] == 1 else ">"
            # (e_phoff, e_phentsize, e_phnum) and, inside a program header, (p_offset, p_filesz)
            if head[4] == 2:
                phoff, (phentsize, phnum), seg = struct.unpack_from(o + "Q", head, 0x20)[0], \
                    struct.unpack_from(o + "HH", head, 0x36), o + "QQQQ"
            else:
                phoff, (phentsize, phnum), seg = struct.unpack_from(o + "I", head, 0x1C)[0], \
                    struct.unpack_from(o + "HH", head, 0x2A), o + "IIII"
            for i in range(phnum):
                fh.seek(phoff + i * phentsize)
                header = fh.read(phentsize)
                if struct.unpack_from(o + "I", header, 0)[0] == 3:  # PT_INTERP
                    offset, size = struct.unpack_from(seg, header, 8 if head[4] == 2 else 4)[0::3]
                    fh.seek(offset)
                    return fh.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None
