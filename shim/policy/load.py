"""Reading one policy source: TOML text in, a validated Policy out, or one PolicyError at the right line.

Validation walks tomllib's data by the tables of shim.policy.capabilities (capability keys) and `ENTRY_KEYS`
(the other keys of an entry) and reports the first problem with its file, line, dotted key and what was
expected. Lines come from shim.policy.locate (one extra scan of the text, done only when there is an entry
or an error to place).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Final

from shim.limits import parse_duration, parse_size
from shim.policy.capabilities import ACTIONS, CAPABILITIES, Capability
from shim.policy.errors import PolicyError
from shim.policy.locate import Part, key_lines, line_of
from shim.policy.model import EVERY_PACKAGE, KINDS, MODES, SOURCES, Entry, Limits, Policy, Rule, Source
from shim.policy.semver import VersionReq, parse_req

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

Path_ = tuple[Part, ...]

# Where the permissions table sits in each kind of source.
ROOTS: Final[dict[str, tuple[str, ...]]] = {
    "top-level": ("permissions",),  # cratecage.toml, or the file CRATECAGE_POLICY names
    "workspace": ("workspace", "metadata", "permissions"),  # a workspace root's Cargo.toml
    "package": ("package", "metadata", "permissions"),  # a single-package project's Cargo.toml
}
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION: Final = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


def dotted(path: Path_) -> str:
    """A data path as a TOML key: permissions.build."a b".paths[0]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + (part if _BARE_KEY.fullmatch(part) else json.dumps(part))
    return out


