"""Builds the Rust crates shipped in the package (shim/rust/): once per toolchain and source version, shared.

The std facade (shim.toolchain.facade) and the wasm-side `proc_macro` (shim.toolchain.proc_macro) are
compiled for wasm32-wasip1 by the toolchain's own rustc, and every crate of one wasm graph must link the very
same rlib (notes/sandbox-experiments.md §1), so each lives in the per-user cache next to the wasm sysroot:

    <cache>/toolchains/<compiler key>/<cache name>/<hash>/<rlib>

`<hash>` covers the crate's sources, its flags and the identity of the rlibs it links (`--extern`), so an
edited source, flag or dependency builds a new one, and the fixed `-C metadata=cratecage-<cache name>-<hash>`
gives identical inputs an identical crate identity. cargo runs many units at once, so a build happens in a
temporary directory renamed into place, under a file lock that makes concurrent builders wait for the first
one instead of compiling again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Iterator, Mapping, NamedTuple, Sequence

from shim import program
from shim.errors import ToolchainError
from shim.files import cache_root
from shim.toolchain.compiler import Toolchain, scrubbed_env

BUILD_TIMEOUT_S: Final = 600


class Shipped(NamedTuple):
    """One shipped crate: what to call it in messages, where its sources are, how to compile it."""

    label: str  # "the std facade"
    cache_name: str  # the directory under the toolchain's cache: "facade"
    source_dir: Path  # holds src/lib.rs
    rlib_name: str  # "libstd.rlib"
    flags: tuple[str, ...]  # everything but paths, externs and the metadata


def sources(source_dir: Path) -> list[Path]:
    """The crate's Rust sources (for the dep-info of units that link it, and its hash)."""
    return sorted((source_dir / "src").rglob("*.rs"))


def source_hash(source_dir: Path, flags: Sequence[str], externs: Sequence[tuple[str, Path]] = ()) -> str:
    digest = hashlib.sha256("\0".join(flags).encode())
    for name, rlib in externs:  # a dependency's cache directory is named by its own hash
        digest.update(f"\0extern {name}={rlib.parent.name}/{rlib.name}".encode())
    for path in sources(source_dir):
        digest.update(b"\0" + path.relative_to(source_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir(tc: Toolchain, crate: Shipped, environ: Mapping[str, str] = os.environ) -> Path:
    return cache_root(environ) / "toolchains" / tc.compiler.key / crate.cache_name


def rlib(tc: Toolchain, crate: Shipped, externs: Sequence[tuple[str, Path]] = (),
         environ: Mapping[str, str] = os.environ) -> Path:
    """The crate's rlib for this toolchain, built first if needed. Raises ToolchainError."""
    if tc.wasm_sysroot is None:
        raise ToolchainError(f"cannot build {crate.label}: {tc.compiler.rustc} has no wasm32-wasip1 std ({tc.how})",
                             hint=f"run `{program.command('toolchain install')}`")
    digest = source_hash(crate.source_dir, crate.flags, externs)
    parent = cache_dir(tc, crate, environ)
    final = parent / digest
    if (final / crate.rlib_name).is_file():
        return final / crate.rlib_name
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent / f".{digest}.lock"):
        if not (final / crate.rlib_name).is_file():
            _build_into(final, tc, crate, externs, digest, environ)
    return final / crate.rlib_name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(final: Path, tc: Toolchain, crate: Shipped, externs: Sequence[tuple[str, Path]], digest: str,
                environ: Mapping[str, str]) -> None:
    """Compile in a temporary sibling directory, then rename it to `final` (which is never half-written)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=final.parent))
    try:
        _compile(tc, crate, externs, digest, tmp, environ)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover; we hold the lock
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compile(tc: Toolchain, crate: Shipped, externs: Sequence[tuple[str, Path]], digest: str, out_dir: Path,
             environ: Mapping[str, str]) -> None:
    extern_args = [arg for name, path in externs for arg in ("--extern", f"{name}={path}")]
    argv = [tc.compiler.rustc, *crate.flags, "--sysroot", str(tc.wasm_sysroot), *extern_args,
            "-C", f"metadata=cratecage-{crate.cache_name}-{digest}", "--out-dir", str(out_dir),
            str(crate.source_dir / "src" / "lib.rs")]
    try:
        # in the crate's own directory: rustc writes its working directory into the rlib (the debuginfo's
        # compilation directory), and the unit that happens to build it first runs wherever cargo started it
        proc = subprocess.run(argv, capture_output=True, text=True, env=scrubbed_env(environ),
                              timeout=BUILD_TIMEOUT_S, cwd=crate.source_dir)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"cannot build {crate.label} with {tc.compiler.rustc}: {err}") from None
    if proc.returncode != 0 or not (out_dir / crate.rlib_name).is_file():
        raise ToolchainError(f"cannot build {crate.label} with {tc.compiler.rustc}: {first_error(proc.stderr)}")


def first_error(stderr: str) -> str:
    """rustc's first `error` line, else its first line, else a placeholder."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return (errors or lines or ["rustc failed without output"])[0]
