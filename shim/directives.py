"""Build-script stdout directives: parsed exactly as cargo parses them, then checked against the policy.

Why this exists: cargo turns what a build script prints into `-L`/`-l`/`-C link-arg` flags, cfgs and
environment variables for rustc and the linker, i.e. into code that runs natively outside the sandbox. So
the runner passes on only the lines this module lets through, and only in a form it rendered itself.

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
cargo fail the build; here they are denials whose reason says cargo would reject the line.

`filter` decides per directive by one table, `RULES`: some keys always pass; `rerun-if-env-changed` passes
for variables the script may see (cargo stores the value in the target dir); three pass when harmless:
  - `rustc-env` when its name is none that rustc, the linker or a program they start reads (the class
    rule of shim/env_names.py, whose shape rules spare names in the package's own namespace);
  - `rustc-link-search` when the path is inside OUT_DIR or inside the crate's own package directory (the
    windows_* crates point at the import libraries they ship: `<CARGO_MANIFEST_DIR>/lib`), its kind looks
    for native libraries only (`all=` and no kind are rendered `native=`; `crate=`/`dependency=` would let
    rustc load a planted crate), and every file there the linker could open for any `-l` of any link is an
    archive, object or shared object of the target's format, or an archive of Windows import objects for
    a Windows target or in the package (shim/linkinput.py: a linker script under a library's name reads
    host files). A package path must be reached without `..` and without a symbolic link below the
    package directory (a link the package ships may lead anywhere), and must not lie in a cargo target
    directory inside the package (other crates' OUT_DIRs, which their scripts write), by its text or by
    the identity of a directory on the way (a case-insensitive file system, a bind mount); nor may a library
    file there be a link out of the package or into such a directory. The build script itself cannot write
    its package (it is preopened read-only), so what is there is what the package shipped or the user wrote;
  - `rustc-link-lib` when its file is in such a directory (an import archive only for a Windows target:
    GNU ld crashes linking one into an ELF file), or when it names a plain system library:
    `-l NAME` then opens only root's files in the linker's default directories (shim/syslibs.py: `dl`,
    `m`, `z`, `pq` where installed), and no search directory the script printed holds a file of that name;
everything else only when the crate's grant allows `KEY=TARGET` (see policy/__init__.py for the grant syntax).
Kept directives are re-rendered from the parsed key and value (`Directive.canonical`), so what cargo
reads is exactly what was checked. Lines that are not directives pass unchanged unless they contain
"cargo:" anywhere (cargo ignores them either way; this just leaves no room for a parser difference).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Callable, Final, Iterator, Union

from shim import linkinput
from shim.elfcheck import LIBRARY_NAME
from shim.env_names import LOADER_ENV_NAMES, LOADER_ENV_PREFIXES, loader_variable, tool_variable

__all__ = ["LOADER_ENV_NAMES", "LOADER_ENV_PREFIXES", "Directive", "Rule", "RULES", "filter", "inside",
           "loader_variable", "parse", "parse_lines", "plain_lib", "split_lib", "split_search", "system_lib_problem",
           "tool_variable"]

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

# `-L` kinds that make rustc look for *crates* in the directory (it would load a proc macro found there) or
# frameworks: inside OUT_DIR they need a grant. `all=` and no kind are rendered `native=` there instead,
# which finds the same native libraries and no crates.
CRATE_SEARCH_KINDS: Final = ("crate", "dependency", "framework")
NATIVE_RENDERED_KINDS: Final = ("", "all")
# Files of a search directory the linker can open for some `-l` (glob-like: prefix, then suffix or infix).
LINKABLE_SUFFIXES: Final = (".a", ".so")

@dataclass(frozen=True)
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
        return RULES[self.key].target(self.value) if self.key in RULES else self.value

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


# --- the policy check ------------------------------------------------------------------------------------

EnvCheck = Callable[[str], bool]  # variable name -> the build script may see it


@dataclass(frozen=True)
class _Context:
    out_dir: str  # normalised, absolute
    # `rustc-link-search` directories in OUT_DIR or the package -> "" when every file the linker could open
    # there by `-l` is a linker input of the host's format (shim.linkinput), else what the first bad one is
    search_dirs: dict[str, str]
    env_visible: EnvCheck
    package_dir: str = ""  # normalised, absolute; "" when unknown (no package search paths then)
    hidden: tuple[str, ...] = ()  # cargo target directories inside the package (shim.fsview.hidden_dirs)
    printed: tuple[str, ...] = ()  # every search directory the script printed, wherever it is
    system_dirs: tuple[str, ...] | None = None  # the linker's default directories (None: shim.syslibs')
    target: str = ""  # cargo's TARGET ("": the host)
    package: str = ""  # the package's name (CARGO_PKG_NAME): `rustc-env` names in its namespace (shim.env_names)


def inside(path: str, root: str) -> bool:
    """`path` is `root` or below it, judged on the text: absolute, no `..` segment (the runner removes
    symbolic links in OUT_DIR that point outside it, so no component can lead out)."""
    if not os.path.isabs(path) or ".." in path.split("/"):
        return False
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _always(value: str, ctx: _Context) -> str:
    return ""


def _never(value: str, ctx: _Context) -> str:
    return "needs a grant"


# Linker arguments that name no file, run nothing and change what is linked only as natively expected: the
# thread flag jemalloc, mimalloc and other C libraries print. Everything else a linker takes may.
PLAIN_LINK_ARGS: Final = frozenset({"-pthread"})


def _link_arg_default(value: str, ctx: _Context) -> str:
    """`rustc-link-arg*`: cargo passes the value as one linker argument; "" for one of PLAIN_LINK_ARGS."""
    return "" if value in PLAIN_LINK_ARGS else "needs a grant"


def _link_arg_bin_default(value: str, ctx: _Context) -> str:
    """`rustc-link-arg-bin=BIN=ARG`."""
    return _link_arg_default(value.partition("=")[2], ctx)


def _package_place(path: str, package_dir: str, hidden: tuple[str, ...]) -> str:
    """"" when `path` is a directory of the package itself: below `package_dir` by its text (absolute, no
    `..`), outside every cargo target directory there, and reached without a symbolic link below the
    package directory; else why not."""
    if not package_dir or not inside(path, package_dir):
        return "search path outside OUT_DIR and the package's own directory"
    path = os.path.normpath(path)
    if any(inside(path, h) for h in hidden):
        return "search path in a cargo target directory inside the package (other crates' build output)"
    hidden_ids = {_identity(h) for h in hidden} - {None}
    here = package_dir
    for name in os.path.relpath(path, package_dir).split("/"):
        here = os.path.join(here, name)
        if os.path.islink(here):
            return f"search path reached through a symbolic link in the package ({here})"
        if _identity(here) in hidden_ids:  # another spelling of one: a case-insensitive file system, a bind mount
            return f"search path in a cargo target directory inside the package, spelled {here}"
    return ""


def _identity(path: str) -> tuple[int, int] | None:
    """The directory's (device, inode), which every spelling of it shares; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _place(path: str, ctx: _Context) -> str:
    """"" when a search path lies where its files can be judged: OUT_DIR, or the package itself."""
    return "" if inside(path, ctx.out_dir) else _package_place(path, ctx.package_dir, ctx.hidden)


