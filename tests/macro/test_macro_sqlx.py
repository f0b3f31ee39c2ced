"""`sqlx::query_as!` (sqlx 0.8.6, `postgres` + `macros`, no runtime feature) expanding in the sandbox in
offline mode, through a real cargo build of fixtures/macro-sqlx: its `.sqlx/query-<hash>.json` was written
once by a native build of the same query against PostgreSQL with `DATABASE_URL` and `SQLX_OFFLINE_DIR` set
(and `runtime-tokio`, which online mode needs), and is committed.

  - with no grant the expansion is refused, naming `SQLX_OFFLINE` and the `.sqlx` file it looked for, and
    the `cargo metadata` sqlx-macros then tries to run (to find the workspace root) is refused too;
  - with `SQLX_OFFLINE` and the `.sqlx` directory granted it builds and the program prints the checked query;
  - the expansion really reads the granted file: a `.sqlx` file that describes the column as `int8` makes
    the struct's `Option<i32>` field a type error.

Online mode (`DATABASE_URL` + a route grant) cannot work yet, nor can any build with sqlx's
`runtime-tokio`/`runtime-async-std` (README, Limits: sqlx). The fixture patches crates.io's `home`, which has
no wasm32-wasip1 `home_dir` (fixtures/macro-sqlx/home). One target directory serves every build: the first
compiles sqlx's ~130 crates natively and sqlx-macros' closure for wasm (~1-3 min; registry crates' wasm
compiles come from the per-user cache afterwards), the others only the app. That first build is why this
module is marked `sqlx` and left out of `make test` (pyproject's addopts); `make test-sqlx` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo, CargoRun, assert_nothing_outlives

# Out of `make test` (its first build takes minutes: see the docstring); `make test-sqlx` runs it.
pytestmark = [pytest.mark.integration, pytest.mark.sqlx]

SQL = "SELECT 40 + 2 AS answer"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("macro-sqlx")
    shutil.copytree(FIXTURES / "macro-sqlx", root / "ws")
    return root


def build(cargo: Cargo, root: Path, policy: str) -> CargoRun:
    policy_file = root / "policy.toml"
    policy_file.write_text(policy)
    run = cargo(root / "ws", "build", "--locked", wrapped=True, target_dir=root / "target", check=False,
                extra_env={"CRATECAGE_POLICY": str(policy_file), "SQLX_OFFLINE": "true"})
    assert_nothing_outlives(root)
    return run


def grant(ws: Path) -> str:
    return ('[permissions.macro.sqlx-macros]\nenv-access = { action = "permit", vars = ["SQLX_OFFLINE"] }\n'
            f'filesystem-access = {{ action = "permit", paths = ["{ws / ".sqlx"}"] }}\n')


def refusals(stderr: str) -> list[str]:
    prefix = "cratecage: proc macro crate sqlx-macros 0.8.6 (compiling sqlx-app 0.1.0): "
    return [line.strip()[len(prefix):] for line in stderr.splitlines() if line.strip().startswith(prefix)]


def test_sqlx_offline_is_refused_without_grants_and_checks_the_query_with_them(
        selected_cargo: Cargo, workspace: Path) -> None:
    ws = workspace / "ws"
    [cached] = (ws / ".sqlx").glob("query-*.json")
    assert json.loads(cached.read_text())["query"] == SQL

    refused = build(selected_cargo, workspace, "")
    assert not refused.ok
    lines = refusals(refused.proc.stderr)
    assert any(line.startswith("env-access not granted: SQLX_OFFLINE") for line in lines), refused.proc.stderr[-4000:]
    assert any(line.startswith(f"filesystem-access not granted: stat {cached}") for line in lines), lines
    assert any(line.startswith("process-spawn denied: ") and line.split(": ")[1].endswith("/cargo")
               for line in lines), lines

    run = build(selected_cargo, workspace, grant(ws))
    assert run.ok, run.proc.stderr[-4000:]
    program = subprocess.run([str(workspace / "target" / "debug" / "sqlx-app")], capture_output=True, text=True,
                             timeout=30, env={"PATH": os.environ["PATH"]})
    assert program.returncode == 0, program.stderr
    assert program.stdout == f"checked: {SQL}\n"
    assert not refusals(run.proc.stderr)


def test_the_granted_sqlx_file_is_what_the_macro_checks_against(selected_cargo: Cargo, workspace: Path) -> None:
    ws = workspace / "ws"
    [cached] = (ws / ".sqlx").glob("query-*.json")
    original = cached.read_text()
    data = json.loads(original)
    data["describe"]["columns"][0]["type_info"] = "Int8"
    cached.write_text(json.dumps(data))
    (ws / "src" / "main.rs").touch()
    try:
        run = build(selected_cargo, workspace, grant(ws))
    finally:
        cached.write_text(original)
    assert not run.ok
    assert "the trait `From<Option<i64>>` is not implemented for `Option<i32>`" in run.proc.stderr, \
        run.proc.stderr[-4000:]
