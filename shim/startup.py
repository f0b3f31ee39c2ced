"""Start-up: the fast launcher (`python -S`, shim.cli.launcher) skips site-packages; the paths that need a
third-party package (wasmtime, psutil, tomli) turn it on here first. Standard library only."""

from __future__ import annotations

import sys


def enable_site_packages() -> None:
    """Add site-packages when the fast launcher (`python -S`, shim.cli.launcher) skipped them at start-up.

    In the usual virtualenv, appending its site-packages directory is enough and skips processing .pth
    files (setuptools' editable-install finder alone costs ~12 ms per build-script run); anywhere else,
    the full `site.main()`."""
    if not sys.flags.no_site or getattr(enable_site_packages, "done", False):
        return
    import os

    # Without site, sys.prefix is the base interpreter's: find the venv from the executable (pyvenv.cfg).
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    venv_site = os.path.join(venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) and os.path.isdir(os.path.join(venv_site, "wasmtime")):
        sys.path.append(venv_site)
    else:
        import site

        site.main()
    enable_site_packages.done = True  # type: ignore[attr-defined]
