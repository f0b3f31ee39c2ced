"""Macro servers for a compile cratecage confines.

A compile that consumes a build script's output (shim.intercept.confined) and every wasm compile
(shim.compile.wasm_rustc) runs under Landlock: rustc and what it starts may execute only the toolchain and
the linkers. A trampoline loaded there cannot start its
server, and a server started there would run under the compile's rules (no module cache, no audit log, no
policy). So cratecage starts the servers of the trampolines the compile loads itself, outside the
confinement, exactly as a trampoline would (the launcher, rustc's environment and working directory, new
pipes as stdin and stdout), and hands the pipes' other ends to rustc: `ENV` lists them, one line each,
`<request fd>,<reply fd>,<launcher>` (shim/rust/trampoline/bridge.rs reads it).

Which trampoline has which launcher: shim.macro.trampoline records it when it compiles one, in
`<build dir>/cratecage/macro-servers/<the dylib's file name>` (the build dir the dylib is in): the dylib's
real path, then the launcher. A dylib is that trampoline only if it is the same file as the recorded one (a
replay loads it through a hard link of the same name). Named by the name cargo gave it, not by inode or
mtime, so two clean builds write the same records (tests/macro/test_reproducible.py).
"""

from __future__ import annotations

import os
import subprocess

from shim.cargo import layout
from shim.cargo.rustc_args import RustcArgs

ENV = "CRATECAGE_MACRO_SERVERS"
RECORDS = "macro-servers"


def _record_path(state: str, dylib: str) -> str:
    """By the dylib's file name: `lib<crate name><-C extra-filename>.so`, one unit's in a build directory."""
    return os.path.join(state, RECORDS, os.path.basename(dylib))


def record(dylib: str, launcher: str) -> None:
    from shim.files import atomic_write

    real = os.path.realpath(dylib)
    atomic_write(_record_path(layout.state_dir(os.path.dirname(real)), dylib), f"{real}\n{launcher}",
                 make_parents=True)


def launcher_of(state: str, dylib: str) -> str | None:
    """The server launcher of the trampoline at `dylib`, if cratecage compiled one (in the build whose
    state directory is `state`) and `dylib` is that very file."""
    try:
        with open(_record_path(state, dylib), encoding="utf-8", errors="surrogateescape") as fh:
            original, newline, launcher = fh.read().partition("\n")
        if not newline or not os.path.samefile(dylib, original):
            return None
    except OSError:
        return None
    return launcher if os.path.isfile(launcher) and "\n" not in launcher and "," not in launcher else None


def loadable(args: RustcArgs, cwd: str) -> list[str]:
    """The proc-macro dylibs a compile may load: its `--extern` ones, and those in its crate search
    directories (a dependency that re-exports a derive, serde's of serde_derive, makes rustc load that
    crate's dylib from `-L dependency=` without an `--extern` naming it)."""
    found = [os.path.join(cwd, p) for _n, p in args.externs if p and p.endswith(".so")]
    for kind, directory in args.lib_paths:
        if kind not in ("dependency", "crate", "all"):
            continue
        directory = os.path.join(cwd, directory)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        found += [os.path.join(directory, n) for n in names if n.startswith("lib") and n.endswith(".so")]
    return list(dict.fromkeys(found))


def start(state: str, dylibs: list[str], env: dict[str, str], cwd: str) -> tuple[list[subprocess.Popen], list[int]]:
    """Start the servers of the trampolines among `dylibs` (cratecage's, of the build whose state directory
    is `state`); sets ENV in `env`. Returns the processes and the descriptors rustc inherits (the caller
    closes them once rustc has them: they are its to close)."""
    procs, fds, lines = [], [], []
    for dylib in dylibs:
        launcher = launcher_of(state, dylib)
        if launcher is None:
            continue
        requests_in, requests_out = os.pipe()  # rustc writes requests, the server reads them on stdin
        replies_in, replies_out = os.pipe()  # the server writes replies on stdout, rustc reads them
        try:
            proc = subprocess.Popen([launcher], stdin=requests_in, stdout=replies_out, env=env, cwd=cwd,
                                    close_fds=True)
        except OSError:
            for fd in (requests_out, replies_in):
                os.close(fd)
            continue  # the trampoline says the server could not be reached, naming the crate
        finally:
            os.close(requests_in)
            os.close(replies_out)
        os.set_inheritable(requests_out, True)
        os.set_inheritable(replies_in, True)
        procs.append(proc)
        fds += [requests_out, replies_in]
        lines.append(f"{requests_out},{replies_in},{launcher}")
    if lines:
        env[ENV] = "\n".join(lines)
    return procs, fds


SERVER_EXIT_S = 10.0  # a server ends at EOF, after writing its audit record; then the caller's sweep ends it


def let_finish(servers: list[subprocess.Popen]) -> None:
    """Give the servers of a compile that has ended the time to see EOF and write their audit records."""
    import time

    deadline = time.monotonic() + SERVER_EXIT_S
    for proc in servers:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
