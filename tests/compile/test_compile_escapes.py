"""What rustc reads while cratecage compiles a build script, or replays its build-dependency, for wasm
(issue 9, class B): files outside the package by include_str!/include_bytes!/include!/#[path], and variables
by env!/option_env!, are refused with a `cratecage:` denial that names the crate and the policy entry; the
canary never reaches any output or file; each attack's twin builds (fixtures/compile-escapes)."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun

pytestmark = pytest.mark.integration

SCRIPT = "cratecage: build script of compile-escapes 0.1.0: "
DEP = "cratecage: build-dependency escape-dep 0.1.0 (of the build script of compile-escapes 0.1.0): "
FS_ENTRY = 'filesystem-access = { action = "permit", paths = ['
SCRIPT_TABLE = "[permissions.build.compile-escapes]"
DEP_TABLE = "[permissions.build.escape-dep]"


@dataclass(frozen=True)
class Attack:
    feature: str
    ok: bool
    expect: tuple[str, ...]  # substrings of cargo's stderr


def _fs(who: str, table: str) -> tuple[str, ...]:
    return (who + "filesystem-access denied: ", table, FS_ENTRY)


def _env(who: str, table: str, name: str, verb: str = "denied") -> tuple[str, ...]:
    return (f"{who}env-access {verb}: {name}: ", table, f'env-access = {{ action = "permit", vars = ["{name}"] }}')


ATTACKS = [
    Attack("include-str", False, _fs(SCRIPT, SCRIPT_TABLE)),
    Attack("include-bytes", False, _fs(SCRIPT, SCRIPT_TABLE)),
    Attack("include", False, _fs(SCRIPT, SCRIPT_TABLE)),
    Attack("path-abs", False, _fs(SCRIPT, SCRIPT_TABLE)),
    Attack("path-rel", False, _fs(SCRIPT, SCRIPT_TABLE)),
    Attack("option-env", True, (*_env(SCRIPT, SCRIPT_TABLE, "CARGO_REGISTRY_TOKEN", "not granted"),
                                "escape script saw None")),
    Attack("env-token", False, _env(SCRIPT, SCRIPT_TABLE, "SOME_CI_TOKEN")),
    Attack("twin-include-str", True, ('escape script saw "harmless data inside the package\\n"',)),
    Attack("twin-pkg-name", True, ('escape script saw "compile-escapes"',)),
    Attack("twin-granted-env", True, ('escape script saw "granted-value"',)),
    Attack("twin-granted-file", True, ('escape script saw "granted file content\\n"',)),
    Attack("dep-include-str", False, _fs(DEP, DEP_TABLE)),
    Attack("dep-include-bytes", False, _fs(DEP, DEP_TABLE)),
    Attack("dep-include", False, _fs(DEP, DEP_TABLE)),
    Attack("dep-path-abs", False, _fs(DEP, DEP_TABLE)),
    Attack("dep-path-rel", False, _fs(DEP, DEP_TABLE)),
    Attack("dep-option-env", True, (*_env(DEP, DEP_TABLE, "GITHUB_TOKEN", "not granted"), 'escape dep saw "None"')),
    # the dependency lies outside the workspace: its native compile never sees the user's credentials
    Attack("dep-env-token", False, ("cratecage: the library escape-dep 0.1.0, of a package outside the workspace, "
                                    "read AWS_SECRET_ACCESS_KEY at compile time",)),
    Attack("dep-twin-include-str", True, ('escape dep saw "\\"harmless data of the dependency\\\\n\\""',)),
    Attack("dep-twin-pkg-name", True, ('escape dep saw "\\"escape-dep\\""',)),
    Attack("dep-twin-granted-env", True, ('escape dep saw "\\"granted-value\\""',)),
    Attack("dep-twin-granted-file", True, ('escape dep saw "\\"granted file content\\\\n\\""',)),
    Attack("dep-twin-out-dir", True, ('escape dep saw "(\\"generated in OUT_DIR\\", \\"set by its build script\\")"',)),
]

POLICY = """\
[permissions.build.compile-escapes]
env-access = {{ action = "permit", vars = ["GRANTED_VAR"] }}
filesystem-access = {{ action = "permit", paths = ["{granted}"] }}

[permissions.build.escape-dep]
env-access = {{ action = "permit", vars = ["GRANTED_VAR"] }}
filesystem-access = {{ action = "permit", paths = ["{granted}"] }}
"""


def _fill(path: Path, values: dict[str, str]) -> None:
    text = path.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    path.write_text(text)


@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The two packages, canaries beside them (never inside), a granted file, and the policy."""
    root = tmp_path_factory.mktemp(f"escapes-{cargo.layout}")
    shutil.copytree(FIXTURES / "compile-escapes", root / "src")
    script, dep = root / "src" / "script", root / "src" / "escape-dep"
    secret = root / "secret"
    secret.mkdir()
    token = "CANARY" + secrets.token_hex(10)
    (secret / "canary.txt").write_text(token + "\n")
    (secret / "canary_expr.rs").write_text(f'"{token}"\n')
    (secret / "canary_mod.rs").write_text(f'pub const LEAK: &str = "{token}";\n')
    (root / "granted").mkdir()
    granted = root / "granted" / "allowed.txt"
    granted.write_text("granted file content\n")
    for source in (script / "build.rs", dep / "src" / "lib.rs"):
        _fill(source, {"CANARY": str(secret / "canary.txt"), "CANARY_RS": str(secret / "canary_expr.rs"),
                       "CANARY_MOD": str(secret / "canary_mod.rs"),
                       "DOTDOT_RS": os.path.relpath(secret / "canary_mod.rs", source.parent),
                       "GRANTED": str(granted)})
    (script / "cratecage.toml").write_text(POLICY.format(granted=granted))
    return {"root": root, "script": script, "token": token}


