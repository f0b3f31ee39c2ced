"""The capability kinds a policy entry can grant or deny: one table, and everything else reads it.

`CAPABILITIES` names each kind, its list keys and what one list item is (`ItemKind`: how it is read
from the policy, how a request is put in the same form, how the two are matched). `QUESTIONS` says
which list keys answer which question ("may it read this path?") and which deny items refuse it. The
loader (shim.policy.load) validates against these tables, `Grant` (shim.policy.model) answers from them, and
shim.policy.suggest writes entries from them, so a new capability is one row here, not a new code path.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Callable, Final

from shim.cargo.directives import CARGO_KEYS
from shim.lexical import normal_path, prefix_match
from shim.record import record

_HOSTNAME_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _text(raw: str) -> str:
    if not raw or "\0" in raw:
        raise ValueError("expected a non-empty string")
    return raw


def _expand_home(raw: str) -> str:
    expanded = os.path.expanduser(raw)
    if expanded.startswith("~"):
        raise ValueError(f"cannot expand {raw!r}: no such user or HOME is not set")
    return expanded


# -- paths: a granted path is a tree ------------------------------------------------------------------------

def _policy_path(raw: str, base: Path) -> str:
    """A policy's path in the guest's normal form (shim.lexical): relative to the policy file's directory,
    `~` expanded, `.`/`..`/`//`/a trailing `/` resolved, so every spelling of a path grants the same tree."""
    path = _expand_home(_text(raw))
    return normal_path(path if os.path.isabs(path) else os.path.join(base, path))


def _request_path(target: str) -> str | None:
    return normal_path(target) if target and os.path.isabs(target) and "\0" not in target else None


def _under(tree: str, path: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


# -- environment variables: exact names or a prefix ending in `*` -------------------------------------------

def _env_pattern(raw: str, base: Path) -> str:
    name = _text(raw)
    if "=" in name or "*" in name[:-1]:
        raise ValueError("expected a variable name, or a prefix ending in * (e.g. \"OPENSSL_*\")")
    return name


def _request_text(target: str) -> str | None:
    return target or None


# -- routes: host:port, [IPv6]:port, port may be * -----------------------------------------------------------

def parse_route(raw: str) -> tuple[str, str]:
    """(host, port) in canonical form: lower-case host, IPv6 compressed, port a number or "*"."""
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError("expected [IPv6]:port, e.g. \"[::1]:5432\" (a route needs a port, or *)")
        port = rest[1:]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host!r}") from None
    else:
        host, colon, port = raw.rpartition(":")
        if not colon or not host:
            raise ValueError("expected host:port, e.g. \"127.0.0.1:5432\" (a route needs a port, or *)")
        if ":" in host:
            raise ValueError("an IPv6 address goes in brackets: [::1]:5432")
        if not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"not a host name or IPv4 address: {host!r}")
        host = host.lower().rstrip(".")
    if port != "*" and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise ValueError(f"expected a port from 1 to 65535 or *, found {port!r}")
    return host, port if port == "*" else str(int(port))


def format_route(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _route(raw: str, base: Path) -> str:
    return format_route(*parse_route(_text(raw)))


def _request_route(target: str) -> str | None:
    try:
        return format_route(*parse_route(target))
    except ValueError:
        return None


def _route_match(granted: str, target: str) -> bool:
    g_host, g_port = parse_route(granted)
    t_host, t_port = parse_route(target)
    return g_host == t_host and g_port in ("*", t_port)


# -- programs: a bare name (looked up in PATH by the host) or a path -----------------------------------------

def _program(raw: str, base: Path) -> str:
    name = _text(raw)
    return _policy_path(name, base) if "/" in name or name.startswith("~") else name


# -- directives: KEY or KEY=TARGET (see shim.build.directives) ---------------------------------------------------

def _directive(raw: str, base: Path) -> str:
    key, eq, target = _text(raw).partition("=")
    if key not in CARGO_KEYS:
        raise ValueError(f"expected KEY or KEY=TARGET with KEY one of {', '.join(sorted(CARGO_KEYS))}")
    if eq and not target:
        raise ValueError(f"expected a target after {key}=")
    return raw


def _directive_match(granted: str, target: str) -> bool:
    g_key, g_eq, g_pattern = granted.partition("=")
    t_key, t_eq, t_value = target.partition("=")
    if g_key != t_key:
        return False
    return not g_eq or (bool(t_eq) and prefix_match(g_pattern, t_value))


@record(frozen=True)
class ItemKind:
    """One list item: `read` turns policy text into canonical form (relative paths against the policy
    file's directory) or raises ValueError saying what was expected; `request` puts a request's target
    in the same form (None: it can match nothing); `matches(granted, request)`."""

    read: Callable[[str, Path], str]
    request: Callable[[str], str | None]
    matches: Callable[[str, str], bool]
    # Set for items enforced as a whole (a path becomes a WASI preopen, which cannot have a hole in it):
    # a permit that overlaps any deny is withheld entirely, so what is checked is what is enforced.
    overlaps: Callable[[str, str], bool] | None = None


PATH: Final = ItemKind(_policy_path, _request_path, _under, lambda a, b: _under(a, b) or _under(b, a))
ENV: Final = ItemKind(_env_pattern, _request_text, prefix_match)
ROUTE: Final = ItemKind(_route, _request_route, _route_match)
# A denied program is withheld from `granted` too, so a deny of a name takes it out of `programs`/`may-run`.
PROGRAM: Final = ItemKind(_program, _request_text, lambda g, t: g == t, lambda a, b: a == b)
DIRECTIVE: Final = ItemKind(_directive, _request_text, _directive_match)


@record(frozen=True)
class Capability:
    lists: dict[str, ItemKind]  # list key -> item kind; the first is the one suggestions use
    example: str  # an item for messages
    # An array in place of the inline table permits items of the first list key (`env-access = ["HOME"]`):
    # for a capability of one list, or one whose other lists only qualify the first (`may-run`).
    array_shorthand: bool = False

    @property
    def shorthand(self) -> str | None:
        """The list key an array given for this capability permits, or None."""
        return next(iter(self.lists)) if len(self.lists) == 1 or self.array_shorthand else None


CAPABILITIES: Final[dict[str, Capability]] = {
    "filesystem-access": Capability({"paths": PATH, "writable": PATH}, '"/usr/include"'),
    "env-access": Capability({"vars": ENV}, '"OPENSSL_DIR"'),
    "network-access": Capability({"routes": ROUTE}, '"127.0.0.1:5432"'),
    # `may-run`: what the crate's granted programs may start beyond their profile's system tools
    # (shim.host.spawn.confinement): a bare name found on the host's PATH, or a path (a file or a tree).
    "process-spawn": Capability({"programs": PROGRAM, "may-run": PROGRAM}, '"pkg-config"', array_shorthand=True),
    "directives": Capability({"list": DIRECTIVE}, '"rustc-link-lib=z"'),
}
ACTIONS: Final = ("permit", "deny")


@record(frozen=True)
class Question:
    """Which permit lists answer a question, and which deny lists override them."""

    capability: str
    grants: tuple[str, ...]
    denies: tuple[str, ...]


QUESTIONS: Final[dict[str, Question]] = {
    "read": Question("filesystem-access", ("paths", "writable"), ("paths",)),
    "write": Question("filesystem-access", ("writable",), ("paths", "writable")),
    "env": Question("env-access", ("vars",), ("vars",)),
    "route": Question("network-access", ("routes",), ("routes",)),
    "program": Question("process-spawn", ("programs",), ("programs",)),
    "may-run": Question("process-spawn", ("may-run",), ("may-run",)),
    "directive": Question("directives", ("list",), ("list",)),
}
