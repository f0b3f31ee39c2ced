"""A proc-macro crate root made compilable as a wasm32-wasip1 `cdylib`: its macros found, their attributes
blanked, an export call appended (PROTOCOL.md, "The guest").

Why: rustc rejects `#[proc_macro_derive]`, `#[proc_macro]` and `#[proc_macro_attribute]` in any crate type
but `proc-macro`, which wasm32-wasip1 cannot build (notes/sandbox-experiments.md §2). Those attributes may
only stand on `pub fn`s of the root module, so the rewrite is local to the root file. Each attribute is
replaced by spaces (every line and column of the file stays where it was, so diagnostics point at the
original), and one `::proc_macro::__cratecage_export! { ... }` call is appended that names every macro: the
wasm `proc_macro` crate expands it to the module's exports.

What it understands, as rustc does (each form checked against rustc 1.95):
  - the three attributes on `pub fn` items of the root, among other attributes and doc comments, with
    trailing commas, `r#` names, and inside `#[cfg_attr(predicate, ...)]`;
  - `#[cfg(...)]` on such an item (and `#[cfg_attr]`), decided with the unit's cfgs (`cfgs`): a macro
    compiled out natively is not exported;
  - macros declared through a `macro_rules!` of the root invoked at the root (zerocopy-derive,
    derive_more 0.99): the invocations are expanded (`_Expander`, the fragments such macros use) and the
    attributes blanked inside the definition, so every expansion loses them.
Anything else that names one of the attributes (a `pub(crate) fn`, an attribute in a module or a function
body, an invocation of such a `macro_rules!` outside the root's item level, a macro the expander cannot
match) is a `RewriteError` naming the crate and the line: a macro is never silently left out. The wasm
compile is the second check: an attribute left in place fails it.

Standard library only, pure logic: no file is read here.
"""

from __future__ import annotations

import bisect
import re
from typing import Callable, Iterable, NamedTuple

from shim.errors import CratecageError

KINDS = {"proc_macro_derive": "derive", "proc_macro": "bang", "proc_macro_attribute": "attr"}
EXPORT_MACRO = "::proc_macro::__cratecage_export!"

OPEN = {"(": ")", "[": "]", "{": "}"}
# Longest first: the punctuation a macro matcher may need whole (`=>`, `::`, `$`).
JOINED = ("::", "=>", "->")


class RewriteError(CratecageError):
    """A proc-macro crate root whose macros cannot all be found."""


class Macro(NamedTuple):
    """One macro of the crate (PROTOCOL.md, "Between the Python pieces")."""

    kind: str  # "derive", "bang" or "attr"
    name: str  # what users write: the derive's name, else the function's (without `r#`)
    function: str  # the root function, as written (`r#try` stays raw)
    helpers: tuple[str, ...]  # a derive's helper attributes


class Rewritten(NamedTuple):
    macros: list[Macro]
    text: str


# -- tokens -----------------------------------------------------------------------------------------------

class Tok(NamedTuple):
    kind: str  # "ident", "punct", "lit", "life", "group"
    text: str  # a group's opening delimiter
    start: int  # offset in the text (of the opening delimiter for a group)
    end: int  # offset just past it (past the closing delimiter for a group)
    line: int
    trees: tuple = ()  # a group's contents

    @property
    def bare(self) -> str:
        return self.text[2:] if self.kind == "ident" and self.text.startswith("r#") else self.text


def _is(t: Tok | None, kind: str, text: str | None = None) -> bool:
    return t is not None and t.kind == kind and (text is None or t.text == text)


