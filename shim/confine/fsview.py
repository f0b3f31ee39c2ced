"""What a run may see of a readable tree: the tree minus every cargo target directory, and granted files alone.

Why: cargo keeps other crates' build state in the target directory: `.fingerprint/` (each unit's
`fingerprint/` in the new build-dir layout, shim.cargo.layout) stores the value of every variable a script
named in `rerun-if-env-changed`, `.d` files carry `# env-dep:NAME=value` lines, cratecage's own journal
and audit log live in `<target>/cratecage/`. When a target directory lies inside
a readable root (the package of every single-package project, a granted `..`, warn mode's "/"), a read-only
grant of that root would hand all of it to the next build script. That holds for *any* target directory,
not only this build's: `cargo build --target-dir target-ci`, a CI cache restored into the package, `.target`,
`build/cargo-target`, a separate `build-dir` all hold another build's `.d` files. A build script (the guest,
its granted programs and its probes) may read its own OUT_DIR of a target directory and nothing else.

    hidden_dirs(ctx)              the target directories a run must not see: this run's (the nearest ancestor
                                  of OUT_DIR holding cargo's CACHEDIR.TAG: both build-dir layouts put OUT_DIR
                                  below it), CARGO_TARGET_DIR / `<package>/target` when they hold one too, and
                                  every cargo directory `cargo_dirs` finds under the package and the crate's
                                  readable grants
    cargo_dirs(root)              the directories under `root` that hold cargo build state (MARKERS), found by
                                  a bounded search: SEARCH_DEPTH levels below the root, at most SEARCH_DIRS
                                  directories listed, breadth first, never into a symlink; of a directory of
                                  more than WIDE_DIR entries only the subdirectories' CACHEDIR.TAG is
                                  checked; once per root and process (a wrapper process serves one rustc
                                  call or one build-script run)
    landlock_paths(root, hidden)  Landlock rules for "root minus hidden": root itself when nothing hidden is
                                  inside it, else every entry along the way except the one leading to a
                                  hidden dir (Landlock takes rules on files and directories alike) and
                                  symlinks (a rule opens its path following links: a link to a hidden dir
                                  or out of the root would grant its target)
    preopens(root, guests, ...)   WASI preopens for the same: a root with a hidden dir inside is shown through
                                  a *view*, a directory of hard links to its files (copies where a link cannot
                                  be made, up to COPY_LIMIT bytes each) and empty stand-ins for its
                                  subdirectories, each of which is preopened at its own path. wasi-libc
                                  resolves a path against the longest preopen prefix (shim.build.run.
                                  preopen_table), so `root/src/x` reaches the real `root/src` and `root/target`
                                  finds nothing.
    file_views(files, scratch)    granted *files* (WASI preopens only directories): one view per parent

Views live in the run's host-only scratch directory (RunContext.host_scratch): never under a writable
preopen, never in a child's write set, and inside the target directory (shim.build.run.make_run_dir), so no
other run's grant reaches them either (from a grant of /tmp, a view of hard links is every granted file). A read-only view is preopened read-only, so its hard links cannot be
written through; a view that holds a writable file is writable, and then holds *copies* of the read-only
files beside it (writes to those reach no host file). What a view does not show: files created in the root
during the run, and symbolic links at a view's level that point into a sibling (they resolve inside the
view, where siblings are empty stand-ins).

What the search leaves readable (README, Limits): a target directory deeper than SEARCH_DEPTH below a
readable root, two levels below a directory of more than WIDE_DIR entries (node_modules-like fan-out) or
beyond the first SEARCH_DIRS directories listed; one whose markers were removed (a `deps/` copied out
alone). Cost (2 shared cores, page cache cold / warm): all 28 registry crates of this machine copied into one
package (2,457 files, 461 dirs) 2.0 / 1.2 ms; a package with a 1,500-package node_modules 3 levels deep
(6,000 dirs) 21 / 8 ms; the cap itself (4,096 narrow directories listed) 84 / 42 ms, once per process.
"""

from __future__ import annotations

import collections
import functools
import os
import shutil
import stat
from typing import TYPE_CHECKING, Callable, Final, Iterable, Mapping

from shim.cargo import layout

if TYPE_CHECKING:
    from shim.host.context import RunContext

