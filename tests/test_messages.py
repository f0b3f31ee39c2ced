"""cratecage's own lines on real builds: they name the package (never rustc's `build_script_build`), and a
message every parallel unit meets alike (a malformed policy, a compiler that cannot target wasm) is said
once per cargo run (shim.once) while each unit still fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, own_lines
from shim import toolchain
from test_toolchain import _incapable_compiler

pytestmark = pytest.mark.integration
SCRIPTS = ("alpha", "beta", "gamma", "delta")  # fixtures/many-scripts: ready together, after their build-dependency


@pytest.fixture()
def many_scripts(tmp_path: Path) -> Path:
    ws = tmp_path / "many-scripts"
    shutil.copytree(FIXTURES / "many-scripts", ws)
    return ws


def build(cargo: Cargo, ws: Path, *args: str, env: dict[str, str] | None = None) -> CargoRun:
    return cargo(ws, "build", "-j4", *args, wrapped=True, target_dir=ws.parent / "target", extra_env=env,
                 check=False)


def failed_scripts(run: CargoRun) -> set[str]:
    return {pkg for pkg in SCRIPTS if f"`{pkg}` (build script)" in run.proc.stderr
            or f"custom build command for `{pkg} v0.1.0" in run.proc.stderr}


def test_each_failure_names_the_package_whose_build_script_it_is(cargo: Cargo, many_scripts: Path,
                                                                 tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the package's\n")
    (many_scripts / "alpha" / "build.rs").write_text('fn main() { panic!("alpha gives up"); }\n')
    (many_scripts / "beta" / "build.rs").write_text(f'const OUTSIDE: &str = include_str!("{outside}");\n'
                                                    'fn main() { println!("{OUTSIDE}"); }\n')
    (many_scripts / "gamma" / "build.rs").write_text('fn main() { println!("cargo:rustc-link-arg=-Wl,-z,now"); }\n')
    run = build(cargo, many_scripts, "--keep-going")
    assert not run.ok and failed_scripts(run) == {"alpha", "beta", "gamma"}, run.proc.stderr[-4000:]
    lines = [line.strip() for line in own_lines(run.proc.stderr)]
    said = {pkg: [line for line in lines if line.startswith(f"cratecage: build script of {pkg} 0.1.0")]
            for pkg in SCRIPTS}
    assert any("panicked" in line for line in said["alpha"]), lines  # its run failed
    assert any(": filesystem-access denied: " in line for line in said["beta"]), lines  # its compile was refused
    assert any(": directives denied: cargo:rustc-link-arg=" in line for line in said["gamma"]), lines
    assert said["delta"] == []
    assert not [line for line in lines if "build_script_build" in line]


def test_a_malformed_policy_is_reported_once_per_cargo_run(cargo: Cargo, many_scripts: Path) -> None:
    (many_scripts / "cratecage.toml").write_text('[permissions.build.alpha]\nbogus-key = 1\n')
    for attempt in range(2):  # a later cargo run says it again
        run = build(cargo, many_scripts)
        assert not run.ok
        assert len(failed_scripts(run)) >= 2, run.proc.stderr[-4000:]  # several units met it, each failed
        lines = own_lines(run.proc.stderr)
        assert len(lines) == 1, (attempt, run.proc.stderr[-4000:])
        assert lines[0].endswith("cratecage.toml:2: permissions.build.alpha.bogus-key: unknown key; expected one "
                                 "of filesystem-access, env-access, network-access, process-spawn, directives, "
                                 "version, sandbox, limits")
        assert "Traceback" not in run.proc.stderr


def test_a_compiler_that_cannot_target_wasm_is_reported_once_per_cargo_run(
        cargo: Cargo, many_scripts: Path, toolchain_env: dict[str, str]) -> None:
    other = _incapable_compiler(toolchain.probe_compiler(toolchain_env["RUSTC"]).key)
    if other is None:
        pytest.fail("this machine has no second rustc without wasm32-wasip1 to test with")
    env = {"RUSTC": other, "RUSTDOC": os.path.join(os.path.dirname(other), "rustdoc")}
    for attempt in range(2):
        run = build(cargo, many_scripts, env=env)
        assert not run.ok
        assert len(failed_scripts(run)) >= 2, run.proc.stderr[-4000:]
        lines = own_lines(run.proc.stderr)
        assert len(lines) == 1, (attempt, run.proc.stderr[-4000:])
        assert lines[0].startswith(tuple(f"cratecage: the build script of {pkg} 0.1.0 must " for pkg in SCRIPTS))
        assert f"cargo's rustc ({other}, " in lines[0]
