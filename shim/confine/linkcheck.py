"""The linker a confined link runs through: it resolves what the linker will open and checks it first.

Why this exists: shim.build.directives judges a build script's search directory by the files a `-l` *it knows*
would open there, but the names a link asks for arrive from elsewhere too: rustc's own `-lc -lgcc_s -lm ...`,
a `#[link(name = "...")]` in any crate of the graph (the crate's own source, a dependency's rlib), and
`+verbatim` names (`-l:anything`), which open a file of any name. So a package directory may ship, or a
build script may write, a file that the directive checks never judged or let pass as something no link
opens (an archive of Windows import objects on a Linux target, which GNU ld crashes on), and a source-level
`#[link]` hands it to the linker anyway. Only the linker's command line says what is consumed.

So a confined link (shim.intercept.confined: any rustc call with a native `-L`, i.e. of a crate whose build
scripts printed search paths) gets `-C linker=<this script>` under the real linker's file name (rustc infers
the linker flavour from it), and this module, run as that linker, reads the command line (`@file`s,
`-Wl,`/`-Xlinker` words), resolves every `-l` the way GNU ld and lld do (`-L` directories in order; with
`-Bdynamic` `libNAME.so` then `libNAME.a` in each directory, with `-Bstatic` only the archive, `-l:NAME` the
file NAME) and checks each file it finds in a search directory of the build scripts (`CRATECAGE_LINKCHECK_DIRS`),
and every input given there by path, with shim.confine.linkinput for the target: import archives only for a Windows
target. A file in the linker's default directories that root owns through and through (shim.confine.syslibs) is
trusted as a system library (never by ownership alone: a root build owns the registry too). A `-l` naming a
path (`-l:../x`, `-l:sub/x`) is refused outright: no crate needs one, and it leaves every search directory.
Anything refused stops the link before the linker starts; the reason goes to stderr and to the report file
(`CRATECAGE_LINKCHECK_REPORT`), which shim.intercept.confined turns into its `cratecage:` line. Otherwise the
real linker (`CRATECAGE_LINKCHECK_LINKER`) is exec'd with the same arguments.

Standard library and shim.confine.linkinput/elfcheck/syslibs/lexical only: it starts under the link's Landlock
confinement with `python -ISB`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["DIRS_ENV", "LINKER_ENV", "OUT_ENV", "REPORT_ENV", "TARGET_ENV", "consumed", "install", "main", "problem"]

LINKER_ENV = "CRATECAGE_LINKCHECK_LINKER"
DIRS_ENV = "CRATECAGE_LINKCHECK_DIRS"  # newline-separated (a directive is one line: no path holds one)
TARGET_ENV = "CRATECAGE_LINKCHECK_TARGET"
REPORT_ENV = "CRATECAGE_LINKCHECK_REPORT"
OUT_ENV = "CRATECAGE_LINKCHECK_OUT"  # the call's output directory, where rustc makes its temporary one
# Words that switch how later `-l`s are looked up (GNU ld; lld takes the same).
STATIC_WORDS = frozenset({"-Bstatic", "-static", "-dn", "-non_shared"})
DYNAMIC_WORDS = frozenset({"-Bdynamic", "-dy", "-call_shared"})
INPUT_SUFFIXES = (".a", ".o", ".so", ".rlib", ".lib", ".obj")


_ARGFILE_SPACE = " \t\n\r"  # what GNU (libiberty) and LLVM both split an `@file` at
_ARGFILE_AMBIGUOUS = "\v\f"  # gcc splits at these too, clang does not


class AmbiguousArgfile(ValueError):
    """An `@file` that gcc and clang read as different words."""


def _argfile(path: str) -> list[str]:
    """The words of a GNU `@file` as the driver reads it (libiberty's buildargv, LLVM's GNU tokenizer): words
    split at unquoted whitespace, `'...'` and `"..."` quote, `\\` takes the next character as it is, inside
    quotes too. rustc writes one word a line with `\\` before spaces and itself only, so a quote in a
    word (a `#[link(name = "x'")]`) makes the driver join lines: they must be read its way, or the
    library it opens is not the one checked."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return [f"@{path}"]
    if any(c in text for c in _ARGFILE_AMBIGUOUS):
        raise AmbiguousArgfile(path)
    words: list[str] = []
    word: list[str] = []
    escaped, quote, in_word = False, "", False
    for ch in text:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped, in_word = True, True
        elif quote:
            if ch == quote:
                quote = ""
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, in_word = ch, True
        elif ch in _ARGFILE_SPACE:
            if in_word:
                words.append("".join(word))
            word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def _linker_words(argv: list[str]) -> list[str]:
    """The driver's arguments as the linker sees them: `@file`s expanded, `-Wl,a,b` and `-Xlinker a` unwrapped."""
    out: list[str] = []
    queue = list(argv)
    depth = 0
    while queue:
        word = queue.pop(0)
        if word.startswith("@") and len(word) > 1 and depth < 64:
            queue[:0] = _argfile(word[1:])
            depth += 1
        elif word.startswith("-Wl,"):
            out += word[4:].split(",")
        elif word == "-Xlinker" and queue:
            out.append(queue.pop(0))
        else:
            out.append(word)
    return out


