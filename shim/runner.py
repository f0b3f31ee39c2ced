"""Runs one build script's wasm module the way cargo would run the native binary.

Cargo executes the launcher cratecage left at the build script's path (shim.build_script); the launcher
calls `main_build_script`. The module runs under wasmtime with WASI preview 1 and the host functions of
shim.host_process, shim.host_observe and shim.host_net, and sees only:
  - the package directory, read-only, at its own absolute path and as "." (cargo's cwd);
  - OUT_DIR and a per-run temporary directory, read-write, at their own paths;
  - exactly the environment cargo documents for build scripts (`BUILD_SCRIPT_ENV`), never a prefix like
    `CARGO_*` that would let CARGO_REGISTRY_TOKEN through;
  - and what the crate's grant adds (shim.enforce). In warn mode that is every file the user can read
    ("/" preopened read-only) and the whole environment cargo gave the launcher; writes stay confined.
  - TCP connections to the routes its grant permits (shim.host_net), all closed when the run ends.

Limits (shim.limits): the wall clock is enforced by the epoch deadline (one ticker thread) *and* by a
watchdog in the main thread, because epochs never fire while the guest is inside a host call (a sleep, a
probe; host_net caps its own blocking calls at the deadline); memory by store limits; stdout/stderr by the capture callbacks; OUT_DIR growth by polling. The
guest runs in its own thread with a large native stack. Every failure names the crate, version and cause.
After the run, symbolic links in OUT_DIR that point outside it are removed and the build fails: rustc and
cargo would follow them natively. Compiled modules are cached, serialized, per wasm hash and engine config.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shim.limits import Limits
from shim.runctx import RunContext

if False:  # typing only: policy is imported when a run starts
    from policy import Grant

TICK_S = 0.05
GRACE_S = 2.0  # after the time limit, how long the watchdog waits for the epoch trap before killing
OUT_DIR_POLL_S = 0.2
GUEST_THREAD_STACK = 256 << 20
MAX_WASM_STACK = 2 << 20  # wasmtime caps it at its async stack size (2 MiB)
ENGINE_TAG = "epoch-stack2m-v1"  # part of the module cache key: change with the Config below

# Variables cargo documents for build scripts, by exact name...
BUILD_SCRIPT_ENV: frozenset[str] = frozenset({
    "CARGO", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_MANIFEST_LINKS", "CARGO_MAKEFLAGS",
    "CARGO_ENCODED_RUSTFLAGS", "CARGO_PRIMARY_PACKAGE", "CARGO_TRIM_PATHS",
    "CARGO_PKG_AUTHORS", "CARGO_PKG_DESCRIPTION", "CARGO_PKG_HOMEPAGE", "CARGO_PKG_LICENSE",
    "CARGO_PKG_LICENSE_FILE", "CARGO_PKG_NAME", "CARGO_PKG_README", "CARGO_PKG_REPOSITORY",
    "CARGO_PKG_RUST_VERSION", "CARGO_PKG_VERSION", "CARGO_PKG_VERSION_MAJOR", "CARGO_PKG_VERSION_MINOR",
    "CARGO_PKG_VERSION_PATCH", "CARGO_PKG_VERSION_PRE",
    "OUT_DIR", "TARGET", "HOST", "NUM_JOBS", "OPT_LEVEL", "DEBUG", "PROFILE",
    "RUSTC", "RUSTDOC", "RUSTC_LINKER", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER",
})
# ...and the families whose members cargo names after the package's own features, cfgs and links.
BUILD_SCRIPT_ENV_FAMILIES: tuple[str, ...] = ("CARGO_CFG_", "CARGO_FEATURE_", "DEP_")


def is_default_env(name: str) -> bool:
    """Whether every build script sees `name` (when cargo sets it): the documented variables, and TMPDIR,
    which the runner points at the run's temp dir."""
    return name in BUILD_SCRIPT_ENV or name.startswith(BUILD_SCRIPT_ENV_FAMILIES) or name == "TMPDIR"


def guest_environment(host_env: dict[str, str], tmp_dir: str) -> dict[str, str]:
    env = {k: v for k, v in host_env.items() if is_default_env(k)}
    env["TMPDIR"] = tmp_dir
    return env


