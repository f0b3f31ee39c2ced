"""Real macro crates from crates.io on cratecage's proc_macro: proc-macro2, quote and syn (the cargo
registry's newest 1.x/2.x) compiled for wasm32-wasip1 against it, with the cfgs proc-macro2's build script
gives a stable compiler of 1.88 or later (`wrap_proc_macro`, `proc_macro_span_location`,
`proc_macro_span_file`: every call goes to this crate), and a derive written with them
(fixtures/proc-macro-dump/guests/syn_fields.rs) expanded through the module's exports. The replay of a macro
crate's real dependency closure is shim/macro/compile.py's; here the crates are compiled by hand, once."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import pytest

from shim.macro.wire import Group, Ident, Punct, Request, SpanInfo

from guests import LINK, Sandbox, cache_env, facade_rlib, run, sandbox, tc  # noqa: F401 (fixtures)
from macro_guests import DUMP_FIXTURE, MacroModule, proc_macro_rlib, text  # noqa: F401 (fixtures)

PROC_MACRO2_CFGS = ("wrap_proc_macro", "proc_macro_span_location", "proc_macro_span_file")
# crate name, registry directory prefix, edition, features, dependencies
CRATES = (
    ("unicode_ident", "unicode-ident-1", "2018", (), ()),
    ("proc_macro2", "proc-macro2-1", "2021", ("proc-macro",), ("unicode_ident",)),
    ("quote", "quote-1", "2018", ("proc-macro",), ("proc_macro2",)),
    ("syn", "syn-2", "2021", ("proc-macro", "derive", "parsing", "printing", "clone-impls"),
     ("proc_macro2", "quote", "unicode_ident")),
)


def newest(prefix: str) -> Path:
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    found = glob.glob(str(home / "registry" / "src" / "*" / f"{prefix}.*"))
    assert found, f"{prefix}.* is not in the cargo registry: run `cargo fetch` in a workspace using it"
    return Path(max(found, key=lambda p: tuple(int(n) for n in re.findall(r"\d+", p.rsplit("-", 1)[-1]))))


@pytest.fixture(scope="module")
def syn_fields(tc, facade_rlib: Path, proc_macro_rlib: Path,  # noqa: ANN001,F811
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real-crates")
    base = [tc.compiler.rustc, "--target", "wasm32-wasip1", "--sysroot", str(tc.wasm_sysroot), "--cap-lints=allow",
            "--extern", f"std={facade_rlib}", "--extern", f"proc_macro={proc_macro_rlib}", "-C", "opt-level=1",
            "-L", str(out)]
    for name, prefix, edition, features, deps in CRATES:
        cfgs = [f'feature="{f}"' for f in features] + (list(PROC_MACRO2_CFGS) if name == "proc_macro2" else [])
        run([*base, "--edition", edition, "--crate-type", "rlib", "--crate-name", name,
             *(arg for cfg in cfgs for arg in ("--cfg", cfg)),
             *(arg for dep in deps for arg in ("--extern", f"{dep}={out / f'lib{dep}.rlib'}")),
             "-o", str(out / f"lib{name}.rlib"), str(newest(prefix) / "src" / "lib.rs")])
    externs = [arg for dep in ("proc_macro2", "quote", "syn")
               for arg in ("--extern", f"{dep}={out / f'lib{dep}.rlib'}")]
    run([*base, "--edition", "2021", "--crate-type", "cdylib", *LINK, *externs,
         "-o", str(out / "syn_fields.wasm"), str(DUMP_FIXTURE / "guests" / "syn_fields.rs")])
    return out / "syn_fields.wasm"


TABLE = (SpanInfo("src/lib.rs", None, 1, 0, 1, 20, 0, 20, None),
         SpanInfo("src/lib.rs", None, 4, 11, 4, 14, 40, 43, "Foo"))


def test_a_syn_and_quote_derive_parses_generics_and_generates_with_locations(
        sandbox: Sandbox, syn_fields: Path) -> None:  # noqa: F811
    guest = MacroModule(sandbox, syn_fields)
    struct = (Ident("struct"), Ident("Foo", span=(3, 3)), Punct("<"), Ident("T"), Punct(">"),
              Group("brace", (Ident("a"), Punct(":"), Ident("u8"), Punct(","), Ident("b"), Punct(":"), Ident("T"))))
    reply = guest.expand(Request("derive", "Fields", TABLE, struct))
    assert reply.status == "ok", reply.message
    assert text(reply.output) == ("impl < T > Foo < T > {pub const FIELDS : & ' static [& ' static str] = "
                                  '& ["a" , "b"] ; pub const AT : (u32 , u32) = (4u32 , 12u32) ;}')
    assert Ident("Foo", span=(3, 3)) in reply.output  # quote! keeps the input's span on `#name`


def test_a_syn_error_becomes_compile_error_at_the_offending_span(
        sandbox: Sandbox, syn_fields: Path) -> None:  # noqa: F811
    guest = MacroModule(sandbox, syn_fields)
    enum = (Ident("enum"), Ident("E", span=(3, 3)), Group("brace", ()))
    reply = guest.expand(Request("derive", "Fields", TABLE, enum))
    assert reply.status == "ok", reply.message
    assert text(reply.output) == ': : core : : compile_error ! {"Fields wants a struct"}'
    assert {t.span for t in reply.output if isinstance(t, Ident)} == {(3, 3)}
