"""The first sandboxed unit of a compiler: make cargo's own rustc wasm32-wasip1-capable in place, once.

Cargo runs the compiler that `cargo +nightly`, rust-toolchain.toml, RUSTUP_TOOLCHAIN or `rustup override`
chose, and the sandbox must compile with exactly that one (shim.toolchain.compiler). When it has no wasm32-wasip1
std yet, the first build-script or proc-macro unit adds one (`plan()` picks the route):
  - a rustup toolchain: `rustup target add wasm32-wasip1 --toolchain <name>` (a download of ~20 MB);
  - any other compiler with rust-src, a wasi-libc and rust-lld: std built from rust-src into the private
    sysroot (shim.toolchain.sysroot, about a minute on 2 cores);
announced by one `cratecage:` line on stderr. Cargo runs units in parallel, so the work happens under a
lock per compiler in the cache (`<cache>/toolchains/<key>/first-use.lock`): the units that waited find the
compiler capable and say nothing.

When no route works (rustup offline, a packaged rustc without rust-src), the unit fails with an error that
names the crate, the compiler, what is missing and the command that fixes it. The failure is remembered for
the cargo process that met it (`first-use-failed.json`: cargo's pid and start time, at most FAILURE_TTL_S),
so the build's other units report it without trying again; the next cargo run tries afresh.
`cratecage doctor` and `cratecage toolchain` describe the same plan (`describe()`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Final, Mapping

from shim import program, trace
from shim.errors import ProvisionError, ToolchainError, ToolchainMismatch
from shim.files import atomic_write, cache_root
from shim.record import record
from shim.toolchain import sysroot as sysroot_build
from shim.toolchain.capable import WASM_TARGET, remember, verified
from shim.toolchain.compiler import DEBIAN_PACKAGES, Compiler, Toolchain, load_selected, probe_compiler, toolchain_for

FAILURE_TTL_S: Final = 600
FAILURE_FILE: Final = "first-use-failed.json"
RUSTUP = "rustup"
RUST_SRC = "rust-src"


@record(frozen=True)
class Plan:
    """How this compiler would get a wasm32-wasip1 std, or why it cannot."""

    route: str | None  # RUSTUP, RUST_SRC, or None: neither can work
    toolchain: str | None  # rustup's name for it
    missing: tuple[str, ...]  # what the rust-src route lacks

    @property
    def obstacles(self) -> str:
        """Why neither route can work (when `route` is None)."""
        return "; ".join(([] if self.toolchain else ["not a rustup toolchain"]) + list(self.missing))

    @property
    def rustup_command(self) -> str:
        return f"rustup target add {WASM_TARGET} --toolchain {self.toolchain}"

    def announcement(self, compiler: Compiler) -> str:
        if self.route == RUSTUP:
            short = (self.toolchain or "").removesuffix(f"-{compiler.host}")
            return f"cratecage: adding the {WASM_TARGET} target to toolchain {short} (once; about 20 s)"
        return (f"cratecage: building the {WASM_TARGET} standard library for {compiler.version_line} "
                f"({compiler.rustc}) from its rust-src (once; about a minute)")


def plan(compiler: Compiler, environ: Mapping[str, str]) -> Plan:
    name = sysroot_build.rustup_toolchain(compiler, environ)
    missing = tuple(sysroot_build.missing_for_build(compiler, environ))
    if name and sysroot_build.find_rustup(environ):
        return Plan(RUSTUP, name, missing)
    return Plan(RUST_SRC if not missing else None, name, missing)


def describe(compiler: Compiler, environ: Mapping[str, str]) -> str:
    """One line for `cratecage doctor`: what the first build will do for this compiler."""
    p = plan(compiler, environ)
    if p.route == RUSTUP:
        return f"the first build adds it: {p.rustup_command}"
    if p.route == RUST_SRC:
        return "the first build builds it from rust-src (about a minute)"
    return f"cannot be added here: {p.obstacles}"


def make_capable(compiler: Compiler, *, what: str, environ: Mapping[str, str]) -> Toolchain:
    """Cargo's rustc, made wasm32-wasip1-capable (or found so after waiting for a parallel unit that did
    it). Raises ToolchainError naming `what` (e.g. "build script of foo 1.0.0") when it cannot be."""
    home = cache_root(environ) / "toolchains" / compiler.key
    cargo = _cargo_identity()
    failed = _remembered_failure(home, cargo)
    if failed is not None:
        trace.event(environ, kind="first-use", outcome="remembered", compiler=compiler.version_line)
        raise _failure(compiler, what, failed, environ)
    p = plan(compiler, environ)
    if p.route is None:
        trace.event(environ, kind="first-use", outcome="impossible", compiler=compiler.version_line)
        raise _failure(compiler, what, _impossible(compiler, p), environ)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "first-use.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tc = toolchain_for(compiler, environ)
        if tc.ready:  # a parallel unit did it while we waited
            return tc
        failed = _remembered_failure(home, cargo)
        if failed is not None:
            trace.event(environ, kind="first-use", outcome="remembered", compiler=compiler.version_line)
            raise _failure(compiler, what, failed, environ)
        announce(p.announcement(compiler), environ)
        start = time.monotonic()
        failed = _attempt(compiler, p, environ)
        tc = toolchain_for(compiler, environ)
        if failed is None and not tc.ready:
            failed = {"reason": f"the {WASM_TARGET} std is still missing afterwards", "fix": ""}
        trace.event(environ, kind="first-use", outcome="failed" if failed else "added", route=p.route,
                    compiler=compiler.version_line, seconds=round(time.monotonic() - start, 1))
        if failed is None:
            return tc
        atomic_write(home / FAILURE_FILE, json.dumps({**failed, "cargo": cargo, "at": time.time()}))
    raise _failure(compiler, what, failed, environ)


def _attempt(compiler: Compiler, p: Plan, environ: Mapping[str, str]) -> dict[str, str] | None:
    """Run the plan's route (rustup first, rust-src if rustup fails and the pieces are there); None on
    success, else {"reason", "fix"}."""
    if p.route == RUSTUP:
        assert p.toolchain is not None
        why = sysroot_build.rustup_target_add(p.toolchain, environ)
        if why is None:
            return None
        if p.missing:
            return {"reason": f"rustup could not add it ({why})",
                    "fix": f"run `{p.rustup_command}` where rustup can reach its server, then build again"}
        announce(f"cratecage: rustup could not add the target ({why}); building the {WASM_TARGET} std from "
                 "rust-src instead (about a minute)", environ)
    try:
        sysroot_build.build_private_sysroot(compiler, environ, log=lambda *a, **k: None)
    except (ProvisionError, OSError) as err:
        text = err.message if isinstance(err, ProvisionError) else str(err)
        return {"reason": f"building it from rust-src failed: {text.splitlines()[0]}",
                "fix": f"run `{program.command('toolchain install --rustc ' + shlex.quote(compiler.rustc))}` to see why"}
    return None


def announce(line: str, environ: Mapping[str, str]) -> None:
    """Say `line` where cargo's own messages go. Not on this unit's stderr when that can be helped: cargo
    keeps a unit's stderr and replays it whenever the unit is fresh, which would repeat a one-time message
    on every later build. So the line goes straight to cargo's stderr (the wrapper's parent, checked
    against $CARGO) when that is a terminal or a pipe; a file has its own offset, which a second writer
    would overwrite, so there, and anywhere cargo cannot be found, the unit's stderr it is."""
    ppid = os.getppid()
    cargo = environ.get("CARGO", "")
    try:
        if cargo and os.path.realpath(f"/proc/{ppid}/exe") == os.path.realpath(cargo):
            fd = os.open(f"/proc/{ppid}/fd/2", os.O_WRONLY | os.O_NOCTTY)
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    clear = "\r\x1b[K" if os.isatty(fd) else ""  # over cargo's progress bar
                    os.write(fd, f"{clear}{line}\n".encode())
                    return
            finally:
                os.close(fd)
    except OSError:
        pass
    print(line, file=sys.stderr, flush=True)