def preopen_table(ctx: RunContext, granted: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """(host dir, guest path, writable) for every preopen of a run, in the order the guest sees them.

    The order matters. wasi-libc resolves a path against the preopen whose path is the longest prefix of
    it, and among equally long ones the last registered. "." and "/" both register the empty prefix, which
    matches every absolute path: so "." comes first and a granted "/" (warn mode's, shim.enforce) after it,
    or absolute paths outside every other preopen would be looked up below the package directory. Relative
    paths are absolute by then (the facade's env.rs changes to the package directory before `main`), and
    the longer package, OUT_DIR, temp dir and granted prefixes win over "/".
    """
    return [(ctx.package_dir, ctx.package_dir, False), (ctx.package_dir, ".", False),
            (ctx.out_dir, ctx.out_dir, True), (ctx.tmp_dir, ctx.tmp_dir, True), *granted]


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `exit_code` for cargo, and a `cratecage:` message when it was not the guest's choice."""

    exit_code: int
    message: str = ""


class _Interrupt:
    """Why the run was stopped early, set by whichever limit fired first."""

    def __init__(self) -> None:
        self.reason = ""
        self.lock = threading.Lock()

    def set(self, reason: str) -> bool:
        with self.lock:
            if self.reason:
                return False
            self.reason = reason
            return True


def engine_and_config():  # type: ignore[no-untyped-def]
    import wasmtime

    config = wasmtime.Config()
    config.epoch_interruption = True
    config.max_wasm_stack = MAX_WASM_STACK
    config.memory_guard_size = 64 << 10
    config.memory_reservation = 256 << 20
    return wasmtime.Engine(config)


def _wasmtime_version() -> str:
    """Identifies the wasmtime build for the module cache key: its native library's size and mtime
    (importlib.metadata would cost ~25 ms per run; a new wheel brings a new library)."""
    import glob

    import wasmtime

    libs = sorted(glob.glob(os.path.join(os.path.dirname(wasmtime.__file__), "*", "_libwasmtime*")))
    stats = [os.stat(p) for p in libs]
    return ";".join(f"{os.path.basename(p)}:{st.st_size}:{st.st_mtime_ns}" for p, st in zip(libs, stats))


def load_module(engine, wasm: Path, cache_dir: Path):  # type: ignore[no-untyped-def]
    """The compiled module, from the serialized cache when present (our own files only)."""
    import wasmtime

    data = wasm.read_bytes()
    key = hashlib.sha256(data + f"|{_wasmtime_version()}|{ENGINE_TAG}".encode()).hexdigest()[:32]
    cached = cache_dir / f"{key}.cwasm"
    if cached.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)
    module = wasmtime.Module(engine, data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    tmp.write_bytes(module.serialize())
    os.replace(tmp, cached)
    return module


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def escaping_symlinks(out_dir: str) -> list[tuple[str, str]]:
    """Symbolic links under OUT_DIR whose target resolves outside it: (link, target)."""
    root = os.path.realpath(out_dir)
    found = []
    for base, dirs, files in os.walk(out_dir):
        for name in dirs + files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if target != root and not target.startswith(root + os.sep):
                    found.append((path, os.readlink(path)))
    return found


class GuestRun:
    """One instantiation of a build-script module under the limits."""

    def __init__(self, ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                 granted_preopens: list[tuple[str, str, bool]] | None = None) -> None:
        self.ctx = ctx
        self.preopens = preopen_table(ctx, granted_preopens or [])
        self.wasm = wasm
        self.limits = limits
        self.module_cache = module_cache
        self.stdout = bytearray()
        self.stderr_bytes = 0
        self.interrupt = _Interrupt()
        self.result: tuple[str, object] = ("error", "the guest thread did not finish")
        self.done = threading.Event()
        self.store = None
        self.engine = None
        self.processes = None  # the run's host_process.ProcessTable
        self.memory = None
        self.net = None
        self.deadline_ticks = max(1, round(limits.time_s / TICK_S))

    # -- capture callbacks (wasmtime calls them on its own thread, once per guest write) -----------------
    def _on_stdout(self, data: bytes) -> None:
        if len(self.stdout) + len(data) > self.limits.stdout:
            self._stop(f"printed more than {self.limits.stdout} bytes to stdout (CRATECAGE_LIMIT_STDOUT)")
            raise OSError("stdout limit reached")
        self.stdout.extend(data)

    def _on_stderr(self, data: bytes) -> None:
        self.stderr_bytes += len(data)
        if self.stderr_bytes > self.limits.stderr:
            self._stop(f"printed more than {self.limits.stderr} bytes to stderr (CRATECAGE_LIMIT_STDERR)")
            raise OSError("stderr limit reached")
        os.write(2, data)

    def _stop(self, reason: str) -> None:
        if self.interrupt.set(reason) and self.engine is not None:
            for _ in range(self.deadline_ticks + 2):
                self.engine.increment_epoch()

    def run(self) -> Outcome:
        import wasmtime

        from shim import host_net, host_observe, host_process

        self.engine = engine_and_config()
        module = load_module(self.engine, self.wasm, self.module_cache)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        self.processes = host_process.define(linker, self.ctx)
        self.processes.sinks = host_process.Sinks(self._on_stdout, self._on_stderr)
        host_observe.define(linker, self.ctx)
        self.net = host_net.define(linker, self.ctx, self.processes)
        wasi = wasmtime.WasiConfig()
        wasi.argv = [self.ctx.env.get("CARGO_MANIFEST_DIR", "") + "/build-script"]
        wasi.env = list(self.ctx.env.items())
        wasi.stdout_custom = self._on_stdout
        wasi.stderr_custom = self._on_stderr
        for host, guest, writable in self.preopens:
            wasi.preopen_dir(host, guest, writable)
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.limits.memory)
        store.set_epoch_deadline(self.deadline_ticks)
        self.store = store
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        self.memory = instance.exports(store).get("memory")

        self.ctx.deadline = time.monotonic() + self.limits.time_s
        old = threading.stack_size(GUEST_THREAD_STACK)
        try:
            guest = threading.Thread(target=self._guest, args=(start, store), name="guest", daemon=True)
            guest.start()
        finally:
            threading.stack_size(old)
        try:
            return self._supervise(guest)
        finally:
            self.net.close_all()  # whatever the guest left open, however it ended

    def _guest(self, start, store) -> None:  # type: ignore[no-untyped-def]
        import wasmtime

        try:
            start(store)
            self.result = ("exit", 0)
        except wasmtime.ExitTrap as trap:
            self.result = ("exit", trap.code)
        except wasmtime.Trap as trap:
            self.result = ("trap", trap.trap_code.name if trap.trap_code else str(trap))
        except wasmtime.WasmtimeError as err:
            self.result = ("error", str(err).strip().splitlines()[-1] if str(err).strip() else "wasmtime error")
        finally:
            self.done.set()

    def _supervise(self, guest: threading.Thread) -> Outcome:
        started = time.monotonic()
        base_out = _dir_size(self.ctx.out_dir)
        hard_deadline: float | None = None
        while not self.done.wait(TICK_S):
            self.engine.increment_epoch()
            now = time.monotonic()
            if now - started >= self.limits.time_s:
                self._stop(f"ran longer than {self.limits.time_s:g} s (CRATECAGE_LIMIT_TIME)")
            if int((now - started) / OUT_DIR_POLL_S) != int((now - started - TICK_S) / OUT_DIR_POLL_S):
                if _dir_size(self.ctx.out_dir) - base_out > self.limits.out_dir:
                    self._stop(f"wrote more than {self.limits.out_dir} bytes into OUT_DIR "
                               "(CRATECAGE_LIMIT_OUT_DIR)")
            if self.interrupt.reason and hard_deadline is None:
                hard_deadline = now + GRACE_S
            if hard_deadline is not None and now >= hard_deadline:
                # The guest is stuck inside a host call, where epochs do not fire.
                return Outcome(101, self._message(f"{self.interrupt.reason}; stopped while inside a host call"))
        if _dir_size(self.ctx.out_dir) - base_out > self.limits.out_dir:
            self.interrupt.set(f"wrote more than {self.limits.out_dir} bytes into OUT_DIR (CRATECAGE_LIMIT_OUT_DIR)")
        return self._outcome()

    def close(self) -> None:
        """After the run: no child of it outlives it."""
        if self.processes is not None:
            self.processes.close()

    def _message(self, cause: str) -> str:
        return f"cratecage: build script of {self.ctx.crate} {self.ctx.version} {cause}"

    def _outcome(self) -> Outcome:
        kind, value = self.result
        if self.interrupt.reason:
            return Outcome(101, self._message(f"stopped: {self.interrupt.reason}"))
        if kind == "exit":
            return Outcome(int(value))  # type: ignore[call-overload]
        if kind == "trap":
            cause = {
                "UNREACHABLE": "panicked or aborted (see its message above)",
                "STACK_OVERFLOW": "overflowed its stack",
                "INTERRUPT": f"ran longer than {self.limits.time_s:g} s (CRATECAGE_LIMIT_TIME)",
                "MEMORY_OUT_OF_BOUNDS": "accessed memory out of bounds",
                "INTEGER_DIVISION_BY_ZERO": "divided by zero",
            }.get(str(value), f"trapped ({value})")
            if value == "UNREACHABLE" and self._near_memory_limit():
                cause = f"ran out of memory (limit {self.limits.memory} bytes, CRATECAGE_LIMIT_MEMORY)"
            return Outcome(101, self._message(cause))
        return Outcome(101, self._message(f"could not run under wasmtime: {value}"))

    def _near_memory_limit(self) -> bool:
        try:
            return self.memory is not None and self.memory.data_len(self.store) + (64 << 20) > self.limits.memory
        except Exception:  # noqa: BLE001 - diagnostics only
            return False


