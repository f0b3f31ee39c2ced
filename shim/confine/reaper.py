"""The run's processes: every descendant of the runner, counted while it runs and all ended before it ends.

A build script's granted programs (shim.host.spawn) and probes (shim.host.probe) are native processes, and what
they start is too: a compiler's cc1 and as, or a hostile program's daemon that forks a fresh child every
millisecond and exits, so that a one-shot kill of the tree always misses the newest generation. The runner
runs exactly one build script, so "the run's processes" is simply "every descendant of this process":

  - `begin_run()` makes the runner a child subreaper (PR_SET_CHILD_SUBREAPER) before anything is started:
    an orphan anywhere below it is reparented to it, never to init, so the tree below the runner holds
    every process the run ever started that is still alive. Children the process already had (a test
    harness's own) are remembered and left alone.
  - `starting()` is the gate every spawn passes through (one lock): once the run is ending, nothing new
    starts, so the final sweep cannot race a spawn from a guest thread still inside a host call.
  - `census()` reads the tree from /proc (each task's `children`, falling back to a scan of every
    /proc/<pid>/stat where the kernel lacks that file): how many processes are alive and their summed
    RSS, for the supervisor's CRATECAGE_LIMIT_PROCESSES and CRATECAGE_LIMIT_CHILD_MEMORY.
  - `end()` closes the gate and kills the tree: it opens a pidfd for each descendant (verified to be a
    child of the runner or of one already held, so a PID reused by an unrelated process is never
    signalled), sends SIGSTOP, and waits until every held process is stopped; it repeats until a pass
    finds nothing new (a stopped process cannot fork, so the set is then closed), then SIGKILLs all
    through their pidfds, reaps the orphans, and starts over until no live descendant is left.

Alive means the *thread group* is: a process whose main thread ended with `syscall(SYS_exit)` while
another thread runs on shows state Z in /proc/<pid>/stat, an empty cmdline and no memory, yet it runs, can
fork and write files. So a process counts as alive when any task in /proc/<pid>/task is not dead (`_alive`),
its memory is read from a live task (`_task_rss`), and it is stopped and killed like any other (a signal to a
zombie leader's PID goes to its thread group; its pidfd polls readable once the whole group has exited).

The code that walks /proc is `_tree`; the kill is `_kill_round`. Where the kernel allows, each confined child
also runs in a PID namespace of its own (shim.confine.pidns), which ends everything in it with the child; this sweep
is what remains everywhere else, and the backstop for what a namespace cannot hold.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import threading
import time

# signal's own source of these, without its enum wrappers, and no dataclasses or typing: a confined compile
# (shim.intercept.confined) imports this module on every call, where they cost ~10 ms of CPU.
from _signal import SIGKILL, SIGSTOP, pidfd_send_signal

from shim.record import record

if False:  # typing only
    import subprocess
    from typing import Final, Iterator

_PR_SET_CHILD_SUBREAPER: Final = 36
_STOPPED_OR_DEAD: Final = frozenset("TtZXx")
_DEAD: Final = frozenset("ZXx")
STOP_WAIT_S: Final = 0.5  # how long one round waits for SIGSTOP to land before killing anyway
END_WAIT_S: Final = 10.0  # the whole sweep gives up after this (and says how many were left)
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


class RunEnded(Exception):
    """A spawn after the run began to end: refused, the guest is being stopped."""


@record(frozen=True)
class Proc:
    """One process of the tree, as /proc showed it."""

    pid: int
    ppid: int
    state: str  # /proc/<pid>/stat's state letter (of the main thread: Z while other threads run on)
    start: int  # start time in clock ticks since boot: (pid, start) names one process
    rss: int  # bytes
    alive: bool = True  # any task of the thread group not dead (`_alive`)


@record(frozen=True)
class Census:
    """What is alive below the runner."""

    processes: int  # alive (a task of the thread group not dead)
    rss: int  # their summed resident memory, bytes (read from a live task)


_lock = threading.Lock()
_closed = False
_spawned = 0
_baseline: frozenset[tuple[int, int]] | None = None  # (pid, start) of children the process had before the run
_subreaper = False
_popen_pids: set[int] = set()  # direct children a subprocess.Popen waits for


# -- the run's life -------------------------------------------------------------------------------------------

def begin_run() -> None:
    """At the start of every run, before any child: subreaper, open gate, remember pre-existing children."""
    global _closed, _spawned, _baseline
    become_subreaper()
    with _lock:
        _closed, _spawned = False, 0
        _baseline = frozenset((p.pid, p.start) for p in _direct_children())


def become_subreaper() -> None:
    global _subreaper
    if _subreaper:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    _subreaper = True


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Hold while starting a process (until it exists): refuses once `end()` has begun."""
    global _spawned, _baseline
    with _lock:
        if _closed:
            raise RunEnded("the build script is being stopped; no new process starts")
        if _baseline is None:  # used without begin_run (unit tests): what exists now is not ours
            _baseline = frozenset((p.pid, p.start) for p in _direct_children())
        _spawned += 1
        yield


