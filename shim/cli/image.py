"""The fast path's modules compiled into one file, which the launcher (shim.cli.launcher) loads instead of
importing them one by one.

Every rustc call starts Python and imports the dozen modules the pass-through path needs. Imported the usual
way, each costs a path search (directory listings, `stat`s), a `.py` stat and a `.pyc` open, read and check,
and `from __future__ import annotations` imports the `__future__` module at run time: together ~1 ms of the
~3.5 ms the wrapper spends above a bare `python -S` (`make bench`). The image holds the same code objects,
compiled here from the same sources with the same future flag (the import statement removed, so nothing
runs for it), and the (mtime_ns, size) of each source: the launcher stats every source before trusting the
image, the check a `.pyc` gets, and imports normally when one differs or the image is missing or unreadable
(then `refresh` writes a new one, best effort, beside the package's own `.pyc` files).

A module the fast path starts to need that is not in FAST_PATH is imported the usual way: slower, never
wrong (tests/intercept/test_wrapper_cli.py checks the list against what a pass-through call loads).
Standard library only.
"""

from __future__ import annotations

import os
import sys

__all__ = ["FAST_PATH", "build", "image_path", "refresh"]

# What a pass-through call imports from shim, packages before their modules.
FAST_PATH = (
    "shim", "shim.cli", "shim.cli.main", "shim.intercept", "shim.intercept.wrapper", "shim.intercept.classify",
    "shim.cargo", "shim.cargo.journal", "shim.cargo.rustc_args", "shim.cargo.layout", "shim.cargo.env", "shim.files",
)


def image_path(root: str) -> str:
    """Where the image of the checkout at `root` (the directory holding `shim`) lives for this Python."""
    return os.path.join(root, "shim", "__pycache__", f"fast-path.{sys.implementation.cache_tag}.image")


def _source(root: str, name: str) -> tuple[str, bool]:
    base = os.path.join(root, *name.split("."))
    init = os.path.join(base, "__init__.py")
    return (init, True) if os.path.isfile(init) else (base + ".py", False)


def _compile(path: str, source: bytes):
    """`source` compiled as the import system would, except that `from __future__ import annotations`
    becomes the compiler flag alone (what the statement means, without its import at run time)."""
    import __future__
    import ast

    tree = ast.parse(source, path)
    flags = 0
    body = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                flags |= getattr(__future__, alias.name).compiler_flag
            continue
        body.append(node)
    tree.body = body
    return compile(tree, path, "exec", flags=flags, dont_inherit=True)


def build(root: str) -> bytes:
    """The image of FAST_PATH under `root`: marshal of ([(source, mtime_ns, size)], {name: (source, is_package,
    code)}). Each source is stat'ed before it is read, so a file changed meanwhile makes the image stale."""
    import marshal

    sources, table = [], {}
    for name in FAST_PATH:
        path, package = _source(root, name)
        st = os.stat(path)
        with open(path, "rb") as fh:
            text = fh.read()
        sources.append((path, st.st_mtime_ns, st.st_size))
        table[name] = (path, package, _compile(path, text))
    return marshal.dumps((sources, table))


def refresh(root: str) -> None:
    """Write the image of `root`, or leave things as they are when that cannot be done (a read-only
    install, a source that does not compile): the launcher then keeps importing the usual way."""
    try:
        from shim.files import atomic_write

        data = build(root)
        atomic_write(image_path(root), data, make_parents=True)
    except (OSError, SyntaxError, ValueError):
        pass