def warn_once_without_landlock(cc_dir: Path) -> None:
    """Where Landlock is missing, rustc probes run unconfined: say so once per target directory."""
    from shim import landlock

    marker = cc_dir / "landlock-unavailable-warned"
    if landlock.abi_version() > 0 or marker.exists():
        return
    from shim.probe import landlock_status

    print(f"cargo:warning=cratecage: Landlock {landlock_status()}", flush=True)
    try:
        marker.touch()
    except OSError:
        pass


def run_build_script(ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                     grant: Grant | None = None, policy_file: str | None = None) -> Outcome:
    """Run the module under `grant` (None: the defaults alone), then check what it did and left behind.
    Stdout reaches cargo only after the run, filtered to the directives the grant allows."""
    from shim import enforce

    warn_once_without_landlock(wasm.parent.parent.parent)
    started = time.monotonic()
    ctx.env.update(enforce.env_extra(grant, ctx))
    ctx.grant = grant
    run = GuestRun(ctx, wasm, limits, module_cache, enforce.preopens(grant, ctx))
    try:
        outcome = run.run()
    finally:
        run.close()
    for link, target in escaping_symlinks(ctx.out_dir):
        ctx.deny("filesystem-access", link, f"symbolic link in OUT_DIR points outside it (to {target})",
                 "build scripts may only leave links inside OUT_DIR; the link was removed")
        try:
            os.unlink(link)
        except OSError:
            pass
    enforce.observed_denials(ctx, grant)
    stdout = enforce.filter_stdout(bytes(run.stdout), ctx, grant)
    if policy_file:
        stdout += rerun_on_policy_edits(stdout, ctx, policy_file)
    warn = grant is not None and grant.mode == "warn"
    if any(d.fatal for d in ctx.denials) and outcome.exit_code == 0 and not warn:
        fatal = sum(1 for d in ctx.denials if d.fatal)
        notes = len(ctx.denials) - fatal
        outcome = Outcome(1, f"cratecage: build script of {ctx.crate} {ctx.version} failed: {fatal} denied "
                             f"request{'s' if fatal > 1 else ''}"
                             + (f" (and {notes} not granted, reported only)" if notes else "") + ", listed below")
    if outcome.exit_code == 0:  # cargo shows a successful script's stderr to nobody: warnings it shows
        for denial in ctx.denials:
            for line in denial.render(ctx.crate, ctx.version).splitlines():
                stdout += f"cargo:warning={line}\n".encode()
    sys.stdout.buffer.write(stdout)
    sys.stdout.flush()
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    if outcome.exit_code != 0:
        for denial in ctx.denials:
            print(denial.render(ctx.crate, ctx.version), file=sys.stderr)
    from shim import audit

    audit.record(wasm.parent.parent.parent, ctx, grant, outcome.exit_code, outcome.message,
                 time.monotonic() - started)
    return outcome


