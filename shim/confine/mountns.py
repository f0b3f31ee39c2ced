"""A private mount namespace in which everything but a confined child's write set is read-only.

Why: Landlock (shim.confine.landlock) decides which files a granted program may open and create, but not who may
change a file's *metadata*: chmod, chown, utimes/touch and extended attributes of any file the user owns
succeed anywhere, outside every grant. A read-only mount refuses all of them (EROFS), for root too, so the
launcher (shim.confine.landlock_exec) calls `read_only_outside(write)` before it applies Landlock (a Landlock domain
may not mount), and then execs the program:

  1. unshare(CLONE_NEWNS); where that needs a privilege the user lacks, unshare(CLONE_NEWUSER | CLONE_NEWNS)
     with the user's own uid and gid mapped (an unprivileged user namespace: some distributions disable
     them, and then this module raises `Unavailable`);
  2. make every mount private, so nothing done here reaches the host's namespace;
  3. bind-mount each existing path of the write set onto itself (files too: a writable file), but device
     nodes: /dev/null is in every write set for Landlock, and writing to a device works on a read-only
     mount, while its bind mount would leave the host's /dev/null open to chmod and utimes;
  4. remount every other mount read-only, keeping the flags it had (a user namespace must keep them);
     a pseudo filesystem (proc, sysfs, cgroup, ...) that refuses is left as it is.

The namespace holds only the child and what it starts; it ends with them. Device nodes stay usable on a
read-only mount (opening /dev/null or /dev/urandom is not a change to the filesystem).

Standard library and ctypes only: it runs in the launcher before anything else could.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

if False:  # typing only: landlock_exec imports this module, and starts faster without typing and re
    from typing import Final, Iterable

__all__ = ["Unavailable", "read_only_outside"]

_CLONE_NEWNS: Final = 0x00020000
_CLONE_NEWUSER: Final = 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_NOATIME, _MS_NODIRATIME, _MS_REMOUNT, _MS_BIND = 1024, 2048, 32, 4096
_MS_REC, _MS_PRIVATE, _MS_RELATIME, _MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
# statvfs f_flag bit -> mount flag to keep on a remount (the first five have the same values)
_KEEP: Final = ((os.ST_NOSUID, _MS_NOSUID), (os.ST_NODEV, _MS_NODEV), (os.ST_NOEXEC, _MS_NOEXEC),
                (os.ST_NOATIME, _MS_NOATIME), (os.ST_NODIRATIME, _MS_NODIRATIME), (os.ST_RELATIME, _MS_RELATIME))
PSEUDO_FS: Final = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
                              "securityfs", "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "hugetlbfs",
                              "autofs", "efivarfs", "selinuxfs", "nsfs", "rpc_pipefs"})


class Unavailable(OSError):
    """No private mount namespace could be made here (no privilege, user namespaces disabled)."""


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), None, ctypes.c_ulong(flags), None),
           f"mount {target}")


def _unshare() -> str:
    """Enter a new mount namespace; returns how ("mount namespace" or "user and mount namespace")."""
    if _libc.unshare(_CLONE_NEWNS) == 0:
        return "mount namespace"
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise Unavailable(err, f"no mount namespace: unshare: {os.strerror(err)} (unprivileged user "
                               "namespaces are disabled here?)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
    return "user and mount namespace"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape") \
        if "\\" in field else field


def mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of this namespace, parents before children."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            dash = fields.index("-")
            out.append((_unescape(fields[4]), fields[dash + 1]))
    return out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _is_device(path: str) -> bool:
    mode = os.stat(path).st_mode
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def read_only_outside(write: Iterable[str]) -> str:
    """Make every mount read-only except the paths of `write`; returns how (see `_unshare`).
    Raises Unavailable when no namespace can be made, OSError when one was made but could not be set up
    (the caller must then not run the program)."""
    how = _unshare()
    _mount(None, "/", _MS_REC | _MS_PRIVATE)
    kept = []
    for path in write:
        real = os.path.realpath(path)
        if os.path.exists(real) and not _is_device(real):
            _mount(real, real, _MS_BIND | _MS_REC)
            kept.append(real)
    for point, fstype in mounts():
        if any(_inside(point, k) for k in kept):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            flags = 0
        keep = sum(ms for st, ms in _KEEP if flags & st)
        try:
            _mount(None, point, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep)
        except OSError as err:
            if fstype not in PSEUDO_FS and err.errno not in (errno.ENOENT, errno.EACCES):
                raise  # a mount point we cannot reach is one the child cannot reach either
    try:
        os.chdir(os.getcwd())  # a cwd inside the write set: onto its bind mount, not the read-only one below
    except OSError:
        pass
    return how
