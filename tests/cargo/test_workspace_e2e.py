"""The policy comes from the user's workspace only, whatever cargo is called (issue 9, class C).

A path dependency that lives outside the workspace carries `[package.metadata.permissions]` granting
itself a canary file, a secret variable and `sandbox = "native"`. Built by a cargo started under other
names (a `cargo-1.95` link, a copy, `exec -a`, a launcher that spawns it), its build script stays
sandboxed and denied; the same grants in the workspace's own cratecage.toml are honoured. Without any
cargo ancestor (the launcher run by hand, a wrapper detached from cargo's process tree) the build stops
and names CRATECAGE_WORKSPACE_ROOT / CRATECAGE_POLICY, and goes on when the root is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import WRAPPER, scrubbed

pytestmark = pytest.mark.integration

BUILD_RS = r'''
fn main() {
    let file = std::fs::read_to_string("@CANARY@");
    let var = std::env::var("FARPKG_SECRET");
    let seen = format!("file={:?} var={:?}", file, var);
    std::fs::write(format!("{}/seen.txt", std::env::var("OUT_DIR").unwrap()), &seen).unwrap();
    match file {
        Ok(text) => println!("cargo:warning=farpkg file: {}", text.trim()),
        Err(_) => println!("cargo:warning=farpkg file: unreadable"),
    }
    match var {
        Ok(value) => println!("cargo:warning=farpkg var: {}", value),
        Err(_) => println!("cargo:warning=farpkg var: unset"),
    }
    println!("cargo:warning=farpkg sandboxed: {}", cfg!(target_arch = "wasm32"));
}
'''


def grants(canary: Path) -> str:
    return (f'sandbox = "native"\n'
            f'filesystem-access = {{ action = "permit", paths = ["{canary}"] }}\n'
            f'env-access = {{ action = "permit", vars = ["FARPKG_SECRET"] }}\n')


@pytest.fixture()
def project(tmp_path: Path) -> dict:
    token, secret = f"tok{os.urandom(8).hex()}", f"sec{os.urandom(8).hex()}"
    canary = tmp_path / "outside" / "canary.txt"
    canary.parent.mkdir()
    canary.write_text(token + "\n")
    far = tmp_path / "far" / "farpkg"
    (far / "src").mkdir(parents=True)
    (far / "Cargo.toml").write_text('[package]\nname = "farpkg"\nversion = "1.0.0"\nedition = "2021"\n'
                                    '[package.metadata.permissions.build.farpkg]\n' + grants(canary))
    (far / "build.rs").write_text(BUILD_RS.replace("@CANARY@", str(canary)))
    (far / "src" / "lib.rs").write_text('pub const SEEN: &str = include_str!(concat!(env!("OUT_DIR"), "/seen.txt"));\n')
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n'
                                   f'[dependencies]\nfarpkg = {{ path = "{far}" }}\n[workspace]\n')
    (ws / "src" / "lib.rs").write_text("pub fn seen() -> &'static str { farpkg::SEEN }\n")
    return {"ws": ws, "far": far, "canary": canary, "token": token, "secret": secret,
            "target": tmp_path / "target", "bin": tmp_path / "bin"}


@pytest.fixture(scope="session")
def real_cargo(toolchain_env: dict[str, str]) -> str:
    found = shutil.which("cargo", path=toolchain_env["PATH"])
    assert found, "no cargo on the selected toolchain's PATH"
    return os.path.realpath(found)


@pytest.fixture(scope="session")
def copied_cargo(real_cargo: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cargo binary copied under a name of its own (another file: identity is $CARGO's, not a link's)."""
    copy = tmp_path_factory.mktemp("cargo-copy") / "xbuild"
    shutil.copy2(real_cargo, copy)
    return copy


