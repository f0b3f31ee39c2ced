"""The host side of the process ABI: what a sandboxed `std::process::Command` reaches.

The std facade (shim/rust/facade/src/process.rs) turns every `Command` call into the imports of
`abi.IMPORTS`; `define` registers one Python function per import under `abi.IMPORT_MODULE`. Children are
small integer handles in a `ProcessTable`, one per run. Policy for this version:

  - a request to run cargo's compiler (`shim.host.probe.is_compiler_request`) becomes a *deferred* child: its
    stdin is buffered, and `shim.host.probe.run_probe` runs the real rustc, confined, only once the guest has
    said everything it will (it closes stdin, waits, try_waits or reads, whichever comes first). The
    child's stdout is served only if the guest piped it; its stderr is empty. A `ProbeDenied` is recorded
    as a "rustc-probe" denial and the child appears to have exited with status 1;
  - a program the crate's policy grants (`process-spawn`) runs for real, confined, as a
    `shim.host.spawn.RealChild`: its pipes are served as they fill, wait blocks until it exits;
  - a program an explicit deny names (`process-spawn = { action = "deny", programs = ["git"] }`, the owner's
    or a curated one) is refused as expected: E_NOT_FOUND, which the script handles as it handles a
    program that is not installed, and a non-fatal denial that only the audit log shows;
  - any other program is refused at spawn: a "process-spawn" denial with the entry that would grant it,
    and E_DENIED with a last_error message that starts with `cratecage:` and names the program.

Blocking calls (read, wait, stdin_write on a real child) end at the run's deadline (`ctx.deadline`);
`close` at the end of the run kills every child and descendant still alive, probes included
(shim.host.spawn.sweep, shim.confine.reaper).

Host functions never raise. An exception escaping into wasmtime travels through wasmtime-py's
process-global LAST_EXCEPTION (notes/wasmtime-py.md §7), unsafe with guests on several threads; so every
failure (bad pointer, bad handle, malformed request, a bug here) becomes an ABI error code and a
`last_error` message. Guest pointers are bounds-checked here: wasmtime-py's `Memory.read` clamps
like a slice and treats negative offsets as counted from the end.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Final, TypeVar

import wasmtime

from shim.confine import reaper
from shim.host import abi
from shim.host.context import RunContext, Spawn
from shim.record import factory, record

if TYPE_CHECKING:  # shim.host.spawn is imported on the first real spawn: most runs never spawn
    from shim.host.spawn import RealChild

MAX_REQUEST: Final = 1 << 20  # bytes; a larger spawn request is malformed
MAX_STDIN: Final = 16 << 20  # bytes a deferred child buffers before writes fail
MAX_CHILDREN: Final = 64  # live handles per run
KILL_SIGNAL: Final = 9  # the status of a child killed before it ran
_U32: Final = 0xFFFFFFFF
T = TypeVar("T")


class HostCallError(Exception):
    """A failed host call: the ABI error code the guest gets and the message `last_error` returns."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GuestMemory:
    """The calling guest's exported `memory`, with every access bounds-checked."""

    def __init__(self, caller: wasmtime.Caller) -> None:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise HostCallError(abi.E_INVALID, "cratecage: the module exports no `memory`")
        self.caller = caller
        self.memory = memory

    def _span(self, ptr: int, length: int) -> tuple[int, int]:
        start, length = ptr & _U32, length & _U32
        if start + length > self.memory.data_len(self.caller):
            raise HostCallError(abi.E_INVALID, "cratecage: a pointer passed to the host is out of bounds")
        return start, start + length

    def check(self, ptr: int, length: int) -> None:
        """Fail now, before a blocking call, if `length` bytes at `ptr` are not the guest's to receive."""
        self._span(ptr, length)

    def read(self, ptr: int, length: int) -> bytes:
        start, stop = self._span(ptr, length)
        return bytes(self.memory.read(self.caller, start, stop)) if stop > start else b""

    def write(self, ptr: int, data: bytes) -> None:
        start, stop = self._span(ptr, len(data))
        if stop > start:
            self.memory.write(self.caller, data, start)

    def write_string(self, ptr: int, cap: int, text: str) -> int:
        """The ABI's string convention: copy at most `cap` bytes, return the full length."""
        data = text.encode()
        self.write(ptr, data[: cap & _U32])
        return len(data)