def _impossible(compiler: Compiler, p: Plan) -> dict[str, str]:
    reason = f"cratecage cannot add it: {p.obstacles}"
    if p.toolchain:
        fix = f"install rustup, then run `{p.rustup_command}`"
    elif os.path.realpath(compiler.sysroot) == "/usr" and os.path.exists("/usr/bin/apt-get"):
        fix = f"run `sudo apt-get install --no-install-recommends {' '.join(DEBIAN_PACKAGES)}`, then build again"
    else:
        fix = "install what is missing for this compiler, then build again"
    return {"reason": reason, "fix": fix}


def _failure(compiler: Compiler, what: str, failed: Mapping[str, str], environ: Mapping[str, str]) -> ToolchainError:
    message = (f"the {what} must be compiled for {WASM_TARGET} by cargo's rustc ({compiler.rustc}, "
               f"{compiler.version_line}), which has no {WASM_TARGET} std, and {failed['reason']}")
    hint = failed.get("fix") or ""
    chosen = load_selected(environ)
    if chosen and chosen.get("key") != compiler.key and os.access(chosen["rustc"], os.X_OK):
        other = (f"or build with the {WASM_TARGET}-capable {chosen.get('version', chosen['rustc'])}: "
                 f"run `eval \"$({program.command('toolchain env')})\"`, then cargo")
        return ToolchainMismatch(message, hint=f"{hint}; {other}" if hint else other)
    return ToolchainError(message, hint=hint or None)


