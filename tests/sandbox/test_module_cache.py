"""The per-user cache of compiled modules (shim.sandbox.engine.load_module, `<cache>/modules`), on a tmp
cache with real wasm under wasmtime: a load reuses the serialized module and marks it used (not more often
than TOUCH_EVERY), a module removed or broken under a loader is compiled again, and storing a new one
prunes the cache when due (shim.cache_eviction: unused for the keep time, oldest-used beyond its share of
the cap, never one used in the last hour, a crashed store's temp files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import wasmtime

from shim import cache_eviction
from shim.sandbox import engine

DAY = cache_eviction.DAY
KIND = cache_eviction.MODULES
ENGINE = engine.engine_and_config()


def wasm_file(tmp_path: Path, answer: int) -> Path:
    path = tmp_path / f"answer{answer}.wasm"
    path.write_bytes(wasmtime.wat2wasm(f'(module (func (export "answer") (result i32) i32.const {answer}))'))
    return path


def answer_of(module) -> int:  # type: ignore[no-untyped-def]
    store = wasmtime.Store(ENGINE)
    store.set_epoch_deadline(1)  # the engine interrupts by epochs
    return wasmtime.Instance(store, module, []).exports(store)["answer"](store)


def cwasm(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.cwasm"))


def aged(path: Path, seconds: float) -> float:
    when = time.time() - seconds
    os.utime(path, (when, when))
    return when


def test_a_second_load_deserializes_the_stored_module(tmp_path: Path) -> None:
    cache, wasm = tmp_path / "modules", wasm_file(tmp_path, 7)
    assert answer_of(engine.load_module(ENGINE, wasm, cache)) == 7
    [stored] = cwasm(cache)
    inode = stored.stat().st_ino
    assert answer_of(engine.load_module(ENGINE, wasm, cache)) == 7
    assert cwasm(cache) == [stored] and stored.stat().st_ino == inode  # not written again
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_a_load_touches_a_module_only_when_its_mark_is_older_than_touch_every(tmp_path: Path) -> None:
    cache, wasm = tmp_path / "modules", wasm_file(tmp_path, 1)
    engine.load_module(ENGINE, wasm, cache)
    [stored] = cwasm(cache)
    recent = aged(stored, cache_eviction.TOUCH_EVERY / 2)
    engine.load_module(ENGINE, wasm, cache)
    assert stored.stat().st_mtime == recent  # no syscall spent on a module marked minutes ago
    aged(stored, 40 * DAY)
    engine.load_module(ENGINE, wasm, cache)
    assert time.time() - stored.stat().st_mtime < 60
    assert cache_eviction.prune(str(cache), KIND, now=time.time() + 60, keep_days=30, max_bytes=10**9) == []


def test_a_module_removed_just_before_it_is_read_is_compiled_again(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    cache, wasm = tmp_path / "modules", wasm_file(tmp_path, 3)
    engine.load_module(ENGINE, wasm, cache)
    [stored] = cwasm(cache)
    aged(stored, 2 * DAY)
    touch = cache_eviction.touch_if_stale

    def evicted_meanwhile(path: str, mtime: float) -> None:  # another process's prune, between stat and read
        assert cache_eviction.remove(path)
        touch(path, mtime)

    monkeypatch.setattr(cache_eviction, "touch_if_stale", evicted_meanwhile)
    assert answer_of(engine.load_module(ENGINE, wasm, cache)) == 3
    assert cwasm(cache) == [stored]  # stored again


def test_a_broken_module_file_is_replaced(tmp_path: Path) -> None:
    cache, wasm = tmp_path / "modules", wasm_file(tmp_path, 5)
    engine.load_module(ENGINE, wasm, cache)
    [stored] = cwasm(cache)
    stored.write_bytes(b"not a module")
    assert answer_of(engine.load_module(ENGINE, wasm, cache)) == 5
    assert stored.read_bytes() != b"not a module"


def test_pruning_keeps_recent_modules_and_removes_old_and_oldest_beyond_the_cap(tmp_path: Path) -> None:
    cache = tmp_path / "modules"
    cache.mkdir()
    now = time.time()

    def module(name: str, used_days_ago: float, size: int = 1000) -> Path:
        path = cache / f"{name}.cwasm"
        path.write_bytes(b"m" * size)
        os.utime(path, (now - used_days_ago * DAY,) * 2)
        return path

    stale = module("stale", 31)
    a, b, c = module("a", 3), module("b", 2), module("c", 1)
    busy = module("busy", 1 / 24 / 2, size=5000)  # half an hour ago: a build may have just loaded it
    crashed, writing = cache / ".x.123.tmp", cache / ".y.456.tmp"
    for path, age in ((crashed, 2 * DAY), (writing, 60)):
        path.write_bytes(b"half")
        os.utime(path, (now - age,) * 2)
    (cache / cache_eviction.STAMP).write_bytes(b"x")
    removed = cache_eviction.prune(str(cache), KIND, now=now, keep_days=30, max_bytes=6500)
    assert removed == [str(stale), str(a), str(b)]
    assert c.is_file() and busy.is_file() and writing.is_file() and (cache / cache_eviction.STAMP).is_file()
    assert not crashed.exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".gone")]  # renamed away, then deleted


def test_storing_a_new_module_prunes_when_due_with_its_share_of_the_cap(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    cache = tmp_path / "modules"
    cache.mkdir()
    old = cache / "old.cwasm"
    old.write_bytes(b"m" * 10_000)
    aged(old, 2 * DAY)  # within the keep time: only the cap removes it
    # A cap of 15,000 bytes in all: the modules' two thirds (10,000) leave no room beside the new module.
    monkeypatch.setenv(cache_eviction.MAX_GIB_ENV, str(15_000 / 2**30))
    engine.load_module(ENGINE, wasm_file(tmp_path, 9), cache)
    assert not old.exists() and len(cwasm(cache)) == 1
    assert (cache / cache_eviction.STAMP).is_file()
    again = cache / "again.cwasm"
    again.write_bytes(b"m" * 10_000)
    aged(again, 2 * DAY)
    engine.load_module(ENGINE, wasm_file(tmp_path, 10), cache)
    assert again.is_file()  # pruned less than a day ago: not again
