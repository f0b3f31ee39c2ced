"""Hostile build scripts (fixtures/hostile, one cargo feature per attack) must fail with their specific
`cratecage:` denial or limit, and the canary they go after must be absent from every output. Each attack has
a harmless twin that builds."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, write_test_env
from target_dirs import out_dirs, script_unit_files

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Attack:
    feature: str
    ok: bool  # does the build succeed?
    expect: tuple[str, ...]  # substrings of cargo's stderr
    env: dict[str, str] = field(default_factory=dict)


SMALL = {"CRATECAGE_LIMIT_TIME": "3s"}
ATTACKS = [
    Attack("read-canary", False, ("hostile canary:", "cratecage: build script of hostile 0.1.0 panicked")),
    Attack("read-canary-twin", True, ("hostile twin: read \"harmless data inside the package\\n\"",)),
    Attack("read-etc-passwd", False, ("hostile passwd:", "panicked")),
    Attack("read-dotdot", False, ("hostile dotdot:", "panicked")),
    Attack("read-symlink", False, ("hostile symlink:", "panicked")),
    Attack("write-package", False, ("hostile write-package:", "panicked")),
    Attack("write-out-dir", True, ("hostile twin wrote /",)),
    Attack("plant-symlink", False, ("filesystem-access denied", "symbolic link in OUT_DIR points outside it")),
    Attack("plant-symlink-twin", True, ()),
    Attack("read-secrets", True, ("hostile env AWS_SECRET_ACCESS_KEY=None", "hostile env CARGO_REGISTRY_TOKEN=None",
                                  "hostile env HOME=None", "hostile env PATH=None", "hostile env DEP_CI_TOKEN=None",
                                  "hostile env CARGO_FEATURE_DEPLOY_KEY=None", "hostile env CARGO_CFG_SECRET=None",
                                  "env-access not granted: AWS_SECRET_ACCESS_KEY")),
    Attack("spawn-shell", False, ("process-spawn denied: sh",)),
    Attack("spin", False, ("ran longer than 3 s",), SMALL),
    Attack("sleep", False, ("ran longer than 3 s", "inside a host call"), SMALL),
    Attack("allocate", False, ("ran out of memory",), {"CRATECAGE_LIMIT_MEMORY": "256MiB"}),
    Attack("print-flood", False, ("printed more than 8388608 bytes to stdout",), {"CRATECAGE_LIMIT_STDOUT": "8MiB"}),
    Attack("fill-out-dir", False, ("wrote more than 67108864 bytes into OUT_DIR",),
           {"CRATECAGE_LIMIT_OUT_DIR": "64MiB"}),
    Attack("probe-leak", True, ("hostile probe-leak byte0=0",)),
    Attack("probe-leak-twin", True, (f"hostile probe-leak-twin byte0={ord('h')}",)),
    Attack("probe-linker", False, ("rustc-probe denied", "linker")),
    Attack("probe-sh-wrapper", False, ("process-spawn denied: /bin/sh",)),
]


@pytest.fixture(scope="module")
def arena(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A copy of the hostile package next to a canary file it must never read."""
    root = tmp_path_factory.mktemp(f"hostile-{cargo.layout}")
    package = root / "pkg" / "hostile"
    shutil.copytree(FIXTURES / "hostile", package)
    secret_dir = root / "secret"
    secret_dir.mkdir()
    token = "Z" + "CANARY" + secrets.token_hex(8)  # 'Z' = 0x5a: a probe leak would print byte0=90
    canary = secret_dir / "id_rsa"
    canary.write_text(token + "\n")
    (package / "link-out").symlink_to(canary)
    return {"package": package, "canary": canary, "token": token}


def build(cargo: Cargo, arena: dict, targets: Path, attack: Attack, target: str = "hostile") -> CargoRun:
    env = {"HOSTILE_CANARY": str(arena["canary"]),
           "HOSTILE_DOTDOT": os.path.relpath(arena["canary"], arena["package"]),
           "HOSTILE_LINK": "link-out",
           "AWS_SECRET_ACCESS_KEY": arena["token"], "CARGO_REGISTRY_TOKEN": arena["token"],
           # named like the variables cargo gives build scripts by family, but the user's (a CI's) own
           "DEP_CI_TOKEN": arena["token"], "CARGO_FEATURE_DEPLOY_KEY": arena["token"], "CARGO_CFG_SECRET": arena["token"],
           **attack.env}
    write_test_env(arena["package"], {k: v for k, v in env.items() if k.startswith("HOSTILE_")})
    return cargo(arena["package"], "build", "--features", attack.feature, wrapped=True,
                 target_dir=targets / target, extra_env=env, check=False)


def outputs_of(target: Path) -> bytes:
    return b"".join(path.read_bytes() for path in script_unit_files(target, "hostile")
                    if path.stat().st_size < (8 << 20))


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.feature for a in ATTACKS])
def test_attack(cargo: Cargo, arena: dict, targets: Path, attack: Attack) -> None:
    run = build(cargo, arena, targets, attack)
    stderr = run.proc.stderr
    assert run.ok == attack.ok, stderr[-3000:]
    for text in attack.expect:
        assert text in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    token = arena["token"]
    assert token not in stderr and token not in run.proc.stdout
    assert token.encode() not in outputs_of(targets / "hostile")
    assert not (arena["package"] / "planted.txt").exists()
    if not attack.ok:
        assert "cratecage: " in stderr


def test_a_planted_link_is_removed(cargo: Cargo, arena: dict, targets: Path) -> None:
    build(cargo, arena, targets, Attack("plant-symlink", False, ()))
    outs = out_dirs(targets / "hostile", "hostile")
    assert outs and not [out for out in outs if os.path.lexists(out / "leak")]


def test_a_memory_limit_below_what_the_module_needs_to_start_is_the_limit_s_message(
        cargo: Cargo, arena: dict, targets: Path) -> None:
    """A harmless script under a limit smaller than its module's initial memory: wasmtime refuses to
    instantiate it; the build fails with the limit's `cratecage:` line, not an internal error."""
    # its own target dir: in the shared one the twin's script is fresh and cargo would not run it again
    run = build(cargo, arena, targets, Attack("plant-symlink-twin", False, (), {"CRATECAGE_LIMIT_MEMORY": "1MiB"}),
                target="hostile-memory")
    stderr = run.proc.stderr
    assert not run.ok, stderr[-3000:]
    assert "needs more memory than its limit to start" in stderr and "CRATECAGE_LIMIT_MEMORY" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr and "internal error" not in stderr
