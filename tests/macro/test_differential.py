"""cratecage's proc_macro against rustc's, differentially: fixtures/proc-macro-dump/dump.rs parses a corpus
with `TokenStream::from_str` and describes each result (Display of the stream and of its trees collected
again, tree kinds, delimiters, spacing, identifiers, literal texts and their `Literal::from_str` round trip,
and whether it was an error), then builds literals with every constructor and streams from trees. The
oracle runs it inside rustc (a native proc macro, plain cargo, the selected toolchain); the guest runs the
same code for wasm32-wasip1 under wasmtime. The outputs must be identical, entry by entry.

The corpus: every source file of syn, serde_derive, proc-macro2, quote and prettyplease in the cargo
registry (the newest of each major version; hundreds of files, each one entry), and the hand-written edge cases below.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

import pytest
import wasmtime

from shim.sandbox import engine

from conftest import Cargo
from guests import Sandbox, cache_env, facade_rlib, sandbox, tc  # noqa: F401 (fixtures)
from macro_guests import DUMP_FIXTURE, compile_guest, linker_for, proc_macro_rlib  # noqa: F401 (fixtures)

CRATES = ("syn-2", "syn-1", "serde_derive-1", "proc-macro2-1", "quote-1", "prettyplease-0")

EDGE_CASES = [
    # literals: every form, suffixes, exponents, raw and byte and C strings
    '"" "a\\"b" "\\n\\t\\\\\\0\\x7f\\u{1F600}" "multi\nline" "suffix"sfx',
    "r\"raw\" r#\"a \"quoted\" b\"# r##\"x\"#y\"## br\"b\" br#\"b\"# cr\"c\" cr#\"c\"# c\"c\\0\" b\"\\xff\"",
    "'a' '\\'' '\\\\' '\\n' '\\u{10FFFF}' 'é' b'a' b'\\xff' b'\\'' 'x'suffix",
    "0 1 1_000 0x1F 0o17 0b1010 0xffu8 1u128 1i8 1usize 1_f32 0.5 1.0 1e10 1E-7 2.5e+3 1.0f64 3f32 1e3_f64",
    "1.foo 1..2 1. 2.e3 1.0.0 0.1.2 1.e 1 .5 x.0.1 tup.0 .. ... ..= 1..=2 a..b ..x",
    "0xABCDEFi64 0b1111_0000 0o777u16 123abc 12__34 0_0",
    # identifiers, raw identifiers, lifetimes and characters
    "r#fn r#type r#match r#foo foo_bar _ __ _x self Self super crate async await dyn try gen union",
    "'a 'static '_ 'r#a 'r#fn <'a, 'b: 'a> &'a str 'a: loop { break 'a; } 'x' 'y",
    "é ü ñame добро 日本語 ident_é",
    # comments and doc comments
    "/// outer doc\nfn f() {}\n//! inner doc\n/** block doc */ /*! inner block */ x",
    "// plain\n/* plain */ /* nested /* deeper */ still */ a //// not doc\n/*** not doc */ b /**/ c",
    '/// quotes " and \\ and \t tab and é\nstruct S;',
    "/**\n * multi\n * line\n */\nfn g() {}",
    "#![allow(x)] #[derive(Debug)] # [ cfg ( test ) ] #!/not/shebang",
    "#!/usr/bin/env run-cargo-script\nfn main() {}",
    "#![feature(x)]\nfn main() {}",
    # punctuation, gluing and spacing
    "a+b a + b a+=b a +=b a<<=b a>>=b a->b a=>b a<-b a::b a :: b ::<> a!=b a==b a<=b a>=b a&&b a||b",
    "$x $ y $crate::m! #[a] # [a] x? &&x &mut x *x !x -x ~x @x a.b a. b a .b , ; :",
    "f(x) f (x) fn(x) Self(x) pub(crate) let (a) if (a) match (a) r#if (a) m!(x) m! (x) if !x {} a![]",
    "x.await.y x . y x .. y x ..=y x... y",
    "{a} { a } {a } { a} {} { } [a] [ a ] (a) ( a ) {{}} [[]] (())",
    "a;b a ; b a,b a , b [a; 3] {x,} (x,)",
    # nesting and long streams (the pretty printer's line breaking)
    "fn f() { if a { b } else { c } } mod m { fn g() { let x = { { { 1 } } }; } }",
    " ".join(f"item{i}" for i in range(60)),
    "{ " + " ".join(f"let v{i} = f(a{i}, b{i});" for i in range(25)) + " }",
    "(" + ", ".join(f"argument_{i}" for i in range(30)) + ")",
    "[" + "; ".join(f"{{ x{i} }}" for i in range(30)) + "]",
    "/// doc\n{ /// inner\n a }",
    # whitespace forms
    "a\r\nb\r\n/// crlf doc\r\nc",
    "\ufeffbom a",
    "\t\x0b\x0c a \u0085 b \u200e c \u2028 d",
    "",
    "   ",
    "// only a comment",
    # errors: unbalanced delimiters, unterminated literals and comments, unknown characters
    "(a",
    "a)",
    "(a]",
    "{ [ ( ) ] ",
    '"unterminated',
    "'",
    "r#\"unterminated\"",
    "/* unterminated",
    "a /* nested /* once */",
    "r#",
]

# Inputs rustc reports with an error diagnostic (so the invocation's compile fails) while returning what it
# recovered; cratecage's from_str returns LexError for them, and the macro cannot go on as if all were well.
DIAGNOSED = [
    ("'ab'", "character literal may only contain one codepoint"),
    ("''", "empty character literal"),
    ("b'ab'", "character literal may only contain one codepoint"),
    ("\\", "unknown start of token: \\"),
    ("`", "unknown start of token: `"),
    ("€", "unknown start of token: \\u{20ac}"),
    ("1e", "expected at least one digit in exponent"),
    ("0x", "no valid digits found for number"),
    ("0b2", "invalid digit for a base 2 literal"),
    ("'1a", "lifetimes cannot start with a number"),
    ("r#self", "`self` cannot be a raw identifier"),
    ("foo#", "prefix `foo` is unknown"),
    ('bar"str"', "prefix `bar` is unknown"),
]


def version(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.rsplit("-", 1)[-1]))


def corpus_files() -> list[str]:
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    texts: list[str] = []
    for crate in CRATES:
        versions = sorted(glob.glob(str(home / "registry" / "src" / "*" / f"{crate}.*")), key=version)
        assert versions, f"{crate}.* is not in the cargo registry: run `cargo fetch` in a workspace using it"
        for path in sorted(Path(versions[-1]).rglob("*.rs")):
            text = path.read_text(encoding="utf-8")
            if "\0" not in text:
                texts.append(text)
    return texts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    entries = corpus_files() + EDGE_CASES + [text for text, _ in DIAGNOSED]
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\0".join(entries), encoding="utf-8")
    return path, len(entries)


def entries(text: str) -> dict[int, str]:
    parts = re.split(r"^=== (\d+)\n", text, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def native(selected_cargo: Cargo, corpus: tuple[Path, int],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The oracle's description and rustc's diagnostics."""
    work = tmp_path_factory.mktemp("oracle")
    shutil.copytree(DUMP_FIXTURE, work / "dump")
    out = work / "native.txt"
    # Inputs rustc rejects with a diagnostic fail the compile after the output is written.
    done = selected_cargo(work / "dump" / "invoke", "build", "--offline", "-q", wrapped=False,
                          target_dir=work / "target",
                   extra_env={"DUMP_CORPUS": str(corpus[0]), "DUMP_OUT": str(out)}, check=False)
    assert out.is_file(), "the oracle wrote nothing"
    return out.read_text(encoding="utf-8"), done.proc.stderr


