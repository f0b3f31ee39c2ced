"""Build-dependency graphs that broke the wasm replay (issue 11, classes 1 and 2) build with an empty policy
and compute in the sandbox what they compute natively (fixtures/build-dep-graphs): a `no_std` crate whose
doc links name std, used by another `no_std` crate; the real zerocopy + ppv-lite86 pair under rand_chacha;
phf's `phf_map!` (a native proc macro) expanded by a build script and by a replayed library. One wrapped
build per build-dir layout serves every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines

pytestmark = pytest.mark.integration

# member -> the warning its build script prints, as the native build prints it
NATIVE_OUTPUT = {
    "doclink-app": "doclink answer 42",
    "chacha-app": "chacha 601310139 677729076",
    "phf-app": "phf break 3 of 3",
    "phf-mid-app": "phf-mid MiB 1048576",
}
# member -> crates its build script's replay compiled for wasm (the ones each class is about)
REPLAYED = {
    "doclink-app": {"doclink", "nostd_user"},
    "chacha-app": {"zerocopy", "ppv_lite86", "rand_chacha"},
    "phf-app": {"phf", "phf_shared"},
    "phf-mid-app": {"phf_mid"},
}


@pytest.fixture(scope="module")
def wrapped(cargo: Cargo, targets: Path) -> CargoRun:
    return cargo(FIXTURES / "build-dep-graphs", "build", "--keep-going", wrapped=True,
                 target_dir=targets / "build-dep-graphs", check=False)


def test_the_workspace_builds_with_an_empty_policy(wrapped: CargoRun) -> None:
    assert wrapped.ok, wrapped.proc.stderr[-4000:]


@pytest.mark.parametrize("member", sorted(NATIVE_OUTPUT))
def test_the_build_script_computes_in_the_sandbox_what_it_computes_natively(wrapped: CargoRun, member: str) -> None:
    assert f"warning: {member}@0.1.0: {NATIVE_OUTPUT[member]}\n" in wrapped.proc.stderr, wrapped.proc.stderr[-3000:]
    assert own_lines(wrapped.proc.stderr) == []  # an empty policy, and nothing to say


def test_each_graph_was_compiled_for_wasm(wrapped: CargoRun, targets: Path) -> None:
    replays = set(wrapped.replays())
    for member, crates in REPLAYED.items():
        assert crates <= replays, (member, sorted(crates - replays))
        # the script cargo ran is cratecage's launcher of this module (shim.cargo.layout.module_path)
        assert list((targets / "build-dep-graphs" / "cratecage" / "build").glob(f"{member}-*/*.wasm")), member
