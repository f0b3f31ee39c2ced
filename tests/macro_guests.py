"""Plumbing for the tests of cratecage's wasm-side proc_macro (tests/macro/, tests/toolchain/): the crate built by
shim.toolchain.proc_macro into the session's fresh cache (next to the facade of tests/guests.py), guests
compiled against both for wasm32-wasip1, and a macro module driven through its PROTOCOL.md exports under
real wasmtime, with the facade's host functions and the `cratecage_macro.panic` import.

A test module that uses the fixtures imports them by name (`from macro_guests import proc_macro_rlib, ...`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from shim.host import files as host_files
from shim.host import net as host_net
from shim.host import observe as host_observe
from shim.host import process as host_process
from shim.host.context import RunContext
from shim.macro import wire
from shim.macro.wire import Group, Ident, Punct
from shim.sandbox import engine
from shim.toolchain import proc_macro

from guests import LINK, Sandbox, run

REPO = Path(__file__).resolve().parent.parent
DUMP_FIXTURE = REPO / "fixtures" / "proc-macro-dump"
MASK32 = 0xFFFFFFFF


@pytest.fixture(scope="session")
def proc_macro_rlib(tc, facade_rlib: Path, cache_env: dict[str, str]) -> Path:  # noqa: ANN001
    return proc_macro.proc_macro_rlib(tc, cache_env)


def compile_guest(tc, facade: Path, pm: Path, source: Path, out: Path, crate_type: str) -> Path:  # noqa: ANN001
    """A guest against the facade and cratecage's proc_macro, linked as a build script is."""
    run([tc.compiler.rustc, "--edition", "2021", "--crate-type", crate_type, "--crate-name", source.stem,
         "--target", "wasm32-wasip1", "--sysroot", str(tc.wasm_sysroot), "--extern", f"std={facade}",
         "--extern", f"proc_macro={pm}", *LINK, "-C", "opt-level=1", "-o", str(out), str(source)])
    return out


def linker_for(sandbox: Sandbox, ctx: RunContext) -> tuple[wasmtime.Linker, list[str]]:
    """WASI, the facade's host functions for `ctx`, and a `cratecage_macro.panic` that records messages."""
    linker = wasmtime.Linker(sandbox.engine)
    linker.define_wasi()
    processes = host_process.define(linker, ctx)
    host_observe.define(linker, ctx)
    host_net.define(linker, ctx, processes)
    host_files.define(linker, ctx, processes, engine.preopen_table(ctx, []))
    panics: list[str] = []

    def panic(caller: wasmtime.Caller, ptr: int, length: int) -> None:
        memory = caller.get("memory")
        assert isinstance(memory, wasmtime.Memory)
        panics.append(bytes(memory.read(caller, ptr, ptr + length)).decode())

    i32 = wasmtime.ValType.i32()
    linker.define_func("cratecage_macro", "panic", wasmtime.FuncType([i32, i32], []), panic, access_caller=True)
    return linker, panics


class MacroModule:
    """One instance of a macro module, replaced by a fresh one after a trap (PROTOCOL.md: "After a trap")."""

    def __init__(self, sandbox: Sandbox, wasm: Path) -> None:
        self.sandbox = sandbox
        self.module = wasmtime.Module.from_file(sandbox.engine, str(wasm))
        self.ctx = sandbox.context()
        self.linker, self.panics = linker_for(sandbox, self.ctx)
        self.instances = 0
        self._instantiate()

    def _instantiate(self) -> None:
        wasi = wasmtime.WasiConfig()
        wasi.env = list(self.ctx.env.items())
        for host, guest, writable in engine.preopen_table(self.ctx, []):
            wasi.preopen_dir(host, guest, writable)
        self.store = wasmtime.Store(self.sandbox.engine)
        self.store.set_wasi(wasi)
        instance = self.linker.instantiate(self.store, self.module)
        self.exports = instance.exports(self.store)
        start = "_initialize" if "_initialize" in self.exports else "cratecage_initialize"
        if start in self.exports:
            self.exports[start](self.store)
        self.instances += 1

    def call(self, name: str, *args: int) -> int:
        return int(self.exports[name](self.store, *args))

    def _read_packed(self, packed: int) -> bytes:
        packed &= 0xFFFFFFFFFFFFFFFF
        ptr, length = packed >> 32, packed & MASK32
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        return bytes(memory.read(self.store, ptr, ptr + length))

    def listing(self) -> str:
        return self._read_packed(self.call("cratecage_macros")).decode()

    def expand_bytes(self, data: bytes) -> wire.Reply:
        """What the server does: a trap after a panic is a `panic` reply, and the next call a new instance."""
        ptr = self.call("cratecage_alloc", len(data))
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        memory.write(self.store, data, ptr)
        before = len(self.panics)
        try:
            packed = self.call("cratecage_expand", ptr, len(data))
        except wasmtime.Trap:
            self._instantiate()
            assert len(self.panics) == before + 1, "the guest trapped without calling the panic import"
            return wire.Reply("panic", message=self.panics[-1])
        return wire.decode_reply(self._read_packed(packed))

    def expand(self, request: wire.Request) -> wire.Reply:
        return self.expand_bytes(wire.encode_request(request))


def text(stream: tuple[wire.Tree, ...]) -> str:
    """A rough rendering of wire trees for assertions: trees separated by spaces, groups in their delimiters."""
    parts = []
    for tree in stream:
        if isinstance(tree, Group):
            o, c = {"parenthesis": "()", "bracket": "[]", "brace": "{}", "none": "  "}[tree.delimiter]
            parts.append(o + text(tree.stream) + c)
        elif isinstance(tree, Ident):
            parts.append(("r#" if tree.raw else "") + tree.name)
        elif isinstance(tree, Punct):
            parts.append(tree.char)
        else:
            parts.append(tree.text)
    return " ".join(parts)
