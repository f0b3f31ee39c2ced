"""Finding a proc-macro crate's macros and blanking their attributes (shim.macro.rewrite): small cases that
read like the forms rustc accepts and refuses, then every proc-macro crate root of fixtures/macro-roots
(serde_derive, thiserror-impl, clap_derive, zerocopy-derive, derive_more 0.99, darling_macro...) compared
with what rustc itself declares: the `_DECLS` table of `-Zunpretty=expanded` (RUSTC_BOOTSTRAP inside the
test only) with the same cfgs, and a rustc compile of the rewritten root as a library, which refuses any
proc-macro attribute left in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import FIXTURES
from shim.macro.rewrite import Macro, RewriteError, export_call, find_macros, parse_cfgs

NO_CFG = None


def macros_of(src: str, cfgs: set[str] | None = NO_CFG) -> list[Macro]:
    return find_macros(textwrap.dedent(src), "demo 1.0.0", None if cfgs is None else lambda: frozenset(cfgs)).macros


def fails(src: str, line: int, what: str, cfgs: set[str] | None = NO_CFG) -> None:
    with pytest.raises(RewriteError) as raised:
        macros_of(src, cfgs)
    rendered = raised.value.render()
    assert rendered.startswith(f"cratecage: proc-macro crate demo 1.0.0: line {line} of its crate root: ")
    assert what in rendered and len(rendered.splitlines()) == 1


# -- what is found ------------------------------------------------------------------------------------------

def test_the_three_kinds_with_helpers_docs_other_attributes_and_trailing_commas() -> None:
    assert macros_of("""
        /// Serialize it.
        #[proc_macro_derive(Serialize, attributes(serde, other_helper,),)]
        #[allow(unused)]
        pub fn derive_serialize(i: TokenStream) -> TokenStream { i }
        #[doc = "plain"]
        # [ proc_macro_derive ( Plain ) ]
        pub fn derive_plain(i: TokenStream) -> TokenStream { i }
        #[proc_macro]
        /** json! */
        pub fn json(i: TokenStream) -> TokenStream { i }
        #[proc_macro_attribute]
        pub fn main(a: TokenStream, i: TokenStream) -> TokenStream { i }
    """) == [Macro("derive", "Serialize", "derive_serialize", ("serde", "other_helper")),
             Macro("derive", "Plain", "derive_plain", ()), Macro("bang", "json", "json", ()),
             Macro("attr", "main", "main", ())]


def test_raw_names_are_macro_names_without_r_hash_and_functions_as_written() -> None:
    assert macros_of("""
        #[proc_macro]
        pub fn r#try(i: TokenStream) -> TokenStream { i }
        #[proc_macro_derive(r#Quux, attributes(r#type))]
        pub fn quux(i: TokenStream) -> TokenStream { i }
    """) == [Macro("bang", "try", "r#try", ()), Macro("derive", "Quux", "quux", ("type",))]


def test_comments_strings_and_generated_code_that_mention_the_attributes_are_not_macros() -> None:
    assert macros_of(r'''
        // #[proc_macro] pub fn a() {}
        /* /* nested */ #[proc_macro_derive(B)] */
        const S: &str = "#[proc_macro] pub fn c";
        const R: &str = r#"#[proc_macro_attribute] pub fn d"#;
        const C: char = '#';
        fn quoted<'a>(x: &'a str) -> TokenStream { quote! { #[proc_macro_derive(E)] pub fn e() {} } }
        #[proc_macro]
        pub fn real(i: TokenStream) -> TokenStream { i }
    ''') == [Macro("bang", "real", "real", ())]


def test_cfg_attr_and_cfg_are_decided_with_the_units_cfgs() -> None:
    src = """
        #[cfg_attr(feature = "json", proc_macro)]
        #[cfg(feature = "json")]
        pub fn json(i: TokenStream) -> TokenStream { i }
        #[cfg(all(unix, not(feature = "slim")))]
        #[proc_macro_derive(Big)]
        pub fn big(i: TokenStream) -> TokenStream { i }
    """
    assert macros_of(src, {'feature="json"', "unix"}) == [Macro("bang", "json", "json", ()),
                                                          Macro("derive", "Big", "big", ())]
    assert macros_of(src, {'feature="slim"', "unix"}) == []


def test_macros_declared_through_macro_rules_are_expanded() -> None:
    assert macros_of("""
        macro_rules! derive {
            ($(#[$attr:meta])* $trait:ident => $outer:ident => $inner:path) => {
                $(#[$attr])*
                #[proc_macro_derive($trait, attributes(zerocopy))]
                pub fn $outer(ts: TokenStream) -> TokenStream { $inner(ts) }
            };
        }
        macro_rules! create_derive(
            ($feature:literal, $trait_:ident, $fn_name: ident $(,$attribute:ident)* $(,)?) => {
                #[cfg(feature = $feature)]
                #[proc_macro_derive($trait_, attributes($($attribute),*))]
                pub fn $fn_name(input: TokenStream) -> TokenStream { input }
            }
        );
        derive!(KnownLayout => derive_known_layout => crate::derive::known_layout::derive);
        derive!(#[doc(hidden)] Project => derive_project => crate::derive::project::derive);
        create_derive!("from", From, from_derive, from);
        create_derive!("into", Into, into_derive, into, owned,);
        create_derive!("add", Add, add_derive);
    """, {'feature="from"', 'feature="add"'}) == [
        Macro("derive", "KnownLayout", "derive_known_layout", ("zerocopy",)),
        Macro("derive", "Project", "derive_project", ("zerocopy",)),
        Macro("derive", "From", "from_derive", ("from",)), Macro("derive", "Add", "add_derive", ())]


# -- the rewritten text ---------------------------------------------------------------------------------------

def test_the_attributes_become_spaces_and_every_line_and_column_stays() -> None:
    src = textwrap.dedent("""\
        use proc_macro::TokenStream; // "#[proc_macro]" stays in this comment
        #[proc_macro_derive(Serialize,
                            attributes(serde))] #[inline]
        pub fn derive_serialize(i: TokenStream) -> TokenStream { i }
        macro_rules! gen { ($n:ident) => { #[proc_macro] pub fn $n(i: TokenStream) -> TokenStream { i } }; }
        gen!(json);
    """)
    out = find_macros(src, "demo 1.0.0").text
    before, after = src.splitlines(), out.splitlines()
    assert after[:len(before)] == [
        'use proc_macro::TokenStream; // "#[proc_macro]" stays in this comment',
        " " * len(before[1]),
        " " * before[2].index(" #[inline]") + " #[inline]",
        before[3],
        before[4].replace("#[proc_macro]", " " * len("#[proc_macro]")),
        before[5],
    ]
    assert out[len(src):] == export_call(find_macros(src, "demo 1.0.0").macros)


def test_the_export_call_has_the_protocols_form() -> None:
    assert export_call([Macro("derive", "Serialize", "derive_serialize", ("serde", "other_helper")),
                        Macro("derive", "Plain", "derive_plain", ()), Macro("bang", "json", "json", ()),
                        Macro("attr", "main", "main", ())]) == textwrap.dedent("""\
        ::proc_macro::__cratecage_export! {
            derive Serialize => derive_serialize (serde, other_helper),
            derive Plain => derive_plain (),
            bang json => json,
            attr main => main,
        }
    """)


# -- what fails closed -------------------------------------------------------------------------------------

@pytest.mark.parametrize("src, line, what", [
    ("\n#[proc_macro]\npub(crate) fn a(i: TokenStream) -> TokenStream { i }\n", 2, "other than a `pub fn`"),
    ("#[proc_macro]\nfn a(i: TokenStream) -> TokenStream { i }\n", 1, "other than a `pub fn`"),
    ("mod m {\n    #[proc_macro_derive(A)]\n    pub fn a(i: TokenStream) -> TokenStream { i }\n}\n", 2,
     "does not look for proc macros"),
    ("macro_rules! g { ($n:ident) => { #[proc_macro] pub fn $n() {} }; }\nmod m {\n    g!(x);\n}\n", 3,
     "used where cratecage does not expand it"),
    ("macro_rules! g { ($n:ident) => { #[proc_macro] pub fn $n() {} }; }\ng!(1 + 2);\n", 2, "cannot expand"),
    ("#[proc_macro_derive(A = 1)]\npub fn a(i: TokenStream) -> TokenStream { i }\n", 1, "cannot read"),
    ("#[proc_macro]\n#[proc_macro_attribute]\npub fn a(i: TokenStream) -> TokenStream { i }\n", 1, "more than one"),
    ("\n\nconst S: &str = \"open\n", 3, "unterminated literal"),
    ("#[cfg_attr(unix, proc_macro, inline)]\npub fn a(i: TokenStream) -> TokenStream { i }\n", 1, "other attributes"),
])
def test_what_the_rewrite_cannot_understand_is_an_error_naming_the_crate_and_line(src: str, line: int,
                                                                                   what: str) -> None:
    fails(src, line, what, cfgs={"unix"})


def test_a_cfg_to_decide_without_cfgs_is_an_error() -> None:
    fails("#[cfg(feature = \"x\")]\n#[proc_macro]\npub fn a(i: TokenStream) -> TokenStream { i }\n", 1,
          "no cfgs to decide it with")


@pytest.mark.parametrize("src", [
    "#[cfg_attr(" + "all(" * 5000 + "unix" + ")" * 5000 + ", proc_macro)]\npub fn m(i: TokenStream) -> TokenStream { i }\n",
    "#[cfg(" + "not(" * 5000 + "unix" + ")" * 5000 + ")]\n#[proc_macro]\npub fn m(i: TokenStream) -> TokenStream { i }\n",
], ids=["cfg_attr-all", "cfg-not"])
def test_a_root_nested_too_deep_for_the_rewrite_is_one_error_naming_the_crate(src: str) -> None:
    """A hostile root nests its predicates 5000 deep: one `cratecage:` line, never a Python traceback."""
    with pytest.raises(RewriteError) as raised:
        macros_of(src, {"unix"})
    rendered = raised.value.render()
    assert rendered.startswith("cratecage: proc-macro crate demo 1.0.0: ") and "too deep" in rendered
    assert len(rendered.splitlines()) == 1


# -- real crate roots against rustc ---------------------------------------------------------------------------

DECL = re.compile(r'ProcMacro::(custom_derive|attr|bang)\(\s*"([^"]*)",\s*(?:&\[([^\]]*)\],\s*)?([\w#]+)\)')
KIND = {"custom_derive": "derive", "attr": "attr", "bang": "bang"}
ONLY_PROC_MACRO = "is only usable with crates of the `proc-macro` crate type"


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Each proc-macro package of fixtures/macro-roots: its root, edition and enabled features."""
    ws = tmp_path_factory.mktemp("macro-roots") / "ws"
    shutil.copytree(FIXTURES / "macro-roots", ws)
    done = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ws, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads(done.stdout)
    features = {n["id"]: n["features"] for n in meta["resolve"]["nodes"]}
    out = []
    for pkg in meta["packages"]:
        for target in pkg["targets"]:
            if "proc-macro" in target["kind"]:
                out.append({"name": f"{pkg['name']}-{pkg['version']}", "root": target["src_path"],
                            "edition": target["edition"], "features": features[pkg["id"]]})
    return out


def rustc_declares(root: dict, cfg_args: list[str]) -> list[Macro]:
    done = subprocess.run(["rustc", "--edition", root["edition"], "--crate-type", "proc-macro", "--crate-name",
                           "probe", "-Zunpretty=expanded", *cfg_args, root["root"]],
                          capture_output=True, text=True, env={**os.environ, "RUSTC_BOOTSTRAP": "1"})
    decls = done.stdout[done.stdout.find("_DECLS"):]
    assert decls, f"rustc printed no _DECLS for {root['name']}: {done.stderr[-1000:]}"
    return [Macro(KIND[kind], name, fn, tuple(h.strip().strip('"') for h in (helpers or "").split(",") if h.strip()))
            for kind, name, helpers, fn in DECL.findall(decls[:decls.find("];")])]


def test_every_real_root_declares_what_rustc_declares_and_keeps_nothing_rustc_refuses(roots: list[dict]) -> None:
    host = subprocess.run(["rustc", "--print", "cfg"], capture_output=True, text=True, check=True).stdout
    assert len(roots) >= 20
    for root in roots:
        cfg_words = [f'feature="{f}"' for f in root["features"]]
        cfg_args = [a for w in cfg_words for a in ("--cfg", w)]
        text = Path(root["root"]).read_text()
        found = find_macros(text, root["name"], lambda: parse_cfgs([*cfg_words, *host.splitlines()]))
        assert found.macros == rustc_declares(root, cfg_args), root["name"]
        assert found.macros or root["name"].startswith("derive_more-impl"), root["name"]
        assert found.text.count("\n") == text.count("\n") + len(found.macros) + 2 - (not text.endswith("\n"))
        # rustc only parses and expands it (`mod x;` from stdin resolves in its cwd: the root's directory)
        done = subprocess.run(["rustc", "--edition", root["edition"], "--crate-type", "lib", "--crate-name", "probe",
                               "-Zunpretty=expanded", *cfg_args, "-"], input=found.text, capture_output=True,
                              text=True, cwd=os.path.dirname(root["root"]),
                              env={**os.environ, "RUSTC_BOOTSTRAP": "1"})
        assert ONLY_PROC_MACRO not in done.stderr, root["name"]
