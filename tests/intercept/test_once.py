"""Said once per cargo run (shim.once): the processes of one run race for the marker and one wins, another run
says it again, finished runs are cleared away. tests/cli/test_messages.py has the real builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shim import once

from conftest import REPO

FIRST = "import sys; from shim import once; print(once.first(sys.argv[1], root=sys.argv[2]))"


def first_in_child(identity: str, root: Path, *, via_shell: bool = False,
                   env: dict[str, str] | None = None) -> bool:
    """`once.first` in a child of this process (one cargo run), or of a shell that does not exec it (another)."""
    cmd = [sys.executable, "-S", "-c", FIRST, identity, str(root)]
    if via_shell:
        cmd = ["sh", "-c", '"$@"; status=$?; exit $status', "sh", *cmd]
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                         check=True).stdout
    return {"True\n": True, "False\n": False}[out]


def test_the_first_process_of_a_run_says_it_and_the_others_do_not(tmp_path: Path) -> None:
    assert first_in_child("policy error", tmp_path)
    assert not first_in_child("policy error", tmp_path)
    assert first_in_child("another message", tmp_path)


def test_another_run_says_it_again(tmp_path: Path) -> None:
    assert first_in_child("policy error", tmp_path)
    assert first_in_child("policy error", tmp_path, via_shell=True)  # the shell is another parent: another run


def test_a_process_between_cargo_and_us_is_looked_through(tmp_path: Path) -> None:
    """The run is the nearest ancestor running the binary CARGO names: here this Python, behind a shell."""
    assert first_in_child("policy error", tmp_path)
    assert not first_in_child("policy error", tmp_path, via_shell=True, env={"CARGO": sys.executable})


def test_of_many_parallel_processes_exactly_one_says_it(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-S", "-c", FIRST, "race", str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(12)]
    answers = [p.communicate()[0] for p in procs]
    assert sorted(answers) == ["False\n"] * 11 + ["True\n"]


def test_a_new_run_clears_away_the_runs_that_are_over(tmp_path: Path) -> None:
    run = once.cargo_run()
    assert run is not None
    boot = run.split("-")[0]
    said = tmp_path / once.SAID_DIR
    live = said / run  # this process's parent: still running
    gone = [said / f"{boot}-{os.getpid()}-1", said / f"{'0' * len(boot)}-{os.getpid()}-1", said / "junk"]
    for directory in (live, *gone):
        directory.mkdir(parents=True)
        (directory / "marker").touch()
    assert first_in_child("x", tmp_path)  # a new run (its parent is this process) clears the dead ones
    ours = f"{boot}-{os.getpid()}-{once._stat(os.getpid())[1]}"
    assert sorted(p.name for p in said.iterdir()) == sorted([live.name, ours])
    assert not first_in_child("x", tmp_path)


def test_without_a_writable_cache_it_is_said_every_time(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert first_in_child("x", blocked) and first_in_child("x", blocked)
