"""The macro server: the process a trampoline starts to expand its macro crate's macros as WebAssembly.

One per (rustc process, macro crate), started on the first expansion through the launcher that
`write_launcher` leaves next to the guest module (a `#!python -S` file with everything baked in, run with
no arguments, rustc's environment and working directory: shim/macro/PROTOCOL.md). It reads framed
requests on its stdin and answers each with exactly one framed reply on its stdout (`u32 length` +
bytes), until EOF, when rustc is done:

  - stdout carries replies and nothing else. Before anything runs, the server takes the pipe for itself
    (`claim_pipes`: a private descriptor) and points fd 1 at stderr, so a stray `print`, a library's
    message or an inherited descriptor cannot corrupt the stream; fd 0 becomes /dev/null likewise, so a
    granted program never reads requests;
  - a frame the server cannot read (a length over `MAX_FRAME`) gets a refusal and ends the server; one that
    is no request (wrong magic or kind) gets a refusal and the server goes on; a torn frame at EOF ends it;
  - the expansions themselves are shim.macro.expander's: one instance reused, limits per expansion, the
    policy of `[permissions.macro.<package>]`;
  - a trampoline that goes away mid-expansion (rustc killed, or crashed) ends that expansion at once
    (`Hangup`: its pipes' ends close), not at the time limit: the server holds rustc's stderr, and cargo
    waits for that to close, so a server that spun on would hold the build and outlive rustc.

At exit, every process the guest started is ended (shim.confine.reaper: the server is a subreaper from
its first instantiation) and one audit record of the macro crate's expansions is appended to the build's
audit log (shim.sandbox.audit), next to the build scripts', for `cratecage audit`.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
from pathlib import Path

if False:  # typing only: importing typing costs ~10 ms of every server's start
    from typing import Final, Mapping

MAX_FRAME: Final = 256 << 20  # a request or reply; a crate's whole token stream is far smaller
HANGUP_REPEAT_S: Final = 0.2  # how often a stop is repeated while the expansion goes on (a call resets it)
GONE: Final = "stopped: the compile it was expanding for ended (rustc exited or was killed)"


def launcher_text(*, python: str, root: str, wasm: str, module_cache: str, package: str, version: str,
                  package_dir: str, state_dir: str, rustc: str, sysroot: str,
                  built_for: dict[str, str] | None = None) -> str:
    args = dict(wasm=wasm, module_cache=module_cache, package=package, version=version, package_dir=package_dir,
                state_dir=state_dir, rustc=rustc, sysroot=sysroot, built_for=built_for or {})
    return (
        f"#!{python} -S\n"
        f"# cratecage: the proc macros of {package} {version} run as WebAssembly in a sandbox; the module is\n"
        f"# {wasm}\n"
        "import sys\n"
        "sys.dont_write_bytecode = False\n"
        f"sys.path.insert(0, {root!r})\n"
        "from shim.macro.server import main_macro_server\n"
        f"main_macro_server(**{args!r})\n"
    )


def write_launcher(path: Path, *, wasm: str, module_cache: str, package: str, version: str, rustc: str,
                   sysroot: str, package_dir: str = "", state_dir: str = "",
                   built_for: Mapping[str, str] | None = None) -> None:
    """Leave the server's launcher at `path`. `package_dir` (the macro package's own directory) tells
    policy entries with `source = "registry"` whether they apply; `state_dir` is the build's
    `<build dir>/cratecage` (default: the one holding `wasm`, as shim.cargo.layout.module_path places it),
    where the audit log and each server's scratch directory go; `built_for` pins the workspace (and policy
    file) of the build compiling the macro crate (shim.cargo.workspace.child_env), for a server whose host
    is no cargo: an editor's proc-macro server (`policy_environ`)."""
    from shim.cargo import layout
    from shim.files import atomic_write

    root = str(Path(__file__).resolve().parent.parent.parent)  # the directory holding shim/
    atomic_write(path, launcher_text(python=sys.executable, root=root, wasm=wasm, module_cache=module_cache,
                                     package=package, version=version, package_dir=package_dir,
                                     state_dir=state_dir or layout.state_of_module(wasm), rustc=rustc,
                                     sysroot=sysroot, built_for=dict(sorted((built_for or {}).items()))),
                 mode=0o755)