class _Lexer:
    """Rust's lexical structure, enough to skip comments and literals and to group delimiters."""

    def __init__(self, text: str, crate: str) -> None:
        self.s, self.crate, self.i = text, crate, 0
        self.newlines: list[int] | None = None  # where each line ends, once a line is asked for

    def line(self, at: int) -> int:
        """Counting from the start for every group made a root of many groups cost quadratic time."""
        if self.newlines is None:
            self.newlines = [m.start() for m in re.finditer("\n", self.s)]
        return bisect.bisect_left(self.newlines, at) + 1

    def fail(self, at: int, what: str) -> RewriteError:
        return RewriteError(f"proc-macro crate {self.crate}: line {self.line(at)} of its crate root: {what}",
                            hint="cratecage compiles proc macros for wasm from their crate root's text; "
                                 "report this crate to cratecage")

    def trees(self) -> list[Tok]:
        stack: list[tuple[str, int, list[Tok]]] = [("", 0, [])]
        for tok in self._tokens():
            if tok.kind == "punct" and tok.text in OPEN:
                stack.append((tok.text, tok.start, []))
            elif tok.kind == "punct" and tok.text in ")]}":
                delim, start, inner = stack.pop() if len(stack) > 1 else ("", tok.start, [])
                if OPEN.get(delim) != tok.text:
                    raise self.fail(tok.start, f"unbalanced `{tok.text}`")
                stack[-1][2].append(Tok("group", delim, start, tok.end, self.line(start), tuple(inner)))
            else:
                stack[-1][2].append(tok)
        if len(stack) > 1:
            raise self.fail(stack[-1][1], f"unclosed `{stack[-1][0]}`")
        return stack[0][2]

    def _tokens(self) -> Iterable[Tok]:
        s, n = self.s, len(self.s)
        line = 1
        while self.i < n:
            c, start = s[self.i], self.i
            if c == "\n":
                line += 1
                self.i += 1
                continue
            if c.isspace():
                self.i += 1
                continue
            if s.startswith("//", start):
                end = s.find("\n", start)
                self.i = n if end < 0 else end
                continue
            if s.startswith("/*", start):
                self._block_comment()
            elif c.isalpha() or c == "_" or ord(c) > 127:
                kind = self._word()
                yield Tok(kind, s[start:self.i], start, self.i, line)
            elif c.isdigit():
                self._number()
                yield Tok("lit", s[start:self.i], start, self.i, line)
            elif c == '"':
                self._quoted(start + 1, '"')
                yield Tok("lit", s[start:self.i], start, self.i, line)
            elif c == "'":
                kind = self._quote_or_lifetime()
                yield Tok(kind, s[start:self.i], start, self.i, line)
            else:
                text = next((p for p in JOINED if s.startswith(p, start)), c)
                self.i += len(text)
                yield Tok("punct", text, start, self.i, line)
            line += s.count("\n", start, self.i)

    def _block_comment(self) -> None:
        s, depth, start = self.s, 0, self.i
        while self.i < len(s):
            if s.startswith("/*", self.i):
                depth, self.i = depth + 1, self.i + 2
            elif s.startswith("*/", self.i):
                depth, self.i = depth - 1, self.i + 2
                if depth == 0:
                    return
            else:
                self.i += 1
        raise self.fail(start, "unterminated block comment")

    def _word(self) -> str:
        """An identifier, keyword, raw identifier, or a prefixed literal (b"", br#""#, c"", r"", b'')."""
        s, start = self.s, self.i
        while self.i < len(s) and (s[self.i].isalnum() or s[self.i] == "_" or ord(s[self.i]) > 127):
            self.i += 1
        word = s[start:self.i]
        nxt = s[self.i] if self.i < len(s) else ""
        if word == "r" and nxt == "#" and self.i + 1 < len(s) and (s[self.i + 1].isalpha() or s[self.i + 1] == "_"):
            self.i += 1  # r#ident
            self._suffix()
            return "ident"
        if word in ("r", "br", "cr") and nxt in '#"':
            hashes = 0
            while s.startswith("#", self.i + hashes):
                hashes += 1
            if not s.startswith('"', self.i + hashes):
                raise self.fail(start, "a raw string literal the lexer cannot read")
            close = s.find('"' + "#" * hashes, self.i + hashes + 1)
            if close < 0:
                raise self.fail(start, "unterminated raw string")
            self.i = close + 1 + hashes
            self._suffix()
            return "lit"
        if word in ("b", "c") and nxt == '"':
            self._quoted(self.i + 1, '"')
            return "lit"
        if word == "b" and nxt == "'":
            self._quoted(self.i + 1, "'")
            return "lit"
        return "ident"

    def _quoted(self, at: int, close: str) -> None:
        s = self.s
        while at < len(s):
            if s[at] == "\\":
                at += 2
            elif s[at] == close:
                self.i = at + 1
                self._suffix()
                return
            else:
                at += 1
        raise self.fail(self.i, "unterminated literal")

    def _suffix(self) -> None:
        s = self.s
        while self.i < len(s) and (s[self.i].isalnum() or s[self.i] == "_"):
            self.i += 1

    def _quote_or_lifetime(self) -> str:
        s, at = self.s, self.i + 1
        if at < len(s) and s[at] == "\\" or at + 1 < len(s) and s[at + 1] == "'":
            self._quoted(at, "'")
            return "lit"
        self.i = at
        if s.startswith("r#", self.i):
            self.i += 2
        self._suffix()
        return "life"

    def _number(self) -> None:
        s = self.s
        while self.i < len(s) and (s[self.i].isalnum() or s[self.i] == "_"
                                   or s[self.i] == "." and self.i + 1 < len(s) and s[self.i + 1].isdigit()):
            self.i += 1