def _cargo_identity() -> str:
    """The cargo process running this unit (the wrapper's parent): pid and start time, so a reused pid
    is another cargo."""
    ppid = os.getppid()
    try:
        stat = Path(f"/proc/{ppid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{ppid}:{start}"


def _remembered_failure(home: Path, cargo: str) -> dict[str, str] | None:
    try:
        data = json.loads((home / FAILURE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("cargo") != cargo:
        return None
    if not 0 <= time.time() - float(data.get("at", 0)) < FAILURE_TTL_S:
        return None
    return data


def require_wasm(rustc: str, what: str, environ: Mapping[str, str] = os.environ) -> Toolchain:
    """shim.toolchain.compiler.require_wasm_capable for a unit cargo asked for (`what`: "build script of foo 1.0"):
    its error is the same for every unit of the build but names the first, so it is said once per cargo
    run by the compiler's identity (shim.once), not by its text."""
    try:
        return require_wasm_capable(rustc, what=what, environ=environ)
    except ToolchainError as err:
        err.once = f"toolchain {rustc}"
        raise


def require_wasm_capable(rustc: str, *, what: str, environ: Mapping[str, str] = os.environ) -> Toolchain:
    """The wrapper's check before a sandboxed unit: cargo's rustc (argv[1], the very compiler cargo runs)
    must compile for wasm32-wasip1. One that cannot yet is made capable in place (`make_capable`), once.
    Returns the toolchain. A positive answer is remembered per compiler binary (shim.toolchain.capable), so only the
    first unit of a build pays for running the compiler twice."""
    info = verified(rustc, environ)
    if info is not None:
        return Toolchain(Compiler(info["rustc"], info["verbose_version"], info["sysroot"]),
                         info["wasm_sysroot"], info.get("how", ""))
    compiler = probe_compiler(rustc, environ)
    tc = toolchain_for(compiler, environ)
    if tc.wasm_sysroot is None:
        tc = make_capable(compiler, what=what, environ=environ)
    assert tc.wasm_sysroot is not None
    remember(rustc, {"wasm_sysroot": tc.wasm_sysroot, "sysroot": compiler.sysroot, "rustc": compiler.rustc,
                     "verbose_version": compiler.verbose_version, "how": tc.how}, environ)
    return tc
