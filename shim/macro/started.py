"""Macro servers for a compile the wrapper confines.

A compile that consumes a build script's output runs under Landlock (shim.intercept.confined): rustc and
what it starts may execute only the toolchain and the linkers. A trampoline loaded there cannot start its
server, and a server started there would run under the compile's rules (no module cache, no audit log, no
policy). So the wrapper starts the servers of the trampolines the compile loads itself, outside the
confinement, exactly as a trampoline would (the launcher, rustc's environment and working directory, new
pipes as stdin and stdout), and hands the pipes' other ends to rustc: `ENV` lists them, one line each,
`<request fd>,<reply fd>,<launcher>` (shim/rust/trampoline/bridge.rs reads it).

Which trampoline has which launcher: shim.macro.trampoline records it when it compiles one, in
`<build dir>/cratecage/macro-servers/<digest of the dylib's real path>`.
"""

from __future__ import annotations

import os
import subprocess

from shim.digest import sha256_hex

ENV = "CRATECAGE_MACRO_SERVERS"
RECORDS = "macro-servers"


def _record_path(state: str, dylib: str) -> str:
    return os.path.join(state, RECORDS, sha256_hex(os.path.realpath(dylib).encode("utf-8", "surrogateescape"))[:32])


def record(state: str, dylib: str, launcher: str) -> None:
    from shim.files import atomic_write

    atomic_write(_record_path(state, dylib), launcher, make_parents=True)


def launcher_of(state: str, dylib: str) -> str | None:
    """The server launcher of the trampoline at `dylib`, if cratecage compiled one there."""
    try:
        with open(_record_path(state, dylib), encoding="utf-8", errors="surrogateescape") as fh:
            launcher = fh.read()
    except OSError:
        return None
    return launcher if os.path.isfile(launcher) and "\n" not in launcher and "," not in launcher else None


def start(state: str, dylibs: list[str], env: dict[str, str], cwd: str) -> tuple[list[subprocess.Popen], list[int]]:
    """Start the servers of the trampolines among `dylibs`; sets ENV in `env`. Returns the processes and
    the descriptors rustc inherits (the caller closes its own copies once rustc has them)."""
    procs, fds, lines = [], [], []
    for dylib in dylibs:
        launcher = launcher_of(state, dylib)
        if launcher is None:
            continue
        proc = subprocess.Popen([launcher], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd,
                                close_fds=True)
        assert proc.stdin is not None and proc.stdout is not None
        request, reply = proc.stdin.fileno(), proc.stdout.fileno()
        os.set_inheritable(request, True)
        os.set_inheritable(reply, True)
        procs.append(proc)
        fds += [request, reply]
        lines.append(f"{request},{reply},{launcher}")
    if lines:
        env[ENV] = "\n".join(lines)
    return procs, fds
