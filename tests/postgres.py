"""A throwaway PostgreSQL cluster on a loopback port for the tests whose proc macros talk to a database
(tests/macro/test_macro_services.py). Debian's server binaries (`make test` installs them: the Makefile's
pg-tools) in /usr/lib/postgresql/<version>/bin; `initdb` into a fresh directory, trust authentication on
127.0.0.1 only, no Unix socket outside that directory, stopped (`-m immediate`) and removed on exit.

PostgreSQL refuses to run as root: as root, every command runs as `nobody` through `setpriv`, in a directory
of /tmp that `nobody` owns (pytest's temp dirs are private to their owner). A cluster that cannot be made
fails the test with why: these tests are never skipped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534


def server_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if not found:
        pytest.fail("cratecage: PostgreSQL's server binaries are missing (/usr/lib/postgresql/<version>/bin): "
                    "run `make pg-tools` (part of `make test`)")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Postgres:
    """One cluster: `start()`, `sql()`, `stop()`; or as a context manager."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.root = Path(tempfile.mkdtemp(prefix="cratecage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.getuid() == 0
        if self.as_root:
            os.chown(self.root, NOBODY, NOBODY)

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if self.as_root else []
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C"}
        return subprocess.run([*prefix, *argv], env=env, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout)

    def _check(self, what: str, done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"cratecage: PostgreSQL's {what} failed (exit {done.returncode}): {done.stderr[-2000:]}{tail}")

    def start(self) -> "Postgres":
        self._check("initdb", self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                        "-E", "UTF8", "--locale=C", "--no-sync"))
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"
        self._check("pg_ctl start", self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                                              str(self.root / "log"), "-w", "-o", options, "start"))
        return self

    def sql(self, statement: str) -> str:
        done = self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-At",
                         "-v", "ON_ERROR_STOP=1", "-c", statement)
        self._check(f"psql ({statement})", done)
        return done.stdout

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Postgres":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
