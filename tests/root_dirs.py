"""A directory only root can write, for tests of shim.confine.syslibs' rule (a library the linker finds in its default
directories is trusted only when root's through and through): pytest's tmp_path is under /tmp, which every
user may write, so it is made beside the checkout instead, and removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from shim.confine import syslibs
from shim.lexical import entries_on_the_way

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A fresh directory that syslibs takes for root's (skipped where the checkout is not: a user's build)."""
    path = Path(tempfile.mkdtemp(dir=REPO, prefix=".root-dir-"))
    try:
        path.chmod(0o755)
        problem = next((p for p in map(syslibs.entry_problem, ("/", *entries_on_the_way(str(path)))) if p), "")
        if problem:
            pytest.skip(f"needs a checkout only root can write: {problem}")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def not_roots(path: Path) -> Path:
    """`path`, now owned by nobody (65534)."""
    os.chown(path, 65534, 65534)
    return path
