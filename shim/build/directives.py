"""Build-script stdout directives: parsed exactly as cargo parses them, then checked against the policy.

Why this exists: cargo turns what a build script prints into `-L`/`-l`/`-C link-arg` flags, cfgs and
environment variables for rustc and the linker, i.e. into code that runs natively outside the sandbox. So
the runner passes on only the lines this module lets through, and only in a form it rendered itself.

How cargo reads the output: shim.cargo.directives, which parses it the same way. Malformed directives
(cargo would fail the build) are denials here whose reason says cargo would reject the line.

`filter` decides per directive by one table, `RULES`: some keys always pass; `rerun-if-env-changed` passes
for variables the script may see (cargo stores the value in the target dir); three pass when harmless:
  - `rustc-env` when its name is none that rustc, the linker or a program they start reads (the class
    rule of shim/env_names.py, whose shape rules spare names in the package's own namespace);
  - `rustc-link-search` when the path is inside OUT_DIR or inside the crate's own package directory (the
    windows_* crates point at the import libraries they ship: `<CARGO_MANIFEST_DIR>/lib`), its kind looks
    for native libraries only (`all=` and no kind are rendered `native=`; `crate=`/`dependency=` would let
    rustc load a planted crate), and every file there the linker could open for any `-l` of any link is an
    archive, object or shared object of the target's format, or an archive of Windows import objects for
    a Windows target or in the package (shim/confine/linkinput.py: a linker script under a library's name reads
    host files). A package path must be reached without `..` and without a symbolic link below the
    package directory (a link the package ships may lead anywhere), and must not lie in a cargo target
    directory inside the package (other crates' OUT_DIRs, which their scripts write), by its text or by
    the identity of a directory on the way (a case-insensitive file system, a bind mount); nor may a library
    file there be a link out of the package or into such a directory. The build script itself cannot write
    its package (it is preopened read-only), so what is there is what the package shipped or the user wrote;
  - `rustc-link-lib` when its file is in such a directory (an import archive only for a Windows target:
    GNU ld crashes linking one into an ELF file), or when it names a plain system library:
    `-l NAME` then opens only root's files in the linker's default directories (shim/confine/syslibs.py: `dl`,
    `m`, `z`, `pq` where installed), and no search directory the script printed holds a file of that name;
everything else only when the crate's grant allows `KEY=TARGET` (see policy/__init__.py for the grant syntax).
Kept directives are re-rendered from the parsed key and value (`Directive.canonical`), so what cargo
reads is exactly what was checked. Lines that are not directives pass unchanged unless they contain
"cargo:" anywhere (cargo ignores them either way; this just leaves no room for a parser difference).
"""

from __future__ import annotations

import os
from typing import Callable, Final

from shim.cargo.directives import OLD_PREFIX, Directive, lib_files, parse, parse_lines, renames, split_lib, split_search
from shim.lexical import inside
from shim.env_names import loader_variable, tool_variable
from shim.record import record, replace

__all__ = ["Directive", "Rule", "RULES", "filter", "loader_variable", "parse", "parse_lines", "tool_variable"]

# `-L` kinds that make rustc look for *crates* in the directory (it would load a proc macro found there) or
# frameworks: inside OUT_DIR they need a grant. `all=` and no kind are rendered `native=` there instead,
# which finds the same native libraries and no crates.
CRATE_SEARCH_KINDS: Final = ("crate", "dependency", "framework")
NATIVE_RENDERED_KINDS: Final = ("", "all")
# Files of a search directory the linker can open for some `-l` (glob-like: prefix, then suffix or infix).
LINKABLE_SUFFIXES: Final = (".a", ".so")

# --- the policy check ------------------------------------------------------------------------------------

EnvCheck = Callable[[str], bool]  # variable name -> the build script may see it


