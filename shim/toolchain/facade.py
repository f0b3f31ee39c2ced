"""Builds the std facade (shim/rust/facade, a crate named `std`) once per toolchain and source version.

Every crate compiled for the sandbox gets `--extern std=<facade_rlib(tc)>`, and all crates of one wasm
dependency graph must get the very same rlib so their `std::process` types agree
(notes/sandbox-experiments.md §1). So the rlib lives in the per-user cache, next to the wasm sysroot it
was built against:

    <cache>/toolchains/<compiler key>/facade/<hash>/libstd.rlib

`<hash>` covers the facade's sources and its flags (FLAGS below): an edited source or flag builds a new one,
and the fixed `-C metadata=cratecage-facade-<hash>` gives identical inputs an identical crate identity.
The cache layout, lock and identity are those of every shipped crate (shim.toolchain.shipped).

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

import os
from pathlib import Path
from typing import Final, Mapping, Sequence

from shim.toolchain import shipped
from shim.toolchain.capable import WASM_TARGET
from shim.toolchain.compiler import Toolchain
from shim.toolchain.shipped import first_error  # noqa: F401 (re-exported: the facade's errors name it)

FACADE_DIR: Final = Path(__file__).resolve().parent.parent / "rust" / "facade"
RLIB_NAME: Final = "libstd.rlib"
# Everything but the paths and the metadata; part of the hash.
FLAGS: Final = ("--crate-name", "std", "--crate-type", "rlib", "--edition", "2021", "--target", WASM_TARGET,
                "-C", "opt-level=1", "--cap-lints=allow")
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
    return shipped.sources(FACADE_DIR)


def build_flags(tc: Toolchain) -> tuple[str, ...]:
    """The facade's compile flags for this toolchain (the same for every toolchain today); part of the hash."""
    return FLAGS


def source_hash(flags: Sequence[str] = FLAGS) -> str:
    return shipped.source_hash(FACADE_DIR, flags)


def _crate(tc: Toolchain) -> shipped.Shipped:
    return shipped.Shipped("the std facade", "facade", FACADE_DIR, RLIB_NAME, build_flags(tc))


def facade_dir(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> Path:
    return shipped.cache_dir(tc, _crate(tc), environ)


def facade_rlib(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> Path:
    """The facade rlib for this toolchain, built first if needed. Raises ToolchainError."""
    return shipped.rlib(tc, _crate(tc), environ=environ)
