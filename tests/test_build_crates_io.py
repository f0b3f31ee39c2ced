"""Real crates from crates.io (serde + derive, serde_json, anyhow, libc): their build scripts probe the
compiler through the wrapper and serde_derive expands real code. Built, checked, tested and documented
with and without cratecage; results must match."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun

WS = FIXTURES / "crates-io"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def builds(cargo: Cargo, targets: Path) -> dict[str, tuple[CargoRun, Path]]:
    return cargo.both(WS, "build", "--locked", targets=targets, label="crates-io")


def test_program_output_is_identical(builds: dict) -> None:
    outputs = {}
    for mode, (_, target) in builds.items():
        outputs[mode] = subprocess.run([str(target / "debug" / "uses-crates-io")], capture_output=True,
                                       text=True, check=True).stdout
    assert '{"name":"libc","downloads":42,"build_script":true}' in outputs["plain"]
    assert outputs["wrapped"] == outputs["plain"]


def test_build_scripts_and_macros_of_registry_crates_reach_the_wrapper(builds: dict) -> None:
    run = builds["wrapped"][0]
    kinds = run.kinds()
    assert kinds["serde_derive"] == {"proc-macro"}
    assert "build-script" in kinds["build_script_build"]
    # serde, proc-macro2, anyhow, libc and serde_json each compile a build script; their compiler probes
    # come back through the wrapper as probes.
    build_scripts = [e for e in run.trace if e["kind"] == "build-script"]
    assert len(build_scripts) >= 5
    assert any(e["reason"] == "compile started by a build script" for e in run.trace)


def test_cfgs_from_probing_build_scripts_match(builds: dict) -> None:
    def outputs(target: Path) -> dict[str, str]:
        found = {}
        for f in (target / "debug" / "build").glob("*/output"):
            pkg = f.parent.name.rsplit("-", 1)[0]
            found[pkg] = "\n".join(sorted(line for line in f.read_text().splitlines() if "rustc-cfg" in line))
        return found

    plain, wrapped = outputs(builds["plain"][1]), outputs(builds["wrapped"][1])
    assert "proc-macro2" in plain and "anyhow" in plain
    assert wrapped == plain


@pytest.mark.parametrize("command", [["check", "--all-targets"], ["test"], ["doc", "--no-deps"]])
def test_other_cargo_commands_match(cargo: Cargo, builds: dict, command: list[str]) -> None:
    runs = {mode: cargo(WS, *command, "--locked", wrapped=mode == "wrapped", target_dir=target)
            for mode, (_, target) in builds.items()}
    if command[0] == "test":
        for run in runs.values():
            assert "test tests::roundtrips ... ok" in run.proc.stdout
    if command[0] == "doc":
        for _, target in builds.values():
            assert (target / "doc" / "uses_crates_io" / "index.html").is_file()
    for run in runs.values():
        assert "jobserver" not in run.proc.stderr and "Traceback" not in run.proc.stderr
