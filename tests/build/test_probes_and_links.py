"""The crate graph as it is (issue 11, classes 3 and 6), with no policy at all (fixtures/probes-and-links):
rustix 0.38's `-o -` probes, windows_x86_64_gnu's search path into its own package, and a build script that
probes like libudev-sys (`rustc check.rs -l z`) and links the system's zlib and libdl. Every build script's
output, and so every probe's answer, must be what it is natively, and the program must run alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines
from target_dirs import script_runs, unit_package

WS = FIXTURES / "probes-and-links"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def builds(selected_cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CargoRun, Path]]:
    """Probes and directives do not depend on cargo's build-dir layout: one toolchain is enough."""
    return selected_cargo.both(WS, "build", "--locked", targets=tmp_path_factory.mktemp("probes-and-links"),
                               label="probes-and-links")


def outputs(target: Path) -> dict[str, str]:
    """package -> what its build script printed, as cargo kept it, its own OUT_DIR written `$OUT_DIR`."""
    return {unit_package(out.parent): f.read_text().replace(str(out), "$OUT_DIR") for f, out in script_runs(target)}


def test_every_build_script_printed_what_it_prints_natively(builds: dict) -> None:
    plain, wrapped = outputs(builds["plain"][1]), outputs(builds["wrapped"][1])
    assert {"rustix", "windows_x86_64_gnu", "linkprobe"} <= set(plain)
    assert "cargo:rustc-cfg=linux_raw" in plain["rustix"]
    assert f"cargo:rustc-link-search=native={registry_dir(plain)}/lib" in plain["windows_x86_64_gnu"]
    for package in sorted(plain):
        assert wrapped.get(package) == plain[package], f"{package}: build script output differs"


def registry_dir(plain: dict[str, str]) -> str:
    line = next(x for x in plain["windows_x86_64_gnu"].splitlines() if x.startswith("cargo:rustc-link-search="))
    return line.split("=", 2)[2].rsplit("/lib", 1)[0]


def test_the_probes_answered_as_natively(builds: dict) -> None:
    plain = outputs(builds["plain"][1])["linkprobe"]
    # a system library links, a missing one does not (the probe ran: no denial), `-o -` compiles and fails alike
    assert "LINKPROBE_PROBES=links_z=true,links_missing=false,compiles_fn=true,compiles_nonsense=false" in plain
    assert not own_lines(builds["wrapped"][0].proc.stderr)  # nothing refused, nothing to say


def test_the_program_links_the_system_libraries_and_runs_alike(builds: dict) -> None:
    ran = {mode: subprocess.run([str(target / "debug" / "probes-and-links")], capture_output=True, text=True,
                                check=True).stdout for mode, (_, target) in builds.items()}
    assert "pid is positive: true" in ran["plain"] and "zlib 1." in ran["plain"]
    assert ran["wrapped"] == ran["plain"]


def test_the_build_scripts_ran_in_the_sandbox(builds: dict) -> None:
    kinds = builds["wrapped"][0].kinds()
    assert "build-script" in kinds["build_script_build"]
    scripts = [e for e in builds["wrapped"][0].trace if e["kind"] == "build-script"]
    assert len(scripts) >= 3  # rustix, windows_x86_64_gnu, linkprobe (and the std-less deps' own)
