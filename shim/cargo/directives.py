"""Build-script stdout directives, parsed exactly as cargo parses them (the check is shim.build.directives).

How cargo reads the output (`BuildOutput::parse`, cargo/src/cargo/core/compiler/custom_build.rs, 1.77+):

  1. split the bytes on b"\\n" only (a "\\r" stays part of its line);
  2. decode each line as UTF-8; a line that is not valid UTF-8 is skipped (strict, not lossy);
  3. trim Rust's whitespace (`char::is_whitespace`) from both ends: indentation and a trailing "\\r" go;
  4. `cargo::` is checked before `cargo:`. `cargo::KEY=VALUE` is the new form: KEY is everything up to the
     first "=", any key but `CARGO_KEYS` fails the build, metadata is `cargo::metadata=NAME=VALUE`;
  5. `cargo:KEY=VALUE` is the old form only when the text after `cargo:` starts with one of
     `OLD_SYNTAX_KEYS` followed by "="; anything else is metadata `cargo:NAME=VALUE` (so `cargo:error=x`
     is metadata named "error", and `cargo: rustc-env=X=1` is metadata named " rustc-env");
  6. every other line is ignored (cargo keeps it in its `output` file and shows it with -vv).

Malformed directives (no "=", unknown new-form key, `rustc-env` without "=", bad `rustc-flags`) make
cargo fail the build: `Directive.problem` says why.
"""

from __future__ import annotations

import re
from typing import Callable, Final, Iterator, Union

from shim.record import record

# Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` removes. Python's own `str.strip()`
# would also remove U+001C..U+001F, which Rust keeps: a line starting with one of those is no directive.
RUST_WHITESPACE: Final = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                          "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

NEW_PREFIX: Final = "cargo::"
OLD_PREFIX: Final = "cargo:"

# Keys cargo still recognises after a single colon; its RESERVED_PREFIXES, each followed by "=".
OLD_SYNTAX_KEYS: Final[tuple[str, ...]] = (
    "rustc-flags", "rustc-link-lib", "rustc-link-search", "rustc-link-arg-cdylib", "rustc-cdylib-link-arg",
    "rustc-link-arg-bins", "rustc-link-arg-bin", "rustc-link-arg-tests", "rustc-link-arg-benches",
    "rustc-link-arg-examples", "rustc-link-arg", "rustc-cfg", "rustc-check-cfg", "rustc-env", "warning",
    "rerun-if-changed", "rerun-if-env-changed",
)
# Every key cargo accepts; `error` and `metadata` exist only in the `cargo::` form.
CARGO_KEYS: Final[tuple[str, ...]] = OLD_SYNTAX_KEYS + ("error", "metadata")

# rustc's `-L [KIND=]PATH` kinds (rustc_session::search_paths); any other "x=" is part of the path.
SEARCH_KINDS: Final = ("native", "crate", "dependency", "framework", "all")
# `-l [KIND[:MODIFIERS]=]NAME[:RENAME]` kinds whose library file we can look for in OUT_DIR, and its names.
LIB_FILES: Final[dict[str, tuple[str, ...]]] = {
    "": ("lib{}.a", "lib{}.so"),
    "static": ("lib{}.a",),
    "dylib": ("lib{}.so",),
}


@record(frozen=True)
class Directive:
    """One `cargo:`/`cargo::` line as cargo understands it.

    `value` is everything after `KEY=`; for old-form metadata (`cargo:NAME=VALUE`) it is `NAME=VALUE`,
    as it is for new-form `cargo::metadata=NAME=VALUE`. `problem` is why cargo would fail the build on
    this line, "" when cargo accepts it; then `canonical` is None.
    """

    key: str
    value: str
    raw: str  # the line as printed (decoded, not trimmed)
    new_syntax: bool
    problem: str = ""

    @property
    def canonical(self) -> str | None:
        """The line cargo gets: same syntax as printed (a package whose rust-version predates 1.77 may
        not use `cargo::`), no surrounding whitespace. Parsing it again gives this same directive."""
        if self.problem:
            return None
        if self.new_syntax:
            return f"{NEW_PREFIX}{self.key}={self.value}"
        if self.key == "metadata":
            return f"{OLD_PREFIX}{self.value}"
        return f"{OLD_PREFIX}{self.key}={self.value}"

    @property
    def target(self) -> str:
        """What a grant names for this directive: the variable of `rustc-env`, the path of
        `rustc-link-search`, the library of `rustc-link-lib`, else the whole value."""
        return TARGETS.get(self.key, _whole)(self.value)

    @property
    def grant_item(self) -> str:
        """The `directives` list item that permits exactly this directive, e.g. "rustc-env=LD_PRELOAD"."""
        return f"{self.key}={self.target}"


Line = Union[Directive, str]  # a directive, or a line that is none (decoded, untrimmed)


