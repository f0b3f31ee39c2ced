"""`make bench` itself runs: its quick mode on the two fast sections (~12 s). The bench imports cratecage's
modules by name, so a move (the rooms of issue 12 broke it once, unnoticed) fails here rather than on the
next person who measures. The numbers are not judged: this machine is busy running the other tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def test_the_bench_runs_its_pass_through_and_runner_sections() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "bench.py"), "--quick", "--only", "pass-through",
                           "--only", "runner"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "median pass-through overhead" in done.stdout
    assert "python -S start" in done.stdout  # the interpreter's start, side by side
    assert "the wrapper's own work" in done.stdout or "the native launcher passed these calls" in done.stdout
    assert "median runner overhead" in done.stdout
    assert "build script run" in done.stdout and "rustc -vV" in done.stdout
