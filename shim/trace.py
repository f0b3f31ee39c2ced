"""`CRATECAGE_TRACE=<file>`: one JSON line per event (wrapper classifications, wasm replays), for tests and
for seeing what cargo asked. Appends with one write per line, so parallel units never interleave."""

from __future__ import annotations

import os

from shim import TRACE_ENV

__all__ = ["TRACE_ENV", "event"]


def event(environ: dict[str, str] | os._Environ[str], **fields: object) -> None:
    path = environ.get(TRACE_ENV)
    if not path:
        return
    import json

    from shim.files import append_line

    append_line(path, json.dumps({**fields, "pid": os.getpid()}))
