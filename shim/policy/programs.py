"""Curated program profiles: what a granted native program may read and run, by the name the owner grants.

A build script that runs `cc` needs the compiler to read system headers and start its own passes; a
build driver (`sh configure`, make, cmake, git, an interpreter) needs to start the system's tools; a
program that the policy names but no profile knows reads only its own executable and the libraries the
loader maps for it. A profile's paths are read and executable (system software, root-owned: shim.host.spawn
keeps only such paths); the crate's `may-run` adds what else its programs may start. Either way the program also reads the package, OUT_DIR, the run's temp dir and the
crate's granted paths, and writes only OUT_DIR, the temp dir and the crate's writable grants
(shim.host.spawn applies this with Landlock). The profiles are data (`programs.toml`), each with a
comment saying why its read set is safe; matching is by the program's file name, so `cc`,
`/usr/bin/cc` and `x86_64-linux-gnu-gcc` find the C compiler's profile.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Final

from shim.record import record

FILE: Final = Path(__file__).resolve().parent / "programs.toml"


@record(frozen=True)
class Profile:
    name: str
    names: tuple[str, ...]
    read: tuple[str, ...]
    runs_output: bool = False  # may run what it built in the run's OUT_DIR and temp dir (a build driver)


@lru_cache(maxsize=1)
def profiles() -> tuple[Profile, ...]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]

    data = tomllib.loads(FILE.read_text())
    return tuple(Profile(name, tuple(t["names"]), tuple(t["read"]), bool(t.get("runs-output", False)))
                 for name, t in data.items())


def profile_for(program: str) -> Profile | None:
    """The profile whose names include `program`'s file name (a path or a bare name)."""
    base = os.path.basename(program)
    return next((p for p in profiles() if base in p.names), None)
