"""Wasm compiles of downloaded crates, kept per user: a clean build does not compile syn for wasm again.

Why: a sandboxed build compiles every build-time library twice, natively (cargo) and for wasm (the
replays of shim.compile.replay, the proc-macro guests of shim.macro.compile); the wasm copies are most of
what a clean build through cratecage costs more than a plain one. A crate unpacked from a registry never
changes (cargo checks it against the index's checksum), so the wasm compile of one, with the same command
line, the same native rlib (by content), the same toolchain, facade, grant and wasm dependencies (by their
own keys), gives the same outputs: they are kept in `<cache>/wasm-compiles/<key>/` (shim.files.cache_root,
like the compiled modules of `<cache>/modules`) and copied into the build instead of compiling.

Only crates whose package directory is in `$CARGO_HOME/registry/src/` are kept (shim.cargo.workspace.
package_source): a path or git dependency, a workspace member, is compiled in its build as before, and so is
every library that depends on one (no key: `key` returns None when a part has none). The key holds paths as
they are (the target directory's among them), so builds in different directories never share an entry.
An entry is published whole (a directory renamed into place) with the sha256 of each file; a copy whose
bytes do not match is not used (the compile runs, and its outputs replace the entry).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Iterable, Mapping

from shim.compile.dirs import sha256_of
from shim.files import atomic_write

VERSION = "1"  # part of every key: change when what a wasm compile produces changes for the same inputs
DIR = "wasm-compiles"
MANIFEST = "manifest.json"


def from_registry(package_dir: str | None, environ: Mapping[str, str]) -> bool:
    from shim.cargo.workspace import package_source

    return package_source(package_dir, environ) == "registry"


def key(*parts: str | bytes | None, files: Iterable[str] = ()) -> str | None:
    """sha256 of the parts and of the files' contents; None when a part is None (it has no key) or a file
    cannot be read."""
    h = hashlib.sha256(f"cratecage wasm compile {VERSION}".encode())
    for part in parts:
        if part is None:
            return None
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "little") + data)
    for path in files:
        try:
            h.update(f"|{path}|{sha256_of(path)}".encode("utf-8", "surrogateescape"))
        except OSError:
            return None
    return h.hexdigest()


def stamped_keys(wasm_rlibs: Iterable[str]) -> list[str | None]:
    """The cache keys of replayed libraries (shim.compile.replay's stamps, sorted by path): None for one
    without a key or a readable stamp, which leaves whatever depends on it without a key too."""
    keys: list[str | None] = []
    for rlib in sorted(wasm_rlibs):
        try:
            with open(rlib + ".stamp") as fh:
                stamp = json.load(fh)
            keys.append(stamp.get("shared") if isinstance(stamp, dict) else None)
        except (OSError, ValueError):
            keys.append(None)
    return keys


def out_dir_files(out_dir: str | None) -> list[str]:
    """Every file under a build script's OUT_DIR, sorted: what a compile may `include!` from it."""
    found: list[str] = []
    for top, dirs, files in os.walk(out_dir or "", followlinks=False):
        dirs.sort()
        found += [os.path.join(top, f) for f in sorted(files)]
    return found


def _entry(cache: str, entry_key: str) -> str:
    return os.path.join(cache, DIR, entry_key[:2], entry_key)


def fetch(cache: str, entry_key: str, dest_dir: str) -> tuple[dict[str, str], dict] | None:
    """Copy the entry's files into `dest_dir` (each renamed into place): (file name -> sha256, the entry's
    `extra` record), or None when there is no intact entry."""
    where = _entry(cache, entry_key)
    try:
        with open(os.path.join(where, MANIFEST)) as fh:
            manifest = json.load(fh)
        outputs = manifest["outputs"]
        record = manifest.get("extra", {})
        if not isinstance(outputs, dict) or not outputs or not isinstance(record, dict):
            return None
        blobs = {}
        for name, digest in outputs.items():
            if not isinstance(name, str) or os.sep in name or name.startswith(".") or name == MANIFEST:
                return None
            with open(os.path.join(where, name), "rb") as fh:
                data = fh.read()
            if hashlib.sha256(data).hexdigest() != digest:
                return None
            blobs[name] = data
    except (OSError, ValueError, KeyError, TypeError):
        return None
    os.makedirs(dest_dir, exist_ok=True)
    for name, data in blobs.items():
        atomic_write(os.path.join(dest_dir, name), data)
    return dict(outputs), record


def store(cache: str, entry_key: str, src_dir: str, outputs: Mapping[str, str], extra: dict | None = None) -> None:
    """Keep `outputs` (file name -> sha256, files in `src_dir`) under the key; a failure to write only means
    the next build compiles again."""
    where = _entry(cache, entry_key)
    if os.path.isdir(where):
        shutil.rmtree(where, ignore_errors=True)  # fetch found it broken: replaced
    tmp = f"{where}.{os.getpid()}.tmp"
    try:
        os.makedirs(tmp, exist_ok=True)
        for name in outputs:
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(tmp, name))
        atomic_write(os.path.join(tmp, MANIFEST), json.dumps({"outputs": dict(outputs), "extra": extra or {}},
                                                             sort_keys=True))
        os.rename(tmp, where)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