def build(cargo: Cargo, arena: dict, target: Path, feature: str) -> CargoRun:
    token = arena["token"]
    env = {"CARGO_REGISTRY_TOKEN": token, "SOME_CI_TOKEN": token, "GITHUB_TOKEN": token,
           "AWS_SECRET_ACCESS_KEY": token, "GRANTED_VAR": "granted-value"}
    return cargo(arena["script"], "build", "--features", feature, wrapped=True, target_dir=target, extra_env=env,
                 check=False)


def native_artifact_of_dep(path: Path, target: Path) -> bool:
    """The dependency's own *native* compile (passed through, unconfined, as any ordinary library's) reads
    what its source names; that is the native-compile limit (README), not a wasm compile's."""
    rel = str(path.relative_to(target))
    return not rel.startswith("cratecage" + os.sep) and ("escape_dep" in rel or "escape-dep" in rel)


def files_with(token: str, target: Path, *, skip_native_dep: bool) -> list[Path]:
    found = []
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink() and not (skip_native_dep and native_artifact_of_dep(path, target)):
            if token.encode() in path.read_bytes():
                found.append(path)
    return found


def tree(root: Path, skip: Path) -> set[str]:
    """Every path under `root` but the target dir and the lock file cargo itself writes."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if skip not in p.parents and p != skip and p.name != "Cargo.lock"}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.feature for a in ATTACKS])
def test_compile_time_escape(cargo: Cargo, arena: dict, targets: Path, attack: Attack) -> None:
    target = targets / "escapes"
    before = tree(arena["root"], target)
    run = build(cargo, arena, target, attack.feature)
    stderr = run.proc.stderr
    assert run.ok == attack.ok, stderr[-4000:]
    for text in attack.expect:
        assert text in stderr, stderr[-4000:]
    assert "Traceback" not in stderr and "internal error" not in stderr
    token = arena["token"]
    assert token not in stderr and token not in run.proc.stdout
    assert files_with(token, target, skip_native_dep=False) == []  # no native copy keeps what wasm refused
    assert tree(arena["root"], target) == before  # nothing created outside the target dir


def test_a_grant_of_the_variable_makes_env_work(cargo: Cargo, arena: dict, targets: Path) -> None:
    """The entry the denial prints, pasted into the policy, makes the same attack compile (with a value
    that is no secret)."""
    policy = arena["script"] / "cratecage.toml"
    original = policy.read_text()
    policy.write_text(original.replace('vars = ["GRANTED_VAR"]', 'vars = ["GRANTED_VAR", "SOME_CI_TOKEN"]', 1))
    try:
        run = cargo(arena["script"], "build", "--features", "env-token", wrapped=True,
                    target_dir=targets / "escapes-granted", extra_env={"SOME_CI_TOKEN": "not-a-secret"},
                    check=False)
    finally:
        policy.write_text(original)
    assert run.ok, run.proc.stderr[-3000:]
    assert 'escape script saw "not-a-secret"' in run.proc.stderr


@pytest.mark.parametrize("how", ["symlink", "absolute-build-path", "twin-symlink-inside"])
def test_a_build_script_source_outside_the_package_is_not_read(cargo: Cargo, tmp_path: Path, how: str) -> None:
    """Cargo takes `build = "/abs/file"` and a `build.rs` that is a symbolic link as they are; the wasm compile
    may read the script's source only where it really lies inside the package (rustc quotes a file it cannot
    parse, so reading it is leaking it)."""
    token = "CANARY" + secrets.token_hex(10)
    secret = tmp_path / "secret" / "notes.txt"
    secret.parent.mkdir()
    secret.write_text(f"SECRETLINE_{token} = 1\n")
    pkg = tmp_path / "pkg"
    (pkg / "src").mkdir(parents=True)
    (pkg / "src" / "main.rs").write_text("fn main() {}\n")
    (pkg / "tools").mkdir()
    (pkg / "tools" / "gen.rs").write_text('fn main() { println!("cargo:warning=twin script ran"); }\n')
    build = ""
    if how == "symlink":
        (pkg / "build.rs").symlink_to(secret)
    elif how == "absolute-build-path":
        build = f'build = "{secret}"\n'
    else:
        (pkg / "build.rs").symlink_to(Path("tools") / "gen.rs")
    (pkg / "Cargo.toml").write_text(f'[package]\nname = "outside-source"\nversion = "0.1.0"\nedition = "2021"\n{build}')
    target = tmp_path / "target"
    run = cargo(pkg, "build", wrapped=True, target_dir=target, check=False)
    stderr = run.proc.stderr + run.proc.stdout
    assert token not in stderr
    assert files_with(token, target, skip_native_dep=False) == []
    if how.startswith("twin"):
        assert run.ok and "twin script ran" in stderr, stderr[-3000:]
    else:
        assert not run.ok
        assert "cratecage: build script of outside-source 0.1.0: filesystem-access denied" in stderr, stderr[-3000:]
