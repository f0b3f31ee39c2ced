"""IPC, UTS and network namespaces per confined child: kernel objects the host shares stay the host's.

Why: a private mount namespace (shim.confine.mountns) and a PID namespace (shim.confine.pidns) leave the rest of the host's
kernel state shared. A granted program could leave SysV shared memory and message queues behind (they
outlive every process: a channel to a later run or another user, and memory no limit counts), and, had it
the capabilities (shim.confine.caps drops them), change the host's name or its network interfaces. So the launcher
(shim.confine.landlock_exec), after the mount namespace and before the PID namespace, calls `separate(network=...)`:

    namespace   what the child gets                        what is gone with it
    IPC         its own SysV shm, semaphores, msg queues   every object it made, when it ends
    UTS         its own copy of the host name              a sethostname (refused anyway without caps)
    network     only when the crate has no network routes  nothing reaches a socket outside: a loopback
                (no ports): an interface-less namespace     that is down, no abstract Unix sockets of the
                                                            host (shim.confine.seccomp refuses AF_UNIX anyway)

A crate with routes keeps the host's network: Landlock's connect rules (shim.confine.landlock) hold its TCP ports.
Where the namespaces cannot be made (no CAP_SYS_ADMIN and no user namespace: shim.confine.mountns fell back to the
seccomp guard), `separate` returns what it could not make and the launcher runs on without them
(`cratecage doctor` says so): the seccomp filters still refuse unshare/setns and sockets other than TCP.

Standard library and ctypes only: it runs in the launcher before anything else could.
"""

from __future__ import annotations

import ctypes
import os

if False:  # typing only: landlock_exec imports this module, and starts faster without typing and re
    from typing import Final

__all__ = ["NAMESPACES", "available", "separate"]

# name -> clone flag; "net" only when the child has no network routes
NAMESPACES: Final = {"ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000}
_libc = ctypes.CDLL(None, use_errno=True)


def separate(*, network: bool) -> list[str]:
    """Enter new IPC and UTS namespaces, and a network namespace when `network` is False; returns the
    names of those that could not be made (empty: all of them)."""
    wanted = [name for name in NAMESPACES if name != "net" or not network]
    if _libc.unshare(sum(NAMESPACES[n] for n in wanted)) == 0:
        return []
    missing = []
    for name in wanted:  # one by one: a host may refuse one kind (a network namespace limit) only
        if _libc.unshare(NAMESPACES[name]) != 0:
            missing.append(name)
    return missing


def available() -> str:
    """`cratecage doctor`'s line: what a confined child gets here (tried in a throwaway child, as a launcher
    would: after its mount namespace)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from shim.confine import mountns

            try:
                mountns.read_only_outside([])
            except OSError:
                pass
            os.write(write_end, ",".join(separate(network=False)).encode() or b"-")
        finally:
            os._exit(0)
    os.close(write_end)
    missing = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    if not missing:
        return "unknown (the check failed)"
    made = [n for n in NAMESPACES if n not in missing.split(",")]
    text = (f"own {'/'.join(n.upper() for n in made)} namespaces (network: only for crates without routes)"
            if made else "no IPC, UTS or network namespace can be made here")
    return text + "; every capability dropped; io_uring, mount API, new namespaces, fallocate refused"
