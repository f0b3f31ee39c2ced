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
every library that depends on one (no key: `key` returns None when a part has none).

A key does not depend on where the build is: in every string and file path that goes into it, the build
directory (cargo's target directory, or its `build.build-dir`: shim.cargo.layout.build_root) and the workspace
root are replaced by placeholders (`Roots`), so a second checkout, workspace or target directory hits the
entries of the first; the files' contents are hashed as they are. A dependency counts by its key *and* the
sha256 of its wasm rlib (`stamped_keys`): rustc's crate hash covers source file names, so a dependency
compiled again elsewhere (its entry gone) whose bytes differ gives its dependents new keys instead of a
copy compiled against other bytes (E0460).
Why a copy built under target A is right in target B: a wasm compile reads only its sources (the registry's,
the same path everywhere), the files of its OUT_DIR (hashed by content: the same files) and its wasm
dependencies (the same, by key and digest), so B's compile would produce the same code. What differs is
only where paths are embedded as text: spans and debuginfo of `include!`d OUT_DIR files and `file!()`
there, which name A's directories in a panic message or a debugger at most; the copy is linked only into
this build's wasm compiles (a build script's module, a macro guest), never into a program cargo ships.
A compile that read a variable naming either root (`env!("OUT_DIR")`, found in its dep-info: `names_root`)
may have baked that path into its code (a `const`, not only an `include!`), which would open A's files from
B: its key is marked `bound` (`bind`), and it and every later compile of that key are kept under the key
with the build's own directories (`resolve`), shared only by rebuilds in the same place. A guest's recorded
dep-info (the trampoline's `.d`) is kept with placeholders and restored with B's roots (`neutral`, `restore`).

An entry is published whole (a directory renamed into place) with the sha256 of each file; a copy whose
bytes do not match is not used (the compile runs, and its outputs replace the entry). Using an entry
touches it; shim.cache_eviction removes what no build used for a month, and the oldest-used beyond
a size cap, at most once a day.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Iterable, Mapping, NamedTuple

from shim.compile.dirs import sha256_of
from shim.files import atomic_write

VERSION = "2"  # part of every key: change when what a wasm compile produces changes for the same inputs
DIR = "wasm-compiles"
MANIFEST = "manifest.json"


def from_registry(package_dir: str | None, environ: Mapping[str, str]) -> bool:
    from shim.cargo.workspace import package_source

    return package_source(package_dir, environ) == "registry"


# What stands for a root in a key and a kept dep-info: no path holds a NUL.
BUILD_DIR, WORKSPACE = "\0build-dir\0", "\0workspace\0"
_NAME_GOES_ON = r"(?![^/\0\"'\s:;,=)\]])"  # a root is a whole path or a prefix ending at a separator


class Roots(NamedTuple):
    """Where this build's directories are: each as given and resolved, with its placeholder."""

    pairs: tuple[tuple[str, str], ...]  # (path, placeholder), longest path first
    given: tuple[tuple[str, str], ...]  # (placeholder, the path as given), for `restore`


NO_ROOTS = Roots((), ())


def roots(build_dir: str, workspace: str | None) -> Roots:
    pairs: dict[str, str] = {}
    given: dict[str, str] = {}
    for path, mark in ((build_dir, BUILD_DIR), (workspace, WORKSPACE)):
        if not path or os.path.abspath(path) == os.sep:
            continue
        given.setdefault(mark, os.path.abspath(path))
        for form in (os.path.abspath(path), os.path.realpath(path)):
            pairs.setdefault(form, mark)
    return Roots(tuple(sorted(pairs.items(), key=lambda kv: -len(kv[0]))), tuple(given.items()))


def _pattern(found: Roots) -> re.Pattern[str]:
    return re.compile("|".join(f"{re.escape(path)}{_NAME_GOES_ON}" for path, _ in found.pairs))


def neutral(text: str, found: Roots) -> str:
    """`text` with each root replaced by its placeholder."""
    if not found.pairs:
        return text
    marks = dict(found.pairs)
    return _pattern(found).sub(lambda m: marks[m.group(0)], text)


def restore(text: str, found: Roots) -> str:
    """`neutral` undone with this build's roots."""
    for mark, path in found.given:
        text = text.replace(mark, path)
    return text


def names_root(texts: Iterable[str], found: Roots) -> bool:
    return bool(found.pairs) and any(_pattern(found).search(t) for t in texts)


def key(*parts: str | bytes | None, files: Iterable[str] = (), found: Roots = NO_ROOTS) -> str | None:
    """sha256 of the parts and of the files' contents, the roots in parts and paths replaced by their
    placeholders; None when a part is None (it has no key) or a file cannot be read."""
    h = hashlib.sha256(f"cratecage wasm compile {VERSION}".encode())
    for part in parts:
        if part is None:
            return None
        text = part.decode("utf-8", "surrogateescape") if isinstance(part, bytes) else part
        data = neutral(text, found).encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "little") + data)
    for path in files:
        try:
            h.update(f"|{neutral(path, found)}|{sha256_of(path)}".encode("utf-8", "surrogateescape"))
        except OSError:
            return None
    return h.hexdigest()


