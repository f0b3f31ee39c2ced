"""The guest glue of PROTOCOL.md (proc_macro::__cratecage): a macro module built with `__cratecage_export!`
(fixtures/proc-macro-dump/guests/tiny.rs), driven through its exports under wasmtime with requests made by
shim.macro.wire: derive, function-like and attribute macros, span ids round-tripping, the span table
answering location queries, panics through the import, statics across expansions, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.macro import wire
from shim.macro.wire import Group, Ident, Literal, Punct, Request, SpanInfo

from guests import Sandbox, cache_env, facade_rlib, sandbox, tc  # noqa: F401 (fixtures)
from macro_guests import DUMP_FIXTURE, MacroModule, compile_guest, proc_macro_rlib, text  # noqa: F401 (fixtures)

CALL = SpanInfo("src/main.rs", "/ws/src/main.rs", 3, 4, 3, 20, 40, 56, "my_macro!(a b)")
TOKEN = SpanInfo("src/main.rs", None, 7, 8, 7, 11, 90, 93, "abc")
GROUP = SpanInfo("src/lib.rs", "/ws/src/lib.rs", 9, 0, 11, 1, 100, 140, None)
OPEN = SpanInfo("src/lib.rs", "/ws/src/lib.rs", 9, 0, 9, 1, 100, 101, "(")
CLOSE = SpanInfo("src/lib.rs", "/ws/src/lib.rs", 11, 0, 11, 1, 139, 140, ")")
TABLE = (CALL, TOKEN, GROUP, OPEN, CLOSE)  # ids 2..6


@pytest.fixture(scope="module")
def tiny(tc, facade_rlib: Path, proc_macro_rlib: Path,  # noqa: ANN001,F811
         tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "tiny.wasm"
    return compile_guest(tc, facade_rlib, proc_macro_rlib, DUMP_FIXTURE / "guests" / "tiny.rs", out, "cdylib")


@pytest.fixture
def guest(sandbox: Sandbox, tiny: Path) -> MacroModule:  # noqa: F811
    return MacroModule(sandbox, tiny)


def test_the_module_reports_its_abi_and_lists_its_macros_as_rewrite_names_them(guest: MacroModule) -> None:
    assert guest.call("cratecage_macro_abi") == wire.ABI_VERSION
    assert wire.parse_listing(guest.listing()) == [
        ("derive", "Named", "derive_named", ("name", "other_helper")),
        ("derive", "Plain", "derive_named", ()),
        ("bang", "spans", "spans", ()),
        ("attr", "wrap", "wrap", ()),
        ("bang", "boom", "boom", ()),
        ("bang", "counter", "counter", ()),
    ]


def test_a_derive_expands_and_keeps_the_input_span_on_what_it_reuses(guest: MacroModule) -> None:
    struct = (Punct("#", span=(3, 3)), Group("bracket", (Ident("name"),), (3, 3), (3, 3), (3, 3)),
              Ident("pub", span=(3, 3)), Ident("struct", span=(3, 3)), Ident("Foo", span=(3, 3)),
              Punct(";", span=(3, 3)))
    reply = guest.expand(Request("derive", "Named", TABLE, struct))
    assert reply.status == "ok", reply.message
    assert text(reply.output) == 'impl Foo {pub const NAME : & str = "Foo" ;} struct Foo'
    assert reply.output[-2:] == (Ident("struct", span=(3, 3)), Ident("Foo", span=(3, 3)))
    assert reply.output[0] == Ident("impl", span=wire.CALL_SITE)  # parsed text gets the call site
    assert guest.expand(Request("derive", "Plain", TABLE, struct)).output == reply.output


def test_span_ids_round_trip_resolved_at_located_at_and_the_call_site(guest: MacroModule) -> None:
    group = Group("parenthesis", (Ident("q", span=(3, 3)),), (4, 4), (5, 5), (6, 6))
    reply = guest.expand(Request("bang", "spans", TABLE, (Ident("abc", span=(3, 3)), group)))
    assert reply.status == "ok", reply.message
    idents = [t.span for t in reply.output if isinstance(t, Ident)]
    # per token: s, s.resolved_at(call_site), s.located_at(mixed_site), call_site.located_at(s),
    # mixed_site.resolved_at(s), call_site: (location, hygiene) pairs as PROTOCOL.md defines them
    assert idents == [(3, 3), (3, 0), (1, 3), (3, 0), (1, 3), (0, 0),
                      (4, 4), (4, 0), (1, 4), (4, 0), (1, 4), (0, 0)]
    puncts = [t.span for t in reply.output if isinstance(t, Punct)]
    assert puncts == [(5, 5), (6, 6)]  # span_open, span_close


def test_location_queries_answer_from_the_span_table(guest: MacroModule) -> None:
    group = Group("parenthesis", (), (4, 4), (5, 5), (6, 6))
    reply = guest.expand(Request("bang", "spans", TABLE, (Ident("abc", span=(3, 3)), group, Ident("c"))))
    facts = [t.text for t in reply.output if isinstance(t, Literal)]
    # file:line:column(one-based)-end line:end column|source_text|local_file|start().source_text
    assert facts[0] == '"src/main.rs:7:9-7:12|Some(\\"abc\\")|None|None"'
    assert facts[1] == '"src/lib.rs:9:1-11:2|None|Some(\\"/ws/src/lib.rs\\")|None"'
    assert facts[2] == '"src/main.rs:3:5-3:21|Some(\\"my_macro!(a b)\\")|Some(\\"/ws/src/main.rs\\")|None"'
    lits = [t for t in reply.output if isinstance(t, Literal)]
    assert [lit.span for lit in lits] == [(3, 3), (4, 4), (0, 0)]


def test_an_attribute_macro_gets_its_arguments_and_item(guest: MacroModule) -> None:
    item = (Ident("fn"), Ident("f"), Group("parenthesis", ()), Group("brace", ()))
    args = (Ident("use"), Ident("$crate"), Punct(":", True), Punct(":"), Ident("x", raw=True), Punct(";"))
    reply = guest.expand(Request("attr", "wrap", TABLE, item, args))
    assert reply.status == "ok", reply.message
    assert text(reply.output) == "mod wrapped {use $crate : : r#x ; fn f () {}}"
    assert reply.output[2].stream[:4] == args[:4]  # `$crate` (from a macro_rules! expansion) and spacing kept


def test_a_panic_reaches_the_import_with_its_message_and_the_next_expansion_gets_a_fresh_instance(
        guest: MacroModule) -> None:
    assert [text(guest.expand(Request("bang", "counter", TABLE, ())).output) for _ in range(3)] == ["1", "2", "3"]
    reply = guest.expand(Request("bang", "boom", TABLE, (Literal('"bad input"'), Punct("+", True), Punct("="))))
    assert reply == wire.Reply("panic", message='boom: "bad input" +=')
    assert guest.expand(Request("bang", "boom", TABLE, ())) == wire.Reply("panic", message="Box<dyn Any>")
    assert guest.instances == 3
    assert text(guest.expand(Request("bang", "counter", TABLE, ())).output) == "1"


@pytest.mark.parametrize("data, why", [
    (b"junk", "not a protocol 1 request"),
    (wire.encode_request(Request("bang", "counter", TABLE, ()))[:-3], "truncated"),
    (wire.encode_request(Request("bang", "counter", TABLE, ())) + b"\0", "trailing bytes"),
    (wire.encode_request(Request("bang", "counter", (), (Punct("a"),))), "`a` is not a punct"),
    (wire.encode_request(Request("bang", "counter", (), (Ident("a b"),))), "`a b` is not an identifier"),
])
def test_a_malformed_request_is_refused_with_one_cratecage_line(guest: MacroModule, data: bytes, why: str) -> None:
    reply = guest.expand_bytes(data)
    assert reply.status == "refused" and reply.message.startswith("cratecage: ") and "\n" not in reply.message
    assert why in reply.message


def test_an_unknown_macro_is_refused(guest: MacroModule) -> None:
    reply = guest.expand(Request("attr", "counter", TABLE, (), ()))
    assert reply.status == "refused" and "no attr macro `counter`" in reply.message