@record
class DeferredChild:
    """A compiler request: nothing runs until the guest has said all it will. It answers the calls a
    `shim.host.spawn.RealChild` answers, so the table treats both alike."""

    request: abi.SpawnRequest
    ctx: RunContext
    stdin: bytearray = factory(bytearray)
    stdin_open: bool = True
    status: tuple[int, int] | None = None  # (abi.STATUS_*, code or signal) once finished
    stdout: bytes = b""
    read_pos: dict[int, int] = factory(dict)

    def write_stdin(self, data: bytes, deadline: float) -> int:
        if not self.stdin_open:
            raise HostCallError(abi.E_IO, "cratecage: the child's stdin is closed")
        if len(self.stdin) + len(data) > MAX_STDIN:
            raise HostCallError(abi.E_IO, f"cratecage: more than {MAX_STDIN} bytes written to a child's stdin")
        self.stdin += data
        return len(data)

    def close_stdin(self) -> None:
        self.finish()

    def read(self, stream: int, cap: int, deadline: float) -> bytes:
        self.finish()
        data = self.stdout if stream == abi.STREAM_STDOUT else b""
        pos = self.read_pos.get(stream, 0)
        chunk = data[pos: pos + cap]
        self.read_pos[stream] = pos + len(chunk)
        return chunk

    def wait(self, deadline: float) -> tuple[int, int]:
        self.finish()
        return self.status  # type: ignore[return-value]

    def try_wait(self) -> tuple[int, int]:
        return self.wait(0.0)  # a deferred child finishes as soon as it is asked about

    def kill(self) -> None:
        if self.status is None:
            self.stdin_open = False
            self.status = (abi.STATUS_SIGNALED, KILL_SIGNAL)

    def finish(self) -> None:
        """Run the probe once, with all the stdin the guest wrote; a refusal is a denial and status 1."""
        self.stdin_open = False
        if self.status is not None:
            return
        probe = probe_module()
        try:
            result = probe.run_probe(self.ctx, self.request, bytes(self.stdin))
        except probe.ProbeDenied as denied:
            self.ctx.deny("rustc-probe", denied.target, denied.reason, denied.fix)
            self.status = (abi.STATUS_EXITED, 1)
            return
        except Exception as err:  # a failure of ours: fail closed, and say so where denials are reported
            self.ctx.deny("rustc-probe", self.request.program, f"cratecage could not run the probe: {err}")
            self.status = (abi.STATUS_EXITED, 1)
            return
        code = int(result.exit_code)
        self.status = (abi.STATUS_EXITED, code) if code >= 0 else (abi.STATUS_SIGNALED, -code)
        if self.request.stdout == abi.STDIO_PIPED:
            self.stdout = bytes(result.stdout)


def probe_module() -> ModuleType:
    """shim.host.probe, imported on the first spawn: most runs never spawn, and it brings subprocess and
    Landlock along."""
    return importlib.import_module("shim.host.probe")




