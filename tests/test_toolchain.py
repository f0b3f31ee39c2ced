"""Toolchain selection and provisioning: the report, the env exports, the mismatch error, and a real
wasm32-wasip1 program compiled by the selected compiler and run under wasmtime."""

from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, scrubbed
from shim import sysroot_build, toolchain
from shim.errors import ProvisionError, ToolchainError


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WRAPPER), *args], capture_output=True, text=True,
                          env=env or scrubbed(dict(os.environ)), timeout=300)


def test_report_names_the_compiler_and_says_ready(toolchain_env: dict[str, str]) -> None:
    p = cli("toolchain")
    assert p.returncode == 0, p.stderr
    assert f"rustc:          {toolchain_env['RUSTC']} (rustc " in p.stdout
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


def _incapable_compiler(selected_key: str) -> str | None:
    home = os.environ.get("RUSTUP_HOME") or os.path.expanduser("~/.rustup")
    for rustc in [*sorted(glob.glob(f"{home}/toolchains/*/bin/rustc")), "/usr/bin/rustc"]:
        try:
            tc = toolchain.toolchain_for(toolchain.probe_compiler(rustc))
        except ToolchainError:
            continue
        if not tc.ready and tc.compiler.key != selected_key:
            return rustc
    return None


@pytest.mark.integration
def test_build_with_a_compiler_that_cannot_do_wasm_stops_with_the_fix(
    selected_cargo: Cargo, toolchain_env: dict[str, str], tmp_path: Path
) -> None:
    selected = toolchain.probe_compiler(toolchain_env["RUSTC"])
    other = _incapable_compiler(selected.key)
    if other is None:
        pytest.fail("this machine has no second rustc without wasm32-wasip1 to test the mismatch with")
    run = selected_cargo(FIXTURES / "demo", "build", wrapped=True, target_dir=tmp_path / "demo-mismatch",
                extra_env={"RUSTC": other, "RUSTDOC": os.path.join(os.path.dirname(other), "rustdoc")},
                check=False)
    assert run.proc.returncode != 0
    lines = [line for line in run.proc.stderr.splitlines() if line.startswith("cratecage:")]
    assert lines, run.proc.stderr
    assert "build-script `build_script_build`" in lines[0] or "proc-macro `derive_hello`" in lines[0]
    assert other in lines[0] and 'eval "$(cratecage toolchain env)"' in lines[0]
    assert "Traceback" not in run.proc.stderr


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
    assert toolchain.candidates("/opt/rustc", {}) == ["/opt/rustc"]
    assert toolchain.candidates(None, {"RUSTC": "/r/rustc"}) == ["/r/rustc", "rustc", "/usr/bin/rustc"]


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
        toolchain.install(str(tmp_path / "no-rustc"), env, log=lambda *a, **k: None)
    text = err.value.render()
    assert text.startswith("cratecage: no compiler here can be made to compile for wasm32-wasip1")
    assert "apt-get install --no-install-recommends rustc-web" in text


def test_missing_build_pieces_are_each_named(tmp_path: Path) -> None:
    c = toolchain.Compiler(rustc=str(tmp_path / "bin" / "rustc"), sysroot=str(tmp_path),
                           verbose_version="rustc 9\nhost: x86_64-unknown-linux-gnu\nrelease: 9\n")
    missing = sysroot_build._missing_for_build(c, {"PATH": "", "WASI_SYSROOT": str(tmp_path / "none")})
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
    from shim import capable

    rustc = toolchain_env["RUSTC"]
    selected = toolchain.resolve(rustc)
    assert toolchain.require_wasm_capable(rustc, what="build-script `x`").wasm_sysroot == selected.wasm_sysroot
    again = toolchain.require_wasm_capable(rustc, what="build-script `x`")  # from the stamp this time
    assert again == selected
    assert capable.verified_sysroot(rustc) == selected.wasm_sysroot
    fake = tmp_path / "rustc"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert capable.verified_sysroot(str(fake)) is None  # another binary is asked afresh
