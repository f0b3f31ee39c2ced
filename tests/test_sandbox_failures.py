"""Fail closed and loud: what cannot be built or run in the sandbox stops the build with a `cratecage:`
message naming the crate and the cause; nothing falls back to native execution."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo
from target_dirs import script_runs

pytestmark = pytest.mark.integration


def test_a_build_dependency_that_does_not_compile_for_wasm_stops_the_build(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=True, target_dir=tmp_path / "t", check=False)
    assert not run.ok
    stderr = run.proc.stderr
    assert "cratecage: build-dependency unix-only 0.1.0 (of the build script of wasm-incompatible 0.1.0) does not " \
           "compile for wasm32-wasip1" in stderr
    assert "std::os::unix" in stderr or "unix" in stderr.split("wasm32-wasip1", 1)[1]
    assert "Traceback" not in stderr
    assert not script_runs(tmp_path / "t", "wasm-incompatible")  # never ran


def test_the_same_crate_builds_natively(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=False, target_dir=tmp_path / "t")
    assert "mode is" in run.proc.stderr


def test_host_only_rustflags_are_dropped_from_wasm_compiles(cargo: Cargo, tmp_path: Path) -> None:
    flags = {"RUSTFLAGS": "-C target-cpu=native -C force-frame-pointers=yes"}
    run = cargo(FIXTURES / "demo", "build", wrapped=True, target_dir=tmp_path / "t", extra_env=flags)
    dropped = [e for e in run.trace if e["kind"] == "replay-dropped"]
    assert dropped and dropped[0]["crate"] == "gen_consts"
    assert {"target-cpu=native", "force-frame-pointers=yes"} <= set(dropped[0]["flags"])
