"""Where cargo keeps a unit's files, in either build-dir layout, read from the rustc call cargo makes.

Why: cargo has two layouts of its build directory (notes/cargo-build-dir-layout.md), and which one a
build uses depends on the cargo, its channel and an opt-out variable, never on anything cratecage can ask
cheaply. A unit's `--out-dir` shows which one it is:

    old  <root>/[<triple>/]<profile>/deps/                 libraries, proc macros, bins (`-C extra-filename`)
         <root>/[<triple>/]<profile>/build/<pkg>-<H>/      a build script: `build_script_build-<H>`, which
                                                           cargo hard-links to `build-script-build`
         <root>/[<triple>/]<profile>/.fingerprint/<pkg>-<H>/   the unit's fingerprint
         OUT_DIR of a run: build/<pkg>-<runH>/out, its stdout in build/<pkg>-<runH>/output
    new  <root>/[<triple>/]<profile>/build/<pkg>/<H>/out/  every unit's outputs; a build script is
                                                           `out/build_script_build`, no extra-filename,
                                                           no hard link: cargo runs that path
         <root>/[<triple>/]<profile>/build/<pkg>/<H>/fingerprint/
         OUT_DIR of a run: build/<pkg>/<runH>/out, its stdout in build/<pkg>/<runH>/run/stdout

`<root>` is the build directory: the target directory, or `build.build-dir` when that is set elsewhere
(then cargo's uplifted artifacts go to the target directory and every unit to the build directory).
The profile directory is the nearest one holding cargo's build lock (`.cargo-lock`; `.cargo-build-lock`
in a build directory of the new layout), which cargo takes before it starts any rustc; the root is its
parent, or, for a unit compiled with `--target`, the parent of the `<triple>` directory. Cargo's marker
files at the root (CACHEDIR.TAG, `.rustc_info.json`) cannot say it: cargo tags `<triple>/` too, tags only
a directory it created, and may not have written its rustc cache yet when the first unit compiles.

cratecage's own state for a build (journal, wasm-deps, build-script modules, audit.jsonl, tmp) is one
directory, `<root>/cratecage/` (`state_dir`), in both layouts, so `cargo clean` removes it.

Standard library only, no filesystem access beyond a few `stat`s: the wrapper's fast path (shim.cargo.journal)
asks here for every library it records.
"""

from __future__ import annotations

import os

if False:  # typing only: importing typing costs ~10 ms on the pass-through fast path
    from typing import Callable

    from shim.cargo.rustc_args import RustcArgs

OLD, NEW = "old", "new"
STATE_DIR = "cratecage"  # <root>/cratecage: everything cratecage keeps for one build
PROFILE_MARKERS = (".cargo-lock", ".cargo-build-lock")
MAX_WALK = 8  # directories searched for the profile's lock, from the out-dir up (the new layout's is 5th)
# A build-script run's stdout as cargo keeps it, relative to its OUT_DIR: old layout, then new.
SCRIPT_OUTPUT = (("..", "output"), ("..", "run", "stdout"))
MODULES_DIR = "build"  # <state>/build/<pkg>-<H>/<stem>.wasm: build-script modules (module_path)
MACROS_DIR = "macro"  # <state>/macro/<unit>/<stem>.wasm: proc-macro guest modules (macro_module_path)


def unit_layout(out_dir: str) -> str:
    """OLD or NEW, from the shape of a unit's `--out-dir`: `.../build/<pkg>/<H>/out` is the new layout's."""
    out = os.path.normpath(out_dir)
    unit = os.path.dirname(out)
    return NEW if os.path.basename(out) == "out" and _name(_up(unit, 2)) == "build" else OLD


def unit_name(out_dir: str) -> str:
    """A name for the unit that is unique in its build directory: `<pkg>-<H>` in both layouts (the old
    layout's out-dir of a build script is named so; the new layout's is `out`, below `<pkg>/<H>`)."""
    out = os.path.normpath(out_dir)
    if unit_layout(out) == NEW:
        unit = os.path.dirname(out)
        return f"{_name(os.path.dirname(unit))}-{_name(unit)}"
    return _name(out)


def output_stem(args: RustcArgs) -> str:
    """What rustc names the unit's outputs: `<crate-name><extra-filename>` (no extra-filename for a build
    script of the new layout). Cargo expects a build script's binary at `<out-dir>/<stem>` in both."""
    return f"{args.crate_name}{args.extra_filename}"


def profile_dir(out_dir: str) -> str:
    """`<root>/[<triple>/]<profile>` of a unit: the nearest directory at or above `out_dir` holding
    cargo's build lock (`locked_profile`); where none does (a copy of a target directory), read from the
    out-dir's shape."""
    out = os.path.abspath(out_dir)
    locked = locked_profile(out)
    if locked is not None:
        return locked
    if unit_layout(out) == NEW:
        return _up(out, 4)  # out -> <H> -> <pkg> -> build -> profile
    parent = os.path.dirname(out)
    return os.path.dirname(parent) if _name(parent) == "build" else parent  # build/<pkg>-<H>, or deps/


def locked_profile(out_dir: str) -> str | None:
    """The nearest directory at or above `out_dir` (MAX_WALK at most) holding cargo's build lock, which
    cargo holds while it builds: None for a directory no cargo is building in."""
    return _nearest_marked(os.path.abspath(out_dir), PROFILE_MARKERS, os.path.exists, MAX_WALK)


