"""The rustc command line as cratecage sees it.

Cargo runs `$RUSTC_WRAPPER [$RUSTC_WORKSPACE_WRAPPER] $RUSTC <args>`; the wrapper receives everything after
its own name. This module splits that into the program chain (an optional workspace wrapper such as
clippy-driver, then rustc) and rustc's own arguments, expands `@argfile`s the way rustc and cargo write them
(one argument per line, no quoting), and reads the flags cratecage cares about into a frozen `RustcArgs`.

The flag table `FLAGS` is the spec: every rustc flag that takes a value is listed, so an unknown value can
never be mistaken for the input file. Flags cratecage does not know pass through untouched.

This module is on the pass-through fast path: it imports only the standard library's lightest modules.
"""

from __future__ import annotations

import os

__all__ = ["FLAGS", "ArgfileError", "Flag", "RustcArgs", "expand_argfiles", "parse", "split_chain"]


class Flag:
    """One rustc flag: its spellings, whether it takes a value, and the `RustcArgs` field it feeds
    (None: recognised, so its value is skipped, but not recorded)."""

    __slots__ = ("names", "takes_value", "field")

    def __init__(self, names: tuple[str, ...], takes_value: bool, field: str | None = None) -> None:
        self.names = names
        self.takes_value = takes_value
        self.field = field

    def __repr__(self) -> str:
        return f"Flag({self.names!r}, {self.takes_value!r}, {self.field!r})"


# Sorted by first name; `test_flag_table_is_sorted` keeps it so. Values may be attached (`--emit=link`,
# `-Cmetadata=x`) or separate (`--emit link`, `-C metadata=x`).
FLAGS: tuple[Flag, ...] = (
    Flag(("--allow", "-A"), True),
    Flag(("--cap-lints",), True, "cap_lints"),
    Flag(("--cfg",), True, "cfgs"),
    Flag(("--check-cfg",), True),
    Flag(("--codegen", "-C"), True, "codegen"),
    Flag(("--color",), True),
    Flag(("--crate-attr",), True),
    Flag(("--crate-name",), True, "crate_name"),
    Flag(("--crate-type",), True, "crate_types"),
    Flag(("--deny", "-D"), True),
    Flag(("--diagnostic-width",), True),
    Flag(("--edition",), True, "edition"),
    Flag(("--emit",), True, "emit"),
    Flag(("--env-set",), True),
    Flag(("--error-format",), True, "error_format"),
    Flag(("--explain",), True, "explain"),
    Flag(("--extern",), True, "externs"),
    Flag(("--forbid", "-F"), True),
    Flag(("--force-warn",), True),
    Flag(("--help", "-h"), False, "help"),
    Flag(("--json",), True),
    Flag(("--out-dir",), True, "out_dir"),
    Flag(("--pretty",), True),
    Flag(("--print",), True, "prints"),
    Flag(("--remap-path-prefix",), True),
    Flag(("--remap-path-scope",), True),
    Flag(("--sysroot",), True, "sysroot"),
    Flag(("--target",), True, "target"),
    Flag(("--test",), False, "test"),
    Flag(("--unpretty",), True),
    Flag(("--verbose", "-v"), False, "verbose"),
    Flag(("--version", "-V"), False, "version"),
    Flag(("--warn", "-W"), True),
    Flag(("-L",), True, "lib_paths"),
    Flag(("-O",), False),
    Flag(("-Z",), True, "unstable"),
    Flag(("-g",), False),
    Flag(("-l",), True),
    Flag(("-o",), True, "output"),
)

_BY_NAME: dict[str, Flag] = {name: flag for flag in FLAGS for name in flag.names}
_SHORT_ATTACHABLE = frozenset(n for f in FLAGS for n in f.names if len(n) == 2 and f.takes_value)
_MULTI = frozenset({"cfgs", "codegen", "crate_types", "emit", "externs", "lib_paths", "prints", "unstable"})
# Combined short boolean flags that rustc's getopts accepts as one word (`rustc -vV`).
_COMBINED_SHORT: dict[str, tuple[str, ...]] = {"-vV": ("verbose", "version"), "-Vv": ("verbose", "version")}


