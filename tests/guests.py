"""Plumbing for tests that run guests against the std facade (tests/toolchain/test_facade.py, tests/host/test_observe.py).

The facade is built by shim.toolchain.facade with the selected toolchain into a fresh cache per session; small guests
are compiled against it for wasm32-wasip1 and linked as shim/build/script.py links a build script (an 8 MiB
stack and `facade.LINK_ARGS`), and run under real wasmtime with WASI, the runner's preopens and the host
functions of shim.host.process, shim.host.observe and shim.host.net, with the runner's call stack.

A test module that uses the fixtures imports them by name (`from guests import compiler, sandbox, ...`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

from shim.compile.argv import STACK_SIZE_ARG
from shim.host import files as host_files
from shim.host import net as host_net
from shim.host import observe as host_observe
from shim.host import process as host_process
from shim.host.context import RunContext
from shim.sandbox import engine
from shim.toolchain import compiler as toolchain
from shim.toolchain import facade

from conftest import scrubbed

# The link of a build script (shim/build/script.py): an 8 MiB stack and the facade's LINK_ARGS.
LINK = tuple(arg for value in (STACK_SIZE_ARG, *facade.LINK_ARGS) for arg in ("-C", value))


# -- fixtures: toolchain, facade, compiling and running guests -------------------------------------------

@pytest.fixture(scope="session")
def tc() -> toolchain.Toolchain:
    selected = toolchain.resolve(environ=scrubbed(dict(os.environ)))
    if not selected.ready:
        pytest.fail(f"no wasm32-wasip1-capable toolchain is selected ({selected.how}): run `make setup`")
    return selected


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh cache, so every session really builds the facade; one per session, shared by every module
    that imports the fixture (pytest makes one instance per importing module)."""
    cache = tmp_path_factory.getbasetemp() / "facade-cache"
    cache.mkdir(exist_ok=True)
    return {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(cache)}


@pytest.fixture(scope="session")
def facade_rlib(tc: toolchain.Toolchain, cache_env: dict[str, str]) -> Path:
    return facade.facade_rlib(tc, cache_env)


@dataclass
class Compiler:
    tc: toolchain.Toolchain
    facade: Path
    workdir: Path

    def wasm(self, name: str, source: str, *extra: str, edition: str = "2021", crate_type: str = "bin") -> Path:
        """Compile `source` for wasm32-wasip1 against the facade; returns the .wasm or the rlib."""
        src = self.workdir / f"{name}.rs"
        src.write_text(source)
        out = self.workdir / (f"{name}.wasm" if crate_type == "bin" else f"lib{name}.rlib")
        argv = [self.tc.compiler.rustc, "--edition", edition, "--crate-type", crate_type, "--crate-name", name,
                "--target", "wasm32-wasip1", "--sysroot", str(self.tc.wasm_sysroot),
                "--extern", f"std={self.facade}", "-L", str(self.workdir), *LINK, *extra,
                "-o", str(out), str(src)]
        run(argv)
        return out

    def link_without_link_args(self, name: str, source: str) -> subprocess.CompletedProcess[str]:
        src = self.workdir / f"{name}.rs"
        src.write_text(source)
        return subprocess.run([self.tc.compiler.rustc, "--edition", "2021", "--target", "wasm32-wasip1", "--sysroot",
                               str(self.tc.wasm_sysroot), "--extern", f"std={self.facade}",
                               "-o", str(self.workdir / f"{name}.wasm"), str(src)],
                              capture_output=True, text=True, env=scrubbed(dict(os.environ)), timeout=300)

    def native(self, name: str, source: str) -> Path:
        """The same program against the real std, for comparing with std's own behaviour."""
        src = self.workdir / f"{name}-native.rs"
        src.write_text(source)
        out = self.workdir / f"{name}-native"
        run([self.tc.compiler.rustc, "--edition", "2021", "-o", str(out), str(src)])
        return out


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=scrubbed(dict(os.environ)), timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv[:3])} ... failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="session")
def compiler(tc: toolchain.Toolchain, facade_rlib: Path, tmp_path_factory: pytest.TempPathFactory) -> Compiler:
    return Compiler(tc, facade_rlib, tmp_path_factory.mktemp("guests"))


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    ctx: RunContext

    def lines(self) -> list[list[str]]:
        return [line.split("\t") for line in self.stdout.splitlines()]


