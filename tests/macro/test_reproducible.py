"""Sandboxed build scripts and proc macros side by side at `-j2`, twice from clean: identical artifacts.

fixtures/repro-mixed mixes every kind of build-time code cratecage runs as wasm: serde + serde_json with
derive and thiserror from crates.io, a build script of the workspace's own that generates code, a build
script that itself uses a proc macro (thiserror's derive from its build-dependency, so the macro server runs
during a confined wasm compile), and a proc-macro crate of the workspace's own whose build script hands the
macro a value through `cargo:rustc-env`. It is built through the wrapper with `-j2`, the target directory
moved aside, and built again into the same path: every file of the two target directories must be the same
bytes (rlibs, the binary, the trampoline dylibs, the wasm modules and everything else under `cratecage/`,
OUT_DIR contents, `.d` files), but for the few `SAME_MEANING` files, each named with its reason and
compared for what they say. The same path
for both builds because rustc itself writes the target directory's path into what it builds (the OUT_DIR
files `include!`d into an rlib's metadata and the binary's debuginfo, the `.d` files): building into two
paths would compare rustc's behaviour, not cratecage's. Each build starts with an empty cratecage cache
(`CRATECAGE_CACHE_DIR`, private to the test, at one path; only the compiled modules are the user's), so the
units running at once race to build the std facade and the wasm `proc_macro` crate, as on a fresh machine
(the unit that won the race used to write its own working directory into the facade). The program must
print the same, and no process of either build (rustc, a macro server, a wasm run) may outlive it.

One layout (`selected_cargo`): what is compared is cratecage's output, which the layout only moves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from conftest import FIXTURES, Cargo, assert_nothing_outlives
from shim.files import cache_root

pytestmark = pytest.mark.integration

WORKSPACE = FIXTURES / "repro-mixed"

# Where two clean builds may differ in bytes but not in meaning, for reasons outside cratecage's outputs: a
# pattern on the path relative to the target directory, the reason, and what is compared instead.
def _json(data: bytes) -> object:
    return json.loads(data)


def _strings(data: bytes) -> object:
    return len(data), sorted(re.findall(rb"[\x20-\x7e]{2,}", data))


def _events(data: bytes) -> object:
    volatile = ("time", "seconds", "run")
    return sorted(json.dumps({k: v for k, v in json.loads(line).items() if k not in volatile}, sort_keys=True)
                  for line in data.splitlines())


SAME_MEANING: list[tuple[str, str, Callable[[bytes], object]]] = [
    (r"^\.rustc_info\.json$", "cargo's cache of rustc's answers, a hash map written in its process's order", _json),
    (r"(^|/)\.fingerprint/[^/]+/dep-", "cargo's encoded dep-info: the files of rustc's `.d` (which are compared "
     "byte for byte) in the order of a hash map of cargo's process", _strings),
    (r"^cratecage/audit\.jsonl$", "the audit log: when each run happened, how long it took, in which order the "
     "parallel runs ended (every event is compared, without its time)", _events),
]
# No incremental compilation: rustc names the object files in an incremental session's rlib with a random
# suffix (libcodegen-*.rlib's member `codegen-*.<cgu>.<random>.rcgu.o`), and its session directories by time.
INCREMENTAL_OFF = {"CARGO_INCREMENTAL": "0"}
# The one part of the cratecage cache the builds share with the user's: wasmtime's compiled modules, keyed by
# the module's bytes, so they cannot change what a build writes (and compiling them again costs half a minute).
MODULES = "modules"


def files(target: Path) -> dict[str, Path]:
    """Every file and symbolic link under `target`, by its path relative to it."""
    return {path.relative_to(target).as_posix(): path for path in sorted(target.rglob("*"))
            if path.is_file() or path.is_symlink()}


def different(rel: str, a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return not (a.is_symlink() and b.is_symlink() and a.readlink() == b.readlink())
    before, after = a.read_bytes(), b.read_bytes()
    if before == after:
        return False
    meaning = next((same for pattern, _why, same in SAME_MEANING if re.search(pattern, rel)), None)
    return meaning is None or meaning(before) != meaning(after)


def fresh_cache(cache: Path) -> None:
    """An empty cratecage cache at `cache` but for the compiled modules, the user's (`MODULES`)."""
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    (cache / MODULES).symlink_to(cache_root(dict(os.environ)) / MODULES, target_is_directory=True)


def build(cargo: Cargo, target: Path, cache: Path, mark: Path) -> str:
    """A clean `-j2` build through the wrapper, with a fresh cratecage cache of its own at `cache`; the
    program's output."""
    assert not target.exists()
    fresh_cache(cache)
    cargo(WORKSPACE, "build", "--locked", "-j2", wrapped=True, target_dir=target,
          extra_env={**INCREMENTAL_OFF, "CRATECAGE_CACHE_DIR": str(cache)})
    assert_nothing_outlives(mark)
    done = subprocess.run([str(target / "debug" / "repro-app")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_mixed_build_at_j2_twice_from_clean_gives_identical_artifacts(selected_cargo: Cargo,
                                                                       tmp_path: Path) -> None:
    target, first, cache = tmp_path / "target", tmp_path / "first", tmp_path / "cache"
    output = build(selected_cargo, target, cache, tmp_path)
    target.rename(first)
    assert build(selected_cargo, target, cache, tmp_path) == output

    assert '"primes":[2,3,5,7,11]' in output and "no release named x" in output
    assert "stamp: hello/salt-0-3-1" in output and "greeting: stamped (greeting/salt-0-3-1)" in output
    assert "codegen: loud: 90 dB 2" in output

    before, after = files(first), files(target)
    assert sorted(before) == sorted(after)
    assert [rel for rel in before if different(rel, before[rel], after[rel])] == []
    kinds = {rel.rsplit(".", 1)[-1] for rel in before}
    assert {"rlib", "so", "wasm", "d", "stamp"} <= kinds  # what the comparison must have covered
    assert any(rel.startswith("cratecage/macro-servers/lib") for rel in before)  # the trampolines' records
