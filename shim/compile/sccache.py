"""sccache for the compiles cratecage runs itself, with rustc still confined.

Why: `CRATECAGE_WRAPPER=sccache` caches cargo's pass-through calls; a CI fleet sharing sccache's cache (disk,
Redis, S3, GCS, GHA) wants cratecage's own compiles (the wasm replays, build scripts, macro guests) shared
too. But sccache's client hands the compile to its server, a long-lived daemon, which runs the compiler
itself: a confined client would leave rustc unconfined. So the compiler sccache is given is confinement:

    sccache <cache>/sccache/<digest>/rustc <rustc's arguments>

The client runs unconfined (it only sends the command to the server, as for any pass-through call); the
`rustc` it names is the shim written here, which the server runs for every step (`-vV`, `--print`, the
dep-info pass, the compile). The shim takes the confined command, the launcher prefix
(shim.confine.landlock_exec) and the real rustc, from `CRATECAGE_SCCACHE_CONFINE` (sccache passes the
client's environment to the compiler and hashes only `CARGO_*` variables, so the private paths in it do
not spoil the cache key), drops it and every `SCCACHE_*` variable from rustc's environment, and becomes the
launcher: rustc runs under Landlock, seccomp and namespaces exactly as without sccache, and what it starts
ends with it (the launcher's PID namespace). Without the variable the shim refuses (fails closed).

sccache writes the dep-info of its pass into its own temporary directory, which the confinement does not
let rustc write: the shim runs that pass with `-o` in the compile's private TMPDIR and copies the file to
where sccache asked (the shim runs in the server's process tree, outside the confinement).

The server is the user's own tool, started (`sccache --start-server`) with the user's environment (where
its cache's configuration and credentials are) when nothing listens on its port; the client then never
starts one from the compile's scrubbed environment. It outlives the build as it does for plain cargo
(SCCACHE_IDLE_TIMEOUT).

Only sccache is used this way (its compiler detection goes by the name `rustc`); another inner wrapper is
skipped, as are compiles sccache could not cache or run: those that load sandboxed proc macros (their
servers' pipes are inherited from cratecage, and sccache's server is not its child).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from typing import Mapping

from shim.confine.landlock_exec import LAUNCH_FAILED
from shim.files import atomic_write, cache_dir

WRAPPER_ENV = "CRATECAGE_WRAPPER"  # as shim.intercept.wrapper's INNER_WRAPPER_ENV
CONFINE_ENV = "CRATECAGE_SCCACHE_CONFINE"
DEFAULT_PORT = 4226
START_TIMEOUT = 60  # seconds for `sccache --start-server`

_SHIM = '''#!{python} -IS
"""cratecage's confined rustc for sccache (shim.compile.sccache): written by cratecage, do not edit."""
import json, os, shutil, subprocess, sys
spec = os.environ.pop("{env}", None)
for name in [n for n in os.environ if n.startswith("SCCACHE_")]:
    del os.environ[name]
if spec is None:
    sys.stderr.write("cratecage: this rustc runs only the compiles cratecage confines; "
                     "call the toolchain's rustc instead\\n")
    sys.exit({failed})
spec = json.loads(spec)
args = sys.argv[1:]
out = None
if "-o" in args[:-1]:
    at = args.index("-o") + 1
    if not any(args[at] == w or args[at].startswith(w.rstrip("/") + "/") for w in spec["write"]):
        out, args[at] = args[at], os.path.join(spec["tmp"], "sccache-dep-info.d")
if out is None:
    os.execv(spec["command"][0], spec["command"] + args)
code = subprocess.call(spec["command"] + args)
if code == 0:
    shutil.copyfile(args[at], out)
    os.unlink(args[at])
sys.exit(code)
'''


def wrapper(environ: Mapping[str, str]) -> str | None:
    """The sccache program `CRATECAGE_WRAPPER` names, or None (unset, or another wrapper)."""
    value = environ.get(WRAPPER_ENV, "").strip()
    if not value or os.path.basename(value) not in ("sccache", "sccache.exe"):
        return None
    return value if os.sep in value else shutil.which(value, path=environ.get("PATH"))


def command(program: str, confined: list[str], rustc_args: list[str], write: list[str], tmp: str,
            env: dict[str, str], host_env: Mapping[str, str]) -> list[str]:
    """The argv running `confined` (the launcher prefix and the real rustc) through sccache: `env` (the
    compile's) gains the shim's spec and the host's `SCCACHE_*` settings for the client."""
    ensure_server(program, host_env)
    env[CONFINE_ENV] = json.dumps({"command": confined, "write": write, "tmp": tmp})
    env.update({k: v for k, v in host_env.items() if k.startswith("SCCACHE_")})
    return [program, shim_path(host_env), *rustc_args]


def without_own_sysroot(rustc_args: list[str], sysroot: str) -> list[str]:
    """`rustc_args` without a `--sysroot` that names the compiler's own sysroot (where rustup's
    wasm32-wasip1 target lives): sccache 0.4 refuses to cache any compile that names one, and rustc finds
    the same std there by default. A private wasm sysroot (std built from rust-src) stays: uncacheable."""
    out, i = [], 0
    own = os.path.realpath(sysroot)
    while i < len(rustc_args):
        arg = rustc_args[i]
        if arg == "--sysroot" and i + 1 < len(rustc_args) and os.path.realpath(rustc_args[i + 1]) == own:
            i += 2
            continue
        if arg.startswith("--sysroot=") and os.path.realpath(arg[len("--sysroot="):]) == own:
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def shim_path(host_env: Mapping[str, str]) -> str:
    """The shim, written once per interpreter under the per-user cache (named `rustc`: sccache knows a Rust
    compiler by its name)."""
    text = _SHIM.format(python=sys.executable, env=CONFINE_ENV, failed=LAUNCH_FAILED)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(host_env), "sccache", digest, "rustc")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, text.encode(), mode=0o755)
    return path


def ensure_server(program: str, host_env: Mapping[str, str]) -> None:
    """Start the user's sccache server with the user's environment unless something listens on its port."""
    port = _port(host_env)
    if _listening(port):
        return
    env = {k: v for k, v in host_env.items() if k != "RUSTC_WRAPPER"}
    try:
        subprocess.run([program, "--start-server"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=START_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass  # the client says what is wrong with the compile itself


def _port(host_env: Mapping[str, str]) -> int:
    try:
        return int(host_env.get("SCCACHE_SERVER_PORT", DEFAULT_PORT))
    except ValueError:
        return DEFAULT_PORT


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
