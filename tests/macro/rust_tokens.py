"""Rust source as a list of tokens, to compare two printings of the same expansion token for token.

`rustc -Zunpretty=expanded` prints the crate after expansion; where the sandboxed and the native build print
different whitespace for the same tokens the expansions are still the same, and where a token differs they
are not. `tokens` follows the Reference's lexical grammar closely enough for printed Rust: identifiers (raw
too), lifetimes, char/byte/string/byte-string/C-string literals raw or not (suffixes kept), numbers with
suffixes and exponents (`1..2` and `x.0.1` stay apart), doc comments (the printer writes doc attributes as
`///`), punctuation glued greedily as the Reference lists it. Plain comments and whitespace are dropped.
`first_difference` renders the place where two token lists part, with the item it lies in and the macro
crates that item names.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

PUNCTUATION: Final = sorted(
    ("<<=", ">>=", "...", "..=", "::", "->", "=>", "<-", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=",
     "/=", "%=", "^=", "&=", "|=", "<<", ">>", "..", *"+-*/%^!&|=<>@.,;:#$?~()[]{}"),
    key=len, reverse=True)

_IDENT = r"(?:r#)?[^\W\d]\w*"
_SUFFIX = r"(?:[^\W\d]\w*)?"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_RULES: Final = [  # (kind, pattern), tried in this order at each position
    ("space", r"\s+"),
    ("doc", r"///(?!/)[^\n]*|//![^\n]*"),
    ("comment", r"//[^\n]*"),
    ("raw-string", r'(?:br|cr|r)(?P<hashes>#*)"(?s:.*?)"(?P=hashes)' + _SUFFIX),
    ("string", r"(?:b|c)?" + _QUOTED + _SUFFIX),
    ("char", r"b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]+\}|.))'" + _SUFFIX),
    ("lifetime", r"'(?:r#)?[^\W\d]\w*(?!')"),
    ("number", r"(?:0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)" + _SUFFIX
               + r"|\d[\d_]*(?:\.(?![.\w])|\.\d[\d_]*)?(?:[eE][+-]?[\d_]*\d[\d_]*)?" + _SUFFIX),
    ("ident", _IDENT),
    ("punct", "|".join(re.escape(p) for p in PUNCTUATION)),
]
_TOKEN: Final = re.compile("|".join(f"(?P<{kind.replace('-', '_')}>{pattern})" for kind, pattern in _RULES))


class Token(NamedTuple):
    kind: str
    text: str
    line: int


def _block_comment_end(text: str, start: int) -> int:
    """The index after the `*/` closing the (nesting) block comment opened at `start`."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ValueError(f"unterminated block comment at offset {start}")


def tokens(text: str) -> list[Token]:
    """The tokens of `text` (module docstring); ValueError on a character no rule accepts."""
    out: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        if text.startswith("/*", pos):
            end = _block_comment_end(text, pos)
            body = text[pos:end]
            if (body.startswith("/**") and not body.startswith("/***") and body != "/**/") or body.startswith("/*!"):
                out.append(Token("doc", body, line))
        else:
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise ValueError(f"no token at line {line}: {text[pos:pos + 40]!r}")
            end, kind = match.end(), match.lastgroup or ""
            if kind not in ("space", "comment"):
                out.append(Token(kind.replace("_", "-"), match.group(), line))
        line += text.count("\n", pos, end)
        pos = end
    return out


# crates whose paths an expansion names, and the macro crate that writes them
MACRO_PATHS: Final = {
    "serde": "serde_derive", "_serde": "serde_derive", "thiserror": "thiserror-impl", "clap": "clap_derive",
    "async_trait": "async-trait", "pin_project": "pin-project-internal", "strum": "strum_macros",
    "derive_more": "derive_more-impl", "tokio": "tokio-macros", "zerocopy": "zerocopy-derive",
    "tracing": "tracing-attributes", "num_enum": "num_enum_derive", "displaydoc": "displaydoc",
    "paste": "paste", "rustversion": "rustversion",
}


def _item_start(toks: list[Token], index: int) -> int:
    """The first token of the top-level item holding toks[index]: after the last `;` or `}` at depth 0."""
    depth, start = 0, 0
    for i, tok in enumerate(toks[:index]):
        if tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.text in (")", "]", "}"):
            depth -= 1
            if depth == 0 and tok.text == "}":
                start = i + 1
        elif depth == 0 and tok.text == ";":
            start = i + 1
    return start


def first_difference(native: list[Token], sandboxed: list[Token], context: int = 12) -> str | None:
    """None when the lists are equal; else the tokens around the first difference on each side, its line in
    each printing, the item it lies in and the macro crates named there."""
    index = next((i for i, (a, b) in enumerate(zip(native, sandboxed)) if a[:2] != b[:2]),
                 None if len(native) == len(sandboxed) else min(len(native), len(sandboxed)))
    if index is None:
        return None
    start = _item_start(native, index)
    item = native[start:index + context]
    macros = sorted({MACRO_PATHS[t.text] for t in item if t.text in MACRO_PATHS})
    lo = max(start, index - context)

    def show(toks: list[Token]) -> str:
        where = toks[index].line if index < len(toks) else "end"
        return (f"line {where}: " + " ".join(t.text for t in toks[lo:index]) + " >>> "
                + " ".join(t.text for t in toks[index:index + context]))

    return (f"token {index} differs, in the item `{' '.join(t.text for t in native[start:start + 8])} ...` "
            f"(macros named there: {', '.join(macros) or 'none'})\n  native:    {show(native)}\n"
            f"  sandboxed: {show(sandboxed)}")