def _kind_of(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    return names.get(type(value), "a date or time")


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """tomllib's data, or PolicyError with the line tomllib names and its message."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        m = _TOML_POSITION.match(message)
        if m:
            raise PolicyError(file, int(m[2]), None, f"invalid TOML: {m[1]} (column {m[3]})") from None
        line = text.count("\n") + 1 if "end of document" in message else None
        raise PolicyError(file, line, None, f"invalid TOML: {message}") from None
    except (ValueError, RecursionError) as err:  # huge integers, nesting deeper than Python's stack
        raise PolicyError(file, None, None, f"invalid TOML: {type(err).__name__}: {err}") from None


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), None, None, "no such file") from None
    except UnicodeDecodeError as err:
        raise PolicyError(str(path), None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise PolicyError(str(path), None, None, f"cannot read: {err.strerror or err}") from None


def permissions_table(data: dict[str, Any], where: str) -> Any | None:
    """The raw permissions value of a parsed source, None when it has none."""
    node: Any = data
    for part in ROOTS[where]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_file(path: Path, *, where: str) -> Policy:
    """Read and validate the policy in `path` (`where`: "top-level", "workspace" or "package")."""
    path = Path(path)
    return load_text(read_text(path), file=str(path), base=path.absolute().parent, where=where, source=path)


def load_text(text: str, *, file: str, base: Path, where: str, source: Path | None = None) -> Policy:
    """Like load_file for text already read; `base` is the directory relative paths are relative to."""
    if where not in ROOTS:
        raise ValueError(f"where={where!r}; expected one of {', '.join(ROOTS)}")
    data = parse_toml(text, file)
    return _Checker(file, base, text).policy(data, where, source)


class _Checker:
    """One validation pass over one source. `fail` builds the PolicyError for a data path."""

    def __init__(self, file: str, base: Path, text: str) -> None:
        self.file = file
        self.base = base
        self.text = text
        self._lines: dict[Path_, int] | None = None
        # every permitted filesystem-access item: (path, list key, data path, entry's table key)
        self.fs_items: list[tuple[str, str, Path_, str]] = []

    def fail(self, path: Path_, expected: str) -> PolicyError:
        if self._lines is None:
            self._lines = key_lines(self.text)
        return PolicyError(self.file, line_of(self._lines, path), dotted(path), expected)

    def unknown(self, path: Path_, allowed: list[str], hint: str = "", what: str = "key") -> PolicyError:
        import difflib  # only for a policy with a mistake in it

        key = str(path[-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        return self.fail(path, f"unknown {what}{guess}; expected one of {', '.join(allowed)}{hint}")

    def expect(self, path: Path_, value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, f"expected {what}, found {_kind_of(value)}")
        return value

    # -- the permissions table --
    def policy(self, data: dict[str, Any], where: str, source: Path | None) -> Policy:
        root = ROOTS[where]
        if where == "top-level":
            for key in data:
                if key != "permissions":
                    hint = " ([permissions] holds mode and the kinds)" if key in _GLOBALS or key in KINDS else ""
                    raise self.fail((key,), f"unknown table; a policy file holds only [permissions...] "
                                            f"tables{hint}")
        table = permissions_table(data, where)
        if table is None:
            return Policy(source=source, where=where)
        self.expect(root, table, dict, "a table")
        settings: dict[str, Any] = {"mode": "enforce", "curated": True}
        entries: list[Entry] = []
        for key, value in table.items():
            path = root + (key,)
            if key in KINDS:
                entries.extend(self.kind(path, key, value))
            elif key in _GLOBALS:
                name, read = _GLOBALS[key]
                settings[name] = read(self, path, value)
            else:
                raise self.unknown(path, [*KINDS, *_GLOBALS], what="kind")
        self.no_grant_below_a_writable_one()
        return Policy(source=source, where=where, entries=tuple(entries), **settings)

    def no_grant_below_a_writable_one(self) -> None:
        """No granted path may be reached through an entry below a directory some build script may write
        (any crate's `writable`, its own included): that script could replace the entry with a link to
        anywhere while the path is opened (a preopen, a view, a granted program's Landlock rule), and the
        grant would follow it out. The writable directory itself is safe to grant: it cannot be replaced,
        and links inside it lead only where the sandbox lets them. Checked on the text and, for links the
        owner made, on the way the path resolves now (shim.lexical.entries_on_the_way)."""
        from shim.lexical import entries_on_the_way

        trees = [(item, table) for item, key, _path, table in self.fs_items if key == "writable"]
        if not trees:
            return
        real = [(os.path.realpath(tree), tree, table) for tree, table in trees]
        for item, key, path, _table in self.fs_items:
            reached = [item, *entries_on_the_way(item)]
            for tree, shown, table in [(t, t, e) for t, e in trees] + real:
                below = next((e for e in reached if e != tree and _below(e, tree)), None)
                if below is None:
                    continue
                raise self.fail(path, (
                    f"{json.dumps(item)} is reached through {below}, inside {json.dumps(shown)}, which [{table}] "
                    f"may write: a build script that can write there could make it a link to anywhere, and this "
                    f"grant would follow it; grant {json.dumps(shown)} itself instead (links inside a granted "
                    "directory lead only where the sandbox lets them)"))

    def kind(self, path: Path_, kind: str, value: Any) -> list[Entry]:
        self.expect(path, value, dict, f"a table of packages, [{dotted(path)}.<package>]")
        entries = []
        for crate, body in value.items():
            crate_path = path + (crate,)
            if isinstance(body, list) and body and all(isinstance(b, dict) for b in body):
                entries.extend(self.entry(crate_path + (i,), kind, crate, b) for i, b in enumerate(body))
            else:
                self.expect(crate_path, body, dict, f"a table [{dotted(crate_path)}]")
                entries.append(self.entry(crate_path, kind, crate, body))
        return entries

    # -- one entry --
    def entry(self, path: Path_, kind: str, crate: str, table: dict[str, Any]) -> Entry:
        fields: dict[str, Any] = {"version": None, "native": False, "limits": Limits(), "origin": None}
        rules = []
        for key, value in table.items():
            if key in CAPABILITIES:
                rules.append(self.rule(path + (key,), key, CAPABILITIES[key], value))
            elif key in ENTRY_KEYS:
                name, read = ENTRY_KEYS[key]
                fields[name] = read(self, path + (key,), value)
            else:
                hint = (f" (a capability goes in [{dotted(path[:-1])}.<package>])"
                        if crate in CAPABILITIES else "")
                raise self.unknown(path + (key,), [*CAPABILITIES, *ENTRY_KEYS], hint)
        table_key = dotted(path[:-1] if isinstance(path[-1], int) else path)
        if crate == EVERY_PACKAGE:
            self.only_denies(path, table, rules)
        for rule in rules:
            if rule.capability == "filesystem-access" and rule.action == "permit":
                self.fs_items += [(item, key, path + (rule.capability, key, i), table_key)
                                  for key, items in rule.lists for i, item in enumerate(items)]
        source = Source(self.file, self._line(path), table_key)
        return Entry(kind=kind, crate=crate, rules=tuple(rules), source=source, **fields)

    def only_denies(self, path: Path_, table: dict[str, Any], rules: list[Rule]) -> None:
        """An entry for every package ("*") takes away and never gives: a permit, `sandbox` or `limits` there
        would reach every crate of the build, the ones the owner has never seen included."""
        for key in table:
            rule = next((r for r in rules if r.capability == key), None)
            if rule is None and key in ("version", "source"):
                continue
            if rule is None or rule.action != "deny":
                raise self.fail(path + (key,), 'an entry for every package ("*") may only deny '
                                                '(action = "deny"); name the package to permit anything')

    def _line(self, path: Path_) -> int:
        """An entry's line for audit events: found only when asked, as for errors."""
        if self._lines is None:
            self._lines = key_lines(self.text)
        return line_of(self._lines, path)

    def rule(self, path: Path_, name: str, capability: Capability, value: Any) -> Rule:
        keys = list(capability.lists)
        if isinstance(value, list) and capability.shorthand:  # `vars = [...]` shorthand: permit these
            key = capability.shorthand
            return Rule(name, "permit", ((key, self.items(path, capability, key, value)),))
        example = f'{{ action = "permit", {keys[0]} = [{capability.example}] }}'
        self.expect(path, value, dict, f"an inline table such as {example}")
        for key in value:
            if key != "action" and key not in capability.lists:
                raise self.unknown(path + (key,), ["action", *keys])
        if "action" not in value:
            raise self.fail(path, 'expected action = "permit" or action = "deny"')
        action = self.expect(path + ("action",), value["action"], str, '"permit" or "deny"')
        if action not in ACTIONS:
            raise self.fail(path + ("action",), f'expected "permit" or "deny", found {json.dumps(action)}')
        lists = tuple((k, self.items(path + (k,), capability, k, value[k])) for k in keys if k in value)
        if action == "permit" and not lists:
            raise self.fail(path, f"expected at least one of {', '.join(keys)} with a permit")
        return Rule(name, action, lists)

    def items(self, path: Path_, capability: Capability, key: str, value: Any) -> tuple[str, ...]:
        item_kind = capability.lists[key]
        self.expect(path, value, list, f"an array of strings such as {key} = [{capability.example}]")
        out = []
        for i, raw in enumerate(value):
            self.expect(path + (i,), raw, str, "a string")
            try:
                out.append(item_kind.read(raw, self.base))
            except ValueError as err:
                raise self.fail(path + (i,), str(err)) from None
        return tuple(out)


def _below(path: str, tree: str) -> bool:
    """`path` lies strictly inside the directory `tree` (both absolute, normalised)."""
    return path.startswith(tree.rstrip("/") + "/")


# -- readers of the other keys: (name of the Policy/Entry field, reader) -------------------------------------

def _read_mode(c: _Checker, path: Path_, value: Any) -> str:
    c.expect(path, value, str, '"enforce" or "warn"')
    if value not in MODES:
        raise c.fail(path, f'expected "enforce" or "warn", found {json.dumps(value)}')
    return str(value)


def _read_bool(c: _Checker, path: Path_, value: Any) -> bool:
    return bool(c.expect(path, value, bool, "true or false"))


def _read_version(c: _Checker, path: Path_, value: Any) -> VersionReq:
    c.expect(path, value, str, 'a semver requirement such as "^1.2"')
    try:
        return parse_req(value)
    except ValueError as err:
        raise c.fail(path, f'expected a semver requirement such as "^1.2", "~1.2.3", ">=1, <2", "=1.2.3" '
                           f'or "*" ({err})') from None


def _read_sandbox(c: _Checker, path: Path_, value: Any) -> bool:
    if value != "native":
        raise c.fail(path, f'expected "native" (the only choice), found {json.dumps(value, default=str)}')
    return True


def _read_origin(c: _Checker, path: Path_, value: Any) -> str:
    choices = " or ".join(json.dumps(s) for s in SOURCES)
    if value not in SOURCES:
        raise c.fail(path, f"expected {choices} (a package downloaded from a registry such as crates.io), "
                           f"found {json.dumps(value, default=str)}")
    return str(value)


def _positive(parse: Callable[[str], float], example: str) -> Callable[[_Checker, Path_, Any], float]:
    def read(c: _Checker, path: Path_, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise c.fail(path, f"expected a string such as {example}, found {_kind_of(value)}")
        try:
            number = parse(value) if isinstance(value, str) else value
        except (ValueError, OverflowError) as err:
            raise c.fail(path, f"expected a value such as {example} ({err})") from None
        if not (0 < number and math.isfinite(number)):
            raise c.fail(path, f"expected a value above zero such as {example}")
        return number
    return read


def _count(example: str) -> Callable[[_Checker, Path_, Any], int]:
    def read(c: _Checker, path: Path_, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise c.fail(path, f"expected a whole number of processes such as {example}, found {_kind_of(value)}")
        if value <= 0:
            raise c.fail(path, f"expected a number above zero such as {example}")
        return value
    return read


# limits subkey -> (Limits field, reader)
LIMIT_KEYS: Final = {
    "time": ("time_s", _positive(parse_duration, '"5m", "90s" or 300 (seconds)')),
    "memory": ("memory", _positive(parse_size, '"2GiB", "512MiB" or a number of bytes')),
    "processes": ("processes", _count('512')),
    "child-memory": ("child_memory", _positive(parse_size, '"8GiB", "512MiB" or a number of bytes')),
    "disk": ("disk", _positive(parse_size, '"8GiB", "512MiB" or a number of bytes')),
}


def _read_limits(c: _Checker, path: Path_, value: Any) -> Limits:
    c.expect(path, value, dict, 'a table such as { time = "5m", memory = "2GiB", processes = 512 }')
    fields = {}
    for key, raw in value.items():
        if key not in LIMIT_KEYS:
            raise c.unknown(path + (key,), list(LIMIT_KEYS))
        name, read = LIMIT_KEYS[key]
        fields[name] = read(c, path + (key,), raw)
    return Limits(**fields)


ENTRY_KEYS: Final[dict[str, tuple[str, Callable[[_Checker, Path_, Any], Any]]]] = {
    "version": ("version", _read_version),
    "sandbox": ("native", _read_sandbox),
    "limits": ("limits", _read_limits),
    "source": ("origin", _read_origin),
}
_GLOBALS: Final[dict[str, tuple[str, Callable[[_Checker, Path_, Any], Any]]]] = {
    "mode": ("mode", _read_mode),
    "curated-defaults": ("curated", _read_bool),
}
