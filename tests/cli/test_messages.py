"""cratecage's own lines on real builds: they name the package (never rustc's `build_script_build`), and a
message every parallel unit meets alike (a malformed policy, a compiler that cannot target wasm) is said
once per cargo run (shim.once) while each unit still fails."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, Cargo, CargoRun, own_lines

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
        assert "cratecage.toml:2: permissions.build.alpha.bogus-key: unknown key; expected one of " \
               "filesystem-access, env-access, network-access, process-spawn, directives, " in lines[0], lines
        assert "Traceback" not in run.proc.stderr


# A `cargo` that starts the real one on "a kernel without Landlock": from there on, for cargo and everything it
# starts, the Landlock calls (444-446, the same on every architecture) fail with ENOSYS.
NO_LANDLOCK_CARGO = '''#!{python} -S
import ctypes, os, sys
sys.path.insert(0, {repo!r})
from shim.confine import seccomp
arch = seccomp._ARCHES[os.uname().machine.lower()][0]
ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
seccomp._install([(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, 0x7FFF0000), (0x20, 0, 0, 0),
                  (0x35, 0, 2, 444), (0x35, 1, 0, 447), (0x06, 0, 0, 0x00050000 | 38), (0x06, 0, 0, 0x7FFF0000)])
os.execv({cargo!r}, ["cargo", *sys.argv[1:]])
'''


def test_without_landlock_each_warning_is_said_once_per_cargo_run(cargo: Cargo, many_scripts: Path,
                                                                  tmp_path: Path) -> None:
    bin_dir = tmp_path / "no-landlock"
    bin_dir.mkdir()
    real = shutil.which("cargo", path=cargo.env["PATH"])
    assert real is not None
    (bin_dir / "cargo").write_text(NO_LANDLOCK_CARGO.format(python=sys.executable, repo=str(REPO), cargo=real))
    (bin_dir / "cargo").chmod(0o755)
    for pkg in SCRIPTS:  # each library's compile then consumes its script's output: confined, or warned about
        build_rs = many_scripts / pkg / "build.rs"
        build_rs.write_text(build_rs.read_text().replace("fn main() {",
                                                         'fn main() {\n    println!("cargo:rustc-env=FLAVOUR=x");'))
    env = {"PATH": f"{bin_dir}:{cargo.env['PATH']}"}
    for attempt in range(2):  # the second run into a new target directory: every script runs again
        run = cargo(many_scripts, "build", "-j4", wrapped=True, target_dir=tmp_path / f"target-{attempt}",
                    extra_env=env, check=False)
        assert run.ok, run.proc.stderr[-4000:]
        lines = own_lines(run.proc.stderr)
        runs = [line for line in lines if ": cratecage: Landlock unavailable: " in line]
        compiles = [line for line in lines if "compiles that consume a build script's output" in line]
        assert len(runs) == 1 and len(compiles) == 1 and len(lines) == 2, (attempt, run.proc.stderr[-4000:])
        assert "ENOSYS" in runs[0] and "(first: the library " in compiles[0]