def _nearest_marked(start: str, markers: tuple[str, ...], present: Callable[[str], bool],
                    limit: int | None = None) -> str | None:
    """`start` or the nearest directory above it (`limit` directories looked at, at most) holding one of
    `markers`, as `present` judges a path; None when none does."""
    here, looked = start, 0
    while limit is None or looked < limit:
        if any(present(os.path.join(here, m)) for m in markers):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            break
        here, looked = parent, looked + 1
    return None


# What marks a directory of cargo's build output wherever it is (a target dir elsewhere, a build.build-dir,
# either layout): its build lock, or its fingerprints.
OUTPUT_MARKERS = (*PROFILE_MARKERS, ".fingerprint")


def cargo_output_of(path: str) -> str | None:
    """The directory of cargo's build output that `path` lies in, by its lexical form and its real path: the
    nearest one above it holding a marker (OUTPUT_MARKERS), however deep (another crate's OUT_DIR, deps/, a
    build-script launcher); None elsewhere."""
    for start in dict.fromkeys((os.path.normpath(os.path.abspath(path)), os.path.realpath(path))):
        found = _nearest_marked(start, OUTPUT_MARKERS, os.path.lexists)
        if found is not None:
            return found
    return None


def build_root(out_dir: str, target: str | None = None) -> str:
    """The build directory a unit's `--out-dir` lies in. `target`: the unit's `--target` (a triple or a
    target spec file), for which cargo adds a `<triple>` level; host units of a `--target` build have none."""
    parent = os.path.dirname(profile_dir(out_dir))
    if target and _name(parent) == target_dir_name(target):
        return os.path.dirname(parent)  # cargo tags <triple>/ too (CACHEDIR.TAG): no marker tells them apart
    return parent


def state_dir(out_dir: str, target: str | None = None) -> str:
    """`<root>/cratecage`, cratecage's state for the build the unit belongs to (module docstring)."""
    return os.path.join(build_root(out_dir, target), STATE_DIR)


def target_dir_name(target: str) -> str:
    """The directory cargo names after a `--target`: the triple, or a target spec file's stem."""
    name = os.path.basename(target)
    return name[:-len(".json")] if name.endswith(".json") else name


def fingerprint_dir(out_dir: str, package: str, extra_filename: str) -> str | None:
    """Cargo's fingerprint directory of the unit (its cached diagnostics and freshness state): the new
    layout's `<unit>/fingerprint`, the old layout's `<profile>/.fingerprint/<package><extra>`; None when
    the old layout's name cannot be known."""
    if unit_layout(out_dir) == NEW:
        return os.path.join(os.path.dirname(os.path.abspath(out_dir)), "fingerprint")
    if not package or not extra_filename:
        return None
    return os.path.join(profile_dir(out_dir), ".fingerprint", f"{package}{extra_filename}")


def unit_state_dir(state: str, out_dir: str, kind: str = MODULES_DIR) -> str:
    """`<state>/<kind>/<pkg>-<H>`: what cratecage builds for one build-script unit (kind "build": its wasm
    module; "native": a `sandbox = "native"` script's binary)."""
    return os.path.join(state, kind, unit_name(out_dir))


def module_path(state: str, out_dir: str, stem: str) -> str:
    """Where a build script's wasm module goes: `<state>/build/<pkg>-<H>/<stem>.wasm`."""
    return os.path.join(unit_state_dir(state, out_dir), f"{stem}.wasm")


def macro_unit_dir(state: str, out_dir: str, stem: str) -> str:
    """`<state>/macro/<unit>`: what cratecage builds for one proc-macro unit (its guest module, the mirror
    of its sources). `<unit>` is the new layout's `<pkg>-<H>`, the old layout's output stem (`<crate-name>
    <extra-filename>`: every proc macro of a profile shares `deps/`)."""
    unit = unit_name(out_dir) if unit_layout(out_dir) == NEW else stem
    return os.path.join(state, MACROS_DIR, unit)


def macro_module_path(state: str, out_dir: str, stem: str) -> str:
    """Where a proc-macro crate's guest module goes: `<state>/macro/<unit>/<stem>.wasm`."""
    return os.path.join(macro_unit_dir(state, out_dir, stem), f"{stem}.wasm")


def state_of_module(wasm: str) -> str:
    """The state directory of a module `module_path` placed."""
    return _up(os.path.abspath(wasm), 3)


def unit_outputs(profile: str, pattern: str) -> list[str]:
    """Files matching a glob `pattern` (`lib*.rlib`) that rustc wrote for the units of a profile directory:
    the old layout's `deps/`, the new one's `build/*/*/out/`."""
    import glob

    return sorted([*glob.glob(os.path.join(glob.escape(profile), "deps", pattern)),
                   *glob.glob(os.path.join(glob.escape(profile), "build", "*", "*", "out", pattern))])


def script_output(out_dir: str) -> bytes | None:
    """What a build-script run printed, as cargo kept it beside its OUT_DIR; None when it has not run."""
    for parts in SCRIPT_OUTPUT:
        try:
            with open(os.path.join(out_dir, *parts), "rb") as fh:
                return fh.read()
        except OSError:
            continue
    return None


def _name(path: str) -> str:
    return os.path.basename(path)


def _up(path: str, levels: int) -> str:
    for _ in range(levels):
        path = os.path.dirname(path)
    return path
