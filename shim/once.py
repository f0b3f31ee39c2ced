"""Build-wide messages, said once per cargo run rather than once per parallel unit.

Why: cargo starts cratecage once for every rustc call and every build-script run, several at a time (`-j`).
A message about the build as a whole (a malformed policy, an unknown workspace, a compiler that cannot
target wasm, no Landlock) is met alike by every unit, and each would print it: four build scripts, four
copies. Only the text is said once; every unit still fails with its own exit status.

`first(identity)` is true in exactly one process per identity and cargo run: the one whose O_EXCL create of
the marker `<cache>/said/<run>/<hash of identity>` succeeds. The cache is the per-user one
(shim.files.cache_root), not the target directory: where that lives depends on cargo's layout, and some
of these messages come before anyone knows it. The run is the cargo process that started this one, named
by boot id, pid and start time (`cargo_run`), so a later cargo run says it again and a reused pid is
another run. A new run's directory clears away those of runs whose cargo has exited.

Where /proc cannot tell the run, or the marker cannot be written, the answer is true: a message twice
beats none. Standard library only; imported only once something is to be said, never on the
pass-through path.
"""

from __future__ import annotations

import os
import shutil
import sys

from shim.digest import sha256_hex

if False:  # typing only
    from typing import Mapping, TextIO

    from shim.errors import CratecageError

SAID_DIR = "said"
MAX_HOPS = 16  # ancestors looked at for cargo, when our parent is not it


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip().replace("-", "")[:16] or None
    except OSError:
        return None


def _runs_cargo(pid: int, cargo: tuple[int, int] | None) -> bool:
    if cargo is None:
        return False
    try:
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == cargo


def cargo_run(environ: Mapping[str, str] = os.environ) -> str | None:
    """`<boot id>-<pid>-<start time>` of the cargo that started this process: our parent (cargo runs rustc
    and build scripts as its children, and RUSTC_WRAPPER in rustc's place), or where something sits between,
    the nearest ancestor running the binary `CARGO` names. None where /proc cannot say."""
    boot = _boot_id()
    parent = os.getppid()
    stat = _stat(parent)
    if boot is None or stat is None:
        return None
    cargo_path = environ.get("CARGO")
    try:
        st = os.stat(cargo_path) if cargo_path else None
        cargo = (st.st_dev, st.st_ino) if st is not None else None
    except OSError:
        cargo = None
    pid, here = parent, stat
    hops = 0
    while cargo is not None and not _runs_cargo(pid, cargo) and here[0] > 1 and hops < MAX_HOPS:
        up = _stat(here[0])
        if up is None:
            break
        pid, here, hops = here[0], up, hops + 1
    if not _runs_cargo(pid, cargo):
        pid, here = parent, stat
    return f"{boot}-{pid}-{here[1]}"


def _alive(run: str, boot: str | None) -> bool:
    """Whether the cargo of a run directory's name is still running."""
    run_boot, _, rest = run.partition("-")
    pid, _, start = rest.partition("-")
    if run_boot != boot or not pid.isdigit() or not start.isdigit():
        return False
    stat = _stat(int(pid))
    return stat is not None and stat[1] == int(start)


def _sweep(base: str, current: str) -> None:
    """Remove the directories of runs whose cargo has exited."""
    boot = _boot_id()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if name != current and not _alive(name, boot):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def first(identity: str, environ: Mapping[str, str] = os.environ, root: str | None = None) -> bool:
    """True in exactly one process per `identity` and cargo run (see the module docstring); `root` replaces
    the per-user cache (tests)."""
    run = cargo_run(environ)
    if run is None:
        return True
    if root is None:
        from shim.files import cache_root

        root = str(cache_root(environ))
    base = os.path.join(root, SAID_DIR)
    here = os.path.join(base, run)
    try:
        os.makedirs(here, mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return True
    else:
        _sweep(base, run)  # a new run: its first unit clears away the runs that are over
    marker = os.path.join(here, sha256_hex(identity.encode("utf-8", "surrogateescape"))[:32])
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def say(text: str, identity: str | None = None, *, file: TextIO | None = None,
        environ: Mapping[str, str] = os.environ) -> bool:
    """Print `text` (to stderr by default) unless this cargo run has said it already (by `identity`, else
    the text itself); whether it was printed."""
    if not first(identity if identity is not None else text, environ):
        return False
    print(text, file=file if file is not None else sys.stderr, flush=True)
    return True


def report(err: CratecageError, environ: Mapping[str, str] = os.environ) -> None:
    """Print an error met while serving cargo: once per cargo run when it is build-wide (`err.once`)."""
    if err.once is None:
        print(err.render(), file=sys.stderr, flush=True)
    else:
        say(err.render(), f"error {err.once}", environ=environ)
