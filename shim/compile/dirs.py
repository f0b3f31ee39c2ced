"""The private directories of one wasm compile: what it writes, the rlibs it may read, its TMPDIR.

Why: `<target>/cratecage/wasm-deps/` is shared by every build script of a build. A compile that could read
it would read other crates' rlibs (holding what *their* grants let them read) and, through any dep-info
kept there, the `# env-dep:NAME=value` lines of their granted variables; a compile that could write it
(a proc macro runs natively inside rustc) would replace another crate's rlib with its own. So no compile
touches wasm-deps. Each one gets, under `<target>/cratecage/tmp/wasm-<random>/`:

    deps/  hard links to exactly the rlibs of its closure (its `--extern`s and, transitively, theirs), for
           rustc's `--extern` and `-L dependency=` search: readable, never writable (a write through a link
           would reach the shared file). Nothing else is there to list or read.
    out/   its `--out-dir`, the only place it writes: the dep-info (holding the values of the variables
           it read) is read there and dropped with the directory; a replay's rlib is copied from there into
           wasm-deps by cratecage (`publish`), atomically, with its sha256 for the stamp (shim.compile.replay).
    tmp/   its TMPDIR.

The directory lives in the target dir, so hard links and renames into wasm-deps stay on one file system
(a copy is made where a link cannot be), and `cargo clean` removes whatever a killed build left behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Iterable

from shim.files import atomic_write

DEP_INFO_SUFFIX = ".d"


class CompileDirs:
    """`with CompileDirs(cratecage_dir) as dirs:` makes deps/, out/, tmp/ and removes them all on exit."""

    def __init__(self, cratecage_dir: str) -> None:
        base = os.path.join(cratecage_dir, "tmp")
        os.makedirs(base, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="wasm-", dir=base)
        self.deps, self.out, self.tmp = (os.path.join(self.root, name) for name in ("deps", "out", "tmp"))
        for path in (self.deps, self.out, self.tmp):
            os.mkdir(path, 0o700)

    def __enter__(self) -> CompileDirs:
        return self

    def __exit__(self, *_exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def link(self, files: Iterable[str]) -> dict[str, str]:
        """Put each shared file in deps/ (a hard link, else a copy); shared path -> the compile's path."""
        out: dict[str, str] = {}
        for path in files:
            dest = os.path.join(self.deps, os.path.basename(path))
            if dest in out.values():
                out[path] = dest
                continue
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
            out[path] = dest
        return out

    def dep_info(self, stem: str) -> str:
        return os.path.join(self.out, stem + DEP_INFO_SUFFIX)

    def publish(self, dest_dir: str) -> dict[str, str]:
        """Copy every output but the dep-info into `dest_dir` (a new file renamed into place: atomic, and
        a process that kept a descriptor of the compile's own file writes to nothing published);
        file name -> sha256 of exactly the bytes published."""
        digests: dict[str, str] = {}
        for name in sorted(os.listdir(self.out)):
            src = os.path.join(self.out, name)
            if name.endswith(DEP_INFO_SUFFIX) or os.path.islink(src) or not os.path.isfile(src):
                continue
            with open(src, "rb") as fh:
                data = fh.read()
            digests[name] = hashlib.sha256(data).hexdigest()
            atomic_write(os.path.join(dest_dir, name), data)
        return digests


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
