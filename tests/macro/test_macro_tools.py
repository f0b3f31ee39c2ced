"""Every tool that loads proc macros expands them in the sandbox: rust-analyzer, rustdoc (`cargo doc`,
doctests) and clippy, on fixtures/macro-tools (serde's and thiserror's derives from crates.io and a derive
of the workspace's own, whose generated `NAME` and `describe_job` the code and the doctest use).

rust-analyzer is the real one (`rustup which rust-analyzer`, installed by `make test`): it runs `cargo check`
through the wrapper, then loads the trampolines into its own proc-macro server, a process no cargo runs,
which sets each crate's environment and working directory around each expansion. `rust-analyzer
diagnostics` fails on any error diagnostic, so a derive that did not expand (its generated items
unresolved, or its `macro-error`) fails the test; the build's audit log shows the expansions ran as wasm
(a native fallback would add none, and `native` records fail the test). The workspace's own policy
applies there too: a memory limit in its cratecage.toml refuses the workspace derive's expansions, with a
`cratecage:` line naming the crate; and a macro server that dies there is restarted on the next expansion.

One copy of the fixture and one target directory are shared by the tests, in one cargo layout
(`selected_cargo`: nothing here depends on it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, WRAPPER, Cargo, scrubbed

MACRO_CRATES = {"serde_derive", "thiserror-impl", "named-derive"}


def audit_records(target: Path) -> list[dict]:
    log = target / "cratecage" / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def sandboxed_expansions(target: Path, since: int) -> dict[str, int]:
    """Expansions per macro crate in the audit records after the first `since`; fails on a native record."""
    records = audit_records(target)
    assert not [r for r in records if r.get("event") == "native"], "a proc macro ran natively"
    counts: dict[str, int] = {}
    for record in records[since:]:
        if record.get("kind") == "macro":
            assert record["exit_code"] == 0, record
            counts[record["crate"]] = counts.get(record["crate"], 0) + record["expansions"]
    return counts


class Workspace:
    def __init__(self, root: Path, target: Path, env: dict[str, str]) -> None:
        self.root, self.target, self.env = root, target, env

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.root, env=self.env, text=True, capture_output=True, timeout=900)


@pytest.fixture(scope="module")
def workspace(selected_cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("macro-tools") / "ws"
    shutil.copytree(FIXTURES / "macro-tools", root)
    env = scrubbed(dict(os.environ))
    env.update(selected_cargo.env)
    env.update(CARGO_TARGET_DIR=str(root.parent / "target"), CARGO_TERM_COLOR="never", RUSTC_WRAPPER=str(WRAPPER))
    return Workspace(root, root.parent / "target", env)


@pytest.fixture(scope="module")
def rust_analyzer(workspace: Workspace) -> str:
    which = workspace.run("rustup", "which", "rust-analyzer")
    if which.returncode != 0:
        pytest.fail("cratecage: rust-analyzer is not installed: run `make test` (it adds the rustup component) "
                    f"or `rustup component add rust-analyzer`\n{which.stderr}")
    return which.stdout.strip()


def macro_errors(output: str) -> list[str]:
    return [line for line in output.replace("\r", "\n").splitlines() if "macro-error" in line or "unresolved" in line]


def test_rust_analyzer_expands_the_derives_in_the_sandbox(workspace: Workspace, rust_analyzer: str) -> None:
    since = len(audit_records(workspace.target))
    run = workspace.run(rust_analyzer, "diagnostics", ".")
    assert run.returncode == 0 and not macro_errors(run.stdout + run.stderr), (run.stdout + run.stderr)[-4000:]
    # Each derive of app expanded in the sandbox, in rust-analyzer's proc-macro server (its `cargo check`
    # leaves app to rust-analyzer's own rustc wrapper: were app compiled there, each would be counted twice).
    counts = sandboxed_expansions(workspace.target, since)
    assert set(counts) == MACRO_CRATES
    per_pass = {"named-derive": 2, "serde_derive": 2, "thiserror-impl": 1}
    assert all(counts[crate] and counts[crate] % per_pass[crate] == 0 for crate in per_pass), counts


def test_rust_analyzer_applies_the_analysed_workspace_policy(workspace: Workspace, rust_analyzer: str) -> None:
    policy = workspace.root / "cratecage.toml"
    policy.write_text('[permissions.macro.named-derive]\nlimits = { memory = "1MiB" }\n')
    try:
        run = workspace.run(rust_analyzer, "diagnostics", ".")
    finally:
        policy.unlink()
    errors = macro_errors(run.stdout)
    assert run.returncode != 0 and errors
    assert all("cratecage: " in line and "named-derive 0.1.0" in line and "needs more memory" in line
               and "CRATECAGE_LIMIT_MEMORY" in line and "internal error" not in line for line in errors), errors


def test_rust_analyzer_restarts_a_macro_server_that_died(workspace: Workspace, rust_analyzer: str) -> None:
    """The named-derive server rust-analyzer's proc-macro server starts first dies before answering (its
    launcher, swapped for the test, exits once): that expansion fails with a `cratecage:` line, the next
    one (app has two `#[derive(Named)]`) starts a new server in the same process and expands."""
    launchers = list((workspace.target / "cratecage" / "macro").glob("named_derive-*/macro-server"))
    marker = workspace.target / "died-once"
    for launcher in launchers:  # one per build of the macro crate (rust-analyzer's, clippy's)
        real = launcher.with_name("macro-server.real")
        launcher.rename(real)
        launcher.write_text(f"#!/bin/sh\n[ -e '{marker}' ] || {{ : > '{marker}'; exit 3; }}\nexec '{real}'\n")
        launcher.chmod(0o755)
    since = len(audit_records(workspace.target))
    try:
        run = workspace.run(rust_analyzer, "diagnostics", ".")
    finally:
        for launcher in launchers:
            launcher.with_name("macro-server.real").replace(launcher)
    assert marker.exists()
    errors = [line for line in macro_errors(run.stdout) if "macro-error" in line]
    assert len(errors) == 1 and "cratecage: the macro server of proc-macro crate named-derive 0.1.0" in errors[0], \
        run.stdout[-4000:]
    assert sandboxed_expansions(workspace.target, since)["named-derive"] == 1  # the restarted server's


def test_cargo_doc_documents_the_derives_output(workspace: Workspace) -> None:
    since = len(audit_records(workspace.target))
    run = workspace.run("cargo", "doc", "--no-deps", "-p", "app")
    assert run.returncode == 0, run.stderr[-4000:]
    page = (workspace.target / "doc" / "app" / "struct.Job.html").read_text()
    assert "describe_job" in page and "NAME" in page and "Serialize" in page
    # rustdoc expands in its own process, its trampolines loaded like rustc's
    assert set(sandboxed_expansions(workspace.target, since)) == MACRO_CRATES


def test_doctests_using_derives_pass(workspace: Workspace) -> None:
    since = len(audit_records(workspace.target))
    run = workspace.run("cargo", "test", "--doc", "-p", "app")
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-2000:] + run.stderr[-4000:]
    assert set(sandboxed_expansions(workspace.target, since)) == MACRO_CRATES


def test_clippy_checks_with_the_derives(workspace: Workspace) -> None:
    since = len(audit_records(workspace.target))
    run = workspace.run("cargo", "clippy", "-p", "app", "--", "-D", "warnings")
    assert run.returncode == 0, run.stderr[-4000:]
    assert set(sandboxed_expansions(workspace.target, since)) == MACRO_CRATES

