"""How text a build script chose is shown to a person: every character a terminal would act on, escaped.

Why this exists: denial lines and hints print paths, program names, variable names, routes and directive
text that the script picked. Printed raw, a "\\n" in a path starts a line of the script's own making on
cargo's stderr (a forged `cratecage:` or `error:` line, a fake entry to paste into the policy), a "\\r"
overwrites the line shown, and "\\x1b[" drives the terminal. `shown` is the one place that text passes on
its way to stderr: Denial.render (shim.host.context) for every denial, CratecageError.render (shim.errors) per line,
`cratecage audit` (shim.sandbox.audit), and the few messages built elsewhere (shim.confine.explain). Entries to
paste are TOML, escaped by shim.policy.suggest.toml_string, so they load back and pass through here unchanged.

What is escaped: every character Python does not call printable (`str.isprintable`: the C0 and C1
controls, DEL, line and paragraph separators, format characters such as the bidi overrides U+202E, spaces
other than " ", unassigned code points and the surrogates that undecodable bytes became), as `\\n`, `\\r`,
`\\t`, `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`. Letters of any script stay readable (`café`, `日本`). A backslash
stays as it is, so an escaped TOML entry is shown as it must be pasted; the price is that a path holding a
real backslash and `n` reads like one holding a newline (the audit log, JSON, tells them apart).
"""

from __future__ import annotations

from typing import Final

__all__ = ["shown"]

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    o = ord(c)
    return _NAMED.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")


def shown(text: str) -> str:
    """`text` with every non-printable character escaped (the module docstring): one line, inert."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
