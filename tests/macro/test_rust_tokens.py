"""tests/macro/rust_tokens.py, the tokenizer test_macro_crates.py compares expansions with: each case a
printed text and the tokens it must give, and the difference report on a changed token."""

from __future__ import annotations

import pytest

from rust_tokens import first_difference, tokens

CASES = [
    ("a::b<'a>(x)", ["a", "::", "b", "<", "'a", ">", "(", "x", ")"]),
    ("r#fn r#type _x é", ["r#fn", "r#type", "_x", "é"]),
    ("'a' '\\'' b'\\xff' '\\u{1F600}' 'x'sfx 'static", ["'a'", "'\\''", "b'\\xff'", "'\\u{1F600}'", "'x'sfx", "'static"]),
    ('"a\\"b" b"x" c"y" "s"sfx', ['"a\\"b"', 'b"x"', 'c"y"', '"s"sfx']),
    ('r"x" r#"a "q" b"# br##"x"#y"## cr"c"', ['r"x"', 'r#"a "q" b"#', 'br##"x"#y"##', 'cr"c"']),
    ("1..2 1. 1.0f64 1e-7 0xffu8 1_000usize 2.5E+3", ["1", "..", "2", "1.", "1.0f64", "1e-7", "0xffu8", "1_000usize", "2.5E+3"]),
    ("x.0 a..=b a...b <<= >>= -> => != ..", ["x", ".", "0", "a", "..=", "b", "a", "...", "b", "<<=", ">>=", "->", "=>", "!=", ".."]),
    ("// gone\n/* gone /* nested */ */ a /**/ b //// gone", ["a", "b"]),
    ("/// doc\n//! inner\n/** block */ /*! inner */ x", ["/// doc", "//! inner", "/** block */", "/*! inner */", "x"]),
    ("#[doc = \"x\"] #![allow(x)]", ["#", "[", "doc", "=", '"x"', "]", "#", "!", "[", "allow", "(", "x", ")", "]"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:24] for c in CASES])
def test_printed_rust_splits_into_the_tokens_of_the_reference(text: str, expected: list[str]) -> None:
    assert [t.text for t in tokens(text)] == expected


def test_whitespace_does_not_count_and_a_changed_token_is_shown_with_its_item_and_macro() -> None:
    native = tokens("impl _serde::Serialize for A {\n fn f() { x(1u8) } }")
    assert first_difference(native, tokens("impl _serde :: Serialize for A { fn f(){x(1u8)}}")) is None
    report = first_difference(native, tokens("impl _serde::Serialize for A { fn f() { x(1i8) } }"))
    assert report is not None
    assert "token 14 differs" in report and "serde_derive" in report
    assert ">>> 1u8" in report and ">>> 1i8" in report
    assert first_difference(native, native[:-1]) is not None


def test_an_unknown_character_or_an_open_comment_is_an_error() -> None:
    for text in ("a \x00 b", "/* open"):
        with pytest.raises(ValueError):
            tokens(text)