# -- cfg predicates -------------------------------------------------------------------------------------------

def parse_cfgs(words: Iterable[str]) -> frozenset[str]:
    """`--cfg` values and `rustc --print cfg` lines as one set: `unix`, `feature="derive"`."""
    out = set()
    for word in words:
        name, eq, value = word.strip().partition("=")
        value = value.strip()
        out.add(f"{name.strip()}={value}" if eq else name.strip())
    return frozenset(w for w in out if w)


# -- the scan ----------------------------------------------------------------------------------------------------

class _Scan:
    def __init__(self, text: str, crate: str, cfgs: Callable[[], frozenset[str]] | None) -> None:
        self.lexer = _Lexer(text, crate)
        self.text = text
        self.crate = crate
        self._cfgs_of = cfgs
        self._cfgs: frozenset[str] | None = None
        self.macros: list[Macro] = []
        self.blank: set[tuple[int, int]] = set()  # (start, end) of attributes to blank
        self.claimed: set[int] = set()  # starts of attribute-name tokens understood
        self.generators: dict[str, list[tuple[list[Tok], list[Tok]]]] = {}  # macro_rules! that declare macros
        self.generator_defs: set[int] = set()  # start offsets of their definitions' `macro_rules` tokens
        self.invoked: set[int] = set()  # start offsets of their invocations' names

    def fail(self, at: int, what: str) -> RewriteError:
        return self.lexer.fail(at, what)

    def cfg_set(self, at: int) -> frozenset[str]:
        if self._cfgs is None:
            if self._cfgs_of is None:
                raise self.fail(at, "a proc macro under `cfg` or `cfg_attr`, and no cfgs to decide it with")
            self._cfgs = self._cfgs_of()
        return self._cfgs

    # A cfg predicate: `name`, `name = "value"`, all(..), any(..), not(..), true, false.
    def holds(self, trees: tuple | list, at: int) -> bool:
        parts = _split_commas(list(trees))
        if len(parts) != 1:
            raise self.fail(at, "a cfg predicate that is not one predicate")
        p = parts[0]
        head = p[0] if p else None
        if head is None or head.kind != "ident":
            raise self.fail(at, "a cfg predicate the rewrite cannot read")
        if len(p) == 2 and _is(p[1], "group", "(") and head.text in ("all", "any", "not"):
            args = [a for a in _split_commas(list(p[1].trees)) if a]
            vals = [self.holds(a, head.start) for a in args]
            if head.text == "not":
                if len(vals) != 1:
                    raise self.fail(head.start, "`not` takes one cfg predicate")
                return not vals[0]
            return all(vals) if head.text == "all" else any(vals)
        if len(p) == 1:
            if head.text in ("true", "false"):
                return head.text == "true"
            return head.text in self.cfg_set(head.start)
        if len(p) == 3 and _is(p[1], "punct", "=") and p[2].kind == "lit":
            return f"{head.text}={p[2].text}" in self.cfg_set(head.start)
        raise self.fail(head.start, "a cfg predicate the rewrite cannot read")

    # -- attributes ----------------------------------------------------------------------------------------
    def attr_macros(self, attr: Tok) -> tuple[list[tuple[str, Tok, tuple]], bool, bool]:
        """(the proc-macro attributes an attribute group `[...]` holds once cfg_attr is applied: (kind, name
        token, arguments); whether its `cfg` holds; whether it is to be blanked)."""
        body = list(attr.trees)
        head = body[0] if body else None
        if head is None or head.kind != "ident":
            return [], True, False
        if head.text in KINDS and len(body) <= 2:
            self.claimed.add(head.start)
            args = body[1].trees if len(body) == 2 and _is(body[1], "group", "(") else None
            if len(body) == 2 and args is None:
                raise self.fail(head.start, f"`#[{head.text}]` with arguments the rewrite cannot read")
            return [(KINDS[head.text], head, args or ())], True, True
        if head.text == "cfg" and len(body) == 2 and _is(body[1], "group", "("):
            return [], self.holds(body[1].trees, head.start), False
        if head.text == "cfg_attr" and len(body) == 2 and _is(body[1], "group", "("):
            parts = _split_commas(list(body[1].trees))
            named = [p for p in parts[1:] if p and p[0].kind == "ident" and p[0].text in KINDS]
            nested = [p for p in parts[1:] if p and p[0].kind == "ident" and p[0].text == "cfg_attr"]
            if not named and not nested:
                return [], True, False
            if nested or len(named) != len([p for p in parts[1:] if p]):
                raise self.fail(head.start, "a proc-macro attribute inside a `cfg_attr` with other attributes")
            applies = self.holds(parts[0], head.start)
            found = []
            for p in named:
                self.claimed.add(p[0].start)
                args = p[1].trees if len(p) == 2 and _is(p[1], "group", "(") else ()
                if len(p) > 2 or len(p) == 2 and not _is(p[1], "group", "("):
                    raise self.fail(p[0].start, f"`{p[0].text}` with arguments the rewrite cannot read")
                if applies:
                    found.append((KINDS[p[0].text], p[0], args))
            return found, True, True
        return [], True, False

    def scan_items(self, trees: list[Tok], expanded: bool = False) -> None:
        """The root's items (or a macro expansion's): attribute runs, the `pub fn` they stand on,
        `macro_rules!` definitions and invocations of those that declare macros."""
        i, run = 0, []  # run: the attribute groups of the item being read, with their `#` token
        while i < len(trees):
            t = trees[i]
            nxt = trees[i + 1] if i + 1 < len(trees) else None
            if _is(t, "punct", "#") and _is(nxt, "punct", "!") and i + 2 < len(trees) \
                    and _is(trees[i + 2], "group", "["):
                i += 3  # an inner attribute
                continue
            if _is(t, "punct", "#") and _is(nxt, "group", "["):
                run.append((t, nxt))
                i += 2
                continue
            found: list[tuple[str, Tok, tuple]] = []
            live = True
            for hash_tok, group in run:
                got, holds, blank = self.attr_macros(group)
                live = live and holds
                if blank and not expanded:
                    self.blank.add((hash_tok.start, group.end))
                elif blank and not any(s <= hash_tok.start and group.end <= e for s, e in self.blank):
                    raise self.fail(group.start, "a proc-macro attribute passed into a `macro_rules!` invocation")
                found += got
            run = []
            if _is(t, "ident", "macro_rules") and _is(nxt, "punct", "!") and i + 3 < len(trees):
                i = self.define(trees, i)
                continue
            if t.kind == "ident" and t.text in self.generators and _is(nxt, "punct", "!") \
                    and i + 2 < len(trees) and trees[i + 2].kind == "group":
                self.invoked.add(t.start)
                if live:
                    self.scan_items(self.expand(t, trees[i + 2]), expanded=True)
                i += 3
                continue
            if found:
                self.declare(found, trees, i, live)
            i += 1

    def declare(self, found: list[tuple[str, Tok, tuple]], trees: list[Tok], i: int, live: bool) -> None:
        at = found[0][1].start
        if len(found) > 1:
            raise self.fail(at, "more than one proc-macro attribute on one function")
        kind, name_tok, args = found[0]
        head = trees[i:i + 3]
        if not (len(head) == 3 and _is(head[0], "ident", "pub") and _is(head[1], "ident", "fn")
                and head[2].kind == "ident"):
            raise self.fail(at, f"`#[{name_tok.text}]` on something other than a `pub fn` (rustc requires one)")
        if not live:
            return
        fn = head[2].text
        if kind == "derive":
            parts = [p for p in _split_commas(list(args))]
            while parts and not parts[-1]:
                parts.pop()
            if not parts or len(parts[0]) != 1 or parts[0][0].kind != "ident" or len(parts) > 2:
                raise self.fail(at, "a `proc_macro_derive` attribute the rewrite cannot read")
            helpers: tuple[str, ...] = ()
            if len(parts) == 2:
                p = parts[1]
                if not (len(p) == 2 and _is(p[0], "ident", "attributes") and _is(p[1], "group", "(")):
                    raise self.fail(at, "a `proc_macro_derive` attribute the rewrite cannot read")
                names = [h for h in _split_commas(list(p[1].trees)) if h]
                if any(len(h) != 1 or h[0].kind != "ident" for h in names):
                    raise self.fail(at, "a helper attribute that is not a name")
                helpers = tuple(h[0].bare for h in names)
            self.macros.append(Macro("derive", parts[0][0].bare, fn, helpers))
        else:
            if args:
                raise self.fail(at, f"`#[{name_tok.text}]` with arguments")
            self.macros.append(Macro(kind, head[2].bare, fn, ()))

    # -- macro_rules! that declare macros ----------------------------------------------------------------
    def define(self, trees: list[Tok], i: int) -> int:
        """Read `macro_rules! name { (matcher) => { transcriber }; ... }`; returns the index past it."""
        name, body = trees[i + 2], trees[i + 3]
        end = i + 4
        if end < len(trees) and _is(trees[end], "punct", ";"):
            end += 1
        if name.kind != "ident" or body.kind != "group":
            return i + 1
        if not _mentions(body.trees):
            return end
        rules = []
        for arm in _split(list(body.trees), ";"):
            if not arm:
                continue
            if not (len(arm) == 3 and arm[0].kind == "group" and _is(arm[1], "punct", "=>")
                    and arm[2].kind == "group"):
                raise self.fail(arm[0].start, f"a `macro_rules! {name.text}` arm the rewrite cannot read")
            rules.append((list(arm[0].trees), list(arm[2].trees)))
            self.claim_in(arm[2].trees)
        self.generators[name.text] = rules
        self.generator_defs.add(trees[i].start)
        return end

    def claim_in(self, trees: Iterable[Tok]) -> None:
        """Blank every proc-macro attribute of a transcriber (wherever its expansions go)."""
        trees = list(trees)
        for k, t in enumerate(trees):
            if _is(t, "punct", "#") and k + 1 < len(trees) and _is(trees[k + 1], "group", "["):
                g = list(trees[k + 1].trees)
                if g and g[0].kind == "ident" and (g[0].text in KINDS or g[0].text == "cfg_attr" and _mentions(g)):
                    self.blank.add((t.start, trees[k + 1].end))
            elif t.kind == "group":
                self.claim_in(t.trees)

    def expand(self, name: Tok, args: Tok) -> list[Tok]:
        for matcher, transcriber in self.generators[name.text]:
            binds = _Matcher().match(matcher, list(args.trees))
            if binds is not None:
                try:
                    return _transcribe(transcriber, binds)
                except _NoMatch as err:
                    raise self.fail(name.start, f"`{name.text}!`: {err}") from None
        raise self.fail(name.start, f"an invocation of `{name.text}!` that the rewrite cannot expand")

    # -- the final check -------------------------------------------------------------------------------------
    def check(self, trees: Iterable[Tok]) -> None:
        """Every mention of a proc-macro attribute was understood; every invocation of a macro_rules! that
        declares macros was expanded."""
        trees = list(trees)
        k, in_fn = 0, False
        while k < len(trees):
            t = trees[k]
            prev, nxt = trees[k - 1] if k else None, trees[k + 1] if k + 1 < len(trees) else None
            k += 1
            if t.kind == "group":
                if in_fn and t.text == "{":
                    in_fn = False  # a function body: nothing in it declares a macro (quote! output is data)
                else:
                    self.check(t.trees)
                continue
            in_fn = (in_fn or _is(t, "ident", "fn")) and not _is(t, "punct", ";")
            if t.kind != "ident":
                continue
            if t.start in self.generator_defs:
                k += 3  # `! name { ... }`: its transcribers were claimed (claim_in)
                continue
            named = t.text in ("proc_macro_derive", "proc_macro_attribute") or (
                t.text == "proc_macro" and (prev is None or _is(prev, "punct", ","))
                and (nxt is None or _is(nxt, "punct", ",") or _is(nxt, "group", "(")))
            if named and t.start not in self.claimed:
                raise self.fail(t.start, f"`{t.text}` where cratecage does not look for proc macros "
                                         "(only on a `pub fn` of the crate root)")
            if t.text in self.generators and _is(nxt, "punct", "!") and t.start not in self.invoked:
                raise self.fail(t.start, f"`{t.text}!` declares proc macros, and is used where cratecage "
                                         "does not expand it")