def _search_default(value: str, ctx: _Context) -> str:
    kind, path = split_search(value)
    where = _place(path, ctx)
    if where:
        return where
    if kind in CRATE_SEARCH_KINDS:
        return (f"`{kind}=` makes rustc look for crates there (and load any proc macro it finds)"
                if kind != "framework" else "`framework=` search paths are for macOS frameworks")
    return ctx.search_dirs.get(os.path.normpath(path), "")


def _linkable(name: str, verbatim: frozenset[str]) -> bool:
    """Whether the linker could open the file `name` for some `-l`: lib*.a, lib*.so, lib*.so.*, or a
    `+verbatim` library's exact name; or for a shared object's DT_NEEDED (shim.elfcheck.LIBRARY_NAME,
    which also allows ld-*.so*)."""
    return (name in verbatim or (name.startswith("lib") and (name.endswith(LINKABLE_SUFFIXES) or ".so." in name))
            or LIBRARY_NAME.fullmatch(name) is not None)


def search_dir_problem(directory: str, verbatim: frozenset[str] = frozenset(), target: str = "", *,
                       package: str = "", hidden: tuple[str, ...] = ()) -> str:
    """"" when every file of `directory` the linker could open by `-l` (or by a shared object's DT_NEEDED)
    is a linker input of `target`'s format (shim.linkinput; the host's when ""), else which file is not
    and what it is. With `package` (a directory of the package itself, whose cargo target directories are
    `hidden`): archives of Windows import objects pass on any target, and a file reached through a symbolic
    link must stay in the package, outside `hidden` (`_link_problem`); elsewhere (OUT_DIR, whose links out
    the runner removes) import archives pass only for a Windows target."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return ""  # nothing there for the linker to find
    except OSError as err:
        return f"cannot list the directory ({err.strerror})"
    imports = bool(package) or linkinput.windows_target(target)
    for name in names:
        if _linkable(name, verbatim):
            path = os.path.join(directory, name)
            problem = (_link_problem(path, package, hidden) if package else "") or \
                linkinput.problem(path, target, imports=imports)
            if problem:
                return f"the linker would read {name} there, which is {problem}"
    return ""


def _link_problem(path: str, package: str, hidden: tuple[str, ...]) -> str:
    """"" unless the package file `path` is a symbolic link whose target lies outside the package or in a
    cargo target directory in it: the bytes checked now are then a file someone else may rewrite before
    the link (another crate's OUT_DIR), or a file of the user's the linker would read."""
    if not os.path.islink(path):
        return ""
    real = os.path.realpath(path)
    if not inside(real, os.path.realpath(package)) or any(inside(real, os.path.realpath(h)) for h in hidden):
        return "a symbolic link out of the package"
    return ""


# A library name the linker gets as written: letters, digits and `_+.-`, never a path (a `+verbatim` name
# is a file name in the search directory, `foo.o`).
_LIB_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+.-]*")


def renames(value: str) -> bool:
    """Whether a `rustc-link-lib` value carries `:RENAME`: rustc then passes the linker the new name (`-l:x`,
    `-lsub/../x`), which is not the library whose file was checked."""
    spec, eq, rest = value.partition("=")
    return ":" in (rest if eq else spec)


def _lib_files(value: str) -> tuple[str, ...]:
    """The file names `-l` of this `rustc-link-lib` value can open; () when it names no plain library."""
    kind, modifiers, name = split_lib(value)
    if kind not in LIB_FILES or not _LIB_NAME.fullmatch(name) or name in (".", ".."):
        return ()
    return (name,) if "+verbatim" in modifiers else tuple(f.format(name) for f in LIB_FILES[kind])


def _lib_default(value: str, ctx: _Context) -> str:
    if renames(value):
        return "renames the library (`:NAME`), so the linker would open a name that was never checked"
    files = _lib_files(value)
    for directory, problem in ctx.search_dirs.items():
        for file in files:
            path = os.path.join(directory, file)
            if not problem and os.path.isfile(path):
                # The directory passed, so this file is of the target's format (search_dir_problem); an import
                # archive passed there only as something the link never opens (shim.linkinput).
                if not inside(directory, ctx.out_dir) and not linkinput.windows_target(ctx.target) \
                        and linkinput.problem(path, ctx.target, imports=False):
                    return f"{file} holds {linkinput.NO_IMPORTS}"
                return ""
    return system_lib_problem(value, ctx.printed, ctx.system_dirs)


def plain_lib(value: str) -> bool:
    """Whether a `rustc-link-lib`/`-l` value names a library plainly: a kind the linker searches by name
    (none, `static`, `dylib`), a plain name, no `+verbatim`, no `:RENAME`."""
    return not renames(value) and "+verbatim" not in split_lib(value)[1] and bool(_lib_files(value))


def system_lib_problem(value: str, printed: tuple[str, ...] = (), system_dirs: tuple[str, ...] | None = None,
                       *, must_exist: bool = True) -> str:
    """"" when the `rustc-link-lib` value (or `-l` value) names a plain system library (shim.syslibs): no
    `+verbatim` or `:RENAME`, every `libNAME.so`/`libNAME.a` in the linker's default directories is root's
    through and through, none is in a directory of `printed` (search paths the script chose), and, with
    `must_exist`, there is one; else why not."""
    if not plain_lib(value):
        return "library not found in a search path inside OUT_DIR or the package, and not a plain library name"
    from shim import syslibs

    name = split_lib(value)[2]

    files = (f"lib{name}.so", f"lib{name}.a")  # with -Bdynamic the linker falls back to the archive
    shadow = next((d for d in printed for f in files if os.path.lexists(os.path.join(d, f))), None)
    if shadow is not None:
        return f"a search path the script printed ({shadow}) holds a library of this name"
    problem = syslibs.problem(files, system_dirs)
    if problem:
        return f"found in the system's library directories, but {problem}"
    if must_exist and not syslibs.found(files, system_dirs):
        return "library not found in OUT_DIR, the package or the system's library directories"
    return ""


def _env_default(value: str, ctx: _Context) -> str:
    reason = tool_variable(value.partition("=")[0], ctx.package)
    return f"rustc, the linker or a program they start reads this variable: {reason}" if reason else ""


def _env_visible(value: str, ctx: _Context) -> str:
    return "" if ctx.env_visible(value) else ("the build script may not see this variable, and cargo would store "
                                              "its value in the target directory")


@dataclass(frozen=True)
class Rule:
    """How one cargo key is checked: `default` returns "" when the directive passes without a grant, or
    why it needs one; `target` is what a grant names (see Directive.target). A denial is reported as
    `capability` (its paste-ready entry is one of that capability for the target), failing the build
    when `fatal`."""

    default: Callable[[str, _Context], str]
    target: Callable[[str], str] = _whole
    capability: str = "directives"
    fatal: bool = True


_LINK_ARG_KEYS: Final = ("rustc-link-arg", "rustc-link-arg-bins", "rustc-link-arg-bin", "rustc-link-arg-tests",
                         "rustc-link-arg-benches", "rustc-link-arg-examples", "rustc-link-arg-cdylib",
                         "rustc-cdylib-link-arg")

# The policy, one row per cargo key. Keys not listed (new-form unknown keys) are malformed anyway.
RULES: Final[dict[str, Rule]] = {
    # Affect only when the script reruns, messages, and this crate's own cfgs: nothing runs from them.
    "rerun-if-changed": Rule(_always),
    "rustc-cfg": Rule(_always),
    "rustc-check-cfg": Rule(_always),
    "warning": Rule(_always),
    "error": Rule(_always),
    # cargo stores the variable's value in the target dir's fingerprint: only for variables the script
    # may see. Dropping one is harmless (the script's output cannot depend on what it cannot see), so it
    # is reported like a lookup of an ungranted variable: with its env-access entry, not failing the build.
    "rerun-if-env-changed": Rule(_env_visible, capability="env-access", fatal=False),
    # DEP_<links>_<NAME> for dependents' build scripts, which run sandboxed too.
    "metadata": Rule(_always, _before_eq),
    # Linker inputs the script built itself are fine; anything else links code from outside.
    "rustc-link-search": Rule(_search_default, _search_target),
    "rustc-link-lib": Rule(_lib_default, _lib_target),
    # Names of the class tools read (shim.env_names) need a grant; values are the crate's business.
    "rustc-env": Rule(_env_default, _before_eq),
    "rustc-flags": Rule(_never),
    **{key: Rule(_link_arg_default) for key in _LINK_ARG_KEYS},
    "rustc-link-arg-bin": Rule(_link_arg_bin_default),
}

GrantCheck = Callable[[str, str], bool]  # (key, target) -> permitted; e.g. policy.Grant.allows_directive


def _no_env(name: str) -> bool:
    return False


def filter(stdout: bytes | bytearray | str, *, out_dir: str,  # noqa: A001 - the name the runner uses
           grant_allows_directive: GrantCheck, env_visible: EnvCheck = _no_env, target: str = "",
           package_dir: str = "", hidden: tuple[str, ...] = (), package: str = "",
           system_dirs: tuple[str, ...] | None = None) -> tuple[list[str], list[tuple[Directive, str]]]:
    """(lines to hand to cargo, denied directives with the reason). Kept directives are canonical lines;
    kept non-directive lines are unchanged. The runner writes `"\\n".join(kept)` plus a final newline.
    In warn mode it may pass a denied directive on too, as its `canonical` line (None: cargo would
    reject the line anyway, so there is nothing to pass). `env_visible` says which variables the script
    may see (for `rerun-if-env-changed`); by default none. `target` is cargo's TARGET: libraries in
    OUT_DIR must be of its format (shim.linkinput), of the host's when "". `package_dir` is the crate's
    own package directory and `hidden` the cargo target directories inside it (shim.fsview.hidden_dirs);
    `package` the package's name, whose namespace of `rustc-env` names the shape rules spare (shim.env_names);
    `system_dirs` replaces the linker's default directories (shim.syslibs) for tests.

    Two passes, because a `rustc-link-lib` may come before the `rustc-link-search` that finds it: the
    first judges each search directory inside OUT_DIR or the package by its files."""
    items = list(parse_lines(stdout))
    root = os.path.normpath(out_dir)
    valid = [d for d in items if isinstance(d, Directive) and not d.problem]
    verbatim = frozenset(f for d in valid if d.key == "rustc-link-lib" and "+verbatim" in split_lib(d.value)[1]
                         for f in _lib_files(d.value))
    package_path = os.path.normpath(package_dir) if package_dir else ""
    hidden = tuple(os.path.normpath(h) for h in hidden)
    printed = tuple(sorted({os.path.normpath(path) for d in valid if d.key == "rustc-link-search"
                            for _, path in [split_search(d.value)] if os.path.isabs(path)}))
    dirs = {os.path.normpath(path) for d in valid if d.key == "rustc-link-search"
            for kind, path in [split_search(d.value)] if kind not in CRATE_SEARCH_KINDS
            and (inside(path, root) or not _package_place(path, package_path, hidden))}
    judged = {d: search_dir_problem(d, verbatim, target, package="" if inside(d, root) else package_path,
                                    hidden=hidden)
              for d in sorted(dirs)}
    ctx = _Context(root, judged, env_visible, package_path, hidden, printed, system_dirs, target, package)
    kept: list[str] = []
    denied: list[tuple[Directive, str]] = []
    for item in items:
        if isinstance(item, str):
            if OLD_PREFIX not in item:
                kept.append(item)
            continue
        item = _render(item, ctx)
        reason = _check(item, ctx, grant_allows_directive)
        if reason:
            denied.append((item, reason))
        else:
            kept.append(item.canonical or "")
    return kept, denied


def _render(directive: Directive, ctx: _Context) -> Directive:
    """The directive as passed on: a search path inside OUT_DIR or the package of kind `all=` or none
    becomes `native=`."""
    if directive.key == "rustc-link-search" and not directive.problem:
        kind, path = split_search(directive.value)
        if kind in NATIVE_RENDERED_KINDS and not _place(path, ctx):
            return replace(directive, value=f"native={path}")
    return directive


def _check(directive: Directive, ctx: _Context, grant_allows_directive: GrantCheck) -> str:
    """"" when the directive may pass, else why not."""
    if directive.problem:
        return f"cargo would reject this line: {directive.problem}"
    reason = RULES[directive.key].default(directive.value, ctx)
    if reason and grant_allows_directive(directive.key, directive.target):
        return ""
    return reason