def policy_environ(environ: Mapping[str, str], built_for: Mapping[str, str]) -> dict[str, str]:
    """The environment the policy is looked up with. Under cargo (rustc, rustdoc, clippy-driver, doctests)
    the expansion's own: the workspace is the outermost cargo's (shim.cargo.workspace). Where no cargo runs
    the host (rust-analyzer's proc-macro server loading the trampoline: its env says which crate it expands
    for, never which workspace is analysed, and a dependency's directory must never supply the policy),
    the workspace and policy file of the build that compiled this macro crate, which is the one
    rust-analyzer ran `cargo check` for, pinned in the launcher (`built_for`)."""
    from shim.cargo.workspace import ROOT_ENV, WorkspaceUnknown, find_workspace_root

    out = dict(environ)
    if not built_for or out.get(ROOT_ENV):
        return out
    try:
        find_workspace_root(out)
        return out
    except WorkspaceUnknown:
        pass
    out.update(built_for)
    return out


def claim_pipes() -> tuple[int, int]:
    """(requests, replies): private descriptors for the trampoline's pipes, never inherited; fd 0 becomes
    /dev/null and fd 1 the server's stderr."""
    requests, replies = os.dup(0), os.dup(1)  # os.dup's are not inheritable
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return requests, replies


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes, or None at EOF before them."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(struct.pack("<I", len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


