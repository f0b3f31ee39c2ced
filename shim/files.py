"""The two ways cratecage writes files, because cargo runs many units at once.

    atomic_write(path, data)   whole files (journal entries, stamps, launchers, dep-info): a temporary
                               file beside the target, renamed over it, so no reader sees half of one
    append_line(path, line)    logs (trace, audit): one O_APPEND write per line, so parallel writers
                               never interleave

and where the per-user cache is (`cache_root`, `cache_dir`: compiled modules, toolchains, verified compilers).
Also `fresh_dir`: tempfile.mkdtemp's contract without importing tempfile and random (~2 ms of every
build-script run's start).

Standard library only: the wrapper's fast path (shim.cargo.journal) writes through here.
"""

from __future__ import annotations

import os

if False:  # typing only: the fast path imports this module
    from pathlib import Path
    from typing import Mapping

CACHE_ENV = "CRATECAGE_CACHE_DIR"


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o644,
                 make_parents: bool = False) -> None:
    path = os.fspath(path)
    if make_parents:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # the umask may have taken bits off
    os.replace(tmp, path)


def fresh_dir(base: str, prefix: str) -> str:
    """A new directory `<base>/<prefix><random>`, mode 0700, made by this call (as tempfile.mkdtemp)."""
    for _ in range(100):
        path = os.path.join(os.path.abspath(base), prefix + os.urandom(8).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no unused name for a directory in {base}")


def append_line(path: str | os.PathLike[str], line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def shebang(program: str) -> list[str]:
    """The words of a `#!` line (interpreter first, as the kernel reads it: at most 256 bytes); [] for a
    binary, a file that cannot be read, or an empty line."""
    try:
        with open(program, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    return [os.fsdecode(w) for w in head[2:].split(b"\n", 1)[0].split()]


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user cache shared by all projects: `$CRATECAGE_CACHE_DIR`, else XDG's cache dir."""
    from pathlib import Path

    return Path(cache_dir(environ))


def cache_dir(environ: Mapping[str, str] = os.environ) -> str:
    """`cache_root` as a string, for the wrapper's paths that cannot afford pathlib (~5 ms to import)."""
    if environ.get(CACHE_ENV):
        return os.path.expanduser(environ[CACHE_ENV])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cratecage")