class ProcessTable:
    """The children of one run and the last failure's message. Methods named `abi_<import>` are the
    host functions; `define` wraps each so that nothing raises into wasmtime."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.children: dict[int, DeferredChild | RealChild] = {}
        self.started: list[RealChild] = []  # every real child of the run, released or not
        self.sinks: Sinks | None = None  # where inherited streams of real children go (the runner's)
        self.last_error = ""
        self._next_handle = 1

    # -- the imports ---------------------------------------------------------------------------------------

    def abi_last_error(self, mem: GuestMemory, buf: int, cap: int) -> int:
        return mem.write_string(buf, cap, self.last_error)

    def abi_temp_dir(self, mem: GuestMemory, buf: int, cap: int) -> int:
        return mem.write_string(buf, cap, self.ctx.tmp_dir)

    def abi_spawn(self, mem: GuestMemory, req: int, req_len: int) -> int:
        if req_len & _U32 > MAX_REQUEST:
            raise HostCallError(abi.E_INVALID, "cratecage: spawn request too large")
        try:
            request = abi.decode_request(mem.read(req, req_len))
        except abi.RequestError as err:
            raise HostCallError(abi.E_INVALID, f"cratecage: malformed spawn request: {err}") from None
        if probe_module().is_compiler_request(self.ctx, request):
            return self._add(DeferredChild(request, self.ctx))
        return self._add(self._start(request))

    def _start(self, request: abi.SpawnRequest) -> RealChild:
        from shim.host import spawn as host_spawn

        try:
            program = host_spawn.resolve(self.ctx, request.program)
            if sum(1 for c in self.started if c.proc.poll() is None) >= MAX_CHILDREN:  # released ones too
                raise HostCallError(abi.E_IO, f"cratecage: more than {MAX_CHILDREN} running child processes")
            child = host_spawn.RealChild(self.ctx, request, program, self.sinks or _discard_sinks())
        except host_spawn.SpawnRefused as refused:
            if refused.expected:  # an explicit deny: "not found" to the script, the audit log for the owner
                self.ctx.deny("process-spawn", refused.target, refused.reason, expected=True)
                raise HostCallError(abi.E_NOT_FOUND, f"cratecage: {refused.target}: {refused.reason}") from None
            first = host_spawn.fallback_after_refusal(self.ctx, refused.target) if refused.program_denial else None
            if first is not None:  # pkgconf after pkg-config: granting pkg-config is the fix, said once
                denial = self.ctx.deny("process-spawn", refused.target, f"{refused.reason} (the crate's fallback "
                                       f"after {first} was refused: grant {first})", fatal=False)
                raise HostCallError(abi.E_DENIED, denial.render(self.ctx.crate, self.ctx.version)) from None
            fix = host_spawn.suggest(self.ctx, refused.target) if refused.program_denial else ""
            denial = self.ctx.deny("process-spawn", refused.target, refused.reason, fix)
            raise HostCallError(abi.E_DENIED, denial.render(self.ctx.crate, self.ctx.version)) from None
        except reaper.RunEnded as ended:
            raise HostCallError(abi.E_IO, f"cratecage: could not start {request.program}: {ended}") from None
        except OSError as err:
            raise HostCallError(abi.E_IO, f"cratecage: could not start {request.program}: {err}") from None
        self.started.append(child)
        self.ctx.spawns.append(Spawn(program, tuple(child.argv_shown)))
        return child

    def abi_stdin_write(self, mem: GuestMemory, handle: int, buf: int, length: int) -> int:
        child = self._child(handle)
        if child.request.stdin != abi.STDIO_PIPED:
            raise HostCallError(abi.E_INVALID, "cratecage: the child's stdin is not piped")
        data = mem.read(buf, length)
        return self._blocking(lambda: child.write_stdin(data, self.ctx.deadline))

    def abi_stdin_close(self, mem: GuestMemory, handle: int) -> int:
        self._child(handle).close_stdin()
        return 0

    def abi_read(self, mem: GuestMemory, handle: int, stream: int, buf: int, cap: int) -> int:
        child = self._child(handle)
        modes = {abi.STREAM_STDOUT: child.request.stdout, abi.STREAM_STDERR: child.request.stderr}
        if modes.get(stream) != abi.STDIO_PIPED:
            raise HostCallError(abi.E_INVALID, "cratecage: that stream of the child is not piped")
        chunk = self._blocking(lambda: child.read(stream, cap & _U32, self.ctx.deadline))
        mem.write(buf, chunk)
        return len(chunk)

    def abi_wait(self, mem: GuestMemory, handle: int, status_out: int) -> int:
        child = self._child(handle)
        status = self._blocking(lambda: child.wait(self.ctx.deadline))
        mem.write(status_out, abi.encode_status(*status))
        return 0

    def abi_try_wait(self, mem: GuestMemory, handle: int, status_out: int) -> int:
        status = self._child(handle).try_wait()
        if status is None:
            return 0
        mem.write(status_out, abi.encode_status(*status))
        return 1

    def abi_kill(self, mem: GuestMemory, handle: int) -> int:
        self._child(handle).kill()
        return 0

    def abi_release(self, mem: GuestMemory, handle: int) -> int:
        self._child(handle)
        del self.children[handle]
        return 0

    # -- children ------------------------------------------------------------------------------------------

    def _add(self, child: DeferredChild | RealChild) -> int:
        if len(self.children) >= MAX_CHILDREN:
            raise HostCallError(abi.E_IO, f"cratecage: more than {MAX_CHILDREN} live child processes")
        handle = self._next_handle
        self._next_handle += 1
        self.children[handle] = child
        return handle

    def _blocking(self, call: Callable[[], T]) -> T:
        """A call on a child that may wait (a real one), ended by the run's deadline or a closed pipe."""
        try:
            return call()
        except TimeoutError:
            raise HostCallError(abi.E_IO, "cratecage: the build script's time is up") from None
        except (BrokenPipeError, ValueError):
            raise HostCallError(abi.E_IO, "cratecage: the child's stdin is closed (broken pipe)") from None

    def close(self) -> None:
        """The end of the run: kill what is still running, probes and their descendants too (shim.confine.reaper),
        and report children that overran."""
        if not self.started:
            reaper.kill_all()
            return
        from shim.host import spawn as host_spawn

        host_spawn.sweep(self.started)
        host_spawn.watched_execs(self.ctx)
        for child in self.started:
            for problem in child.problems():
                self.ctx.deny("process-spawn", " ".join(child.argv_shown)[:200], problem)

    def _child(self, handle: int) -> DeferredChild | RealChild:
        child = self.children.get(handle)
        if child is None:
            raise HostCallError(abi.E_INVALID, f"cratecage: no child with handle {handle}")
        return child


