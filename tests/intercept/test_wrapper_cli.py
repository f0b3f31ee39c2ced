"""The wrapper program itself, run as cargo runs it: `cratecage <rustc> <args>`."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

import shim
from shim import VERSION_LINE
from shim.cli.image import FAST_PATH

from conftest import WRAPPER, scrubbed

LIB_SOURCE = "pub fn double(x: u32) -> u32 { x * 2 }\npub struct Point { pub x: i32, pub y: i32 }\n"


def run(argv: list[str], env_extra: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[bytes]:
    env = scrubbed(dict(os.environ))
    env.update(env_extra or {})
    return subprocess.run(argv, capture_output=True, env=env, timeout=120, **kw)


@pytest.fixture(scope="module")
def rustc(toolchain_env: dict[str, str]) -> str:
    return toolchain_env["RUSTC"]


def assert_one_cratecage_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cratecage: "), text
    return lines[0]


def test_no_arguments_is_a_one_line_usage_error() -> None:
    p = run([str(WRAPPER)])
    assert p.returncode == 2
    assert "cargo runs cratecage as" in assert_one_cratecage_line(p.stderr)


def test_verbose_version_gets_exactly_one_extra_line(rustc: str) -> None:
    plain = run([rustc, "-vV"])
    wrapped = run([str(WRAPPER), rustc, "-vV"])
    assert wrapped.returncode == plain.returncode == 0
    assert wrapped.stdout == plain.stdout + VERSION_LINE.encode() + b"\n"
    assert wrapped.stderr == plain.stderr


def test_target_info_probe_is_byte_for_byte(rustc: str) -> None:
    argv = ("- --crate-name ___ --print=file-names --crate-type bin --crate-type rlib --crate-type dylib "
            "--crate-type cdylib --crate-type staticlib --crate-type proc-macro --print=sysroot "
            "--print=split-debuginfo --print=crate-name --print=cfg -Wwarnings").split()
    plain = run([rustc, *argv], input=b"")
    wrapped = run([str(WRAPPER), rustc, *argv], input=b"")
    assert plain.returncode == 0
    assert (wrapped.returncode, wrapped.stdout, wrapped.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def _compile_lib(prefix: list[str], rustc: str, tmp: Path, name: str) -> bytes:
    src = tmp / "lib.rs"
    src.write_text(LIB_SOURCE)
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    argv = [*prefix, rustc, "--crate-name", "sample", "--edition=2021", "--crate-type", "lib",
            "--emit=dep-info,metadata,link", "-C", "metadata=fixed", "--out-dir", str(out), str(src)]
    p = run(argv, cwd=tmp)
    assert p.returncode == 0, p.stderr.decode()
    return hashlib.sha256((out / "libsample.rlib").read_bytes()).digest()


def test_a_library_compiled_through_the_wrapper_is_identical(rustc: str, tmp_path: Path) -> None:
    assert _compile_lib([str(WRAPPER)], rustc, tmp_path, "w") == _compile_lib([], rustc, tmp_path, "p")


def test_argfile_call_matches_plain(rustc: str, tmp_path: Path) -> None:
    src = tmp_path / "lib.rs"
    src.write_text(LIB_SOURCE)
    argfile = tmp_path / "argfile"
    argfile.write_text("\n".join(["--crate-name", "sample", "--crate-type", "lib", "--emit=metadata",
                                  "--out-dir", str(tmp_path), str(src)]) + "\n")
    plain = run([rustc, f"@{argfile}"])
    wrapped = run([str(WRAPPER), rustc, f"@{argfile}"])
    assert plain.returncode == wrapped.returncode == 0, wrapped.stderr.decode()
    assert (tmp_path / "libsample.rmeta").is_file()


def test_missing_argfile_reaches_rustc_which_reports_it(rustc: str, tmp_path: Path) -> None:
    argv = [rustc, f"@{tmp_path}/no-such-argfile"]
    plain = run(argv)
    wrapped = run([str(WRAPPER), *argv])
    assert plain.returncode != 0
    assert (wrapped.returncode, wrapped.stderr) == (plain.returncode, plain.stderr)
    assert b"Traceback" not in wrapped.stderr


def test_unknown_rustc_flag_passes_through(rustc: str, tmp_path: Path) -> None:
    argv = [rustc, "--no-such-flag", "--crate-type", "lib", "-"]
    plain = run(argv, input=b"")
    wrapped = run([str(WRAPPER), *argv], input=b"")
    assert plain.returncode != 0 and b"no-such-flag" in plain.stderr
    assert (wrapped.returncode, wrapped.stderr) == (plain.returncode, plain.stderr)


def test_rustc_that_does_not_exist_is_a_one_line_error(tmp_path: Path) -> None:
    p = run([str(WRAPPER), str(tmp_path / "rustc"), "--version"])
    assert p.returncode == 2
    assert "cannot run" in assert_one_cratecage_line(p.stderr)


def test_missing_inner_wrapper_is_a_one_line_error(rustc: str) -> None:
    p = run([str(WRAPPER), rustc, "--version"], {"CRATECAGE_WRAPPER": "no-such-inner-wrapper"})
    assert p.returncode == 2
    line = assert_one_cratecage_line(p.stderr)
    assert "CRATECAGE_WRAPPER" in line and "no-such-inner-wrapper" in line


def test_inner_wrapper_runs_pass_through_calls(rustc: str, tmp_path: Path) -> None:
    log = tmp_path / "inner.log"
    inner = tmp_path / "inner-wrapper"
    inner.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec "$@"\n')
    inner.chmod(0o755)
    p = run([str(WRAPPER), rustc, "--version"], {"CRATECAGE_WRAPPER": str(inner)})
    assert p.returncode == 0 and p.stdout.startswith(b"rustc ")
    assert log.read_text() == f"{rustc} --version\n"


def test_inherited_file_descriptors_survive_pass_through(rustc: str, tmp_path: Path) -> None:
    # cargo's jobserver arrives as inherited fds; exec must keep them open for rustc.
    probe = tmp_path / "show-fd"
    probe.write_text("#!/bin/sh\n[ -e /proc/self/fd/$FD ] && echo open || echo closed\n")
    probe.chmod(0o755)
    r, w = os.pipe()
    try:
        p = run([str(WRAPPER), str(probe)], {"FD": str(r)}, pass_fds=(r,))
    finally:
        os.close(r)
        os.close(w)
    assert p.stdout == b"open\n", p.stderr


def test_help_and_version_commands() -> None:
    assert run([str(WRAPPER), "--help"]).stdout.decode().startswith("usage: cratecage")
    assert run([str(WRAPPER), "version"]).stdout.decode().strip() == VERSION_LINE
    bad = run([str(WRAPPER), "toolchain", "--frob"])
    assert bad.returncode == 2
    assert_one_cratecage_line(bad.stderr)


# Modules that cost milliseconds to import: the pass-through path, which cargo pays on every rustc call,
# must never load them (a stray `from typing import ...` once cost 14 ms a call).
HEAVY_ON_THE_FAST_PATH = ("typing", "subprocess", "json", "ctypes", "tomllib", "psutil", "wasmtime")
# ...nor any room but these (HOW_IT_WORKS.md): the shared helpers directly in shim/ are allowed.
FAST_PATH_ROOMS = ("cli", "intercept", "cargo")


# The Python launcher: beside the native one (shim/rust/fastpath), which hands it every call it does not pass
# through itself, or the only one where no rustc could build the native one.
PYTHON_WRAPPER = WRAPPER.with_name(WRAPPER.name + "-py") if WRAPPER.with_name(WRAPPER.name + "-py").exists() else WRAPPER


@pytest.mark.parametrize("extra", [[], ["-L", "dependency=/nonexistent"]])
def test_a_pass_through_compile_imports_nothing_heavy(rustc: str, tmp_path: Path, extra: list[str]) -> None:
    src = tmp_path / "lib.rs"
    src.write_text(LIB_SOURCE)
    (tmp_path / "out").mkdir()
    p = run([str(PYTHON_WRAPPER), rustc, "--crate-name", "fast", "--edition", "2021", str(src), "--crate-type", "lib",
             "--emit=dep-info,metadata,link", "--out-dir", str(tmp_path / "out"), *extra],
            env_extra={"PYTHONPROFILEIMPORTTIME": "1"}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    imported = {line.split("|")[-1].strip() for line in p.stderr.decode().splitlines() if line.startswith("import time:")}
    assert "shim.intercept.wrapper" in imported  # the profile is there
    assert sorted(m for m in imported if m in HEAVY_ON_THE_FAST_PATH) == []
    shim_dir = Path(shim.__file__).parent
    rooms = {m.split(".")[1] for m in imported if m.startswith("shim.") and (shim_dir / m.split(".")[1]).is_dir()}
    assert rooms <= set(FAST_PATH_ROOMS), rooms
    # the launcher's image (shim.cli.image) holds exactly what the fast path imports
    assert {m for m in imported if m == "shim" or m.startswith("shim.")} == set(FAST_PATH)


def test_the_native_launcher_passes_a_library_compile_through_without_python(rustc: str, tmp_path: Path) -> None:
    # make test's setup always has a rustc (it provisions one), so the native launcher must be there
    assert PYTHON_WRAPPER != WRAPPER, "`make setup` did not build the native launcher (see its output)"
    src = tmp_path / "lib.rs"
    src.write_text(LIB_SOURCE)
    p = run([str(WRAPPER), rustc, "--crate-name", "fast", "--edition", "2021", str(src), "--crate-type", "lib",
             "--emit=dep-info,metadata,link", "--out-dir", str(tmp_path)],
            env_extra={"PYTHONPROFILEIMPORTTIME": "1"}, cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()[-2000:]  # no Python started: no import profile
    assert (tmp_path / "libfast.rlib").is_file()


@pytest.mark.parametrize("name, credential", [
    ("CARGO_REGISTRY_TOKEN", True), ("CARGO_REGISTRIES_MY_CORP_TOKEN", True), ("GITHUB_TOKEN", True),
    ("CI_JOB_TOKEN", True), ("NPM_TOKEN", True), ("AWS_SECRET_ACCESS_KEY", True), ("AWS_SESSION_TOKEN", True),
    ("DB_PASSWORD", True), ("SENTRY_AUTH_TOKEN", True), ("my_api_key", True), ("DEPLOY_KEY", True),
    ("VAULT_SECRET", True), ("SSH_AUTH_SOCK", True),
    ("CARGO_PKG_AUTHORS", False), ("CARGO_PKG_NAME", False), ("OUT_DIR", False), ("PATH", False),
    ("KEYBOARD_LAYOUT", False), ("MONKEY_BUSINESS", False), ("TOKENIZER_MODEL", False), ("AUTHOR", False),
])
def test_credential_names(name: str, credential: bool) -> None:
    from shim.intercept import wrapper

    assert wrapper.credential_name(name) is credential


def test_a_dependency_outside_the_workspace_compiles_without_the_users_credentials(cargo, tmp_path: Path) -> None:
    """cargo hands every rustc its whole environment: a dependency's `option_env!("CARGO_REGISTRY_TOKEN")`
    (a build-dependency's native compile included) would compile the token in. Outside the workspace the
    user's credentials are not there; the workspace's own crates still see them."""
    token = "TOKEN" + os.urandom(8).hex()
    dep = tmp_path / "registry-like" / "outdep"
    (dep / "src").mkdir(parents=True)
    (dep / "Cargo.toml").write_text('[package]\nname = "outdep"\nversion = "0.1.0"\nedition = "2021"\n')
    (dep / "src" / "lib.rs").write_text('pub const SEEN: [bool; 3] = [option_env!("CARGO_REGISTRY_TOKEN").is_some(), '
                                        'option_env!("AWS_SECRET_ACCESS_KEY").is_some(), '
                                        'option_env!("OUTDEP_DEPLOY_TOKEN").is_some()];\n'
                                        'pub const NAME: &str = env!("CARGO_PKG_NAME");\n')
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                   f'[dependencies]\noutdep = {{ path = "{dep}" }}\n')
    (ws / "src" / "main.rs").write_text('fn main() { println!("dep {:?} {} app {}", outdep::SEEN, outdep::NAME, '
                                        'option_env!("APP_API_TOKEN").is_some()); }\n')
    # the owner's grant of a credential to the dependency keeps it (the policy names it)
    (ws / "cratecage.toml").write_text('[permissions.build.outdep]\n'
                                       'env-access = { action = "permit", vars = ["OUTDEP_DEPLOY_*"] }\n')
    env = {"CARGO_REGISTRY_TOKEN": token, "AWS_SECRET_ACCESS_KEY": token, "APP_API_TOKEN": token,
           "OUTDEP_DEPLOY_TOKEN": "granted"}
    target = tmp_path / "target"
    cargo(ws, "build", wrapped=True, target_dir=target, extra_env=env)
    out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "dep [false, false, true] outdep app true"
    leaked = [p for p in target.rglob("*") if p.is_file() and "outdep" in p.name and token.encode() in p.read_bytes()]
    assert leaked == []
