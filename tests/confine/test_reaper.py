"""The /proc sweep (shim.confine.reaper) on its own, without the PID namespace the launcher adds (shim.confine.pidns): what is
left where no namespace can be made. A daemon whose main thread exited (state Z) while a thread runs on,
in its own session, plain, stopped or ptrace-stopped (fixtures/hostile-spawn/native/procs.c), is counted
alive with its memory, and killed."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from shim.confine import reaper

from conftest import FIXTURES


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("procs") / "procs"
    subprocess.run(["cc", "-pthread", "-o", str(out), str(FIXTURES / "hostile-spawn" / "native" / "procs.c")],
                   check=True)
    return out


def marked(marker: str) -> list[int]:
    """PIDs any of whose tasks has `marker` in its argv (a zombie leader's own cmdline is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(marker.encode() in (t / "cmdline").read_bytes() for t in (entry / "task").iterdir()):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", ["run", "stop", "trace"])
def test_a_daemon_whose_main_thread_exited_is_counted_and_killed(procs: Path, tmp_path: Path, how: str) -> None:
    marker = "cratecage_reaper_" + secrets.token_hex(6)
    target, canary = tmp_path / "target.txt", tmp_path / "canary"
    target.write_text("harmless\n")
    canary.write_text("CANARY\n")
    reaper.begin_run()
    try:
        started = reaper.popen([str(procs), "zombie", str(target), str(canary), how, marker],
                               stdout=subprocess.PIPE, start_new_session=True)
        assert started.communicate(timeout=10)[0] == b"zombie started\n"
        time.sleep(0.1)
        census = reaper.census()
        assert census.processes == (1 if how == "run" else 2)  # the program itself has exited
        assert census.rss > 0  # read from a live task: the zombie leader's own stat says 0
        assert marked(marker)
    finally:
        ended = reaper.end()
    assert ended >= 1
    assert marked(marker) == []
    assert reaper.census().processes == 0
    assert not target.is_symlink() and target.read_text() == "harmless\n"
