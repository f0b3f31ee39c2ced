"""Both build-dir layouts of cargo (notes/cargo-build-dir-layout.md), through the real wrapper: each
toolchain of the `cargo` fixture really builds in the layout its test id names (so a stable cargo that
switches layout is noticed here, not as a puzzling failure elsewhere), and cratecage keeps one state
directory per build directory in both (shim.cargo.layout), where `cratecage audit` finds it, `build.build-dir`
and `--target` builds included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, scrubbed
from target_dirs import build_script_binaries

DEMO = FIXTURES / "demo"
pytestmark = pytest.mark.integration
OPT_OUT = "__CARGO_TEMPORARY_BUILD_DIR_NEW_LAYOUT_OPT_OUT"


def host_triple(cargo: Cargo) -> str:
    out = subprocess.run([cargo.env["RUSTC"], "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: "))


def test_cargo_builds_in_the_layout_its_test_id_names(cargo: Cargo, targets: Path) -> None:
    target = targets / "layout-plain"
    cargo(DEMO, "build", wrapped=False, target_dir=target)
    build = target / "debug" / "build"
    new = sorted(build.glob("app/*/out/build_script_build"))
    old = sorted(build.glob("app-*/build-script-build"))
    if cargo.new_layout:
        assert new and not old and not (target / "debug" / "deps").exists(), \
            f"{cargo.env['RUSTC']} no longer builds in cargo's new build-dir layout: pick another toolchain " \
            "for the [new-layout] tests (tests/conftest.py NEW_LAYOUT_TOOLCHAIN, Makefile)"
    else:
        assert old and not new and (target / "debug" / "deps").is_dir(), \
            f"the selected toolchain {cargo.env['RUSTC']} builds in cargo's new build-dir layout now: the " \
            f"[old-layout] tests need one that does not (or {OPT_OUT}=1 while cargo offers it)"


def state_of(target: Path) -> dict[str, list[Path]]:
    """What cratecage keeps of a build, wherever it is below `target`."""
    return {"state dirs": sorted(p for p in target.rglob("cratecage") if p.is_dir()),
            "journals": sorted(target.rglob("journal/libgen_consts-*.rlib.args")),
            "modules": sorted(target.rglob("build_script_build*.wasm")),
            "audit logs": sorted(target.rglob("audit.jsonl"))}


@pytest.mark.parametrize("kind", ["host", "explicit-target"])
def test_cratecage_keeps_one_state_dir_at_the_root_of_the_build_dir(cargo: Cargo, targets: Path,
                                                                     kind: str) -> None:
    target = targets / f"layout-state-{kind}"
    args = ["--target", host_triple(cargo)] if kind == "explicit-target" else []
    run = cargo(DEMO, "build", *args, wrapped=True, target_dir=target)
    assert run.replays() == ["gen_consts"]
    state = target / "cratecage"
    assert state_of(target) == {
        "state dirs": [state],
        "journals": sorted(state.glob("journal/libgen_consts-*.rlib.args")),
        "modules": sorted(state.glob("build/app-*/build_script_build*.wasm")),
        "audit logs": [state / "audit.jsonl"],
    }
    # gen_consts is a build-dependency and (other features) a dependency; with --target the latter is a
    # target unit, which is never journaled
    assert len(state_of(target)["journals"]) == (2 if kind == "host" else 1)
    assert len(state_of(target)["modules"]) == 1
    [launcher] = [p for p in build_script_binaries(target) if p.read_bytes()[:2] == b"#!"]
    assert str(state_of(target)["modules"][0]).encode() in launcher.read_bytes()  # cargo runs the launcher


def audit(cwd: Path, cargo: Cargo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WRAPPER), "audit", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**scrubbed(dict(os.environ)), **cargo.env, **env})


def test_audit_finds_the_log_in_a_build_dir_outside_the_target_dir(cargo: Cargo, targets: Path) -> None:
    """`build.build-dir` elsewhere: the units, and so cratecage's state, are there; the target dir gets only
    cargo's final artifacts. `cratecage audit` asks cargo where its build dir is."""
    target, build_dir = targets / "layout-artifacts", targets / "layout-build-dir"
    env = {"CARGO_BUILD_BUILD_DIR": str(build_dir)}
    run = cargo(DEMO, "build", wrapped=True, target_dir=target, extra_env=env)
    assert run.replays() == ["gen_consts"]
    assert (build_dir / "cratecage" / "audit.jsonl").is_file()
    assert state_of(target)["state dirs"] == []
    assert subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True,
                          check=True).stdout.count("build script ran as wasm: true") == 1
    for args in ([], [str(target)]):
        found = audit(DEMO, cargo, *args, CARGO_TARGET_DIR=str(target), **env)
        assert found.returncode == 0, found.stderr
        assert "ran as wasm in the sandbox: 1 build script (0 failed)" in found.stdout
    elsewhere = audit(DEMO, cargo, str(targets / "layout-no-such-dir"), CARGO_TARGET_DIR=str(target), **env)
    assert elsewhere.returncode != 0 and elsewhere.stderr.startswith("cratecage: no sandboxed runs recorded")


def test_audit_without_an_argument_reads_the_target_dir_cargo_uses(cargo: Cargo, targets: Path) -> None:
    target = targets / "layout-audit"
    cargo(DEMO, "build", wrapped=True, target_dir=target)
    found = audit(DEMO, cargo, CARGO_TARGET_DIR=str(target))
    assert found.returncode == 0, found.stderr
    assert "app " in found.stdout and "ran as wasm in the sandbox: 1 build script (0 failed)" in found.stdout
