"""Keeping the per-user cache of wasm compiles (shim.compile.shared_cache) bounded.

Why: every new target directory, checkout or toolchain adds entries (a test run adds dozens), and nothing
else removes them. Using an entry touches its directory (shared_cache.fetch, before reading it), so an
entry's mtime is when a build last used or stored it. At most once a day per cache (the `.pruned` stamp,
taken under a lock by one process), `prune` removes the entries no build used for `KEEP_DAYS_ENV` days
(default 30), then the oldest-used ones until the rest fit in `MAX_GIB_ENV` GiB (default 2), and what a
crashed store left behind (`*.tmp`, `*.gone` older than a day).

An entry used in the last hour is never removed, whatever the cap: a build may be copying from it. Removal
renames the entry away first (`remove`): a reader then finds a whole entry or none (fetch's open fails and
the compile runs), never a half-deleted one; the renamed directory is deleted after.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from typing import Mapping, NamedTuple

STAMP = ".pruned"
DAY = 24 * 3600
GRACE = 3600  # seconds since its last use during which an entry is never removed
KEEP_DAYS_ENV, KEEP_DAYS = "CRATECAGE_CACHE_KEEP_DAYS", 30.0
MAX_GIB_ENV, MAX_GIB = "CRATECAGE_CACHE_MAX_GIB", 2.0
LEFTOVERS = (".tmp", ".gone")


class Entry(NamedTuple):
    path: str
    used: float  # mtime: last fetched or stored
    size: int  # bytes of its files


def prune_when_due(root: str, environ: Mapping[str, str] = os.environ, now: float | None = None) -> list[str]:
    """`prune` when the stamp in `root` (`<cache>/wasm-compiles`) is a day old or missing and no other
    process holds it; the entries removed."""
    now = time.time() if now is None else now
    stamp = os.path.join(root, STAMP)
    try:
        if now - os.stat(stamp).st_mtime < DAY:
            return []
    except OSError:
        pass
    try:
        fd = os.open(stamp, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []  # another process prunes
        if now - os.fstat(fd).st_mtime < DAY and os.fstat(fd).st_size:
            return []  # pruned while we waited
        os.write(fd, b"x")
        os.utime(stamp, (now, now))
        return prune(root, now=now, keep_days=_setting(environ, KEEP_DAYS_ENV, KEEP_DAYS),
                     max_bytes=int(_setting(environ, MAX_GIB_ENV, MAX_GIB) * 2**30))
    finally:
        os.close(fd)


def prune(root: str, *, now: float, keep_days: float, max_bytes: int) -> list[str]:
    """Remove entries unused for `keep_days`, then the oldest-used beyond `max_bytes` (module docstring)."""
    removed: list[str] = []
    entries = sorted(_entries(root, now), key=lambda e: e.used)
    total = sum(e.size for e in entries)
    for entry in entries:
        if now - entry.used < GRACE:
            break  # sorted: the rest were used in the last hour too
        if now - entry.used <= keep_days * DAY and total <= max_bytes:
            continue
        if remove(entry.path):
            removed.append(entry.path)
            total -= entry.size
    return removed


def remove(where: str) -> bool:
    """Rename the entry away, then delete it; False when it was gone already (another process removed it)."""
    gone = f"{where}.{os.getpid()}.gone"
    try:
        os.rename(where, gone)
    except OSError:
        return False
    shutil.rmtree(gone, ignore_errors=True)
    return True


def _entries(root: str, now: float) -> list[Entry]:
    found: list[Entry] = []
    for shard in _listdir(root):
        shard_dir = os.path.join(root, shard)
        if len(shard) != 2 or not os.path.isdir(shard_dir):
            continue
        for name in _listdir(shard_dir):
            path = os.path.join(shard_dir, name)
            try:
                used = os.lstat(path).st_mtime
            except OSError:
                continue
            if name.endswith(LEFTOVERS):
                if now - used > DAY:  # a crashed store's or removal's
                    shutil.rmtree(path, ignore_errors=True)
                continue
            found.append(Entry(path, used, _size(path)))
    return found


def _size(path: str) -> int:
    total = 0
    for name in _listdir(path):
        try:
            total += os.lstat(os.path.join(path, name)).st_size
        except OSError:
            pass
    return total


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _setting(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
        if value >= 0:
            return value
    except ValueError:
        pass
    print(f"cratecage: warning: {name}={raw} is not a non-negative number: using {default:g}", file=sys.stderr)
    return default
