"""A proc-macro crate compiled for wasm32-wasip1 (shim.macro.compile) from the rustc call cargo really makes
for it: fixtures/macro-compile is built through the real wrapper with an inner wrapper that keeps each
proc-macro unit's argv, cwd and environment, and the unit is then compiled for wasm from those. The
module must export what shim/macro/PROTOCOL.md names, list the crate's macros, expand one (modules,
`#[path]`, `include_str!` above `src/` and a workspace dependency all took part), and the sources handed
to the trampoline's `.d` must be the originals. The wasm `proc_macro` crate is the text-only stand-in
until shim/rust/proc_macro/ lands: change the one import below to switch."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from conftest import FIXTURES, WRAPPER, scrubbed
from shim.cargo import layout
from shim.cargo.rustc_args import expand_argfiles, parse
from shim.macro import wire
from shim.macro.compile import MacroCompileError, compile_macro_crate
from shim.macro.rewrite import Macro

from shim.macro.compile import default_proc_macro as proc_macro_rlib  # the wasm proc_macro crate (shim/rust/proc_macro)

pytestmark = pytest.mark.integration

RECORDER = """#!{python}
import json, os, sys
args = sys.argv[1:]
if "proc-macro" in args:
    name = args[args.index("--crate-name") + 1]
    with open(os.path.join({records!r}, name + ".json"), "w") as fh:
        json.dump({{"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}}, fh)
os.execvp(args[0], args)
"""


@pytest.fixture(scope="module")
def built(selected_cargo, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[no-untyped-def]
    """The fixture built once with its proc macros native (`sandbox = "native"`, so they reach the recording
    inner wrapper), their units' argv, cwd and environment kept for the tests to compile for wasm."""
    root = tmp_path_factory.mktemp("macro-compile")
    ws = root / "ws"
    shutil.copytree(FIXTURES / "macro-compile", ws)
    (ws / "cratecage.toml").write_text("".join(f'[permissions.macro.{crate}]\nsandbox = "native"\n'
                                               for crate in ("macros", "bad_macros", "nosy_macros")))
    records = root / "records"
    records.mkdir()
    recorder = root / "recorder.py"
    recorder.write_text(RECORDER.format(python=sys.executable, records=str(records)))
    recorder.chmod(0o755)
    target = root / "target"
    selected_cargo(ws, "build", wrapped=True, target_dir=target, extra_env={"CRATECAGE_WRAPPER": str(recorder)})
    return {"ws": ws, "target": target, "records": records}


def test_the_audit_counts_the_proc_macro_crates_the_policy_made_native(built: dict) -> None:
    shown = subprocess.run([str(WRAPPER), "audit", str(built["target"])], capture_output=True, text=True,
                           timeout=60, env=scrubbed(dict(os.environ)))
    assert shown.returncode == 0, shown.stderr
    native = {line.split()[0] for line in shown.stdout.splitlines() if line.split()[2:3] == ["native"]}
    assert native == {"macros", "bad_macros", "nosy_macros"}
    assert shown.stdout.splitlines()[-1].startswith("ran natively: 0 build scripts, 3 proc macro crates")
    assert "ran as wasm in the sandbox:" in shown.stdout.splitlines()[-2]


def compile_unit(built: dict, crate: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    record = json.loads((built["records"] / f"{crate}.json").read_text())
    expanded = expand_argfiles(record["argv"][1:])
    env = dict(record["env"], CRATECAGE_WORKSPACE_ROOT=str(built["ws"]))
    env.pop("CARGO_MAKEFLAGS", None)  # cargo's jobserver is gone
    monkeypatch.chdir(record["cwd"])
    args = parse(expanded)
    return args, compile_macro_crate([record["argv"][0]], args, expanded, env, proc_macro_rlib=proc_macro_rlib)


def call(instance: wasmtime.Instance, store: wasmtime.Store, name: str, *args: int) -> int:
    return instance.exports(store)[name](store, *args)


def read_region(instance: wasmtime.Instance, store: wasmtime.Store, packed: int) -> bytes:
    ptr, length = packed >> 32, packed & 0xFFFFFFFF
    memory = instance.exports(store)["memory"]
    return bytes(memory.read(store, ptr, ptr + length))


HOST_CALLS: list[str] = []  # the facade's host functions the guests called, in order


def instantiate(wasm: str) -> tuple[wasmtime.Instance, wasmtime.Store, wasmtime.Module]:
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, wasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    for imp in module.imports:  # the facade's host functions (its start-up reports), each answering 0
        if imp.module != "wasi_snapshot_preview1" and isinstance(imp.type, wasmtime.FuncType):
            linker.define(store, imp.module, imp.name, wasmtime.Func(store, imp.type, zeros(imp.name, imp.type)))
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, module)
    exported = instance.exports(store)
    start = "_initialize" if "_initialize" in exported else "cratecage_initialize"
    if start in exported:
        call(instance, store, start)
    return instance, store, module


def zeros(name: str, ty: wasmtime.FuncType):  # type: ignore[no-untyped-def]
    results = [0] * len(ty.results)

    def host(*_args: object) -> object:
        HOST_CALLS.append(name)
        return None if not results else results[0] if len(results) == 1 else results
    return host


def text(s: str) -> bytes:
    return struct.pack("<I", len(s.encode())) + s.encode()


def test_the_guest_module_exports_the_protocol_and_lists_the_crates_macros(built: dict, monkeypatch) -> None:
    args, guest = compile_unit(built, "macros", monkeypatch)
    out_dir = os.path.join(os.getcwd(), args.out_dir)
    assert guest.wasm == layout.macro_module_path(layout.state_dir(os.path.realpath(out_dir)),
                                                  os.path.realpath(out_dir), layout.output_stem(args))
    assert os.path.isfile(guest.wasm)
    assert guest.macros == [Macro("derive", "Describe", "derive_describe", ("describe", "note")),
                            Macro("bang", "answer", "answer", ()), Macro("attr", "noted", "noted", ()),
                            Macro("derive", "Plain", "derive_plain", ())]
    instance, store, module = instantiate(guest.wasm)
    exported = {e.name for e in module.exports}
    assert {"memory", "cratecage_macro_abi", "cratecage_alloc", "cratecage_expand", "cratecage_macros",
            "cratecage_initialize"} <= exported
    started = len(HOST_CALLS)
    assert started > 0  # the facade's constructor ran in cratecage_initialize, once: not again at each call
    assert [call(instance, store, "cratecage_macro_abi") for _ in range(3)] == [1, 1, 1]
    assert len(HOST_CALLS) == started
    listing = read_region(instance, store, call(instance, store, "cratecage_macros")).decode().splitlines()
    assert [line.split()[:3] for line in listing] == [
        ["derive", "Describe", "derive_describe"], ["bang", "answer", "answer"], ["attr", "noted", "noted"],
        ["derive", "Plain", "derive_plain"]]
    assert listing[0].split()[3].strip(",").split(",") == ["describe", "note"]


def flat(trees) -> str:  # type: ignore[no-untyped-def]
    """A reply's tokens as words (enough to recognise what the fixture's macros print)."""
    words = []
    for tree in trees:
        if isinstance(tree, wire.Group):
            opening, closing = {"parenthesis": "()", "bracket": "[]", "brace": "{}", "none": "  "}[tree.delimiter]
            words += [opening.strip(), flat(tree.stream), closing.strip()]
        else:
            words.append(tree.name if isinstance(tree, wire.Ident) else
                         tree.char if isinstance(tree, wire.Punct) else tree.text)
    return " ".join(w for w in words if w)


def test_an_expansion_runs_the_crates_modules_path_include_and_dependency(built: dict, monkeypatch) -> None:
    _args, guest = compile_unit(built, "macros", monkeypatch)
    instance, store, _module = instantiate(guest.wasm)
    memory = instance.exports(store)["memory"]

    def expand(kind: str, name: str, *streams: tuple) -> str:
        request = wire.encode_request(wire.Request(kind, name, (), *streams))
        ptr = call(instance, store, "cratecage_alloc", len(request))
        memory.write(store, request, ptr)
        reply = wire.decode_reply(read_region(instance, store, call(instance, store, "cratecage_expand", ptr,
                                                                      len(request))))
        assert reply.status == "ok", reply
        return flat(reply.output)

    Id, P, G = wire.Ident, wire.Punct, wire.Group
    described = expand("derive", "Describe", (Id("struct"), Id("Thing"), P(";")))
    assert described.startswith("impl Thing ") and '"FIXTURE DATA"' in described  # include_str! + util
    assert expand("bang", "answer", ()) == "42"  # #[path] module
    noted = expand("attr", "noted", (Id("fn"), Id("f"), G("parenthesis", ()), G("brace", ())), ())
    assert noted == "# [ allow ( dead_code ) ] const NOTED : u32 = 2 ; fn f ( ) { }"  # helpers/inner.rs
    assert "pub fn plain" in expand("derive", "Plain", (Id("enum"), Id("E"), G("brace", ())))


def test_the_sources_are_the_originals_and_the_dependency_was_replayed(built: dict, monkeypatch) -> None:
    args, guest = compile_unit(built, "macros", monkeypatch)
    package = (built["ws"] / "macros").resolve()
    expected = {package / "src" / "lib.rs", package / "src" / "helpers.rs", package / "src" / "helpers" / "inner.rs",
                package / "src" / "elsewhere" / "placed.rs", package / "data.txt"}
    assert {Path(s) for s in guest.sources} == expected
    state = Path(layout.state_dir(os.path.realpath(os.path.join(os.getcwd(), args.out_dir))))
    assert any(p.name.startswith("libutil-") for p in (state / "wasm-deps-macro").glob("*.rlib"))
    assert not any(p.name.startswith("libutil-") for p in (state / "wasm-deps").glob("*.rlib"))


def test_diagnostics_point_at_the_original_file_line_and_column_and_no_mirror_is_left(
        built: dict, monkeypatch, capfd) -> None:
    _args, guest = compile_unit(built, "macros", monkeypatch)
    diagnostics = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    spans = [span for d in diagnostics if d.get("level") == "warning" for span in d["spans"]
             if "unheard" in span["text"][0]["text"]]
    lines = (built["ws"] / "macros" / "src" / "lib.rs").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "let unheard" in text)
    assert [(s["file_name"], s["line_start"], s["column_start"]) for s in spans] == [
        (os.path.join("macros", "src", "lib.rs"), line, lines[line - 1].index("unheard") + 1)]  # as cargo named it
    assert not (Path(guest.wasm).parent / "mirror").exists()


def test_a_file_read_outside_the_package_at_compile_time_is_refused(built: dict, monkeypatch, capfd) -> None:
    with pytest.raises(MacroCompileError) as raised:
        compile_unit(built, "nosy_macros", monkeypatch)
    assert "refused at compile time" in raised.value.render()
    err = capfd.readouterr().err.splitlines()
    denied = [n for n, line in enumerate(err)
              if line.startswith("cratecage: proc-macro crate nosy_macros 0.1.0: filesystem-access denied: ")]
    assert len(denied) == 1
    assert [line.strip() for line in err[denied[0] + 1:denied[0] + 4]][:2] == [
        "to permit it, add to the policy:", "[permissions.build.nosy_macros]"]


def test_a_macro_crate_that_does_not_compile_for_wasm_fails_with_one_line_naming_it(built: dict,
                                                                                     monkeypatch) -> None:
    with pytest.raises(MacroCompileError) as raised:
        compile_unit(built, "bad_macros", monkeypatch)
    rendered = raised.value.render()
    assert rendered.startswith("cratecage: proc-macro crate bad_macros 0.1.0 does not compile for wasm32-wasip1")
    assert len(rendered.splitlines()) == 1
    args = parse(expand_argfiles(json.loads((built["records"] / "bad_macros.json").read_text())["argv"][1:]))
    out_dir = os.path.realpath(os.path.join(os.getcwd(), args.out_dir))
    assert not os.path.exists(layout.macro_module_path(layout.state_dir(out_dir), out_dir, layout.output_stem(args)))


# -- the pieces, without a compile -------------------------------------------------------------------------------

def test_the_mirror_resolves_dot_dot_and_siblings_as_the_original_and_maps_back(tmp_path: Path) -> None:
    from shim.macro.compile import build_mirror, original_sources

    package = tmp_path / "ws" / "pkg"
    (package / "src" / "m").mkdir(parents=True)
    (package / "src" / "lib.rs").write_text("original root")
    (package / "src" / "m" / "x.rs").write_text("module")
    (tmp_path / "ws" / "README.md").write_text("two levels up")
    top = tmp_path / "unit" / "mirror"
    mirrored = Path(build_mirror(str(top), str(package / "src" / "lib.rs"), "rewritten root"))
    assert mirrored.read_text() == "rewritten root" and (package / "src" / "lib.rs").read_text() == "original root"
    assert (mirrored.parent / "m" / "x.rs").read_text() == "module"
    assert Path(os.path.join(mirrored.parent, "..", "..", "README.md")).read_text() == "two levels up"
    assert original_sources([str(mirrored), os.path.join(mirrored.parent, "..", "..", "README.md"), "/abs/x.rs"],
                            str(top), str(tmp_path)) == [
        str((package / "src" / "lib.rs").resolve()), str((tmp_path / "ws" / "README.md").resolve()), "/abs/x.rs"]


def test_the_guest_argv_is_cargos_with_the_mirrored_root_a_cdylib_and_no_native_proc_macro() -> None:
    from shim.macro.compile import guest_argv

    argv = ["--crate-name", "m", "--edition=2021", "m/src/lib.rs", "--crate-type", "proc-macro", "--extern",
            "proc_macro", "--extern", "util=/t/deps/libutil-1.rlib", "-C", "metadata=abc"]
    assert guest_argv(argv, "m/src/lib.rs", "/mirror/w/m/src/lib.rs") == [
        "--crate-name", "m", "--edition=2021", "/mirror/w/m/src/lib.rs", "--crate-type", "cdylib", "--extern",
        "util=/t/deps/libutil-1.rlib", "-C", "metadata=abc"]