class Server:
    """Serves one macro crate for one compile: the policy and the expander made on the first request."""

    def __init__(self, environ: dict[str, str], *, wasm: str, module_cache: str, package: str, version: str,
                 package_dir: str, state_dir: str, rustc: str, sysroot: str,
                 built_for: dict[str, str] | None = None) -> None:
        self.environ = environ
        self.built_for = built_for or {}
        self.wasm, self.module_cache, self.state_dir = wasm, module_cache, state_dir
        self.package, self.version, self.package_dir = package, version, package_dir
        self.rustc, self.sysroot = rustc, sysroot
        self.consumer = f"{environ.get('CARGO_PKG_NAME', '?')} {environ.get('CARGO_PKG_VERSION', '?')}"
        self.expander = None  # shim.macro.expander.Expander, made on the first request
        self.setup_error = ""  # why it could not be made: every request is refused with it
        self.run_dir = ""
        self.grant = None
        self.started = time.monotonic()
        self.setup_seconds = 0.0  # policy, run context, expander: before the first expansion
        self.answer_seconds = 0.0  # answering requests, setup included
        self.first_request = 0.0  # monotonic time it arrived

    def subject(self) -> str:
        return f"proc macro crate {self.package} {self.version} (compiling {self.consumer})"

    def answer(self, request: bytes) -> bytes:
        from shim.macro.expander import REFUSED, reply, request_head

        head = request_head(request)
        if head is None:
            return reply(REFUSED, f"cratecage: {self.subject()}: received a malformed request (not protocol 1 of "
                                  "shim/macro/PROTOCOL.md); the trampoline and this server are of different "
                                  "cratecage versions: run `cargo clean` and build again")
        if self.expander is None and not self.setup_error:
            started = time.monotonic()
            self.setup_error = self._setup()
            self.setup_seconds = time.monotonic() - started
        if self.setup_error:
            return reply(REFUSED, self.setup_error)
        return self.expander.expand(request, head[1])  # type: ignore[attr-defined]

    def _setup(self) -> str:
        """Make the expander: "" or the `cratecage:` line that refuses every request."""
        from shim.errors import CratecageError
        from shim.macro.expander import Expander, macro_context, macro_limits
        from shim.sandbox import enforce
        from shim.sandbox.engine import make_run_dir

        try:
            if not os.path.isfile(self.wasm):
                raise CratecageError(f"its wasm module {self.wasm} is missing",
                                     hint="run `cargo clean` and build again")
            self.run_dir = make_run_dir(self.state_dir)  # host/: the host's scratch; tmp/: the guest's TMPDIR
            host_dir, tmp_dir = os.path.join(self.run_dir, "host"), os.path.join(self.run_dir, "tmp")
            os.mkdir(host_dir, 0o700)
            os.mkdir(tmp_dir, 0o700)
            ctx = macro_context(self.environ, package=self.package, version=self.version, rustc=self.rustc,
                                sysroot=self.sysroot, tmp_dir=tmp_dir, host_dir=host_dir)
            grant, _policy = enforce.grant("macro", self.package, self.version,
                                           policy_environ(self.environ, self.built_for), self.package_dir or None)
            self.grant = grant
            ctx.env.update(enforce.env_extra(grant, ctx))
            ctx.grant = grant
            enforce.check_writable(grant, ctx, self.module_cache)
            self.expander = Expander(ctx, Path(self.wasm), macro_limits(grant, self.environ), Path(self.module_cache),
                                     grant)
            return ""
        except CratecageError as err:  # a malformed policy, a grant of build state: every request is refused
            text = err.render()[len("cratecage: "):]
            return f"cratecage: {text}" if text.startswith(self.subject()) else f"cratecage: {self.subject()}: {text}"

    def stop(self, reason: str) -> None:
        """Stop the expansion in progress (from the Hangup thread)."""
        expander = self.expander
        if expander is not None:
            expander.run.stop(reason)

    def close(self) -> None:
        """End what the guest started, append the audit record, remove the scratch directory."""
        import shutil

        expander = self.expander
        try:
            if expander is not None:
                expander.close()
                from shim.sandbox import audit

                message = f"{expander.refused} of {expander.expansions} expansions refused" if expander.refused else ""
                audit.record(Path(self.state_dir), expander.ctx, self.grant, 1 if expander.refused else 0, message,
                             expander.seconds, expansions=expander.expansions, consumer=self.consumer)
        finally:
            if self.run_dir:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            self._trace()

    def _trace(self) -> None:
        """Where this server's time went, one `macro-server` event in the trace (CRATECAGE_TRACE, for
        `make bench`): seconds from the process's start to `main_macro_server` (Python and the launcher;
        /proc's clock ticks), from there to the first request, in setup, in (re)instantiating the module, in
        the guest's `cratecage_expand`, answering requests in all, the whole life, and its cpu time (user and
        system, with its children's)."""
        from shim import trace

        if not os.environ.get(trace.TRACE_ENV):
            return
        expander = self.expander
        now = time.monotonic()
        trace.event(os.environ, kind="macro-server", crate=self.package, consumer=self.consumer,
                    expansions=expander.expansions if expander else 0,
                    boot_s=round(_since_process_start(self.started), 4),
                    idle_before_first_s=round(self.first_request - self.started, 4) if self.first_request else None,
                    setup_s=round(self.setup_seconds, 4),
                    instantiate_s=round(expander.start_seconds, 4) if expander else 0.0,
                    guest_s=round(expander.guest_seconds, 4) if expander else 0.0,
                    answer_s=round(self.answer_seconds, 4), life_s=round(now - self.started, 4),
                    cpu_s=round(sum(os.times()[:4]), 4))


