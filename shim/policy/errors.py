"""PolicyError: a policy that cannot be used, said in one line a person can act on.

    CratecageError (shim.errors)
    └── PolicyError    exit 2: "cratecage: <file>:<line>: <key>: <what was expected>"

A malformed policy stops the build before anything sandboxed runs, so the message has to point at the
exact spot: the file, the line (found by shim.policy.locate, since tomllib reports none for valid TOML), the
dotted key, and what would have been accepted.
"""

from __future__ import annotations

from shim.errors import CratecageError


class PolicyError(CratecageError):
    exit_code = 2
    build_wide = True  # the build's policy: said once per cargo run, not by every unit (shim.once)

    def __init__(self, file: str, line: int | None, key: str | None, expected: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.expected = expected
        parts = [file if line is None else f"{file}:{line}"]
        if key:
            parts.append(key)
        parts.append(expected)
        # One line, whatever a quoted key, a value or a file name contains.
        super().__init__(": ".join(parts).replace("\r", "\\r").replace("\n", "\\n"))