def rerun_on_policy_edits(stdout: bytes, ctx: RunContext, policy_file: str) -> bytes:
    """Directives that make cargo rerun the script when the policy file changes: cargo does not know the
    policy, and a script that stays fresh keeps the output of its old grants.

    One rerun-if line replaces cargo's default of rerunning on any change in the package, so:
      - a script that names its inputs (prints rerun-if-*) gets the policy file added to them;
      - a script that names none, of a package outside the workspace (registry crates, git checkouts, path
        dependencies elsewhere), also gets its package directory: cargo scans a directory recursively,
        which is what its default does for such a package anyway (and finds nothing new in an immutable
        one). Not when the target directory is inside the package, where every build changes the scan;
      - a workspace package that names none keeps cargo's default and is not rerun by a policy edit (the
        README's limits say so): cargo lists a local package's files as packaging would (honouring
        `exclude` and .gitignore), so a whole-directory scan would rerun the script for edits cargo
        deliberately ignores.
    """
    from shim.directives import inside

    if b"rerun-if-" in stdout:
        return f"cargo:rerun-if-changed={policy_file}\n".encode()
    from shim.workspace import workspace_root_if_known

    package = ctx.package_dir
    root = workspace_root_if_known(ctx.host_env)  # None: an absolute CRATECAGE_POLICY, no known workspace
    if inside(ctx.out_dir, package) or (root is not None and inside(package, str(root))):
        return b""
    return f"cargo:rerun-if-changed={package}\ncargo:rerun-if-changed={policy_file}\n".encode()


