"""Semver requirements as cargo writes them, so `version = "..."` narrows an entry the way a user expects.

Supported: comma-separated comparators, each an operator (`=`, `>`, `>=`, `<`, `<=`, `~`, `^`, none meaning
`^`) and a partial version (`1`, `1.2`, `1.2.3`, `1.2.3-pre`), or a wildcard (`*`, `1.*`, `1.2.x`). The
matching rules follow the `semver` crate that cargo uses (`semver::VersionReq::matches`), including its
pre-release rule: a pre-release version matches only if some comparator names the same major.minor.patch
with a pre-release. No dependency: the standard library has nothing for this, and the rules are small.
"""

from __future__ import annotations

import re
from typing import Final, Union

from shim.record import record

_ID: Final = r"[0-9A-Za-z-]+"
_NUM: Final = r"0|[1-9][0-9]*"
_VERSION_RE: Final = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_ID}(?:\.{_ID})*))?(?:\+({_ID}(?:\.{_ID})*))?")
_PART: Final = rf"{_NUM}|\*|x|X"
_COMPARATOR_RE: Final = re.compile(
    rf"(=|>=|>|<=|<|~|\^)?\s*({_PART})(?:\.({_PART}))?(?:\.({_PART}))?(?:-({_ID}(?:\.{_ID})*))?"
    rf"(?:\+{_ID}(?:\.{_ID})*)?")
_WILD: Final = ("*", "x", "X")

PreId = Union[int, str]


def _pre_key(pre: tuple[PreId, ...]) -> tuple:
    """Sort key of a pre-release: none sorts above any; numeric ids below alphanumeric ones."""
    if not pre:
        return (1,)
    return (0, tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in pre))


def _parse_pre(text: str | None) -> tuple[PreId, ...]:
    if not text:
        return ()
    ids: list[PreId] = []
    for part in text.split("."):
        if part.isdigit() and (part == "0" or not part.startswith("0")):
            ids.append(int(part))
        elif part.isdigit():
            raise ValueError(f"invalid leading zero in pre-release {text!r}")
        else:
            ids.append(part)
    return tuple(ids)


@record(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[PreId, ...] = ()


def parse_version(text: str) -> Version:
    m = _VERSION_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return Version(int(m[1]), int(m[2]), int(m[3]), _parse_pre(m[4]))


@record(frozen=True)
class Comparator:
    op: str  # "=", ">", ">=", "<", "<=", "~", "^", "*" (a wildcard, like "=" on what is given)
    major: int
    minor: int | None
    patch: int | None
    pre: tuple[PreId, ...] = ()

    def matches(self, v: Version) -> bool:
        return _OPS[self.op](self, v)

    def pre_compatible(self, v: Version) -> bool:
        return (bool(self.pre) and self.major == v.major and self.minor == v.minor and self.patch == v.patch)


def _exact(c: Comparator, v: Version) -> bool:
    if v.major != c.major or (c.minor is not None and v.minor != c.minor):
        return False
    if c.patch is not None and v.patch != c.patch:
        return False
    return v.pre == c.pre


def _greater(c: Comparator, v: Version) -> bool:
    if v.major != c.major:
        return v.major > c.major
    if c.minor is None:
        return False
    if v.minor != c.minor:
        return v.minor > c.minor
    if c.patch is None:
        return False
    if v.patch != c.patch:
        return v.patch > c.patch
    return _pre_key(v.pre) > _pre_key(c.pre)


def _less(c: Comparator, v: Version) -> bool:
    if v.major != c.major:
        return v.major < c.major
    if c.minor is None:
        return False
    if v.minor != c.minor:
        return v.minor < c.minor
    if c.patch is None:
        return False
    if v.patch != c.patch:
        return v.patch < c.patch
    return _pre_key(v.pre) < _pre_key(c.pre)


def _tilde(c: Comparator, v: Version) -> bool:
    if v.major != c.major or (c.minor is not None and v.minor != c.minor):
        return False
    if c.patch is not None and v.patch != c.patch:
        return v.patch > c.patch
    return _pre_key(v.pre) >= _pre_key(c.pre)


def _caret(c: Comparator, v: Version) -> bool:
    if v.major != c.major:
        return False
    if c.minor is None:
        return True
    if c.patch is None:
        return v.minor >= c.minor if c.major > 0 else v.minor == c.minor
    if c.major > 0:
        if v.minor != c.minor:
            return v.minor > c.minor
    elif c.minor > 0:
        if v.minor != c.minor:
            return False
    elif v.minor != c.minor or v.patch != c.patch:
        return False
    if v.patch != c.patch:
        return v.patch > c.patch
    return _pre_key(v.pre) >= _pre_key(c.pre)


_OPS: Final = {
    "=": _exact, "*": _exact, ">": _greater, "<": _less, "~": _tilde, "^": _caret,
    ">=": lambda c, v: _exact(c, v) or _greater(c, v),
    "<=": lambda c, v: _exact(c, v) or _less(c, v),
}


@record(frozen=True)
class VersionReq:
    text: str
    comparators: tuple[Comparator, ...]

    def matches(self, version: str | Version) -> bool:
        """Whether `version` satisfies every comparator; an unparsable version matches nothing."""
        if isinstance(version, str):
            try:
                version = parse_version(version)
            except ValueError:
                return False
        if not all(c.matches(version) for c in self.comparators):
            return False
        return not version.pre or any(c.pre_compatible(version) for c in self.comparators)


def _comparator(text: str) -> Comparator | None:
    """One comparator; None for a bare `*` (no constraint)."""
    m = _COMPARATOR_RE.fullmatch(text)
    if not m:
        raise ValueError(f"not a version requirement: {text!r}")
    op, parts, pre = m[1] or "", [m[2], m[3], m[4]], _parse_pre(m[5])
    wild_at = next((i for i, p in enumerate(parts) if p in _WILD), None)
    if wild_at is not None:
        if any(p is not None and p not in _WILD for p in parts[wild_at:]) or pre or op not in ("", "="):
            raise ValueError(f"a wildcard must come last, without an operator or pre-release: {text!r}")
        if wild_at == 0:
            return None
        nums = [int(p) for p in parts[:wild_at]]
        return Comparator("*", nums[0], nums[1] if len(nums) > 1 else None, None)
    major, minor, patch = (int(p) if p is not None else None for p in parts)
    if pre and patch is None:
        raise ValueError(f"a pre-release needs major.minor.patch: {text!r}")
    assert major is not None
    return Comparator(op or "^", major, minor, patch, pre)


def parse_req(text: str) -> VersionReq:
    """`^1.2`, `~1.2.3`, `>=1, <2`, `=1.2.3`, `1.2`, `*`, ... ; ValueError with the reason otherwise."""
    if not text.strip():
        raise ValueError("empty version requirement")
    comparators = [_comparator(part.strip()) for part in text.split(",")]
    return VersionReq(text, tuple(c for c in comparators if c is not None))
