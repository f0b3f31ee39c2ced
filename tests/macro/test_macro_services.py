"""Proc macros whose grants do real I/O, through real cargo builds of fixtures/macro-services, every macro
expanding as WebAssembly in its sandbox:

  - `schema_macro::table!` reads a schema file relative to the compiled crate's `CARGO_MANIFEST_DIR` and
    generates a struct: refused without a grant with the `[permissions.macro.schema_macro]` entry for that
    file, built with exactly that entry;
  - `pg_macro::query!` connects with `std::net::TcpStream` (through the std facade) to a real PostgreSQL
    server (tests/postgres.py: Debian's, started on a free loopback port for this module, stopped after it),
    speaks the wire protocol and expands to the rows of a query: refused without a grant with the entry
    `network-access = { action = "permit", routes = ["127.0.0.1:<port>"] }`, built with exactly it (the
    program prints the rows the server answered, the audit lists the route), and with that grant a call to
    another port is still refused (the listener there sees no connection).

Each scenario is one feature of the app, so the macro crates compile once into one target directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, CargoRun, assert_nothing_outlives
from loopback import Listener
from postgres import Postgres

pytestmark = pytest.mark.integration


class Workspace:
    """A copy of the fixture with the server's port (and the other listener's) written into the app."""

    def __init__(self, cargo: Cargo, root: Path, port: int) -> None:
        self.cargo, self.root, self.port = cargo, root, port
        self.other = Listener()  # a route the policy never grants
        self.other_port = self.other.port
        self.ws = root / "ws"
        shutil.copytree(FIXTURES / "macro-services", self.ws)
        main = self.ws / "app" / "src" / "main.rs"
        main.write_text(main.read_text().replace("@PORT@", str(port)).replace("@OTHER_PORT@", str(self.other_port)))
        self.target = root / "target"

    def build(self, feature: str, policy: str = "") -> CargoRun:
        policy_file = self.root / f"policy-{feature}.toml"
        policy_file.write_text(policy)
        run = self.cargo(self.ws, "build", "--locked", "-p", "app", "--features", feature, wrapped=True,
                         target_dir=self.target, extra_env={"CRATECAGE_POLICY": str(policy_file)}, check=False)
        assert_nothing_outlives(self.root)
        return run

    def program(self) -> str:
        done = subprocess.run([str(self.target / "debug" / "app")], capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ["PATH"]})
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        server.sql("CREATE TABLE guests (id INT PRIMARY KEY, name TEXT NOT NULL);"
                   "INSERT INTO guests VALUES (1, 'ada'), (2, 'grace');")
        yield server


@pytest.fixture(scope="module")
def workspace(selected_cargo: Cargo, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace(selected_cargo, tmp_path_factory.mktemp("macro-services"), postgres.port)
    yield ws
    ws.other.close()


def entry_offered(stderr: str, crate: str) -> list[str]:
    """The `[permissions.macro.<crate>]` entry a denial offers: its head and its one key line."""
    lines = [line.strip() for line in stderr.splitlines()]
    heads = [i for i, line in enumerate(lines) if line == f"[permissions.macro.{crate}]"]
    assert heads, f"no [permissions.macro.{crate}] entry offered:\n{stderr[-3000:]}"
    keys = {lines[i + 1] for i in heads}
    assert len(keys) == 1, keys
    return [lines[heads[0]], keys.pop()]


def denials(stderr: str, crate: str, what: str) -> list[str]:
    """The `cratecage:` lines (in rustc's report of the macro's failure) that refuse `what`."""
    lines = [line.strip() for line in stderr.splitlines() if "cratecage: " in line and what in line]
    assert lines, stderr[-3000:]
    assert all(f"cratecage: proc macro crate {crate} 0.1.0 (compiling app 0.1.0): {what}" in line
               for line in lines), lines
    return lines


def test_a_macro_reading_a_schema_file_is_refused_then_builds_with_exactly_the_entry(workspace: Workspace) -> None:
    schema = workspace.ws / "app" / "schema" / "users.sql"
    refused = workspace.build("schema")
    assert not refused.ok
    denials(refused.proc.stderr, "schema_macro", f"filesystem-access denied: read {schema}")
    entry = entry_offered(refused.proc.stderr, "schema_macro")
    assert entry[1] == f'filesystem-access = {{ action = "permit", paths = ["{schema}"] }}', entry

    run = workspace.build("schema", "\n".join(entry) + "\n")
    assert run.ok, run.proc.stderr[-3000:]
    assert workspace.program().strip() == "users: 3 columns: id=7 name=ada admin=true"


def test_a_macro_querying_postgres_is_refused_then_answers_with_exactly_the_route(
        workspace: Workspace, postgres: Postgres) -> None:
    route = f"127.0.0.1:{postgres.port}"
    refused = workspace.build("pg")
    assert not refused.ok
    denials(refused.proc.stderr, "pg_macro", f"network-access denied: {route}")
    entry = entry_offered(refused.proc.stderr, "pg_macro")
    assert entry[1] == f'network-access = {{ action = "permit", routes = ["{route}"] }}', entry

    postgres.sql("INSERT INTO guests VALUES (3, 'edsger')")  # the rows are read at this build, not before
    run = workspace.build("pg", "\n".join(entry) + "\n")
    assert run.ok, run.proc.stderr[-3000:]
    assert workspace.program().splitlines() == ["row: 42 ada", "row: 42 grace", "row: 42 edsger"]
    audit = subprocess.run([str(WRAPPER), "audit", str(workspace.target)], capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stderr
    used = [line.strip() for line in audit.stdout.splitlines() if line.strip().startswith("used ")]
    assert f"used     network-access: {route} ({route})" in used, audit.stdout[-3000:]


def test_the_route_grant_does_not_reach_another_port(workspace: Workspace, postgres: Postgres) -> None:
    policy = f'[permissions.macro.pg_macro]\nnetwork-access = {{ action = "permit", routes = ["127.0.0.1:{postgres.port}"] }}\n'
    refused = workspace.build("pg-other", policy)
    assert not refused.ok
    denials(refused.proc.stderr, "pg_macro", f"network-access denied: 127.0.0.1:{workspace.other_port}")
    assert workspace.other.connections == 0
