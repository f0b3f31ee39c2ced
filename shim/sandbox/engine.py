"""One guest run: a wasm module under wasmtime with WASI preview 1, the host functions of shim.host, its
preopens and limits. It knows nothing about cargo: shim.build.run makes a build script's run of it.

Limits (shim.limits): the wall clock is enforced by the epoch deadline (one ticker thread) *and* by a
watchdog in the main thread, because epochs never fire while the guest is inside a host call (a sleep, a
probe; shim.host.net caps its own blocking calls at the deadline); memory by store limits; stdout/stderr by
the capture callbacks; what native children use (processes, their memory) and disk growth (OUT_DIR, the temp
dir, writable grants) by polling (shim.sandbox.usage). Any stop kills every descendant at once, and `close`,
which runs before every post-run check, kills whatever is left (shim.confine.reaper). The guest runs in its
own thread with a large native stack. After the run, what it may not leave in a directory it could write
(`leftovers`: links out of it, FIFOs, devices) is removed, each a fatal denial: rustc and cargo would follow
or open them natively. Compiled modules are cached, serialized, per wasm hash and engine config, and kept
bounded by shim.cache_eviction.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

from shim.files import fresh_dir
from shim.host.context import RunContext
from shim.limits import Limits
from shim.record import record

TICK_S = 0.05

GRACE_S = 2.0  # after the time limit, how long the watchdog waits for the epoch trap before killing

GUEST_THREAD_STACK = 256 << 20

MAX_WASM_STACK = 2 << 20  # wasmtime caps it at its async stack size (2 MiB)

ENGINE_TAG = "epoch-stack2m-v1"  # part of the module cache key: change with the Config below


def preopen_table(ctx: RunContext, granted: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """(host dir, guest path, writable) for every preopen of a run, in the order the guest sees them.

    The order matters. wasi-libc resolves a path against the preopen whose path is the longest prefix of
    it, and among equally long ones the last registered. "." and "/" both register the empty prefix, which
    matches every absolute path: so "." comes first and a granted "/" (warn mode's, shim.sandbox.enforce) after it,
    or absolute paths outside every other preopen would be looked up below the package directory. Relative
    paths are absolute by then (the facade's env.rs changes to the package directory before `main`), and
    the longer package, OUT_DIR, temp dir and granted prefixes win over "/".

    Longest-prefix resolution is also how a package that holds the target directory (every single-package
    project) is shown without it: shim.confine.fsview preopens a view of the package's top level and each of its
    other subdirectories at its own path, so OUT_DIR (longer still) is reachable and the rest of the target
    directory (other crates' fingerprints and `.d` files, which hold variables' values) is not.

    A context without a package directory or OUT_DIR (a proc macro's, shim.macro.server) has none of them.
    """
    from shim.confine import fsview

    package = (fsview.preopens(ctx.package_dir, (ctx.package_dir, "."), fsview.hidden_dirs(ctx), ctx.host_scratch)
               if ctx.package_dir else [])
    return [*package, *((d, d, True) for d in (ctx.out_dir, ctx.tmp_dir) if d), *granted]


@record(frozen=True)
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
    """The compiled module, from the serialized cache when present (our own files only). A cached file that
    is gone by the time it is read (shim.cache_eviction removed it) or does not load is compiled again; a
    new one is written under a temporary name and renamed into place, then the cache pruned when due."""
    import wasmtime

    from shim import cache_eviction

    data = wasm.read_bytes()
    key = hashlib.sha256(data + f"|{_wasmtime_version()}|{ENGINE_TAG}".encode()).hexdigest()[:32]
    cached = cache_dir / f"{key}.cwasm"
    try:
        mtime = os.stat(cached).st_mtime
    except OSError:
        mtime = None
    if mtime is not None:
        cache_eviction.touch_if_stale(str(cached), mtime)  # used now: eviction leaves it
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)  # broken (replaced below), or removed meanwhile
    module = wasmtime.Module(engine, data)
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(module.serialize())
        os.replace(tmp, cached)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache this user cannot write: the next run compiles again
        return module
    cache_eviction.prune_when_due(str(cache_dir), cache_eviction.MODULES)
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


def check_leftovers(ctx: RunContext, before: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
                    what: str = "build scripts") -> None:
    """After every descendant of the run is gone: remove what `leftovers` finds under OUT_DIR, the temp dir
    and each writable grant (but what was there `before`), each a fatal denial."""
    for label, root in _writable_roots(ctx):
        if not root:
            continue
        for path, found in leftovers(root):  # `what` is who may not leave it: "build scripts"
            if (path, found) in before:
                continue
            if found.startswith(_LINK_TO):
                reason = f"symbolic link in {label} points outside it (to {found[len(_LINK_TO):]})"
                fix = f"{what} may only leave links inside {label}; the link was removed"
            else:
                reason = f"a {found} in {label}"
                fix = (f"{what} may leave only regular files, directories and links inside {label}; "
                       f"the {found} was removed")
            ctx.deny("filesystem-access", path, reason, fix)
            try:
                os.unlink(path)
            except OSError:
                pass


class StartLimit(Exception):
    """A module that cannot even be instantiated within its limits; `str(err)` is the `cratecage:` line."""


class GuestRun:
    """One instantiation of a module under the limits: `what` it is ("build script") names it in messages,
    `argv` is what the guest sees as its command line."""

    def __init__(self, ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                 granted_preopens: list[tuple[str, str, bool]] | None = None, *, what: str,
                 argv: list[str]) -> None:
        self.ctx = ctx
        self.what = what
        self.argv = argv
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
        self.module = None
        self.linker = None
        self.instance = None
        self.value: object = None  # what the last `call` returned
        self.subject = f"{what} of {ctx.crate} {ctx.version}"  # how messages name it
        self.extra_imports: list = []  # functions(linker) defining imports beyond shim.host's (the macro ABI)
        self.worker = None  # the guest thread's queue of calls (`_start_worker`)
        self.processes = None  # the run's host_process.ProcessTable
        self.usage = None  # shim.sandbox.usage.Usage, made when the run starts
        self.memory = None
        self.net = None
        self.deadline_ticks = max(1, round(limits.time_s / TICK_S))
        # Where the guest's stderr (and its programs') goes, within the limit: as it is, to ours (cargo frames a
        # build script's); the macro server marks each line as the macro's (shim.macro.expander).
        self.forward_stderr = lambda data: os.write(2, data)  # (data: bytes) -> object

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
        self.forward_stderr(data)

    def stop(self, reason: str) -> None:
        """Stop the current call from another thread, as a limit does (the macro server's, when its rustc is
        gone): the call returns with "stopped: <reason>"."""
        self._stop(reason)

    def _stop(self, reason: str) -> None:
        """Stop the guest (epochs) and everything it started (shim.confine.reaper), once, for the first reason."""
        if not self.interrupt.set(reason):
            return
        if self.engine is not None:
            for _ in range(self.deadline_ticks + 2):
                self.engine.increment_epoch()
        from shim.confine import reaper

        reaper.end()  # nothing new starts; a guest waiting on a child gets its status now

    def instantiate(self) -> None:
        """A fresh store and instance. The first call loads the module and defines the host functions; a
        later one (the macro server's, after a trap left the guest's stack pointer and locks as they were)
        reuses them and reopens the reaper's gate that a stop closed."""
        import wasmtime

        from shim.confine import reaper
        from shim.lexical import normal_path

        reaper.begin_run()  # before any child: every orphan below the runner comes back to it
        if self.linker is None:
            from shim.host import files as host_files
            from shim.host import net as host_net
            from shim.host import observe as host_observe
            from shim.host import process as host_process

            self.engine = engine_and_config()
            self.module = load_module(self.engine, self.wasm, self.module_cache)
            linker = wasmtime.Linker(self.engine)
            linker.define_wasi()
            self.processes = host_process.define(linker, self.ctx)
            self.processes.sinks = host_process.Sinks(self._on_stdout, self._on_stderr)
            host_observe.define(linker, self.ctx)
            self.net = host_net.define(linker, self.ctx, self.processes)
            host_files.define(linker, self.ctx, self.processes, self.preopens)
            for define in self.extra_imports:
                define(linker)
            self.linker = linker
        wasi = wasmtime.WasiConfig()
        wasi.argv = self.argv
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
        self.store = store
        try:
            self.instance = self.linker.instantiate(store, self.module)
        except wasmtime.WasmtimeError as err:
            if "exceeds memory limits" not in str(err):
                raise
            # The module's initial memory alone is over the limit: the limit's message, not an internal error.
            raise StartLimit(self._message(f"needs more memory than its limit to start (limit {self.limits.memory} "
                                           "bytes, CRATECAGE_LIMIT_MEMORY)")) from None
        self.memory = self.instance.exports(store).get("memory")

    def exports(self) -> set[str]:
        return set(self.instance.exports(self.store)) if self.instance is not None else set()

    def call(self, name: str, *args: int) -> Outcome:
        """Call the instance's export `name` under the limits, with a time budget of its own (the epoch
        deadline and the watchdog); what it returned is `value`."""
        from shim.sandbox import usage

        self.interrupt = _Interrupt()
        self.done = threading.Event()
        self.result = ("error", "the guest thread did not finish")
        self.value = None
        func = self.instance.exports(self.store)[name]
        self.store.set_epoch_deadline(self.deadline_ticks)
        self.usage = usage.Usage(self.ctx, self.limits)  # the disk baseline, before the guest writes
        self.ctx.deadline = time.monotonic() + self.limits.time_s
        if self.worker is None:
            self.worker = self._start_worker()
        jobs = self.worker
        jobs.put((func, self.store, args, self.done))
        outcome = self._supervise()
        if not self.done.is_set():  # given up on inside a host call: that thread ends when the call does
            jobs.put(None)
            self.worker = None
        return outcome

    def _start_worker(self):  # type: ignore[no-untyped-def]
        """The guest thread, with a large native stack, kept for every call of the run: starting a thread
        with such a stack costs ~2 ms, and a macro server makes two calls per expansion."""
        import queue

        jobs: queue.SimpleQueue = queue.SimpleQueue()

        def work() -> None:
            for job in iter(jobs.get, None):
                self._guest(*job)

        old = threading.stack_size(GUEST_THREAD_STACK)
        try:
            threading.Thread(target=work, name="guest", daemon=True).start()
        finally:
            threading.stack_size(old)
        return jobs

    def run(self) -> Outcome:
        """A command module's whole run: instantiate, `_start`."""
        try:
            self.instantiate()
        except StartLimit as err:
            return Outcome(101, str(err))
        try:
            return self.call("_start")
        finally:
            self.net.close_all()  # whatever the guest left open, however it ended

    def _guest(self, func, store, args, done: threading.Event) -> None:  # type: ignore[no-untyped-def]
        """One call on the guest thread. Its result is the run's only while `done` is the current call's: a
        call the watchdog gave up on (stuck in a host call) may end during a later one, and must not end it."""
        import wasmtime

        value = None
        result: tuple[str, object] = ("error", "the guest thread did not finish")
        try:
            value = func(store, *args)
            result = ("exit", 0)
        except wasmtime.ExitTrap as trap:
            result = ("exit", trap.code)
        except wasmtime.Trap as trap:
            result = ("trap", trap.trap_code.name if trap.trap_code else str(trap))
        except wasmtime.WasmtimeError as err:
            result = ("error", str(err).strip().splitlines()[-1] if str(err).strip() else "wasmtime error")
        finally:
            if self.done is done:
                self.value, self.result = value, result
            done.set()

    def _supervise(self) -> Outcome:
        hard_deadline: float | None = None
        while not self.done.wait(TICK_S):
            self.engine.increment_epoch()
            now = time.monotonic()
            if now >= self.ctx.deadline:
                self._stop(f"ran longer than {self.limits.time_s:g} s (CRATECAGE_LIMIT_TIME)")
            elif not self.interrupt.reason:
                exceeded = self.usage.check(now)  # processes, their memory, disk (shim.sandbox.usage)
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
        closes and every descendant is stopped and killed until none is left (shim.confine.reaper), also when only
        probes ran and when the watchdog gave up on a guest still inside a host call."""
        from shim.confine import reaper

        if self.worker is not None:
            self.worker.put(None)
            self.worker = None
        reaper.end()
        if self.processes is not None:
            self.processes.close()
        left = reaper.left()  # the sweep gave up (shim.confine.reaper.END_WAIT_S): fail rather than check too early
        if left:
            self.ctx.deny("process-spawn", "the processes it started",
                          f"{left} of them could not be ended within {reaper.END_WAIT_S:g} s")

    def _message(self, cause: str) -> str:
        return f"cratecage: {self.subject} {cause}"

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


def removed_note(freed: int, ctx: RunContext) -> str:
    """What the stop for the disk limit removed, said after its message."""
    grant = ctx.grant
    kept = "; what it wrote into writable grants was left there" if grant is not None and grant.writable else ""
    return f"; what it added to OUT_DIR ({freed} bytes) was removed{kept}"


def make_run_dir(cratecage_dir: str) -> str:
    """A fresh directory for one run in `<target>/cratecage/tmp/`, tagged as build state first
    (shim.confine.fsview.tag_build_state): `host/`, the host's own scratch (views of hard links to the crate's
    granted files, probe outputs), and `tmp/`, the guest's TMPDIR. Not in the system's temp dir: a crate
    granted `/tmp` (or wherever TMPDIR points) would read every file granted to a build script running beside
    it through that run's views, write through their hard links to the host files, and write into its temp
    dir. Inside a target directory, which every readable root hides and only an explicit grant of the
    target directory reaches, no other run sees it; and hard links to granted files stay on the project's
    file system."""
    from shim.confine.fsview import tag_build_state

    tag_build_state(cratecage_dir)  # other crates' journal, audit and wasm rlibs: hidden from every run
    base = os.path.join(cratecage_dir, "tmp")
    os.makedirs(base, exist_ok=True)
    return fresh_dir(base, "run-")