def context_from_env(environ: dict[str, str], rustc: str, sysroot: str, tmp_dir: str) -> RunContext:
    package_dir = environ.get("CARGO_MANIFEST_DIR") or os.getcwd()
    out_dir = environ.get("OUT_DIR", "")
    return RunContext(
        crate=environ.get("CARGO_PKG_NAME", "?"), version=environ.get("CARGO_PKG_VERSION", "?"),
        package_dir=package_dir, out_dir=out_dir, tmp_dir=tmp_dir,
        env=guest_environment(environ, tmp_dir), host_env=dict(environ), rustc=rustc, sysroot=sysroot,
    )


def with_grant_limits(limits: Limits, grant: Grant, environ: dict[str, str]) -> Limits:
    """The policy's `limits` replace the defaults; CRATECAGE_LIMIT_* (tests, one-off runs) beats both."""
    import dataclasses

    changes: dict[str, float | int] = {}
    if grant.limits.time_s is not None and not environ.get("CRATECAGE_LIMIT_TIME"):
        changes["time_s"] = grant.limits.time_s
    if grant.limits.memory is not None and not environ.get("CRATECAGE_LIMIT_MEMORY"):
        changes["memory"] = grant.limits.memory
    return dataclasses.replace(limits, **changes)  # type: ignore[arg-type]


def main_build_script(wasm: str, rustc: str, sysroot: str, module_cache: str) -> None:
    """Entry from the launcher. Never returns: exits with the outcome (os._exit, see wasmtime-py.md §9)."""
    from shim.cli import enable_site_packages
    from shim.errors import CratecageError
    from shim.limits import from_env

    enable_site_packages()
    environ = dict(os.environ)
    code = 101
    run_dir = tempfile.mkdtemp(prefix="cratecage-run-")  # host/ is the host's own, tmp/ the guest's TMPDIR
    host_dir, tmp_dir = os.path.join(run_dir, "host"), os.path.join(run_dir, "tmp")
    os.mkdir(host_dir, 0o700)
    os.mkdir(tmp_dir, 0o700)
    try:
        if not environ.get("OUT_DIR"):
            raise CratecageError("the build script launcher must be run by cargo (OUT_DIR is not set)")
        ctx = context_from_env(environ, rustc, sysroot, tmp_dir)
        ctx.host_dir = host_dir
        from shim import enforce

        grant, policy = enforce.grant("build", ctx.crate, ctx.version, environ)
        limits = from_env(environ) if grant is None else with_grant_limits(from_env(environ), grant, environ)
        code = run_build_script(ctx, Path(wasm), limits, Path(module_cache), grant,
                                str(policy.source) if policy is not None and policy.source else None).exit_code
    except CratecageError as err:
        print(err.render(), file=sys.stderr)
        code = err.exit_code
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        if environ.get("CRATECAGE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"cratecage: internal error running build script of {environ.get('CARGO_PKG_NAME', '?')}: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
