"""The host side of the process ABI, called from a real wasm module (a WAT stand-in for the facade).

The module imports every function of `abi.IMPORTS` and exports a wrapper for each, so a test can pass
any pointer or handle a hostile guest could. shim.host.probe is replaced by a recording stand-in here (the
table's policy logic is what is under test); tests/toolchain/test_facade.py runs the real facade end to end.
"""

from __future__ import annotations

import struct
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import wasmtime

from shim.host import abi
from shim.host import process as host_process
from shim.host.context import RunContext

I32 = "i32"


def wat_module() -> str:
    """A module with a page of memory, importing each ABI function and exporting `call_<name>`."""
    lines = ["(module"]
    for name, (params, results) in abi.IMPORTS.items():
        sig = f"(param {' '.join([I32] * params)}) (result {' '.join([I32] * results)})"
        lines.append(f'  (import "{abi.IMPORT_MODULE}" "{name}" (func ${name} {sig}))')
    lines.append('  (memory (export "memory") 1)')
    for name, (params, _) in abi.IMPORTS.items():
        sig = f"(param {' '.join([I32] * params)}) (result i32)"
        body = " ".join(f"local.get {i}" for i in range(params))
        lines.append(f'  (func (export "call_{name}") {sig} {body} call ${name})')
    return "\n".join(lines + [")"])


@dataclass
class FakeProbe:
    """Stands in for shim.host.probe: programs named `rustc` are compiler requests."""

    exit_code: int = 0
    stdout: bytes = b"rustc 1.96.0\n"
    deny: bool = False
    runs: list[tuple[abi.SpawnRequest, bytes]] = field(default_factory=list)

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("shim.host.probe")

        class ProbeDenied(Exception):
            def __init__(self, target: str, reason: str, fix: str) -> None:
                super().__init__(reason)
                self.target, self.reason, self.fix = target, reason, fix

        @dataclass
        class ProbeResult:
            exit_code: int
            stdout: bytes

        def run_probe(ctx: RunContext, req: abi.SpawnRequest, stdin: bytes) -> ProbeResult:
            self.runs.append((req, stdin))
            if self.deny:
                raise ProbeDenied("--emit=link", "probes may not link", "drop --emit=link")
            return ProbeResult(self.exit_code, self.stdout)

        mod.ProbeDenied = ProbeDenied  # type: ignore[attr-defined]
        mod.ProbeResult = ProbeResult  # type: ignore[attr-defined]
        mod.is_compiler_request = lambda ctx, req: Path(req.program).name == "rustc"  # type: ignore[attr-defined]
        mod.run_probe = run_probe  # type: ignore[attr-defined]
        return mod