@record(frozen=True)
class _Context:
    out_dir: str  # normalised, absolute
    # `rustc-link-search` directories in OUT_DIR or the package -> "" when every file the linker could open
    # there by `-l` is a linker input of the host's format (shim.confine.linkinput), else what the first bad one is
    search_dirs: dict[str, str]
    env_visible: EnvCheck
    package_dir: str = ""  # normalised, absolute; "" when unknown (no package search paths then)
    hidden: tuple[str, ...] = ()  # cargo target directories inside the package (shim.confine.fsview.hidden_dirs)
    printed: tuple[str, ...] = ()  # every search directory the script printed, wherever it is
    system_dirs: tuple[str, ...] | None = None  # the linker's default directories (None: shim.confine.syslibs')
    target: str = ""  # cargo's TARGET ("": the host)
    package: str = ""  # the package's name (CARGO_PKG_NAME): `rustc-env` names in its namespace (shim.env_names)


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
    `+verbatim` library's exact name; or for a shared object's DT_NEEDED (shim.confine.elfcheck.LIBRARY_NAME,
    which also allows ld-*.so*)."""
    from shim.confine.elfcheck import LIBRARY_NAME

    return (name in verbatim or (name.startswith("lib") and (name.endswith(LINKABLE_SUFFIXES) or ".so." in name))
            or LIBRARY_NAME.fullmatch(name) is not None)


def search_dir_problem(directory: str, verbatim: frozenset[str] = frozenset(), target: str = "", *,
                       package: str = "", hidden: tuple[str, ...] = ()) -> str:
    """"" when every file of `directory` the linker could open by `-l` (or by a shared object's DT_NEEDED)
    is a linker input of `target`'s format (shim.confine.linkinput; the host's when ""), else which file is not
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
    from shim.confine import linkinput  # with elfcheck and syslibs: only for the link directives (~3 ms a run)

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
def _lib_default(value: str, ctx: _Context) -> str:
    if renames(value):
        return "renames the library (`:NAME`), so the linker would open a name that was never checked"
    from shim.confine import linkinput
    from shim.confine.syslibs import system_lib_problem

    files = lib_files(value)
    for directory, problem in ctx.search_dirs.items():
        for file in files:
            path = os.path.join(directory, file)
            if not problem and os.path.isfile(path):
                # The directory passed, so this file is of the target's format (search_dir_problem); an import
                # archive passed there only as something the link never opens (shim.confine.linkinput).
                if not inside(directory, ctx.out_dir) and not linkinput.windows_target(ctx.target) \
                        and linkinput.problem(path, ctx.target, imports=False):
                    return f"{file} holds {linkinput.NO_IMPORTS}"
                return ""
    return system_lib_problem(value, ctx.printed, ctx.system_dirs)


def _env_default(value: str, ctx: _Context) -> str:
    reason = tool_variable(value.partition("=")[0], ctx.package)
    return f"rustc, the linker or a program they start reads this variable: {reason}" if reason else ""


def _env_visible(value: str, ctx: _Context) -> str:
    return "" if ctx.env_visible(value) else ("the build script may not see this variable, and cargo would store "
                                              "its value in the target directory")


@record(frozen=True)
class Rule:
    """How one cargo key is checked: `default` returns "" when the directive passes without a grant, or
    why it needs one (a grant names Directive.target). A denial is reported as
    `capability` (its paste-ready entry is one of that capability for the target), failing the build
    when `fatal`."""

    default: Callable[[str, _Context], str]
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
    "metadata": Rule(_always),
    # Linker inputs the script built itself are fine; anything else links code from outside.
    "rustc-link-search": Rule(_search_default),
    "rustc-link-lib": Rule(_lib_default),
    # Names of the class tools read (shim.env_names) need a grant; values are the crate's business.
    "rustc-env": Rule(_env_default),
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
    OUT_DIR must be of its format (shim.confine.linkinput), of the host's when "". `package_dir` is the crate's
    own package directory and `hidden` the cargo target directories inside it (shim.confine.fsview.hidden_dirs);
    `package` the package's name, whose namespace of `rustc-env` names the shape rules spare (shim.env_names);
    `system_dirs` replaces the linker's default directories (shim.confine.syslibs) for tests.

    Two passes, because a `rustc-link-lib` may come before the `rustc-link-search` that finds it: the
    first judges each search directory inside OUT_DIR or the package by its files."""
    items = list(parse_lines(stdout))
    root = os.path.normpath(out_dir)
    valid = [d for d in items if isinstance(d, Directive) and not d.problem]
    verbatim = frozenset(f for d in valid if d.key == "rustc-link-lib" and "+verbatim" in split_lib(d.value)[1]
                         for f in lib_files(d.value))
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
