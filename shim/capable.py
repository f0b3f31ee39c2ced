"""The wrapper's quick answer to "is cargo's rustc wasm32-wasip1-capable?", and the cache location.

Every build-script and proc-macro unit asks this. Asking the compiler (`rustc -vV`, `--print sysroot`) costs
two processes, so a positive answer is remembered per compiler *binary*: a stamp under
`<cache>/verified/`, named by the binary's real path, inode, size and mtime, holding the wasm sysroot and the compiler's identity. A
replaced compiler has another name; a removed sysroot fails `is_capable_sysroot` and is asked about again.
Rustup proxies are never remembered: which toolchain they run depends on directory and environment.
Standard library only (no dataclasses/typing): the wrapper imports this before anything heavier.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil

WASM_TARGET = "wasm32-wasip1"
COMPLETE_MARKER = "cratecage-sysroot.json"  # written last into a private sysroot cratecage built
CACHE_ENV = "CRATECAGE_CACHE_DIR"

if False:  # typing only
    from pathlib import Path
    from typing import Mapping

    from shim.toolchain import Toolchain


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user cache shared by all projects: `$CRATECAGE_CACHE_DIR`, else XDG's cache dir."""
    from pathlib import Path

    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cratecage"


def _stamp_path(rustc: str, environ: Mapping[str, str]) -> str | None:
    program = shutil.which(rustc, path=environ.get("PATH")) if os.sep not in rustc else rustc
    if not program:
        return None
    real = os.path.realpath(program)
    if os.path.basename(real).startswith("rustup"):
        return None
    try:
        st = os.stat(real)
    except OSError:
        return None
    ident = f"{real}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    return os.path.join(cache_root(environ), "verified", hashlib.sha256(ident.encode()).hexdigest()[:24])


def is_capable_sysroot(sysroot: str) -> bool:
    """A sysroot with a wasm32-wasip1 std: a private one cratecage finished, or rustup's target."""
    lib = os.path.join(sysroot, "lib", "rustlib", WASM_TARGET)
    return os.path.isfile(os.path.join(lib, COMPLETE_MARKER)) or bool(
        glob.glob(os.path.join(lib, "lib", "libstd-*.rlib"))
    )


def verified(rustc: str, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """What was remembered for this compiler binary, if its wasm sysroot is still there:
    {"wasm_sysroot", "sysroot", "rustc" (real path), "verbose_version"}."""
    stamp = _stamp_path(rustc, environ)
    if stamp is None:
        return None
    try:
        with open(stamp) as fh:
            import json

            info = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not is_capable_sysroot(str(info.get("wasm_sysroot", ""))):
        return None
    return info


def verified_sysroot(rustc: str, environ: Mapping[str, str] = os.environ) -> str | None:
    info = verified(rustc, environ)
    return info["wasm_sysroot"] if info else None


def remember(rustc: str, info: dict[str, str], environ: Mapping[str, str] = os.environ) -> None:
    import json

    stamp = _stamp_path(rustc, environ)
    if stamp is None:
        return
    from shim.files import atomic_write

    atomic_write(stamp, json.dumps(info), make_parents=True)


def require_wasm(rustc: str, what: str, environ: Mapping[str, str] = os.environ) -> Toolchain:
    """shim.toolchain.require_wasm_capable for a unit cargo asked for (`what`: "build script of foo 1.0"):
    its error is the same for every unit of the build but names the first, so it is said once per cargo
    run by the compiler's identity (shim.once), not by its text."""
    from shim import toolchain
    from shim.errors import ToolchainError

    try:
        return toolchain.require_wasm_capable(rustc, what=what, environ=environ)
    except ToolchainError as err:
        err.once = f"toolchain {rustc}"
        raise
