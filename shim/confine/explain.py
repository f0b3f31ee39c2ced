"""Why a confined native compile failed, in `cratecage:` lines (shim.intercept.confined calls this after a failure).

Why: inside the confinement a refusal reaches the user as rustc's own words, "couldn't read `…`:
Permission denied" or "proc macro panicked", which say nothing about cratecage or what to grant. From the
diagnostics lines rustc printed (human or JSON, `--error-format=json` when cargo asks for it) this says:

  - a file rustc could not read that exists and the crate's build grant does not cover: the crate, the
    path, and the `filesystem-access` entry that grants it, ready to paste (policy.suggest_entry);
  - a proc macro that panicked on a refused access (a git-version style macro running a program, or
    reading outside the package): that proc macros run under the same confinement in such a compile.

Only runs after a failure, so it may import what it likes.
"""

from __future__ import annotations

import os

# rustc's words for a source file it could not open (`include!`, `include_str!`, `include_bytes!`, `#[path]
# mod`): (start, end) around the path. 1.95: "couldn't read `P`: Permission denied (os error 13)" (and still
# for a missing file); 1.101-nightly: "permission denied when opening file `P`".
UNREADABLE = (("couldn't read `", "`: "), ("permission denied when opening file `", "`"))
UNREADABLE_WORDS = tuple(start.rstrip(" `").encode() for start, _ in UNREADABLE)  # a line worth keeping
PANICKED = ("proc macro panicked", "proc-macro derive panicked")
REFUSED = ("Permission denied", "PermissionDenied", "os error 13")


def explain(lines: list[bytes], environ: dict[str, str], owner: tuple[tuple[str, ...], tuple[str, ...]],
            crate: str) -> list[str]:
    """The `cratecage:` lines for what rustc printed (`lines`: its diagnostics worth a look)."""
    package = environ.get("CARGO_PKG_NAME") or crate
    out: list[str] = []
    macro_refused = False
    for raw in lines:
        text = raw.decode("utf-8", "replace")
        for message in _messages(text):
            unreadable = unreadable_path(message)
            if unreadable is not None:
                line = _unreadable(os.path.normpath(unreadable), package, owner)
                if line and line not in out:
                    out.append(line)
            elif message.startswith(PANICKED) and any(r in text for r in REFUSED):
                macro_refused = True
    if macro_refused:
        out.append(f"error: cratecage: a proc macro failed inside the confined compile of `{package}` (it consumes "
                   f"its build script's output): it was refused a program or file; proc macros in such a compile "
                   f"may run only the toolchain and read only the package and the compile's inputs")
    return out


def unreadable_path(message: str) -> str | None:
    """The path of a file rustc says it could not open, from one of its error messages; else None."""
    for start, end in UNREADABLE:
        if message.startswith(start) and end in message[len(start):]:
            return message[len(start):message.rindex(end)]
    return None


def _unreadable(path: str, package: str, owner: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    """The denial for a file rustc could not read, or "" when a grant would not help (missing, granted)."""
    cwd = os.getcwd()
    full = os.path.realpath(os.path.join(cwd, path))
    if not os.path.exists(full) or any(_inside(full, os.path.realpath(g)) for g in (*owner[0], *owner[1])):
        return ""
    from shim.policy import suggest_entry

    entry = suggest_entry("build", package, "filesystem-access", full)
    from shim.untrusted import shown

    return (f"error: cratecage: the compile of `{package}` (confined: it consumes its build script's output) "
            f"could not read {shown(full)}: outside its package and grants\n  to permit it, add to the policy:\n"
            + "\n".join("    " + line for line in entry.splitlines()))


def _messages(line: str) -> list[str]:
    """The message texts of one stderr line: a JSON diagnostic's message and its children's, or the line
    itself without rustc's `error: ` prefix."""
    if line.startswith("{"):
        import json  # only after a failed compile: the call itself needs none

        try:
            diagnostic = json.loads(line)
        except ValueError:
            return []
        if not isinstance(diagnostic, dict):
            return []
        found = [diagnostic.get("message")]
        found += [c.get("message") for c in diagnostic.get("children") or () if isinstance(c, dict)]
        return [m for m in found if isinstance(m, str)]
    return [line.split("error: ", 1)[1] if line.startswith("error: ") else line]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
