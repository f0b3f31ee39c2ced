"""The journal: how each library was compiled, so a build script's dependencies can be replayed for wasm.

Without `--target`, a build-dependency's compile looks exactly like any other library's, and cargo deletes
argfiles after each call; so the wrapper records every linked library compile (classify: host-library) as
it passes through: the working directory and the argv with argfiles expanded, keyed by the rlib it will
produce. A later compile of the same library overwrites the entry (path dependencies keep their
`-C metadata` across edits, so the replay also checks the rlib itself: shim.replay). The env a compile
depended on is read at replay time from the `# env-dep:` lines of the library's own `.d` file.

`record` runs on the pass-through fast path: standard library only, one small atomic file write.
Entries live in `<target>/cratecage/journal/` (`cargo clean` removes them).
"""

from __future__ import annotations

import os

from shim.files import atomic_write
from shim.rustc_args import RustcArgs

_SEP = "\0"


def target_root(deps_dir: str) -> str:
    """`<target>` from a unit's `--out-dir`: `<target>/<profile>/deps` or `<target>/<triple>/<profile>/deps`."""
    return os.path.dirname(os.path.dirname(os.path.abspath(deps_dir)))


def cratecage_dir(deps_dir: str) -> str:
    return os.path.join(target_root(deps_dir), "cratecage")


def rlib_name(args: RustcArgs) -> str:
    return f"lib{args.crate_name}{args.extra_filename}.rlib"


def entry_path(rlib: str) -> str:
    """The journal file for a native rlib path (as it appears in a later `--extern name=path`)."""
    deps = os.path.dirname(rlib)
    return os.path.join(cratecage_dir(deps), "journal", os.path.basename(rlib) + ".args")


def record(args: RustcArgs, expanded: list[str], cwd: str) -> None:
    if not args.out_dir or not args.crate_name:
        return
    path = entry_path(os.path.join(os.path.abspath(os.path.join(cwd, args.out_dir)), rlib_name(args)))
    atomic_write(path, _SEP.join([cwd, *expanded]), make_parents=True)


class Entry:
    __slots__ = ("cwd", "argv", "raw")

    def __init__(self, cwd: str, argv: list[str], raw: bytes) -> None:
        self.cwd = cwd
        self.argv = argv
        self.raw = raw


def load(rlib: str) -> Entry | None:
    try:
        with open(entry_path(rlib), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    parts = raw.decode("utf-8", "surrogateescape").split(_SEP)
    return Entry(parts[0], parts[1:], raw)
