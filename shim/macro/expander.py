"""One macro crate's guest module in the sandbox, expanding request after request (shim/macro/PROTOCOL.md).

The macro server (shim.macro.server) owns one `Expander` per process: one rustc process, one macro crate.
It instantiates the module once through the shared sandbox (shim.sandbox.engine.GuestRun: module cache,
host functions, preopens, limits) and keeps the instance, so `static`s behave as natively; every call into
the guest (`cratecage_alloc`, `cratecage_expand`) runs under a time budget of its own (the epoch deadline
and the watchdog) and the store's memory limit. A trap drops the instance (it leaves the guest's stack
pointer and locks as they were): the next expansion instantiates afresh. A trap after the guest's
`cratecage_macro.panic` is a panic (status 1, its message as it is); any other trap, a limit, a malformed
reply or a fatal denial is a refusal (status 2, `cratecage:` lines naming the macro crate and the crate
being compiled).

Text the guest chose never passes for cratecage's own (whose `cratecage:` lines offer entries to paste into
the policy, the one way out of the sandbox): each line it prints (stdout and stderr, its programs' too)
reaches rustc's stderr escaped (shim.untrusted.shown) and marked as the macro crate's (`[<crate> proc
macro] `); a panic message is shown as natively up to a line that could read as cratecage's, marked
the same way with all that follows; and a refusal (status 2) is the sandbox's word only: one the guest
sends becomes one escaped line of the server's, naming the crate.

What the guest may do is `[permissions.macro.<package>]` (shim.sandbox.enforce) over the defaults of
`macro_context`: no files (a private temp dir only), no network, no programs, and the variables cargo sets
for the crate being compiled.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import threading
import time
from pathlib import Path

from shim.host.context import RunContext
from shim.limits import Limits
from shim.sandbox.engine import GuestRun, check_leftovers, leftovers_before

if False:  # typing only (importing typing costs ~10 ms of every server's start)
    from typing import Final, Mapping

    from shim.policy import Grant

ABI_VERSION: Final = 1
IMPORT_MODULE: Final = "cratecage_macro"
REQUEST_MAGIC: Final = 0x314D4343  # "CCM1"
REPLY_MAGIC: Final = 0x31524343  # "CCR1"
OK, PANIC, REFUSED = 0, 1, 2
KINDS: Final = ("derive", "function-like", "attribute")  # the request's kind byte
EXPORTS: Final = ("memory", "cratecage_macro_abi", "cratecage_alloc", "cratecage_expand")
INITIALIZE = "cratecage_initialize"  # the guest glue's constructors, where the target has no `_initialize`
MAX_MESSAGE: Final = 64 << 10  # of a panic message the guest hands over
# Of a reply: within the guest's memory limit, a reply could still cost rustc (the trampoline rebuilds every
# token, several times its size) and this server (its copies) gigabytes beyond it. The largest expansions of
# real crates are a few MiB; a request has the same bound (shim.macro.server.MAX_FRAME).
MAX_REPLY: Final = 256 << 20
MACRO_TIME_S: Final = 60.0  # per expansion, unless CRATECAGE_LIMIT_TIME or the grant's `limits` say otherwise
_U32: Final = 0xFFFFFFFF
_CONTROL: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b.|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]",
                             re.DOTALL)  # escape sequences, controls, invisible format characters


def reply(status: int, message: str) -> bytes:
    """A panic (1) or refusal (2) reply."""
    text = message.encode("utf-8", "replace")
    return struct.pack("<IBI", REPLY_MAGIC, status, len(text)) + text


def _message_of(answer: bytes) -> str:
    """The `str` of a status 1 or 2 reply (what is there of it, if the guest got its length wrong)."""
    size = struct.unpack_from("<I", answer, 5)[0] if len(answer) >= 9 else 0
    return answer[9:9 + min(size, MAX_MESSAGE)].decode("utf-8", "replace")


def request_head(request: bytes) -> tuple[str, str] | None:
    """(kind, macro name) of a request, or None where it is not one (wrong magic, kind or name)."""
    if len(request) < 9:
        return None
    magic, kind, size = struct.unpack_from("<IBI", request)
    if magic != REQUEST_MAGIC or kind >= len(KINDS) or 9 + size > len(request):
        return None
    try:
        return KINDS[kind], request[9:9 + size].decode()
    except UnicodeDecodeError:
        return None


def macro_environment(environ: Mapping[str, str], tmp_dir: str) -> dict[str, str]:
    """What a macro sees without a grant: the variables cargo sets for the crate being compiled (from rustc's
    environment, the server's own), that crate's build script's `rustc-env` values, and its temp dir."""
    from shim.cargo.env import COMPILE_ENV, script_rustc_env

    env = {name: environ[name] for name in COMPILE_ENV if name in environ}
    env.update({k: v for k, v in script_rustc_env(environ.get("OUT_DIR")).items() if k in environ})
    env["TMPDIR"] = tmp_dir
    return env


def macro_context(environ: Mapping[str, str], *, package: str, version: str, rustc: str, sysroot: str,
                  tmp_dir: str, host_dir: str = "") -> RunContext:
    """The context of a macro crate's expansions in one compile: no package directory, no OUT_DIR (nothing
    preopened but the temp dir), the compiled crate's variables visible by default."""
    env = macro_environment(environ, tmp_dir)
    consumer = f"{environ.get('CARGO_PKG_NAME', '?')} {environ.get('CARGO_PKG_VERSION', '?')}"
    visible = frozenset(env)
    return RunContext(crate=package, version=version, package_dir="", out_dir="", tmp_dir=tmp_dir, env=env,
                      host_env=dict(environ), rustc=rustc, sysroot=sysroot, host_dir=host_dir,
                      visible_by_default=visible.__contains__, kind="macro",
                      subject=f"proc macro crate {package} {version} (compiling {consumer})")


def macro_limits(grant: Grant | None, environ: Mapping[str, str]) -> Limits:
    """The build scripts' limits (shim.sandbox.enforce.limits), but a minute per expansion by default."""
    from shim.limits import set_in_env
    from shim.record import replace
    from shim.sandbox import enforce

    limits = enforce.limits(grant, environ)
    if not set_in_env("time_s", environ) and (grant is None or grant.limits.time_s is None):
        limits = replace(limits, time_s=MACRO_TIME_S)
    return limits


class Expander:
    """The guest module of one macro crate, instantiated on the first expansion and after every trap."""

    def __init__(self, ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                 grant: Grant | None) -> None:
        from shim.sandbox import enforce

        self.ctx = ctx
        self.grant = grant
        self.consumer = f"{ctx.host_env.get('CARGO_PKG_NAME', '?')} {ctx.host_env.get('CARGO_PKG_VERSION', '?')}"
        self.run = GuestRun(ctx, wasm, limits, module_cache, enforce.preopens(grant, ctx), what="proc macro crate",
                            argv=[ctx.crate])
        self.run.extra_imports.append(self._define_panic)
        self.run.forward_stderr = self._guest_output
        self.output_lock = threading.Lock()
        self.partial = bytearray()  # the guest's last output line, until its newline (or the expansion's end)
        self.before = leftovers_before(ctx)  # the owner's own links and special files in writable grants
        self.live = False
        self.panic_message: str | None = None
        self.expansions = 0
        self.refused = 0
        self.seconds = 0.0
        self.start_seconds = 0.0  # instantiating (the first time: loading the module too) and initializing
        self.guest_seconds = 0.0  # inside `cratecage_expand`: the macro itself, decoding and encoding in wasm

    # -- the import `cratecage_macro.panic` ---------------------------------------------------------------
    def _define_panic(self, linker) -> None:  # type: ignore[no-untyped-def]
        import wasmtime

        i32 = wasmtime.ValType.i32()
        linker.define_func(IMPORT_MODULE, "panic", wasmtime.FuncType([i32, i32], []), self._on_panic,
                           access_caller=True)

    def _on_panic(self, caller, ptr: int, length: int) -> None:  # type: ignore[no-untyped-def]
        """Keep the message (bounds-checked, capped); never raise into wasmtime."""
        try:
            memory = caller.get("memory")
            start, size = ptr & _U32, min(length & _U32, MAX_MESSAGE)
            if start + size > memory.data_len(caller):
                self.panic_message = "Box<dyn Any>"
                return
            self.panic_message = bytes(memory.read(caller, start, start + size)).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - a host function must not raise into the guest
            self.panic_message = "Box<dyn Any>"

    # -- expanding ----------------------------------------------------------------------------------------
    def expand(self, request: bytes, macro: str) -> bytes:
        """The reply to one request (already known to be one: `request_head`)."""
        from shim.sandbox import enforce

        observed, denied = len(self.ctx.observations), len(self.ctx.denials)
        self.run.subject = f"proc macro `{macro}` of {self.ctx.crate} {self.ctx.version} (compiling {self.consumer})"
        self.panic_message = None
        started = time.monotonic()
        try:
            answer = self._expand(request)
        finally:
            self.seconds += time.monotonic() - started
            self.expansions += 1
            self._forward_stdout()
        enforce.observed_denials(self.ctx, self.grant, observations=self.ctx.observations[observed:])
        new = [d for d in self.ctx.denials[denied:] if not d.expected]  # the policy's own denies: audit only
        fatal = [d for d in new if d.fatal] if not enforce.warn_mode(self.grant) else []
        refused = answer[4:5] == bytes([REFUSED])
        if fatal:
            count = f"{len(fatal)} denied request{'s' if len(fatal) > 1 else ''}"
            head = (answer[9:].decode("utf-8", "replace") if refused else
                    f"cratecage: {self.run.subject} failed: {count}, listed below")
            answer = reply(REFUSED, "\n".join([head, *(d.render_for(self.ctx.named()) for d in new)]))
        else:  # reported only (a variable looked up in vain, warn mode): where rustc's diagnostics go
            for denial in new:
                print(denial.render_for(self.ctx.named()), file=sys.stderr, flush=True)
        if fatal or refused:
            self.refused += 1
        return answer

    def _expand(self, request: bytes) -> bytes:
        if not self.live:
            problem = self._start()
            if problem:
                return reply(REFUSED, problem)
        run = self.run
        outcome = run.call("cratecage_alloc", len(request))
        if not self._returned(outcome):
            return self._failed(outcome.message)
        ptr = int(run.value) & _U32  # type: ignore[call-overload]
        if ptr + len(request) > run.memory.data_len(run.store):
            return self._broken("cratecage_alloc returned a buffer outside its memory")
        run.memory.write(run.store, request, ptr)
        started = time.monotonic()
        outcome = run.call("cratecage_expand", ptr, len(request))
        self.guest_seconds += time.monotonic() - started
        if not self._returned(outcome):
            return self._failed(outcome.message)
        value = int(run.value) & 0xFFFF_FFFF_FFFF_FFFF  # type: ignore[call-overload]
        start, size = value >> 32, value & _U32
        if size > MAX_REPLY:
            self._drop("")
            return reply(REFUSED, f"cratecage: {self.run.subject} returned {size} bytes of tokens, over the "
                                  f"{MAX_REPLY >> 20} MiB a reply may hold; no expansion needs that much")
        if start + size > run.memory.data_len(run.store):
            return self._broken("its reply lies outside its memory")
        answer = bytes(run.memory.read(run.store, start, start + size))
        if len(answer) < 5 or struct.unpack_from("<I", answer)[0] != REPLY_MAGIC or answer[4] > REFUSED:
            return self._broken("its reply is not a protocol-1 reply (shim/macro/PROTOCOL.md)")
        if answer[4] == PANIC:  # the glue's own encoding of a panic it caught: the same rule as the import's
            return reply(PANIC, self._unlike_ours(_message_of(answer)))
        if answer[4] == REFUSED:
            from shim.untrusted import shown

            said = _message_of(answer).removeprefix("cratecage: ")
            return reply(REFUSED, f"cratecage: {self.run.subject}: its module refused the request: {shown(said)}")
        return answer

    def _returned(self, outcome) -> bool:  # type: ignore[no-untyped-def]
        return self.run.result[0] == "exit" and self.run.value is not None and not outcome.message

    def _start(self) -> str:
        """Instantiate (and `_initialize`) the module and check its ABI: "" or the refusal's message."""
        run = self.run
        started = time.monotonic()
        from shim.sandbox.engine import StartLimit

        try:
            return self._instantiate(run)
        except StartLimit as err:
            return self._drop(str(err) + self._limit_hint(str(err)))
        finally:
            self.start_seconds += time.monotonic() - started

    def _instantiate(self, run: GuestRun) -> str:
        run.instantiate()
        missing = [name for name in EXPORTS if name not in run.exports()]
        if missing:
            return (f"cratecage: {self.ctx.named()}: its wasm module does not export {', '.join(missing)}; "
                    "it was not built by this cratecage: run `cargo clean -p` on it and build again")
        exported = run.exports()
        # The toolchain's reactor start-up (`_initialize`, newer wasm32-wasip1 targets), else the one the
        # guest glue defines: never both, the constructors run once (shim/rust/proc_macro, cratecage.rs).
        start = "_initialize" if "_initialize" in exported else INITIALIZE
        for name in (start, "cratecage_macro_abi"):
            if name not in exported:
                continue
            outcome = run.call(name)
            if outcome.message or outcome.exit_code != 0 or run.result[0] != "exit":
                return self._drop(outcome.message or f"cratecage: {run.subject} failed in {name} "
                                                     f"(exit code {outcome.exit_code})")
        if run.value != ABI_VERSION:
            return self._drop(f"cratecage: {self.ctx.named()}: its wasm module speaks macro protocol "
                              f"{run.value}, this cratecage {ABI_VERSION}: run `cargo clean` and build again")
        self.live = True
        return ""

    def _failed(self, message: str) -> bytes:
        """The reply for a call that did not return: the guest's panic, or the sandbox's refusal."""
        panicked = self.panic_message
        self._drop("")
        if panicked is not None and self.run.result[0] == "trap" and not self.run.interrupt.reason:
            return reply(PANIC, self._unlike_ours(panicked))
        if self.run.result[0] == "exit" and self.run.value is None and not message:
            message = (f"cratecage: {self.run.subject} exited (code {self.run.result[1]}) instead of "
                       "returning a reply")
        return reply(REFUSED, message + self._limit_hint(message))

    def _broken(self, what: str) -> bytes:
        self._drop("")
        return reply(REFUSED, f"cratecage: {self.run.subject}: {what}; the module was not built by this "
                              "cratecage's proc_macro: run `cargo clean` and build again")

    def _drop(self, message: str) -> str:
        """Forget the instance (the next expansion makes a fresh one) and what it had open."""
        self.live = False
        self.run.instance = None
        if self.run.net is not None:
            self.run.net.close_all()
        return message

    def _limit_hint(self, message: str) -> str:
        """Where a limit stopped it (shim.sandbox.engine names the variable): how to raise it for this crate."""
        if "CRATECAGE_LIMIT_" not in message:
            return ""
        return (f"; the limits apply to each expansion: raise them with `limits` in "
                f"[permissions.macro.{self.ctx.crate}] (cratecage.toml)")

    def _forward_stdout(self) -> None:
        """What the guest printed goes to stderr (the server's stdout carries replies only), after what it
        wrote there; an unfinished line ends with the expansion."""
        self._end_line()
        if self.run.stdout:
            self._guest_output(bytes(self.run.stdout))
            self.run.stdout.clear()
            self._end_line()

    def _end_line(self) -> None:
        with self.output_lock:
            rest, self.partial = bytes(self.partial), bytearray()
        if rest:
            os.write(2, self._marked(rest))

    def _guest_output(self, data: bytes) -> None:
        """Each complete line the guest (or a program it started) printed, marked and escaped, to stderr (in
        time linear in what it printed, however it splits its writes)."""
        with self.output_lock:
            done, newline, rest = data.rpartition(b"\n")
            if not newline:
                self.partial += rest
                return
            lines = (bytes(self.partial) + done).split(b"\n")
            self.partial = bytearray(rest)
        batch: list[bytes] = []
        size = raw = 0
        for line in lines:  # in batches: marks and escapes make a flood of short lines many times larger
            batch.append(self._marked(line))
            size, raw = size + len(batch[-1]), raw + len(line) + 1
            if size >= 1 << 20:
                self._write_marked(batch, size - raw)
                batch, size, raw = [], 0, 0
        self._write_marked(batch, size - raw)

    def _write_marked(self, batch: list[bytes], added: int) -> None:
        """To stderr; what the marks and escapes `added` counts against the guest's stderr limit, so a flood of
        empty lines cannot reach the log many times larger: past it, the rest is dropped and the guest stopped
        as the engine stops it."""
        run = self.run
        if not batch or run.stderr_bytes > run.limits.stderr:
            return
        run.stderr_bytes += max(0, added)
        if run.stderr_bytes > run.limits.stderr:
            run.stop(f"printed more than {run.limits.stderr} bytes to stderr (CRATECAGE_LIMIT_STDERR)")
        os.write(2, b"".join(batch))

    def _marked(self, line: bytes) -> bytes:
        from shim.untrusted import shown

        text = line.decode("utf-8", "replace").removesuffix("\r").replace("\t", "    ")
        return f"{self._mark()}{shown(text)}\n".encode()

    def _mark(self) -> str:
        return f"[{self.ctx.crate} proc macro] "

    def _unlike_ours(self, message: str) -> str:
        """A panic message as the guest wrote it, but from its first line that could read as cratecage's own
        (saying `cratecage` or `permissions.` in any case, once terminal control sequences are taken out: a `\r`
        or an escape could move it to the start of what is shown): that line and the ones after it (an entry
        to paste) are escaped and marked as the macro crate's."""
        from shim.untrusted import shown

        lines = message.split("\n")
        for i, line in enumerate(lines):
            plain = _CONTROL.sub("", line).lower()
            if "cratecage" in plain or "permissions." in plain:
                return "\n".join([*lines[:i], *(self._mark() + shown(rest) for rest in lines[i:])])
        return message

    def close(self) -> None:
        """After the last expansion: nothing it started outlives the server (shim.confine.reaper), and what it
        may not leave in a writable grant (links out of it, FIFOs) is removed, each a denial on stderr and in
        the audit log (no request is left to refuse)."""
        if self.run.net is not None:
            self.run.net.close_all()
        denied = len(self.ctx.denials)
        self.run.close()
        check_leftovers(self.ctx, self.before, what="proc macros")
        for denial in self.ctx.denials[denied:]:
            print(denial.render_for(self.ctx.named()), file=sys.stderr, flush=True)
