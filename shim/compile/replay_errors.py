"""Why a wasm compile failed, read from rustc's JSON diagnostics: the error to name and the advice that fits.

Why: rustc reports errors in the order it meets them, and the first is often a consequence. When a crate
the compile needs cannot be loaded, rustc goes on resolving names without it, so a replay of ppv-lite86
whose zerocopy could not be loaded opens with `E0432 unresolved import crate::vec128_storage` and says
`E0463 can't find crate for zerocopy` only third (tests/data/replay_errors/). And advice must fit the
cause: "needs a native-only API" is wrong when cratecage failed to hand rustc a crate.

`diagnose` sorts a failure into one of four kinds (`Diagnosis.kind`), by these rules in this order:
  CRATE_GRAPH  an error of `CRATE_LOADING` (rustc could not load a crate) anywhere: the first one is the
               cause. cratecage assembles every crate a replay reads (its closure of wasm rlibs, the std
               facade, the native proc macros, the wasm sysroot), and each of them compiled natively, so
               this is cratecage's fault, never the crate's. E0463 names the crate rustc was loading,
               which for a crate given by `--extern` may be one it was compiled against that is missing.
  TARGET_DEPENDENCY  an unresolved name that is a dependency the crate's Cargo.toml declares only under
               `[target.'cfg(...)'.dependencies]` (`target_dependencies`): getrandom 0.2 `use`s `wasi`,
               which cargo adds only when it builds for wasi. A replay compiles the crate graph cargo
               resolved for the host, so a dependency only another target has is not there.
  NATIVE_ONLY  an unresolved name (`UNRESOLVED`) with rustc's note that an item by that name exists but
               was configured out: `std::os::unix`, a module under `#[cfg(target_os = "linux")]`. The
               replay keeps the native compile's features and cfgs, so what is configured out is
               configured out by the target: the crate needs an API wasm32-wasip1 does not have.
  OTHER        anything else (a `const` assertion that `usize` is 64 bits, a type that differs): rustc's
               first error, with no claim about why.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Final, Mapping

CRATE_GRAPH, TARGET_DEPENDENCY, NATIVE_ONLY, OTHER = "crate-graph", "target-dependency", "native-only", "other"

# rustc's errors for a crate it could not load (rustc_metadata's locator), with what each one means.
CRATE_LOADING: Final[dict[str, str]] = {
    "E0460": "found only other builds of it",
    "E0461": "found it compiled for another target",
    "E0462": "found a static library of it",
    "E0463": "found no file for it",
    "E0464": "found several candidates",
    "E0514": "found it compiled by another rustc",
    "E0519": "found a crate of the same name and identity",
    "E0523": "found two crates of the same name and identity",
    "E0786": "found invalid metadata for it",
}
# rustc's errors for a name that does not resolve.
UNRESOLVED: Final = frozenset({"E0405", "E0412", "E0422", "E0423", "E0425", "E0432", "E0433", "E0531"})
CONFIGURED_OUT: Final = "configured out"  # "found an item that was configured out" (a child note)
RENDERED_LINES: Final = 8  # lines of rustc's rendered error kept in a message

# The crate an error names: "crate `x`", "crate for `x`", "dependency `x`", "staticlib `x`".
_CRATE: Final = re.compile(r"(?:crate(?: for)?|dependency|staticlib) `([^`]+)`")
_NEEDED_BY: Final = re.compile(r"which `([^`]+)` depends on")
_QUOTED: Final = re.compile(r"`([^`]+)`")
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # CRATE_GRAPH, TARGET_DEPENDENCY, NATIVE_ONLY or OTHER
    error: str  # the error to show: rustc's rendering, at most RENDERED_LINES lines
    code: str | None = None  # E0463, ...
    crate: str | None = None  # CRATE_GRAPH: the crate rustc could not load; TARGET_DEPENDENCY: the one missing
    needed_by: str | None = None  # CRATE_GRAPH: the crate that depends on it, when rustc says
    target: str | None = None  # TARGET_DEPENDENCY: the `[target.<this>]` table declaring the dependency

    @property
    def cause(self) -> str:
        """The cause in words; a message shows the error after it."""
        if self.kind == CRATE_GRAPH:
            which = f", which `{self.needed_by}` depends on" if self.needed_by else ""
            also = "" if self.needed_by or self.code != "E0463" else " or a crate it was compiled against"
            why = CRATE_LOADING.get(self.code or "", "")
            return f"rustc could not load crate `{self.crate}`{which}{also} ({self.code}: {why})"
        if self.kind == TARGET_DEPENDENCY:
            return (f"it needs crate `{self.crate}`, which its Cargo.toml declares only under "
                    f"`[target.'{self.target}'.dependencies]`, and the replay has only the dependencies cargo "
                    f"resolved for the host")
        if self.kind == NATIVE_ONLY:
            return "it uses an API that wasm32-wasip1 does not have (configured out for this target)"
        return "rustc's first error"


def diagnose(stderr: str, target_dependencies: Mapping[str, str] | None = None) -> Diagnosis:
    """The Diagnosis of a failed compile from its stderr (`--error-format=json` lines; other lines are
    what rustc printed before it could report in JSON, used only when there is no JSON error), given the
    crate's dependencies for other targets only (`target_dependencies`)."""
    errors = [msg for msg in _diagnostics(stderr) if msg.get("level") == "error"]
    for msg in errors:
        code = _code(msg)
        if code in CRATE_LOADING:
            text = msg.get("message") or ""
            crate, needed_by = _CRATE.search(text), _NEEDED_BY.search(text)
            return Diagnosis(CRATE_GRAPH, _rendered(msg), code, crate.group(1) if crate else "?",
                             needed_by.group(1) if needed_by else None)
    for msg in errors if target_dependencies else ():
        name = next((n for n in _unresolved_names(msg) if n in target_dependencies), None)
        if name is not None:
            return Diagnosis(TARGET_DEPENDENCY, _rendered(msg), _code(msg), name, target=target_dependencies[name])
    for msg in errors:
        if _code(msg) in UNRESOLVED and any(CONFIGURED_OUT in (c.get("message") or "") for c in _children(msg)):
            return Diagnosis(NATIVE_ONLY, _rendered(msg), _code(msg))
    if errors:
        return Diagnosis(OTHER, _rendered(errors[0]), _code(errors[0]))
    tail = [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]
    return Diagnosis(OTHER, "\n".join(tail[-5:]) or "rustc failed without a message")


