"""Paste-ready policy entries for denials: what a person adds to cratecage.toml to permit one thing.

Written from the capability table (shim.policy.capabilities), so every capability can be suggested, and
quoted so that the text always loads back (tests check the round trip): the crate key bare when TOML
allows it, strings with TOML's escapes.
"""

from __future__ import annotations

import re
from typing import Final

from shim.policy.capabilities import CAPABILITIES
from shim.policy.model import KINDS

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, and every character that is not printable
    (controls, separators, bidi overrides: shim.untrusted says which) as `\\uNNNN`/`\\UNNNNNNNN`, so the
    entry is one inert line that loads back. A surrogate (an undecodable byte) has no TOML escape: U+FFFD."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif 0xD800 <= ord(c) < 0xE000:
            out.append("\\ufffd")
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def suggest_entry(kind: str, crate: str, capability: str, target: str, *, writable: bool = False) -> str:
    """The entry that permits `target` for `capability` to `crate`'s `kind`:

        [permissions.build.foo]
        filesystem-access = { action = "permit", paths = ["/etc/foo.conf"] }

    `target` is what was refused: a path, variable, `host:port`, program, or a directive's grant item
    (shim.build.directives Directive.grant_item, e.g. "rustc-env=LD_PRELOAD"). `writable` asks for write
    access to a path.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    keys = list(CAPABILITIES[capability].lists)
    key = "writable" if writable and "writable" in keys else keys[0]
    return (f"[permissions.{kind}.{toml_key(crate)}]\n"
            f"{capability} = {{ action = \"permit\", {key} = [{toml_string(target)}] }}")
