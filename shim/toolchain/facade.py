"""Builds the std facade (shim/rust/facade, a crate named `std`) once per toolchain and source version.

Every crate compiled for the sandbox gets `--extern std=<facade_rlib(tc)>`, and all crates of one wasm
dependency graph must get the very same rlib so their `std::process` types agree
(notes/sandbox-experiments.md §1). So the rlib lives in the per-user cache, next to the wasm sysroot it
was built against:

    <cache>/toolchains/<compiler key>/facade/<hash>/libstd.rlib

`<hash>` covers the facade's sources and its flags (FLAGS below): an edited source or flag builds a new one,
and the fixed `-C metadata=cratecage-facade-<hash>` gives identical inputs an identical crate identity.
cargo runs many units at once, so a build happens in a temporary directory renamed into place, under a
file lock that makes concurrent builders wait for the first one instead of compiling again.

Linking a wasm module against the facade also needs `LINK_ARGS` (below), the same for every link.

wasi-libc differs between sysroots: Debian's (2022), which cratecage's private sysroot uses, has no
`realpath`, so `std::fs::canonicalize` would not link; rustup's newer one has one that fails for absolute
paths into preopened directories. So `realpath` is wrapped like `stat` (LINK_ARGS): every call reaches the
facade's own implementation (src/realpath.rs), whatever the libc has. The same goes for the pthread
functions std's `thread::spawn` links to (src/threads.rs: there are no threads, spawning fails).

One libc function is replaced without `--wrap`: wasi-libc defines `__wasilibc_find_relpath_alloc`, where every
path function (and chdir, from inside its own object file) picks the preopened directory for a path, *weak*,
so src/paths.rs's strong definition takes its place in every link; it normalises the path lexically first,
so `<manifest>/../VERSION` is looked up as `<workspace>/VERSION`. A libc whose definition were strong would
stop the link with a duplicate symbol, never link silently without it.
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
from typing import Final, Iterator, Mapping, Sequence

from shim import program
from shim.errors import ToolchainError
from shim.files import cache_root
from shim.toolchain.capable import WASM_TARGET
from shim.toolchain.compiler import Toolchain, scrubbed_env

FACADE_DIR: Final = Path(__file__).resolve().parent.parent / "rust" / "facade"
RLIB_NAME: Final = "libstd.rlib"
# Everything but the paths and the metadata; part of the hash.
FLAGS: Final = ("--crate-name", "std", "--crate-type", "rlib", "--edition", "2021", "--target", WASM_TARGET,
                "-C", "opt-level=1", "--cap-lints=allow")
BUILD_TIMEOUT_S: Final = 600
# `-C` values for linking any wasm module that uses the facade (build scripts: shim/build/script.py).
# wasm-ld's `--wrap=<name>` sends every call to libc's `<name>` to the facade's `__wrap_<name>`, which calls
# the original (`__real_<name>`) and adds what the sandbox needs:
#   - src/stat.rs, the whole `stat` family std and wasi-libc export: the permission bits WASI lacks, so
#     `fs::Metadata::permissions().readonly()` is not true for every file (autocfg refuses OUT_DIR otherwise);
#   - src/modes.rs, `chmod` (`fs::set_permissions`): sent to the host, which alone can change a mode
#     (shim/host/files.py);
#   - src/realpath.rs replaces `realpath` outright (see the module docstring);
#   - src/observe.rs (and stat.rs, realpath.rs): a report to the host of every failed file system access
#     and every environment lookup that found nothing (in warn mode, successful reads and lookups too;
#     shim/host/observe.py), for denials a person can act on; `__wasilibc_open_nomode` is what wasi-libc's
#     `fopen` calls instead of `open`.
# Every wasm link against the facade (a bin or a cdylib; compiles that only write an rlib ignore link args)
# needs them: without `--wrap`, wasm-ld fails with "undefined symbol: __real_stat".
WRAPPED: Final[tuple[str, ...]] = (
    "stat", "lstat", "fstat", "fstatat", "realpath",
    "open", "__wasilibc_open_nomode", "opendir", "access", "mkdir", "unlink", "rmdir", "rename", "symlink",
    "readlink", "getenv", "chmod",
    "pthread_attr_init", "pthread_attr_setstacksize", "pthread_attr_destroy", "pthread_create", "pthread_join",
    "pthread_detach",
)
LINK_ARGS: Final[tuple[str, ...]] = tuple(f"link-arg=--wrap={name}" for name in WRAPPED)


def facade_sources() -> list[Path]:
    """The facade's Rust sources (for the dep-info of units that link it)."""
    return sorted((FACADE_DIR / "src").rglob("*.rs"))


def build_flags(tc: Toolchain) -> tuple[str, ...]:
    """The facade's compile flags for this toolchain (the same for every toolchain today); part of the hash."""
    return FLAGS


def source_hash(flags: Sequence[str] = FLAGS) -> str:
    digest = hashlib.sha256("\0".join(flags).encode())
    for path in facade_sources():
        digest.update(b"\0" + path.relative_to(FACADE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def facade_dir(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> Path:
    return cache_root(environ) / "toolchains" / tc.compiler.key / "facade"


def facade_rlib(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> Path:
    """The facade rlib for this toolchain, built first if needed. Raises ToolchainError."""
    if tc.wasm_sysroot is None:
        raise ToolchainError(f"cannot build the std facade: {tc.compiler.rustc} has no wasm32-wasip1 std "
                             f"({tc.how})", hint=f"run `{program.command('toolchain install')}`")
    flags = build_flags(tc)
    digest = source_hash(flags)
    parent = facade_dir(tc, environ)
    final = parent / digest
    if (final / RLIB_NAME).is_file():
        return final / RLIB_NAME
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent / f".{digest}.lock"):
        if not (final / RLIB_NAME).is_file():
            _build_into(final, tc, flags, digest, environ)
    return final / RLIB_NAME


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(final: Path, tc: Toolchain, flags: Sequence[str], digest: str,
                environ: Mapping[str, str]) -> None:
    """Compile in a temporary sibling directory, then rename it to `final` (which is never half-written)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=final.parent))
    try:
        _compile(tc, flags, digest, tmp, environ)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover; we hold the lock
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compile(tc: Toolchain, flags: Sequence[str], digest: str, out_dir: Path,
             environ: Mapping[str, str]) -> None:
    argv = [tc.compiler.rustc, *flags, "--sysroot", str(tc.wasm_sysroot),
            "-C", f"metadata=cratecage-facade-{digest}", "--out-dir", str(out_dir), str(FACADE_DIR / "src" / "lib.rs")]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=scrubbed_env(environ),
                              timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"cannot build the std facade with {tc.compiler.rustc}: {err}") from None
    if proc.returncode != 0 or not (out_dir / RLIB_NAME).is_file():
        raise ToolchainError(f"cannot build the std facade with {tc.compiler.rustc}: {first_error(proc.stderr)}")


def first_error(stderr: str) -> str:
    """rustc's first `error` line, else its first line, else a placeholder."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return (errors or lines or ["rustc failed without output"])[0]
