"""What a loaded policy is (Policy, Entry, Rule) and what it resolves to for one crate (Grant).

A Policy is a list of entries, each for one kind (build/macro/run) and package name, optionally narrowed
by a version requirement. `Policy.resolve` merges every entry that applies (the user's and, unless
turned off, the curated defaults of shim.policy.curated) into one Grant. Merging is set union; a deny item
removes whatever it matches from every permit of the same question, whichever entry the permit came
from ("deny wins"). Grants answer questions through the tables of shim.policy.capabilities.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Final, Mapping

from shim.policy.capabilities import CAPABILITIES, QUESTIONS, format_route
from shim.policy.semver import VersionReq
from shim.record import factory, field_names, record

KINDS: Final = ("build", "macro", "run")
MODES: Final = ("enforce", "warn")
EVERY_PACKAGE: Final = "*"  # an entry key for every package; such an entry may only deny (shim.policy.load)
SOURCES: Final = ("registry",)  # what `source = "..."` may name (shim.cargo.workspace.package_source tells)


def crate_key(name: str) -> str:
    """Package names compare with `-` and `_` equivalent, as cargo's own name checks do."""
    return name.replace("-", "_")


@record(frozen=True)
class Source:
    """Where an entry is written, for audit events and messages: `cratecage.toml:12 [permissions.build.x]`."""

    file: str
    line: int
    key: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} [{self.key}]"


@record(frozen=True)
class Rule:
    """One capability key of an entry: `action` and the (canonical) items of each list key given.
    A deny with no list refuses the whole capability."""

    capability: str
    action: str
    lists: tuple[tuple[str, tuple[str, ...]], ...]


@record(frozen=True)
class Limits:
    """Limits an entry raises for its crate; None: the runner's default."""

    time_s: float | None = None
    memory: int | None = None
    processes: int | None = None  # live native processes (granted programs, probes, what they start)
    child_memory: int | None = None  # their summed resident memory
    disk: int | None = None  # bytes added to OUT_DIR, the temp dir and writable grants

    def merge(self, other: Limits) -> Limits:
        """Entries merge by granting the larger limit: a limit is a grant like any other."""
        def larger(a, b):  # type: ignore[no-untyped-def]
            return b if a is None else a if b is None else max(a, b)
        return Limits(*(larger(getattr(self, name), getattr(other, name)) for name in field_names(Limits)))

    def digest_value(self) -> list[object]:
        """For Grant.digest: the first two as they always were (digests of existing grants stay), the
        others only when set."""
        rest = {name: getattr(self, name) for name in field_names(Limits)[2:] if getattr(self, name) is not None}
        return [self.time_s, self.memory, *([rest] if rest else [])]


@record(frozen=True)
class Entry:
    kind: str
    crate: str  # as written in the policy
    version: VersionReq | None
    rules: tuple[Rule, ...]
    native: bool
    limits: Limits
    source: Source
    # Where the package must come from for the entry to apply (`source = "registry"`); None: anywhere. A
    # package whose source is not known matches only entries without one.
    origin: str | None = None

    def applies_to(self, kind: str, crate: str, version: str, origin: str | None = None) -> bool:
        return (self.kind == kind and (self.crate == EVERY_PACKAGE or crate_key(self.crate) == crate_key(crate))
                and (self.version is None or self.version.matches(version))
                and (self.origin is None or self.origin == origin))


