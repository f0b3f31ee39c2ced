"""The journal: how each library was compiled, so a build script's dependencies can be replayed for wasm.

Without `--target`, a build-dependency's compile looks exactly like any other library's, and cargo deletes
argfiles after each call; so the wrapper records every linked library compile (classify: host-library) as
it passes through: the working directory and the argv with argfiles expanded, keyed by the rlib it will
produce, and the variables cargo documents for a crate's compile as cargo set them for this one
(shim.cargo.env.COMPILE_ENV: CARGO_PKG_*, CARGO_MANIFEST_DIR, OUT_DIR, ...): the replay compiles the
library confined to its own package and OUT_DIR, with that environment and its grant, never with the
values its native compile read (`# env-dep:` lines of the native `.d`, which saw cargo's whole
environment). A later compile of the same library overwrites the entry (path dependencies keep their
`-C metadata` across edits, so the replay also checks the rlib itself: shim.compile.replay).

Format: `MAGIC \0 cwd \0 <n> \0 NAME=value * n \0 argv...` (variables hold no NUL). An entry without the
magic (cratecage < 0.5) is treated as missing.

`record` runs on the pass-through fast path: standard library only, one small atomic file write (none
when the entry already says the same).
Entries live in `<build dir>/cratecage/journal/` (shim.cargo.layout.state_dir; `cargo clean` removes them),
named by the rlib's file name, which holds the unit's hash in both build-dir layouts.
"""

from __future__ import annotations

import os

if False:  # typing only: importing typing costs ~10 ms on the pass-through fast path
    from typing import Mapping

from shim.cargo import layout
from shim.cargo.env import recorded
from shim.cargo.rustc_args import RustcArgs
from shim.files import atomic_write

_SEP = "\0"
JOURNAL_DIR = "journal"
MAGIC = "cratecage-journal-2"


def rlib_name(args: RustcArgs) -> str:
    return f"lib{layout.output_stem(args)}.rlib"


def entry_path(rlib: str) -> str:
    """The journal file for a native rlib path (as it appears in a later `--extern name=path`): in the
    state directory of the build the rlib belongs to (a host library: no `<triple>` level)."""
    return os.path.join(layout.state_dir(os.path.dirname(rlib)), JOURNAL_DIR, os.path.basename(rlib) + ".args")


def record(args: RustcArgs, expanded: list[str], cwd: str, environ: Mapping[str, str] | None = None) -> None:
    if not args.out_dir or not args.crate_name:
        return
    path = entry_path(os.path.join(os.path.abspath(os.path.join(cwd, args.out_dir)), rlib_name(args)))
    env = [f"{k}={v}" for k, v in recorded(os.environ if environ is None else environ).items()]
    text = _SEP.join([MAGIC, cwd, str(len(env)), *env, *expanded])
    try:  # a rebuild of an unchanged unit: replacing a file costs ~0.5 ms on ext4, reading it 20 µs
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            if fh.read(len(text) + 1) == text:
                return
    except OSError:
        pass
    atomic_write(path, text, make_parents=True)


class Entry:
    __slots__ = ("cwd", "argv", "raw", "env")

    def __init__(self, cwd: str, argv: list[str], raw: bytes, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.argv = argv
        self.raw = raw
        self.env = env or {}  # COMPILE_ENV as cargo set it for the native compile


def load(rlib: str) -> Entry | None:
    try:
        with open(entry_path(rlib), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    parts = raw.decode("utf-8", "surrogateescape").split(_SEP)
    if len(parts) < 3 or parts[0] != MAGIC or not parts[2].isdigit():
        return None
    n = int(parts[2])
    env = dict(item.partition("=")[::2] for item in parts[3:3 + n])
    return Entry(parts[1], parts[3 + n:], raw, env)


def find(journal_dir: str, manifest_dir: str) -> str | None:
    """The native rlib of a library of the package in `manifest_dir` that the journal recorded (the first
    by name where cargo compiled it more than once); None where it never compiled one. Reads every entry:
    only for a library a replay needs but found no `--extern` of (shim.compile.replay)."""
    try:
        names = sorted(n for n in os.listdir(journal_dir) if n.endswith(".rlib.args"))
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(journal_dir, name), "rb") as fh:
                parts = fh.read().decode("utf-8", "surrogateescape").split(_SEP)
        except OSError:
            continue
        if len(parts) < 3 or parts[0] != MAGIC or not parts[2].isdigit():
            continue
        env = dict(item.partition("=")[::2] for item in parts[3:3 + int(parts[2])])
        if env.get("CARGO_MANIFEST_DIR") == manifest_dir:
            from shim.cargo.rustc_args import parse

            args = parse(parts[3 + int(parts[2]):])
            if args.out_dir:
                return os.path.join(os.path.abspath(os.path.join(parts[1], args.out_dir)), name[:-len(".args")])
    return None
