"""Curated defaults: small grants for well-known crates, shipped with cratecage, each saying why it is safe.

They are written in the policy format itself (`CURATED`), read by the same loader, and merged into every
crate's grant like entries of the user's policy: a user's `action = "deny"` still wins over them, and
`curated-defaults = false` in `[permissions]` turns them all off. A grant belongs here only if it cannot
run anything, reach anything, or read anything secret: variables a crate documents as its own build
switches, system libraries a `-sys` crate exists to link, and search paths in root-owned system library
directories (the linker searches those already; a build script cannot put files there). Programs,
network routes and files are never granted from here.

A curated *deny* makes a refusal expected (shim.host.spawn: the script sees "not found", the audit log the
refusal): for probes that fail natively too, such as `git` run by a registry package's build script, which
has no repository to ask. The entry for every package (`"*"`, deny-only) with `source = "registry"` says so.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Final

from shim.policy.model import Entry

FILE: Final = "<cratecage curated defaults>"

CURATED: Final = (Path(__file__).resolve().parent / "curated.toml").read_text()


@lru_cache(maxsize=1)
def entries() -> tuple[Entry, ...]:
    """The curated entries, loaded once per process."""
    from shim.policy.load import load_text  # shim.policy.load -> shim.policy.model -> (at resolve time) here

    return load_text(CURATED, file=FILE, base=Path("/"), where="top-level").entries
