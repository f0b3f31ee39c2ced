"""What a run may see of a readable tree: the tree minus cargo's target directory, and granted files alone.

Why: cargo keeps other crates' build state in the target directory: `.fingerprint/` stores the value of
every variable a script named in `rerun-if-env-changed`, `.d` files carry `# env-dep:NAME=value` lines,
cratecage's own journal and audit log live in `<target>/cratecage/`. When the target directory lies inside
a readable root (the package of every single-package project, a granted `..`, warn mode's "/"), a read-only
grant of that root would hand all of it to the next build script. A build script (the guest, its granted
programs and its probes) may read its own OUT_DIR of the target directory and nothing else.

    hidden_dirs(ctx)              the target directories of this run: the nearest ancestor of OUT_DIR holding
                                  cargo's CACHEDIR.TAG (both build-dir layouts put OUT_DIR below it), and
                                  CARGO_TARGET_DIR / `<package>/target` when they hold one too
    landlock_paths(root, hidden)  Landlock rules for "root minus hidden": root itself when nothing hidden is
                                  inside it, else every entry along the way except the one leading to a
                                  hidden dir (Landlock takes rules on files and directories alike)
    preopens(root, guests, ...)   WASI preopens for the same: a root with a hidden dir inside is shown through
                                  a *view*, a directory of hard links to its files (copies where a link cannot
                                  be made, up to COPY_LIMIT bytes each) and empty stand-ins for its
                                  subdirectories, each of which is preopened at its own path. wasi-libc
                                  resolves a path against the longest preopen prefix (shim.runner.
                                  preopen_table), so `root/src/x` reaches the real `root/src` and `root/target`
                                  finds nothing.
    file_views(files, scratch)    granted *files* (WASI preopens only directories): one view per parent

Views live in the run's host-only scratch directory (RunContext.host_scratch): never under a writable
preopen, never in a child's write set. A read-only view is preopened read-only, so its hard links cannot be
written through; a view that holds a writable file is writable, and then holds *copies* of the read-only
files beside it (writes to those reach no host file). What a view does not show: files created in the root
during the run, and symbolic links at a view's level that point into a sibling (they resolve inside the
view, where siblings are empty stand-ins).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Callable, Iterable

from shim.runctx import RunContext

COPY_LIMIT = 64 << 20  # a file that cannot be hard-linked into a view is copied up to this size, else left out
CACHEDIR_TAG = "CACHEDIR.TAG"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def target_dir_of(out_dir: str) -> str | None:
    """The nearest ancestor of OUT_DIR holding cargo's CACHEDIR.TAG; None outside cargo."""
    path = os.path.dirname(os.path.abspath(out_dir)) if out_dir else ""
    while path and path != os.path.dirname(path):
        if os.path.isfile(os.path.join(path, CACHEDIR_TAG)):
            return path
        path = os.path.dirname(path)
    return None


def hidden_dirs(ctx: RunContext) -> list[str]:
    found = [target_dir_of(ctx.out_dir), ctx.host_env.get("CARGO_TARGET_DIR"),
             os.path.join(ctx.package_dir, "target") if ctx.package_dir else None]
    out: list[str] = []
    for path in found:
        if path and os.path.isabs(path) and os.path.isfile(os.path.join(path, CACHEDIR_TAG)):
            path = os.path.normpath(path)
            if path not in out:
                out.append(path)
    return out


def _hidden_inside(root: str, hidden: Iterable[str]) -> list[str]:
    return [h for h in hidden if h != root and _inside(h, root)]


def _entries(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def landlock_paths(root: str, hidden: Iterable[str]) -> list[str]:
    """The Landlock rules that allow `root` minus every hidden dir inside it (see the module docstring)."""
    root = os.path.normpath(root)
    inner = _hidden_inside(root, hidden)
    if not inner:
        return [root]
    out: list[str] = []
    for name in _entries(root):
        child = os.path.join(root, name)
        if child in inner:
            continue
        if any(_inside(h, child) for h in inner):
            out += landlock_paths(child, inner)
        else:
            out.append(child)
    return out


def _link_or_copy(src: str, dest: str, *, link: bool) -> bool:
    """Put `src` (a regular file) at `dest`: a hard link when `link`, else (or when linking fails) a copy
    of at most COPY_LIMIT bytes. False when left out."""
    if link:
        try:
            os.link(src, dest, follow_symlinks=False)
            return True
        except OSError:
            pass
    try:
        if os.stat(src).st_size > COPY_LIMIT:
            return False
        shutil.copy2(src, dest)
        os.chmod(dest, 0o444)
        return True
    except OSError:
        return False


def preopens(root: str, guests: tuple[str, ...], hidden: Iterable[str],
             scratch: Callable[[str], str]) -> list[tuple[str, str, bool]]:
    """Read-only (host, guest path, False) preopens showing `root` minus the hidden dirs inside it, at each
    of `guests` (its own path, and "." for the package). `scratch(prefix)` makes a host-only directory."""
    root = os.path.normpath(root)
    inner = _hidden_inside(root, hidden)
    if not inner:
        return [(root, guest, False) for guest in guests]
    view = scratch("view-")
    deeper: list[tuple[str, str, bool]] = []
    for name in _entries(root):
        child, dest = os.path.join(root, name), os.path.join(view, name)
        try:
            st = os.lstat(child)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if child not in inner and os.access(child, os.R_OK | os.X_OK):  # a hidden dir is not there at all
                os.mkdir(dest)  # the stand-in lists the name; the child's own preopen (longer prefix) serves it
                deeper += preopens(child, (child,), inner, scratch)
        elif stat.S_ISLNK(st.st_mode):
            try:
                os.symlink(os.readlink(child), dest)
            except OSError:
                pass
        elif stat.S_ISREG(st.st_mode):
            _link_or_copy(child, dest, link=True)
    return [*((view, guest, False) for guest in guests), *deeper]


def file_views(files: list[tuple[str, bool]], scratch: Callable[[str], str]) -> list[tuple[str, str, bool]]:
    """(view, parent, writable) for granted files, given as (path, writable): one view per parent. A writable
    file is a hard link (its writes reach the host file) or left out when none can be made; a read-only one
    is a hard link in a read-only view and a copy in a writable one."""
    by_parent: dict[str, list[tuple[str, bool]]] = {}
    for path, writable in files:
        by_parent.setdefault(os.path.dirname(path), []).append((path, writable))
    out = []
    for parent, members in by_parent.items():
        view = scratch("file-view-")
        writable_view = False
        for path, writable in members:
            if writable:
                try:
                    os.link(path, os.path.join(view, os.path.basename(path)))
                    writable_view = True
                except OSError:
                    pass  # a copy would lose the writes: leave it out, the guest will report it
        for path, writable in members:
            if not writable:
                _link_or_copy(path, os.path.join(view, os.path.basename(path)), link=not writable_view)
        out.append((view, parent, writable_view))
    return out
