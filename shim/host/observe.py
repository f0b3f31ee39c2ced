"""The host side of `report`: what the guest says it tried and was refused.

wasi-libc resolves paths against the preopened directories inside the guest, so a read outside them fails
without any host call, and the host never sees which environment variables the guest looked up. The std
facade (shim/rust/facade/src/observe.rs) therefore reports each failed file system access and each lookup
that found nothing to the import `report` (shim/host/abi.py documents the payloads); `define` registers it, and
every report becomes a `runctx.Observation` in `ctx.observations`, for the runner to turn into denials a
person can act on. This is observation only: the preopens still enforce, so nothing here decides anything.

In warn mode the facade reports successful reads and lookups too (shim/host/abi.py). A success inside the run's
own directories (package, OUT_DIR, temp dir) is dropped on arrival, uncounted: every run may use them, and
a script that walks its own sources must not use up the cap before it reads what matters.

The reports are guest data, as trustworthy as the build script. So: every pointer is bounds-checked (via
host_process.GuestMemory), a malformed report is dropped with E_INVALID, each distinct observation is
recorded once, and at most MAX_OBSERVATIONS per run; after that `report` answers REPORT_STOP and the guest
stops calling. Like every host function, it never raises into wasmtime (host_process explains why).
"""

from __future__ import annotations

from typing import Callable, Final

import wasmtime

from shim.host import abi
from shim.host.context import Observation, RunContext
from shim.host.process import GuestMemory, HostCallError, define_imports
from shim.lexical import inside

MAX_OBSERVATIONS: Final = 10_000  # per run; further reports are answered REPORT_STOP and dropped
_U32: Final = 0xFFFFFFFF


class Observer:
    """The observations of one run. `abi_report` is the host function; `define` wraps it so that nothing
    raises into wasmtime."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.seen: set[Observation] = set(ctx.observations)
        self.dropped = 0  # reports refused because the cap was reached (or malformed)

    def abi_report(self, mem: GuestMemory, kind: int, buf: int, length: int) -> int:
        if len(self.ctx.observations) >= MAX_OBSERVATIONS:
            self.dropped += 1
            return abi.REPORT_STOP
        if length & _U32 > abi.MAX_REPORT:
            raise HostCallError(abi.E_INVALID, "cratecage: report too large")
        try:
            observation = abi.decode_report(kind, mem.read(buf, length))
        except abi.ReportError as err:
            raise HostCallError(abi.E_INVALID, f"cratecage: malformed report: {err}") from None
        if observation.succeeded and self._own(observation):
            return 0
        if observation not in self.seen:
            self.seen.add(observation)
            self.ctx.observations.append(observation)
        return 0 if len(self.ctx.observations) < MAX_OBSERVATIONS else abi.REPORT_STOP

    def _own(self, observation: Observation) -> bool:
        """Whether a file system observation is of the run's own directories."""
        ctx = self.ctx
        return observation.kind == "fs" and any(d and inside(observation.target, d)
                                                for d in (ctx.package_dir, ctx.out_dir, ctx.tmp_dir))


def guarded(observer: Observer, name: str) -> Callable[..., int]:
    """The host function for import `name`: the observer's method, with the caller's memory, and every
    failure turned into an error code (the guest ignores it: a report has no one to tell)."""
    method = getattr(observer, f"abi_{name}")

    def call(caller: wasmtime.Caller, *args: int) -> int:
        try:
            return method(GuestMemory(caller), *args)
        except HostCallError as err:
            observer.dropped += 1
            return err.code
        except Exception:  # never into wasmtime: its LAST_EXCEPTION is process-global
            observer.dropped += 1
            return abi.E_IO

    return call


def define(linker: wasmtime.Linker, ctx: RunContext) -> Observer:
    """Define the imports of `abi.OBSERVE_IMPORTS` in `linker` for one run; returns the run's observer."""
    observer = Observer(ctx)
    define_imports(linker, abi.OBSERVE_IMPORTS, lambda name: guarded(observer, name))
    return observer
