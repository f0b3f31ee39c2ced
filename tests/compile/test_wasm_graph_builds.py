"""Build-dependencies whose dependencies differ between the host and wasm32-wasip1 build with an empty
policy and compute in the sandbox what they compute natively (fixtures/wasm-graph, issue 11): getrandom
0.2 (`wasi` on wasm only, `libc` on the host only), phf_codegen's chain to it, whose generated code the
library then uses, and tempfile -> rustix 1, whose build script is run again for wasm (its host run printed
the `linux_raw` backend's cfgs), and rustix 0.38 alone, for which libc's build script is compiled and run
from source (nothing on the host needs libc). One wrapped build per build-dir layout serves every test, and one rebuild
of a member's build script shows the wasm rlibs and runs are reused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines

pytestmark = pytest.mark.integration

WORKSPACE = FIXTURES / "wasm-graph"
# member -> the warning its build script prints, as the native build prints it
NATIVE_OUTPUT = {
    "getrandom-app": "getrandom 32 bytes, two draws differ: true",
    "codegen-app": "phf_codegen wrote a map of 3 keywords",
    "tempfile-app": "tempfile written and read back",
    "rustix-app": "rustix 0.38 stat is_dir=true",
}


@pytest.fixture(scope="module")
def target(targets: Path) -> Path:
    return targets / "wasm-graph"


@pytest.fixture(scope="module")
def wrapped(cargo: Cargo, target: Path) -> CargoRun:
    return cargo(WORKSPACE, "build", "--keep-going", wrapped=True, target_dir=target, check=False)


def events(run: CargoRun, kind: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for event in run.trace:
        if event["kind"] == kind:
            out.setdefault(event["crate"], []).append(event)
    return out


def test_the_workspace_builds_with_an_empty_policy(wrapped: CargoRun) -> None:
    assert wrapped.ok, wrapped.proc.stderr[-4000:]
    assert own_lines(wrapped.proc.stderr) == []


@pytest.mark.parametrize("member", sorted(NATIVE_OUTPUT))
def test_the_build_script_computes_in_the_sandbox_what_it_computes_natively(wrapped: CargoRun, member: str) -> None:
    assert f"warning: {member}@0.1.0: {NATIVE_OUTPUT[member]}\n" in wrapped.proc.stderr, wrapped.proc.stderr[-3000:]


def test_the_code_phf_codegen_generated_in_the_sandbox_works(wrapped: CargoRun, target: Path) -> None:
    assert wrapped.ok
    done = subprocess.run([str(target / "debug" / "codegen-app")], capture_output=True, text=True, check=True)
    assert done.stdout == "break=Some(3) loop=Some(1) goto=None\n"


def test_getrandom_links_wasi_on_wasm_and_not_libc(wrapped: CargoRun) -> None:
    graph = events(wrapped, "replay-graph")
    # getrandom 0.2: wasi added (compiled from source), libc dropped; 0.4 (tempfile's) only drops libc
    assert {(tuple(e["dropped"]), tuple(e["added"])) for e in graph["getrandom"]} >= {(("libc",), ("wasi",))}, graph
    assert "wasi" in wrapped.replays()
    assert graph["rand"][0]["dropped"] == ["libc"]  # rand 0.8's libc is `cfg(unix)`


def test_rustix_runs_its_build_script_again_for_wasm_and_uses_libc(wrapped: CargoRun) -> None:
    reruns = events(wrapped, "script-rerun")
    assert "libc" in reruns["rustix"][0]["cfgs"] and "linux_raw" not in reruns["rustix"][0]["cfgs"], reruns
    rustix = events(wrapped, "replay-graph")["rustix"][0]
    assert rustix["dropped"] == ["linux_raw_sys"] and set(rustix["added"]) == {"libc", "libc_errno"}
    assert "rustix" in wrapped.replays()


def test_libc_a_wasm_only_dependency_is_built_from_source_with_its_script_run_for_wasm(wrapped: CargoRun,
                                                                                        target: Path) -> None:
    # libc's script has no build-dependencies: compiled from source whether or not a host crate (here
    # getrandom 0.4, under tempfile-app) had cargo compile it, so the outcome never depends on unit order
    assert "libc" in events(wrapped, "script-from-source") and "libc" in events(wrapped, "script-rerun")
    rustix = [e for e in events(wrapped, "replay-graph")["rustix"] if "libc" in e["added"]]
    assert len(rustix) == 2, rustix  # rustix 0.38 (rustix-app) and 1.x (tempfile-app)
    assert list((target / "cratecage" / "wasm-out").glob("libc-*/out"))


def test_libraries_whose_graphs_agree_are_replayed_as_on_the_host(wrapped: CargoRun) -> None:
    changed = set(events(wrapped, "replay-graph")) | set(events(wrapped, "script-rerun"))
    assert {"phf_shared", "siphasher", "fastrand", "cfg_if", "rand_core"} & changed == set()
    assert {"phf_shared", "fastrand", "rand_core"} <= set(wrapped.replays())


def test_a_rebuilt_build_script_reuses_every_wasm_rlib_and_run(cargo: Cargo, wrapped: CargoRun, target: Path) -> None:
    assert wrapped.ok
    cargo(WORKSPACE, "clean", "-p", "tempfile-app", wrapped=False, target_dir=target)
    again = cargo(WORKSPACE, "build", "-p", "tempfile-app", wrapped=True, target_dir=target)
    assert f"warning: tempfile-app@0.1.0: {NATIVE_OUTPUT['tempfile-app']}\n" in again.proc.stderr
    assert again.replays() == [] and events(again, "script-rerun") == {}
    assert events(again, "script-from-source") == {}