@pytest.fixture(scope="module")
def wasm(tc, facade_rlib: Path, proc_macro_rlib: Path, sandbox: Sandbox, corpus: tuple[Path, int],  # noqa: ANN001,F811
         tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("guest")
    module = compile_guest(tc, facade_rlib, proc_macro_rlib, DUMP_FIXTURE / "guests" / "dump.rs", work / "dump.wasm",
                           "bin")
    ctx = sandbox.context()
    linker, _ = linker_for(sandbox, ctx)
    wasi = wasmtime.WasiConfig()
    wasi.env = list(ctx.env.items())
    for host, guest, writable in engine.preopen_table(ctx, []):
        wasi.preopen_dir(host, guest, writable)
    wasi.stdin_file, wasi.stdout_file = str(corpus[0]), str(work / "wasm.txt")
    store = wasmtime.Store(sandbox.engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, wasmtime.Module.from_file(sandbox.engine, str(module)))
    instance.exports(store)["_start"](store)
    return (work / "wasm.txt").read_text(encoding="utf-8")


def first_difference(a: str, b: str) -> str:
    for n, (x, y) in enumerate(zip(a.split("\n"), b.split("\n"))):
        if x != y:
            return f"line {n}:\n  rustc:     {x[:400]!r}\n  cratecage: {y[:400]!r}"
    return "one is a prefix of the other"


def test_every_entry_of_the_corpus_reads_and_prints_as_rustc_s_proc_macro_does(
        native: tuple[str, str], wasm: str, corpus: tuple[Path, int]) -> None:
    ours, theirs = entries(wasm), entries(native[0])
    assert len(theirs) == corpus[1] >= 300
    diagnosed = range(corpus[1] - len(DIAGNOSED), corpus[1])
    differing = [n for n in theirs if ours.get(n) != theirs[n] and n not in diagnosed]
    assert not differing, f"{len(differing)} entries differ:\n" + "\n".join(
        f"entry {n} at " + first_difference(theirs[n], ours.get(n, "")) for n in differing[:20])
    # the corpus exercises what it claims to: errors, doc comments as attributes, broken lines, raw strings
    described = "".join(theirs.values())
    assert described.count("lexerror") >= 10 and 'literal " outer doc"' in described
    assert "ident r#fn" in described and "literal r#\"a \"quoted\" b\"#" in described


def test_what_rustc_diagnoses_is_a_lex_error(native: tuple[str, str], wasm: str, corpus: tuple[Path, int]) -> None:
    ours = entries(wasm)
    for n, (text, message) in enumerate(DIAGNOSED, start=corpus[1] - len(DIAGNOSED)):
        assert message in native[1], f"rustc did not diagnose {text!r}"
        assert ours[n].split("\n")[:2] in (["lexerror", ""], ["lexerror", "lit \"\""]), f"{text!r} is not a LexError"


def test_literal_constructors_and_streams_built_from_trees_print_as_rustc_s(native: tuple[str, str],
                                                                            wasm: str) -> None:
    tail = native[0][native[0].index("\nlit "):]
    assert wasm[wasm.index("\nlit "):] == tail
    assert 'lit b"\\xc3\\xa9' in tail and "built " in tail