def popen(argv: list[str], **kwargs: object) -> "subprocess.Popen[bytes]":
    """subprocess.Popen through the gate; its status stays the Popen's to collect."""
    import subprocess

    with starting():
        proc = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
        _popen_pids.add(proc.pid)
    return proc


def spawned() -> bool:
    """Whether the run ever started a process: until then the supervisor reads nothing from /proc."""
    return _spawned > 0


def census() -> Census:
    """The live descendants now; orphans that died since the last look are reaped on the way (thousands of
    short-lived generations would otherwise pile up as zombies)."""
    tree = _tree()
    me = os.getpid()
    if any(not p.alive and p.ppid == me for p in tree):
        _reap()
    alive = [p for p in tree if p.alive]
    return Census(len(alive), sum(p.rss for p in alive))


def end(timeout: float = END_WAIT_S) -> int:
    """Close the gate and kill every descendant; returns how many processes were ended."""
    global _closed
    with _lock:
        _closed = True
    return kill_all(timeout)


def left() -> int:
    """How many descendants are still alive (after `end()`: ones the sweep could not end in time, which the
    runner reports as a fatal denial before its checks, rather than let them act after it)."""
    return sum(1 for p in _tree() if p.alive)


def kill_all(timeout: float = END_WAIT_S) -> int:
    """Stop, then kill, every descendant, round after round, until none is alive (or `timeout`)."""
    deadline = time.monotonic() + timeout
    ended = 0
    while True:
        found = _kill_round(deadline)
        ended += found
        _reap()
        if not found and not any(p.alive for p in _tree()):
            return ended
        if time.monotonic() >= deadline:
            return ended


# -- stopping and killing ---------------------------------------------------------------------------------------

def _kill_round(deadline: float) -> int:
    """Freeze the tree until a pass finds nothing new, then SIGKILL everything held."""
    me = os.getpid()
    held: dict[int, int] = {}  # pid -> pidfd
    try:
        while time.monotonic() < deadline:
            new = [p for p in _tree() if p.pid not in held and p.alive]
            stopped = []
            for proc in new:  # breadth first: a parent is held before its children are checked
                fd = _open_verified(proc.pid, {me, *held})
                if fd is None:
                    continue
                held[proc.pid] = fd
                _send(fd, SIGSTOP)
                stopped.append(proc.pid)
            if not new:
                break
            _await_stopped(stopped, min(deadline, time.monotonic() + STOP_WAIT_S))
        for fd in held.values():
            _send(fd, SIGKILL)
        _await_exit(list(held.values()), min(deadline, time.monotonic() + 2.0))
        return len(held)
    finally:
        for fd in held.values():
            os.close(fd)


