"""What is this rustc call? A closed set of answers, each with a stable reason string.

    probe         a question to the compiler (`-vV`, `--print`, a build script's feature probe): pass through
    build-script  `--crate-type bin --crate-name build_script_*`, linked: will run in the sandbox
    proc-macro    `--crate-type proc-macro`, linked: will run in the sandbox
    host-library  a linked library compiled without `--target`: may be a build dependency (journaled)
    other         everything else: pass through untouched

Shapes come from notes/cargo-and-rustc.md §3-§5. Structural checks come first, so a nested cargo started
from a build script (whose environment looks like a probe's) cannot get a build script passed off as a probe.
On the pass-through fast path: standard library only.
"""

from __future__ import annotations

from shim.cargo.rustc_args import RustcArgs

if False:  # typing only; importing typing costs ~10 ms on the fast path
    from typing import Mapping

PROBE = "probe"
BUILD_SCRIPT = "build-script"
PROC_MACRO = "proc-macro"
HOST_LIBRARY = "host-library"
OTHER = "other"
KINDS = (PROBE, BUILD_SCRIPT, PROC_MACRO, HOST_LIBRARY, OTHER)
SANDBOXED = frozenset({BUILD_SCRIPT, PROC_MACRO})

_LIBRARY_TYPES = frozenset({"lib", "rlib"})
# Set by cargo only for build-script runs; rust-analyzer uses the same test (notes §5).
_BUILD_SCRIPT_ENV = "CARGO_CFG_TARGET_ARCH"


class Unit:
    """The answer: one of KINDS and why."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind: str, reason: str) -> None:
        assert kind in KINDS, kind
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unit({self.kind!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unit) and (self.kind, self.reason) == (other.kind, other.reason)


def classify(args: RustcArgs, environ: Mapping[str, str] | None = None) -> Unit:
    env = environ if environ is not None else {}
    links = "link" in args.emit or (not args.emit and args.inputs != ())
    if args.test:
        return Unit(OTHER, "test harness")
    if "proc-macro" in args.crate_types and "link" in args.emit:
        return Unit(PROC_MACRO, "proc-macro crate, linked")
    if (
        args.crate_types == ("bin",)
        and (args.crate_name or "").startswith("build_script_")
        and "link" in args.emit
    ):
        return Unit(BUILD_SCRIPT, "build script binary")
    if args.version or args.help:
        return Unit(PROBE, "version query" if args.version else "help")
    if args.prints:
        return Unit(PROBE, "print query")
    if args.explain is not None:
        return Unit(PROBE, "explain")
    if not args.inputs:
        return Unit(OTHER, "no input")
    if _BUILD_SCRIPT_ENV in env:
        return Unit(PROBE, "compile started by a build script")
    if args.inputs == ("-",):
        return Unit(PROBE, "source on stdin")
    if args.crate_types and set(args.crate_types) <= _LIBRARY_TYPES and links:
        if args.target is None:
            return Unit(HOST_LIBRARY, "linked library without --target")
        return Unit(OTHER, "target library")
    if "proc-macro" in args.crate_types:
        return Unit(OTHER, "proc-macro crate, not linked")
    return Unit(OTHER, "other compile")


def unit_name(args: RustcArgs, environ: Mapping[str, str]) -> str:
    """The unit this call compiles as a person knows it, for messages: by its package (CARGO_PKG_NAME and
    CARGO_PKG_VERSION, which cargo sets for every rustc call; the policy keys crates by it too), never by
    rustc's crate name alone, which is `build_script_build` for every build script."""
    crate = args.crate_name or "?"
    package = environ.get("CARGO_PKG_NAME") or crate
    version = environ.get("CARGO_PKG_VERSION")
    pkg = f"{package} {version}" if version else package
    if args.test:
        return f"test `{crate}` of {pkg}"
    if "bin" in args.crate_types and crate.startswith("build_script_"):
        return f"build script of {pkg}"
    if "proc-macro" in args.crate_types:
        return f"proc macro {pkg}"
    if "bin" in args.crate_types or not args.crate_types:
        return f"binary `{crate}` of {pkg}"
    return f"library {pkg}"


def is_verbose_version(args: RustcArgs) -> bool:
    """`rustc -vV` (any spelling) and nothing else: the call whose output gets cratecage's line."""
    return args.version and args.verbose and not args.inputs and not args.prints and not args.unknown
