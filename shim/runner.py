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
probe; host_net caps its own blocking calls at the deadline); memory by store limits; stdout/stderr by the
capture callbacks; what native children use (processes, their memory) and disk growth (OUT_DIR, the temp
dir, writable grants) by polling (shim.usage). Any stop kills every descendant at once, and `close`, which
runs before every post-run check, kills whatever is left (shim.reaper). The
guest runs in its own thread with a large native stack. Every failure names the crate, version and cause.
After the run, symbolic links in OUT_DIR that point outside it are removed and the build fails: rustc and
cargo would follow them natively. Compiled modules are cached, serialized, per wasm hash and engine config.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from shim import layout
from shim.limits import Limits
from shim.runctx import RunContext

if False:  # typing only: policy is imported when a run starts
    from policy import Grant

TICK_S = 0.05
GRACE_S = 2.0  # after the time limit, how long the watchdog waits for the epoch trap before killing
GUEST_THREAD_STACK = 256 << 20
MAX_WASM_STACK = 2 << 20  # wasmtime caps it at its async stack size (2 MiB)
ENGINE_TAG = "epoch-stack2m-v1"  # part of the module cache key: change with the Config below

RERUN_ENV = "CRATECAGE_WASM_RERUN"  # set by shim.script_rerun for its run for wasm32-wasip1: not recorded
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


