"""What a run uses outside wasmtime's own limits, measured by the supervisor (shim.build.run) as it runs.

wasmtime bounds the guest (time by epochs, memory by store limits). What its granted programs and probes do
is native, so the supervisor polls, and stops the run (shim.confine.reaper kills the whole tree) when a limit of
shim.limits is exceeded:

    what                                         how it is read                          how often
    live native processes  CRATECAGE_LIMIT_PROCESSES    shim.confine.reaper.census: /proc of the     every tick, only once
    their summed RSS       CRATECAGE_LIMIT_CHILD_MEMORY  runner's descendants                 the run has started one
    bytes added to OUT_DIR and the temp dir              a walk of each (lstat sizes)          every POLL_S
    bytes added to writable grants (same limit,          a walk of each                        every max(GRANT_POLL_S,
      CRATECAGE_LIMIT_DISK)                                                                  GRANT_DUTY x its walk time)

Writable grants are walked less often because they may be large trees the owner granted (a `target/gen`):
the interval grows with what one walk costs, so the supervisor never spends more than 1/GRANT_DUTY of
its time there. Between polls a single file cannot outgrow the disk limit: granted programs run with a hard
RLIMIT_FSIZE of it (shim.host.spawn), and fallocate is refused (shim.confine.seccomp), so the blocks a burst
allocates are written, at disk speed. Each check's reason names the limit and its variable.

When the disk limit stops a run, `remove_added` (called by shim.build.run once every process of the run is
gone) deletes what the run added to OUT_DIR or changed there, by a listing taken before the guest started
(path -> inode, size, mtime): OUT_DIR is the build script's own, cargo reruns a script that failed, and a
burst must not leave gigabytes in the target directory. The temp dir is removed after every run anyway.
Writable grants are the owner's directories: what the run added there is left, and the message says so.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Final

from shim.confine import reaper
from shim.host.context import RunContext
from shim.limits import Limits

POLL_S: Final = 0.2
GRANT_POLL_S: Final = 1.0
GRANT_DUTY: Final = 20


def dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Usage:
    """The run's baseline (sizes before the guest starts) and the polls against `limits`."""

    def __init__(self, ctx: RunContext, limits: Limits) -> None:
        self.limits = limits
        self.near = [d for d in dict.fromkeys((ctx.out_dir, ctx.tmp_dir)) if d]
        grant = ctx.grant
        self.grants = [d for d in dict.fromkeys(grant.writable if grant is not None else ())
                       if d and d not in self.near and os.path.isdir(d)]
        self.base = {d: dir_size(d) for d in (*self.near, *self.grants)}
        self.size = dict(self.base)
        self.next_near = 0.0
        self.next_grants = 0.0
        self.out_dir = ctx.out_dir
        self.out_before = listing(ctx.out_dir) if ctx.out_dir else {}
        self.disk_exceeded = False

    def check(self, now: float) -> str:
        """The reason to stop the run now, or ""."""
        return self._processes() or self._disk(now)

    def final(self) -> str:
        """After the guest ended: every directory once more."""
        return self._disk(time.monotonic(), force=True)

    def _processes(self) -> str:
        if not reaper.spawned():
            return ""
        census = reaper.census()
        if census.processes > self.limits.processes:
            return (f"its programs ran more than {self.limits.processes} processes at once "
                    "(CRATECAGE_LIMIT_PROCESSES)")
        if census.rss > self.limits.child_memory:
            return (f"its programs used more than {self.limits.child_memory} bytes of memory "
                    f"({census.rss} resident, CRATECAGE_LIMIT_CHILD_MEMORY)")
        return ""

    def _disk(self, now: float, force: bool = False) -> str:
        if force or now >= self.next_near:
            self.next_near = now + POLL_S
            for d in self.near:
                self.size[d] = dir_size(d)
        if self.grants and (force or now >= self.next_grants):
            started = time.monotonic()
            for d in self.grants:
                self.size[d] = dir_size(d)
            self.next_grants = now + max(GRANT_POLL_S, GRANT_DUTY * (time.monotonic() - started))
        added = sum(self.size.values()) - sum(self.base.values())
        if added > self.limits.disk:
            self.disk_exceeded = True
            where = "OUT_DIR, the temp dir and writable grants" if self.grants else "OUT_DIR and the temp dir"
            return f"wrote more than {self.limits.disk} bytes into {where} (CRATECAGE_LIMIT_DISK)"
        return ""

    def remove_added(self) -> int:
        """After the run, when the disk limit stopped it: remove what it added to OUT_DIR or changed there
        (files, links, then the directories it made, deepest first); returns the bytes removed."""
        if not self.out_dir:
            return 0
        now = listing(self.out_dir)
        freed = 0
        for path in sorted(now, key=len, reverse=True):  # children before their directories
            if self.out_before.get(path) == now[path]:
                continue
            ino, size, _mtime, is_dir = now[path]
            if is_dir:
                if path not in self.out_before:
                    _quietly(os.rmdir, path)
                continue
            if _quietly(os.unlink, path):
                freed += size
        return freed


def listing(root: str) -> dict[str, tuple[int, int, int, bool]]:
    """Every path under `root` (links not followed) -> (inode, size, mtime in ns, is a directory)."""
    out: dict[str, tuple[int, int, int, bool]] = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            out[path] = (st.st_ino, st.st_size, st.st_mtime_ns, stat.S_ISDIR(st.st_mode))
    return out


def _quietly(remove, path: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        remove(path)
        return True
    except OSError:
        return False
