"""Write a fast `cratecage` launcher: `python -m shim.cli.launcher <path>`.

Cargo runs the wrapper once per rustc call, so interpreter start-up is most of its cost. The console script
pip writes starts Python with `site` (venv site-packages, .pth files, setuptools' editable-install finder:
~15 ms here) and imports `re` (~4 ms) before cratecage runs at all. This launcher starts Python with `-S`
and puts only the directory holding `shim` on sys.path; `shim.cli.main` enables site-packages itself (site.main())
on the paths that need third-party packages. Measured by `make bench`; see the README.
"""

from __future__ import annotations

import os
import sys

TEMPLATE = """#!{python} -S
# cratecage launcher, written by `python -m shim.cli.launcher`. -S skips site-packages at start-up: the
# pass-through path needs only the standard library, and shim.cli.main turns site on when it needs more.
# Bytecode caches are written even under PYTHONDONTWRITEBYTECODE: compiling shim on every rustc call
# would cost more than the rest of the wrapper.
import sys
sys.dont_write_bytecode = False
sys.path.insert(0, {root!r})
from shim.cli.main import main
sys.exit(main())
"""


def launcher_text(python: str, root: str) -> str:
    return TEMPLATE.format(python=python, root=root)


def write_launcher(path: str, python: str | None = None) -> None:
    import shim

    root = os.path.dirname(os.path.dirname(os.path.abspath(shim.__file__)))
    from shim.files import atomic_write

    atomic_write(path, launcher_text(python or sys.executable, root), mode=0o755)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shim.cli.launcher <path of the launcher to write>")
    write_launcher(sys.argv[1])
