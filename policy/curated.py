"""Curated defaults: small grants for well-known crates, shipped with cratecage, each saying why it is safe.

They are written in the policy format itself (`CURATED`), read by the same loader, and merged into every
crate's grant like entries of the user's policy: a user's `action = "deny"` still wins over them, and
`curated-defaults = false` in `[permissions]` turns them all off. A grant belongs here only if it cannot
run anything, reach anything, or read anything secret: variables a crate documents as its own build
switches, system libraries a `-sys` crate exists to link, and search paths in root-owned system library
directories (the linker searches those already; a build script cannot put files there). Programs,
network routes and files never come from here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Final

from policy.model import Entry

FILE: Final = "<cratecage curated defaults>"

CURATED: Final = """
[permissions.build.openssl-sys]
# OPENSSL_DIR, OPENSSL_STATIC, OPENSSL_LIB_DIR, ...: openssl-sys's documented build switches; they name
# directories and choices, never secrets.
env-access = { action = "permit", vars = ["OPENSSL_*"] }
# Linking the system's libssl/libcrypto is what the crate is for; naming them runs nothing at build time.
directives = { action = "permit", list = [
    "rustc-link-lib=ssl", "rustc-link-lib=crypto",
    "rustc-link-search=/usr/lib*", "rustc-link-search=/lib*",
] }

[permissions.build.libz-sys]
# LIBZ_SYS_STATIC: the crate's own switch between the system zlib and the bundled one.
env-access = { action = "permit", vars = ["LIBZ_SYS_STATIC"] }
# The system zlib, from root-owned library directories.
directives = { action = "permit", list = [
    "rustc-link-lib=z", "rustc-link-search=/usr/lib*", "rustc-link-search=/lib*",
] }

[permissions.build.libsqlite3-sys]
# SQLITE3_LIB_DIR, SQLITE3_STATIC, LIBSQLITE3_SYS_USE_PKG_CONFIG, ...: the crate's documented switches.
env-access = { action = "permit", vars = ["SQLITE3_*", "LIBSQLITE3_SYS_*"] }
# The system libsqlite3, from root-owned library directories.
directives = { action = "permit", list = [
    "rustc-link-lib=sqlite3", "rustc-link-search=/usr/lib*", "rustc-link-search=/lib*",
] }

[permissions.build.zstd-sys]
# ZSTD_SYS_USE_PKG_CONFIG, ZSTD_SYS_STATIC: the crate's own switches.
env-access = { action = "permit", vars = ["ZSTD_SYS_*"] }

[permissions.build.libc]
# RUST_LIBC_UNSTABLE_*, LIBC_CHECK_CFG: libc's own switches for which cfgs it emits; they only select
# among declarations in libc itself.
env-access = { action = "permit", vars = ["RUST_LIBC_UNSTABLE_*", "LIBC_CHECK_CFG"] }
"""


@lru_cache(maxsize=1)
def entries() -> tuple[Entry, ...]:
    """The curated entries, loaded once per process."""
    from policy.load import load_text  # policy.load -> policy.model -> (at resolve time) here

    return load_text(CURATED, file=FILE, base=Path("/"), where="top-level").entries
