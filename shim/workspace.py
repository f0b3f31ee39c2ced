"""Which workspace owns this build, and so its policy?

rustc and build scripts of registry crates run in the dependency's own directory, so their working
directory says nothing about the project. The project is where the user started cargo: the outermost
`cargo` process among our ancestors (/proc, or psutil where there is none), its working directory and its `--manifest-path`. From there the
workspace root is the nearest ancestor whose Cargo.toml has a `[workspace]` table, else the nearest
Cargo.toml's directory, as cargo decides it.

`CRATECAGE_WORKSPACE_ROOT` overrides the search (tests, unusual launchers); the runner sets it for the
children it starts, so a nested cargo cannot bring its own workspace, and with it its own policy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

ROOT_ENV = "CRATECAGE_WORKSPACE_ROOT"
_CARGO_NAMES = frozenset({"cargo", "cargo.exe"})


def _proc_ancestors(pid: int) -> list[tuple[list[str], str]] | None:
    """(cmdline, cwd) of `pid` and its ancestors from /proc (Linux; ~1 ms, where importing psutil costs
    ~15 ms on every build-script run); None where /proc cannot say."""
    chain: list[tuple[list[str], str]] = []
    try:
        while pid > 1:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = [w.decode("utf-8", "surrogateescape") for w in fh.read().split(b"\0") if w]
            chain.append((cmdline, os.readlink(f"/proc/{pid}/cwd")))
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError):
        return chain or None
    return chain


def _cargo_start(pid: int) -> tuple[str, str | None] | None:
    """(cwd, --manifest-path value) of the outermost cargo among the ancestors of `pid`."""
    chain = _proc_ancestors(pid)
    if chain is not None:
        found = None
        for cmdline, cwd in chain:
            if cmdline and os.path.basename(cmdline[0]) in _CARGO_NAMES:
                found = (cwd, _manifest_path(cmdline))
        return found
    import psutil

    found: tuple[str, str | None] | None = None
    try:
        proc: psutil.Process | None = psutil.Process(pid)
    except psutil.Error:
        return None
    while proc is not None:
        try:
            cmdline = proc.cmdline()
            is_cargo = proc.name() in _CARGO_NAMES or (cmdline and os.path.basename(cmdline[0]) in _CARGO_NAMES)
            if is_cargo:
                found = (proc.cwd(), _manifest_path(cmdline))
            proc = proc.parent()
        except psutil.Error:
            break
    return found


def _manifest_path(cmdline: list[str]) -> str | None:
    for i, word in enumerate(cmdline):
        if word == "--manifest-path" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if word.startswith("--manifest-path="):
            return word.split("=", 1)[1]
    return None


def _has_workspace_table(manifest: Path) -> bool:
    try:
        text = manifest.read_text()
    except OSError:
        return False
    return any(line.strip() == "[workspace]" or line.strip().startswith("[workspace.")
               for line in text.splitlines())


def workspace_root_from(start: Path) -> Path:
    """The workspace root for a directory (or a manifest path) inside a project."""
    here = start if start.is_dir() else start.parent
    nearest: Path | None = None
    for directory in (here, *here.parents):
        manifest = directory / "Cargo.toml"
        if manifest.is_file():
            nearest = nearest or directory
            if _has_workspace_table(manifest):
                return directory
    return nearest or here


def find_workspace_root(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> Path:
    if environ.get(ROOT_ENV):
        return Path(environ[ROOT_ENV])
    start = _cargo_start(pid or os.getpid())
    if start is None:
        return workspace_root_from(Path(os.getcwd()))
    cwd, manifest = start
    return workspace_root_from(Path(cwd, manifest).resolve() if manifest else Path(cwd))