class _NoMatch(Exception):
    pass


def _split(trees: list[Tok], sep: str) -> list[list[Tok]]:
    parts: list[list[Tok]] = [[]]
    for t in trees:
        if _is(t, "punct", sep):
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _split_commas(trees: list[Tok]) -> list[list[Tok]]:
    return _split(trees, ",")


def _mentions(trees: Iterable[Tok]) -> bool:
    return any(t.text in KINDS and t.kind == "ident" or t.kind == "group" and _mentions(t.trees) for t in trees)


# -- a macro_rules! matcher for the fragments macro-declaring macros use -------------------------------------

FRAGMENTS = ("ident", "literal", "tt", "meta", "path", "lifetime", "vis", "ty", "expr", "block", "item")
STOP = {",", ";", "=>"}


class _Matcher:
    """Matches token trees against a matcher: `$x:frag`, `$( ... ) sep? op`, literal tokens. Fragments
    that are not single trees (`path`, `meta`, `ty`, `expr`, `vis`) take the trees up to the next `,` `;`
    or `=>` (or the end), which is what rustc's follow-set rules allow after them."""

    def match(self, matcher: list[Tok], trees: list[Tok]) -> dict | None:
        binds: dict = {}
        end = self._seq(matcher, trees, 0, binds)
        return binds if end == len(trees) else None

    def _seq(self, matcher: list[Tok], trees: list[Tok], pos: int, binds: dict) -> int | None:
        m = 0
        while m < len(matcher):
            tok = matcher[m]
            if _is(tok, "punct", "$") and m + 1 < len(matcher):
                nxt = matcher[m + 1]
                if nxt.kind == "group" and nxt.text == "(":
                    sep, op, m = self._rep_tail(matcher, m + 2)
                    pos = self._repeat(list(nxt.trees), sep, op, trees, pos, binds)
                    if pos is None:
                        return None
                    continue
                if nxt.kind == "ident" and m + 3 < len(matcher) and _is(matcher[m + 2], "punct", ":"):
                    frag = matcher[m + 3].text
                    end = self._fragment(frag, trees, pos)
                    if end is None:
                        return None
                    binds[nxt.text] = trees[pos:end]
                    pos, m = end, m + 4
                    continue
            if pos >= len(trees):
                return None
            got = trees[pos]
            if tok.kind == "group":
                if got.kind != "group" or got.text != tok.text:
                    return None
                inner: dict = {}
                if self._seq(list(tok.trees), list(got.trees), 0, inner) != len(got.trees):
                    return None
                binds.update(inner)
            elif got.kind == "group" or got.text != tok.text:
                return None
            pos, m = pos + 1, m + 1
        return pos

    @staticmethod
    def _rep_tail(matcher: list[Tok], m: int) -> tuple[str | None, str, int]:
        op = matcher[m].text if m < len(matcher) else ""
        if op in ("*", "+", "?"):
            return None, op, m + 1
        if m + 1 < len(matcher) and matcher[m + 1].text in ("*", "+", "?"):
            return matcher[m].text, matcher[m + 1].text, m + 2
        raise _NoMatch("a repetition without `*`, `+` or `?`")

    def _repeat(self, body: list[Tok], sep: str | None, op: str, trees: list[Tok], pos: int,
                binds: dict) -> int | None:
        found: list[dict] = []
        while pos <= len(trees):
            at = pos
            if found and sep is not None:
                if at < len(trees) and trees[at].kind != "group" and trees[at].text == sep:
                    at += 1
                else:
                    break
            inner: dict = {}
            end = self._seq(body, trees, at, inner)
            if end is None or end == pos:
                break
            found.append(inner)
            pos = end
            if op == "?":
                break
        if op == "+" and not found:
            return None
        for name in _names(body):
            binds[name] = [f.get(name, []) for f in found]
        return pos

    def _fragment(self, frag: str, trees: list[Tok], pos: int) -> int | None:
        if frag not in FRAGMENTS:
            raise _NoMatch(f"a `${frag}` fragment")
        if pos >= len(trees) and frag != "vis":
            return None
        got = trees[pos] if pos < len(trees) else None
        if frag == "ident":
            return pos + 1 if got is not None and got.kind == "ident" and got.text != "_" else None
        if frag == "lifetime":
            return pos + 1 if got is not None and got.kind == "life" else None
        if frag == "literal":
            if _is(got, "punct", "-") and pos + 1 < len(trees) and trees[pos + 1].kind == "lit":
                return pos + 2
            return pos + 1 if got is not None and (got.kind == "lit" or got.text in ("true", "false")) else None
        if frag in ("tt", "block", "item"):
            if frag == "block" and not _is(got, "group", "{"):
                return None
            return pos + 1
        end = pos
        angle = 0
        while end < len(trees):
            t = trees[end]
            if t.kind == "punct" and t.text in STOP and angle == 0:
                break
            angle += (t.text == "<") - (t.text == ">") if t.kind == "punct" else 0
            end += 1
        return end if end > pos or frag == "vis" else None


