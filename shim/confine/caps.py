"""Drop every capability of a confined child before it execs its program.

Why: the builds here often run as root, and root keeps its capabilities inside the namespaces the launcher
makes (shim.confine.mountns, shim.confine.pidns). With CAP_SYS_ADMIN a program could clear the read-only flag of its own
mount namespace (mount_setattr, which has no LSM hook Landlock could use), with CAP_SYS_ADMIN/CAP_NET_ADMIN/
CAP_SYS_TIME change the host's name, its interfaces, its clock (red team round 4). Landlock confines files,
not privileges; so after the namespaces are made (they need CAP_SYS_ADMIN) and before exec, `drop_all()`:

  1. clears the bounding set (PR_CAPBSET_DROP for 0..cap_last_cap): execve cannot give any back, not even
     to uid 0, whose exec otherwise refills the permitted set from it;
  2. clears the ambient set (PR_CAP_AMBIENT_CLEAR_ALL);
  3. sets effective, permitted and inheritable to nothing (capset).

The uid stays what it was: root stays uid 0 without capabilities, so it may still chmod files it owns
(the read-only mounts of shim.confine.mountns are what refuse that outside the write set), but it no longer passes
permission checks it would fail as another user (CAP_DAC_OVERRIDE): a root build writing into a tree owned
by someone else fails. no_new_privs (set by shim.confine.landlock.restrict) keeps setuid and file capabilities from
giving any back. shim.confine.seccomp.refuse_host_calls refuses the same calls again, for the case where a user
namespace (shim.confine.mountns, unprivileged hosts) would hand the capabilities back inside it.

Called by the launcher (shim.confine.landlock_exec) in the program's process and by shim.intercept.confined in its
child. Standard library and ctypes only: it runs before anything else could.
"""

from __future__ import annotations

import ctypes
import errno

if False:  # typing only: landlock_exec imports this module, and starts faster without typing and re
    from typing import Final

__all__ = ["drop_all", "held"]

_PR_CAPBSET_READ, _PR_CAPBSET_DROP = 23, 24
_PR_CAP_AMBIENT: Final = 47
_PR_CAP_AMBIENT_CLEAR_ALL: Final = 4
_LINUX_CAPABILITY_VERSION_3: Final = 0x20080522
_CAP_LAST_CAP_FILE: Final = "/proc/sys/kernel/cap_last_cap"
_FALLBACK_LAST_CAP: Final = 63  # two 32-bit words of capabilities: past the real last one, EINVAL is ignored


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def last_cap() -> int:
    try:
        with open(_CAP_LAST_CAP_FILE) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return _FALLBACK_LAST_CAP


def drop_all() -> None:
    """Drop the bounding, ambient, effective, permitted and inheritable sets of this thread (and what it
    execs). Raises OSError when a step fails (the caller must then not run the program)."""
    for cap in range(last_cap() + 1):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EINVAL:  # a capability this kernel does not know
                continue
            if err == errno.EPERM and not _in_bounding_set(cap):
                continue  # without CAP_SETPCAP (an unprivileged user): nothing to drop if it is not there
            raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {errno.errorcode.get(err, err)}")
    if _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # kernels before 4.3 have no ambient set
            raise OSError(err, f"prctl(PR_CAP_AMBIENT_CLEAR_ALL): {errno.errorcode.get(err, err)}")
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset(0): {errno.errorcode.get(err, err)}")


def _in_bounding_set(cap: int) -> bool:
    return _libc.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1


def held() -> dict[str, int]:
    """This process's capability sets from /proc/self/status (CapInh, CapPrm, CapEff, CapBnd, CapAmb)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Cap"):
                name, value = line.split(":", 1)
                out[name] = int(value.strip(), 16)
    return out
