"""System libraries: whether `-l NAME` can only mean a file the system's administrator installed.

Why this exists: `rustc-link-lib=z` (libz-sys without its vendored copy), `dl`, `m`, `pthread`, `pq` and
libudev-sys's probe `rustc check.rs -l udev` name libraries the linker finds in its *default* search
directories, where only root installs files. Such a library links exactly as it would for any other program
of the machine: nothing a build script wrote or chose is read. That holds when every file the name could
open there (`libNAME.so`, `libNAME.a`) is root's, reached through root's directories and links only: a
library in a directory another user can write (a group-writable `/usr/local/lib`, a link into a home
directory) is something that user chose, and needs a grant like any other.

Root-owned files are trusted as they are, linker scripts included: glibc's own `libc.so` and `libm.so` are
text (`GROUP ( ... )`), and rustc adds `-lc -lm` to every link anyway. The bytes checks of
shim/confine/linkinput.py are for files a build script or a package could have written, never these.

`problem(files)` answers for a set of file names: "" when each of them, in every default directory
(`default_dirs`: binutils' and gcc's, for this machine's multiarch triple), is either absent or root's
through and through; else which file and why. `found(files)` says whether the name resolves at all (a
directive naming a library that is nowhere would fail the link; a probe of one simply fails, as natively).
Standard library only.
"""

from __future__ import annotations

import glob
import os
import stat

from shim.lexical import entries_on_the_way

if False:  # typing only
    from typing import Iterable

__all__ = ["default_dirs", "entry_problem", "file_problem", "found", "problem"]

# binutils' SEARCH_DIRs and gcc's library directories on Linux, `{m}` the multiarch triple (ld --verbose,
# gcc -print-search-dirs); missing ones are skipped.
DEFAULT_DIRS = ("/usr/local/lib/{m}", "/lib/{m}", "/usr/lib/{m}", "/usr/local/lib64", "/lib64", "/usr/lib64",
                "/usr/local/lib", "/lib", "/usr/lib", "/usr/{m}/lib64", "/usr/{m}/lib")
GCC_DIRS = "/usr/lib/gcc/{m}/*"
GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH


def default_dirs() -> list[str]:
    """The directories the linker searches for `-l` without any `-L` (this machine's multiarch triple)."""
    triple = f"{os.uname().machine}-linux-gnu"
    dirs = [d.format(m=triple) for d in DEFAULT_DIRS] + sorted(glob.glob(GCC_DIRS.format(m=triple)))
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def entry_problem(entry: str) -> str:
    """"" when root owns the directory entry `entry` and (unless it is a link, whose own mode means
    nothing) no one else may write it."""
    try:
        st = os.lstat(entry)
    except OSError as err:
        return f"{entry} cannot be examined ({err.strerror})"
    if st.st_uid != 0:
        return f"{entry} is not owned by root"
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & GROUP_OTHER_WRITE:
        return f"{entry} is writable by users other than root"
    return ""


def file_problem(path: str) -> str:
    """"" when the file at `path` is a regular file and every entry on the way to it (shim.lexical:
    directories, links, their targets) is root's and writable by root alone."""
    for entry in ("/", *entries_on_the_way(path)):
        problem = entry_problem(entry)
        if problem:
            return problem
    if not os.path.isfile(path):
        return f"{path} is not a regular file"
    return ""


def _candidates(files: Iterable[str], dirs: Iterable[str] | None) -> list[str]:
    return [os.path.join(d, f) for d in (default_dirs() if dirs is None else dirs) for f in files
            if os.path.lexists(os.path.join(d, f))]


def problem(files: Iterable[str], dirs: Iterable[str] | None = None) -> str:
    """"" when every one of `files` (e.g. `libz.so`, `libz.a`) that exists in a default directory (or in
    `dirs`) is root's through and through (`file_problem`); else the first that is not and why."""
    for path in _candidates(files, dirs):
        reason = file_problem(path)
        if reason:
            return reason
    return ""


def found(files: Iterable[str], dirs: Iterable[str] | None = None) -> bool:
    """Whether any of `files` is in a default directory (or in `dirs`)."""
    return bool(_candidates(files, dirs))


def plain_lib(value: str) -> bool:
    """Whether a `rustc-link-lib`/`-l` value names a library plainly: a kind the linker searches by name
    (none, `static`, `dylib`), a plain name, no `+verbatim`, no `:RENAME`."""
    from shim.cargo.directives import lib_files, renames, split_lib  # not in the checking linker's imports

    return not renames(value) and "+verbatim" not in split_lib(value)[1] and bool(lib_files(value))


def system_lib_problem(value: str, printed: tuple[str, ...] = (), system_dirs: tuple[str, ...] | None = None,
                       *, must_exist: bool = True) -> str:
    """"" when the `rustc-link-lib` value (or `-l` value) names a plain system library (this module): no
    `+verbatim` or `:RENAME`, every `libNAME.so`/`libNAME.a` in the linker's default directories is root's
    through and through, none is in a directory of `printed` (search paths the script chose), and, with
    `must_exist`, there is one; else why not."""
    if not plain_lib(value):
        return "library not found in a search path inside OUT_DIR or the package, and not a plain library name"
    from shim.cargo.directives import split_lib

    name = split_lib(value)[2]

    files = (f"lib{name}.so", f"lib{name}.a")  # with -Bdynamic the linker falls back to the archive
    shadow = next((d for d in printed for f in files if os.path.lexists(os.path.join(d, f))), None)
    if shadow is not None:
        return f"a search path the script printed ({shadow}) holds a library of this name"
    why = problem(files, system_dirs)
    if why:
        return f"found in the system's library directories, but {why}"
    if must_exist and not found(files, system_dirs):
        return "library not found in OUT_DIR, the package or the system's library directories"
    return ""
