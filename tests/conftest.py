"""Shared test plumbing: a scrubbed environment, the selected toolchain, and a cargo runner.

Integration tests build real workspaces from fixtures/ with the real cargo, through the real wrapper
(`.venv/bin/cratecage`, the launcher `make setup` writes), with the toolchain `cratecage toolchain install`
selected. Every build gets its own target directory, so wrapped and plain builds never share artifacts;
the cargo home (registry downloads) is the user's, shared by all tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
WRAPPER = REPO / ".venv" / "bin" / "cratecage"

# Variables from the developer's shell or an outer cargo that would change what a test build does.
_SCRUB_PREFIXES = ("CARGO_", "RUSTC", "RUSTDOC", "RUSTFLAGS", "CRATECAGE_", "RUSTUP_TOOLCHAIN", "RUST_LOG")
_KEEP = ("CARGO_HOME", "CRATECAGE_CACHE_DIR")


def scrubbed(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in _KEEP or not k.startswith(_SCRUB_PREFIXES)}


def write_test_env(package: Path, values: dict[str, str]) -> None:
    """Paths a hostile fixture's build script reads from `test-env/<NAME>` in its package: the sandboxed
    script sees neither the test's environment nor (compiled confined) its variables at compile time."""
    (package / "test-env").mkdir(exist_ok=True)
    for name, value in values.items():
        path = package / "test-env" / name
        if not path.exists() or path.read_text() != value:
            path.write_text(value)


# A line cratecage printed itself, as cargo shows it: `cratecage: ...`, `error: cratecage: ...`, a build
# script's `cargo:warning=cratecage: ...` as `warning: <package>@<version>: cratecage: ...`, and indented in
# a failed build script's `--- stderr`. Tests look for these, never for the word anywhere in stderr:
# cargo's own lines hold paths, and the checkout may be called cratecage.
_OWN_LINE = re.compile(r"^ *(?:(?:error|warning): )?(?:[\w.-]+@[\w.+-]+: )?cratecage: ")


def own_lines(text: str) -> list[str]:
    """The lines of cargo's stderr that cratecage printed itself (`_OWN_LINE`)."""
    return [line for line in text.splitlines() if _OWN_LINE.match(line)]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES) and name not in _KEEP:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def toolchain_env() -> dict[str, str]:
    """PATH/RUSTC/RUSTDOC/CARGO of the selected wasm-capable toolchain (what `toolchain env` exports)."""
    from shim import toolchain

    tc = toolchain.resolve(environ=scrubbed(dict(os.environ)))
    if not tc.ready:
        pytest.fail(f"no wasm32-wasip1-capable toolchain is selected ({tc.how}): run `make setup`")
    return toolchain.env_vars(tc)


@dataclass
class CargoRun:
    proc: subprocess.CompletedProcess[str]
    trace: list[dict]

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0

    def kinds(self) -> dict[str | None, set[str]]:
        """crate name -> the classes the wrapper gave its compiles."""
        out: dict[str | None, set[str]] = {}
        for entry in self.trace:
            if "reason" in entry:  # a classification (other events: replays)
                out.setdefault(entry["crate"], set()).add(entry["kind"])
        return out

    def replays(self) -> list[str]:
        """Crates replayed for wasm during this build, in order."""
        return [e["crate"] for e in self.trace if e["kind"] == "replay"]


@dataclass
class Cargo:
    """Runs cargo in a workspace, wrapped by cratecage or plain, into a target directory."""

    env: dict[str, str]
    tmp: Path

    def __call__(self, workspace: Path, *args: str, wrapped: bool, target_dir: Path,
                 extra_env: dict[str, str] | None = None, check: bool = True) -> CargoRun:
        env = scrubbed(dict(os.environ))
        env.update(self.env)
        env["CARGO_TARGET_DIR"] = str(target_dir)
        env["CARGO_TERM_COLOR"] = "never"
        trace = self.tmp / f"trace-{os.urandom(4).hex()}.jsonl"
        if wrapped:
            env["RUSTC_WRAPPER"] = str(WRAPPER)
            env["CRATECAGE_TRACE"] = str(trace)
        env.update(extra_env or {})
        proc = subprocess.run(["cargo", *args], cwd=workspace, env=env, text=True, capture_output=True,
                              timeout=1200)
        entries = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
        run = CargoRun(proc, entries)
        if check and not run.ok:
            pytest.fail(f"cargo {' '.join(args)} failed (wrapped={wrapped}):\n{proc.stderr[-4000:]}")
        return run


    def both(self, workspace: Path, *args: str, targets: Path, label: str) -> dict[str, tuple[CargoRun, Path]]:
        """The same cargo command plain and wrapped, each into `<targets>/<label>-<mode>`."""
        out = {}
        for mode in ("plain", "wrapped"):
            target = targets / f"{label}-{mode}"
            out[mode] = (self(workspace, *args, wrapped=mode == "wrapped", target_dir=target), target)
        return out


@pytest.fixture(scope="session")
def cargo(toolchain_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Cargo:
    return Cargo(env=toolchain_env, tmp=tmp_path_factory.mktemp("cargo-traces"))


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parent of per-scenario target directories, shared within one test session."""
    return tmp_path_factory.mktemp("targets")
