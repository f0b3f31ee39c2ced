"""Build scripts that use std APIs wasm32-wasip1 lacks (issue 11, class 4), built with cargo through the
wrapper: threads spawned and joined (fixtures/thread-demo, empty policy), and the real cmake crate, which
splits and joins `PATH`-style lists, driving a tiny CMake project (fixtures/cmake-demo) with `cmake` and
the C compilers granted. The guest-side answers themselves are tested in tests/toolchain/test_facade_gaps.py.

The layout cannot matter to any of this: `selected_cargo`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo
from target_dirs import build_script_binaries

pytestmark = pytest.mark.integration


def program_output(target: Path, name: str) -> str:
    return subprocess.run([str(target / "debug" / name)], capture_output=True, text=True, check=True).stdout


def audit_events(target: Path, event: str) -> list[dict]:
    log = target / "cratecage" / "audit.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event]


# -- threads ----------------------------------------------------------------------------------------------

def test_a_build_script_that_joins_its_threads_builds_with_an_empty_policy(
        selected_cargo: Cargo, tmp_path: Path) -> None:
    builds = selected_cargo.both(FIXTURES / "thread-demo", "build", "--locked", targets=tmp_path, label="threads")
    plain = program_output(builds["plain"][1], "thread-demo")
    wrapped = program_output(builds["wrapped"][1], "thread-demo")
    assert plain == "build script ran as native code: nesting 18000, squares 385, SCOPED THREADS\n"
    assert wrapped == plain.replace("native code", "wasm")
    launchers = build_script_binaries(builds["wrapped"][1])  # thread-demo's only: it has no dependencies
    assert launchers and all(b"# cratecage: this build script runs as WebAssembly" in p.read_bytes()[:300]
                             for p in launchers)


# -- the cmake crate --------------------------------------------------------------------------------------

CMAKE_POLICY = """[permissions.build.cmake-demo]
process-spawn = { action = "permit", programs = ["cmake", "cc", "c++"] }
filesystem-access = { action = "permit", paths = [%s] }
"""


@pytest.fixture(scope="module")
def cmake_build(selected_cargo: Cargo,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The cmake-demo package built through the wrapper with `cmake`, `cc` and `c++` granted, and CMake's own
    modules readable (no curated profile names them yet)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is not installed: run `make c-tools`")
    package = tmp_path_factory.mktemp("cmake") / "cmake-demo"
    script = package.parent / "root.cmake"
    script.write_text('message("${CMAKE_ROOT}")\n')  # CMake's modules, e.g. /usr/share/cmake-3.25
    root = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, check=True).stderr.strip()
    shutil.copytree(FIXTURES / "cmake-demo", package)
    (package / "cratecage.toml").write_text(CMAKE_POLICY % json.dumps(root))
    target = package.parent / "target"
    run = selected_cargo(package, "build", "--locked", wrapped=True, target_dir=target, check=False)
    return run.proc, target


def test_the_cmake_crate_reaches_cmake_with_its_paths_joined(cmake_build: tuple) -> None:
    """cmake-rs calls `env::split_paths`/`join_paths` before it configures (wasm32-wasip1's std panics
    there): the granted `cmake` runs with the configure command cmake-rs builds."""
    proc, target = cmake_build
    assert "unsupported" not in proc.stderr
    spawns = [e["argv"] for e in audit_events(target, "spawn") if e["argv"][0] == "cmake"]
    assert ["cmake", "--version"] in spawns
    configure = next(argv for argv in spawns if argv[1:2] != ["--version"])
    install = next(arg for arg in configure if arg.startswith("-DCMAKE_INSTALL_PREFIX="))
    assert Path(install.split("=", 1)[1]).name == "out" and "-DCMAKE_C_COMPILER=cc" in configure


def test_the_cmake_crate_builds_and_links_the_cmake_project(cmake_build: tuple) -> None:
    proc, target = cmake_build
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert program_output(target, "cmake-demo") == "answer: 42\n"
