"""The environment of cratecage's own wasm compiles (shim.cargo.env) and what the journal records of a
library's native compile (shim.cargo.journal): cargo's documented variables by name, never the host's secrets."""

from __future__ import annotations

from pathlib import Path

from shim.cargo import env as compile_env
from shim.cargo import journal
from shim.cargo.rustc_args import parse

HOST = {"HOME": "/home/me", "CARGO_REGISTRY_TOKEN": "secret", "AWS_SECRET_ACCESS_KEY": "secret",
        "GITHUB_TOKEN": "secret", "CARGO_PKG_NAME": "consumer", "CARGO_MAKEFLAGS": "-j2", "GRANTED": "yes",
        "PATH": "/usr/bin", "LD_PRELOAD": "/evil.so"}


def env(warn: bool = False, **kw: object) -> dict[str, str]:
    return compile_env.environment({"CARGO_PKG_NAME": "lib", "OUT_DIR": "/t/out"}, HOST,
                                   rustc_env={"FROM_SCRIPT": "1"}, allows_env=lambda n: n == "GRANTED",
                                   warn=warn, own={"PATH": "/tc/bin", "TMPDIR": "/tmp/x"})


def test_a_compile_sees_cargo_variables_its_script_output_and_grants_only() -> None:
    assert env() == {"CARGO_PKG_NAME": "lib", "OUT_DIR": "/t/out", "FROM_SCRIPT": "1", "GRANTED": "yes",
                     "CARGO_MAKEFLAGS": "-j2", "PATH": "/tc/bin", "TMPDIR": "/tmp/x"}


def test_warn_mode_sees_the_host_but_never_another_crates_cargo_variables() -> None:
    seen = env(warn=True)
    assert seen["HOME"] == "/home/me" and seen["CARGO_PKG_NAME"] == "lib" and seen["PATH"] == "/tc/bin"


def test_script_rustc_env_is_read_from_cargos_output_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "output").write_text("cargo:rustc-env=A=1=2\ncargo::rustc-env=B=x\ncargo:rustc-cfg=c\n")
    assert compile_env.script_rustc_env(str(tmp_path / "out")) == {"A": "1=2", "B": "x"}
    assert compile_env.script_rustc_env(None) == {}


def test_the_journal_records_cargo_variables_and_nothing_else(tmp_path: Path) -> None:
    deps = tmp_path / "target" / "debug" / "deps"
    argv = ["--crate-name", "lib", "--crate-type", "lib", "--out-dir", str(deps), "-C", "extra-filename=-1",
            "src/lib.rs"]
    journal.record(parse(argv), argv, str(tmp_path), {**HOST, "CARGO_PKG_NAME": "lib", "OUT_DIR": "/o"})
    entry = journal.load(str(deps / "liblib-1.rlib"))
    assert entry is not None and entry.argv == argv and entry.cwd == str(tmp_path)
    assert entry.env == {"CARGO_PKG_NAME": "lib", "OUT_DIR": "/o"}
    assert b"secret" not in entry.raw