@record(frozen=True)
class Grant:
    """Everything one crate's build script, proc macro or program may do, merged from its entries.

    `permits`/`denies` map "capability.listkey" to sorted canonical items; `denied_all` holds the
    capabilities an entry denied outright. Decide with the `allows_*` methods (they apply denies);
    `readable`, `writable`, `env`, ... list what is granted, paths already without trees a deny
    overlaps. They answer only from the grants: `mode` ("warn": let the script read any file, see the
    whole environment and pass its directives on, and report what was not granted; writes, spawns and
    network stay refused) is the caller's to apply (shim.sandbox.enforce).
    """

    kind: str
    crate: str
    version: str
    mode: str = "enforce"
    permits: Mapping[str, tuple[str, ...]] = factory(dict)
    denies: Mapping[str, tuple[str, ...]] = factory(dict)
    denied_all: frozenset[str] = frozenset()
    native: bool = False
    limits: Limits = Limits()
    entries: tuple[Source, ...] = ()

    # -- what is granted --
    def granted(self, question: str) -> tuple[str, ...]:
        """The permit items that answer `question` (capabilities.QUESTIONS), sorted. For paths, trees a
        deny overlaps are left out (see ItemKind.overlaps), so `granted("read")` is what to preopen."""
        q = QUESTIONS[question]
        if q.capability in self.denied_all:
            return ()
        capability = CAPABILITIES[q.capability]
        items = {(k, p) for k in q.grants for p in self.permits.get(f"{q.capability}.{k}", ())}
        for key in q.denies:
            overlaps = capability.lists[key].overlaps
            for denied in self.denies.get(f"{q.capability}.{key}", ()) if overlaps else ():
                items = {(k, p) for k, p in items if not overlaps(p, denied)}
        return tuple(sorted({p for _, p in items}))

    @property
    def readable(self) -> tuple[str, ...]:
        return self.granted("read")

    @property
    def writable(self) -> tuple[str, ...]:
        return self.granted("write")

    @property
    def env(self) -> tuple[str, ...]:
        return self.granted("env")

    @property
    def routes(self) -> tuple[str, ...]:
        return self.granted("route")

    @property
    def programs(self) -> tuple[str, ...]:
        return self.granted("program")

    @property
    def may_run(self) -> tuple[str, ...]:
        """What granted programs may start beyond their profiles (shim.host.spawn.confinement)."""
        return self.granted("may-run")

    def denies_program(self, name: str) -> bool:
        """Whether an explicit deny names this program (a bare name, or a path by its file name too): its
        refusal is expected (shim.host.spawn), not a request the owner has yet to decide."""
        denied = self.denies.get("process-spawn.programs", ())
        return name in denied or ("/" in name and name.rsplit("/", 1)[1] in denied)

    @property
    def directives(self) -> tuple[str, ...]:
        return self.granted("directive")

    # -- questions --
    def allows(self, question: str, target: str) -> bool:
        """Whether a granted item of `question` matches `target` and no deny item does."""
        q = QUESTIONS[question]
        capability = CAPABILITIES[q.capability]
        item = capability.lists[q.grants[0]]
        request = item.request(target)
        if request is None:
            return False
        if any(capability.lists[k].matches(d, request)
               for k in q.denies for d in self.denies.get(f"{q.capability}.{k}", ())):
            return False
        return any(item.matches(p, request) for p in self.granted(question))

    def allows_read(self, path: str | Path) -> bool:
        return self.allows("read", str(path))

    def allows_write(self, path: str | Path) -> bool:
        return self.allows("write", str(path))

    def allows_env(self, name: str) -> bool:
        return self.allows("env", name)

    def allows_route(self, host: str, port: int | str) -> bool:
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return self.allows("route", format_route(host, str(port)))

    def allows_program(self, name: str) -> bool:
        return self.allows("program", name)

    def allows_directive(self, key: str, target: str | None = None) -> bool:
        """`key` alone asks for every directive of that key; with `target` (see shim.build.directives
        Directive.target) for that one: a grant of "rustc-env" or "rustc-env=LD_*" allows
        ("rustc-env", "LD_PRELOAD")."""
        return self.allows("directive", key if target is None else f"{key}={target}")

    def digest(self) -> str:
        """A stable hash of exactly what is granted (not where it is written), so that editing one entry
        changes only the digests of the crates it applies to."""
        granted = {
            "mode": self.mode,
            "permits": {k: sorted(set(v)) for k, v in sorted(self.permits.items()) if v},
            "denies": {k: sorted(set(v)) for k, v in sorted(self.denies.items()) if v},
            "denied_all": sorted(self.denied_all),
            "native": self.native,
            "limits": self.limits.digest_value(),
        }
        return hashlib.sha256(json.dumps(granted, sort_keys=True).encode()).hexdigest()


def _no_defaults() -> tuple[Entry, ...]:
    return ()


# The curated defaults (shim.policy.curated). They are written in the policy format, so shim.policy.load
# reads them, and it imports this module: the package's __init__ (imported before any of its modules)
# sets this to shim.policy.curated.entries, so imports run one way.
curated_entries: Callable[[], tuple[Entry, ...]] = _no_defaults


@record(frozen=True)
class Policy:
    """One policy source, loaded and validated. `Policy()` is the empty policy (defaults only)."""

    source: Path | None = None
    where: str | None = None  # "top-level" | "workspace" | "package"
    mode: str = "enforce"
    curated: bool = True  # `curated-defaults = false` turns shim.policy.curated off
    entries: tuple[Entry, ...] = ()

    def crates(self, kind: str) -> frozenset[str]:
        """Package names the policy has entries for (as written), so the caller can warn about unknown ones."""
        return frozenset(e.crate for e in self.entries if e.kind == kind)

    def resolve(self, kind: str, crate: str, version: str, origin: str | None = None) -> Grant:
        """`origin`: where the package comes from ("registry", shim.cargo.workspace.package_source), for entries
        that name one; None matches only entries that do not."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        defaults = curated_entries() if self.curated else ()
        matching = [e for e in (*defaults, *self.entries) if e.applies_to(kind, crate, version, origin)]
        return merge(kind, crate, version, self.mode, matching)


def merge(kind: str, crate: str, version: str, mode: str, entries: list[Entry]) -> Grant:
    permits: dict[str, set[str]] = {}
    denies: dict[str, set[str]] = {}
    denied_all: set[str] = set()
    limits = Limits()
    for entry in entries:
        limits = limits.merge(entry.limits)
        for rule in entry.rules:
            if rule.action == "deny" and not rule.lists:
                denied_all.add(rule.capability)
            target = permits if rule.action == "permit" else denies
            for key, items in rule.lists:
                target.setdefault(f"{rule.capability}.{key}", set()).update(items)
    return Grant(
        kind=kind, crate=crate, version=version, mode=mode,
        permits={k: tuple(sorted(v)) for k, v in sorted(permits.items())},
        denies={k: tuple(sorted(v)) for k, v in sorted(denies.items())},
        denied_all=frozenset(denied_all),
        native=any(e.native for e in entries),
        limits=limits,
        entries=tuple(e.source for e in entries),
    )
