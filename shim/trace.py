"""`CRATECAGE_TRACE=<file>`: one JSON line per event (wrapper classifications, wasm replays), for tests and
for seeing what cargo asked. Appends with one write per line, so parallel units never interleave."""

from __future__ import annotations

import os

TRACE_ENV = "CRATECAGE_TRACE"


def event(environ: dict[str, str] | os._Environ[str], **fields: object) -> None:
    path = environ.get(TRACE_ENV)
    if not path:
        return
    import json

    line = json.dumps({**fields, "pid": os.getpid()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