def _open_verified(pid: int, parents: set[int]) -> int | None:
    """A pidfd for `pid` if it is (still) a child of one of `parents`: the pidfd pins the process, the stat
    read after it and a signal-0 check that it is still alive prove the read was of that very process."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    proc = _stat(pid)
    if proc is None or proc.ppid not in parents or not _send(fd, 0):
        os.close(fd)
        return None
    return fd


def _send(fd: int, sig: int) -> bool:
    try:
        pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False


def _await_stopped(pids: list[int], until: float) -> None:
    waiting = list(pids)
    while waiting and time.monotonic() < until:
        waiting = [pid for pid in waiting if not _all_tasks_stopped(pid)]
        if waiting:
            time.sleep(0.001)


def _all_tasks_stopped(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True  # gone
    for tid in tasks:
        state = _state_of(f"/proc/{pid}/task/{tid}/stat")
        if state is not None and state not in _STOPPED_OR_DEAD:
            return False
    return True


def _await_exit(fds: list[int], until: float) -> None:
    """A pidfd polls readable once its process has exited."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    pending = len(fds)
    while pending and time.monotonic() < until:
        events = poller.poll(max(1, int((until - time.monotonic()) * 1000)))
        for fd, _ in events:
            poller.unregister(fd)
            pending -= 1


def _reap() -> None:
    """Collect the orphans reparented to this process; children a subprocess.Popen owns reap themselves
    (stealing their status would make Popen report a killed child as exit 0)."""
    for proc in _direct_children():
        if not proc.alive and proc.pid not in _popen_pids:
            try:
                os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                pass


# -- reading /proc -------------------------------------------------------------------------------------------------

def _stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        state, ppid, start, rss = fields[0].decode(), int(fields[1]), int(fields[19]), int(fields[21]) * _PAGE
    except (IndexError, ValueError):
        return None
    if state not in _DEAD:
        return Proc(pid, ppid, state, start, rss)
    live = _live_task(pid)  # a zombie main thread: the process lives while any other task does
    return Proc(pid, ppid, state, start, _task_rss(pid, live) if live else 0, alive=live is not None)


def _live_task(pid: int) -> str | None:
    """A task of `pid`'s thread group that is not dead, or None."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        state = _state_of(f"/proc/{pid}/task/{tid}/stat")
        if state is not None and state not in _DEAD:
            return tid
    return None


def _task_rss(pid: int, tid: str) -> int:
    """Resident bytes of the memory a live task shares with its group (the leader's own stat says 0)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _state_of(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2:][:1].decode() or None


def _children_of(pid: int) -> list[int] | None:
    """PIDs whose parent is `pid`, from each task's `children` file; None where the kernel has none."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(w) for w in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue
            return None  # CONFIG_PROC_CHILDREN is off
        except OSError:
            continue
    return out


def _direct_children() -> list[Proc]:
    me = os.getpid()
    pids = _children_of(me)
    if pids is None:
        return [p for p in _scan() if p.ppid == me]
    return [p for p in (_stat(pid) for pid in pids) if p is not None and p.ppid == me]


def _tree() -> list[Proc]:
    """Every descendant of this process outside the baseline, parents before children."""
    me = os.getpid()
    baseline = _baseline or frozenset()
    by_parent: dict[int, list[Proc]] | None = None
    out: list[Proc] = []
    queue = [me]
    while queue:
        parent = queue.pop(0)
        pids = _children_of(parent) if by_parent is None else None
        if pids is None:
            if by_parent is None:
                by_parent = {}
                for p in _scan():
                    by_parent.setdefault(p.ppid, []).append(p)
            kids = by_parent.get(parent, [])
        else:
            kids = [p for p in (_stat(pid) for pid in pids) if p is not None and p.ppid == parent]
        for proc in kids:
            if parent == me and (proc.pid, proc.start) in baseline:
                continue
            out.append(proc)
            queue.append(proc.pid)
    return out


def _scan() -> list[Proc]:
    procs = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _stat(int(name))
            if proc is not None:
                procs.append(proc)
    return procs
