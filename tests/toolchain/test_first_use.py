"""Only RUSTC_WRAPPER set: `cargo +<toolchain>`, rust-toolchain.toml and RUSTUP_TOOLCHAIN each build with the
toolchain they name, which gets its wasm32-wasip1 target on first use (once, announced once), on a private
copy of a toolchain that starts without it (tests/fresh_rustup.py). Also: what a unit says when the compiler
cannot be made capable, the doctor's answer for the directory it runs in, and why a rustup proxy's answer
is never reused for another toolchain."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.errors import ToolchainError
from shim.toolchain import capable
from shim.toolchain import compiler as toolchain
from shim.toolchain import first_use

from conftest import FIXTURES, WRAPPER
from fresh_rustup import FRESH_TOOLCHAIN, WASM, Rustup, private_rustup, shared_rustup_home

TOOLCHAIN_CARGO = "<the fresh toolchain's own cargo>"
ANNOUNCEMENT = f"cratecage: adding the {WASM} target to toolchain {FRESH_TOOLCHAIN} (once; about 20 s)"
OFFLINE = {"RUSTUP_DIST_SERVER": "http://127.0.0.1:9"}  # nothing listens there: every download fails
# How a project names its toolchain: cargo's argv, extra environment, a rust-toolchain.toml.
MECHANISMS = {
    "cargo +toolchain": (["cargo", f"+{FRESH_TOOLCHAIN}", "build"], {}, None),
    "rust-toolchain.toml": (["cargo", "build"], {}, f'[toolchain]\nchannel = "{FRESH_TOOLCHAIN}"\n'),
    "RUSTUP_TOOLCHAIN": (["cargo", "build"], {"RUSTUP_TOOLCHAIN": FRESH_TOOLCHAIN}, None),
    # The toolchain's own cargo, run without rustup: it passes `rustc`, rustup's proxy on PATH, which picks
    # the toolchain from the cwd, in the wrapper and in the confined compiles alike.
    "rustc proxy": ([TOOLCHAIN_CARGO, "build"], {}, f'[toolchain]\nchannel = "{FRESH_TOOLCHAIN}"\n'),
}


def workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    shutil.copytree(FIXTURES / "toolchain-pick", ws, ignore=shutil.ignore_patterns("target"))
    return ws


def build(r: Rustup, ws: Path, argv: list[str], **extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """cargo with RUSTC_WRAPPER as its only cratecage setting; returns the run and the first-use events."""
    trace = ws / f"trace-{os.urandom(4).hex()}.jsonl"
    env = r.env(RUSTC_WRAPPER=str(WRAPPER), CRATECAGE_TRACE=str(trace), **extra)
    p = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    events = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return p, [e for e in events if e.get("kind") == "first-use"]


def cratecage_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cratecage:")]


def shared_state(r: Rustup) -> tuple[bool, bytes]:
    shared = shared_rustup_home() / "toolchains" / r.toolchain / "lib" / "rustlib"
    return (shared / WASM).exists(), (shared / "components").read_bytes()


@pytest.mark.integration
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_toolchain_cargo_picks_gets_the_wasm_target_on_first_use_with_only_the_wrapper_set(
    mechanism: str, tmp_path: Path
) -> None:
    r = private_rustup(tmp_path)
    before = shared_state(r)
    ws = workspace(tmp_path)
    argv, extra, toolchain_file = MECHANISMS[mechanism]
    argv = [str(r.rustc.parent / "cargo") if a == TOOLCHAIN_CARGO else a for a in argv]
    if toolchain_file:
        (ws / "rust-toolchain.toml").write_text(toolchain_file)
    p, events = build(r, ws, argv, **extra)
    assert p.returncode == 0, p.stderr[-4000:]
    assert cratecage_lines(p.stderr) == [ANNOUNCEMENT], p.stderr  # two build scripts, one announcement
    assert [e["outcome"] for e in events] == ["added"]
    assert r.target_dir.is_dir()
    version = r.version_line()  # rustc 1.99.1 (...)
    assert version.startswith(f"rustc {FRESH_TOOLCHAIN} ")
    # Both scripts ran as wasm32 and saw cargo's compiler, the one the project named.
    run = subprocess.run([str(ws / "target" / "debug" / "pick-app")], capture_output=True, text=True, check=True)
    assert run.stdout == f"app: wasm32 {version}\nprobe: wasm32 {version}\n"
    audit = [json.loads(line) for line in (ws / "target" / "cratecage" / "audit.jsonl").read_text().splitlines()]
    assert {(e["crate"], e["exit_code"]) for e in audit if e.get("event") == "run"} == {("pick-app", 0),
                                                                                      ("pick-probe", 0)}
    modules = sorted((ws / "target" / "cratecage" / "build").glob("*/*.wasm"))
    assert len(modules) == 2
    for module in modules:  # the producers section names the rustc that compiled it
        assert version.removeprefix("rustc ").encode() in module.read_bytes()
    # Later builds say nothing more: cargo does not replay the line for fresh units, and recompiled
    # build scripts find the compiler capable.
    for touch in ((), ("app/build.rs", "probe/build.rs")):
        for script in touch:
            (ws / script).touch()
        again, events = build(r, ws, argv, **extra)
        assert again.returncode == 0, again.stderr[-4000:]
        assert cratecage_lines(again.stderr) == [] and events == []
    assert shared_state(r) == before  # the shared toolchain was not touched


@pytest.mark.integration
def test_a_target_rustup_cannot_fetch_fails_every_unit_with_the_command_and_is_tried_once_per_cargo(
    tmp_path: Path
) -> None:
    r = private_rustup(tmp_path)
    ws = workspace(tmp_path)
    argv = ["cargo", f"+{FRESH_TOOLCHAIN}", "build", "--keep-going"]
    p, events = build(r, ws, argv, **OFFLINE)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert p.stderr.count(ANNOUNCEMENT) == 1
    errors = [line for line in cratecage_lines(p.stderr) if line != ANNOUNCEMENT]
    # Said once per cargo run (shim.once), naming whichever unit met it first; every unit still failed.
    assert len(errors) == 1, p.stderr
    assert errors[0].split(" must ")[0] in ("cratecage: the build script of pick-app 0.1.0",
                                            "cratecage: the build script of pick-probe 0.1.0")
    assert p.stderr.count("failed to run custom build command") + p.stderr.count("could not compile") >= 2 or \
        p.stderr.count("error: ") >= 2, p.stderr[-4000:]
    for error in errors:
        assert f"({r.rustc}, {r.version_line()})" in error
        assert f"run `rustup target add {WASM} --toolchain {r.toolchain}` where rustup can reach" in error
        assert f'eval "$({WRAPPER} toolchain env)"' in error  # the selected stable is the way out
    assert sorted(e["outcome"] for e in events) == ["failed", "remembered"]
    assert not r.target_dir.exists()
    # The way out works when pasted into a shell where cratecage is not on PATH.
    way_out = re.search(r'run `(eval "\$\([^`]+\)")`', errors[0])
    assert way_out, errors[0]
    shell = subprocess.run(["sh", "-c", f"{way_out.group(1)} && rustc -V"], cwd=ws, env=r.env(), text=True,
                           capture_output=True)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == toolchain.load_selected(r.env())["version"] + "\n"
    # The next cargo tries again (here: fails again, once).
    p, events = build(r, ws, argv, **OFFLINE)
    assert p.returncode != 0 and p.stderr.count(ANNOUNCEMENT) == 1
    assert sorted(e["outcome"] for e in events) == ["failed", "remembered"]


@pytest.mark.integration
def test_a_compiler_outside_rustup_without_rust_src_fails_naming_what_is_missing(tmp_path: Path) -> None:
    r = private_rustup(tmp_path)
    ws = workspace(tmp_path)
    elsewhere = tmp_path / "no-rustup-here"
    elsewhere.mkdir()
    cargo = str(r.rustc.parent / "cargo")  # the toolchain's own cargo and rustc, no rustup in charge
    p, events = build(r, ws, [cargo, "build"], RUSTC=str(r.rustc), RUSTUP_HOME=str(elsewhere))
    assert p.returncode != 0
    errors = cratecage_lines(p.stderr)
    assert errors and all(e.startswith("cratecage: the build script of pick-") for e in errors), p.stderr
    assert f"({r.rustc}, {r.version_line()}), which has no {WASM} std" in errors[0]
    assert "not a rustup toolchain" in errors[0] and "no rust-src for this compiler" in errors[0]
    assert "install what is missing for this compiler, then build again" in errors[0]
    assert {e["outcome"] for e in events} == {"impossible"}
    assert not r.target_dir.exists()


def cli(r: Rustup, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WRAPPER), *args], cwd=cwd, env=r.env(**extra), capture_output=True, text=True,
                          timeout=120)


@pytest.mark.integration
def test_doctor_and_check_answer_for_the_toolchain_cargo_would_pick_in_the_directory(tmp_path: Path) -> None:
    r = private_rustup(tmp_path)
    plain, pinned, overridden = (tmp_path / d for d in ("plain", "pinned", "overridden"))
    for d in (plain, pinned, overridden):
        d.mkdir()
    (pinned / "rust-toolchain.toml").write_text(f'[toolchain]\nchannel = "{FRESH_TOOLCHAIN}"\n')
    subprocess.run(["rustup", "override", "set", FRESH_TOOLCHAIN], cwd=overridden, env=r.env(), check=True,
                   capture_output=True)
    # The default (the shared stable, also the selected one) has the target.
    assert cli(r, plain, "toolchain", "--check").returncode == 0
    for cwd, extra in ((pinned, {}), (overridden, {}), (plain, {"RUSTUP_TOOLCHAIN": FRESH_TOOLCHAIN})):
        assert cli(r, cwd, "toolchain", "--check", **extra).returncode == 3, (cwd, extra)
        doctor = cli(r, cwd, "doctor", **extra)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr  # the first build can fix it
        assert f"rustc:          {r.rustc} ({r.version_line()})" in doctor.stdout
        assert f"{WASM}:  not ready" in doctor.stdout
        assert f"first use:      the first build adds it: rustup target add {WASM} --toolchain {r.toolchain}" \
            in doctor.stdout
    outside = cli(r, pinned, "doctor", RUSTC=str(r.rustc), RUSTUP_HOME=str(tmp_path))  # not rustup's, no rust-src
    assert outside.returncode == 3 and "cannot be added here: not a rustup toolchain" in outside.stdout
    assert not r.target_dir.exists()


def test_a_rustup_proxy_never_answers_for_another_toolchain(tmp_path: Path) -> None:
    r = private_rustup(tmp_path)
    proxy = str(r.cargo_home / "bin" / "rustc")  # a hard link to rustup, as rustup's installer makes it
    assert capable.is_rustup_proxy(proxy)
    on_default = r.env(RUSTUP_TOOLCHAIN=r.default)
    on_fresh = r.env(RUSTUP_TOOLCHAIN=r.toolchain, **OFFLINE)
    assert first_use.require_wasm_capable(proxy, what="build script of x 1.0.0", environ=on_default).ready
    assert capable.verified(proxy, on_default) is not None  # remembered under the default's own rustc
    assert capable.compiler_binary(proxy, on_fresh) == os.path.realpath(r.rustc)
    assert capable.verified(proxy, on_fresh) is None
    assert capable.verified(proxy, r.env()) is None  # no RUSTUP_TOOLCHAIN: the directory decides, ask again
    with pytest.raises(ToolchainError, match=f"rustc {FRESH_TOOLCHAIN}"):
        first_use.require_wasm_capable(proxy, what="build script of x 1.0.0", environ=on_fresh)
    # A program that picks the toolchain itself is not remembered at all: only a compiler is.
    chooser = tmp_path / "rustc"
    chooser.write_text('#!/bin/sh\nexec "$CHOICE/bin/rustc" "$@"\n')
    chooser.chmod(0o755)
    default_root = str(r.home / "toolchains" / r.default)
    assert first_use.require_wasm_capable(str(chooser), what="x", environ=r.env(CHOICE=default_root)).ready
    assert capable.verified(str(chooser), r.env(CHOICE=default_root)) is None
    with pytest.raises(ToolchainError, match=f"rustc {FRESH_TOOLCHAIN}"):
        first_use.require_wasm_capable(str(chooser), what="x",
                                       environ=r.env(CHOICE=str(r.rustc.parent.parent), **OFFLINE))


def test_a_compiler_outside_rustup_with_rust_src_wasi_libc_and_lld_is_built_for_on_first_use(tmp_path: Path) -> None:
    sysroot = tmp_path / "sysroot"
    library = sysroot / "lib" / "rustlib" / "src" / "rust" / "library"
    (library / "std").mkdir(parents=True)
    for piece in (library / "std" / "Cargo.toml", library / "Cargo.lock", tmp_path / "wasi" / "lib" / WASM /
                  "crt1-command.o", tmp_path / "wasi" / "lib" / WASM / "libc.a"):
        piece.parent.mkdir(parents=True, exist_ok=True)
        piece.write_text("")
    for program in (sysroot / "bin" / "cargo", sysroot / "lib" / "rustlib" / "x86_64-unknown-linux-gnu" / "bin" /
                    "rust-lld"):
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    compiler = toolchain.Compiler(rustc=str(sysroot / "bin" / "rustc"), sysroot=str(sysroot), verbose_version=(
        "rustc 1.96.0 (ac68faa20 2026-05-25)\nhost: x86_64-unknown-linux-gnu\nrelease: 1.96.0\n"))
    env = {"PATH": "", "WASI_SYSROOT": str(tmp_path / "wasi"), "RUSTUP_HOME": str(tmp_path / "rustup"),
           "CARGO_HOME": str(tmp_path / "cargo")}
    plan = first_use.plan(compiler, env)
    assert (plan.route, plan.toolchain, plan.missing) == (first_use.RUST_SRC, None, ())
    assert first_use.describe(compiler, env) == "the first build builds it from rust-src (about a minute)"
    assert "from its rust-src (once; about a minute)" in plan.announcement(compiler)
    (tmp_path / "wasi" / "lib" / WASM / "libc.a").unlink()
    assert first_use.plan(compiler, env).route is None
    assert "no wasi-libc" in first_use.describe(compiler, env)
