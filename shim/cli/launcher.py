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
# would cost more than the rest of the wrapper. The fast path's modules come from one image file when
# every source it was built from is unchanged (shim.cli.image), else are imported the usual way.
import sys
sys.dont_write_bytecode = False
sys.path.insert(0, {root!r})


class _Image:
    def __init__(self, table):
        self.table = table

    def find_spec(self, name, path=None, target=None):
        from _frozen_importlib import ModuleSpec

        hit = self.table.get(name)
        if hit is None:
            return None
        spec = ModuleSpec(name, self, origin=hit[0], is_package=hit[1])
        spec.has_location = True
        if hit[1]:
            spec.submodule_search_locations = [hit[0].rpartition("/")[0]]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.table.pop(module.__name__)[2], module.__dict__)


def _load_image():
    from marshal import loads
    from posix import stat

    try:
        with open({image!r}, "rb") as fh:
            sources, table = loads(fh.read())
        for path, mtime_ns, size in sources:
            st = stat(path)
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                return False
    except (OSError, ValueError, EOFError, TypeError):
        return False
    sys.meta_path.insert(0, _Image(table))
    return True


if not _load_image():
    from shim.cli.image import refresh

    refresh({root!r})
from shim.cli.main import main
sys.exit(main())
"""


def launcher_text(python: str, root: str) -> str:
    from shim.cli.image import image_path

    return TEMPLATE.format(python=python, root=root, image=image_path(root))


def write_launcher(path: str, python: str | None = None) -> None:
    import shim

    root = os.path.dirname(os.path.dirname(os.path.abspath(shim.__file__)))
    from shim.files import atomic_write

    atomic_write(path, launcher_text(python or sys.executable, root), mode=0o755)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shim.cli.launcher <path of the launcher to write>")
    write_launcher(sys.argv[1])