class GuestTrapped(Exception):
    """The guest trapped (a Rust panic is a trap under panic=abort); the message ends with its stderr."""


@dataclass
class Sandbox:
    """Runs WASI command modules with the runner's preopens (shim.build.run.preopen_table: the package directory
    read-only at its own path and as ".", OUT_DIR and a temp dir read-write at their host paths), an explicit
    environment, and the host functions (processes, reports, sockets, file modes) of one RunContext per run."""

    engine: wasmtime.Engine
    tc: toolchain.Toolchain
    tmp: Path

    def context(self, **env: str) -> RunContext:
        base = Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp))
        dirs = {name: base / name for name in ("pkg", "out", "tmp")}
        for path in dirs.values():
            path.mkdir()
        env = {"OUT_DIR": str(dirs["out"]), "CARGO_MANIFEST_DIR": str(dirs["pkg"]), "RUSTC": self.tc.compiler.rustc,
               "CARGO_PKG_NAME": "guest", **env}
        return RunContext(crate="guest", version="0.1.0", package_dir=str(dirs["pkg"]), out_dir=str(dirs["out"]),
                          tmp_dir=str(dirs["tmp"]), env=env, host_env={}, rustc=self.tc.compiler.rustc,
                          sysroot=self.tc.compiler.sysroot)

    def run(self, wasm: Path, ctx: RunContext | None = None, granted: list[tuple[str, str, bool]] | None = None,
            **env: str) -> Ran:
        """Run `wasm` with the runner's preopens plus `granted` ones (shim.sandbox.enforce.preopens)."""
        ctx = ctx or self.context(**env)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        processes = host_process.define(linker, ctx)
        host_observe.define(linker, ctx)
        net = host_net.define(linker, ctx, processes)
        preopens = engine.preopen_table(ctx, granted or [])
        host_files.define(linker, ctx, processes, preopens)
        out, err = Path(ctx.package_dir).parent / "stdout", Path(ctx.package_dir).parent / "stderr"
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["build-script"]
        wasi.env = list(ctx.env.items())
        wasi.stdout_file, wasi.stderr_file = str(out), str(err)
        for host, guest, writable in preopens:
            wasi.preopen_dir(host, guest, writable)
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasi)
        instance = linker.instantiate(store, wasmtime.Module.from_file(self.engine, str(wasm)))
        try:
            instance.exports(store)["_start"](store)
            code = 0
        except wasmtime.ExitTrap as trap:
            code = trap.code
        except wasmtime.Trap as trap:
            raise GuestTrapped(f"{trap}\n{err.read_text()}") from None
        finally:
            net.close_all()
        return Ran(code, out.read_text(), err.read_text(), ctx)


@pytest.fixture(scope="session")
def sandbox(tc: toolchain.Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    config = wasmtime.Config()
    config.max_wasm_stack = engine.MAX_WASM_STACK  # the runner's call stack, for guests that recurse deeply
    return Sandbox(wasmtime.Engine(config), tc, tmp_path_factory.mktemp("runs"))


def package_with_files(sandbox: Sandbox, **env: str) -> RunContext:
    ctx = sandbox.context(**env)
    pkg = Path(ctx.package_dir)
    (pkg / "data.txt").write_text("twelve bytes")
    (pkg / "sub").mkdir()
    (pkg / "link").symlink_to("data.txt")
    return ctx


def rustup_wasm_rustc() -> str | None:
    """A rustup toolchain's rustc whose wasm32-wasip1 target (with its own wasi-libc) is installed."""
    home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    libcs = sorted(home.glob("toolchains/*/lib/rustlib/wasm32-wasip1/lib/self-contained/libc.a"))
    rustcs = [libc.parents[5] / "bin" / "rustc" for libc in libcs]
    return next((str(r) for r in rustcs if os.access(r, os.X_OK)), None)


def rustup_wasm_toolchain() -> toolchain.Toolchain:
    """That toolchain, ready; the calling test is skipped where no rustup toolchain has the target (the
    Debian route's machines): these tests are about rustup's newer wasi-libc."""
    rustc = rustup_wasm_rustc()
    if rustc is None:
        pytest.skip("no rustup toolchain with the wasm32-wasip1 target here")
    found = toolchain.resolve(rustc, environ=scrubbed(dict(os.environ)))
    assert found.ready
    return found
