"""A PID namespace per confined child: when the program ends, the kernel ends everything it started.

Why: shim.confine.reaper finds a run's processes by walking /proc below the runner, and every trick that hides a
process from such a walk (a main thread that exited while another runs on, a new session, a stop, a
ptrace-stop, a fork every millisecond) has to be matched there, one by one. A PID namespace has no such
gap: when its init process exits, the kernel SIGKILLs every process in it (threads, setsid'd daemons,
stopped and traced ones included), and the init's exit completes only once they are all gone.

So the launcher (shim.confine.landlock_exec), after its mount namespace (shim.confine.mountns) and before Landlock, calls
`become_init_of_own_namespace()`:

    launcher (the runner's child)         waits for the init; exits with the program's status (dies of the
      └─ init (PID 1 of a new namespace)  same signal); SIGKILLed with the launcher (PR_SET_PDEATHSIG)
           └─ program                     returns from the call, applies Landlock and seccomp, execs

  - the init reaps every orphan and exits as soon as the program has exited: the program's descendants end
    with the program, not with the run;
  - the runner kills the launcher (its process group, or the reaper's sweep); the init follows it by
    PR_SET_PDEATHSIG, and the namespace with the init.

Unprivileged, unshare(CLONE_NEWPID) works inside the user namespace shim.confine.mountns made; where no namespace
can be made (user namespaces disabled, no mount namespace) it returns False and the reaper's /proc sweep
(shim.confine.reaper) is all there is: `available()` says which is in force (`cratecage doctor`).
The reaper's sweep runs after every run either way. Standard library and ctypes only.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
# signal's own source of these, without its enum wrappers (enum, functools, collections): ~4 ms of every
# confined start.
from _signal import SIG_DFL, SIGKILL
from _signal import signal as set_handler

if False:  # typing only: landlock_exec imports this module, and starts faster without typing and re
    from typing import Callable, Final, NoReturn

__all__ = ["available", "become_init_of_own_namespace"]

_CLONE_NEWPID: Final = 0x20000000
_PR_SET_PDEATHSIG: Final = 1
_libc = ctypes.CDLL(None, use_errno=True)


def become_init_of_own_namespace(in_launcher: Callable[[], None] | None = None) -> bool:
    """Fork an init into a new PID namespace and the program below it; returns True in the program's
    process only (the launcher and the init never return), False where no namespace can be made.
    `in_launcher` runs in the launcher's process before it waits (shim.confine.exec_watch starts its thread)."""
    if _libc.unshare(_CLONE_NEWPID) != 0:
        return False
    read_end, write_end = os.pipe()
    init = os.fork()
    if init != 0:
        os.close(write_end)
        for fd in (0, 1):  # the program's stdin and stdout are the program's alone
            os.close(fd)
        if in_launcher is not None:
            in_launcher()
        _launcher(init, read_end)
    os.close(read_end)
    _libc.prctl(_PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    poller = select.poll()
    poller.register(write_end, select.POLLOUT)
    if any(ev & select.POLLERR for _, ev in poller.poll(0)):  # the launcher died before PDEATHSIG was set
        os._exit(1)
    program = os.fork()
    if program == 0:
        os.close(write_end)
        return True
    _init(program, write_end)


def _init(program: int, report: int) -> NoReturn:
    """PID 1: reap everything; once the program has exited, tell the launcher its wait status and exit
    (which ends the namespace)."""
    for fd in (0, 1, 2):  # hold none of the program's pipes open
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if pid == program:
            os.write(report, struct.pack("i", status))
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _launcher(init: int, report: int) -> NoReturn:
    """Wait for the init; leave as the program left: its exit code, or killed by its signal."""
    data = b""
    while len(data) < 4:
        try:
            chunk = os.read(report, 4 - len(data))
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
    while True:
        try:
            os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            break
    if len(data) < 4:
        os._exit(1)  # the init was killed before the program ended
    status = struct.unpack("i", data)[0]
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        set_handler(sig, SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def available() -> str:
    """Whether a confined child gets a PID namespace here, said as a sentence (for `cratecage doctor`)."""
    pid = os.fork()
    if pid == 0:  # try it in a throwaway child: unshare would change this process's next children
        try:
            from shim.confine import mountns

            try:
                mountns.read_only_outside([])
            except OSError:
                os._exit(2)
            os._exit(0 if _libc.unshare(_CLONE_NEWPID) == 0 else 3)
        finally:
            os._exit(4)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return "a PID namespace per confined program (its descendants end with it), and the /proc sweep"
    return ("no PID namespace here (" + {2: "no mount or user namespace", 3: "unshare(CLONE_NEWPID) refused"}
            .get(code, "the check failed") + "): the /proc sweep of the run's descendants alone")
