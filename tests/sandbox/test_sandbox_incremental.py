"""Sandboxed build scripts and cargo's freshness: no-op builds stay fresh, edits rerun exactly what they
should, and parallel builds replay each shared build-dependency once."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo
from target_dirs import runs_a_build_script, script_runs, unit_package

pytestmark = pytest.mark.integration


@pytest.fixture()
def demo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", dst)
    # the script's rerun-if-env-changed=DEMO_TRIGGER reaches cargo only for a variable the script may see
    (dst / "cratecage.toml").write_text('[permissions.build.app]\n'
                                        'env-access = { action = "permit", vars = ["DEMO_TRIGGER"] }\n')
    return dst


def ran_build_script(stderr: str) -> bool:
    """With -v cargo says `Running `<...>/build-script-build`` (new layout: `.../out/build_script_build`)
    for each run (and replays cached warnings)."""
    return any(runs_a_build_script(line) for line in stderr.splitlines())


def test_no_op_builds_are_fresh_and_edits_rerun_the_right_things(cargo: Cargo, demo_copy: Path,
                                                                 tmp_path: Path) -> None:
    target = tmp_path / "target"
    first = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target)
    assert ran_build_script(first.proc.stderr)
    for _ in range(2):  # two no-op builds in a row: nothing compiled, nothing run, no rustc call at all
        again = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target)
        assert "Compiling" not in again.proc.stderr and not ran_build_script(again.proc.stderr), again.proc.stderr
        assert again.trace == []
    time.sleep(1.1)  # mtime granularity of some filesystems
    (demo_copy / "helper" / "src" / "lib.rs").write_text(
        (demo_copy / "helper" / "src" / "lib.rs").read_text() + "\n// touched\n")
    unrelated = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target)
    assert not ran_build_script(unrelated.proc.stderr)
    assert not any(e["kind"] == "build-script" for e in unrelated.trace)
    assert "Compiling helper" in unrelated.proc.stderr
    os.utime(demo_copy / "app" / "build.rs")
    touched = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target)
    assert [e["crate"] for e in touched.trace if e["kind"] == "build-script"] == ["build_script_build"]
    assert ran_build_script(touched.proc.stderr)
    trigger = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target, extra_env={"DEMO_TRIGGER": "x"})
    assert ran_build_script(trigger.proc.stderr)  # rerun-if-env-changed reached cargo from the sandbox
    assert not any(e["kind"] == "build-script" for e in trigger.trace)  # rerun, not recompiled


def test_rerun_if_env_changed_of_an_ungranted_variable_never_reaches_cargo(cargo: Cargo, demo_copy: Path,
                                                                          tmp_path: Path) -> None:
    """cargo would store the variable's value in the target dir's fingerprint: without a grant the line is
    dropped, so a change of the variable reruns nothing, and the value is nowhere under the target dir."""
    (demo_copy / "cratecage.toml").unlink()
    target = tmp_path / "target"
    cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target)
    token = "TRIGGER" + os.urandom(6).hex()
    trigger = cargo(demo_copy, "build", "-v", wrapped=True, target_dir=target, extra_env={"DEMO_TRIGGER": token})
    assert not ran_build_script(trigger.proc.stderr)
    assert not any(token.encode() in f.read_bytes() for f in target.rglob("*") if f.is_file())


def test_turning_the_wrapper_on_over_a_native_target_dir_rebuilds(cargo: Cargo, demo_copy: Path,
                                                                  tmp_path: Path) -> None:
    target = tmp_path / "target"
    cargo(demo_copy, "build", wrapped=False, target_dir=target)
    wrapped = cargo(demo_copy, "build", wrapped=True, target_dir=target)
    assert any(e["kind"] == "build-script" for e in wrapped.trace)
    out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
    assert "build script ran as wasm: true" in out
    back = cargo(demo_copy, "build", "-v", wrapped=False, target_dir=target)
    if cargo.hashes_our_version_line:
        assert "Compiling" not in back.proc.stderr  # the native artifacts are still there, under other hashes
    else:  # a nightly cargo shares the hashes: the native build replaces the sandboxed one in place
        assert "Compiling app" in back.proc.stderr
        out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
        assert "build script ran as wasm: false" in out


def _outputs(target: Path) -> dict[str, str]:
    found = {unit_package(out.parent): f.read_text().replace(str(out), "$OUT_DIR") for f, out in script_runs(target)}
    assert len(found) >= 4, found  # the four build scripts of many-scripts
    return found


def test_parallel_and_serial_builds_agree_and_replay_once(cargo: Cargo, tmp_path: Path) -> None:
    ws = FIXTURES / "many-scripts"
    results = {}
    for jobs in ("1", "2"):
        target = tmp_path / f"j{jobs}"
        run = cargo(ws, "build", "--locked", "-j", jobs, wrapped=True, target_dir=target)
        replays = sorted(run.replays())  # compiled, or copied from the per-user cache of wasm compiles
        assert replays == ["codegen", "itoa"], replays  # shared by four build scripts, replayed once
        out = subprocess.run([str(target / "debug" / "runner")], capture_output=True, text=True,
                             check=True).stdout
        results[jobs] = (_outputs(target), out)
    assert results["1"] == results["2"]
    assert "alpha 5518 true" in results["1"][1]


def test_editing_a_build_dependency_replays_it_and_the_script_sees_the_change(cargo: Cargo, demo_copy: Path,
                                                                             tmp_path: Path) -> None:
    target = tmp_path / "target"
    first = cargo(demo_copy, "build", wrapped=True, target_dir=target)
    assert first.replays() == ["gen_consts"]
    lib = demo_copy / "gen-consts" / "src" / "lib.rs"
    time.sleep(1.1)
    lib.write_text(lib.read_text().replace("(i * i).to_string()", "(i * i + 1).to_string()"))
    second = cargo(demo_copy, "build", wrapped=True, target_dir=target)
    assert second.replays() == ["gen_consts"]  # same -C metadata, new rlib: replayed again
    out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
    assert "squares: [1, 2, 5, 10, 17, 26, 37, 50]" in out
