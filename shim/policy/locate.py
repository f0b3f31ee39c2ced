"""Line numbers of TOML keys, which tomllib does not report: so an error can say `cratecage.toml:12`.

How: after tomllib has accepted a document, `key_lines` scans the same text once more with a small
structural reader (not a validator): it tracks `[table]` and `[[array]]` headers, `key = value` pairs
with dotted and quoted keys, inline tables and arrays (with the line of each element), and skips over
strings of all four kinds and comments, so text inside a string is never mistaken for a key. It
records the first line on which each full key path (as tomllib's nested data spells it: keys, and
indices for array elements and arrays of tables) is defined.

It never raises: if the text turns out to be something it does not follow, it returns what it has so
far, and `line_of` falls back to the nearest enclosing key that was found (or line 1).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final, Mapping, Union

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

Part = Union[str, int]
Path = tuple[Part, ...]

_BARE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END: Final = frozenset(",]}\n#")


class _Stop(Exception):
    """The reader lost track; keep what was recorded."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Path, int] = {}
        self.aot: dict[Path, int] = {}  # array-of-tables path -> elements so far
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    # -- characters --
    def line(self) -> int:
        return bisect_right(self.starts, self.pos)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def skip_blank(self, newlines: bool) -> None:
        """Spaces, tabs, comments and (if `newlines`) line ends."""
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            elif c == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- strings and keys --
    def string(self) -> str:
        """Skip one string of any kind; return its source text (quotes included)."""
        start = self.pos
        quote = self.text[self.pos]
        if self.peek(3) == quote * 3:
            end = self.text.find(quote * 3, self.pos + 3)
            while quote == '"' and end >= 0 and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            if end < 0:
                raise _Stop
            end += 3
            while self.text[end:end + 1] == quote and end - start < len(self.text):  # up to 2 more quotes
                end += 1
            self.pos = end
            return self.text[start:end]
        i = self.pos + 1
        while i < len(self.text) and self.text[i] != quote and self.text[i] != "\n":
            i += 2 if quote == '"' and self.text[i] == "\\" else 1
        if i >= len(self.text) or self.text[i] != quote:
            raise _Stop
        self.pos = i + 1
        return self.text[start:self.pos]

    def key(self) -> tuple[str, ...]:
        """A dotted key: bare or quoted parts."""
        parts: list[str] = []
        while True:
            self.skip_blank(False)
            c = self.peek()
            if c in ('"', "'"):
                parts.append(_decode_string(self.string()))
            else:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE:
                    self.pos += 1
                if self.pos == start:
                    raise _Stop
                parts.append(self.text[start:self.pos])
            self.skip_blank(False)
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1

    # -- structure --
    def expand(self, parts: tuple[str, ...]) -> Path:
        """A header's key as a data path: the last element of every array of tables on the way."""
        out: list[Part] = []
        for part in parts:
            out.append(part)
            count = self.aot.get(tuple(out))
            if count:
                out.append(count - 1)
        return tuple(out)

    def header(self) -> Path:
        line = self.line()
        array = self.peek(2) == "[["
        self.pos += 2 if array else 1
        parts = self.key()
        if not parts:
            raise _Stop
        if array:
            parent = self.expand(parts[:-1]) + (parts[-1],)
            index = self.aot.get(parent, 0)
            self.aot[parent] = index + 1
            self.record(parent, line)
            path: Path = parent + (index,)
        else:
            path = self.expand(parts)
        for end in range(1, len(path) + 1):  # `[a.b.c]` also defines a and a.b, if nothing did before
            self.record(path[:end], line)
        self.pos += 2 if array else 1
        return path

    def keyval(self, table: Path) -> None:
        line = self.line()
        parts = self.key()
        for i in range(1, len(parts) + 1):
            self.record(table + parts[:i], line)
        if self.peek() != "=":
            raise _Stop
        self.pos += 1
        self.skip_blank(False)
        self.value(table + parts)

    def value(self, path: Path) -> None:
        c = self.peek()
        if c == "{":
            self.pos += 1
            while True:
                self.skip_blank(True)
                if self.peek() == "}":
                    self.pos += 1
                    return
                self.keyval(path)
                self.skip_blank(True)
                if self.peek() == ",":
                    self.pos += 1
        elif c == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_blank(True)
                if self.peek() == "]":
                    self.pos += 1
                    return
                self.record(path + (index,), self.line())
                self.value(path + (index,))
                index += 1
                self.skip_blank(True)
                if self.peek() == ",":
                    self.pos += 1
        elif c in ('"', "'"):
            self.string()
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _Stop

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_blank(True)
            if self.pos >= len(self.text):
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.keyval(table)


def _escaped(text: str, i: int) -> bool:
    """Whether the character at `i` is escaped by an odd run of backslashes."""
    n = 0
    while i - n - 1 >= 0 and text[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def _decode_string(source: str) -> str:
    """A quoted key's value, decoded by tomllib itself so escapes mean exactly what they mean there."""
    try:
        value = tomllib.loads(f"k = {source}")["k"]
    except Exception:  # noqa: BLE001 - never raise from here; an undecodable key just won't be found
        return source
    return value if isinstance(value, str) else source


def key_lines(text: str) -> dict[Path, int]:
    """First line of every key path defined in `text` (see the module docstring)."""
    reader = _Reader(text)
    try:
        reader.document()
    except (_Stop, IndexError, RecursionError):
        pass
    return reader.lines


def line_of(lines: Mapping[Path, int], path: Path) -> int:
    """The line of `path`, or of its nearest enclosing key that has one, or 1."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1
