"""Fail closed and loud: what cannot be built or run in the sandbox stops the build with a `cratecage:`
message naming the crate and the cause; nothing falls back to native execution."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo

pytestmark = pytest.mark.integration


def test_a_build_dependency_that_does_not_compile_for_wasm_stops_the_build(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=True, target_dir=tmp_path / "t", check=False)
    assert not run.ok
    stderr = run.proc.stderr
    assert "cratecage: unix_only (a dependency of a build script) does not compile for wasm32-wasip1" in stderr
    assert "std::os::unix" in stderr or "unix" in stderr.split("wasm32-wasip1", 1)[1]
    assert "Traceback" not in stderr
    assert not list((tmp_path / "t" / "debug" / "build").glob("wasm-incompatible-*/output"))  # never ran


def test_the_same_crate_builds_natively(cargo: Cargo, tmp_path: Path) -> None:
    run = cargo(FIXTURES / "wasm-incompatible", "build", wrapped=False, target_dir=tmp_path / "t")
    assert "mode is" in run.proc.stderr