def _diagnostics(stderr: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
    return out


def _code(msg: dict) -> str | None:
    code = msg.get("code")
    return code.get("code") if isinstance(code, dict) else None


def _children(msg: dict) -> list[dict]:
    return [c for c in msg.get("children") or () if isinstance(c, dict)]


def _unresolved_names(msg: dict) -> list[str]:
    """The first path segment of each name an unresolved-name error quotes (`wasi` of `wasi::random_get`),
    in its message and the labels of its spans."""
    if _code(msg) not in UNRESOLVED:
        return []
    texts = [msg.get("message") or ""] + [sp.get("label") or "" for sp in msg.get("spans") or () if isinstance(sp, dict)]
    return [quoted.split("::")[0] for text in texts for quoted in _QUOTED.findall(text)]


def target_dependencies(manifest_dir: str) -> dict[str, str]:
    """The crate's dependencies declared only for some targets: their name in code (`-` as `_`) -> the
    `[target.<cfg>]` table; {} when the manifest cannot be read."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(os.path.join(manifest_dir, "Cargo.toml"), "rb") as fh:
            manifest = tomllib.load(fh)
    except (OSError, ValueError):
        return {}
    everywhere = {name.replace("-", "_") for name in _table(manifest, "dependencies")}
    found: dict[str, str] = {}
    for cfg, table in _table(manifest, "target").items():
        for name in _table(table, "dependencies") if isinstance(table, dict) else ():
            if name.replace("-", "_") not in everywhere:
                found.setdefault(name.replace("-", "_"), cfg)
    return found


def _table(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _rendered(msg: dict) -> str:
    lines = _ANSI.sub("", msg.get("rendered") or msg.get("message") or "").strip().splitlines()
    return "\n".join(lines[:RENDERED_LINES] + (["..."] if len(lines) > RENDERED_LINES else []))


_NATIVE = ("; `sandbox = \"native\"` in `[permissions.build.{package}]` runs that build script natively, "
           "unsandboxed")
# What to do, by kind; `{package}`: the package whose build script needed the crate.
HINTS: Final[dict[str, str]] = {
    CRATE_GRAPH: "cratecage hands rustc every crate a wasm compile reads, and each of them compiled natively: "
                 "this is cratecage's fault, not the crate's; please report it with this message",
    TARGET_DEPENDENCY: "cratecage cannot yet replay a crate whose dependencies on wasm32-wasip1 differ from the "
                       "host's (see Limits in its README)" + _NATIVE,
    NATIVE_ONLY: "build scripts and their dependencies run in the wasm sandbox; a crate that needs a "
                 "native-only API cannot be a build-dependency under cratecage" + _NATIVE,
    OTHER: "build scripts and their dependencies are compiled for wasm32-wasip1 with the features and cfgs "
           "of their native build; a crate that does not compile there cannot be a build-dependency under "
           "cratecage" + _NATIVE,
}


def hint(diagnosis: Diagnosis, package: str) -> str:
    return HINTS[diagnosis.kind].format(package=package)


def explain_script_failure(subject: str, stderr: str, package: str) -> str | None:
    """The `cratecage:` line for a build script's own failed wasm compile, whose errors cargo has shown
    already: the cause and what to do when it is one of ours or a native-only API; None otherwise
    (rustc's errors say it all)."""
    found = diagnose(stderr)
    if found.kind == OTHER:
        return None
    return f"cratecage: {subject} does not compile for wasm32-wasip1: {found.cause}; {hint(found, package)}"
