"""Real crates from crates.io (serde + derive, serde_json, anyhow, libc): their build scripts probe the
compiler through the wrapper and serde_derive expands real code. Built, checked, tested and documented
with and without cratecage; results must match."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun
from target_dirs import build_script_binaries, script_runs, unit_package

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
    assert "typenum: 42" in outputs["plain"]
    assert outputs["wrapped"] == outputs["plain"]


def test_build_scripts_and_macros_of_registry_crates_reach_the_wrapper(builds: dict) -> None:
    run = builds["wrapped"][0]
    kinds = run.kinds()
    assert kinds["serde_derive"] == {"proc-macro"}
    assert "build-script" in kinds["build_script_build"]
    build_scripts = [e for e in run.trace if e["kind"] == "build-script"]
    assert len(build_scripts) >= len(BUILD_SCRIPT_CRATES)


BUILD_SCRIPT_CRATES = ("anyhow", "libc", "num-traits", "proc-macro2", "quote", "rustversion", "serde",
                       "serde_core", "serde_json", "thiserror", "typenum")


def build_outputs(target: Path) -> dict[str, str]:
    """package -> what its build script printed as cargo kept it, with its own OUT_DIR path normalised."""
    return {unit_package(out.parent): f.read_text().replace(str(out), "$OUT_DIR") for f, out in script_runs(target)}


def test_every_build_script_ran_in_the_sandbox(builds: dict) -> None:
    target = builds["wrapped"][1]
    launchers = build_script_binaries(target)  # typenum's build/main.rs makes build-script-main
    assert {unit_package(p.parent.parent if p.parent.name == "out" else p.parent)
            for p in launchers} >= set(BUILD_SCRIPT_CRATES)
    for launcher in launchers:
        head = launcher.read_bytes()[:300]
        assert head.startswith(b"#!") and b"\n# cratecage: this build script runs as WebAssembly" in head, launcher


def test_build_script_outputs_are_identical_sandboxed_and_native(cargo: Cargo, builds: dict) -> None:
    plain, wrapped = build_outputs(builds["plain"][1]), build_outputs(builds["wrapped"][1])
    assert set(plain) >= set(BUILD_SCRIPT_CRATES)
    assert "cargo:rustc-cfg=has_total_cmp" in plain["num-traits"]  # autocfg's probe succeeded
    # a probe that fails on stable (a nightly feature), in the sandbox as natively
    nightly_probe = "cargo:rustc-cfg=error_generic_member_access" in plain["thiserror"]
    assert nightly_probe == (cargo.channel == "nightly")
    for pkg in sorted(plain):
        assert wrapped.get(pkg) == without_unseen_reruns(plain[pkg], wrapped.get(pkg, "")), \
            f"{pkg}: build script output differs"


def without_unseen_reruns(native: str, sandboxed: str) -> str:
    """A native script's output as the sandbox passes it on: `rerun-if-env-changed` of a variable the
    sandboxed script may not see (anyhow's RUSTC_BOOTSTRAP; libc's RUST_LIBC_* are granted by the curated
    policy) is dropped, or cargo would store its value in the target dir; the script's output cannot depend
    on a variable it never sees. Only such lines may be missing."""
    from shim.cargo.script_env import is_default_env

    kept = set(sandboxed.splitlines())

    def passed_on(line: str) -> bool:
        name = line.partition("rerun-if-env-changed=")[2].rstrip("\n")
        return not name or line.rstrip("\n") in kept or is_default_env(name)

    return "".join(line for line in native.splitlines(keepends=True) if passed_on(line))


def test_probes_reached_the_host_bridge_not_a_native_compiler(builds: dict) -> None:
    # A build script's compiler probe arrives at the wrapper only if something ran rustc natively for it;
    # in the sandbox the host runs rustc itself, outside the wrapper.
    run = builds["wrapped"][0]
    assert not any(e.get("reason") == "compile started by a build script" for e in run.trace)


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
