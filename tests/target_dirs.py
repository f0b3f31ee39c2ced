"""Where tests find what cargo built, in a target directory of either build-dir layout.

The tests run on both layouts (conftest's `cargo` fixture); a glob of one layout's paths finds nothing in
the other's, and a loop over nothing asserts nothing. So every lookup here matches both shapes (a target
directory holds one), and the ones a test relies on say so when they find nothing.

    old  <target>/<profile>/build/<pkg>-<H>/{output,out/,build-script-build}, deps/, .fingerprint/<pkg>-<H>/
    new  <target>/<profile>/build/<pkg>/<H>/{run/stdout,out/,out/build_script_build,fingerprint/}
"""

from __future__ import annotations

import re
from pathlib import Path

from shim.cargo import layout

# A `Running `...`` line of `cargo -v` that runs a build script: `build-script-build` (old), the new
# layout's `out/build_script_build`, and custom names (`build = "build/main.rs"`: `build-script-main`).
RUNNING_SCRIPT = re.compile(r"/build[-_]script[-_]\w+`?\s*$")


def unit_dirs(target: Path, package: str, profile: str = "debug") -> list[Path]:
    """Every unit directory of `package` under `<profile>/build`: compiles and runs of its build script
    (old), and every unit of it (new)."""
    build = target / profile / "build"
    old = [p for p in build.glob(f"{glob_escape(package)}-*") if p.is_dir() and p.name.rsplit("-", 1)[0] == package]
    new = [p for p in (build / package).glob("*") if p.is_dir() and (p / "out").is_dir()] \
        if (build / package).is_dir() else []
    return sorted(old + new)


def script_unit_dirs(target: Path, package: str, profile: str = "debug") -> list[Path]:
    """The directories of a package's build-script compiles and runs: all of the old layout's
    `build/<pkg>-<H>`, the new layout's units with a `run/` or an `out/build_script_*`."""
    return [u for u in unit_dirs(target, package, profile)
            if u.parent.name == "build" or (u / "run").is_dir() or any((u / "out").glob("build_script_*"))]


def script_unit_files(target: Path, package: str, profile: str = "debug") -> list[Path]:
    """Every file the build script of `package` and cratecage left in its units (the new layout keeps the
    units' fingerprints there too: not those, which hold granted variables' values by cargo's design)."""
    return [p for u in script_unit_dirs(target, package, profile) for p in sorted(u.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(u).parts[0] != "fingerprint"]


def script_runs(target: Path, package: str = "*", profile: str = "debug") -> list[tuple[Path, Path]]:
    """(stdout file cargo kept, OUT_DIR) of each run of a package's build script; `package` may be `*`."""
    build = target / profile / "build"
    old = [(f, f.parent / "out") for f in build.glob(f"{package}-*/output")]
    new = [(f, f.parent.parent / "out") for f in build.glob(f"{package}/*/run/stdout")]
    found = old + new
    if package != "*":
        found = [(f, o) for f, o in found if unit_package(o.parent) == package]
    return sorted(found)


def out_dirs(target: Path, package: str, profile: str = "debug") -> list[Path]:
    """The OUT_DIRs of a package's build-script runs, failed ones included (cargo keeps their stdout only
    when they succeed): the old layout's `build/<pkg>-<H>/out`, the new one's `out/` beside a `run/`."""
    return [u / "out" for u in unit_dirs(target, package, profile)
            if (u / "out").is_dir() and (u.parent.name == "build" or (u / "run").is_dir())]


def unit_package(unit: Path) -> str:
    """The package a unit directory belongs to: `<pkg>-<H>` (old) or `<pkg>/<H>` (new)."""
    return unit.parent.name if unit.parent.name != "build" else unit.name.rsplit("-", 1)[0]


def build_script_binaries(target: Path, profile: str = "debug") -> list[Path]:
    """What cargo runs as build scripts: old `build/<pkg>-<H>/build-script-<name>` (the hard link cargo
    makes), new `build/<pkg>/<H>/out/build_script_<name>`."""
    build = target / profile / "build"
    found = [*build.glob("*/build-script-*"), *build.glob("*/*/out/build_script_*")]
    return sorted(p for p in found if p.is_file() and p.suffix != ".d")


def crate_outputs(target: Path, pattern: str, profile: str = "debug") -> list[Path]:
    """Files rustc wrote for crates matching a glob `pattern` (`libfoo-*.rmeta`): old `deps/`, new each
    unit's `out/`."""
    return [Path(p) for p in layout.unit_outputs(str(target / profile), pattern)]


def fingerprint_files(target: Path, package: str, name: str, profile: str = "debug") -> list[Path]:
    """A file of a package's fingerprint directories: old `.fingerprint/<pkg>-<H>/`, new `<unit>/fingerprint/`."""
    return sorted([*(target / profile / ".fingerprint").glob(f"{glob_escape(package)}-*/{name}"),
                   *(target / profile / "build" / package).glob(f"*/fingerprint/{name}")])


def runs_a_build_script(line: str) -> bool:
    """Whether a `cargo -v` line says cargo ran a build script."""
    return line.strip().startswith("Running `") and bool(RUNNING_SCRIPT.search(line.strip()))


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
