"""Eviction from the per-user cache of wasm compiles (shim.cache_eviction), on a tmp cache: what is
removed (unused for the keep time, then oldest-used beyond the cap), what never is (used in the last hour),
at most once a day, and that using an entry keeps it."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from shim import cache_eviction
from shim.compile import shared_cache

NOW = time.time() + 10 * 24 * 3600  # after the stamp that storing the entries wrote
DAY = cache_eviction.DAY
KIND = cache_eviction.WASM_COMPILES


def entry(cache: Path, n: int, *, used_days_ago: float, size: int = 100) -> Path:
    """A stored entry of `size` bytes, last used `used_days_ago` before NOW."""
    src = cache.parent / f"src{n}"
    src.mkdir(exist_ok=True)
    data = bytes([n % 256]) * size
    (src / f"lib{n}.rlib").write_bytes(data)
    key = hashlib.sha256(str(n).encode()).hexdigest()
    shared_cache.store(str(cache), key, str(src), {f"lib{n}.rlib": hashlib.sha256(data).hexdigest()})
    where = cache / shared_cache.DIR / key[:2] / key
    os.utime(where, (NOW - used_days_ago * DAY,) * 2)
    return where


def prune(cache: Path, keep_days: float = 30, max_bytes: int = 10**9) -> list[str]:
    return cache_eviction.prune(str(cache / shared_cache.DIR), KIND, now=NOW, keep_days=keep_days,
                                max_bytes=max_bytes)


def test_entries_unused_for_the_keep_time_are_removed_and_recent_ones_stay(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old, recent = entry(cache, 1, used_days_ago=31), entry(cache, 2, used_days_ago=29)
    assert prune(cache) == [str(old)]
    assert not old.exists() and recent.is_dir()
    assert not [p for p in old.parent.iterdir() if p.name.endswith(".gone")]  # renamed away, then deleted


def test_beyond_the_cap_the_oldest_used_go_first_but_never_one_used_in_the_last_hour(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a = entry(cache, 1, used_days_ago=3, size=1000)
    b = entry(cache, 2, used_days_ago=2, size=1000)
    c = entry(cache, 3, used_days_ago=1, size=1000)
    busy = entry(cache, 4, used_days_ago=1 / 24 / 4, size=5000)  # 15 minutes ago: a build may be copying it
    removed = prune(cache, max_bytes=2500)
    assert removed == [str(a), str(b), str(c)]
    assert busy.is_dir()


def test_a_cap_met_by_removing_the_oldest_keeps_the_rest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    paths = [entry(cache, n, used_days_ago=10 - n, size=1000) for n in range(4)]
    sizes = sum(f.stat().st_size for p in paths[2:] for f in p.iterdir())
    assert prune(cache, max_bytes=sizes) == [str(paths[0]), str(paths[1])]
    assert all(p.is_dir() for p in paths[2:])


def test_using_an_entry_touches_it_so_it_is_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    where = entry(cache, 1, used_days_ago=40)
    assert shared_cache.fetch(str(cache), where.name, str(tmp_path / "dest")) is not None
    assert cache_eviction.prune(str(cache / shared_cache.DIR), KIND, now=where.stat().st_mtime + 60, keep_days=30,
                                max_bytes=10**9) == []


def test_pruning_runs_at_most_once_a_day_per_cache_and_reads_its_settings(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = str(cache / shared_cache.DIR)
    old = entry(cache, 1, used_days_ago=5)
    env = {cache_eviction.KEEP_DAYS_ENV: "4"}
    assert cache_eviction.prune_when_due(root, KIND, env, now=NOW) == [str(old)]
    again = entry(cache, 2, used_days_ago=5)
    assert cache_eviction.prune_when_due(root, KIND, env, now=NOW + DAY / 2) == []  # the stamp is not a day old
    assert again.is_dir()
    assert cache_eviction.prune_when_due(root, KIND, env, now=NOW + DAY + 1) == [str(again)]


def test_a_malformed_setting_keeps_the_default_and_says_so(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    cache = tmp_path / "cache"
    kept = entry(cache, 1, used_days_ago=5)
    assert cache_eviction.prune_when_due(str(cache / shared_cache.DIR), KIND, {cache_eviction.KEEP_DAYS_ENV: "soon"},
                                         now=NOW) == []
    assert kept.is_dir()
    assert capsys.readouterr().err.count("cratecage: warning: CRATECAGE_CACHE_KEEP_DAYS") == 1


def test_leftovers_of_a_crashed_store_are_removed_after_a_day(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    where = entry(cache, 1, used_days_ago=1)
    stale, fresh = Path(f"{where}.123.tmp"), Path(f"{where}.456.tmp")
    for path, age in ((stale, 2 * DAY), (fresh, 60)):
        path.mkdir()
        os.utime(path, (NOW - age,) * 2)
    prune(cache)
    assert not stale.exists() and fresh.is_dir() and where.is_dir()