@record
class Sinks:
    """Where a real child's inherited streams go: the guest's own stdout (captured, then filtered as
    directives) and stderr (forwarded), each under the run's output limits."""

    stdout: Callable[[bytes], None]
    stderr: Callable[[bytes], None]


def _discard_sinks() -> Sinks:
    return Sinks(lambda data: None, lambda data: None)


HostFunction = Callable[..., int]


def guarded(table: ProcessTable, name: str, owner: object | None = None) -> HostFunction:
    """The host function for import `name`: the method `abi_<name>` of `owner` (default: the table), with
    the caller's memory, and every failure turned into an error code plus the table's last_error message
    (one per run: the guest asks `last_error` whichever import failed)."""
    method = getattr(table if owner is None else owner, f"abi_{name}")

    def call(caller: wasmtime.Caller, *args: int) -> int:
        try:
            return method(GuestMemory(caller), *args)
        except HostCallError as err:
            table.last_error = err.message
            return err.code
        except Exception as err:  # never into wasmtime: its LAST_EXCEPTION is process-global
            table.last_error = f"cratecage: internal error in host function {name}: {err!r}"
            return abi.E_IO

    return call


def define_imports(linker: wasmtime.Linker, imports: dict[str, tuple[int, int]],
                   call_for: Callable[[str], Callable[..., int]]) -> None:
    """Define each import of an ABI table (all i32) under `abi.IMPORT_MODULE`, with the caller."""
    i32 = wasmtime.ValType.i32()
    for name, (params, results) in imports.items():
        ty = wasmtime.FuncType([i32] * params, [i32] * results)
        linker.define_func(abi.IMPORT_MODULE, name, ty, call_for(name), access_caller=True)


def define(linker: wasmtime.Linker, ctx: RunContext) -> ProcessTable:
    """Define every import of `abi.IMPORTS` in `linker` for one run; returns the run's table."""
    table = ProcessTable(ctx)
    define_imports(linker, abi.IMPORTS, lambda name: guarded(table, name))
    return table
