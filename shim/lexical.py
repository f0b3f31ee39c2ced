"""One text for every spelling of a path: what grants, guest reports and denials are compared and printed as.

The guest resolves `<manifest>/../VERSION`, `./../VERSION`, `sub/../../VERSION` and `//ws//VERSION` as
`/ws/VERSION` before it picks a preopened directory (shim/rust/facade/src/paths.rs: lexically, `..` takes back
one component, never above "/"; a symbolic link before a `..` does not change what the path means). The host
must give a policy's `filesystem-access` items and the guest's reports the same form, or a grant spelled one
way would miss a request spelled another and a denial would print an entry that never matches.
`posixpath.normpath` is that form but for a leading "//", which POSIX leaves to the implementation and
normpath keeps; Linux and the guest take it as "/".
"""

from __future__ import annotations

import os
import posixpath

if False:  # typing only: the checking linker (shim.confine.linkcheck) imports this module in every link
    from typing import Iterator


def normal_path(path: str) -> str:
    """`path` with `.`, `..` and repeated or trailing slashes resolved lexically; absolute stays absolute."""
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def normal_dir(path: str) -> str:
    """A directory cargo names for a run (CARGO_MANIFEST_DIR, OUT_DIR: `CARGO_TARGET_DIR=../t` leaves a `..`
    in it) as the guest must find it among its preopens: in normal form where that names the same
    directory, resolved where a symbolic link before a `..` makes the two differ."""
    normal = normal_path(path)
    return normal if os.path.realpath(normal) == os.path.realpath(path) else os.path.realpath(path)


def entries_on_the_way(path: str, max_links: int = 40) -> Iterator[str]:
    """Every directory entry the kernel meets resolving the absolute `path`, in order, each named by its
    *physical* directory (every link before it followed) and its own name: the links on the way, the
    entries their targets lead through, and the last one. Whoever may change any of these (make one a
    link, swap a link) decides what `path` opens. Stops after `max_links` links (the open would fail with
    ELOOP) or at a link it cannot read."""
    todo = [c for c in path.split("/") if c]
    here = "/"
    links = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            here = os.path.dirname(here)
            continue
        entry = os.path.join(here, name)
        yield entry
        if not os.path.islink(entry):
            here = entry
            continue
        links += 1
        try:
            target = os.readlink(entry)
        except OSError:
            return
        if links > max_links:
            return
        if target.startswith("/"):
            here = "/"
        todo[:0] = [c for c in target.split("/") if c]


def inside(path: str, root: str) -> bool:
    """`path` is `root` or below it, judged on the text: absolute, no `..` segment (the runner removes
    symbolic links in OUT_DIR that point outside it, so no component can lead out)."""
    if not os.path.isabs(path) or ".." in path.split("/"):
        return False
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")


def prefix_match(pattern: str, target: str) -> bool:
    """Exact, or a prefix when the pattern ends in `*`. A `*` never matches across a `..` path segment,
    so `/opt/lib/*` cannot reach `/opt/lib/../../etc`. (The policy's items match so, shim.policy.capabilities;
    here for a confined link's granted search paths, which cannot afford the policy package's imports.)"""
    if pattern.endswith("*"):
        return target.startswith(pattern[:-1]) and ".." not in target.split("/")
    return pattern == target
