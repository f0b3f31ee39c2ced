"""The wrapper's quick answer to "is cargo's rustc wasm32-wasip1-capable?".

Every build-script and proc-macro unit asks this. Asking the compiler (`rustc -vV`, `--print sysroot`) costs
two processes (~50 ms), so a positive answer is remembered per compiler *binary*: a stamp under
`<cache>/verified/`, named by the binary's real path, inode, size and mtime, holding the wasm sysroot and the
compiler's identity. A replaced compiler has another name; a removed sysroot fails `is_capable_sysroot` and
is asked about again.

A rustup proxy (`~/.cargo/bin/rustc`, a symbolic or hard link to rustup) is not a compiler: which toolchain
it runs depends on RUSTUP_TOOLCHAIN, the directory (rust-toolchain.toml, `rustup override`) and rustup's
settings. Its answer is never remembered under its own name. With RUSTUP_TOOLCHAIN naming an installed
toolchain, the proxy runs exactly `$RUSTUP_HOME/toolchains/<name>/bin/rustc` (cargo takes the same shortcut
past the proxy), so that binary's stamp answers; otherwise the compiler is asked every time. A stamp is
written only when the compiler that answered is the binary it is named for, and read only when it says so
(`binary`), so no proxy, wrapper script or older stamp can lend one toolchain's answer to another.
Standard library only (no dataclasses/typing), imported lazily (glob, shutil, shim.digest): the wrapper's
`rustc -vV` answer (shim.toolchain.verbose_version) names its cache file here.
"""

from __future__ import annotations

import os

from shim.files import cache_root

WASM_TARGET = "wasm32-wasip1"
COMPLETE_MARKER = "cratecage-sysroot.json"  # written last into a private sysroot cratecage built

if False:  # typing only
    from typing import Mapping



def _which(rustc: str, environ: Mapping[str, str]) -> str | None:
    if os.sep in rustc:
        return rustc
    import shutil

    return shutil.which(rustc, path=environ.get("PATH"))


def rustup_home(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("RUSTUP_HOME") or os.path.join(os.path.expanduser("~"), ".rustup")


def is_rustup_proxy(program: str, real: str | None = None) -> bool:
    """rustup's proxy under another name: a symbolic link to rustup, or a hard link (rustup's own
    installer links `~/.cargo/bin/rustc` to `rustup` that way) or copy beside it. `real`: its realpath."""
    real = real or os.path.realpath(program)
    if os.path.basename(real).startswith("rustup"):
        return True
    try:
        beside = os.stat(os.path.join(os.path.dirname(program), "rustup"))
        st = os.stat(real)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (beside.st_dev, beside.st_ino) or st.st_size == beside.st_size


def compiler_binary(rustc: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The real path of the compiler `rustc` runs, when that is known without running it: the file itself,
    or for rustup's proxy under a RUSTUP_TOOLCHAIN that names an installed toolchain, that toolchain's
    rustc. None for a proxy that decides by directory and settings, or a program that is not there."""
    program = _which(rustc, environ)
    if not program:
        return None
    real = os.path.realpath(program)
    if not is_rustup_proxy(program, real):
        return real
    name = environ.get("RUSTUP_TOOLCHAIN", "")
    if not name or os.sep in name:
        return None
    program = os.path.join(rustup_home(environ), "toolchains", name, "bin", "rustc")
    return os.path.realpath(program) if os.path.isfile(program) else None


def stamp_name(real: str) -> str | None:
    try:
        st = os.stat(real)
    except OSError:
        return None
    ident = f"{real}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    from shim.digest import sha256_hex

    return sha256_hex(ident.encode())[:24]


def is_capable_sysroot(sysroot: str) -> bool:
    """A sysroot with a wasm32-wasip1 std: a private one cratecage finished, or rustup's target."""
    import glob

    lib = os.path.join(sysroot, "lib", "rustlib", WASM_TARGET)
    return os.path.isfile(os.path.join(lib, COMPLETE_MARKER)) or bool(
        glob.glob(os.path.join(lib, "lib", "libstd-*.rlib"))
    )


def verified(rustc: str, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """What was remembered for the compiler binary `rustc` runs, if its wasm sysroot is still there:
    {"wasm_sysroot", "sysroot", "rustc" (real path), "verbose_version", "how", "binary"}."""
    real = compiler_binary(rustc, environ)
    name = stamp_name(real) if real else None
    if name is None:
        return None
    try:
        with open(os.path.join(cache_root(environ), "verified", name)) as fh:
            import json

            info = json.load(fh)
    except (OSError, ValueError):
        return None
    if (not isinstance(info, dict) or info.get("binary") != real
            or not is_capable_sysroot(str(info.get("wasm_sysroot", "")))):
        return None
    return info


def verified_sysroot(rustc: str, environ: Mapping[str, str] = os.environ) -> str | None:
    info = verified(rustc, environ)
    return info["wasm_sysroot"] if info else None


def remember(rustc: str, info: dict[str, str], environ: Mapping[str, str] = os.environ) -> None:
    """Remember a capable compiler, under the binary `rustc` runs, if that is the one that answered
    (`info["rustc"]`, the sysroot's bin/rustc): never for a proxy or wrapper that could run another."""
    real = compiler_binary(rustc, environ)
    name = stamp_name(real) if real else None
    if name is None or os.path.realpath(info["rustc"]) != real:
        return
    import json

    from shim.files import atomic_write

    atomic_write(os.path.join(cache_root(environ), "verified", name), json.dumps({**info, "binary": real}),
                 make_parents=True)