class Guest:
    """One instance of the WAT module with the host functions of one run."""

    def __init__(self, ctx: RunContext) -> None:
        engine = wasmtime.Engine()
        linker = wasmtime.Linker(engine)
        self.table = host_process.define(linker, ctx)
        self.store = wasmtime.Store(engine)
        self.instance = linker.instantiate(self.store, wasmtime.Module(engine, wat_module()))
        self.memory = self.instance.exports(self.store)["memory"]

    def call(self, name: str, *args: int) -> int:
        return self.instance.exports(self.store)[f"call_{name}"](self.store, *args)

    def put(self, ptr: int, data: bytes) -> int:
        self.memory.write(self.store, data, ptr)
        return len(data)

    def get(self, ptr: int, length: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def spawn(self, req: abi.SpawnRequest) -> int:
        return self.call("spawn", 1024, self.put(1024, abi.encode_request(req)))

    def last_error(self) -> str:
        length = self.call("last_error", 8192, 4096)
        return self.get(8192, length).decode()

    def read_all(self, handle: int, stream: int) -> bytes:
        out = b""
        while (n := self.call("read", handle, stream, 4096, 3)) > 0:
            out += self.get(4096, n)
        assert n == 0, self.last_error()
        return out

    def status(self, handle: int, fn: str = "wait") -> tuple[int, int, int]:
        rc = self.call(fn, handle, 16)
        kind, value = struct.unpack("<ii", self.get(16, 8))
        return rc, kind, value


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(crate="demo-sys", version="1.2.3", package_dir=str(tmp_path), out_dir=str(tmp_path),
                      tmp_dir=str(tmp_path / "tmp"), env={}, host_env={}, rustc="/usr/bin/rustc", sysroot="/usr")


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> FakeProbe:
    fake = FakeProbe()
    monkeypatch.setitem(sys.modules, "shim.host.probe", fake.module())
    return fake


@pytest.fixture
def guest(ctx: RunContext, probe: FakeProbe) -> Guest:
    return Guest(ctx)


def rustc(*args: str, stdin: int = abi.STDIO_INHERIT, stdout: int = abi.STDIO_PIPED) -> abi.SpawnRequest:
    return abi.SpawnRequest(program="/usr/bin/rustc", args=list(args), stdin=stdin, stdout=stdout,
                            stderr=abi.STDIO_PIPED)


# -- the table -------------------------------------------------------------------------------------------

def test_every_import_is_defined_with_its_arity(guest: Guest) -> None:
    assert set(guest.instance.exports(guest.store)) >= {f"call_{name}" for name in abi.IMPORTS}


def test_temp_dir_follows_the_string_convention(guest: Guest, ctx: RunContext) -> None:
    full = len(ctx.tmp_dir.encode())
    assert guest.call("temp_dir", 100, 5) == full
    assert guest.get(100, 5) == ctx.tmp_dir.encode()[:5]
    assert guest.call("temp_dir", 100, 0) == full


# -- refusals --------------------------------------------------------------------------------------------

def test_any_other_program_is_denied_with_a_message_naming_it(guest: Guest, ctx: RunContext) -> None:
    assert guest.spawn(abi.SpawnRequest(program="/bin/sh", args=["-c", "id"])) == abi.E_DENIED
    message = guest.last_error()
    assert message.startswith("cratecage:") and "/bin/sh" in message and "demo-sys" in message
    assert [(d.capability, d.target) for d in ctx.denials] == [("process-spawn", "/bin/sh")]
    assert "process-spawn" in ctx.denials[0].fix


@pytest.mark.parametrize("raw", [b"", b"\x01\x05\x00\x00\x00ab", b"\x02\x01\x00\x00\x00a", b"\x63\x00\x00\x00\x00",
                                 b"\x01\x01\x00\x00\x00x\x07\x01\x00\x00\x00\x09"])
def test_malformed_requests_are_invalid_and_deny_nothing(guest: Guest, ctx: RunContext, raw: bytes) -> None:
    guest.put(1024, raw)
    assert guest.call("spawn", 1024, len(raw)) == abi.E_INVALID
    assert guest.last_error().startswith("cratecage: malformed spawn request")
    assert ctx.denials == []


@pytest.mark.parametrize("name,args", [
    ("spawn", (65530, 100)), ("spawn", (-8, 4)), ("spawn", (0, host_process.MAX_REQUEST + 1)),
    ("temp_dir", (65535, 64)), ("temp_dir", (-1, 64)), ("temp_dir", (1 << 20, 10)),
])
def test_pointers_outside_memory_are_invalid_not_exceptions(guest: Guest, name: str, args: tuple[int, ...]) -> None:
    assert guest.call(name, *args) == abi.E_INVALID
    assert guest.last_error().startswith("cratecage:")


@pytest.mark.parametrize("name,args", [
    ("stdin_write", (7, 0, 1)), ("stdin_close", (7,)), ("read", (7, 1, 0, 1)), ("wait", (7, 0)),
    ("try_wait", (7, 0)), ("kill", (7,)), ("release", (7,)), ("read", (-1, 1, 0, 1)),
])
def test_unknown_handles_are_invalid(guest: Guest, name: str, args: tuple[int, ...]) -> None:
    assert guest.call(name, *args) == abi.E_INVALID
    assert "no child with handle" in guest.last_error()


def test_a_bug_in_the_policy_becomes_an_io_error(guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: RunContext, req: abi.SpawnRequest) -> bool:
        raise KeyError("oops")

    monkeypatch.setattr(sys.modules["shim.host.probe"], "is_compiler_request", broken)
    assert guest.spawn(rustc("-vV")) == abi.E_IO
    assert "internal error" in guest.last_error()


def test_a_module_without_memory_gets_invalid(ctx: RunContext, probe: FakeProbe) -> None:
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    host_process.define(linker, ctx)
    wat = (f'(module (import "{abi.IMPORT_MODULE}" "kill" (func $k (param i32) (result i32)))'
           f' (func (export "k") (result i32) i32.const 1 call $k))')
    store = wasmtime.Store(engine)
    instance = linker.instantiate(store, wasmtime.Module(engine, wat))
    assert instance.exports(store)["k"](store) == abi.E_INVALID


# -- deferred compiler children ----------------------------------------------------------------------------

def test_a_probe_runs_once_with_all_stdin_when_stdin_closes(guest: Guest, probe: FakeProbe) -> None:
    handle = guest.spawn(rustc("-", "--crate-name", "probe", stdin=abi.STDIO_PIPED))
    assert handle > 0 and probe.runs == []
    for part in (b"fn main() ", b"{}"):
        assert guest.call("stdin_write", handle, 64, guest.put(64, part)) == len(part)
    assert probe.runs == []
    assert guest.call("stdin_close", handle) == 0
    assert [stdin for _, stdin in probe.runs] == [b"fn main() {}"]
    assert guest.call("stdin_write", handle, 64, 1) == abi.E_IO
    assert guest.status(handle) == (0, abi.STATUS_EXITED, 0)
    assert len(probe.runs) == 1


@pytest.mark.parametrize("first", ["wait", "try_wait", "read"])
def test_waiting_or_reading_runs_the_probe(guest: Guest, probe: FakeProbe, first: str) -> None:
    handle = guest.spawn(rustc("-vV"))
    if first == "read":
        assert guest.read_all(handle, abi.STREAM_STDOUT) == probe.stdout
    else:
        assert guest.status(handle, first) == (1 if first == "try_wait" else 0, abi.STATUS_EXITED, 0)
    assert len(probe.runs) == 1 and probe.runs[0][0].args == ["-vV"]


def test_stdout_is_served_only_when_piped_and_stderr_is_empty(guest: Guest, probe: FakeProbe) -> None:
    piped = guest.spawn(rustc("--version"))
    assert guest.read_all(piped, abi.STREAM_STDOUT) == probe.stdout
    assert guest.read_all(piped, abi.STREAM_STDERR) == b""
    inherited = guest.spawn(rustc("--version", stdout=abi.STDIO_INHERIT))
    assert guest.call("read", inherited, abi.STREAM_STDOUT, 0, 16) == abi.E_INVALID
    assert guest.call("read", inherited, 9, 0, 16) == abi.E_INVALID


def test_a_denied_probe_exits_1_and_is_recorded(guest: Guest, probe: FakeProbe, ctx: RunContext) -> None:
    probe.deny = True
    handle = guest.spawn(rustc("--emit=link", "-"))
    assert guest.status(handle) == (0, abi.STATUS_EXITED, 1)
    assert guest.read_all(handle, abi.STREAM_STDOUT) == b""
    assert [(d.capability, d.target, d.fix) for d in ctx.denials] == [("rustc-probe", "--emit=link",
                                                                       "drop --emit=link")]


def test_exit_codes_and_signals_pass_through(guest: Guest, probe: FakeProbe) -> None:
    probe.exit_code = 3
    assert guest.status(guest.spawn(rustc("x.rs"))) == (0, abi.STATUS_EXITED, 3)
    probe.exit_code = -9
    assert guest.status(guest.spawn(rustc("y.rs"))) == (0, abi.STATUS_SIGNALED, 9)


def test_a_child_killed_before_it_ran_never_runs(guest: Guest, probe: FakeProbe) -> None:
    handle = guest.spawn(rustc("-vV"))
    assert guest.call("kill", handle) == 0
    assert guest.status(handle) == (0, abi.STATUS_SIGNALED, host_process.KILL_SIGNAL)
    assert probe.runs == []


def test_writes_to_a_stdin_that_is_not_piped_are_invalid(guest: Guest) -> None:
    handle = guest.spawn(rustc("-vV"))
    assert guest.call("stdin_write", handle, 0, 1) == abi.E_INVALID


def test_release_forgets_the_handle(guest: Guest) -> None:
    handle = guest.spawn(rustc("-vV"))
    assert guest.call("release", handle) == 0
    assert guest.call("wait", handle, 0) == abi.E_INVALID
    assert guest.table.children == {}


def test_live_children_are_limited(guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_process, "MAX_CHILDREN", 2)
    handles = [guest.spawn(rustc("-vV")) for _ in range(3)]
    assert handles[:2] == [1, 2] and handles[2] == abi.E_IO
    guest.call("release", 1)
    assert guest.spawn(rustc("-vV")) == 3
