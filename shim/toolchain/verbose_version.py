"""`rustc -vV` remembered per compiler binary, so the wrapper answers cargo's first question without a child.

Cargo asks `rustc -vV` through the wrapper at the start of every build whose target directory has no
rustc cache (every clean build, twice here), before it starts any unit: ~30 ms of compiler start-up, plus
`subprocess`, on the critical path. The answer depends on the compiler binary and the rustc driver library
it loads, nothing a crate can reach, so it is remembered under `<cache>/verbose-version/`, named like
shim.toolchain.capable's stamps (the binary's real path, inode, size and mtime) and holding, besides the
output, the identity of the binary and of its `lib/librustc_driver-*.so` (a toolchain rebuilt in place
keeps no stale answer). A rustup proxy that decides by directory or settings (`compiler_binary` None),
a workspace or inner wrapper, or LD_LIBRARY_PATH/LD_PRELOAD (which can load another driver) are asked
every time, as before.
"""

from __future__ import annotations

import os

from shim.files import atomic_write, cache_dir
from shim.toolchain.capable import compiler_binary, stamp_name

if False:  # typing only
    from typing import Mapping

CACHE_DIR = "verbose-version"
MAGIC = b"cratecage-verbose-version-1"
_LOADER_ENV = ("LD_LIBRARY_PATH", "LD_PRELOAD")


def _identity(real: str) -> bytes | None:
    """The binary and the driver libraries beside it: path, inode, size, mtime of each."""
    lib = os.path.join(os.path.dirname(os.path.dirname(real)), "lib")
    try:
        drivers = sorted(n for n in os.listdir(lib) if n.startswith("librustc_driver"))
    except OSError:
        drivers = []
    parts = []
    for path in (real, *(os.path.join(lib, n) for n in drivers)):
        try:
            st = os.stat(path)
        except OSError:
            return None
        parts.append(f"{path}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}")
    return "\n".join(parts).encode("utf-8", "surrogateescape")


def _where(rustc: str, environ: Mapping[str, str]) -> tuple[str, bytes] | None:
    """The cache file for the compiler `rustc` runs and the identity it must hold; None: do not cache."""
    if any(environ.get(name) for name in _LOADER_ENV):
        return None
    real = compiler_binary(rustc, environ)
    name = stamp_name(real) if real else None
    ident = _identity(real) if real and name else None
    if real is None or name is None or ident is None:
        return None
    return os.path.join(cache_dir(environ), CACHE_DIR, name), ident


def cached(rustc: str, environ: Mapping[str, str]) -> bytes | None:
    """What `rustc -vV` printed for this very compiler, or None: ask it."""
    where = _where(rustc, environ)
    if where is None:
        return None
    path, ident = where
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    magic, _, rest = raw.partition(b"\0\0")
    stored, _, out = rest.partition(b"\0\0")
    return out if magic == MAGIC and stored == ident and out.startswith(b"rustc ") else None


def remember(rustc: str, out: bytes, environ: Mapping[str, str]) -> None:
    """Keep a successful `rustc -vV` answer of a compiler binary (never one that looks otherwise)."""
    where = _where(rustc, environ)
    if where is None or not out.startswith(b"rustc ") or b"\nrelease: " not in out:
        return
    path, ident = where
    try:
        atomic_write(path, MAGIC + b"\0\0" + ident + b"\0\0" + out, make_parents=True)
    except OSError:
        pass  # asked again next time