def launcher(how: str, project: dict, real_cargo: str, copied_cargo: Path) -> list[str]:
    """argv prefix that starts cargo under another name."""
    bindir: Path = project["bin"]
    bindir.mkdir(exist_ok=True)
    if how == "link":  # what distributions ship
        link = bindir / "cargo-1.95"
        link.symlink_to(real_cargo)
        return [str(link)]
    if how == "copy":
        return [str(copied_cargo)]
    if how == "exec-a":  # a shell launcher that renames argv[0]
        script = bindir / "buildtool"
        script.write_text(f'#!/bin/bash\nexec -a buildtool "{real_cargo}" "$@"\n')
        script.chmod(0o755)
        return [str(script)]
    if how == "spawn":  # a tool that starts cargo as its child, under its own name
        script = bindir / "compile-all"
        script.write_text(f"#!{sys.executable}\nimport subprocess, sys\n"
                          f"sys.exit(subprocess.run(['compile-all', *sys.argv[1:]], "
                          f"executable={real_cargo!r}).returncode)\n")
        script.chmod(0o755)
        return [str(script)]
    raise AssertionError(how)


def base_env(project: dict, toolchain_env: dict[str, str], **extra: str) -> dict[str, str]:
    """A user's shell: no CARGO of its own (cargo keeps an inherited $CARGO, so a stale one would name
    another binary than the cargo that runs; cratecage then finds no cargo and refuses)."""
    tools = {k: v for k, v in toolchain_env.items() if k != "CARGO"}
    return {**scrubbed(dict(os.environ)), **tools, "CARGO_TARGET_DIR": str(project["target"]),
            "CARGO_TERM_COLOR": "never", "FARPKG_SECRET": project["secret"], **extra}


def build(argv: list[str], project: dict, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, "build"], cwd=project["ws"], env=env, capture_output=True, text=True,
                          timeout=1200)


def assert_no_leak(project: dict, *outputs: str) -> None:
    """Neither canary reached an output, nor any file cargo or the build left in the target dir or the
    workspace."""
    for text in outputs:
        assert project["token"] not in text and project["secret"] not in text
    for root in (project["target"], project["ws"]):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert project["token"].encode() not in data and project["secret"].encode() not in data, path


@pytest.mark.parametrize("how", ["link", "copy", "exec-a"])
def test_a_dependency_outside_the_workspace_never_grants_itself_anything(
        how: str, project: dict, toolchain_env: dict[str, str], real_cargo: str, copied_cargo: Path) -> None:
    done = build(launcher(how, project, real_cargo, copied_cargo), project,
                 base_env(project, toolchain_env, RUSTC_WRAPPER=str(WRAPPER)))
    err = done.stderr
    assert done.returncode != 0
    assert f"filesystem-access denied: read {project['canary']}" in err, err[-3000:]
    assert "env-access not granted: FARPKG_SECRET" in err
    assert "farpkg file: unreadable" in err and "farpkg var: unset" in err
    assert "farpkg sandboxed: true" in err and "runs natively" not in err
    assert "cannot tell which workspace" not in err  # the renamed cargo was found
    assert_no_leak(project, done.stdout, err)


@pytest.mark.parametrize("how, native", [("link", False), ("spawn", True)])
def test_the_workspace_s_own_policy_is_honoured_under_a_renamed_cargo(
        how: str, native: bool, project: dict, toolchain_env: dict[str, str], real_cargo: str,
        copied_cargo: Path) -> None:
    policy = "[permissions.build.farpkg]\n" + grants(project["canary"])
    (project["ws"] / "cratecage.toml").write_text(policy if native else policy.replace('sandbox = "native"\n', ""))
    done = build(launcher(how, project, real_cargo, copied_cargo), project,
                 base_env(project, toolchain_env, RUSTC_WRAPPER=str(WRAPPER)))
    err = done.stderr
    assert done.returncode == 0, err[-3000:]
    assert f"farpkg file: {project['token']}" in err and f"farpkg var: {project['secret']}" in err
    assert f"farpkg sandboxed: {str(not native).lower()}" in err
    assert ("runs natively" in err) == native