def _names(body: Iterable[Tok]) -> list[str]:
    body = list(body)
    out = []
    for k, t in enumerate(body):
        if _is(t, "punct", "$") and k + 1 < len(body) and body[k + 1].kind == "ident":
            out.append(body[k + 1].text)
        elif t.kind == "group":
            out += _names(t.trees)
    return out


def _transcribe(body: list[Tok], binds: dict) -> list[Tok]:
    out: list[Tok] = []
    k = 0
    while k < len(body):
        t = body[k]
        nxt = body[k + 1] if k + 1 < len(body) else None
        if _is(t, "punct", "$") and nxt is not None and nxt.kind == "ident" and nxt.text in binds:
            value = binds[nxt.text]
            if value and isinstance(value[0], list):
                raise _NoMatch(f"`${nxt.text}` used outside its repetition")
            out += value
            k += 2
        elif _is(t, "punct", "$") and _is(nxt, "group", "("):
            sep, op, k = _Matcher._rep_tail(body, k + 2)
            names = [n for n in _names(nxt.trees) if n in binds and isinstance(binds[n], list)
                     and (not binds[n] or isinstance(binds[n][0], list))]
            if not names:
                raise _NoMatch("a repetition with no repeated variable")
            count = len(binds[names[0]])
            for r in range(count):
                if r and sep is not None:
                    out.append(Tok("punct", sep, t.start, t.end, t.line))
                inner = {**binds, **{n: binds[n][r] for n in names if len(binds[n]) == count}}
                out += _transcribe(list(nxt.trees), inner)
        elif t.kind == "group":
            out.append(t._replace(trees=tuple(_transcribe(list(t.trees), binds))))
            k += 1
        else:
            out.append(t)
            k += 1
    return out