def guest_environment(host_env: dict[str, str], tmp_dir: str,
                      inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The documented variables, and the families cargo names after the package's features, cfgs and
    links, less those cargo did not set but inherited (`inherited`: the environment cargo itself was
    started with, where it can be read): a `DEP_TOKEN` or `CARGO_FEATURE_X` of the user's shell is no
    variable cargo gives build scripts, and would otherwise pass by its prefix."""
    inherited = inherited or {}
    env = {k: v for k, v in host_env.items() if is_default_env(k)
           and not (k.startswith(BUILD_SCRIPT_ENV_FAMILIES) and inherited.get(k) == v)}
    env["TMPDIR"] = tmp_dir
    return env


def cargo_environment(pid: int | None = None) -> dict[str, str]:
    """The environment the process that ran this launcher (cargo) was started with; {} where /proc cannot
    say. Cargo starts build scripts itself, so the parent is the cargo that set their variables."""
    from shim.workspace import process_environ

    return process_environ(pid or os.getppid()) or {}


def preopen_table(ctx: RunContext, granted: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """(host dir, guest path, writable) for every preopen of a run, in the order the guest sees them.

    The order matters. wasi-libc resolves a path against the preopen whose path is the longest prefix of
    it, and among equally long ones the last registered. "." and "/" both register the empty prefix, which
    matches every absolute path: so "." comes first and a granted "/" (warn mode's, shim.enforce) after it,
    or absolute paths outside every other preopen would be looked up below the package directory. Relative
    paths are absolute by then (the facade's env.rs changes to the package directory before `main`), and
    the longer package, OUT_DIR, temp dir and granted prefixes win over "/".

    Longest-prefix resolution is also how a package that holds the target directory (every single-package
    project) is shown without it: shim.fsview preopens a view of the package's top level and each of its
    other subdirectories at its own path, so OUT_DIR (longer still) is reachable and the rest of the target
    directory (other crates' fingerprints and `.d` files, which hold variables' values) is not.
    """
    from shim import fsview

    package = fsview.preopens(ctx.package_dir, (ctx.package_dir, "."), fsview.hidden_dirs(ctx), ctx.host_scratch)
    return [*package, (ctx.out_dir, ctx.out_dir, True), (ctx.tmp_dir, ctx.tmp_dir, True), *granted]


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


def escaping_symlinks(out_dir: str) -> list[tuple[str, str]]:
    """Symbolic links under OUT_DIR whose target resolves outside it: (link, target)."""
    return [(path, what[len(_LINK_TO):]) for path, what in leftovers(out_dir) if what.startswith(_LINK_TO)]


_LINK_TO = "symbolic link to "
_SPECIAL_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"))


def leftovers(root: str) -> list[tuple[str, str]]:
    """What a run may not leave under a directory it could write (OUT_DIR, the temp dir, a writable grant):
    anything but a regular file, a directory or a symbolic link that resolves inside `root`, as
    (path, what it is). A FIFO blocks the next rustc that opens it; rustc and cargo follow links natively."""
    real_root = os.path.realpath(root)
    found = []
    if not os.path.isdir(root):  # a writable *file* grant is the owner's file: Landlock keeps it one
        return []
    for base, dirs, files in os.walk(root):  # never descends through a link
        for name in dirs + files:
            path = os.path.join(base, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                continue
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
                    continue
            found.append((path, _kind(mode, path, real_root)))
    return found


def _kind(mode: int, path: str, root: str) -> str:
    if stat.S_ISLNK(mode):
        try:
            return _LINK_TO + os.readlink(path)
        except OSError:
            return _LINK_TO + "?"
    return next((name for test, name in _SPECIAL_KINDS if test(mode)), "special file")


def _writable_roots(ctx: RunContext) -> list[tuple[str, str]]:
    grant = ctx.grant
    return [("OUT_DIR", ctx.out_dir), ("the temp dir", ctx.tmp_dir),
            *(("the writable grant " + w, w) for w in (grant.writable if grant is not None else ())
              if os.path.isdir(w))]


def leftovers_before(ctx: RunContext) -> set[tuple[str, str]]:
    """What `leftovers` finds in the writable grants before the run: the owner's own links and special
    files there are not the run's doing, and are left alone."""
    return {found for label, root in _writable_roots(ctx) if label.startswith("the writable grant")
            for found in leftovers(root)}


def check_leftovers(ctx: RunContext, before: set[tuple[str, str]] = frozenset()) -> None:  # type: ignore[assignment]
    """After every descendant of the run is gone: remove what `leftovers` finds under OUT_DIR, the temp dir
    and each writable grant (but what was there `before`), each a fatal denial."""
    for label, root in _writable_roots(ctx):
        if not root:
            continue
        for path, what in leftovers(root):
            if (path, what) in before:
                continue
            if what.startswith(_LINK_TO):
                reason = f"symbolic link in {label} points outside it (to {what[len(_LINK_TO):]})"
                fix = f"build scripts may only leave links inside {label}; the link was removed"
            else:
                reason = f"a {what} in {label}"
                fix = (f"build scripts may leave only regular files, directories and links inside {label}; "
                       f"the {what} was removed")
            ctx.deny("filesystem-access", path, reason, fix)
            try:
                os.unlink(path)
            except OSError:
                pass


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
        self.usage = None  # shim.usage.Usage, made when the run starts
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
        """Stop the guest (epochs) and everything it started (shim.reaper), once, for the first reason."""
        if not self.interrupt.set(reason):
            return
        if self.engine is not None:
            for _ in range(self.deadline_ticks + 2):
                self.engine.increment_epoch()
        from shim import reaper

        reaper.end()  # nothing new starts; a guest waiting on a child gets its status now

    def run(self) -> Outcome:
        import wasmtime

        from shim import host_files, host_net, host_observe, host_process, reaper, usage
        from shim.lexical import normal_path

        reaper.begin_run()  # before any child: every orphan below the runner comes back to it
        self.engine = engine_and_config()
        module = load_module(self.engine, self.wasm, self.module_cache)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        self.processes = host_process.define(linker, self.ctx)
        self.processes.sinks = host_process.Sinks(self._on_stdout, self._on_stderr)
        host_observe.define(linker, self.ctx)
        self.net = host_net.define(linker, self.ctx, self.processes)
        host_files.define(linker, self.ctx, self.processes, self.preopens)
        wasi = wasmtime.WasiConfig()
        wasi.argv = [self.ctx.env.get("CARGO_MANIFEST_DIR", "") + "/build-script"]
        wasi.env = list(self.ctx.env.items())
        wasi.stdout_custom = self._on_stdout
        wasi.stderr_custom = self._on_stderr
        for host, guest, writable in self.preopens:
            try:  # the guest finds a path's preopen by its normal form (facade paths.rs)
                wasi.preopen_dir(host, guest if guest == "." else normal_path(guest), writable)
            except wasmtime.WasmtimeError:
                if os.path.isdir(host) and os.access(host, os.R_OK | os.X_OK):
                    raise
                # gone since it was listed (a view of warn mode's "/" lists /tmp), or unreadable: not shown
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.limits.memory)
        store.set_epoch_deadline(self.deadline_ticks)
        self.store = store
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        self.memory = instance.exports(store).get("memory")

        self.usage = usage.Usage(self.ctx, self.limits)  # the disk baseline, before the guest writes
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
        hard_deadline: float | None = None
        while not self.done.wait(TICK_S):
            self.engine.increment_epoch()
            now = time.monotonic()
            if now >= self.ctx.deadline:
                self._stop(f"ran longer than {self.limits.time_s:g} s (CRATECAGE_LIMIT_TIME)")
            elif not self.interrupt.reason:
                exceeded = self.usage.check(now)  # processes, their memory, disk (shim.usage)
                if exceeded:
                    self._stop(exceeded)
            if self.interrupt.reason and hard_deadline is None:
                hard_deadline = now + GRACE_S
            if hard_deadline is not None and now >= hard_deadline:
                # The guest is stuck inside a host call, where epochs do not fire.
                return Outcome(101, self._message(f"{self.interrupt.reason}; stopped while inside a host call"))
        exceeded = self.usage.final()
        if exceeded:
            self.interrupt.set(exceeded)
        return self._outcome()

    def close(self) -> None:
        """After the run, before anything checks what it left: no process of it outlives it. The gate
        closes and every descendant is stopped and killed until none is left (shim.reaper), also when only
        probes ran and when the watchdog gave up on a guest still inside a host call."""
        from shim import reaper

        reaper.end()
        if self.processes is not None:
            self.processes.close()
        left = reaper.left()  # the sweep gave up (shim.reaper.END_WAIT_S): fail rather than check too early
        if left:
            self.ctx.deny("process-spawn", "the processes it started",
                          f"{left} of them could not be ended within {reaper.END_WAIT_S:g} s")

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


def warn_once_without_landlock(ctx: RunContext) -> None:
    """Where Landlock is missing, rustc probes run unconfined: say so once per cargo run (shim.once), from the
    first build script of a workspace package to run: cargo shows the `cargo:warning` lines of local
    packages only, so a registry crate's would be lost."""
    from shim import landlock

    if landlock.abi_version() > 0:
        return
    from shim.directives import inside
    from shim.errors import CratecageError
    from shim.workspace import workspace_root_if_known

    try:
        root = workspace_root_if_known(ctx.host_env)
    except CratecageError:
        root = None
    if root is None or not inside(ctx.package_dir, str(root)):
        return
    from shim import once
    from shim.probe import landlock_status

    if once.first("no landlock: build scripts", ctx.host_env):
        print(f"cargo:warning=cratecage: Landlock {landlock_status()}", flush=True)


def removed_note(freed: int, ctx: RunContext) -> str:
    """What the stop for the disk limit removed, said after its message."""
    grant = ctx.grant
    kept = "; what it wrote into writable grants was left there" if grant is not None and grant.writable else ""
    return f"; what it added to OUT_DIR ({freed} bytes) was removed{kept}"


def run_build_script(ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                     grant: Grant | None = None, policy_file: str | None = None) -> Outcome:
    """Run the module under `grant` (None: the defaults alone), then check what it did and left behind.
    Stdout reaches cargo only after the run, filtered to the directives the grant allows."""
    from shim import enforce

    cc_dir = Path(layout.state_of_module(str(wasm)))
    warn_once_without_landlock(ctx)
    started = time.monotonic()
    ctx.env.update(enforce.env_extra(grant, ctx))
    ctx.grant = grant
    enforce.check_writable(grant, ctx, str(module_cache))
    before = leftovers_before(ctx)
    run = GuestRun(ctx, wasm, limits, module_cache, enforce.preopens(grant, ctx))
    try:
        outcome = run.run()
    finally:
        run.close()
    check_leftovers(ctx, before)
    if run.usage is not None and run.usage.disk_exceeded:  # no gigabytes left behind (shim.usage)
        outcome = Outcome(outcome.exit_code, outcome.message + removed_note(run.usage.remove_added(), ctx))
    target_reads(ctx)
    enforce.observed_denials(ctx, grant)
    stdout = enforce.filter_stdout(bytes(run.stdout), ctx, grant)
    if policy_file:
        stdout += rerun_on_policy_edits(stdout, ctx, policy_file)
    warn = grant is not None and grant.mode == "warn"
    if any(d.fatal for d in ctx.denials) and outcome.exit_code == 0 and not warn:
        fatal = sum(1 for d in ctx.denials if d.fatal)
        notes = sum(1 for d in ctx.denials if not d.fatal and not d.expected)
        outcome = Outcome(1, f"cratecage: build script of {ctx.crate} {ctx.version} failed: {fatal} denied "
                             f"request{'s' if fatal > 1 else ''}"
                             + (f" (and {notes} not granted, reported only)" if notes else "") + ", listed below")
    if outcome.exit_code == 0:  # cargo shows a successful script's stderr to nobody: warnings it shows
        for denial in (d for d in ctx.denials if not d.expected):  # the policy's own denies: audit log only
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

    audit.record(cc_dir, ctx, grant, outcome.exit_code, outcome.message,
                 time.monotonic() - started)
    return outcome


def target_reads(ctx: RunContext) -> None:
    """A read the guest reported failing inside the target directory but OUT_DIR and its own temp dir (which
    lives there, shim.runner.make_run_dir) is a fatal denial (shim.fsview hides the rest: other crates'
    fingerprints and `.d` files hold variables' values); no policy entry grants it, short of naming a path
    inside the target directory."""
    from shim import fsview
    from shim.directives import inside

    hidden = fsview.hidden_dirs(ctx)
    grant = ctx.grant
    granted = [*(grant.readable if grant is not None else ()), *(grant.writable if grant is not None else ())]
    for obs in ctx.observations:
        if obs.kind != "fs" or obs.op not in ("read", "list") or obs.succeeded:
            continue
        path = os.path.normpath(obs.target)
        if (any(inside(path, h) for h in hidden) and not inside(path, ctx.out_dir) and not inside(path, ctx.tmp_dir)
                and not any(inside(path, g) for g in granted)):
            ctx.deny("filesystem-access", f"{obs.op} {path}",
                     "inside the target directory, which holds other crates' build state; a build script "
                     "reads only its own OUT_DIR there", "read what the build needs from the package or "
                     "OUT_DIR instead")


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
    """The run's context. The package and OUT_DIR take shim.lexical's form, which is how the guest resolves
    every path (a preopen at `/w/m/../t/out` would match nothing) and what reports are compared with; where
    a link made that another directory, the guest's variables name the resolved one."""
    from shim.lexical import normal_dir, normal_path

    package_dir = normal_dir(environ.get("CARGO_MANIFEST_DIR") or os.getcwd())
    out_dir = normal_dir(environ["OUT_DIR"]) if environ.get("OUT_DIR") else ""
    env = guest_environment(environ, tmp_dir, cargo_environment())
    for name, value in (("CARGO_MANIFEST_DIR", package_dir), ("OUT_DIR", out_dir)):
        if name in env and normal_path(env[name]) != value:
            env[name] = value
            if name == "CARGO_MANIFEST_DIR" and "CARGO_MANIFEST_PATH" in env:
                env["CARGO_MANIFEST_PATH"] = os.path.join(value, os.path.basename(env["CARGO_MANIFEST_PATH"]))
    return RunContext(
        crate=environ.get("CARGO_PKG_NAME", "?"), version=environ.get("CARGO_PKG_VERSION", "?"),
        package_dir=package_dir, out_dir=out_dir, tmp_dir=tmp_dir,
        env=env, host_env=dict(environ), rustc=rustc, sysroot=sysroot,
    )


def with_grant_limits(limits: Limits, grant: Grant, environ: dict[str, str]) -> Limits:
    """The policy's `limits` replace the defaults; CRATECAGE_LIMIT_* (tests, one-off runs) beats both. The
    policy's fields are named as shim.limits' (policy.model.Limits)."""
    import dataclasses

    from shim.limits import set_in_env

    changes = {f.name: getattr(grant.limits, f.name) for f in dataclasses.fields(grant.limits)
               if getattr(grant.limits, f.name) is not None and not set_in_env(f.name, environ)}
    return dataclasses.replace(limits, **changes)


def make_run_dir(cratecage_dir: str) -> str:
    """A fresh directory for one run in `<target>/cratecage/tmp/`, tagged as build state first
    (shim.fsview.tag_build_state): `host/`, the host's own scratch (views of hard links to the crate's
    granted files, probe outputs), and `tmp/`, the guest's TMPDIR. Not in the system's temp dir: a crate
    granted `/tmp` (or wherever TMPDIR points) would read every file granted to a build script running beside
    it through that run's views, write through their hard links to the host files, and write into its temp
    dir. Inside a target directory, which every readable root hides and only an explicit grant of the
    target directory reaches, no other run sees it; and hard links to granted files stay on the project's
    file system."""
    from shim.fsview import tag_build_state

    tag_build_state(cratecage_dir)  # other crates' journal, audit and wasm rlibs: hidden from every run
    base = os.path.join(cratecage_dir, "tmp")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix="run-", dir=base)


def main_build_script(wasm: str, rustc: str, sysroot: str, module_cache: str) -> None:
    """Entry from the launcher. Never returns: exits with the outcome (os._exit, see wasmtime-py.md §9)."""
    from shim.cli import enable_site_packages
    from shim.errors import CratecageError
    from shim.limits import from_env

    enable_site_packages()
    environ = dict(os.environ)
    code = 101
    run_dir = make_run_dir(layout.state_of_module(wasm))  # host/: the host's own; tmp/: the guest's TMPDIR
    host_dir, tmp_dir = os.path.join(run_dir, "host"), os.path.join(run_dir, "tmp")
    os.mkdir(host_dir, 0o700)
    os.mkdir(tmp_dir, 0o700)
    try:
        if not environ.get("OUT_DIR"):
            raise CratecageError("the build script launcher must be run by cargo (OUT_DIR is not set)")
        ctx = context_from_env(environ, rustc, sysroot, tmp_dir)
        ctx.host_dir = host_dir
        if not environ.get(RERUN_ENV):  # how it ran, should a replay need it for wasm (shim.script_rerun)
            from shim.script_rerun import record

            record(wasm, rustc, sysroot, module_cache, environ)
        from shim import enforce

        grant, policy = enforce.grant("build", ctx.crate, ctx.version, environ, ctx.package_dir)
        limits = from_env(environ) if grant is None else with_grant_limits(from_env(environ), grant, environ)
        code = run_build_script(ctx, Path(wasm), limits, Path(module_cache), grant,
                                str(policy.source) if policy is not None and policy.source else None).exit_code
    except CratecageError as err:
        from shim.once import report

        report(err, environ)  # a build-wide one (the policy, the workspace, a limit) once per cargo run
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