_LIB_KINDS = frozenset({"all", "crate", "dependency", "framework", "native"})


class ArgfileError(Exception):
    """An `@argfile` could not be read; the caller decides whether that is fatal."""


# (field, default) for every RustcArgs attribute; multi-valued fields hold tuples.
_FIELDS: tuple[tuple[str, object], ...] = (
    ("crate_name", None),
    ("crate_types", ()),
    ("emit", ()),  # kinds only: "dep-info", "metadata", "link", ... (`=path` suffixes dropped)
    ("out_dir", None),
    ("output", None),
    ("externs", ()),  # (name, path or None for `--extern proc_macro`)
    ("lib_paths", ()),  # (kind or "all", path)
    ("target", None),
    ("codegen", ()),  # (key, value or None) for each -C
    ("unstable", ()),
    ("cfgs", ()),
    ("edition", None),
    ("prints", ()),
    ("sysroot", None),
    ("cap_lints", None),
    ("error_format", None),
    ("explain", None),
    ("test", False),
    ("help", False),
    ("verbose", False),
    ("version", False),
    ("inputs", ()),
    ("unknown", ()),  # flags not in the table, kept for diagnostics
)


class RustcArgs:
    """The parts of one rustc invocation that decide what cratecage does with it (read-only by convention;
    a plain slotted class because `dataclasses` costs ~15 ms to import on the pass-through path)."""

    __slots__ = tuple(name for name, _ in _FIELDS)

    crate_name: str | None
    crate_types: tuple[str, ...]
    emit: tuple[str, ...]
    out_dir: str | None
    output: str | None
    externs: tuple[tuple[str, str | None], ...]
    lib_paths: tuple[tuple[str, str], ...]
    target: str | None
    codegen: tuple[tuple[str, str | None], ...]
    unstable: tuple[str, ...]
    cfgs: tuple[str, ...]
    edition: str | None
    prints: tuple[str, ...]
    sysroot: str | None
    cap_lints: str | None
    error_format: str | None
    explain: str | None
    test: bool
    help: bool
    verbose: bool
    version: bool
    inputs: tuple[str, ...]
    unknown: tuple[str, ...]

    def __init__(self, **kw: object) -> None:
        for name, default in _FIELDS:
            object.__setattr__(self, name, kw.pop(name, default))
        if kw:
            raise TypeError(f"unknown RustcArgs fields: {sorted(kw)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RustcArgs) and all(
            getattr(self, n) == getattr(other, n) for n, _ in _FIELDS
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n, d in _FIELDS if getattr(self, n) != d)
        return f"RustcArgs({shown})"

    def codegen_value(self, key: str) -> str | None:
        """The last `-C key=value` given (rustc's rule: later wins)."""
        found = None
        for k, v in self.codegen:
            if k == key:
                found = v
        return found

    @property
    def extra_filename(self) -> str:
        return self.codegen_value("extra-filename") or ""

    @property
    def metadata(self) -> str | None:
        return self.codegen_value("metadata")

    @property
    def input(self) -> str | None:
        return self.inputs[0] if len(self.inputs) == 1 else None


def split_chain(argv: list[str], *, cargo_env: bool) -> tuple[list[str], list[str]]:
    """Split the wrapper's argv into (program chain, rustc arguments).

    argv[0] is the next program: rustc itself, or a workspace wrapper (clippy-driver, a
    `RUSTC_WORKSPACE_WRAPPER`) followed by rustc. Like sccache, a second program is recognised when the first
    is not named rustc, we run under cargo, and the second word is a path whose name starts with `rustc`.
    """
    if len(argv) >= 2 and not _is_rustc_name(argv[0]) and cargo_env and _is_rustc_name(argv[1]):
        return argv[:2], argv[2:]
    return argv[:1], argv[1:]


def _is_rustc_name(word: str) -> bool:
    stem = os.path.basename(word)
    if stem.endswith(".exe"):
        stem = stem[:-4]
    return stem == "rustc" or stem.startswith("rustc-") or stem.startswith("rustc.")


