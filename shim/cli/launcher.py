"""Write the `cratecage` launchers: `python -m shim.cli.launcher <path>`.

Cargo runs the wrapper once per rustc call, so interpreter start-up is most of its cost. At `<path>` goes a
native program (shim/rust/fastpath, built here with the host `rustc`, std only) that exec's rustc itself for
a plain library compile and hands every other call, unchanged, to the Python launcher it names, written
beside it as `<path>-py`. Where no rustc can build it, `<path>` is the Python launcher itself (said once,
here). The console script
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
{argv0}sys.dont_write_bytecode = False
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


PYTHON_SUFFIX = "-py"  # <path>-py: the Python launcher the native one hands calls to
NATIVE_SOURCE = ("shim", "rust", "fastpath", "main.rs")
# The native launcher's build: small and quick to start; no unwinding, no symbols.
NATIVE_FLAGS = ("--edition", "2021", "--crate-type", "bin", "--crate-name", "cratecage_fastpath",
                "-C", "opt-level=2", "-C", "panic=abort", "-C", "strip=symbols")
# Linked statically where the C library's static archive is installed: no dynamic loader at each start
# (~0.35 ms of CPU a call, ~1.1 ms in all); else dynamically.
LINKINGS = (("-C", "target-feature=+crt-static"), ())


def launcher_text(python: str, root: str, started_as: str | None = None) -> str:
    """The Python launcher; `started_as`: the native launcher that starts it, which is what hints and
    `cratecage init` must name (shim.program reads sys.argv[0])."""
    from shim.cli.image import image_path

    argv0 = f"sys.argv[0] = {started_as!r}  # started by this native launcher\n" if started_as else ""
    return TEMPLATE.format(python=python, root=root, image=image_path(root), argv0=argv0)


def write_launcher(path: str, python: str | None = None, *, native: bool = True) -> None:
    """`<path>`: the native launcher with the Python one at `<path>-py`, or the Python launcher alone
    (`native=False`, or no rustc could build the native one: then one line on stderr says so)."""
    import shim

    root = os.path.dirname(os.path.dirname(os.path.abspath(shim.__file__)))
    from shim.files import atomic_write

    python = python or sys.executable
    if native:
        why = _install_native(os.path.abspath(path), python, root)
        if why is None:
            return
        print(f"cratecage: {why}: {path} is the Python launcher (a few ms more per rustc call)", file=sys.stderr)
    atomic_write(path, launcher_text(python, root), mode=0o755)
    try:
        os.unlink(path + PYTHON_SUFFIX)  # left by an earlier native install
    except FileNotFoundError:
        pass


def _install_native(path: str, python: str, root: str) -> str | None:
    """Build the native launcher for `path` and put it and its Python launcher in place; None when done,
    else why not (nothing is replaced then)."""
    import shutil
    import subprocess

    from shim.files import atomic_write

    rustc = shutil.which("rustc")
    if rustc is None:
        return "no rustc on PATH to build the native launcher"
    py = path + PYTHON_SUFFIX
    tmp = f"{path}.{os.getpid()}.native.tmp"
    tables = f"{tmp}.tables.rs"
    # compiled in (`env!`, `include!`): the Python launcher's path, and the tables the Python side defines
    env = dict(os.environ, CRATECAGE_PYTHON_LAUNCHER=py, CRATECAGE_FASTPATH_TABLES=tables)
    try:
        atomic_write(tables, tables_source())
        for linking in LINKINGS:
            done = subprocess.run([rustc, *NATIVE_FLAGS, *linking, "-o", tmp, os.path.join(root, *NATIVE_SOURCE)],
                                  env=env, capture_output=True, text=True, errors="replace", timeout=600)
            if done.returncode == 0:
                break
    except (OSError, subprocess.TimeoutExpired) as err:
        _remove(tables)
        return f"could not run {rustc} to build the native launcher ({err})"
    _remove(tables)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[0]
        _remove(tmp)
        return f"{rustc} could not build the native launcher ({last})"
    try:
        atomic_write(py, launcher_text(python, root, started_as=path), mode=0o755)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        return f"could not install the native launcher ({err})"
    return None


def tables_source() -> str:
    """The native launcher's `mod tables`: what it must read exactly as the Python wrapper does, from the
    tables that define it, so the two cannot drift apart."""
    from shim.cargo.env import COMPILE_ENV
    from shim.cargo.rustc_args import FLAGS
    from shim.intercept.wrapper import CREDENTIAL_WORDS, KEY_QUALIFIERS

    def strs(names) -> str:
        assert all(n.isascii() and n.isprintable() and '"' not in n and "\\" not in n for n in names), names
        return "&[" + ", ".join(f'"{n}"' for n in names) + "]"

    flags = "".join(f"    Flag {{ names: {strs(f.names)}, takes_value: {str(f.takes_value).lower()} }},\n"
                    for f in FLAGS)
    return (f"// Generated by shim/cli/launcher.py from shim.cargo.rustc_args, shim.intercept.wrapper and\n"
            f"// shim.cargo.env: do not edit.\n"
            f"pub const FLAGS: &[Flag] = &[\n{flags}];\n"
            f"pub const CREDENTIAL_WORDS: &[&str] = {strs(sorted(CREDENTIAL_WORDS))};\n"
            f"pub const KEY_QUALIFIERS: &[&str] = {strs(sorted(KEY_QUALIFIERS))};\n"
            f"pub const COMPILE_ENV: &[&str] = {strs(COMPILE_ENV)};\n")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shim.cli.launcher <path of the launcher to write>")
    write_launcher(sys.argv[1])