# -- the rewrite -------------------------------------------------------------------------------------------------

def find_macros(text: str, crate: str, cfgs: Callable[[], frozenset[str]] | None = None) -> Rewritten:
    """The macros a proc-macro crate root declares, in declaration order, and the root rewritten for a
    wasm `cdylib` (same lines and columns, plus the export call). `cfgs`: the unit's cfgs (its `--cfg`s and
    the host's `rustc --print cfg`, `parse_cfgs`), asked for only when a `cfg` must be decided."""
    scan = _Scan(text, crate, cfgs)
    try:
        trees = scan.lexer.trees()
        scan.scan_items(trees)
        scan.check(trees)
    except RecursionError:  # the cfg predicates, item lists and macro_rules matchers are walked recursively
        raise RewriteError(f"proc-macro crate {crate}: its crate root nests brackets or `cfg` predicates too deep "
                           "for cratecage to find its macros", hint="report this crate to cratecage") from None
    seen: dict[str, Macro] = {}
    for m in scan.macros:
        if m.name in seen:
            raise RewriteError(f"proc-macro crate {crate}: declares the macro `{m.name}` twice",
                               hint="report this crate to cratecage")
        seen[m.name] = m
    chars = list(text)
    for start, end in scan.blank:
        for k in range(start, end):
            if chars[k] not in "\r\n":
                chars[k] = " "
    out = "".join(chars)
    if not out.endswith("\n"):
        out += "\n"
    return Rewritten(scan.macros, out + export_call(scan.macros))


def export_call(macros: Iterable[Macro]) -> str:
    """`::proc_macro::__cratecage_export! { derive Name => fn (helpers), bang name => fn, ... }`."""
    lines = []
    for m in macros:
        if m.kind == "derive":
            lines.append(f"    derive {m.name} => {m.function} ({', '.join(m.helpers)}),")
        else:
            lines.append(f"    {m.kind} {m.name} => {m.function},")
    return EXPORT_MACRO + " {\n" + "".join(line + "\n" for line in lines) + "}\n"