def expand_argfiles(args: list[str]) -> list[str]:
    """Replace each `@path` argument with the lines of that file (rustc's rule: not recursive)."""
    if not any(a.startswith("@") for a in args):
        return args
    out: list[str] = []
    for arg in args:
        if not arg.startswith("@") or arg.startswith("@shell:"):
            out.append(arg)
            continue
        path = arg[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as err:
            raise ArgfileError(f"cannot read argument file {path}: {err}") from None
        out.extend(text.split("\n") if text else [])
        if out and text.endswith("\n"):
            out.pop()  # a trailing newline ends the last line; it is not an empty argument
    return out


def parse(args: list[str]) -> RustcArgs:
    """Read rustc arguments (argfiles already expanded) into a `RustcArgs`. Never raises on odd input."""
    values: dict[str, list] = {}
    flags: dict[str, object] = {}
    inputs: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        flag, value, consumed_next = _match(arg, args[i] if i < len(args) else None)
        if consumed_next:
            i += 1
        if flag is None:
            if arg in _COMBINED_SHORT:
                for name in _COMBINED_SHORT[arg]:
                    flags[name] = True
            elif arg == "-" or not arg.startswith("-"):
                inputs.append(arg)
            else:
                unknown.append(arg)
            continue
        if flag.field is None:
            continue
        if not flag.takes_value:
            flags[flag.field] = True
        elif flag.field in _MULTI:
            values.setdefault(flag.field, []).extend(_split_value(flag.field, value or ""))
        else:
            flags[flag.field] = value
    kw: dict[str, object] = {k: tuple(v) for k, v in values.items()}
    kw.update(flags)
    return RustcArgs(inputs=tuple(inputs), unknown=tuple(unknown), **kw)  # type: ignore[arg-type]


def _match(arg: str, nxt: str | None) -> tuple[Flag | None, str | None, bool]:
    """Find the flag `arg` spells, and its value: attached, or the next argument."""
    if arg.startswith("--"):
        name, eq, attached = arg.partition("=")
        flag = _BY_NAME.get(name)
        if flag is None:
            return None, None, False
        if not flag.takes_value:
            return flag, None, False
        if eq:
            return flag, attached, False
        return flag, nxt, nxt is not None
    flag = _BY_NAME.get(arg)
    if flag is not None:
        if not flag.takes_value:
            return flag, None, False
        return flag, nxt, nxt is not None
    if len(arg) > 2 and arg[:2] in _SHORT_ATTACHABLE:
        return _BY_NAME[arg[:2]], arg[2:], False
    return None, None, False


def _split_value(field_name: str, value: str) -> list:
    """Turn one flag value into the items its field holds."""
    if field_name in ("crate_types", "emit", "prints"):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return [p.split("=", 1)[0] for p in parts] if field_name != "prints" else parts
    if field_name == "codegen":
        key, eq, val = value.partition("=")
        return [(key.strip(), val if eq else None)]
    if field_name == "externs":
        name, eq, path = value.partition("=")
        # `--extern priv:name=path` and `noprelude:` modifiers come before the name
        return [(name.rsplit(":", 1)[-1], path if eq else None)]
    if field_name == "lib_paths":
        kind, eq, path = value.partition("=")
        return [(kind, path) if eq and kind in _LIB_KINDS else ("all", value)]
    return [value]


def tokens(args: list[str]) -> list[tuple[str | None, str | None, list[str]]]:
    """Split arguments into (flag's first name or None for an input/unknown word, value, original words),
    for code that rewrites a command line (shim.compile.replay) rather than reading it."""
    out: list[tuple[str | None, str | None, list[str]]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        flag, value, consumed_next = _match(arg, args[i] if i < len(args) else None)
        words = [arg]
        if consumed_next:
            words.append(args[i])
            i += 1
        out.append((flag.names[0] if flag else None, value, words))
    return out


def native_externs(argv: list[str], cwd: str) -> list[str]:
    """The native proc-macro libraries a compile names with `--extern` (rustc loads them for any target)."""
    return [os.path.join(cwd, path) for _name, path in parse(argv).externs
            if path and not path.endswith((".rlib", ".rmeta"))]
