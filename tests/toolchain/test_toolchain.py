"""Toolchain selection and provisioning: the report, the env exports, hints that work when pasted, and a
real wasm32-wasip1 program compiled by the selected compiler and run under wasmtime. (Cargo's own compiler
made capable on first use, and its errors: tests/toolchain/test_first_use.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from shim.errors import ProvisionError, ToolchainError
from shim.toolchain import compiler as toolchain
from shim.toolchain import sysroot as sysroot_build

from conftest import WRAPPER, scrubbed


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WRAPPER), *args], capture_output=True, text=True,
                          env=env or scrubbed(dict(os.environ)), timeout=300)


def test_report_names_the_compiler_cargo_runs_here_and_says_ready(toolchain_env: dict[str, str]) -> None:
    p = cli("toolchain")
    assert p.returncode == 0, p.stderr
    here = toolchain.cargo_toolchain(scrubbed(dict(os.environ))).compiler
    assert f"rustc:          {here.rustc} ({here.version_line})" in p.stdout
    assert "wasm32-wasip1:  ready (" in p.stdout
    assert cli("toolchain", "--check").returncode == 0


def test_env_exports_make_plain_cargo_use_the_selected_compiler(toolchain_env: dict[str, str]) -> None:
    script = f'eval "$({WRAPPER} toolchain env)" && command -v cargo && rustc -vV && cargo -vV'
    p = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=scrubbed(dict(os.environ)))
    assert p.returncode == 0, p.stderr
    selected = toolchain.probe_compiler(toolchain_env["RUSTC"])
    assert selected.verbose_version in p.stdout
    assert p.stdout.splitlines()[0] == os.path.join(os.path.dirname(toolchain_env["PATH"].split(":")[0]), "bin",
                                                    "cargo")
    assert f"release: {selected.release}" in p.stdout.split("cargo ", 1)[1]  # cargo of the same release


def test_selected_compiler_builds_and_runs_a_wasm_program(toolchain_env: dict[str, str], tmp_path: Path) -> None:
    tc = toolchain.resolve(toolchain_env["RUSTC"])
    src = tmp_path / "main.rs"
    src.write_text('use std::collections::BTreeMap;\nfn main() {\n    let mut m = BTreeMap::new();\n'
                   '    for a in std::env::args().skip(1) { *m.entry(a.len()).or_insert(0) += 1; }\n'
                   '    println!("{:?}", m);\n}\n')
    out = tmp_path / "main.wasm"
    subprocess.run([tc.compiler.rustc, "--edition=2021", "--target", "wasm32-wasip1", "--sysroot",
                    str(tc.wasm_sysroot), "-o", str(out), str(src)], check=True, env=scrubbed(dict(os.environ)))
    assert out.read_bytes()[:4] == b"\0asm"
    assert sysroot_build.run_wasm_command(out, ["main", "ab", "cd", "xyz"]).strip() == "{2: 2, 3: 1}"


def test_hints_name_this_cratecage_by_its_path_so_they_work_when_pasted(tmp_path: Path) -> None:
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path)}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "cratecage")))
    for args, hint in (((), r"run `([^`]+)`"), (("audit", str(tmp_path)), r"build with (RUSTC_WRAPPER=\S+) first")):
        p = cli(*args, env=env)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        found = re.search(hint, p.stderr)
        assert found, p.stderr
        assert str(WRAPPER) in found.group(1)
        if args == ():  # `<path> --help`, pasted into a shell where cratecage is not on PATH
            pasted = subprocess.run(["sh", "-c", found.group(1)], env=env, capture_output=True, text=True)
            assert pasted.returncode == 0 and "RUSTC_WRAPPER" in pasted.stdout, pasted.stderr


def test_compiler_fields_come_from_verbose_version() -> None:
    c = toolchain.Compiler(rustc="/x/rustc", sysroot="/x", verbose_version=(
        "rustc 1.96.0 (ac68faa20 2026-05-25)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.96.0\n"))
    assert (c.release, c.host, c.version_line) == ("1.96.0", "x86_64-unknown-linux-gnu",
                                                  "rustc 1.96.0 (ac68faa20 2026-05-25)")
    assert len(c.key) == 16 and c.key == toolchain.Compiler("/y", c.verbose_version, "/y").key


def test_cache_dir_follows_environment(tmp_path: Path) -> None:
    assert toolchain.cache_root({"CRATECAGE_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert toolchain.cache_root({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/cratecage")


def test_candidates_try_the_requested_compiler_only_or_the_usual_places() -> None:
    assert sysroot_build.candidates("/opt/rustc", {}) == ["/opt/rustc"]
    assert sysroot_build.candidates(None, {"RUSTC": "/r/rustc"}) == ["/r/rustc", "rustc", "/usr/bin/rustc"]


def test_a_program_that_is_not_rustc_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "rustc"
    fake.write_text("#!/bin/sh\necho not a compiler\n")
    fake.chmod(0o755)
    with pytest.raises(ToolchainError, match="-vV` failed"):
        toolchain.probe_compiler(str(fake))
    with pytest.raises(ToolchainError, match="not found"):
        toolchain.probe_compiler(str(tmp_path / "missing"))


def test_install_names_what_is_missing_and_how_to_get_it(tmp_path: Path) -> None:
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path)}
    with pytest.raises(ProvisionError) as err:
        sysroot_build.install(str(tmp_path / "no-rustc"), env, log=lambda *a, **k: None)
    text = err.value.render()
    assert text.startswith("cratecage: no compiler here can be made to compile for wasm32-wasip1")
    assert "apt-get install --no-install-recommends rustc-web" in text


def test_missing_build_pieces_are_each_named(tmp_path: Path) -> None:
    c = toolchain.Compiler(rustc=str(tmp_path / "bin" / "rustc"), sysroot=str(tmp_path),
                           verbose_version="rustc 9\nhost: x86_64-unknown-linux-gnu\nrelease: 9\n")
    missing = sysroot_build.missing_for_build(c, {"PATH": "", "WASI_SYSROOT": str(tmp_path / "none")})
    assert any("rust-src" in m for m in missing)
    assert any("no cargo" in m for m in missing)


def test_cli_install_failure_is_reported_not_raised(tmp_path: Path) -> None:
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path)}
    p = cli("toolchain", "install", "--rustc", str(tmp_path / "nope"), env=env)
    assert p.returncode == 4
    assert p.stderr.startswith("cratecage: no compiler here") and "Traceback" not in p.stderr
    assert not (tmp_path / "selected.json").exists()


def test_selected_toolchain_is_recorded(toolchain_env: dict[str, str]) -> None:
    data = json.loads((toolchain.cache_root() / "selected.json").read_text())
    assert data["rustc"] == toolchain_env["RUSTC"]


def test_capable_compiler_is_remembered_per_binary(toolchain_env: dict[str, str], tmp_path: Path) -> None:
    from shim.toolchain import capable, first_use

    rustc = toolchain_env["RUSTC"]
    selected = toolchain.resolve(rustc)
    assert first_use.require_wasm_capable(rustc, what="build-script `x`").wasm_sysroot == selected.wasm_sysroot
    again = first_use.require_wasm_capable(rustc, what="build-script `x`")  # from the stamp this time
    assert again == selected
    assert capable.verified_sysroot(rustc) == selected.wasm_sysroot
    fake = tmp_path / "rustc"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert capable.verified_sysroot(str(fake)) is None  # another binary is asked afresh