BOUND = "bound"  # the file of an entry that marks its key as bound to the build's directories


def resolve(cache: str, entry_key: str, found: Roots) -> str:
    """The key to fetch and store under: `entry_key`, or where that is marked bound (module docstring), the
    key with this build's directories."""
    from shim import cache_eviction

    marker = os.path.join(_entry(cache, entry_key), BOUND)
    if not os.path.exists(marker):
        return entry_key
    cache_eviction.touch(_entry(cache, entry_key))  # in use
    return key("bound", entry_key, json.dumps(found.given), found=NO_ROOTS) or entry_key


def bind(cache: str, entry_key: str, found: Roots) -> str:
    """Mark `entry_key` (as `key` gave it, never `resolve`d) bound: its compile read a variable naming the
    build's directories; the key to keep this compile under."""
    where = _entry(cache, entry_key)
    tmp = f"{where}.{os.getpid()}.tmp"
    try:
        os.makedirs(tmp, exist_ok=True)
        atomic_write(os.path.join(tmp, BOUND), "")
        os.rename(tmp, where)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process marked it, or the cache is not writable
    return resolve(cache, entry_key, found)


def lookup(cache: str, neutral_key: str | None, found: Roots,
           dest_dir: str) -> tuple[str | None, tuple[dict[str, str], dict] | None]:
    """For a compile whose key (`key`, with placeholders) is `neutral_key`, or None (not kept per user): the
    key it is kept under in this build (`resolve`), and the kept entry copied into `dest_dir` (`fetch`)."""
    if not neutral_key:
        return None, None
    shared = resolve(cache, neutral_key, found)
    return shared, fetch(cache, shared, dest_dir)


def keep(cache: str, neutral_key: str | None, shared: str | None, found: Roots, env_lines: list[str] | None,
         src_dir: str, outputs: Mapping[str, str], extra: dict | None = None) -> str | None:
    """Keep a compile `lookup` found no entry for: under `shared`, or bound to this build's directories when
    its dep-info's `env_lines` name one (it may have baked the path in); not at all when they are unknown
    (None). The key it is kept under, or None."""
    if env_lines is None:
        return None
    if neutral_key and names_root(env_lines, found):
        shared = bind(cache, neutral_key, found)
    if shared:
        store(cache, shared, src_dir, outputs, extra)
    return shared


def stamped_keys(wasm_rlibs: Iterable[str]) -> list[str | None]:
    """The cache keys of replayed libraries (shim.compile.replay's stamps, sorted by path), each with the
    sha256 of the rlib it published (module docstring): None for one without a key or a readable stamp,
    which leaves whatever depends on it without a key too."""
    keys: list[str | None] = []
    for rlib in sorted(wasm_rlibs):
        try:
            with open(rlib + ".stamp") as fh:
                stamp = json.load(fh)
            shared = stamp.get("shared") if isinstance(stamp, dict) else None
            digest = (stamp.get("outputs") or {}).get(os.path.basename(rlib)) if shared else None
            keys.append(f"{shared}:{digest}" if isinstance(shared, str) and isinstance(digest, str) else None)
        except (OSError, ValueError, AttributeError):
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
    from shim import cache_eviction

    where = _entry(cache, entry_key)
    cache_eviction.touch(where)  # used now, before it is read: eviction leaves it
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
    from shim import cache_eviction

    where = _entry(cache, entry_key)
    if os.path.isdir(where):
        cache_eviction.remove(where)  # fetch found it broken: replaced (renamed away first: module docstring)
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
        return
    cache_eviction.prune_when_due(os.path.join(cache, DIR), cache_eviction.WASM_COMPILES)
