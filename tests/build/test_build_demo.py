"""The demo workspace (path deps, a proc macro, a build script with a build-dependency) built with cargo
through the wrapper: same results as without it, and the wrapper saw each unit for what it is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines
from target_dirs import unit_dirs

DEMO = FIXTURES / "demo"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_builds(cargo: Cargo, targets: Path) -> dict[str, tuple[CargoRun, Path]]:
    return cargo.both(DEMO, "build", targets=targets, label="demo")


def run_app(target: Path) -> str:
    return subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout


def test_wrapped_build_runs_the_same_program(demo_builds: dict) -> None:
    plain = run_app(demo_builds["plain"][1])
    wrapped = run_app(demo_builds["wrapped"][1])
    assert "hello from Greeter" in plain and "generated cfg: true" in plain
    # The one intended difference: the build script saw cfg!(target_family = "wasm") in the sandbox.
    assert "build script ran as wasm: false" in plain
    assert wrapped == plain.replace("build script ran as wasm: false", "build script ran as wasm: true")


def test_wrapper_classified_every_unit_of_the_demo(demo_builds: dict) -> None:
    kinds = demo_builds["wrapped"][0].kinds()
    assert kinds["build_script_build"] == {"build-script"}
    assert kinds["derive_hello"] == {"proc-macro"}
    assert kinds["gen_consts"] == {"host-library"}  # the build script's dependency
    assert kinds["helper"] == {"host-library"}  # without --target a target lib looks the same
    assert kinds["app"] == {"other"}
    assert demo_builds["wrapped"][0].replays() == ["gen_consts"]  # the build script's dependency, for wasm
    assert "probe" in kinds[None] or "probe" in kinds.get("___", set())


def test_wrapped_build_keeps_the_jobserver_and_prints_no_noise(demo_builds: dict) -> None:
    stderr = demo_builds["wrapped"][0].proc.stderr
    assert "jobserver" not in stderr
    assert own_lines(stderr) == []
    assert "Traceback" not in stderr


def test_wrapped_build_gets_its_own_hashes(cargo: Cargo, demo_builds: dict) -> None:
    def hashes(target: Path) -> set[str]:
        found = {p.name.rsplit("-", 1)[-1] for p in unit_dirs(target, "app")}
        assert found, f"no unit of app under {target}"
        return found

    plain, wrapped = hashes(demo_builds["plain"][1]), hashes(demo_builds["wrapped"][1])
    if cargo.hashes_our_version_line:
        assert plain.isdisjoint(wrapped)
    else:  # a nightly cargo: same units, rebuilt in place (the fingerprint's rustc hash differs)
        assert plain == wrapped


def test_second_wrapped_build_is_fresh(cargo: Cargo, demo_builds: dict) -> None:
    target = demo_builds["wrapped"][1]
    again = cargo(DEMO, "build", "-v", wrapped=True, target_dir=target)
    assert "Compiling" not in again.proc.stderr and "Running" not in again.proc.stderr
    assert again.trace == []  # cargo cached the probes too: no rustc call at all


def test_cargo_test_gives_the_same_results(cargo: Cargo, targets: Path) -> None:
    results = {}
    for mode in ("plain", "wrapped"):
        run = cargo(DEMO, "test", wrapped=mode == "wrapped", target_dir=targets / f"demo-{mode}")
        results[mode] = sorted(line.split("; finished in")[0] for line in run.proc.stdout.splitlines()
                               if line.startswith("test "))
    assert "test tests::derive_names_the_type ... ok" in results["plain"]
    assert any("src/lib.rs - sum" in line for line in results["plain"])  # the doctest ran
    assert results["wrapped"] == results["plain"]


def test_cargo_check_and_doc_work_wrapped(cargo: Cargo, targets: Path) -> None:
    target = targets / "demo-wrapped-check-doc"
    check = cargo(DEMO, "check", "--all-targets", wrapped=True, target_dir=target)
    # check links build scripts and proc macros (rustdoc will load them) and only checks the rest
    assert "proc-macro" in check.kinds()["derive_hello"]  # + its --test harness, checked only
    assert check.kinds()["build_script_build"] == {"build-script"}
    assert check.kinds()["app"] == {"other"}
    cargo(DEMO, "doc", "--no-deps", wrapped=True, target_dir=target)
    assert (target / "doc" / "helper" / "fn.sum.html").is_file()
    assert (target / "doc" / "derive_hello" / "derive.Hello.html").is_file()


def test_cargo_clippy_members_arrive_behind_clippy_driver(selected_cargo: Cargo, tmp_path: Path) -> None:
    """Not about the layout (and the new layout's toolchain is installed without clippy): one run."""
    run = selected_cargo(DEMO, "clippy", "--all-targets", wrapped=True, target_dir=tmp_path / "demo-clippy")
    members = [e for e in run.trace if e["crate"] in ("app", "helper", "derive_hello")]
    assert members and all(len(e["chain"]) == 2 and "clippy-driver" in e["chain"][0] for e in members)
    assert "proc-macro" in run.kinds()["derive_hello"]
    assert "Traceback" not in run.proc.stderr and own_lines(run.proc.stderr) == []


def test_a_workspace_wrapper_is_kept_in_the_chain(cargo: Cargo, targets: Path, tmp_path: Path) -> None:
    log = tmp_path / "ws-wrapper.log"
    ws_wrapper = tmp_path / "ws-wrapper"
    ws_wrapper.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec "$@"\n')
    ws_wrapper.chmod(0o755)
    target = targets / "demo-ws-wrapper"
    run = cargo(DEMO, "build", wrapped=True, target_dir=target,
                extra_env={"RUSTC_WORKSPACE_WRAPPER": str(ws_wrapper)})
    assert {"--crate-name"} <= set(log.read_text().split())  # the workspace wrapper ran members' compiles
    chains = {e["crate"]: e["chain"] for e in run.trace if e["crate"] in ("app", "build_script_build")}
    assert chains["app"][0] == str(ws_wrapper) and len(chains["app"]) == 2
    assert chains["build_script_build"][0] == str(ws_wrapper)
    assert run.kinds()["build_script_build"] == {"build-script"}
    out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
    assert "hello from Greeter" in out


def test_release_build_with_an_explicit_target_sandboxes_the_build_script(cargo: Cargo, targets: Path) -> None:
    host = next(line.split(": ", 1)[1] for line in subprocess.run(
        [cargo.env["RUSTC"], "-vV"], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.startswith("host: "))
    target = targets / "demo-release-target"
    run = cargo(DEMO, "build", "--release", "--target", host, wrapped=True, target_dir=target)
    assert run.replays() == ["gen_consts"]
    out = subprocess.run([str(target / host / "release" / "app")], capture_output=True, text=True,
                         check=True).stdout
    assert "build script ran as wasm: true" in out and "profile: release" in out