def _parse_line(line: str) -> Directive | None:
    """Steps 3-5 of the module docstring for one decoded line; None when it is no directive."""
    text = line.strip(RUST_WHITESPACE)
    if text.startswith(NEW_PREFIX):
        data = text[len(NEW_PREFIX):]
        key, eq, value = data.partition("=")
        if not eq:
            return Directive(data, "", line, True, "expected `cargo::KEY=VALUE`, found no `=`")
        value = value.rstrip(RUST_WHITESPACE)
        problem = "" if key in CARGO_KEYS else f"unknown key `{key}`"
        return Directive(key, value, line, True, problem or _value_problem(key, value))
    if text.startswith(OLD_PREFIX):
        data = text[len(OLD_PREFIX):]
        for key in OLD_SYNTAX_KEYS:
            if data.startswith(key + "="):
                value = data[len(key) + 1:].rstrip(RUST_WHITESPACE)
                return Directive(key, value, line, False, _value_problem(key, value))
        return Directive("metadata", data, line, False, _value_problem("metadata", data))
    return None


def parse_lines(stdout: bytes | bytearray | str) -> Iterator[Line]:
    """Every line of a build script's stdout, as a Directive or (not a directive) as text. Lines that
    are not UTF-8 are dropped, as cargo drops them; so is the empty remainder after a final newline."""
    raw_lines: list[bytes] | list[str] = (stdout.split(b"\n") if isinstance(stdout, (bytes, bytearray))
                                          else stdout.split("\n"))
    if raw_lines and not raw_lines[-1]:
        raw_lines = raw_lines[:-1]
    for raw in raw_lines:
        if isinstance(raw, (bytes, bytearray)):
            try:
                line = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                continue
        else:
            line = raw
        directive = _parse_line(line)
        yield line if directive is None else directive


def parse(stdout: bytes | bytearray | str) -> list[Directive]:
    """The directives of a build script's stdout, in order (malformed ones included, with `problem`)."""
    return [item for item in parse_lines(stdout) if isinstance(item, Directive)]


# --- what each key's value means -------------------------------------------------------------------------

def _whole(value: str) -> str:
    return value


def _before_eq(value: str) -> str:
    return value.partition("=")[0]


def split_search(value: str) -> tuple[str, str]:
    """`[KIND=]PATH` of `rustc-link-search`, as rustc splits it: (kind, path); kind "" when absent."""
    for kind in SEARCH_KINDS:
        if value.startswith(kind + "="):
            return kind, value[len(kind) + 1:]
    return "", value


def split_lib(value: str) -> tuple[str, frozenset[str], str]:
    """`[KIND[:MODIFIERS]=]NAME[:RENAME]` of `rustc-link-lib`, as rustc splits it: (kind, modifiers, name)."""
    spec, eq, rest = value.partition("=")
    kind, modifiers = ("", "") if not eq else spec.partition(":")[::2]
    name = (rest if eq else spec).partition(":")[0]
    return kind, frozenset(m for m in modifiers.split(",") if m), name


def _search_target(value: str) -> str:
    return split_search(value)[1]


def _lib_target(value: str) -> str:
    return split_lib(value)[2]


# What a grant names for a key (Directive.target); the whole value for the others.
TARGETS: Final[dict[str, Callable[[str], str]]] = {
    "metadata": _before_eq, "rustc-link-search": _search_target, "rustc-link-lib": _lib_target,
    "rustc-env": _before_eq,
}


def _value_problem(key: str, value: str) -> str:
    """What cargo rejects in an accepted key's value (its own parse errors), "" when nothing."""
    if key in ("metadata", "rustc-env", "rustc-link-arg-bin") and "=" not in value:
        return f"`{key}` needs `NAME=VALUE`, found no `=`"
    if key == "rustc-flags":
        return _rustc_flags_problem(value)
    return ""


def _rustc_flags_problem(value: str) -> str:
    """cargo's parse_rustc_flags: only `-l`/`-L`, each with a value (attached or the next word); words
    are split on Rust's whitespace."""
    words = [w for w in re.split(f"[{re.escape(RUST_WHITESPACE)}]+", value) if w]
    i = 0
    while i < len(words):
        flag = words[i]
        if not flag.startswith(("-l", "-L")):
            return f"only -l and -L flags are allowed in `rustc-flags`, found `{flag}`"
        if len(flag) == 2:
            i += 1
            if i == len(words):
                return f"`{flag}` in `rustc-flags` has no value"
        i += 1
    return ""


_LIB_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+.-]*")


def renames(value: str) -> bool:
    """Whether a `rustc-link-lib` value carries `:RENAME`: rustc then passes the linker the new name (`-l:x`,
    `-lsub/../x`), which is not the library whose file was checked."""
    spec, eq, rest = value.partition("=")
    return ":" in (rest if eq else spec)


def lib_files(value: str) -> tuple[str, ...]:
    """The file names `-l` of this `rustc-link-lib` value can open; () when it names no plain library."""
    kind, modifiers, name = split_lib(value)
    if kind not in LIB_FILES or not _LIB_NAME.fullmatch(name) or name in (".", ".."):
        return ()
    return (name,) if "+verbatim" in modifiers else tuple(f.format(name) for f in LIB_FILES[kind])