def consumed(argv: list[str]) -> tuple[list[str], list[tuple[str, bool]], list[str]]:
    """(search directories in order, `-l` names with whether they were given under `-Bstatic`, input paths)."""
    dirs: list[str] = []
    libs: list[tuple[str, bool]] = []
    inputs: list[str] = []
    static = False
    words = _linker_words(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word in STATIC_WORDS:
            static = True
        elif word in DYNAMIC_WORDS:
            static = False
        elif word in ("-L", "--library-path") and i + 1 < len(words):
            i += 1
            dirs.append(words[i])
        elif word in ("-l", "--library") and i + 1 < len(words):
            i += 1
            libs.append((words[i], static))
        elif word.startswith("--library-path="):
            dirs.append(word.split("=", 1)[1])
        elif word.startswith("--library="):
            libs.append((word.split("=", 1)[1], static))
        elif word.startswith("-L") and len(word) > 2:
            dirs.append(word[2:])
        elif word.startswith("-l") and len(word) > 2:
            libs.append((word[2:], static))
        elif not word.startswith("-") and word.endswith(INPUT_SUFFIXES):
            inputs.append(word)
        i += 1
    return dirs, libs, inputs


def _candidates(name: str, static: bool) -> tuple[str, ...]:
    if name.startswith(":"):
        return (name[1:],)
    return (f"lib{name}.a",) if static else (f"lib{name}.so", f"lib{name}.a")


def _policed(path: str, dirs: list[str], out_dir: str = "") -> bool:
    """Whether `path` lies in a build script's search directory, or is a file rustc unpacked for this link into
    its temporary directory (`<out dir>/rustcXXXXXX`): a `kind = "static"` `#[link]` of a library crate bundles
    the archive into the rlib, and the link of a dependent gets it back from there."""
    real = os.path.realpath(path)
    if out_dir:
        under = os.path.relpath(os.path.normpath(os.path.abspath(path)), out_dir).split("/")
        if len(under) > 1 and under[0].startswith("rustc"):
            return True
    for d in dirs:
        for p, root in ((os.path.normpath(path), d), (real, os.path.realpath(d))):
            if p == root or p.startswith(root.rstrip("/") + "/"):
                return True
    return False


def problem(argv: list[str], policed: list[str], target: str = "", out_dir: str = "") -> str:
    """"" when every file the link `argv` (the driver's arguments, without argv[0]) would open by `-l` or by
    path in one of the `policed` directories (or in rustc's temporary directory in `out_dir`) is a linker input of `target`'s format (shim.confine.linkinput) or
    a system library (root's through and through in a default directory, shim.confine.syslibs); else "FILE\\tWHAT IT IS"."""
    from shim.confine import linkinput, syslibs

    policed = [os.path.normpath(os.path.abspath(d)) for d in policed if d]
    try:
        dirs, libs, inputs = consumed(argv)
    except AmbiguousArgfile as err:
        return f"@{err}\tan argument file with a vertical tab or form feed, which gcc and clang read apart"
    imports = linkinput.windows_target(target)
    found: list[str] = []
    for name, static in libs:
        if "/" in name:
            return f"-l{name}\tnames a library by a path (it leaves every search directory)"
        for directory in dirs:
            hit = next((os.path.join(directory, c) for c in _candidates(name, static)
                        if os.path.lexists(os.path.join(directory, c))), None)
            if hit is not None:
                found.append(hit)
                break
    system = set(syslibs.default_dirs())
    for path in [*found, *inputs]:
        if not _policed(path, policed, out_dir):
            continue
        if os.path.dirname(os.path.normpath(os.path.abspath(path))) in system \
                and not syslibs.file_problem(os.path.abspath(path)):
            continue  # a system library in the linker's own directories, named by a granted search path
        what = linkinput.problem(path, target, imports=imports)
        if what:
            return f"{path}\t{what}"
    return ""


def install(directory: str, linker: str) -> str:
    """The checking linker in `directory` under `linker`'s file name (rustc infers the flavour from it),
    written there (atomically: links run in parallel) unless it already is; its path. `directory` must be
    one the confined compile cannot write (`<build dir>/cratecage/linkcheck`): what runs inside it (a proc
    macro, natively) could otherwise rewrite the check before rustc starts the linker."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, os.path.basename(linker) or "cc")
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = (f"#!{interpreter()} -ISB\n"
            "import sys\n"
            f"sys.path.insert(0, {package_parent!r})\n"
            "from shim.confine.linkcheck import main\n"
            "sys.exit(main(sys.argv))\n")
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return path
    except OSError:
        pass
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temp, path)
    _write_bytecode()
    return path


# What the checking linker imports from shim (tests/confine/test_linkcheck.py checks the list).
CHECKER_MODULES = ("shim", "shim.confine", "shim.confine.linkcheck", "shim.confine.linkinput",
                   "shim.confine.elfcheck", "shim.confine.syslibs", "shim.lexical")


def _write_bytecode() -> None:
    """The checking linker starts with `-B` inside the link's confinement, where the package is read-only:
    it never writes its own `.pyc` files, and compiling its modules from source costs ~25 ms per link.
    So they are compiled here, once, where missing (best effort: a read-only install keeps the slow way)."""
    import importlib.util
    import py_compile

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name in CHECKER_MODULES:
        base = os.path.join(root, *name.split("."))
        source = os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py"
        try:
            if not os.path.exists(importlib.util.cache_from_source(source)):
                py_compile.compile(source, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass


def interpreter() -> str:
    """The real interpreter running cratecage (no venv in between: `-I -S` needs only its standard library)."""
    return os.path.realpath(sys.executable)


def reads() -> list[str]:
    """What the checking linker reads besides the link's own inputs: its interpreter's installation and the
    shim package (listing the package's parent, so that the import system finds it)."""
    import sysconfig

    shim_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [os.path.dirname(os.path.dirname(interpreter())), sysconfig.get_paths()["stdlib"], shim_dir,
            os.path.realpath(shim_dir)]


def main(argv: list[str]) -> int:
    """Run as the linker: check, then exec the real one with the same arguments."""
    linker = os.environ.get(LINKER_ENV, "cc")
    policed = [d for d in os.environ.get(DIRS_ENV, "").split("\n") if d]
    found = problem(argv[1:], policed, os.environ.get(TARGET_ENV, ""), os.environ.get(OUT_ENV, ""))
    if found:
        path, _, what = found.partition("\t")
        sys.stderr.write(f"cratecage: the linker would read {path}, which is {what}\n")
        report = os.environ.get(REPORT_ENV)
        if report:
            with open(report, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(found)
        return 1
    try:
        os.execvp(linker, [linker, *argv[1:]])
    except OSError as err:
        sys.stderr.write(f"cratecage: could not run the linker {linker}: {err}\n")
        return 127