def _since_process_start(monotonic: float) -> float:
    """Seconds from this process's start (fork/exec, /proc/self/stat, in clock ticks) to `monotonic`."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of the whole line
        return time.clock_gettime(time.CLOCK_BOOTTIME) - (time.monotonic() - monotonic) - start
    except (OSError, ValueError, IndexError):
        return 0.0


class Hangup:
    """Watches the trampoline's ends of the pipes: when rustc is gone (the request pipe has no writer, or the
    reply pipe no reader: poll reports POLLHUP/POLLERR, whatever it was asked), the expansion in progress is
    stopped as a limit stops it, and stopped again every HANGUP_REPEAT_S until it returns (each call into the
    guest starts with a fresh budget). Between expansions there is nothing to stop: the loop reads EOF."""

    def __init__(self, requests: int, replies: int) -> None:
        self.lock = threading.Lock()
        self.current: Server | None = None  # the server while it answers a request
        self.gone = False
        threading.Thread(target=self._watch, args=(requests, replies), daemon=True, name="hangup").start()

    def _watch(self, requests: int, replies: int) -> None:
        import select

        poller = select.poll()
        for fd in (requests, replies):
            poller.register(fd, 0)  # POLLHUP, POLLERR and POLLNVAL are reported without being asked for
        while not poller.poll():
            pass
        with self.lock:
            self.gone = True
        while True:
            with self.lock:
                if self.current is not None:
                    self.current.stop(GONE)
            time.sleep(HANGUP_REPEAT_S)

    def begin(self, server: Server) -> bool:
        """Whether to answer: not once rustc is gone."""
        with self.lock:
            self.current = server
            return not self.gone

    def end(self) -> None:
        with self.lock:
            self.current = None


def serve(server: Server, requests: int, replies: int) -> int:
    """Answer frames until EOF (or rustc gone); the exit code."""
    from shim.macro.expander import REFUSED, reply

    hangup = Hangup(requests, replies)
    while True:
        header = read_exactly(requests, 4)
        if header is None:
            return 0  # EOF (a torn header too): rustc is done
        (size,) = struct.unpack("<I", header)
        if size > MAX_FRAME:
            write_frame(replies, reply(REFUSED, f"cratecage: {server.subject()}: received a frame of {size} bytes, "
                                                f"over {MAX_FRAME}: the stream is not the macro protocol's; "
                                                "run `cargo clean` and build again"))
            return 2
        request = read_exactly(requests, size)
        if request is None:
            return 0
        started = time.monotonic()
        server.first_request = server.first_request or started
        try:
            if not hangup.begin(server):
                return 0
            answer = server.answer(request)
        except Exception as err:  # noqa: BLE001 - the trampoline gets its one reply, rustc one line
            if os.environ.get("CRATECAGE_DEBUG"):
                import traceback

                traceback.print_exc()
            answer = reply(REFUSED, f"cratecage: internal error in the macro server of {server.subject()}: "
                                    f"{type(err).__name__}: {err}")
        finally:
            hangup.end()
        server.answer_seconds += time.monotonic() - started
        if hangup.gone:
            return 0  # nobody reads the reply
        write_frame(replies, answer)


def main_macro_server(**baked: str | dict[str, str]) -> None:
    """Entry from the launcher. Never returns: exits when rustc closes the pipe (os._exit, see wasmtime-py.md
    §9, after every child is ended and the audit record written)."""
    requests, replies = claim_pipes()
    from shim.startup import enable_site_packages

    enable_site_packages()
    server = Server(dict(os.environ), **baked)
    code = 0
    try:
        code = serve(server, requests, replies)
    except BrokenPipeError:  # rustc went away mid-reply
        code = 0
    except Exception as err:  # noqa: BLE001 - one line on stderr, never a traceback on the stream
        if os.environ.get("CRATECAGE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"cratecage: internal error in the macro server of {server.subject()}: {type(err).__name__}: {err}",
              file=sys.stderr)
        code = 101
    finally:
        try:
            server.close()
        except Exception as err:  # noqa: BLE001
            print(f"cratecage: {server.subject()}: ending its macro server: {type(err).__name__}: {err}",
                  file=sys.stderr)
        sys.stderr.flush()
    os._exit(code)
