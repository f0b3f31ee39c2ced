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

    from shim.files import append_line

    append_line(path, json.dumps({**fields, "pid": os.getpid()}))
