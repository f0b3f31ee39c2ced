"""How a hint names the running cratecage, so that the command it tells the user to run works when pasted.

`make setup` puts cratecage in `.venv/bin/`, which is not on PATH, and CI installs it wherever the job says:
a hint saying "run `cratecage toolchain env`" would fail with "command not found". Hints name the program
by the path it was started as (`sys.argv[0]`: the launcher, or pip's console script; made absolute against
the directory it was started in), quoted for a POSIX shell. Standard library only: error messages on the
wrapper's fast path are built with it.
"""

from __future__ import annotations

import os
import sys

# Made absolute at import, before the wrapper changes directory (shim.intercept.wrapper.link_cwd).
_STARTED_AS = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""


def path() -> str:
    """The running cratecage, absolute; plain `cratecage` when it was not started as a program of that
    name (`python -m shim.cli.main`, a test calling shim.cli.main)."""
    if os.path.basename(_STARTED_AS).startswith("cratecage") and os.path.isfile(_STARTED_AS):
        return _STARTED_AS
    return "cratecage"


def command(args: str) -> str:
    """`<path of this cratecage> <args>`, ready to paste into a POSIX shell."""
    import shlex

    return f"{shlex.quote(path())} {args}"