COPY_LIMIT = 64 << 20  # a file that cannot be hard-linked into a view is copied up to this size, else left out
CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE: Final = b"Signature: 8a477f597d28d172789f06886806bc55"  # bford.info/cachedir, cargo writes it
SEARCH_DEPTH: Final = 3  # directory levels below a readable root that cargo_dirs lists
SEARCH_DIRS: Final = 4096  # directories listed per root, breadth first
WIDE_DIR: Final = 512  # a directory with more entries is not descended into: its subdirs' CACHEDIR.TAG only
# What marks a directory as cargo build state: (entry name, what it must be). The target dir root and a
# separate build-dir root hold CACHEDIR.TAG (both layouts) and .rustc_info.json; a profile dir copied out
# alone (a CI cache of `target/debug`) still holds .cargo-lock (and .fingerprint/ in the old layout), or,
# of a separate build dir of the new layout, .cargo-build-lock (shim.cargo.layout.PROFILE_MARKERS).
MARKERS: Final = ((CACHEDIR_TAG, "tag"), (".rustc_info.json", "file"), (".fingerprint", "dir"),
                  *((name, "file") for name in layout.PROFILE_MARKERS))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def target_dir_of(out_dir: str) -> str | None:
    """The nearest ancestor of OUT_DIR holding cargo's CACHEDIR.TAG, or the `cratecage/` directory cratecage
    tags itself (`tag_build_state`): cargo tags only a target dir it created, not one that already existed
    (`mkdir target`, a CI cache mount); None outside cargo."""
    path = os.path.dirname(os.path.abspath(out_dir)) if out_dir else ""
    while path and path != os.path.dirname(path):
        if os.path.isfile(os.path.join(path, CACHEDIR_TAG)) or _tagged(os.path.join(path, layout.STATE_DIR)):
            return path
        path = os.path.dirname(path)
    return None


def tag_build_state(directory: str) -> None:
    """Write cargo's CACHEDIR.TAG into `directory` (cratecage's own `<target>/cratecage/`) unless there:
    the journal, audit log and wasm rlibs there hold other crates' environments and grants, and the tag is
    what hides a directory from every build script (`cargo_dirs`, `target_dir_of`)."""
    path = os.path.join(directory, CACHEDIR_TAG)
    if _tagged(directory):
        return
    from shim.files import atomic_write

    atomic_write(path, CACHEDIR_SIGNATURE.decode() + "\n# This file is a cache directory tag created by cratecage.\n"
                 "# For information about cache directory tags, see https://bford.info/cachedir/\n",
                 make_parents=True)


def _marked(entry: os.DirEntry[str], kind: str) -> bool:
    try:
        if kind == "dir":
            return entry.is_dir(follow_symlinks=False)
        if not entry.is_file(follow_symlinks=False):
            return False
        if kind == "tag":
            with open(entry.path, "rb") as fh:
                return fh.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
        return True
    except OSError:
        return False


def _tagged(path: str) -> bool:
    try:
        with open(os.path.join(path, CACHEDIR_TAG), "rb") as fh:
            return fh.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False


@functools.lru_cache(maxsize=64)
def cargo_dirs(root: str) -> tuple[str, ...]:
    """The directories under `root` (itself included) holding cargo build state; see the module docstring
    for the bounds. A found directory is not searched further: all of it is hidden."""
    found: list[str] = []
    queue = collections.deque([(os.path.normpath(root), 0)])
    listed = 0
    while queue and listed < SEARCH_DIRS:
        path, depth = queue.popleft()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        listed += 1
        by_name = {e.name: e for e in entries}
        if any(name in by_name and _marked(by_name[name], kind) for name, kind in MARKERS):
            found.append(path)
            continue
        if depth >= SEARCH_DEPTH:
            continue
        subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        if len(entries) > WIDE_DIR:  # node_modules-like fan-out: its subdirectories' tags only, one open each
            found += [sub for sub in subdirs if _tagged(sub)]
        else:
            queue.extend((sub, depth + 1) for sub in subdirs)
    return tuple(found)


def hidden_dirs(ctx: RunContext) -> list[str]:
    """See the module docstring, for a run's context."""
    grant = getattr(ctx, "grant", None)
    return hidden_dirs_of(ctx.package_dir, ctx.out_dir, ctx.host_env, grant.readable if grant is not None else ())


def hidden_dirs_of(package_dir: str, out_dir: str, host_env: Mapping[str, str],
                   readable: Iterable[str] = ()) -> list[str]:
    """See the module docstring: for a package, its OUT_DIR, the host's environment and the readable grants."""
    roots = [package_dir, *readable]
    found = [target_dir_of(out_dir), host_env.get("CARGO_TARGET_DIR"),
             os.path.join(package_dir, "target") if package_dir else None]
    out: list[str] = []
    if out_dir and layout.locked_profile(os.path.dirname(out_dir)) is not None:
        out.append(layout.build_root(out_dir, host_env.get("TARGET")))  # tagged or not: cargo's
    for path in found:
        if path and os.path.isabs(path) and (os.path.isfile(os.path.join(path, CACHEDIR_TAG))
                                             or _tagged(os.path.join(path, layout.STATE_DIR))):
            path = os.path.normpath(path)
            if path not in out:
                out.append(path)
    for root in roots:
        if root and os.path.isabs(root) and os.path.isdir(root):
            out += [p for p in cargo_dirs(os.path.normpath(root)) if p not in out]
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
        if child in inner or os.path.islink(child):
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
