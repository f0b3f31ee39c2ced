"""Shared test plumbing: a scrubbed environment, the selected toolchain, and a cargo runner.

Integration tests build real workspaces from fixtures/ with the real cargo, through the real wrapper
(`.venv/bin/cratecage`, the launcher `make setup` writes). The `cargo` fixture runs each of them twice, once
per build-dir layout of cargo (notes/cargo-build-dir-layout.md): `[old-layout]` with the toolchain
`cratecage toolchain install` selected (the machine's stable), `[new-layout]` with NEW_LAYOUT_TOOLCHAIN
(`make test` installs it); tests/cargo/test_cargo_layouts.py checks that each really builds in the layout its id
names. Every build gets its own target directory, so wrapped and plain builds, and the two toolchains,
never share artifacts; the cargo home (registry downloads) is the user's, shared by all tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
WRAPPER = REPO / ".venv" / "bin" / "cratecage"

# Variables from the developer's shell or an outer cargo that would change what a test build does.
_SCRUB_PREFIXES = ("CARGO_", "__CARGO_", "RUSTC", "RUSTDOC", "RUSTFLAGS", "CRATECAGE_", "RUSTUP_TOOLCHAIN", "RUST_LOG")
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


def assert_nothing_outlives(mark: Path) -> None:
    """No process of a build (rustc, a macro server, a wasm run, a granted program) runs on after cargo has
    returned: every one of them has `mark` (the test's directory) in its command line or environment."""
    needle = str(mark).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        assert needle not in cmdline and needle not in environ, f"process {pid} outlived the build: {cmdline!r}"


@pytest.fixture(autouse=True)
def open_reaper_gate() -> Iterator[None]:
    """A test that ends a run in this process (GuestRun.close, reaper.end) shuts shim.confine.reaper's gate for
    the process; in-process tests after it (probes, spawns) would meet a run being stopped."""
    yield
    from shim.confine import reaper

    with reaper._lock:
        reaper._closed = False


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES) and name not in _KEEP:
            monkeypatch.delenv(name)


# A toolchain whose cargo uses the new build-dir layout, with wasm32-wasip1 (the Makefile's `new-layout-toolchain`).
NEW_LAYOUT_TOOLCHAIN = "nightly-2026-10-29"
LAYOUTS = ("old-layout", "new-layout")


@pytest.fixture(scope="session")
def toolchain_env() -> dict[str, str]:
    """PATH/RUSTC/RUSTDOC/CARGO of the selected wasm-capable toolchain (what `toolchain env` exports)."""
    from shim.toolchain import compiler as toolchain

    tc = toolchain.resolve(environ=scrubbed(dict(os.environ)))
    if not tc.ready:
        pytest.fail(f"no wasm32-wasip1-capable toolchain is selected ({tc.how}): run `make setup`")
    return toolchain.env_vars(tc)


def new_layout_env() -> dict[str, str]:
    """PATH/RUSTC/RUSTDOC/CARGO of NEW_LAYOUT_TOOLCHAIN, found through rustup; a missing one fails the run."""
    from shim.toolchain import compiler as toolchain

    fix = f"install it: rustup toolchain install {NEW_LAYOUT_TOOLCHAIN} --profile minimal --target wasm32-wasip1"
    environ = scrubbed(dict(os.environ))
    try:
        done = subprocess.run(["rustup", "which", "--toolchain", NEW_LAYOUT_TOOLCHAIN, "rustc"], env=environ,
                              capture_output=True, text=True, timeout=60)
    except OSError as err:
        pytest.fail(f"the [new-layout] tests need rustup ({err}); {fix}")
    if done.returncode != 0:
        pytest.fail(f"the [new-layout] tests need the toolchain {NEW_LAYOUT_TOOLCHAIN}: {done.stderr.strip()}; {fix}")
    tc = toolchain.resolve(rustc=done.stdout.strip(), environ=environ)
    if not tc.ready:
        pytest.fail(f"{NEW_LAYOUT_TOOLCHAIN} cannot build for wasm32-wasip1 ({tc.how}); {fix}")
    return toolchain.env_vars(tc, environ)


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
        """Crates replayed for wasm during this build, in order: compiled, or copied from the per-user cache
        (shim.compile.shared_cache), which any earlier build on the machine may have filled."""
        return [e["crate"] for e in self.trace if e["kind"] in ("replay", "replay-kept")]


@dataclass
class Cargo:
    """Runs cargo in a workspace, wrapped by cratecage or plain, into a target directory."""

    env: dict[str, str]
    tmp: Path
    layout: str = LAYOUTS[0]  # the build-dir layout this toolchain's cargo uses

    @property
    def new_layout(self) -> bool:
        return self.layout == "new-layout"

    @property
    def channel(self) -> str:
        """"stable", "beta" or "nightly": the `release:` line of the toolchain's `rustc -vV`."""
        version = subprocess.run([self.env["RUSTC"], "-vV"], capture_output=True, text=True, check=True).stdout
        release = next(line for line in version.splitlines() if line.startswith("release: "))
        return next((c for c in ("nightly", "beta") if f"-{c}" in release), "stable")

    @property
    def hashes_our_version_line(self) -> bool:
        """Whether cargo hashes every line of `rustc -vV` into `-C metadata`, cratecage's included, so that
        wrapped and plain builds get their own hashes: stable cargo does; a nightly or beta one hashes only
        the channel, and switching the wrapper on or off rebuilds in place (notes/cargo-and-rustc.md §8)."""
        return self.channel == "stable"

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


@pytest.fixture(scope="session", params=LAYOUTS)
def cargo(request: pytest.FixtureRequest, toolchain_env: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Cargo:
    """The cargo of each build-dir layout in turn (module docstring)."""
    env = toolchain_env if request.param == "old-layout" else new_layout_env()
    return Cargo(env=env, tmp=tmp_path_factory.mktemp(f"cargo-traces-{request.param}"), layout=request.param)


@pytest.fixture(scope="session")
def selected_cargo(toolchain_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Cargo:
    """The selected toolchain's cargo alone, for tests that are not about where cargo puts things."""
    return Cargo(env=toolchain_env, tmp=tmp_path_factory.mktemp("cargo-traces-selected"))


@pytest.fixture(scope="session")
def targets(cargo: Cargo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parent of per-scenario target directories, shared within one test session and one layout."""
    return tmp_path_factory.mktemp(f"targets-{cargo.layout}")