def detached_wrapper(project: dict) -> Path:
    """A RUSTC_WRAPPER that runs cratecage outside cargo's process tree (as a build server would): the
    wrapper forks twice, so cratecage's parent is a shell whose parent is init, and reports its exit code
    back through a pipe."""
    project["bin"].mkdir(exist_ok=True)
    script = project["bin"] / "detach"
    script.write_text(f"""#!{sys.executable}
import os, sys
r, w = os.pipe()
os.set_inheritable(w, True)
if os.fork() == 0:
    os.close(r)
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", '"$@"; echo $? >&%d' % w, "sh", {str(WRAPPER)!r}, *sys.argv[1:]])
    os._exit(0)
os.close(w)
os.wait()
data = b""
while chunk := os.read(r, 64):
    data += chunk
sys.exit(int(data.strip() or b"1"))
""")
    script.chmod(0o755)
    return script


def test_a_compile_with_no_cargo_ancestor_stops_and_names_the_variables(
        project: dict, toolchain_env: dict[str, str]) -> None:
    (project["ws"] / "cratecage.toml").write_text(
        "[permissions.build.farpkg]\n" + grants(project["canary"]).replace('sandbox = "native"\n', ""))
    env = base_env(project, toolchain_env, RUSTC_WRAPPER=str(detached_wrapper(project)))
    done = build(["cargo"], project, env)
    err = done.stderr
    assert done.returncode != 0
    assert "cratecage: cannot tell which workspace this build belongs to" in err and "`farpkg`" in err
    assert "CRATECAGE_WORKSPACE_ROOT" in err and "CRATECAGE_POLICY" in err
    assert "farpkg file:" not in err  # nothing ran
    assert_no_leak(project, done.stdout, err)
    done = build(["cargo"], project, {**env, "CRATECAGE_WORKSPACE_ROOT": str(project["ws"])})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"farpkg file: {project['token']}" in done.stderr and "farpkg sandboxed: true" in done.stderr


def test_a_build_script_run_by_hand_in_the_dependency_stops_and_names_the_variables(
        project: dict, toolchain_env: dict[str, str], real_cargo: str) -> None:
    """The launcher cargo would run, run with cargo's environment but by no cargo, in the dependency's
    own directory (whose manifest grants itself everything): refused; with the root given, the
    workspace's policy applies (which grants nothing here)."""
    env = base_env(project, toolchain_env, RUSTC_WRAPPER=str(WRAPPER))
    first = build(["cargo"], project, env)
    assert first.returncode != 0 and "farpkg file: unreadable" in first.stderr  # no grant in the workspace
    [script] = [p for p in project["target"].glob("debug/build/farpkg-*/build-script-build")]
    [out_dir] = [p for p in project["target"].glob("debug/build/farpkg-*/out")]
    run_env = {**env, "OUT_DIR": str(out_dir), "CARGO_MANIFEST_DIR": str(project["far"]),
               "CARGO_PKG_NAME": "farpkg", "CARGO_PKG_VERSION": "1.0.0", "CARGO": real_cargo,
               "TARGET": "x86_64-unknown-linux-gnu", "HOST": "x86_64-unknown-linux-gnu"}
    by_hand = subprocess.run([str(script)], cwd=project["far"], env=run_env, capture_output=True, text=True,
                             timeout=300)
    assert by_hand.returncode != 0
    assert "cratecage: cannot tell which workspace this build belongs to" in by_hand.stderr
    assert "CRATECAGE_WORKSPACE_ROOT" in by_hand.stderr and "CRATECAGE_POLICY" in by_hand.stderr
    assert "farpkg file:" not in by_hand.stdout
    rooted = subprocess.run([str(script)], cwd=project["far"], capture_output=True, text=True, timeout=300,
                            env={**run_env, "CRATECAGE_WORKSPACE_ROOT": str(project["ws"])})
    assert "farpkg file: unreadable" in rooted.stdout and "farpkg sandboxed: true" in rooted.stdout
    assert "filesystem-access denied" in rooted.stderr
    assert_no_leak(project, first.stdout, first.stderr, by_hand.stdout, by_hand.stderr, rooted.stdout,
                   rooted.stderr)
