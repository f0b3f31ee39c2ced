"""Fail closed and loud: what cannot be built or run in the sandbox stops the build with a `cratecage:`
message naming the crate and the cause; nothing falls back to native execution."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, own_lines
from target_dirs import script_runs

pytestmark = pytest.mark.integration


def test_a_build_dependency_that_does_not_compile_for_wasm_stops_the_build(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=True, target_dir=tmp_path / "t", check=False)
    assert not run.ok
    stderr = run.proc.stderr
    assert "cratecage: build-dependency unix-only 0.1.0 (of the build script of wasm-incompatible 0.1.0) does not " \
           "compile for wasm32-wasip1" in stderr
    assert "std::os::unix" in stderr or "unix" in stderr.split("wasm32-wasip1", 1)[1]
    assert "it uses an API that wasm32-wasip1 does not have" in stderr  # rustc: configured out (E0433)
    assert "a crate that needs a native-only API cannot be a build-dependency" in stderr
    assert "Traceback" not in stderr
    assert not script_runs(tmp_path / "t", "wasm-incompatible")  # never ran


def test_a_build_dependency_that_fails_for_another_reason_gets_no_native_only_advice(
        selected_cargo: Cargo, tmp_path: Path) -> None:
    """A `const` assertion that pointers are 64 bits: rustc's first error is the cause, and no API is missing."""
    run = selected_cargo(FIXTURES / "wasm-pointer-width", "build", wrapped=True, target_dir=tmp_path / "t",
                         check=False)
    assert not run.ok
    line, = [line for line in own_lines(run.proc.stderr) if "does not compile" in line]
    assert line == ("cratecage: build-dependency sixty-four 0.1.0 (of the build script of wasm-pointer-width "
                    "0.1.0) does not compile for wasm32-wasip1: error[E0080]: evaluation panicked: this crate "
                    "supports 64-bit targets only")
    assert "native-only" not in run.proc.stderr
    assert '`sandbox = "native"` in `[permissions.build.wasm-pointer-width]`' in run.proc.stderr
    assert not script_runs(tmp_path / "t", "wasm-pointer-width")


def test_the_same_crate_builds_natively(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=False, target_dir=tmp_path / "t")
    assert "mode is" in run.proc.stderr


def test_host_only_rustflags_are_dropped_from_wasm_compiles(cargo: Cargo, tmp_path: Path) -> None:
    flags = {"RUSTFLAGS": "-C target-cpu=native -C force-frame-pointers=yes"}
    run = cargo(FIXTURES / "demo", "build", wrapped=True, target_dir=tmp_path / "t", extra_env=flags)
    dropped = [e for e in run.trace if e["kind"] == "replay-dropped"]
    assert dropped and dropped[0]["crate"] == "gen_consts"
    assert {"target-cpu=native", "force-frame-pointers=yes"} <= set(dropped[0]["flags"])
