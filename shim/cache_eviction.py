"""Keeping cratecage's per-user caches bounded: the wasm compiles of registry crates (`<cache>/wasm-compiles`,
shim.compile.shared_cache) and wasmtime's compiled modules (`<cache>/modules`, shim.sandbox.engine).

Why: every new target directory, checkout or toolchain adds entries to both (a test run adds dozens of
wasm compiles and hundreds of modules: every build script and macro guest is a new wasm file), and nothing
else removes them. An entry is a directory (a wasm compile, under a two-character shard) or a file (a
module). Using an entry touches it (shared_cache.fetch before reading it; engine.load_module only when the
mtime is older than `TOUCH_EVERY`, to keep a syscall off most runs), so an entry's mtime is when a build last
used or stored it, give or take `TOUCH_EVERY`. At most once a day per cache (the `.pruned` stamp, taken
under a lock by one process, after a store), `prune` removes the entries no build used for `KEEP_DAYS_ENV`
days (default 30), then the oldest-used ones until the rest fit in the cache's share of `MAX_GIB_ENV` GiB
(default 6: a third for wasm compiles, two thirds for modules, the larger and the cheaper to make again),
and what a crashed store left behind (`*.tmp`, `*.gone` older than a day).

An entry used in the last hour is never removed, whatever the cap: a build may be copying from it. Removal
renames the entry away first (`remove`): a reader then finds a whole entry or none (fetch's open or the
module's deserialize fails and the compile runs), never a half-deleted one; the renamed entry is deleted
after. A module already loaded is mapped: removing its file does not change what the loader runs.
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
TOUCH_EVERY = 600  # seconds: a module's load touches its file only when the mtime is older than this
GRACE = 3600 + TOUCH_EVERY  # seconds since its mtime during which an entry is never removed (an hour of use)
KEEP_DAYS_ENV, KEEP_DAYS = "CRATECAGE_CACHE_KEEP_DAYS", 30.0
MAX_GIB_ENV, MAX_GIB = "CRATECAGE_CACHE_MAX_GIB", 6.0
LEFTOVERS = (".tmp", ".gone")


class Kind(NamedTuple):
    """How a cache lays out its entries, and its share of the size cap."""

    sharded: bool  # entries are `<root>/<2 chars>/<key>` (else `<root>/<name>`, hidden names not entries)
    share: float  # of MAX_GIB_ENV


WASM_COMPILES = Kind(sharded=True, share=1 / 3)
MODULES = Kind(sharded=False, share=2 / 3)


class Entry(NamedTuple):
    path: str
    used: float  # mtime: last fetched or stored
    size: int  # bytes of its files


def prune_when_due(root: str, kind: Kind, environ: Mapping[str, str] = os.environ,
                   now: float | None = None) -> list[str]:
    """`prune` when the stamp in `root` is a day old or missing and no other process holds it; the entries
    removed."""
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
        return prune(root, kind, now=now, keep_days=_setting(environ, KEEP_DAYS_ENV, KEEP_DAYS),
                     max_bytes=int(_setting(environ, MAX_GIB_ENV, MAX_GIB) * kind.share * 2**30))
    finally:
        os.close(fd)


def prune(root: str, kind: Kind, *, now: float, keep_days: float, max_bytes: int) -> list[str]:
    """Remove entries unused for `keep_days`, then the oldest-used beyond `max_bytes` (module docstring)."""
    removed: list[str] = []
    entries = sorted(_entries(root, kind, now), key=lambda e: e.used)
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
    """Rename the entry (a directory or a file) away, then delete it; False when it was gone already
    (another process removed it)."""
    gone = f"{where}.{os.getpid()}.gone"
    try:
        os.rename(where, gone)
    except OSError:
        return False
    _delete(gone)
    return True


def touch(path: str) -> None:
    """Mark an entry used now; a missing entry (its reader finds out) or a cache this user may read but not
    touch is left as it is."""
    try:
        os.utime(path)
    except OSError:
        pass


def touch_if_stale(path: str, mtime: float, now: float | None = None) -> None:
    """Mark a file entry used (module docstring: only when its mtime is older than TOUCH_EVERY)."""
    now = time.time() if now is None else now
    if now - mtime > TOUCH_EVERY:
        touch(path)


def _entries(root: str, kind: Kind, now: float) -> list[Entry]:
    if not kind.sharded:
        return _entries_in(root, now, lambda name: not name.startswith("."))
    found: list[Entry] = []
    for shard in _listdir(root):
        shard_dir = os.path.join(root, shard)
        if len(shard) == 2 and os.path.isdir(shard_dir):
            found += _entries_in(shard_dir, now, lambda name: True)
    return found


def _entries_in(where: str, now: float, is_entry) -> list[Entry]:  # type: ignore[no-untyped-def]
    found: list[Entry] = []
    for name in _listdir(where):
        path = os.path.join(where, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if name.endswith(LEFTOVERS):
            if now - st.st_mtime > DAY:  # a crashed store's or removal's
                _delete(path)
        elif is_entry(name):
            found.append(Entry(path, st.st_mtime, _size(path) if os.path.isdir(path) else st.st_size))
    return found


def _delete(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


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
